-- How long dev boxes take to start (ADR 5): estimates show when a queued reservation's box is
-- expected to be ready, its start plus the recent median start-up time of its GPU type.
ALTER TABLE reservations ADD COLUMN estimated_ready_at TIMESTAMPTZ;
-- The recent launches of a type, newest first, for that median.
CREATE INDEX reservations_launched ON reservations (gpu_type, launched_at DESC)
    WHERE launched_at IS NOT NULL AND admitted_at IS NOT NULL;
