//! The settings more than one program reads, each parsed here and nowhere else. The Helm chart
//! puts most of them in one ConfigMap that every program sees; a test checks that the chart's
//! `values.schema.json` accepts exactly the ranges declared here.

use gpudev_domain::{GpuCatalog, IdlePolicy, ImageRef, QueuePolicy, Quotas};

use crate::settings::{ConfigError, Env, IntSetting};

/// The dev box image when a reservation names none (`DEV_IMAGE`).
pub const DEFAULT_IMAGE: &str = "pytorch/pytorch:2.8.0-cuda12.9-cudnn9-devel";

/// `MAX_NODES`: most whole nodes one multi-node reservation may span.
pub const MAX_NODES: IntSetting = IntSetting {
    var: "MAX_NODES",
    default: 4,
    min: 1,
    max: 64,
};

/// `MAX_ACTIVE_RESERVATIONS_PER_USER`: most preparing and active reservations one user may hold
/// at once; 0 means no limit. A reservation beyond it is not refused: the scheduler keeps it in
/// the queue, with the reason, until the user's own reservations end.
pub const MAX_ACTIVE_RESERVATIONS_PER_USER: IntSetting = IntSetting {
    var: "MAX_ACTIVE_RESERVATIONS_PER_USER",
    default: 0,
    min: 0,
    max: 10_000_000,
};

/// `MAX_GPUS_PER_USER`: most GPUs over one user's preparing and active reservations (held in the
/// queue beyond it as for [`MAX_ACTIVE_RESERVATIONS_PER_USER`]; a request for more GPUs than
/// this is refused, since it could never start); 0 means no limit.
pub const MAX_GPUS_PER_USER: IntSetting = IntSetting {
    var: "MAX_GPUS_PER_USER",
    default: 0,
    min: 0,
    max: 100_000_000,
};

/// `MAX_QUEUED_RESERVATIONS_PER_USER`: most reservations one user may have waiting in the queue;
/// a submit beyond it is refused. 0 means no limit.
pub const MAX_QUEUED_RESERVATIONS_PER_USER: IntSetting = IntSetting {
    var: "MAX_QUEUED_RESERVATIONS_PER_USER",
    default: 100,
    min: 0,
    max: 10_000_000,
};

/// `DEFAULT_DISK_SIZE_GB`: size of a disk created without a size.
pub const DEFAULT_DISK_SIZE_GB: IntSetting = IntSetting {
    var: "DEFAULT_DISK_SIZE_GB",
    default: 100,
    min: 10,
    max: 10_000,
};

/// `DB_POOL_SIZE`: most pooled database connections of one process.
pub const DB_POOL_SIZE: IntSetting = IntSetting {
    var: "DB_POOL_SIZE",
    default: 16,
    min: 1,
    max: 512,
};

/// `DB_CONNECT_TIMEOUT_SECONDS`: how long to wait for a database connection.
pub const DB_CONNECT_TIMEOUT_SECONDS: IntSetting = IntSetting {
    var: "DB_CONNECT_TIMEOUT_SECONDS",
    default: 5,
    min: 1,
    max: 120,
};

/// `DB_STATEMENT_TIMEOUT_SECONDS`: the longest one statement may run. PostgreSQL cancels it
/// then (`statement_timeout`), and a program gives up on a connection whose server has not
/// answered a request for this long plus a short grace (a hung server or a dead peer), so every
/// database call is bounded.
pub const DB_STATEMENT_TIMEOUT_SECONDS: IntSetting = IntSetting {
    var: "DB_STATEMENT_TIMEOUT_SECONDS",
    default: 10,
    min: 1,
    max: 3600,
};

/// `DB_IDLE_IN_TRANSACTION_TIMEOUT_SECONDS`: PostgreSQL ends a session that leaves a transaction
/// open and idle this long (`idle_in_transaction_session_timeout`), releasing its locks.
pub const DB_IDLE_IN_TRANSACTION_TIMEOUT_SECONDS: IntSetting = IntSetting {
    var: "DB_IDLE_IN_TRANSACTION_TIMEOUT_SECONDS",
    default: 60,
    min: 1,
    max: 3600,
};

/// `QUEUE_PROMISE_HORIZON_MINUTES`: a queued reservation whose planned start is this close is
/// promised it (ADR 5).
pub const QUEUE_PROMISE_HORIZON_MINUTES: IntSetting = IntSetting {
    var: "QUEUE_PROMISE_HORIZON_MINUTES",
    default: 120,
    min: 0,
    max: 1440,
};

