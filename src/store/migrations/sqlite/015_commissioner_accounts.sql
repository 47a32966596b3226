-- Commissioners sign in to the reports page: role `commissioner`, bound to a `[[commissioners]]`
-- id, with no organisation. SQLite cannot change a CHECK, so the table is rebuilt; dropping the
-- old one ends every session (their rows cascade), so people sign in once more after upgrading.
CREATE TABLE accounts_v15 (
    id              TEXT PRIMARY KEY,
    email           TEXT NOT NULL UNIQUE,
    role            TEXT NOT NULL CHECK (role IN ('staff', 'manager', 'operator', 'commissioner')),
    vcs_id          TEXT,
    commissioner_id TEXT,
    password_hash   TEXT NOT NULL,
    totp_secret     TEXT,
    disabled        INTEGER NOT NULL DEFAULT 0 CHECK (disabled IN (0, 1)),
    created_at      TEXT NOT NULL,
    CHECK ((role IN ('staff', 'manager')) = (vcs_id IS NOT NULL)),
    CHECK ((role = 'commissioner') = (commissioner_id IS NOT NULL))
) STRICT;
INSERT INTO accounts_v15 (id, email, role, vcs_id, password_hash, totp_secret, disabled, created_at)
    SELECT id, email, role, vcs_id, password_hash, totp_secret, disabled, created_at FROM accounts;
DROP TABLE accounts;
ALTER TABLE accounts_v15 RENAME TO accounts;
