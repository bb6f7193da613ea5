//! What dev box agents report, and the idle countdown (ADR 18): `reservation_activity` (one row
//! per reservation with an agent token) and `activity_reports` (the recent reports).
//!
//! Every change is one guarded statement: a report counts only for an active reservation whose
//! agent token it carries; a warning is claimed once per idle stretch; keeping a box alive
//! starts a new stretch.

use chrono::{DateTime, Utc};
use gpudev_domain::{GpuType, Username};
use serde_json::Value;
use tokio_postgres::Row;
use uuid::Uuid;

use crate::{Db, StoreError, columns};

/// Records the SHA-256 (hex) of the agent token a reservation's dev box was given. Returns
/// whether the stored hash changed.
pub async fn set_agent_token(
    db: &impl Db,
    reservation_id: Uuid,
    token_hash: &str,
) -> Result<bool, StoreError> {
    let n = db
        .execute(
            "INSERT INTO reservation_activity (reservation_id, agent_token_hash) VALUES ($1, $2) \
             ON CONFLICT (reservation_id) DO UPDATE SET agent_token_hash = excluded.agent_token_hash \
             WHERE reservation_activity.agent_token_hash <> excluded.agent_token_hash",
            &[&reservation_id, &token_hash],
        )
        .await?;
    Ok(n > 0)
}

/// What a recorded report changed.
#[derive(Debug, Clone, PartialEq)]
pub struct Recorded {
    /// The reservation the token belongs to.
    pub reservation_id: Uuid,
    /// Its owner.
    pub user_id: i64,
    /// Since when the box has been idle (none while in use).
    pub idle_since: Option<DateTime<Utc>>,
    /// The idle limit the reservation asked for (none: the platform's).
    pub idle_minutes: Option<i32>,
    /// Whether this report ended an idle stretch the user had been warned about.
    pub countdown_cancelled: bool,
}

/// Records a report for the active reservation whose agent token hashes to `token_hash`, in one
/// statement: the latest report, the idle stretch (started by an idle report after activity or
/// after a gap longer than `gap_secs`, ended by an active one), the idle time between
/// consecutive idle reports, a row of history, and — when an active report ends a warned
/// stretch — an event saying the countdown stopped. `None` when no active reservation has that
/// token.
pub async fn record_report(
    db: &impl Db,
    token_hash: &str,
    active: bool,
    report: &Value,
    gap_secs: f64,
) -> Result<Option<Recorded>, StoreError> {
    let row = db
        .query_opt(
            "WITH old AS ( \
               SELECT a.reservation_id, a.last_report_at, a.idle_since, a.idle_warned_at, \
                 r.idle_minutes, r.user_id, \
                 (a.last_report_at IS NOT NULL \
                    AND a.last_report_at >= now() - make_interval(secs => $4)) AS continuous \
               FROM reservation_activity a JOIN reservations r USING (reservation_id) \
               WHERE a.agent_token_hash = $1 AND r.status = 'active' \
               FOR UPDATE OF a), \
             upd AS ( \
               UPDATE reservation_activity t SET \
                 last_report_at = now(), report = $3, \
                 last_activity_at = CASE WHEN $2 THEN now() ELSE t.last_activity_at END, \
                 idle_since = CASE WHEN $2 THEN NULL \
                                   WHEN old.continuous AND old.idle_since IS NOT NULL THEN old.idle_since \
                                   ELSE now() END, \
                 idle_warned_at = CASE WHEN NOT $2 AND old.continuous THEN old.idle_warned_at END, \
                 silent_noted_at = NULL, \
                 idle_seconds = t.idle_seconds + CASE \
                   WHEN NOT $2 AND old.continuous AND old.idle_since IS NOT NULL \
                   THEN extract(epoch FROM now() - old.last_report_at)::float8 ELSE 0 END \
               FROM old WHERE t.reservation_id = old.reservation_id \
               RETURNING t.reservation_id, t.idle_since, old.idle_minutes, old.user_id, \
                 ($2 AND old.idle_warned_at IS NOT NULL) AS cancelled), \
             hist AS ( \
               INSERT INTO activity_reports (reservation_id, active, report) \
               SELECT reservation_id, $2, $3 FROM upd), \
             ev AS ( \
               INSERT INTO reservation_events (reservation_id, kind, reason, actor, details) \
               SELECT reservation_id, 'note', 'in use again: the idle countdown stopped', 'agent', \
                 jsonb_build_object('idle', 'cancelled') \
               FROM upd WHERE cancelled) \
             SELECT reservation_id, idle_since, idle_minutes, cancelled, user_id FROM upd",
            &[&token_hash, &active, report, &gap_secs],
        )
        .await?;
    Ok(row.map(|r| Recorded {
        reservation_id: r.get(0),
        idle_since: r.get(1),
        idle_minutes: r.get(2),
        countdown_cancelled: r.get(3),
        user_id: r.get(4),
    }))
}

