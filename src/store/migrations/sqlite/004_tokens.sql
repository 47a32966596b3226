-- Access tokens issued by the token endpoint (SHA-256 digests only, never the token), and the
-- client assertion ids (`jti`) already used: kept in the database so that a restart, or another
-- replica, knows them too.
CREATE TABLE access_tokens (
    digest     TEXT PRIMARY KEY,
    client_id  TEXT NOT NULL,
    scopes     TEXT NOT NULL,
    expires_at TEXT NOT NULL
) STRICT;
CREATE INDEX access_tokens_by_expiry ON access_tokens (expires_at);

CREATE TABLE used_assertions (
    client_id  TEXT NOT NULL,
    jti        TEXT NOT NULL,
    expires_at TEXT NOT NULL,
    PRIMARY KEY (client_id, jti)
) STRICT;
CREATE INDEX used_assertions_by_expiry ON used_assertions (expires_at);
