//! End-to-end tests against real components live in `tests/tests/`.
