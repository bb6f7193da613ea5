-- A batch of submits records whose jobs changed in its own statement, once per owner, instead of
-- the two insert triggers (reservations, then their events) each calling plpgsql to record the
-- same owners: those two calls were about a quarter of a lone submit's statement. The submit
-- transaction says so with a transaction-local setting; every other writer leaves it unset and
-- the triggers record its changes as before.
DROP TRIGGER reservations_job_change_insert ON reservations;
CREATE TRIGGER reservations_job_change_insert
    AFTER INSERT ON reservations REFERENCING NEW TABLE AS changed
    FOR EACH STATEMENT
    WHEN (current_setting('gpudev.job_changes_recorded', true) IS DISTINCT FROM 'on')
    EXECUTE FUNCTION gpudev_record_job_change();
DROP TRIGGER reservation_events_job_change_insert ON reservation_events;
CREATE TRIGGER reservation_events_job_change_insert
    AFTER INSERT ON reservation_events REFERENCING NEW TABLE AS changed
    FOR EACH STATEMENT
    WHEN (current_setting('gpudev.job_changes_recorded', true) IS DISTINCT FROM 'on')
    EXECUTE FUNCTION gpudev_record_job_change();
