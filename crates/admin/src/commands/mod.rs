//! One module per command group.

use gpudev_store::{DbConfig, Pool, Queue};

use crate::Format;

pub(crate) mod keys;
pub(crate) mod migrate;
pub(crate) mod queue;
pub(crate) mod users;

/// What every command needs besides its own arguments.
pub(crate) struct Ctx {
    pub format: Format,
    pub queue: Queue,
}

/// A pool of one connection: the tool runs one statement at a time.
pub(crate) async fn connect(cfg: &DbConfig) -> anyhow::Result<Pool> {
    let mut cfg = cfg.clone();
    cfg.pool_size = 1;
    Ok(gpudev_store::connect_pool(&cfg).await?)
}
