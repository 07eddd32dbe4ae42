//! A refused request: status + message (+ suggestions on the admin API),
//! answered as `{"error": "…"}` like every non-2xx answer.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};

/// An error answer's body (the wire type `outpost_api::cloud::ApiError`
/// plus the admin API's suggestions, omitted when empty).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    /// What went wrong, naming the object.
    pub error: String,
    /// Close names, for an object that was not found.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub suggestions: Vec<String>,
}

/// A refused request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Failure {
    /// HTTP status.
    pub status: StatusCode,
    /// Message, naming the object.
    pub message: String,
    /// Close names, when something was not found.
    pub suggestions: Vec<String>,
}

impl Failure {
    /// A failure with `status`.
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Failure {
            status,
            message: message.into(),
            suggestions: Vec::new(),
        }
    }

    /// 400.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }

    /// 401.
    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, message)
    }

    /// 403.
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, message)
    }

    /// 404 with suggestions.
    pub fn not_found(message: impl Into<String>, suggestions: Vec<String>) -> Self {
        Failure {
            suggestions,
            ..Self::new(StatusCode::NOT_FOUND, message)
        }
    }

    /// 409.
    pub fn conflict(message: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, message)
    }

    /// 500, logged (the message may name files, never secrets).
    pub fn internal(e: impl std::fmt::Display) -> Self {
        tracing::error!(error = %e, "request failed");
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string())
    }
}

impl From<crate::ControllerError> for Failure {
    fn from(e: crate::ControllerError) -> Self {
        match e {
            crate::ControllerError::BadDocument(m) | crate::ControllerError::Invalid(m) => {
                Failure::bad_request(m)
            }
            e => Failure::internal(e),
        }
    }
}

impl IntoResponse for Failure {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            error: self.message,
            suggestions: self.suggestions,
        };
        (self.status, Json(body)).into_response()
    }
}
