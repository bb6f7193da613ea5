-- Every accepted extension of a reservation (ADR 15): what was asked, by whom, with which
-- Idempotency-Key, and what it answered. A repeat of a key (per user and reservation) within
-- 24 hours is answered from its row instead of extending again.
--
-- An extension asked by a client that does not identify itself as gpudev's (the original
-- client) books its hours at once but moves the reservation's `expires_at` only once `due_at`
-- has passed, when the processor applies it (`applied_at`): that client compares the end it
-- sees on its first poll with later ones.

CREATE TABLE extend_requests (
    request_id       BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    reservation_id   UUID NOT NULL REFERENCES reservations (reservation_id) ON DELETE CASCADE,
    user_id          BIGINT NOT NULL REFERENCES users (user_id) ON DELETE CASCADE,
    idempotency_key  TEXT CHECK (length(idempotency_key) BETWEEN 1 AND 255),
    request_hash     TEXT,
    extension_hours  FLOAT8 NOT NULL CHECK (extension_hours > 0),
    -- What the request answered: the end it gives (null while the reservation has not started)
    -- and when that takes effect (`now`, `shortly` or `at_start`).
    expires_at       TIMESTAMPTZ,
    applies          TEXT NOT NULL CHECK (applies IN ('now', 'shortly', 'at_start')),
    requested_at     TIMESTAMPTZ NOT NULL DEFAULT now(),
    due_at           TIMESTAMPTZ NOT NULL DEFAULT now(),
    applied_at       TIMESTAMPTZ
);

CREATE UNIQUE INDEX extend_requests_key
    ON extend_requests (user_id, reservation_id, idempotency_key)
    WHERE idempotency_key IS NOT NULL;
CREATE INDEX extend_requests_due ON extend_requests (due_at) WHERE applied_at IS NULL;
CREATE INDEX extend_requests_reservation ON extend_requests (reservation_id);
