//! Single use of presigned login requests: a signature is claimed once, and remembered until the
//! request it signs is too old to be accepted.

use chrono::{DateTime, Utc};

use crate::{Db, StoreError};

/// Claims the signature whose SHA-256 (hex) is `signature_hash`, remembered until `until`.
/// Returns false when it was claimed before: the request is a replay. Claims that have run out
/// are forgotten on the way, so the table holds at most the last window's logins.
pub async fn claim(
    db: &impl Db,
    signature_hash: &str,
    until: DateTime<Utc>,
) -> Result<bool, StoreError> {
    let row = db
        .query_one(
            "WITH gone AS (DELETE FROM used_login_signatures WHERE used_until < now()), \
             fresh AS (INSERT INTO used_login_signatures (signature_hash, used_until) \
               VALUES ($1, $2) ON CONFLICT (signature_hash) DO NOTHING RETURNING 1) \
             SELECT count(*) FROM fresh",
            &[&signature_hash, &until],
        )
        .await?;
    Ok(row.get::<_, i64>(0) == 1)
}
