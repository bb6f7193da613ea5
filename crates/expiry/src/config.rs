//! Settings from the environment. Every error names its variable.
//!
//! | Variable | Default | Meaning |
//! |---|---|---|
//! | `DATABASE_URL` or `POSTGRES_*` | — | the database (see [`gpudev_store::DbConfig`]) |
//! | `GPU_DEV_NAMESPACE` | `gpu-dev` | namespace of the dev boxes, their disks and snapshots |
//! | `WARNING_MINUTES` | `30,15,5` | minutes before the end at which users are warned (1–1440 each) |
//! | `GRACE_PERIOD_SECONDS` | 120 | how long past `expires_at` a reservation is expired (0–86400) |
//! | `PREPARING_TIMEOUT_MINUTES` | 60 | `preparing` longer than this → `failed` (1–10080) |
//! | `QUEUED_TIMEOUT_HOURS` | 48 | `queued` longer than this → `cancelled` (1–8760) |
//! | `POD_MISSING_MINUTES` | 10 | an active reservation's Pod missing this long → `expired` (1–1440) |
//! | `SNAPSHOT_CLASS` | cluster default | VolumeSnapshotClass of disk snapshots |
//! | `KEEP_SNAPSHOTS` | 3 | ready snapshots kept per disk (1–100) |
//! | `POD_DELETE_TIMEOUT_SECONDS` | 120 | how long to wait for a deleted Pod to go (1–3600) |
//! | `EXPIRY_PARALLELISM` | 4 | reservations expired at the same time (1–32) |
//! | `IN_POD_WARNINGS` | `true` | deliver warnings into the Pod through the exec API |
//! | `EXEC_TIMEOUT_SECONDS` | 15 | limit of one in-pod delivery (1–120) |
//! | `EXPIRY_WEBHOOK_URL` | none | also POST each warning here (`http`/`https`) |
//! | `EXPIRY_WEBHOOK_TIMEOUT_SECONDS` | 5 | limit of one webhook POST (1–60) |
//! | `HOSTNAME` | `gpudev-expiry` | recorded with the run |
//! | `LOG_FORMAT` | `json` | `json` or `pretty` |

use std::fmt;
use std::time::Duration;

use gpudev_cluster::names;
use gpudev_runtime::{ConfigError, Env, LogFormat};
use gpudev_store::DbConfig;

/// A webhook address. It may carry a token in its path or query, so `Debug` and `Display` show
/// only its scheme and host.
#[derive(Clone, PartialEq, Eq)]
pub struct WebhookUrl(reqwest::Url);

impl WebhookUrl {
    /// The full URL (to post to; never log it).
    pub fn expose(&self) -> &reqwest::Url {
        &self.0
    }
}

impl fmt::Display for WebhookUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}://{}/…",
            self.0.scheme(),
            self.0.host_str().unwrap_or("?")
        )
    }
}

impl fmt::Debug for WebhookUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "WebhookUrl({self})")
    }
}

/// Everything one run needs to know.
#[derive(Debug, Clone)]
pub struct Config {
    /// The database.
    pub db: DbConfig,
    /// Namespace of the dev boxes, disks and snapshots.
    pub namespace: String,
    /// Warning thresholds in minutes, most distant first, without duplicates.
    pub warning_minutes: Vec<u32>,
    /// How long past its end an active reservation is expired.
    pub grace: Duration,
    /// Longest time in `preparing`.
    pub preparing_timeout: Duration,
    /// Longest time in `queued`.
    pub queued_timeout: Duration,
    /// How long an active reservation's Pod may be missing.
    pub pod_missing_after: Duration,
    /// VolumeSnapshotClass of disk snapshots; the cluster default when `None`.
    pub snapshot_class: Option<String>,
    /// Ready snapshots kept per disk.
    pub keep_snapshots: u32,
    /// How long to wait for deleted Pods to go before giving up until the next run.
    pub pod_delete_timeout: Duration,
    /// How often to look whether deleted Pods are gone.
    pub poll_interval: Duration,
    /// Reservations expired at the same time.
    pub parallelism: usize,
    /// Whether warnings are delivered into Pods.
    pub in_pod_warnings: bool,
    /// `IDLE_MINUTES`, `IDLE_MAX_MINUTES`, `IDLE_GPU_PERCENT`, `IDLE_WARNING_MINUTES`: when an
    /// idle dev box is warned about and released (ADR 18).
    pub idle: gpudev_domain::IdlePolicy,
    /// Limit of one in-pod delivery.
    pub exec_timeout: Duration,
    /// Where warnings are also posted.
    pub webhook_url: Option<WebhookUrl>,
    /// Limit of one webhook POST.
    pub webhook_timeout: Duration,
    /// Recorded with the run (the pod's host name).
    pub host: String,
    /// Log line format.
    pub log_format: LogFormat,
}

