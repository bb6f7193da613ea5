-- The honest queue (ADR 5): what the scheduler keeps for each reservation from pass to pass.
--
-- queue_tag: its fair-share tag, given by the first pass that sees it and kept while it runs
--   (it counts toward its owner's share until it ends).
-- promised_start_at / promised_nodes: the start and nodes it was promised while queued; later
--   passes put the promise back exactly as made.
-- first_estimated_start_at: the first estimate it was given, so users can see how it changed.
ALTER TABLE reservations
    ADD COLUMN queue_tag                DOUBLE PRECISION,
    ADD COLUMN promised_start_at        TIMESTAMPTZ,
    ADD COLUMN promised_nodes           TEXT[],
    ADD COLUMN first_estimated_start_at TIMESTAMPTZ,
    ADD CONSTRAINT reservations_promise_whole
        CHECK ((promised_start_at IS NULL) = (promised_nodes IS NULL));

-- Each GPU type's fair-share virtual time: it only moves forward.
CREATE TABLE scheduler_clocks (
    gpu_type      TEXT PRIMARY KEY,
    virtual_time  DOUBLE PRECISION NOT NULL CHECK (virtual_time >= 0),
    updated_at    TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- 'estimate': a promise made, or moved and why.
ALTER TABLE reservation_events DROP CONSTRAINT reservation_events_kind_check;
ALTER TABLE reservation_events ADD CONSTRAINT reservation_events_kind_check
    CHECK (kind IN ('transition', 'warning', 'extend', 'note', 'estimate'));
