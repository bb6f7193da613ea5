//! Bookings: a submit's `start_at` (ADR 19). The booked start is checked against the server's
//! limits, then against the scheduler itself: its own pass over the queue its last pass
//! published, with the bookings read as they stand now, must promise the new booking exactly
//! that start, or the submit is refused with the earliest start it would promise instead.

use std::sync::Arc;

use chrono::{DateTime, SecondsFormat, Utc};
use gpudev_domain::ReservationStatus;
use gpudev_domain::{Pending, Prediction, QueueState, ReservationKey};
use gpudev_runtime::shared::BookingLimits;
use gpudev_store::reservations::{NewReservation, Reservation};
use gpudev_store::scheduling;

use crate::error::{ApiError, ApiResult, ErrorCode};
use crate::state::AppState;

/// The booked start of a submit's `start_at` (whole seconds), or `None` without one: a time in
/// RFC 3339 form, in the future, at most `MAX_BOOKING_DAYS` ahead.
pub(crate) fn booked_start(
    raw: Option<&str>,
    limits: BookingLimits,
    now: DateTime<Utc>,
) -> ApiResult<Option<DateTime<Utc>>> {
    let Some(raw) = raw else {
        return Ok(None);
    };
    if limits.max_days == 0 {
        return Err(ApiError::invalid(
            "start_at",
            "this server takes no bookings (MAX_BOOKING_DAYS is 0); omit start_at to start as \
             soon as possible",
        ));
    }
    let at = DateTime::parse_from_rfc3339(raw.trim())
        .map_err(|e| {
            ApiError::invalid(
                "start_at",
                format!(
                    "start_at must be a time in RFC 3339 form such as 2026-12-08T09:00:00+01:00 \
                     ({e})"
                ),
            )
        })?
        .with_timezone(&Utc);
    let at = DateTime::from_timestamp(at.timestamp(), 0).unwrap_or(at);
    if at <= now {
        return Err(ApiError::invalid(
            "start_at",
            format!(
                "start_at {} is not in the future; omit it to start as soon as possible",
                rfc3339(at)
            ),
        ));
    }
    let latest = now + chrono::Duration::days(i64::from(limits.max_days));
    if at > latest {
        return Err(ApiError::invalid(
            "start_at",
            format!(
                "start_at {} is more than {} days ahead (MAX_BOOKING_DAYS); book no later than {}",
                rfc3339(at),
                limits.max_days,
                rfc3339(latest)
            ),
        ));
    }
    Ok(Some(at))
}

/// Where booking `new` will stand — its position, and its start, `start_at` — when the
/// scheduler would promise it `start_at`; otherwise 409 `booking_unavailable` with the earliest
/// start it would promise (503 before the scheduler's first pass: nothing can be promised yet).
pub(super) async fn honoured_standing(
    state: &AppState,
    new: &NewReservation,
    start_at: DateTime<Utc>,
) -> ApiResult<(Option<i32>, Option<DateTime<Utc>>)> {
    let (published, bookings) = booking_state(state).await?;
    let now = Utc::now();
    let prediction = state
        .queue
        .predict_booking(published, bookings, new, now)
        .await;
    let asked = start_at.timestamp();
    let what = format!(
        "{} {} GPUs for {} h from {}",
        new.gpu_count,
        new.gpu_type,
        new.duration_hours,
        rfc3339(start_at)
    );
    match prediction {
        Prediction::StartsNow => Ok((Some(1), Some(start_at))),
        Prediction::Waits {
            position,
            estimated_start: Some(t),
            ..
        } if t <= asked => Ok((i32::try_from(position).ok(), Some(start_at))),
        Prediction::Waits {
            estimated_start: Some(t),
            ..
        } => {
            let earliest = DateTime::from_timestamp(t, 0);
            Err(ApiError::BookingUnavailable {
                detail: format!(
                    "{what} cannot be booked: that capacity is taken then by work already \
                     running, promised or booked; the earliest start that can be booked is {}",
                    earliest.map_or_else(|| t.to_string(), rfc3339)
                ),
                earliest_start: earliest,
            })
        }
        Prediction::Waits {
            estimated_start: None,
            ..
        } => Err(ApiError::BookingUnavailable {
            detail: format!(
                "{what} cannot be booked: no start can be promised for it now (the capacity it \
                 needs is held by work with no known end, or too few nodes are ready)"
            ),
            earliest_start: None,
        }),
        Prediction::Impossible(reason) => Err(ApiError::BookingUnavailable {
            detail: format!("{what} cannot be booked: it can never run as asked: {reason}"),
            earliest_start: None,
        }),
    }
}