/// `FAIR_SHARE_AGING_PERCENT`: how fast waiting outweighs a fair-share lead; at 100 a lead worth
/// `h` hours of a GPU type's whole pool delays a request at most `h` hours against first come,
/// first served (ADR 5). 0 is pure fair share.
pub const FAIR_SHARE_AGING_PERCENT: IntSetting = IntSetting {
    var: "FAIR_SHARE_AGING_PERCENT",
    default: 100,
    min: 0,
    max: 10_000,
};

/// `RELEASE_DELAY_SECONDS`: how long after its end a reservation's GPUs are really free — the
/// expiry job's grace period plus its schedule's interval. Estimates and promises count it.
pub const RELEASE_DELAY_SECONDS: IntSetting = IntSetting {
    var: "RELEASE_DELAY_SECONDS",
    default: 180,
    min: 0,
    max: 90_000,
};

/// `IDLE_MINUTES`: a dev box idle this long (no session, GPUs below `IDLE_GPU_PERCENT`) is
/// released (ADR 18); 0 turns idle detection off.
pub const IDLE_MINUTES: IntSetting = IntSetting {
    var: "IDLE_MINUTES",
    default: 60,
    min: 0,
    max: 10_080,
};

/// `IDLE_MAX_MINUTES`: the longest idle limit a user may ask for at submit (admins may ask for
/// any, or none).
pub const IDLE_MAX_MINUTES: IntSetting = IntSetting {
    var: "IDLE_MAX_MINUTES",
    default: 480,
    min: 1,
    max: 10_080,
};

/// `IDLE_GPU_PERCENT`: a GPU at or above this utilisation counts as in use.
pub const IDLE_GPU_PERCENT: IntSetting = IntSetting {
    var: "IDLE_GPU_PERCENT",
    default: 5,
    min: 0,
    max: 100,
};

/// `IDLE_WARNING_MINUTES`: how long before releasing an idle box its user is warned (at most
/// half the box's idle limit).
pub const IDLE_WARNING_MINUTES: IntSetting = IntSetting {
    var: "IDLE_WARNING_MINUTES",
    default: 15,
    min: 1,
    max: 1440,
};

/// `MAX_BOOKING_DAYS`: how far ahead a reservation may be booked (`start_at`), in days; 0 turns
/// bookings off.
pub const MAX_BOOKING_DAYS: IntSetting = IntSetting {
    var: "MAX_BOOKING_DAYS",
    default: 14,
    min: 0,
    max: 365,
};

/// `MAX_BOOKED_GPU_HOURS_PER_USER`: most GPU-hours (GPUs × hours; a CPU-only reservation counts
/// as none) one user may have booked and waiting at once; a booking beyond it is refused. 0
/// means no limit.
pub const MAX_BOOKED_GPU_HOURS_PER_USER: IntSetting = IntSetting {
    var: "MAX_BOOKED_GPU_HOURS_PER_USER",
    default: 192,
    min: 0,
    max: 100_000_000,
};

/// Every shared whole-number setting, for the check against the chart's schema.
pub const INT_SETTINGS: [IntSetting; 18] = [
    MAX_NODES,
    MAX_ACTIVE_RESERVATIONS_PER_USER,
    MAX_GPUS_PER_USER,
    MAX_QUEUED_RESERVATIONS_PER_USER,
    DEFAULT_DISK_SIZE_GB,
    DB_POOL_SIZE,
    DB_CONNECT_TIMEOUT_SECONDS,
    DB_STATEMENT_TIMEOUT_SECONDS,
    DB_IDLE_IN_TRANSACTION_TIMEOUT_SECONDS,
    QUEUE_PROMISE_HORIZON_MINUTES,
    FAIR_SHARE_AGING_PERCENT,
    RELEASE_DELAY_SECONDS,
    IDLE_MINUTES,
    IDLE_MAX_MINUTES,
    IDLE_GPU_PERCENT,
    IDLE_WARNING_MINUTES,
    MAX_BOOKING_DAYS,
    MAX_BOOKED_GPU_HOURS_PER_USER,
];

/// What may be booked ahead ([`MAX_BOOKING_DAYS`], [`MAX_BOOKED_GPU_HOURS_PER_USER`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BookingLimits {
    /// How far ahead a start may be booked, in days; 0: bookings are off.
    pub max_days: u32,
    /// Most GPU-hours one user may have booked and waiting at once; `None`: no limit.
    pub max_gpu_hours_per_user: Option<u32>,
}

impl<F: Fn(&str) -> Option<String>> Env<F> {
    /// `GPU_CATALOG_JSON`: replaces the built-in GPU catalog (every program must see the same).
    pub fn catalog(&self) -> Result<GpuCatalog, ConfigError> {
        match self.get("GPU_CATALOG_JSON") {
            Some(json) => GpuCatalog::from_json(&json)
                .map_err(|e| ConfigError::new("GPU_CATALOG_JSON", e.to_string())),
            None => Ok(GpuCatalog::default()),
        }
    }

