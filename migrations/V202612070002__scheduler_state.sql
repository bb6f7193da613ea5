-- The queue as the scheduler's last pass left it (ADR 5): the API answers a submit with the
-- scheduler's own code over this state. One row, replaced by the leader when the state
-- changes; `generation` lets readers skip reloading an unchanged state.
CREATE TABLE scheduler_state (
    id          BOOLEAN PRIMARY KEY DEFAULT true CHECK (id),
    generation  BIGINT NOT NULL,
    taken_at    TIMESTAMPTZ NOT NULL,
    state       JSONB NOT NULL
);
