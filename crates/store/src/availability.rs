//! What the availability job reads from the database besides the GPU type rows: the queue.

use std::collections::BTreeMap;

use crate::gpu_types::{self, Availability};
use crate::{Db, StoreError};

/// What is waiting in the queue for one GPU type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Queued {
    /// Queued reservations.
    pub reservations: i64,
    /// GPUs they ask for in total.
    pub gpus: i64,
}

/// Queued reservations and their GPUs, per GPU type (types with nothing queued are absent).
pub async fn queued_by_type(db: &impl Db) -> Result<BTreeMap<String, Queued>, StoreError> {
    let rows = db
        .query(
            "SELECT gpu_type, count(*), coalesce(sum(gpu_count), 0)::bigint FROM reservations \
             WHERE status = 'queued' GROUP BY gpu_type",
            &[],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| {
            (
                r.get(0),
                Queued {
                    reservations: r.get(1),
                    gpus: r.get(2),
                },
            )
        })
        .collect())
}

/// Writes the availability of every given type in one transaction, so readers never see half
/// an update; returns the types that have no row (nothing is written for them).
pub async fn write_all(
    client: &mut tokio_postgres::Client,
    rows: &[(String, Availability)],
    writer: &str,
) -> Result<Vec<String>, StoreError> {
    let tx = client.transaction().await?;
    let mut unknown = Vec::new();
    for (gpu_type, availability) in rows {
        if !gpu_types::write_availability(&tx, gpu_type, availability, writer).await? {
            unknown.push(gpu_type.clone());
        }
    }
    tx.commit().await?;
    Ok(unknown)
}