    /// `MAX_ACTIVE_RESERVATIONS_PER_USER` and `MAX_GPUS_PER_USER`, 0 read as no limit.
    pub fn quotas(&self) -> Result<Quotas, ConfigError> {
        let limit = |s: IntSetting| self.setting(s).map(|v| (v > 0).then_some(v));
        Ok(Quotas {
            max_active_reservations_per_user: limit(MAX_ACTIVE_RESERVATIONS_PER_USER)?,
            max_gpus_per_user: limit(MAX_GPUS_PER_USER)?,
        })
    }

    /// `QUEUE_PROMISE_HORIZON_MINUTES`, `FAIR_SHARE_AGING_PERCENT` and
    /// `RELEASE_DELAY_SECONDS`: the queue's policy.
    pub fn queue_policy(&self) -> Result<QueuePolicy, ConfigError> {
        Ok(QueuePolicy {
            promise_horizon_secs: i64::from(self.setting(QUEUE_PROMISE_HORIZON_MINUTES)?) * 60,
            aging: f64::from(self.setting(FAIR_SHARE_AGING_PERCENT)?) / 100.0,
            release_delay_secs: i64::from(self.setting(RELEASE_DELAY_SECONDS)?),
        })
    }

    /// `MAX_QUEUED_RESERVATIONS_PER_USER`, 0 read as no limit.
    pub fn max_queued_per_user(&self) -> Result<Option<u32>, ConfigError> {
        self.setting(MAX_QUEUED_RESERVATIONS_PER_USER)
            .map(|v| (v > 0).then_some(v))
    }

    /// `IDLE_MINUTES`, `IDLE_MAX_MINUTES`, `IDLE_GPU_PERCENT` and `IDLE_WARNING_MINUTES`.
    pub fn idle_policy(&self) -> Result<IdlePolicy, ConfigError> {
        Ok(IdlePolicy {
            minutes: self.setting(IDLE_MINUTES)?,
            max_user_minutes: self.setting(IDLE_MAX_MINUTES)?,
            gpu_percent: self.setting(IDLE_GPU_PERCENT)?,
            warning_minutes: self.setting(IDLE_WARNING_MINUTES)?,
        })
    }

    /// `MAX_BOOKING_DAYS` and `MAX_BOOKED_GPU_HOURS_PER_USER` (0 read as no limit).
    pub fn booking_limits(&self) -> Result<BookingLimits, ConfigError> {
        Ok(BookingLimits {
            max_days: self.setting(MAX_BOOKING_DAYS)?,
            max_gpu_hours_per_user: self
                .setting(MAX_BOOKED_GPU_HOURS_PER_USER)
                .map(|v| (v > 0).then_some(v))?,
        })
    }

    /// `DEV_IMAGE`: the image of a dev box whose reservation names none ([`DEFAULT_IMAGE`]).
    pub fn dev_image(&self) -> Result<ImageRef, ConfigError> {
        ImageRef::parse(self.get("DEV_IMAGE").as_deref().unwrap_or(DEFAULT_IMAGE))
            .map_err(|e| ConfigError::new("DEV_IMAGE", e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_quotas_mean_no_limit_and_by_default_only_the_queue_is_capped() {
        let none = Env::new(|_: &str| None);
        assert_eq!(none.quotas().unwrap(), Quotas::default());
        assert_eq!(none.max_queued_per_user().unwrap(), Some(100));
        let set = Env::new(|k: &str| {
            (k == "MAX_ACTIVE_RESERVATIONS_PER_USER" || k == "MAX_GPUS_PER_USER")
                .then(|| "4".to_owned())
        });
        let quotas = set.quotas().unwrap();
        assert_eq!(quotas.max_active_reservations_per_user, Some(4));
        assert_eq!(quotas.max_gpus_per_user, Some(4));
        let zero = Env::new(|_: &str| Some("0".to_owned()));
        assert_eq!(zero.quotas().unwrap(), Quotas::default());
        let huge = Env::new(|k: &str| (k == "MAX_GPUS_PER_USER").then(|| "100000000".to_owned()));
        assert_eq!(huge.quotas().unwrap().max_gpus_per_user, Some(100_000_000));
        let too_many = Env::new(|_: &str| Some("100000000".to_owned()));
        assert_eq!(
            too_many.quotas().unwrap_err().variable,
            "MAX_ACTIVE_RESERVATIONS_PER_USER"
        );
    }
}
