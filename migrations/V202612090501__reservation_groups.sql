-- Multi-node reservations of the original client (ADR 16). Its `reserve --distributed` sends one
-- single-node submit per node, named "<name> - Node i/N"; gpudev stores them as one reservation
-- of N nodes. The first member to arrive creates it, waiting for the others until
-- `group_deadline`; the scheduler does not see it while `group_waiting_for` is above zero. Every
-- member's own id (the one the client polls) is kept in `reservation_group_members`.
ALTER TABLE reservations
    ADD COLUMN group_waiting_for INTEGER NOT NULL DEFAULT 0 CHECK (group_waiting_for >= 0),
    ADD COLUMN group_deadline    TIMESTAMPTZ,
    ADD CONSTRAINT reservations_group_deadline
        CHECK (group_waiting_for = 0 OR group_deadline IS NOT NULL);

CREATE TABLE reservation_group_members (
    member_id      UUID PRIMARY KEY,
    reservation_id UUID NOT NULL REFERENCES reservations (reservation_id) ON DELETE CASCADE,
    -- 0-based: "Node 1/N" is 0.
    node_index     INTEGER NOT NULL CHECK (node_index >= 0),
    joined_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
    UNIQUE (reservation_id, node_index)
);

-- Groups still waiting for members, for the expiry job's deadline check.
CREATE INDEX reservations_assembling ON reservations (group_deadline)
    WHERE group_waiting_for > 0;
