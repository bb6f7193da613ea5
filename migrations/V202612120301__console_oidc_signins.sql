-- The web console's OpenID Connect sign-ins in progress (docs/CONSOLE.md): one row from the
-- redirect to the identity provider until the browser comes back with a code, used once.
--
-- Nothing here is a usable secret: the `state` is kept as its SHA-256, the nonce too, and the
-- PKCE verifier not at all: it waits in the browser's cookie, so only the browser that started a
-- sign-in can finish it, and `code_challenge` (its S256 hash, as sent to the provider) is what
-- the cookie is checked against.
CREATE TABLE console_oidc_signins (
    state_hash     TEXT PRIMARY KEY CHECK (state_hash ~ '^[0-9a-f]{64}$'),
    issuer         TEXT NOT NULL,
    code_challenge TEXT NOT NULL CHECK (code_challenge ~ '^[A-Za-z0-9_-]{43}$'),
    nonce_hash     TEXT NOT NULL CHECK (nonce_hash ~ '^[0-9a-f]{64}$'),
    redirect_uri   TEXT NOT NULL,
    created_at     TIMESTAMPTZ NOT NULL DEFAULT now(),
    expires_at     TIMESTAMPTZ NOT NULL,
    used_at        TIMESTAMPTZ
);
CREATE INDEX console_oidc_signins_expiry ON console_oidc_signins (expires_at);
