//! What a reservation is in the database: the row to insert, the row read back (parsed once,
//! here), its events, and the column lists the queries share.

use chrono::{DateTime, Utc};
use gpudev_domain::{
    DiskName, DisplayName, GithubUser, GpuType, ImageError, ImageRef, ReservationStatus, Username,
};
use serde::Serialize;
use serde_json::Value;
use tokio_postgres::Row;
use uuid::Uuid;

use crate::sealing::SealedSecrets;
use crate::{StoreError, columns};

/// A reservation to create, built from a checked request: every value already obeys its rule.
#[derive(Debug, Clone, PartialEq)]
pub struct NewReservation {
    /// Chosen by the server, or proposed by the client (`RESERVATION_ID`).
    pub reservation_id: Uuid,
    /// The owner's id.
    pub user_id: i64,
    /// The owner's name (copied into the queue message for logs, and the creation event's actor).
    pub username: Username,
    /// The name the owner gave the reservation, if any.
    pub name: Option<DisplayName>,
    /// A type of the catalog.
    pub gpu_type: GpuType,
    /// GPUs in total, across nodes.
    pub gpu_count: i32,
    /// Whole nodes (1 unless multinode).
    pub node_count: i32,
    /// Requested length, before any extension.
    pub duration_hours: f64,
    /// The image asked for, or the platform's default.
    pub image: ImageRef,
    /// Names of the environment variables given (their values are in `secrets`).
    pub env_names: Vec<String>,
    /// Persistent disk to mount as home.
    pub disk_name: Option<DiskName>,
    /// Start Jupyter.
    pub jupyter_enabled: bool,
    /// GitHub login whose public keys are installed.
    pub github_user: Option<GithubUser>,
    /// Scheduling priority, -100..=100.
    pub priority: i32,
    /// Client-chosen key that makes retries of the same submit return the first result.
    pub idempotency_key: Option<String>,
    /// Version of the submitting CLI.
    pub cli_version: Option<String>,
    /// SHA-256 (hex) of the canonical request body, to tell a retry from a different request.
    pub request_hash: Option<String>,
    /// The environment values and the start command, sealed for this reservation id (see
    /// [`crate::sealing`]); `None` when there are neither.
    pub secrets: Option<SealedSecrets>,
    /// Size of the persistent disk when it has to be created (10–10000 GB).
    pub disk_size_gb: Option<i32>,
    /// Where the submit expects it to stand in its GPU type's queue (1-based), from the
    /// scheduler's own prediction. `None` stores its place by arrival instead: one behind every
    /// reservation of its type already queued. Either way it has a position from the moment it
    /// is stored; the scheduler's next pass replaces it.
    pub queue_position: Option<i32>,
    /// The start the same prediction expects, if it has one.
    pub estimated_start_at: Option<DateTime<Utc>>,
    /// For a booking, the start its owner booked; `None` to start as soon as it can.
    pub start_at: Option<DateTime<Utc>>,
}

