//! Finding the job a path names: a full id, or a unique prefix of at least 8 characters.

use gpudev_store::Db;
use gpudev_store::reservations::{self, Reservation};
use uuid::Uuid;

use crate::auth::Caller;
use crate::error::{ApiError, ApiResult, ErrorCode};

/// Shortest id prefix accepted.
pub const MIN_PREFIX_LEN: usize = 8;

/// Whose jobs a lookup may find.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Visibility {
    /// Only the caller's own (every action).
    Own,
    /// Admins see every job, users their own (reads).
    AdminSeesAll,
}

/// Whether `caller` may see a job owned by `owner` in a lookup of this kind.
pub fn may_see(caller: &Caller, owner: i64, visibility: Visibility) -> bool {
    owner == caller.user_id || (visibility == Visibility::AdminSeesAll && caller.is_admin())
}

/// 404 in the original's words. The echoed id is cut short.
pub fn not_found(raw: &str) -> ApiError {
    let shown: String = raw.chars().take(64).collect();
    ApiError::NotFound(format!("Job {shown} not found"))
}

/// The job `raw` names, if the caller may see it; 404 otherwise (another user's job looks exactly
/// like a missing one), 409 when a prefix matches more than one job.
pub async fn find_job(
    db: &impl Db,
    caller: &Caller,
    raw: &str,
    visibility: Visibility,
) -> ApiResult<Reservation> {
    let raw = raw.trim();
    let sees_all = visibility == Visibility::AdminSeesAll && caller.is_admin();
    if let Ok(id) = Uuid::parse_str(raw) {
        let found = match reservations::find(db, id).await? {
            Some(r) => Some(r),
            None => match group_of(db, id).await? {
                Some(group) => reservations::find(db, group).await?,
                None => None,
            },
        };
        return match found {
            Some(r) if may_see(caller, r.user_id, visibility) => Ok(r),
            _ => Err(not_found(raw)),
        };
    }
    if raw.len() < MIN_PREFIX_LEN {
        let shown: String = raw.chars().take(64).collect();
        return Err(ApiError::NotFound(format!(
            "Job {shown} not found (give the full id or at least {MIN_PREFIX_LEN} characters of it)"
        )));
    }
    let owner = if sees_all { None } else { Some(caller.user_id) };
    let mut matches = reservations::find_by_prefix(db, raw, owner, 2).await?;
    match matches.len() {
        0 => Err(not_found(raw)),
        1 => Ok(matches.remove(0)),
        _ => Err(ApiError::conflict(
            ErrorCode::AmbiguousJobId,
            format!(
                "Job id prefix {raw} matches more than one job; give more characters or the full id"
            ),
        )),
    }
}

/// The reservation that `id` is a member of, when `id` is one node of the original client's
/// multi-node reservation (ADR 16): each node's id answers for the whole group.
pub(crate) async fn group_of(db: &impl Db, id: Uuid) -> ApiResult<Option<Uuid>> {
    Ok(gpudev_store::reservations::groups::member(db, id)
        .await?
        .map(|(group, _)| group))
}
