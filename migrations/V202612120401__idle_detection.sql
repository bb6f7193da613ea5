-- Idle detection (ADR 18). Each dev box runs gpudev's agent, which reports every minute what is
-- going on in the box (SSH sessions, Jupyter connections, GPU use, uptime), authenticated by a
-- token the processor puts in the box's Secret; only the token's SHA-256 is stored here.
--
-- `reservation_activity` holds one row per reservation with an agent: the token's hash, the
-- latest report, and the idle countdown. `idle_since` is when the current idle stretch began
-- (NULL while the box is in use or its agent has not reported); a report with activity clears
-- it, and so does a gap in the reports (a silent agent never counts as idle).
-- `idle_warned_at` is set when the expiry job warned about the current stretch, and cleared
-- with it. `idle_seconds` adds up the idle time between consecutive idle reports, for the
-- usage report.
CREATE TABLE reservation_activity (
    reservation_id    UUID PRIMARY KEY REFERENCES reservations (reservation_id) ON DELETE CASCADE,
    agent_token_hash  TEXT NOT NULL UNIQUE CHECK (agent_token_hash ~ '^[0-9a-f]{64}$'),
    last_report_at    TIMESTAMPTZ,
    last_activity_at  TIMESTAMPTZ,
    idle_since        TIMESTAMPTZ,
    idle_warned_at    TIMESTAMPTZ,
    silent_noted_at   TIMESTAMPTZ,
    idle_seconds      FLOAT8 NOT NULL DEFAULT 0 CHECK (idle_seconds >= 0),
    report            JSONB
);
CREATE INDEX reservation_activity_idle ON reservation_activity (idle_since)
    WHERE idle_since IS NOT NULL;

-- The recent reports of each box (the expiry job keeps two hours of them).
CREATE TABLE activity_reports (
    reservation_id  UUID NOT NULL REFERENCES reservations (reservation_id) ON DELETE CASCADE,
    received_at     TIMESTAMPTZ NOT NULL DEFAULT clock_timestamp(),
    active          BOOLEAN NOT NULL,
    report          JSONB NOT NULL,
    PRIMARY KEY (reservation_id, received_at)
);
CREATE INDEX activity_reports_received ON activity_reports (received_at);

-- The idle limit the reservation asked for, in minutes (NULL: the IDLE_MINUTES setting; 0: never
-- end it as idle, which only admins may ask).
ALTER TABLE reservations ADD COLUMN idle_minutes INT CHECK (idle_minutes >= 0);

-- Job answers show the activity, so a change to it drops the owner's cached answers like a
-- change to the reservation does.
CREATE TRIGGER reservation_activity_job_change_insert
    AFTER INSERT ON reservation_activity REFERENCING NEW TABLE AS changed
    FOR EACH STATEMENT EXECUTE FUNCTION gpudev_record_job_change();
CREATE TRIGGER reservation_activity_job_change_update
    AFTER UPDATE ON reservation_activity REFERENCING NEW TABLE AS changed
    FOR EACH STATEMENT EXECUTE FUNCTION gpudev_record_job_change();
