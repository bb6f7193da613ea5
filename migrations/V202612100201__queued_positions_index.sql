-- A submit without a predicted position takes its place at the end of its type's queue: the
-- largest position held by a queued reservation of the type, plus one. This index answers that
-- in one descent, however long the queue (counting the queue instead cost a scan per submit).
CREATE INDEX reservations_queued_position ON reservations (gpu_type, queue_position)
    WHERE status = 'queued';
