-- Which users' jobs changed, for the API replicas that keep recent job pages and details in
-- memory. Every statement that writes reservations or their events records the owners it
-- touched, with its transaction id; each replica reads the rows that became visible since its
-- previous look (by comparing snapshots, so commit order never hides a change) and drops those
-- users' answers.
--
-- Not NOTIFY: a transaction that notifies holds a database-wide lock through its commit, WAL
-- flush included, which serialises every such commit (measured: ~8,000 → ~500 inserts/s).
-- Unlogged: after a crash the table is empty, but every replica has lost its connection by then
-- and starts again from an empty cache.

CREATE UNLOGGED TABLE job_changes (
    xid      xid8   NOT NULL DEFAULT pg_current_xact_id(),
    user_id  BIGINT NOT NULL
);
CREATE INDEX job_changes_xid ON job_changes (xid);

CREATE FUNCTION gpudev_record_job_change() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_TABLE_NAME = 'reservations' THEN
        INSERT INTO job_changes (user_id) SELECT DISTINCT c.user_id FROM changed c;
    ELSE
        INSERT INTO job_changes (user_id)
        SELECT DISTINCT r.user_id
        FROM changed c JOIN reservations r ON r.reservation_id = c.reservation_id;
    END IF;
    RETURN NULL;
END;
$$;

-- A trigger with a transition table may name one event only, hence one trigger per event.
CREATE TRIGGER reservations_job_change_insert
    AFTER INSERT ON reservations REFERENCING NEW TABLE AS changed
    FOR EACH STATEMENT EXECUTE FUNCTION gpudev_record_job_change();
CREATE TRIGGER reservations_job_change_update
    AFTER UPDATE ON reservations REFERENCING NEW TABLE AS changed
    FOR EACH STATEMENT EXECUTE FUNCTION gpudev_record_job_change();
CREATE TRIGGER reservations_job_change_delete
    AFTER DELETE ON reservations REFERENCING OLD TABLE AS changed
    FOR EACH STATEMENT EXECUTE FUNCTION gpudev_record_job_change();
CREATE TRIGGER reservation_events_job_change_insert
    AFTER INSERT ON reservation_events REFERENCING NEW TABLE AS changed
    FOR EACH STATEMENT EXECUTE FUNCTION gpudev_record_job_change();
CREATE TRIGGER reservation_events_job_change_update
    AFTER UPDATE ON reservation_events REFERENCING NEW TABLE AS changed
    FOR EACH STATEMENT EXECUTE FUNCTION gpudev_record_job_change();
CREATE TRIGGER reservation_events_job_change_delete
    AFTER DELETE ON reservation_events REFERENCING OLD TABLE AS changed
    FOR EACH STATEMENT EXECUTE FUNCTION gpudev_record_job_change();
