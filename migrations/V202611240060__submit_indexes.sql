-- Indexes for the submit path, so its cost does not grow with the queue or with a user's history.

-- The live index gains the scheduling order (priority first, then submission). Its leading columns
-- are unchanged, so it serves every query it served before; in addition one GPU type's queue is
-- now a range of it in queue order, from which submit's first estimate of a queue position counts
-- a bounded number of the reservations ahead without touching the rest. One index rather than two
-- also leaves the planner no cheaper-looking way to read that range out of order.
DROP INDEX reservations_live;
CREATE INDEX reservations_live ON reservations (status, gpu_type, priority DESC, created_at, reservation_id)
    INCLUDE (gpu_count) WHERE status IN ('queued', 'preparing', 'active');

-- Quotas: a user's live reservations and their GPUs from the index alone, however many ended
-- reservations the user has.
CREATE INDEX reservations_user_live ON reservations (user_id) INCLUDE (gpu_count)
    WHERE status IN ('queued', 'preparing', 'active');