impl Config {
    /// Reads the settings from the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(gpudev_runtime::settings::process_env)
    }

    /// Reads the settings through `get` (the environment in production, a map in tests).
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let env = Env::new(get);
        let get = |k: &str| env.get(k);
        let db = DbConfig::from_lookup(get)?.with_application_name("gpudev-expiry");
        let namespace = get("GPU_DEV_NAMESPACE")
            .map(|v| v.trim().to_owned())
            .unwrap_or_else(|| "gpu-dev".to_owned());
        if !names::is_dns1123_label(&namespace) {
            return Err(ConfigError::new(
                "GPU_DEV_NAMESPACE",
                format!("{namespace:?} is not a valid namespace name"),
            ));
        }
        let warning_minutes = match get("WARNING_MINUTES") {
            None => vec![30, 15, 5],
            Some(raw) => parse_minutes(&raw)?,
        };
        let secs = |v: u64| Duration::from_secs(v);
        let snapshot_class = get("SNAPSHOT_CLASS").map(|v| v.trim().to_owned());
        if let Some(class) = &snapshot_class
            && !names::is_dns1123_subdomain(class)
        {
            return Err(ConfigError::new(
                "SNAPSHOT_CLASS",
                format!("{class:?} is not a valid VolumeSnapshotClass name"),
            ));
        }
        let webhook_url = match get("EXPIRY_WEBHOOK_URL") {
            None => None,
            Some(raw) => {
                // The value may hold a token: never echo it back.
                let url = reqwest::Url::parse(raw.trim()).map_err(|e| {
                    ConfigError::new("EXPIRY_WEBHOOK_URL", format!("not a valid URL ({e})"))
                })?;
                if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
                    return Err(ConfigError::new(
                        "EXPIRY_WEBHOOK_URL",
                        "must be an http:// or https:// URL with a host",
                    ));
                }
                Some(WebhookUrl(url))
            }
        };
        Ok(Self {
            db,
            namespace,
            warning_minutes,
            grace: secs(env.int("GRACE_PERIOD_SECONDS", 120_u64, 0..=86_400)?),
            preparing_timeout: secs(60 * env.int("PREPARING_TIMEOUT_MINUTES", 60_u64, 1..=10_080)?),
            queued_timeout: secs(3600 * env.int("QUEUED_TIMEOUT_HOURS", 48_u64, 1..=8760)?),
            pod_missing_after: secs(60 * env.int("POD_MISSING_MINUTES", 10_u64, 1..=1440)?),
            snapshot_class,
            keep_snapshots: env.int("KEEP_SNAPSHOTS", 3, 1..=100)?,
            pod_delete_timeout: secs(env.int("POD_DELETE_TIMEOUT_SECONDS", 120_u64, 1..=3600)?),
            poll_interval: Duration::from_secs(1),
            parallelism: env.int("EXPIRY_PARALLELISM", 4, 1..=32)?,
            in_pod_warnings: env.boolean("IN_POD_WARNINGS", true)?,
            idle: env.idle_policy()?,
            exec_timeout: secs(env.int("EXEC_TIMEOUT_SECONDS", 15_u64, 1..=120)?),
            webhook_url,
            webhook_timeout: secs(env.int("EXPIRY_WEBHOOK_TIMEOUT_SECONDS", 5_u64, 1..=60)?),
            host: get("HOSTNAME").unwrap_or_else(|| "gpudev-expiry".to_owned()),
            log_format: env.log_format()?,
        })
    }
}

