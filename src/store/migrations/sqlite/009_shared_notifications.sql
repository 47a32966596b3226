-- A notification about a resource version names the stored version instead of holding a copy:
-- nine Subscriptions matching one change share the one copy in `resources`.
ALTER TABLE outbox ADD COLUMN payload_type TEXT;
ALTER TABLE outbox ADD COLUMN payload_id TEXT;
ALTER TABLE outbox ADD COLUMN payload_version INTEGER;
