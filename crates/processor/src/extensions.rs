//! Deferred extensions (ADR 15): an extension asked by the original client books its hours at
//! once, and its reservation's end moves once it is due, here, on the leader's periodic tick.

use gpudev_store::reservations;
use uuid::Uuid;

use crate::error::Result;
use crate::processor::{Fenced, Processor};

impl Processor {
    /// Moves the end of every active reservation whose deferred extensions are due, in one
    /// statement on the leader's session. Returns the reservations whose end moved. Only the
    /// leader may.
    #[tracing::instrument(skip_all)]
    pub async fn apply_due_extensions(&self) -> Result<Vec<Uuid>> {
        let leader = self.leader()?;
        let client = leader.lock().await?;
        let moved = reservations::apply_due_extensions(&*client)
            .await
            .fenced(&leader)?;
        if !moved.is_empty() {
            tracing::info!(reservations = moved.len(), "deferred extensions applied");
        }
        Ok(moved)
    }
}
