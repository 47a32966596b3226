-- Closing the loop: versions, search columns, the referral's progress, idempotency,
-- subscriptions, and outbox messages to targets other than VCS organisations.

ALTER TABLE resources ADD COLUMN patient_id TEXT;
ALTER TABLE resources ADD COLUMN code TEXT;
ALTER TABLE resources ADD COLUMN is_current INTEGER NOT NULL DEFAULT 1;
CREATE INDEX resources_by_referral ON resources (resource_type, referral_id, is_current);
CREATE INDEX resources_by_patient ON resources (resource_type, patient_id, is_current);

ALTER TABLE referrals ADD COLUMN vcs_status TEXT NOT NULL DEFAULT 'received';
ALTER TABLE referrals ADD COLUMN task_id TEXT;
-- Bumped by every change: the optimistic lock that keeps concurrent updates from losing each other.
ALTER TABLE referrals ADD COLUMN revision INTEGER NOT NULL DEFAULT 1;
ALTER TABLE referrals ADD COLUMN updated_at TEXT;
UPDATE referrals SET updated_at = created_at;
CREATE INDEX referrals_by_vcs ON referrals (vcs_id, updated_at, id);

-- Sequence numbers count per target (a VCS organisation, or a GP system's subscription).
CREATE TABLE outbox_v3 (
    id              TEXT PRIMARY KEY,
    referral_id     TEXT NOT NULL,
    target_kind     TEXT NOT NULL DEFAULT 'vcs',
    vcs_id          TEXT NOT NULL,
    event_type      TEXT NOT NULL,
    sequence        INTEGER NOT NULL,
    payload         TEXT NOT NULL,
    state           TEXT NOT NULL DEFAULT 'pending',
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at TEXT NOT NULL,
    lease_until     TEXT,
    created_at      TEXT NOT NULL,
    delivered_at    TEXT,
    last_error      TEXT,
    UNIQUE (referral_id, target_kind, vcs_id, sequence)
) STRICT;
INSERT INTO outbox_v3 (id, referral_id, vcs_id, event_type, sequence, payload, state, attempts,
                       next_attempt_at, lease_until, created_at, delivered_at, last_error)
    SELECT id, referral_id, vcs_id, event_type, sequence, payload, state, attempts,
           next_attempt_at, lease_until, created_at, delivered_at, last_error FROM outbox;
DROP TABLE outbox;
ALTER TABLE outbox_v3 RENAME TO outbox;
CREATE INDEX outbox_due ON outbox (state, next_attempt_at);
CREATE INDEX outbox_by_referral ON outbox (referral_id, target_kind, vcs_id, sequence);
CREATE INDEX outbox_by_vcs ON outbox (vcs_id, state, created_at);

-- VCS requests with an Idempotency-Key: a repeat gets the first answer.
CREATE TABLE idempotency_keys (
    owner        TEXT NOT NULL,
    key          TEXT NOT NULL,
    request_hash TEXT NOT NULL,
    status       INTEGER NOT NULL,
    body         TEXT NOT NULL,
    created_at   TEXT NOT NULL,
    PRIMARY KEY (owner, key)
) STRICT;

-- FHIR rest-hook Subscriptions of GP systems.
CREATE TABLE subscriptions (
    id            TEXT PRIMARY KEY,
    client_id     TEXT NOT NULL,
    resource_type TEXT NOT NULL,
    criteria      TEXT NOT NULL,
    endpoint      TEXT NOT NULL,
    status        TEXT NOT NULL,
    content       TEXT NOT NULL,
    created_at    TEXT NOT NULL
) STRICT;
CREATE INDEX subscriptions_by_client ON subscriptions (client_id, resource_type, status);
