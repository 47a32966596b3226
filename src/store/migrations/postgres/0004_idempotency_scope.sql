-- An Idempotency-Key names one request of one caller on one referral: the same key on another
-- referral is another request. Keys stored before carry their referral in the answer they keep
-- (every VCS write answers with its `referral_id`).
ALTER TABLE idempotency_keys ADD COLUMN referral_id TEXT NOT NULL DEFAULT '';
UPDATE idempotency_keys SET referral_id = COALESCE(body::jsonb ->> 'referral_id', '');
ALTER TABLE idempotency_keys ALTER COLUMN referral_id DROP DEFAULT;
ALTER TABLE idempotency_keys DROP CONSTRAINT idempotency_keys_pkey;
ALTER TABLE idempotency_keys ADD PRIMARY KEY (owner, referral_id, key);
