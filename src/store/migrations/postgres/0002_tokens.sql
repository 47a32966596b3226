-- Access tokens issued by the token endpoint (SHA-256 digests only, never the token), and the
-- client assertion ids (`jti`) already used: shared, so a token issued by one replica is accepted
-- by every replica, and an assertion replayed against another replica is still refused.
CREATE TABLE access_tokens (
    digest     TEXT PRIMARY KEY,
    client_id  TEXT NOT NULL,
    scopes     TEXT NOT NULL,
    expires_at TIMESTAMPTZ NOT NULL
);
CREATE INDEX access_tokens_by_expiry ON access_tokens (expires_at);

CREATE TABLE used_assertions (
    client_id  TEXT NOT NULL,
    jti        TEXT NOT NULL,
    expires_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (client_id, jti)
);
CREATE INDEX used_assertions_by_expiry ON used_assertions (expires_at);
