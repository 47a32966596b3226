-- Fewer bytes per referral: every page a commit changes is written twice (to the WAL, then by
-- the checkpoint to the database file), and those writes were most of the writer's time.

-- The body as received is kept for the record and never read by the gateway: new rows keep it
-- LZ4-compressed (frame format, `lz4 -d` reads it), about a third of its size. Older rows stay
-- as they were ('identity').
ALTER TABLE referrals ADD COLUMN received_body_encoding TEXT NOT NULL DEFAULT 'identity';

-- The same columns as the outbox's UNIQUE constraint, whose index serves the same lookups.
DROP INDEX outbox_by_referral;

-- Resources are keyed and indexed by their time-ordered ids (UUIDv7) first, no longer by type
-- first. With the type first, the seven resources of a referral went to seven insertion points
-- in each of three B-trees, each a leaf page the commit rewrites (21); now one each (3), as all
-- seven ids come from the same millisecond. Reads by type and id, by
-- referral and by patient use these keys as before; a search by type alone scans.
CREATE TABLE resources_v5 (
    id            TEXT NOT NULL,
    resource_type TEXT NOT NULL,
    version_id    INTEGER NOT NULL,
    client_id     TEXT NOT NULL,
    referral_id   TEXT NOT NULL,
    last_updated  TEXT NOT NULL,
    content       TEXT NOT NULL,
    patient_id    TEXT,
    code          TEXT,
    is_current    INTEGER NOT NULL DEFAULT 1,
    PRIMARY KEY (id, resource_type, version_id)
) STRICT;
INSERT INTO resources_v5 (id, resource_type, version_id, client_id, referral_id, last_updated,
                          content, patient_id, code, is_current)
    SELECT id, resource_type, version_id, client_id, referral_id, last_updated,
           content, patient_id, code, is_current
    FROM resources;
DROP TABLE resources;
ALTER TABLE resources_v5 RENAME TO resources;
CREATE INDEX resources_by_referral ON resources (referral_id, resource_type, is_current);
CREATE INDEX resources_by_patient ON resources (patient_id, resource_type, is_current);
