-- Outpost controller schema, version 1. Records are JSON (as in the redb
-- backend) so a field can be added without a migration; what queries need
-- (keys, generations, sequence numbers) is in columns.

CREATE TABLE devices (
    uuid TEXT PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    serial TEXT NOT NULL UNIQUE,
    record JSONB NOT NULL
);

-- The durable per-device config version: replicas compare `generation`
-- with what they hold (catch-up) when NOTIFY outpost_config may have been missed.
CREATE TABLE configs (
    uuid TEXT PRIMARY KEY REFERENCES devices (uuid) ON DELETE CASCADE,
    generation BIGINT NOT NULL,
    record JSONB NOT NULL
);

CREATE TABLE info (
    uuid TEXT PRIMARY KEY REFERENCES devices (uuid) ON DELETE CASCADE,
    record JSONB NOT NULL
);

-- Ring bookkeeping (RingMeta) per device and kind ('logs' or 'metrics').
CREATE TABLE rings (
    uuid TEXT NOT NULL REFERENCES devices (uuid) ON DELETE CASCADE,
    kind TEXT NOT NULL,
    meta JSONB NOT NULL,
    PRIMARY KEY (uuid, kind)
);

CREATE TABLE metrics (
    uuid TEXT NOT NULL REFERENCES devices (uuid) ON DELETE CASCADE,
    seq BIGINT NOT NULL,
    record JSONB NOT NULL,
    PRIMARY KEY (uuid, seq)
);

CREATE TABLE logs (
    uuid TEXT NOT NULL REFERENCES devices (uuid) ON DELETE CASCADE,
    seq BIGINT NOT NULL,
    entry JSONB NOT NULL,
    PRIMARY KEY (uuid, seq)
);
