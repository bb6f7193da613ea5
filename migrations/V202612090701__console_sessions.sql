-- The web console's sign-ins (docs/CONSOLE.md). Both secrets are kept only as SHA-256 hashes.
--
-- A one-time link is made for a user by `gpu-dev console` (with an API key) and works once,
-- within its short lifetime. A session is what a browser holds after signing in: it ends at its
-- expiry, at sign-out, when its user is disabled, or when the API key that asked for its link is
-- revoked — all checked whenever it is used.
CREATE TABLE console_links (
    token_hash  TEXT PRIMARY KEY CHECK (token_hash ~ '^[0-9a-f]{64}$'),
    user_id     BIGINT NOT NULL REFERENCES users (user_id) ON DELETE CASCADE,
    key_id      BIGINT NOT NULL REFERENCES api_keys (key_id) ON DELETE CASCADE,
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    expires_at  TIMESTAMPTZ NOT NULL,
    used_at     TIMESTAMPTZ
);
CREATE INDEX console_links_expiry ON console_links (expires_at);

CREATE TABLE console_sessions (
    session_hash TEXT PRIMARY KEY CHECK (session_hash ~ '^[0-9a-f]{64}$'),
    user_id      BIGINT NOT NULL REFERENCES users (user_id) ON DELETE CASCADE,
    -- The API key whose link made it (NULL for a sign-in without one, such as OIDC).
    key_id       BIGINT REFERENCES api_keys (key_id) ON DELETE CASCADE,
    -- Sent back with every form, compared with this.
    csrf_token   TEXT NOT NULL,
    created_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    expires_at   TIMESTAMPTZ NOT NULL,
    ended_at     TIMESTAMPTZ
);
CREATE INDEX console_sessions_user ON console_sessions (user_id) WHERE ended_at IS NULL;
