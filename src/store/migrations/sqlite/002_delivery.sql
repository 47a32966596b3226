-- Every delivery attempt, for operators and the VCS's support desk.
CREATE TABLE delivery_attempts (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    message_id      TEXT NOT NULL REFERENCES outbox (id),
    attempted_at    TEXT NOT NULL,
    status_code     INTEGER,
    latency_ms      INTEGER NOT NULL,
    error           TEXT,
    response_prefix TEXT
) STRICT;
CREATE INDEX delivery_attempts_by_message ON delivery_attempts (message_id, id);

ALTER TABLE outbox ADD COLUMN last_error TEXT;
CREATE INDEX outbox_by_referral ON outbox (referral_id, sequence);
CREATE INDEX outbox_by_vcs ON outbox (vcs_id, state, created_at);

-- Endpoints an operator (or a 410 Gone) switched off.
CREATE TABLE vcs_endpoints (
    vcs_id          TEXT PRIMARY KEY,
    disabled        INTEGER NOT NULL DEFAULT 0,
    disabled_reason TEXT,
    updated_at      TEXT NOT NULL
) STRICT;

-- Signing secrets; during a rotation the old one keeps signing until expires_at.
CREATE TABLE vcs_secrets (
    vcs_id     TEXT NOT NULL,
    secret     TEXT NOT NULL,
    created_at TEXT NOT NULL,
    expires_at TEXT,
    PRIMARY KEY (vcs_id, secret)
) STRICT;

-- Recover-since jobs: which messages they put back in the queue.
CREATE TABLE recovery_jobs (
    id         TEXT PRIMARY KEY,
    vcs_id     TEXT NOT NULL,
    since      TEXT NOT NULL,
    created_at TEXT NOT NULL
) STRICT;
CREATE TABLE recovery_job_messages (
    job_id     TEXT NOT NULL REFERENCES recovery_jobs (id),
    message_id TEXT NOT NULL REFERENCES outbox (id),
    PRIMARY KEY (job_id, message_id)
) STRICT;
