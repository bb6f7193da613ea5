//! The original client's multi-node reservations (ADR 16): one submit per node, named
//! `<name> - Node i/N`, each for a whole node, stored as one reservation of N nodes that the
//! scheduler sees only once every member has arrived.

use gpudev_domain::{GROUP_WINDOW, GroupMember, ReservationRequest};
use gpudev_store::QueueMessage;
use gpudev_store::StoreError;
use gpudev_store::reservations::groups::{self, Joined};
use gpudev_store::reservations::{self, Checked, Checks, NewReservation, Submitted};
use uuid::Uuid;

use crate::audit::{self, Audit, RequestCtx};
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult, ErrorCode};
use crate::state::AppState;

pub use gpudev_api_types::jobs::JobSubmitResponse;

/// A request that is one node of a group: a single whole node of a type, named like a member.
pub(super) fn member_of(request: &ReservationRequest) -> Option<GroupMember> {
    let per_node = request.gpus_per_node();
    let whole_node =
        request.nodes() == 1 && per_node > 0 && per_node == request.gpu().gpus_per_node;
    if !whole_node {
        return None;
    }
    GroupMember::recognise(request.name()?.as_str())
}

/// Writes one member: the first one stores the group's reservation (all N nodes, quota checked
/// for the whole group) waiting for the others; each later one joins it; the last one makes it
/// schedulable. Answered with the member's own id, which the client polls.
pub(super) async fn submit_member(
    state: &AppState,
    new: NewReservation,
    member: &GroupMember,
    checks: Checks,
    caller: &Caller,
    ctx: &RequestCtx,
) -> ApiResult<JobSubmitResponse> {
    let member_id = new.reservation_id;
    let index = i32::try_from(member.index()).unwrap_or(i32::MAX);
    let size = i32::try_from(member.size()).unwrap_or(i32::MAX);
    let mut db = state.db().await?;
    let tx = db.transaction().await.map_err(StoreError::from)?;
    reservations::lock_user_submissions(&tx, caller.user_id).await?;
    if let Some((group, _)) = groups::member(&tx, member_id).await? {
        let r = reservations::get(&tx, group).await?;
        if r.user_id != caller.user_id {
            return Err(super::submit::id_taken(member_id));
        }
        return Ok(answer(
            member_id,
            &r,
            member,
            "already received; nothing new was queued",
        ));
    }
    let open = groups::open_group(
        &tx,
        caller.user_id,
        member.base(),
        new.gpu_type.as_str(),
        new.node_count,
    )
    .await?;
    let (r, note) = match open {
        None => {
            let created = reservations::submit_checked(&tx, &state.config.queue, &[(&new, checks)])
                .await?
                .pop()
                .ok_or_else(|| StoreError::Corrupt("a submit went unanswered".into()))?;
            let r = match created {
                Checked::Submitted(Submitted::Created { reservation, .. }) => *reservation,
                Checked::Submitted(Submitted::Existing(_)) | Checked::IdTaken(_) => {
                    return Err(super::submit::id_taken(member_id));
                }
                // A group member is never a booking (the submit refuses `start_at` for one).
                Checked::OverBookedHours { limit, booked } => {
                    return Err(super::submit::quota_exceeded(
                        crate::submit_writer::booked_hours_refusal(limit, booked),
                    ));
                }
                Checked::NoSshAccess => {
                    return Err(ApiError::invalid(
                        "github_user",
                        crate::submit_writer::NO_SSH_KEY,
                    ));
                }
                Checked::OverQuota(limit) => {
                    return Err(super::submit::quota_exceeded(format!(
                        "{} (the whole group of {size} nodes counts as one reservation)",
                        crate::submit_writer::refusal(limit)
                    )));
                }
            };
            groups::start_group(
                &tx,
                r.reservation_id,
                index,
                size - 1,
                GROUP_WINDOW.as_secs_f64(),
            )
            .await?;
            (
                r,
                format!(
                    "waiting for the other {} within {} s",
                    size - 1,
                    GROUP_WINDOW.as_secs()
                ),
            )
        }
        Some(group) => {
            let joined = groups::join_group(
                &tx,
                group.reservation_id,
                member_id,
                index,
                caller.username.as_str(),
            )
            .await?;
            let waiting_for = match joined {
                Joined::Joined { waiting_for } => waiting_for,
                Joined::IdTaken => return Err(super::submit::id_taken(member_id)),
                Joined::IndexTaken => {
                    return Err(ApiError::conflict(
                        ErrorCode::Conflict,
                        format!(
                            "node {} of {size} of group {:?} was already submitted as another \
                             job; each node is submitted once",
                            index + 1,
                            member.base()
                        ),
                    ));
                }
                Joined::Closed => {
                    return Err(ApiError::conflict(
                        ErrorCode::Conflict,
                        format!(
                            "group {:?} stopped waiting for members just now; submit the whole \
                             group again",
                            member.base()
                        ),
                    ));
                }
            };
            if waiting_for == 0 {
                // Complete: the scheduler's next pass sees it; the message wakes it.
                reservations::send_hint(
                    &tx,
                    &state.config.queue,
                    &group,
                    QueueMessage::Create,
                    serde_json::json!({ "group_complete": true }),
                )
                .await?;
            }
            let note = if waiting_for == 0 {
                "all nodes received; queued as one reservation".to_owned()
            } else {
                format!("waiting for {waiting_for} more")
            };
            (reservations::get(&tx, group.reservation_id).await?, note)
        }
    };
    audit::record(
        &tx,
        Some(caller),
        caller.username.as_str(),
        None,
        ctx,
        Audit {
            action: "reservation.submit",
            target_type: Some("reservation"),
            target_id: Some(r.reservation_id.to_string()),
            outcome: "success",
            details: Some(serde_json::json!({
                "group_member": member_id,
                "node_index": index,
                "group_size": size,
                "gpu_type": r.gpu_type,
                "gpu_count": r.gpu_count,
            })),
        },
    )
    .await?;
    tx.commit().await.map_err(StoreError::from)?;
    state.live_counts.changed();
    state
        .metrics
        .reservations_submitted
        .with_label_values(&[r.gpu_type.as_str()])
        .inc();
    Ok(answer(member_id, &r, member, &note))
}

fn answer(
    member_id: Uuid,
    r: &reservations::Reservation,
    member: &GroupMember,
    note: &str,
) -> JobSubmitResponse {
    JobSubmitResponse {
        job_id: member_id,
        status: r.status.as_str().to_owned(),
        message: format!(
            "Node {} of {} of {:?} {note}: the nodes are one reservation ({}), admitted together \
             or not at all",
            member.index() + 1,
            member.size(),
            member.base(),
            r.reservation_id
        ),
        queue_position: r.queue_position.map(i64::from),
        estimated_start_time: r.estimated_start_at,
    }
}
