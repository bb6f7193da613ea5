-- Rate limits shared by every API replica (ADR 13): one token bucket per limited thing (an API
-- key, a login identity at an address, an address). Replicas take tokens in small leases and give
-- back what they did not use, so together they admit no more than one bucket would.
--
-- The table is UNLOGGED: it costs no WAL and no fsync. After a crash of the server it is empty,
-- which means every bucket starts full again; a standby does not have it, so a failover does the
-- same. Both are acceptable for rate limits.
CREATE UNLOGGED TABLE rate_limit_buckets (
    scope      TEXT NOT NULL,
    key        TEXT NOT NULL,
    -- Tokens added per second, and the most the bucket holds (the limit's burst).
    rate       DOUBLE PRECISION NOT NULL CHECK (rate > 0),
    capacity   DOUBLE PRECISION NOT NULL CHECK (capacity >= 1),
    -- Tokens left at `updated_at`.
    tokens     DOUBLE PRECISION NOT NULL,
    -- What the latest take granted (read back by the statement that took them).
    granted    INTEGER NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (scope, key)
);

-- The tokens a bucket holds `seconds` after it held `tokens`.
CREATE FUNCTION gpudev_rate_limit_refill(tokens DOUBLE PRECISION, rate DOUBLE PRECISION,
                                  capacity DOUBLE PRECISION, seconds DOUBLE PRECISION)
    RETURNS DOUBLE PRECISION
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    RETURN least(capacity, tokens + rate * greatest(seconds, 0));
