//! A reservation's environment values and start command, kept apart from the row, sealed
//! ([`crate::sealing`]), never returned by the API, and deleted when the reservation ends.

use std::collections::BTreeMap;

use uuid::Uuid;

use crate::sealing::SealedSecrets;
use crate::{Db, StoreError};

/// A reservation's row of `reservation_secrets`, as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoredSecrets {
    /// Encrypted (every row written since secrets are sealed): only a key can open it.
    Sealed(SealedSecrets),
    /// Plain environment values, written before secrets were sealed. Such a reservation's
    /// command, if any, is the plain `reservations.command`.
    Plain(BTreeMap<String, String>),
}

/// The stored secrets of reservation `id` (for the processor to open and put into a Kubernetes
/// Secret); `None` when it has none.
pub async fn stored_secrets(db: &impl Db, id: Uuid) -> Result<Option<StoredSecrets>, StoreError> {
    let row = db
        .query_opt(
            "SELECT env, key_id, data_key, sealed FROM reservation_secrets \
             WHERE reservation_id = $1",
            &[&id],
        )
        .await?;
    let Some(row) = row else {
        return Ok(None);
    };
    let sealed: Option<Vec<u8>> = row.get("sealed");
    let key_id: Option<String> = row.get("key_id");
    let data_key: Option<Vec<u8>> = row.get("data_key");
    let env: Option<serde_json::Value> = row.get("env");
    match (sealed, key_id, data_key, env) {
        (Some(sealed), Some(key_id), Some(data_key), None) => {
            Ok(Some(StoredSecrets::Sealed(SealedSecrets {
                key_id,
                data_key,
                sealed,
            })))
        }
        (None, None, None, Some(env)) => serde_json::from_value(env)
            .map(|env| Some(StoredSecrets::Plain(env)))
            .map_err(|e| StoreError::Corrupt(format!("reservation secrets: {e}"))),
        _ => Err(StoreError::Corrupt(
            "reservation secrets: neither sealed nor plain".into(),
        )),
    }
}

/// Forgets a reservation's secrets once it has ended: its sealed (or plain) row, and the plain
/// command of a reservation submitted before commands were sealed.
pub async fn delete_secret_env(db: &impl Db, id: Uuid) -> Result<bool, StoreError> {
    let row = db
        .query_one(
            "WITH gone AS (DELETE FROM reservation_secrets WHERE reservation_id = $1 \
               RETURNING 1), \
             plain AS (UPDATE reservations SET command = NULL \
               WHERE reservation_id = $1 AND command IS NOT NULL RETURNING 1) \
             SELECT (SELECT count(*) FROM gone) + (SELECT count(*) FROM plain)",
            &[&id],
        )
        .await?;
    Ok(row.get::<_, i64>(0) > 0)
}