/// A stored reservation.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[allow(
    missing_docs,
    reason = "fields whose names say what they hold go undocumented"
)]
pub struct Reservation {
    pub reservation_id: Uuid,
    /// Owner's id.
    pub user_id: i64,
    /// Owner's name.
    pub username: Username,
    /// Where it is in its life.
    pub status: ReservationStatus,
    /// Human-readable progress ("waiting for 4 h100 GPUs", "pulling image").
    pub detailed_status: Option<String>,
    /// Why it failed or was cancelled.
    pub failure_reason: Option<String>,
    /// The name its owner gave it.
    pub name: Option<DisplayName>,
    pub gpu_type: GpuType,
    /// GPUs in total.
    pub gpu_count: i32,
    pub node_count: i32,
    /// Requested duration.
    pub duration_hours: f64,
    /// Hours added by extensions.
    pub extended_hours: f64,
    /// Container image; `None` when the row has none (blank), meaning the platform's default.
    pub image: Option<ImageRef>,
    /// Names (never values) of the environment variables given.
    pub env_names: Vec<String>,
    /// Persistent disk mounted as home.
    pub disk_name: Option<DiskName>,
    /// Whether Jupyter runs in the dev box.
    pub jupyter_enabled: bool,
    /// GitHub login whose public keys are installed.
    pub github_user: Option<GithubUser>,
    /// Other GitHub users given SSH access.
    pub secondary_users: Vec<GithubUser>,
    /// Scheduling priority.
    pub priority: i32,
    /// Client's idempotency key.
    pub idempotency_key: Option<String>,
    pub cli_version: Option<String>,
    /// 1-based position in its queue while queued.
    pub queue_position: Option<i32>,
    /// Estimated start while queued.
    pub estimated_start_at: Option<DateTime<Utc>>,
    /// The start it is promised while queued (then equal to `estimated_start_at`).
    pub promised_start_at: Option<DateTime<Utc>>,
    /// The first estimate it was given (its admission time if it never waited).
    pub first_estimated_start_at: Option<DateTime<Utc>>,
    /// While queued: when its dev box is expected to be ready (the estimated start plus its
    /// type's recent median start-up time).
    pub estimated_ready_at: Option<DateTime<Utc>>,
    /// Node instance type once placed.
    pub instance_type: Option<String>,
    /// Kubernetes namespace of its pod.
    pub namespace: Option<String>,
    pub pod_name: Option<String>,
    /// Nodes it was placed on.
    pub node_names: Vec<String>,
    /// Address users SSH to.
    pub node_ip: Option<String>,
    /// Port users SSH to.
    pub node_port: Option<i32>,
    /// Ready-made SSH command.
    pub ssh_command: Option<String>,
    pub jupyter_url: Option<String>,
    /// Expiry warnings already sent (levels such as `30m`).
    pub warnings_sent: Vec<String>,
    /// Submission time.
    pub created_at: DateTime<Utc>,
    /// Last change.
    pub updated_at: DateTime<Utc>,
    /// When it was admitted (entered `preparing`).
    pub admitted_at: Option<DateTime<Utc>>,
    /// When it became active.
    pub launched_at: Option<DateTime<Utc>>,
    /// When it ends unless extended.
    pub expires_at: Option<DateTime<Utc>>,
    /// When it reached a terminal state.
    pub ended_at: Option<DateTime<Utc>>,
    /// SHA-256 (hex) of the canonical request body it was submitted with.
    pub request_hash: Option<String>,
    /// Token of its Jupyter server (for its owner).
    pub jupyter_token: Option<String>,
    /// The plain start command of a reservation submitted before commands were sealed (cleared
    /// when it ends); `None` for every newer one, whose command is sealed with its secrets.
    pub command: Option<String>,
    /// Size of the persistent disk when it has to be created.
    pub disk_size_gb: Option<i32>,
    /// The idle limit it asked for, in minutes (none: the platform's; 0: never).
    pub idle_minutes: Option<i32>,
    /// What its dev box's agent reported (read with its history only; none otherwise, and
    /// before the box has an agent).
    pub activity: Option<crate::activity::Activity>,
    /// For a booking, the start its owner booked.
    pub start_at: Option<DateTime<Utc>>,
}

pub(super) const COLUMNS: &str = "r.reservation_id, r.user_id, u.username, r.status, r.detailed_status, \
    r.failure_reason, r.name, r.gpu_type, r.gpu_count, r.node_count, r.duration_hours, \
    r.extended_hours, r.image, r.env_names, r.disk_name, r.jupyter_enabled, r.github_user, \
    r.secondary_users, r.priority, r.idempotency_key, r.cli_version, r.queue_position, \
    r.estimated_start_at, r.promised_start_at, r.first_estimated_start_at, r.estimated_ready_at, r.instance_type, r.namespace, r.pod_name, r.node_names, r.node_ip, \
    r.node_port, r.ssh_command, r.jupyter_url, r.warnings_sent, r.created_at, r.updated_at, \
    r.admitted_at, r.launched_at, r.expires_at, r.ended_at, r.request_hash, r.jupyter_token, \
    r.command, r.disk_size_gb, r.idle_minutes, r.start_at";

/// Column `name` of a reservation row, parsed by `parse`.
fn column<T, E: std::fmt::Display>(
    row: &Row,
    name: &str,
    parse: impl FnOnce(&str) -> Result<T, E>,
) -> Result<T, StoreError> {
    columns::parsed(row, "reservation", name, parse)
}

/// [`column`] for a column that may be NULL.
fn optional<T, E: std::fmt::Display>(
    row: &Row,
    name: &str,
    parse: impl FnOnce(&str) -> Result<T, E>,
) -> Result<Option<T>, StoreError> {
    columns::parsed_opt(row, "reservation", name, parse)
}

/// A blank image is the platform's default (the driver's rule since the first release).
fn image(raw: &str) -> Result<Option<ImageRef>, ImageError> {
    if raw.trim().is_empty() {
        Ok(None)
    } else {
        ImageRef::parse(raw).map(Some)
    }
}

