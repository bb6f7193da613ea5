-- Presigned STS logins are single-use: the SHA-256 of each accepted request's signature is kept
-- until the request is too old to be accepted anyway, so the same signed request cannot be
-- replayed for a second key, on any replica.
CREATE TABLE used_login_signatures (
    signature_hash  TEXT PRIMARY KEY CHECK (signature_hash ~ '^[0-9a-f]{64}$'),
    used_until      TIMESTAMPTZ NOT NULL,
    used_at         TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX used_login_signatures_until ON used_login_signatures (used_until);