fn parse_minutes(raw: &str) -> Result<Vec<u32>, ConfigError> {
    let mut minutes = Vec::new();
    for part in raw.split(',').map(str::trim) {
        match part.parse::<u32>() {
            Ok(m) if (1..=1440).contains(&m) => minutes.push(m),
            _ => {
                return Err(ConfigError::new(
                    "WARNING_MINUTES",
                    format!(
                        "{part:?} is not a whole number of minutes in 1..=1440 (use e.g. \"30,15,5\")"
                    ),
                ));
            }
        }
    }
    minutes.sort_unstable_by(|a, b| b.cmp(a));
    minutes.dedup();
    Ok(minutes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use gpudev_runtime::settings::lookup_in;

    fn cfg(vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
        Config::from_lookup(lookup_in(vars))
    }

    const DB: (&str, &str) = ("DATABASE_URL", "postgres://u@h/db");

    #[test]
    fn the_defaults_are_those_of_the_original_job() {
        let c = cfg(&[DB]).unwrap();
        assert_eq!(c.namespace, "gpu-dev");
        assert_eq!(c.warning_minutes, vec![30, 15, 5]);
        assert_eq!(c.grace, Duration::from_secs(120));
        assert_eq!(c.preparing_timeout, Duration::from_secs(3600));
        assert_eq!(c.queued_timeout, Duration::from_secs(48 * 3600));
        assert_eq!(c.pod_missing_after, Duration::from_secs(600));
        assert_eq!(c.keep_snapshots, 3);
        assert!(c.snapshot_class.is_none());
        assert!(c.webhook_url.is_none());
        assert!(c.in_pod_warnings);
    }

    #[test]
    fn warning_minutes_are_sorted_most_distant_first_without_duplicates() {
        let c = cfg(&[DB, ("WARNING_MINUTES", " 5, 60,15,5 ")]).unwrap();
        assert_eq!(c.warning_minutes, vec![60, 15, 5]);
    }

    #[test]
    fn bad_values_name_their_variable() {
        assert_eq!(cfg(&[]).unwrap_err().variable, "DATABASE_URL");
        for (var, value) in [
            ("GPU_DEV_NAMESPACE", "Not_A_Namespace"),
            ("WARNING_MINUTES", "30,soon"),
            ("WARNING_MINUTES", "0"),
            ("GRACE_PERIOD_SECONDS", "-1"),
            ("PREPARING_TIMEOUT_MINUTES", "0"),
            ("QUEUED_TIMEOUT_HOURS", "forever"),
            ("POD_MISSING_MINUTES", "99999"),
            ("SNAPSHOT_CLASS", "Bad Class"),
            ("KEEP_SNAPSHOTS", "0"),
            ("POD_DELETE_TIMEOUT_SECONDS", "0"),
            ("EXPIRY_PARALLELISM", "100"),
            ("IN_POD_WARNINGS", "maybe"),
            ("EXEC_TIMEOUT_SECONDS", "0"),
            ("EXPIRY_WEBHOOK_URL", "ftp://example.com/hook"),
            ("EXPIRY_WEBHOOK_URL", "not a url"),
            ("EXPIRY_WEBHOOK_TIMEOUT_SECONDS", "61"),
            ("LOG_FORMAT", "xml"),
        ] {
            let e = cfg(&[DB, (var, value)]).unwrap_err();
            assert_eq!(e.variable, var, "{var}={value}: {e}");
        }
    }

    #[test]
    fn the_webhook_url_is_never_shown_whole() {
        let c = cfg(&[
            DB,
            (
                "EXPIRY_WEBHOOK_URL",
                "https://hooks.example.com/services/T0/B0/s3cr3tToken",
            ),
        ])
        .unwrap();
        let url = c.webhook_url.as_ref().unwrap();
        assert_eq!(url.to_string(), "https://hooks.example.com/…");
        assert!(!format!("{c:?}").contains("s3cr3tToken"));
        assert!(url.expose().as_str().ends_with("s3cr3tToken"));
        let e = cfg(&[DB, ("EXPIRY_WEBHOOK_URL", "ftp://u:s3cr3t@example.com/")]).unwrap_err();
        assert!(!e.to_string().contains("s3cr3t"));
    }
}