/// Refuses (409 `conflicts_with_booking`) extending `r` by `hours` when that would make a
/// booking start later than it would otherwise: a running reservation holding its GPUs into a
/// booking's time, or a queued one growing into it. Checked over the scheduler's last published
/// state with the bookings as they stand now; before the scheduler's first pass nothing is
/// booked.
pub(crate) async fn extension_keeps_bookings(
    state: &AppState,
    r: &Reservation,
    hours: f64,
) -> ApiResult<()> {
    if r.status.is_terminal() {
        return Ok(());
    }
    let Some(published) = state.queue.current(&state.pool).await? else {
        return Ok(());
    };
    let rows = {
        let db = state.db().await?;
        scheduling::queued_bookings(&*db).await?
    };
    if rows.iter().all(|b| b.reservation_id == r.reservation_id) {
        return Ok(());
    }
    let bookings = rows
        .iter()
        .filter_map(|row| row.pending(&state.config.catalog).ok())
        .collect();
    let extra = (hours * 3600.0).round() as i64;
    let (id, user, gpu_type) = (r.reservation_id, r.username.clone(), r.gpu_type.clone());
    let mut nodes = r.node_names.clone();
    nodes.sort();
    let queued = r.status == ReservationStatus::Queued;
    let change = move |s: &mut QueueState<ReservationKey>| {
        let mut found = false;
        if queued {
            for p in s.queue.iter_mut().filter(|p| p.reservation_id.id == id) {
                p.duration_secs = p.duration_secs.saturating_add(extra);
                found = true;
            }
        } else {
            for running in s.running.iter_mut() {
                let mut on = running.node_names.clone();
                on.sort();
                if running.user == user && running.gpu_type == gpu_type && on == nodes {
                    running.expires_at = running.expires_at.saturating_add(extra);
                    found = true;
                }
            }
        }
        found
    };
    let delayed = state
        .queue
        .bookings_delayed(published, bookings, change)
        .await
        .ok_or_else(|| ApiError::Unavailable("the server is stopping".into()))?;
    let Some(first) = delayed.iter().map(|(_, start)| *start).min() else {
        return Ok(());
    };
    let when = DateTime::from_timestamp(first, 0).map_or_else(|| first.to_string(), rfc3339);
    Err(ApiError::conflict(
        ErrorCode::ConflictsWithBooking,
        format!(
            "extending by {hours} h would run into a booking of the same GPUs that starts at \
             {when}; extend it by less, so that it ends (its GPUs released) before then"
        ),
    ))
}

/// The scheduler's published state and the bookings waiting now, which replace the state's
/// own (503 before the scheduler's first pass: nothing can be promised yet).
pub(crate) async fn booking_state(
    state: &AppState,
) -> ApiResult<(
    Arc<QueueState<ReservationKey>>,
    Vec<Pending<ReservationKey>>,
)> {
    let Some(published) = state.queue.current(&state.pool).await? else {
        return Err(ApiError::Unavailable(
            "bookings can be checked once the scheduler has made its first pass; try again \
             shortly"
                .into(),
        ));
    };
    let rows = {
        let db = state.db().await?;
        scheduling::queued_bookings(&*db).await?
    };
    let bookings = rows
        .iter()
        .filter_map(|row| row.pending(&state.config.catalog).ok())
        .collect();
    Ok((published, bookings))
}

pub(crate) fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: BookingLimits = BookingLimits {
        max_days: 14,
        max_gpu_hours_per_user: None,
    };

    fn now() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-12-07T10:00:00Z")
            .unwrap()
            .with_timezone(&Utc)
    }

    fn detail(e: ApiError) -> String {
        match e {
            ApiError::Unprocessable { field, detail } => {
                assert_eq!(field.as_deref(), Some("start_at"));
                detail
            }
            other => panic!("not a 422: {other:?}"),
        }
    }

    #[test]
    fn a_start_with_an_offset_is_read_in_utc_to_the_second() {
        let at = booked_start(Some("2026-12-08T09:00:00.750+01:00"), LIMITS, now()).unwrap();
        assert_eq!(at.map(rfc3339).as_deref(), Some("2026-12-08T08:00:00Z"));
        assert_eq!(booked_start(None, LIMITS, now()).unwrap(), None);
    }

    #[test]
    fn a_malformed_past_or_too_distant_start_is_refused_naming_start_at() {
        assert!(
            detail(booked_start(Some("tomorrow 9am"), LIMITS, now()).unwrap_err())
                .contains("RFC 3339")
        );
        assert!(
            detail(booked_start(Some("2026-12-07T09:59:59Z"), LIMITS, now()).unwrap_err())
                .contains("not in the future")
        );
        assert!(
            detail(booked_start(Some("2026-12-21T10:00:01Z"), LIMITS, now()).unwrap_err())
                .contains("more than 14 days ahead")
        );
        assert!(booked_start(Some("2026-12-21T10:00:00Z"), LIMITS, now()).is_ok());
    }

    #[test]
    fn a_server_without_bookings_refuses_start_at() {
        let off = BookingLimits {
            max_days: 0,
            ..LIMITS
        };
        assert!(
            detail(booked_start(Some("2026-12-08T09:00:00Z"), off, now()).unwrap_err())
                .contains("MAX_BOOKING_DAYS is 0")
        );
    }
}