/// Keeps an active reservation's box alive: its idle stretch (if any) starts again now and any
/// warning about it is withdrawn, with an event by `actor`; with `idle_minutes`, the
/// reservation's idle limit becomes that. False when the reservation is not active or has no
/// agent yet (nothing is changed then).
pub async fn keep_alive(
    db: &impl Db,
    reservation_id: Uuid,
    actor: &str,
    idle_minutes: Option<i32>,
) -> Result<bool, StoreError> {
    let row = db
        .query_opt(
            "WITH upd AS ( \
               UPDATE reservation_activity a SET \
                 idle_since = CASE WHEN a.idle_since IS NULL THEN NULL ELSE now() END, \
                 idle_warned_at = NULL, last_activity_at = now() \
               FROM reservations r \
               WHERE a.reservation_id = $1 AND r.reservation_id = a.reservation_id \
                 AND r.status = 'active' \
               RETURNING a.reservation_id), \
             lim AS ( \
               UPDATE reservations r SET idle_minutes = $3 FROM upd \
               WHERE r.reservation_id = upd.reservation_id AND $3::int IS NOT NULL), \
             ev AS ( \
               INSERT INTO reservation_events (reservation_id, kind, reason, actor, details) \
               SELECT reservation_id, 'note', 'kept alive: the idle countdown starts again', $2, \
                 jsonb_build_object('idle', 'kept_alive', 'idle_minutes', $3::int) \
               FROM upd) \
             SELECT reservation_id FROM upd",
            &[&reservation_id, &actor, &idle_minutes],
        )
        .await?;
    Ok(row.is_some())
}

/// A reservation's activity as job answers show it.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[allow(
    missing_docs,
    reason = "fields whose names say what they hold go undocumented"
)]
pub struct Activity {
    pub last_report_at: Option<DateTime<Utc>>,
    pub last_activity_at: Option<DateTime<Utc>>,
    pub idle_since: Option<DateTime<Utc>>,
    pub idle_warned_at: Option<DateTime<Utc>>,
}

/// Reads the `activity` column of a row (`reservations::model`'s events column) (none when the statement has no such column or
/// the reservation no agent).
pub(crate) fn activity_from_row(r: &Row) -> Result<Option<Activity>, StoreError> {
    type Raw = (
        Option<DateTime<Utc>>,
        Option<DateTime<Utc>>,
        Option<DateTime<Utc>>,
        Option<DateTime<Utc>>,
    );
    let Ok(raw) = r.try_get::<_, Option<tokio_postgres::types::Json<Raw>>>("activity") else {
        return Ok(None);
    };
    Ok(raw.map(|j| {
        let (last_report_at, last_activity_at, idle_since, idle_warned_at) = j.0;
        Activity {
            last_report_at,
            last_activity_at,
            idle_since,
            idle_warned_at,
        }
    }))
}

/// An active reservation whose box is idle now.
#[derive(Debug, Clone, PartialEq)]
#[allow(
    missing_docs,
    reason = "fields whose names say what they hold go undocumented"
)]
pub struct IdleBox {
    pub reservation_id: Uuid,
    pub username: Username,
    pub name: Option<String>,
    pub gpu_type: GpuType,
    /// The idle limit it asked for (none: the platform's).
    pub idle_minutes: Option<i32>,
    pub idle_since: DateTime<Utc>,
    /// Seconds it has been idle (database clock).
    pub idle_seconds: f64,
    /// When its user was warned about this stretch.
    pub idle_warned_at: Option<DateTime<Utc>>,
    /// Seconds since that warning.
    pub seconds_since_warning: Option<f64>,
}

/// Active reservations idle now whose agent reported within `fresh_secs` (a silent agent's box
/// is never released for being idle).
pub async fn idle_boxes(db: &impl Db, fresh_secs: f64) -> Result<Vec<IdleBox>, StoreError> {
    let rows = db
        .query(
            "SELECT r.reservation_id, u.username, r.name, r.gpu_type, r.idle_minutes, a.idle_since, \
               extract(epoch FROM now() - a.idle_since)::float8, a.idle_warned_at, \
               extract(epoch FROM now() - a.idle_warned_at)::float8 \
             FROM reservation_activity a JOIN reservations r USING (reservation_id) \
             JOIN users u ON u.user_id = r.user_id \
             WHERE a.idle_since IS NOT NULL AND r.status = 'active' \
               AND a.last_report_at >= now() - make_interval(secs => $1) \
             ORDER BY a.idle_since, r.reservation_id",
            &[&fresh_secs],
        )
        .await?;
    rows.iter()
        .map(|r| {
            Ok(IdleBox {
                reservation_id: r.get(0),
                username: columns::parsed(r, "user", "username", Username::parse)?,
                name: r.get(2),
                gpu_type: columns::parsed(r, "reservation", "gpu_type", GpuType::parse)?,
                idle_minutes: r.get(4),
                idle_since: r.get(5),
                idle_seconds: r.get(6),
                idle_warned_at: r.get(7),
                seconds_since_warning: r.get(8),
            })
        })
        .collect()
}

