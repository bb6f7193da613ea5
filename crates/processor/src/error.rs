//! The processor's errors, sorted by what the caller should do about them.

use gpudev_cluster::ops::OpsError;
use gpudev_store::StoreError;

/// Why a step of the processor failed.
#[derive(Debug, thiserror::Error)]
pub enum ProcessorError {
    /// This processor does not hold the leader lock: it must not schedule or write.
    #[error("this processor is not the leader")]
    NotLeader,
    /// The leader lock's session ended (killed, timed out, or the database went away): every
    /// write from here on is refused until leadership is won again.
    #[error("leadership lost: {0}")]
    LostLeadership(String),
    /// The database failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Kubernetes failed.
    #[error(transparent)]
    Kube(#[from] OpsError),
    /// A reservation cannot be started as stored, whatever is retried (bad image, no SSH keys,
    /// a name clash…). The reservation is failed with this reason.
    #[error("{0}")]
    Permanent(String),
    /// Something that may work on a later attempt (GitHub keys unreachable, an object not yet
    /// visible).
    #[error("{0}")]
    Transient(String),
    /// The dev box has no SSH key yet because GitHub could not be asked; the next attempt
    /// should come no later than `retry_within`, the time left before the reservation gives up.
    #[error("{detail}")]
    NoKeysYet {
        /// What went wrong, per GitHub login.
        detail: String,
        /// Time left until the keys deadline.
        retry_within: std::time::Duration,
    },
}

impl ProcessorError {
    /// True when retrying later may help (the message stays in the queue).
    pub fn is_transient(&self) -> bool {
        match self {
            Self::NotLeader
            | Self::LostLeadership(_)
            | Self::Transient(_)
            | Self::NoKeysYet { .. } => true,
            Self::Store(e) => !matches!(e, StoreError::Corrupt(_)),
            Self::Kube(e) => e.is_transient(),
            Self::Permanent(_) => false,
        }
    }

    /// The longest the next attempt should wait, when the error sets one.
    pub fn retry_within(&self) -> Option<std::time::Duration> {
        match self {
            Self::NoKeysYet { retry_within, .. } => Some(*retry_within),
            _ => None,
        }
    }

    /// True when the error means this instance must stop acting as leader.
    pub fn is_leadership(&self) -> bool {
        matches!(self, Self::NotLeader | Self::LostLeadership(_))
    }
}

impl From<tokio_postgres::Error> for ProcessorError {
    fn from(e: tokio_postgres::Error) -> Self {
        Self::Store(StoreError::Db(e))
    }
}

/// Short for `Result<T, ProcessorError>`.
pub type Result<T, E = ProcessorError> = std::result::Result<T, E>;
