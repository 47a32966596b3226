-- The PostgreSQL schema: the same tables as the SQLite store (src/store/migrations/sqlite), in one
-- step because PostgreSQL came after them. Several gateway replicas share these tables, so every
-- rule that must hold across replicas is a constraint here, not a check in one process.

-- Referrals as accepted, with what was received byte for byte and the record the VCS receives.
CREATE TABLE referrals (
    id                    TEXT PRIMARY KEY,
    client_id             TEXT NOT NULL,
    vcs_id                TEXT NOT NULL,
    patient_id            TEXT NOT NULL,
    status                TEXT NOT NULL,
    vcs_status            TEXT NOT NULL DEFAULT 'received',
    task_id               TEXT,
    -- Bumped by every change: the optimistic lock that keeps concurrent updates from losing each other.
    revision              BIGINT NOT NULL DEFAULT 1,
    record                TEXT NOT NULL,
    received_content_type TEXT NOT NULL,
    received_body         BYTEA NOT NULL,
    created_at            TIMESTAMPTZ NOT NULL,
    updated_at            TIMESTAMPTZ NOT NULL
);
CREATE INDEX referrals_by_client ON referrals (client_id, created_at, id);
CREATE INDEX referrals_by_patient ON referrals (client_id, patient_id);
CREATE INDEX referrals_by_vcs ON referrals (vcs_id, updated_at, id);

-- The GP systems' identifiers: unique per client, so a retried create can never make two, even
-- when the retry reaches another replica while the first attempt is still committing.
CREATE TABLE referral_identifiers (
    client_id   TEXT NOT NULL,
    system      TEXT NOT NULL,
    value       TEXT NOT NULL,
    referral_id TEXT NOT NULL REFERENCES referrals (id),
    PRIMARY KEY (client_id, system, value)
);
CREATE INDEX referral_identifiers_by_value ON referral_identifiers (client_id, value);

-- BaRS: a message id is processed once, whichever replica receives it.
CREATE TABLE processed_messages (
    client_id   TEXT NOT NULL,
    message_id  TEXT NOT NULL,
    referral_id TEXT NOT NULL REFERENCES referrals (id),
    received_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (client_id, message_id)
);

-- Normalised FHIR resources, every version kept.
CREATE TABLE resources (
    resource_type TEXT NOT NULL,
    id            TEXT NOT NULL,
    version_id    BIGINT NOT NULL,
    client_id     TEXT NOT NULL,
    referral_id   TEXT NOT NULL,
    last_updated  TIMESTAMPTZ NOT NULL,
    content       TEXT NOT NULL,
    patient_id    TEXT,
    code          TEXT,
    is_current    BOOLEAN NOT NULL DEFAULT TRUE,
    PRIMARY KEY (resource_type, id, version_id)
);
CREATE INDEX resources_by_referral ON resources (resource_type, referral_id) WHERE is_current;
CREATE INDEX resources_by_patient ON resources (resource_type, patient_id) WHERE is_current;
CREATE INDEX resources_by_client ON resources (client_id, resource_type, last_updated, id) WHERE is_current;

-- Outward messages, written in the same transaction as the change they announce. Sequence
-- numbers count per referral and target (a VCS organisation, or a GP system's subscription).
CREATE TABLE outbox (
    id              TEXT PRIMARY KEY,
    referral_id     TEXT NOT NULL,
    target_kind     TEXT NOT NULL DEFAULT 'vcs',
    vcs_id          TEXT NOT NULL,
    event_type      TEXT NOT NULL,
    sequence        BIGINT NOT NULL,
    payload         TEXT NOT NULL,
    state           TEXT NOT NULL DEFAULT 'pending',
    attempts        BIGINT NOT NULL DEFAULT 0,
    next_attempt_at TIMESTAMPTZ NOT NULL,
    -- A replica that claims a message holds it until then; after that any replica may take it.
    lease_until     TIMESTAMPTZ,
    created_at      TIMESTAMPTZ NOT NULL,
    delivered_at    TIMESTAMPTZ,
    last_error      TEXT,
    UNIQUE (referral_id, target_kind, vcs_id, sequence)
);
-- Only pending messages are ever claimed: a partial index keeps the claim cheap however many
-- delivered messages the table holds.
CREATE INDEX outbox_due ON outbox (next_attempt_at) WHERE state = 'pending';
CREATE INDEX outbox_by_vcs ON outbox (vcs_id, state, created_at);
CREATE INDEX outbox_by_created ON outbox (created_at DESC, id);

-- Every delivery attempt, for operators and the VCS's support desk.
CREATE TABLE delivery_attempts (
    id              BIGSERIAL PRIMARY KEY,
    message_id      TEXT NOT NULL REFERENCES outbox (id),
    attempted_at    TIMESTAMPTZ NOT NULL,
    status_code     INTEGER,
    latency_ms      BIGINT NOT NULL,
    error           TEXT,
    response_prefix TEXT
);
CREATE INDEX delivery_attempts_by_message ON delivery_attempts (message_id, id);

-- Who did what to which referral; our ids only, never patient details.
CREATE TABLE audit_log (
    id             BIGSERIAL PRIMARY KEY,
    recorded_at    TIMESTAMPTZ NOT NULL,
    actor          TEXT NOT NULL,
    action         TEXT NOT NULL,
    resource_type  TEXT,
    resource_id    TEXT,
    patient_id     TEXT,
    outcome        TEXT NOT NULL,
    correlation_id TEXT
);
CREATE INDEX audit_log_by_patient ON audit_log (patient_id, id);

-- Endpoints an operator (or a 410 Gone) switched off.
CREATE TABLE vcs_endpoints (
    vcs_id          TEXT PRIMARY KEY,
    disabled        BOOLEAN NOT NULL DEFAULT FALSE,
    disabled_reason TEXT,
    updated_at      TIMESTAMPTZ NOT NULL
);

-- Signing secrets; during a rotation the old one keeps signing until expires_at.
CREATE TABLE vcs_secrets (
    vcs_id     TEXT NOT NULL,
    secret     TEXT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL,
    expires_at TIMESTAMPTZ,
    PRIMARY KEY (vcs_id, secret)
);

-- Recover-since jobs: which messages they put back in the queue.
CREATE TABLE recovery_jobs (
    id         TEXT PRIMARY KEY,
    vcs_id     TEXT NOT NULL,
    since      TIMESTAMPTZ NOT NULL,
    created_at TIMESTAMPTZ NOT NULL
);
CREATE TABLE recovery_job_messages (
    job_id     TEXT NOT NULL REFERENCES recovery_jobs (id),
    message_id TEXT NOT NULL REFERENCES outbox (id),
    PRIMARY KEY (job_id, message_id)
);

-- VCS requests with an Idempotency-Key: a repeat gets the first answer.
CREATE TABLE idempotency_keys (
    owner        TEXT NOT NULL,
    key          TEXT NOT NULL,
    request_hash TEXT NOT NULL,
    status       INTEGER NOT NULL,
    body         TEXT NOT NULL,
    created_at   TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (owner, key)
);

-- FHIR rest-hook Subscriptions of GP systems.
CREATE TABLE subscriptions (
    id            TEXT PRIMARY KEY,
    client_id     TEXT NOT NULL,
    resource_type TEXT NOT NULL,
    criteria      TEXT NOT NULL,
    endpoint      TEXT NOT NULL,
    status        TEXT NOT NULL,
    content       TEXT NOT NULL,
    created_at    TIMESTAMPTZ NOT NULL
);
CREATE INDEX subscriptions_by_client ON subscriptions (client_id, resource_type, status);
