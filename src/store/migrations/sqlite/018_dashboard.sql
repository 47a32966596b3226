-- The operator pages' figures.
--
-- Intake refusals per day, GP client and rule broken (the issue's message id): counts only, no
-- patient data and nothing from the refused body. One submission breaking two rules counts once
-- under each.
CREATE TABLE intake_refusals (
    day        TEXT NOT NULL,
    client_id  TEXT NOT NULL,
    message_id TEXT NOT NULL,
    refusals   INTEGER NOT NULL,
    PRIMARY KEY (day, client_id, message_id)
) STRICT;

-- Each VCS webhook's health, kept by every delivery attempt: the last success, the last failure
-- and its error, and how many attempts have failed since the last success.
CREATE TABLE endpoint_health (
    vcs_id          TEXT PRIMARY KEY,
    last_success_at TEXT,
    last_failure_at TEXT,
    last_error      TEXT,
    failure_streak  INTEGER NOT NULL DEFAULT 0
) STRICT;

-- The last success of each webhook before this table existed.
INSERT INTO endpoint_health (vcs_id, last_success_at)
SELECT vcs_id, MAX(delivered_at) FROM outbox
WHERE target_kind = 'vcs' AND delivered_at IS NOT NULL
GROUP BY vcs_id;
