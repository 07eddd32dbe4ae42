-- Outpost controller schema, version 4: when each device was last seen,
-- written in batches by every replica so all of them (and a restarted one)
-- show it. Unix seconds; `polling_at` is the last moment some replica held
-- a config long-poll of the device (it is "connected" while that is recent).

CREATE TABLE presence (
    uuid TEXT PRIMARY KEY REFERENCES devices (uuid) ON DELETE CASCADE,
    last_seen BIGINT NOT NULL,
    polling_at BIGINT NOT NULL
);
