-- Bookings (advance reservations): a queued reservation may name the start its owner booked.
-- The scheduler places it at that time and never earlier; it is NULL for everything that starts
-- as soon as it can.
ALTER TABLE reservations ADD COLUMN start_at timestamptz;

-- The per-user cap on booked GPU-hours sums a user's waiting bookings at every booking submit.
CREATE INDEX reservations_queued_bookings ON reservations (user_id)
    WHERE status = 'queued' AND start_at IS NOT NULL;
