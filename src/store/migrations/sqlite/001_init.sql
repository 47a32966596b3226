-- Referrals as accepted, with what was received byte for byte and the record the VCS receives.
CREATE TABLE referrals (
    id                    TEXT PRIMARY KEY,
    client_id             TEXT NOT NULL,
    vcs_id                TEXT NOT NULL,
    patient_id            TEXT NOT NULL,
    status                TEXT NOT NULL,
    record                TEXT NOT NULL,
    received_content_type TEXT NOT NULL,
    received_body         BLOB NOT NULL,
    created_at            TEXT NOT NULL
) STRICT;
CREATE INDEX referrals_by_client ON referrals (client_id, created_at, id);
CREATE INDEX referrals_by_patient ON referrals (client_id, patient_id);

-- The GP systems' identifiers: a unique key per client, so a retried create can never make two.
CREATE TABLE referral_identifiers (
    client_id   TEXT NOT NULL,
    system      TEXT NOT NULL,
    value       TEXT NOT NULL,
    referral_id TEXT NOT NULL REFERENCES referrals (id),
    PRIMARY KEY (client_id, system, value)
) STRICT;
CREATE INDEX referral_identifiers_by_value ON referral_identifiers (client_id, value);

-- BaRS: a message id is processed once.
CREATE TABLE processed_messages (
    client_id   TEXT NOT NULL,
    message_id  TEXT NOT NULL,
    referral_id TEXT NOT NULL REFERENCES referrals (id),
    received_at TEXT NOT NULL,
    PRIMARY KEY (client_id, message_id)
) STRICT;

-- Normalised FHIR resources, every version kept.
CREATE TABLE resources (
    resource_type TEXT NOT NULL,
    id            TEXT NOT NULL,
    version_id    INTEGER NOT NULL,
    client_id     TEXT NOT NULL,
    referral_id   TEXT NOT NULL,
    last_updated  TEXT NOT NULL,
    content       TEXT NOT NULL,
    PRIMARY KEY (resource_type, id, version_id)
) STRICT;

-- Outward messages, written in the same transaction as the change they announce.
CREATE TABLE outbox (
    id              TEXT PRIMARY KEY,
    referral_id     TEXT NOT NULL,
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
    UNIQUE (referral_id, sequence)
) STRICT;
CREATE INDEX outbox_due ON outbox (state, next_attempt_at);

-- Who did what to which referral; our ids only, never patient details.
CREATE TABLE audit_log (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    recorded_at    TEXT NOT NULL,
    actor          TEXT NOT NULL,
    action         TEXT NOT NULL,
    resource_type  TEXT,
    resource_id    TEXT,
    patient_id     TEXT,
    outcome        TEXT NOT NULL,
    correlation_id TEXT
) STRICT;
