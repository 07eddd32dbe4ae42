-- Outpost controller schema, version 3: base OS artifacts published with
-- `outpost-controller base-os publish` (the bytes are a file in the state
-- dir's base-os/; this is what is known of each).

CREATE TABLE base_os (
    sha256 TEXT PRIMARY KEY,
    record JSONB NOT NULL
);