/// Claims the warning for the idle stretch that began at `idle_since`, once: sets
/// `idle_warned_at` and records a `warning` event saying when the box will be released. `None`
/// when the stretch ended, was already warned about, or the reservation is no longer active.
pub async fn claim_idle_warning(
    db: &impl Db,
    reservation_id: Uuid,
    idle_since: DateTime<Utc>,
    release_in_secs: f64,
    actor: &str,
) -> Result<Option<DateTime<Utc>>, StoreError> {
    let row = db
        .query_opt(
            "WITH upd AS ( \
               UPDATE reservation_activity a SET idle_warned_at = now() \
               FROM reservations r \
               WHERE a.reservation_id = $1 AND a.idle_since = $2 AND a.idle_warned_at IS NULL \
                 AND r.reservation_id = a.reservation_id AND r.status = 'active' \
               RETURNING a.reservation_id, now() + make_interval(secs => $3) AS release_at, \
                 ceil($3 / 60)::bigint AS minutes), \
             ev AS ( \
               INSERT INTO reservation_events (reservation_id, kind, reason, actor, details) \
               SELECT reservation_id, 'warning', \
                 'idle: released in ' || minutes || ' minute' || CASE WHEN minutes = 1 THEN '' ELSE 's' END \
                 || ' unless used', $4, \
                 jsonb_build_object('level', 'idle', 'minutes_left', minutes, 'release_at', release_at) \
               FROM upd) \
             SELECT release_at FROM upd",
            &[&reservation_id, &idle_since, &release_in_secs, &actor],
        )
        .await?;
    Ok(row.map(|r| r.get(0)))
}

/// Whether the reservation is still idle enough to release: active, idle since at least
/// `idle_secs` ago, warned at least `warned_secs` ago about this stretch, and its agent
/// reported within `fresh_secs`.
pub async fn still_idle(
    db: &impl Db,
    reservation_id: Uuid,
    idle_secs: f64,
    warned_secs: f64,
    fresh_secs: f64,
) -> Result<bool, StoreError> {
    let row = db
        .query_opt(
            "SELECT 1 FROM reservation_activity a JOIN reservations r USING (reservation_id) \
             WHERE a.reservation_id = $1 AND r.status = 'active' \
               AND a.idle_since <= now() - make_interval(secs => $2) \
               AND a.idle_warned_at <= now() - make_interval(secs => $3) \
               AND a.last_report_at >= now() - make_interval(secs => $4)",
            &[&reservation_id, &idle_secs, &warned_secs, &fresh_secs],
        )
        .await?;
    Ok(row.is_some())
}

/// Active reservations whose agent has a token but has not reported for `$1` seconds (or
/// never, that long after the reservation became active).
const SILENT: &str = "SELECT a.reservation_id, a.silent_noted_at, a.last_report_at \
    FROM reservation_activity a JOIN reservations r USING (reservation_id) \
    WHERE r.status = 'active' \
      AND coalesce(a.last_report_at, r.launched_at) < now() - make_interval(secs => $1)";

/// How many active reservations' agents are silent now (see [`note_silent_agents`]).
pub async fn count_silent(db: &impl Db, silent_secs: f64) -> Result<i64, StoreError> {
    let row = db
        .query_one(
            &format!("SELECT count(*) FROM ({SILENT}) s"),
            &[&silent_secs],
        )
        .await?;
    Ok(row.get(0))
}

/// Notes, once per silence, every active reservation whose agent has a token but has not
/// reported for `silent_secs` (or never, `silent_secs` after it became active): a `note` event
/// each. Returns how many are silent now (noted before or now).
pub async fn note_silent_agents(
    db: &impl Db,
    silent_secs: f64,
    actor: &str,
) -> Result<(u64, u64), StoreError> {
    let row = db
        .query_one(
            &format!(
                "WITH silent AS ({SILENT}), \
             noted AS ( \
               UPDATE reservation_activity a SET silent_noted_at = now() FROM silent s \
               WHERE a.reservation_id = s.reservation_id AND s.silent_noted_at IS NULL \
               RETURNING a.reservation_id, a.last_report_at), \
             ev AS ( \
               INSERT INTO reservation_events (reservation_id, kind, reason, actor, details) \
               SELECT reservation_id, 'note', \
                 CASE WHEN last_report_at IS NULL THEN 'the dev box agent has not reported: idle detection is paused' \
                      ELSE 'the dev box agent stopped reporting: idle detection is paused' END, \
                 $2, jsonb_build_object('agent', 'silent', 'last_report_at', last_report_at) \
               FROM noted) \
             SELECT (SELECT count(*) FROM silent), (SELECT count(*) FROM noted)"
            ),
            &[&silent_secs, &actor],
        )
        .await?;
    let silent: i64 = row.get(0);
    let noted: i64 = row.get(1);
    Ok((
        u64::try_from(silent).unwrap_or(0),
        u64::try_from(noted).unwrap_or(0),
    ))
}

/// Deletes reports older than `keep_secs`; returns how many.
pub async fn purge_reports(db: &impl Db, keep_secs: f64) -> Result<u64, StoreError> {
    Ok(db
        .execute(
            "DELETE FROM activity_reports WHERE received_at < now() - make_interval(secs => $1)",
            &[&keep_secs],
        )
        .await?)
}
