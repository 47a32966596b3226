-- People who sign in to the web inbox: members of a VCS organisation (staff or manager) and
-- operators (no organisation). Passwords are Argon2id PHC strings, never the password; the TOTP
-- secret is base32, present when the account signs in with a code.
CREATE TABLE accounts (
    id            TEXT PRIMARY KEY,
    email         TEXT NOT NULL UNIQUE,
    role          TEXT NOT NULL CHECK (role IN ('staff', 'manager', 'operator')),
    vcs_id        TEXT,
    password_hash TEXT NOT NULL,
    totp_secret   TEXT,
    disabled      BOOLEAN NOT NULL DEFAULT FALSE,
    created_at    TIMESTAMPTZ NOT NULL,
    CHECK ((role = 'operator') = (vcs_id IS NULL))
);

-- Signed-in sessions, shared by every replica: the SHA-256 digest of the cookie's token (never
-- the token), the account, the form token (CSRF) and when the session was last used.
CREATE TABLE sessions (
    digest       TEXT PRIMARY KEY,
    account_id   TEXT NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    csrf_token   TEXT NOT NULL,
    created_at   TIMESTAMPTZ NOT NULL,
    last_seen_at TIMESTAMPTZ NOT NULL
);
CREATE INDEX sessions_by_account ON sessions (account_id);
CREATE INDEX sessions_by_last_seen ON sessions (last_seen_at);
