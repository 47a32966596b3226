-- An Idempotency-Key names one request of one caller on one referral: the same key on another
-- referral is another request. Keys stored before carry their referral in the answer they keep
-- (every VCS write answers with its `referral_id`).
CREATE TABLE idempotency_keys_scoped (
    owner        TEXT NOT NULL,
    referral_id  TEXT NOT NULL,
    key          TEXT NOT NULL,
    request_hash TEXT NOT NULL,
    status       INTEGER NOT NULL,
    body         TEXT NOT NULL,
    created_at   TEXT NOT NULL,
    PRIMARY KEY (owner, referral_id, key)
) STRICT;
INSERT INTO idempotency_keys_scoped
    SELECT owner,
           COALESCE(CASE WHEN json_valid(body) THEN json_extract(body, '$.referral_id') END, ''),
           key, request_hash, status, body, created_at
    FROM idempotency_keys;
DROP TABLE idempotency_keys;
ALTER TABLE idempotency_keys_scoped RENAME TO idempotency_keys;
