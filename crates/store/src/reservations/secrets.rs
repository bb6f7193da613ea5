//! A reservation's environment values, kept apart from the row and never returned by the API.

use std::collections::BTreeMap;

use uuid::Uuid;

use crate::{Db, StoreError};

/// The environment values of a reservation (for the processor to put into a Kubernetes Secret).
pub async fn secret_env(db: &impl Db, id: Uuid) -> Result<BTreeMap<String, String>, StoreError> {
    let row = db
        .query_opt(
            "SELECT env FROM reservation_secrets WHERE reservation_id = $1",
            &[&id],
        )
        .await?;
    match row {
        None => Ok(BTreeMap::new()),
        Some(r) => serde_json::from_value(r.get(0))
            .map_err(|e| StoreError::Corrupt(format!("reservation secrets: {e}"))),
    }
}

/// Forgets the environment values once a reservation has ended.
pub async fn delete_secret_env(db: &impl Db, id: Uuid) -> Result<bool, StoreError> {
    Ok(db
        .execute(
            "DELETE FROM reservation_secrets WHERE reservation_id = $1",
            &[&id],
        )
        .await?
        == 1)
}
