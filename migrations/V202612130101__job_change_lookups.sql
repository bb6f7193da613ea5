-- Recording whose jobs changed must not read the whole reservations table. The owners of changed
-- reservation events are looked up through the primary key, and the function plans its
-- statements with sequential scans disabled: plpgsql plans a statement once per session, from the
-- table's size at that moment, and on a young database (a table of a few pages, not yet analysed)
-- that plan scanned the table, however large it grew, for every statement that wrote events.
-- The transition tables are read whole either way (they are not tables, and the setting does not
-- apply to them).
CREATE OR REPLACE FUNCTION gpudev_record_job_change() RETURNS trigger
LANGUAGE plpgsql
SET enable_seqscan = off
AS $$
BEGIN
    IF TG_TABLE_NAME = 'reservations' THEN
        INSERT INTO job_changes (user_id) SELECT DISTINCT c.user_id FROM changed c;
    ELSE
        INSERT INTO job_changes (user_id)
        SELECT DISTINCT r.user_id
        FROM (SELECT DISTINCT reservation_id FROM changed) c
        CROSS JOIN LATERAL (
            SELECT user_id FROM reservations WHERE reservation_id = c.reservation_id
        ) r;
    END IF;
    RETURN NULL;
END;
$$;