/// Parses a reservation row once: its status, owner, GPU type, name, image, disk and GitHub
/// logins become domain values, so no reader parses them again.
pub(super) fn from_row(r: &Row) -> Result<Reservation, StoreError> {
    Ok(Reservation {
        reservation_id: r.get("reservation_id"),
        user_id: r.get("user_id"),
        username: column(r, "username", Username::parse)?,
        status: column(r, "status", str::parse::<ReservationStatus>)?,
        detailed_status: r.get("detailed_status"),
        failure_reason: r.get("failure_reason"),
        name: optional(r, "name", DisplayName::parse)?,
        gpu_type: column(r, "gpu_type", GpuType::parse)?,
        gpu_count: r.get("gpu_count"),
        node_count: r.get("node_count"),
        duration_hours: r.get("duration_hours"),
        extended_hours: r.get("extended_hours"),
        image: column(r, "image", image)?,
        env_names: r.get("env_names"),
        disk_name: optional(r, "disk_name", DiskName::parse)?,
        jupyter_enabled: r.get("jupyter_enabled"),
        github_user: optional(r, "github_user", GithubUser::parse)?,
        secondary_users: columns::parsed_vec(
            r,
            "reservation",
            "secondary_users",
            GithubUser::parse,
        )?,
        priority: r.get("priority"),
        idempotency_key: r.get("idempotency_key"),
        cli_version: r.get("cli_version"),
        queue_position: r.get("queue_position"),
        estimated_start_at: r.get("estimated_start_at"),
        promised_start_at: r.get("promised_start_at"),
        first_estimated_start_at: r.get("first_estimated_start_at"),
        estimated_ready_at: r.get("estimated_ready_at"),
        instance_type: r.get("instance_type"),
        namespace: r.get("namespace"),
        pod_name: r.get("pod_name"),
        node_names: r.get("node_names"),
        node_ip: r.get("node_ip"),
        node_port: r.get("node_port"),
        ssh_command: r.get("ssh_command"),
        jupyter_url: r.get("jupyter_url"),
        warnings_sent: r.get("warnings_sent"),
        created_at: r.get("created_at"),
        updated_at: r.get("updated_at"),
        admitted_at: r.get("admitted_at"),
        launched_at: r.get("launched_at"),
        expires_at: r.get("expires_at"),
        ended_at: r.get("ended_at"),
        request_hash: r.get("request_hash"),
        jupyter_token: r.get("jupyter_token"),
        command: r.get("command"),
        disk_size_gb: r.get("disk_size_gb"),
        idle_minutes: r.get("idle_minutes"),
        activity: crate::activity::activity_from_row(r)?,
        start_at: r.get("start_at"),
    })
}

/// One entry in a reservation's history.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Event {
    /// Order of events.
    pub event_id: i64,
    /// `transition`, `warning`, `extend` or `note`.
    pub kind: String,
    /// Status before (transitions; none for creation).
    pub from_status: Option<String>,
    /// Status after (transitions).
    pub to_status: Option<String>,
    /// Why it happened (a failure or cancellation reason, a warning's text).
    pub reason: Option<String>,
    /// Who made it happen: `processor`, `expiry`, or a username.
    pub actor: String,
    /// Facts of the event (an extension's hours, the Jupyter switch, the GitHub login added, …).
    pub details: Value,
    /// When it was recorded.
    pub created_at: DateTime<Utc>,
}

/// One event as `json_build_array` writes it in [`list_rows`].
pub(super) type EventJson = (
    i64,
    String,
    Option<String>,
    Option<String>,
    Option<String>,
    String,
    Value,
    DateTime<Utc>,
);

/// The history in the `events` column of a [`list_with_events`] row.
pub(super) fn events_from_json(r: &Row) -> Result<Vec<Event>, StoreError> {
    let events: Option<tokio_postgres::types::Json<Vec<EventJson>>> = r
        .try_get("events")
        .map_err(|e| StoreError::Corrupt(format!("reservation events: {e}")))?;
    Ok(events
        .map(|j| j.0)
        .unwrap_or_default()
        .into_iter()
        .map(
            |(event_id, kind, from_status, to_status, reason, actor, details, created_at)| Event {
                event_id,
                kind,
                from_status,
                to_status,
                reason,
                actor,
                details,
                created_at,
            },
        )
        .collect())
}

/// A reservation's agent's activity as a column `activity`, for a statement over
/// `reservations r`: one lookup per row, evaluated only for the rows returned.
macro_rules! activity_json {
    () => {
        "(SELECT json_build_array(a.last_report_at, a.last_activity_at, a.idle_since, \
        a.idle_warned_at) FROM reservation_activity a WHERE a.reservation_id = r.reservation_id) \
        AS activity"
    };
}

/// [`activity_json`]'s column on its own.
pub(super) const ACTIVITY_JSON: &str = activity_json!();

/// A reservation's history as one JSON array column `events` (oldest first), and its agent's
/// activity as a column `activity`, for a statement over `reservations r`: one aggregate per
/// row, evaluated only for the rows returned.
pub(super) const EVENTS_JSON: &str = concat!(
    "(SELECT json_agg(json_build_array(e.event_id, e.kind, e.from_status, \
    e.to_status, e.reason, e.actor, e.details, e.created_at) ORDER BY e.event_id) \
    FROM reservation_events e WHERE e.reservation_id = r.reservation_id) AS events, ",
    activity_json!()
);
