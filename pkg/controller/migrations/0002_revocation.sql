-- Outpost controller schema, version 2: device revocation. The record's
-- `revoked_at` is what the controller reads; the column makes the revoked
-- devices a query of their own (audits, `device list --revoked` later).

ALTER TABLE devices ADD COLUMN revoked_at TIMESTAMPTZ;
CREATE INDEX devices_revoked ON devices (revoked_at) WHERE revoked_at IS NOT NULL;
