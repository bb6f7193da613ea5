//! Processor settings from the environment. Every variable has a default; a bad value stops
//! start-up with a message naming the variable. Nothing here is secret except the database
//! password and the secrets keys, which [`DbConfig`] and [`SealingKeys`] never print.

use std::net::SocketAddr;
use std::time::Duration;

use gpudev_cluster::labels;
use gpudev_cluster::names::is_dns1123_label;
use gpudev_domain::{GpuCatalog, ImageRef, QueuePolicy, Quotas};
use gpudev_runtime::{ConfigError, Env, LogFormat, shared};
use gpudev_store::{DbConfig, Queue, SealingKeys};

use crate::backoff::Backoff;

/// How much longer than the long poll (`POLL_SECONDS`) the processor's statements may run.
const LONG_POLL_MARGIN: std::time::Duration = std::time::Duration::from_secs(5);

/// Where dev boxes get the agent from and report to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentSettings {
    /// `AGENT_IMAGE`.
    pub image: String,
    /// `AGENT_API_URL`.
    pub api_url: String,
}

/// `AGENT_IMAGE` and `AGENT_API_URL`: both set, or neither.
fn agent_settings<F: Fn(&str) -> Option<String>>(
    env: &Env<F>,
) -> Result<Option<AgentSettings>, ConfigError> {
    let image = env.get("AGENT_IMAGE").filter(|v| !v.trim().is_empty());
    let url = env.get("AGENT_API_URL").filter(|v| !v.trim().is_empty());
    match (image, url) {
        (None, None) => Ok(None),
        (Some(_), None) => Err(ConfigError::new(
            "AGENT_API_URL",
            "must be set with AGENT_IMAGE (where dev boxes reach the API)",
        )),
        (None, Some(_)) => Err(ConfigError::new(
            "AGENT_IMAGE",
            "must be set with AGENT_API_URL (the image holding gpudev-agent)",
        )),
        (Some(image), Some(url)) => {
            if image.chars().any(char::is_whitespace) {
                return Err(ConfigError::new(
                    "AGENT_IMAGE",
                    "must be an image reference",
                ));
            }
            let rest = url
                .strip_prefix("https://")
                .or_else(|| url.strip_prefix("http://"))
                .filter(|r| !r.is_empty() && !r.starts_with('/'))
                .filter(|_| !url.chars().any(|c| c.is_whitespace() || c.is_control()));
            if rest.is_none() {
                return Err(ConfigError::new(
                    "AGENT_API_URL",
                    "must be an http:// or https:// URL with a host",
                ));
            }
            Ok(Some(AgentSettings {
                image,
                api_url: url.trim_end_matches('/').to_owned(),
            }))
        }
    }
}

/// Everything the processor needs to start.
#[derive(Debug, Clone)]
pub struct ProcessorConfig {
    /// Database connection (`DATABASE_URL` or `POSTGRES_*`, see [`DbConfig`]).
    pub db: DbConfig,
    /// `QUEUE_NAME` (`gpu_reservations`).
    pub queue: Queue,
    /// `GPU_DEV_NAMESPACE` (`gpu-dev`): where dev box objects live.
    pub namespace: String,
    /// `DEV_IMAGE`: the image for reservations whose stored image is unusable.
    pub dev_image: ImageRef,
    /// `GPU_TYPE_LABEL` (`gpudev.io/gpu-type`): the node label naming a node's GPU type.
    pub gpu_type_label: String,
    /// `AGENT_IMAGE` and `AGENT_API_URL` (both or neither): gpudev's image, whose `gpudev-agent`
    /// each new dev box runs, and the address boxes reach the API at (ADR 18). Without them
    /// boxes run no agent and are never released as idle.
    pub agent: Option<AgentSettings>,
    /// `VISIBILITY_TIMEOUT_SECONDS` (30, 1–3600): how long a read message stays hidden while it
    /// is handled (a processor that stops mid-way leaves it to reappear after this).
    pub visibility_timeout: Duration,
    /// `RETRY_BACKOFF_BASE_SECONDS` (10, 1–3600) and `RETRY_BACKOFF_MAX_SECONDS` (300, 1–86400,
    /// at least the base): a message whose handling failed is hidden for base × 2^(deliveries − 1),
    /// at most the max, with jitter (see [`Backoff`]).
    pub retry_backoff: Backoff,
    /// `POLL_SECONDS` (5, 0–60): how long a read waits for a message (long poll).
    pub poll: Duration,
    /// `BATCH_SIZE` (16, 1–1000): messages read at once.
    pub batch_size: u32,
    /// `MAX_READS` (5, 1–100): deliveries before a message is dead-lettered.
    pub max_reads: u32,
    /// `SCHEDULER_INTERVAL_SECONDS` (10, 1–3600): time between passes without messages.
    pub scheduler_interval: Duration,
    /// `POD_READY_TIMEOUT_SECONDS` (900, 10–86400): how long an admitted reservation may take to
    /// become Ready.
    pub pod_ready_timeout: Duration,
    /// `STORAGE_CLASS` (optional): class of new user disks; the cluster default when unset.
    pub storage_class: Option<String>,
    /// `DEFAULT_DISK_SIZE_GB` (100, 10–10000): size of a disk created for a reservation that
    /// names a new disk without a size.
    pub default_disk_size_gb: u32,
    /// `METRICS_ADDR` (`0.0.0.0:9090`).
    pub metrics_addr: SocketAddr,
    /// `LOG_FORMAT` (`json` | `pretty`).
    pub log_format: LogFormat,
    /// `GPU_CATALOG_JSON` (optional): replaces the built-in GPU catalog (must match the API's).
    pub catalog: GpuCatalog,
    /// `MAX_ACTIVE_RESERVATIONS_PER_USER` (0, 0–10,000,000) and `MAX_GPUS_PER_USER` (0,
    /// 0–100,000,000): what one user may hold at once (preparing and active); beyond them a
    /// reservation waits with the reason; `0` means no limit (see [`gpudev_runtime::shared`]).
    pub quotas: Quotas,
    /// `FAIR_SHARE_HALF_LIFE_HOURS` (168, 0.1–8760): how fast past GPU use is forgotten.
    pub fair_share_half_life: Duration,
    /// `QUEUE_PROMISE_HORIZON_MINUTES` and `FAIR_SHARE_AGING_PERCENT` (see
    /// [`gpudev_runtime::shared`]).
    pub queue_policy: QueuePolicy,
    /// `RELEASE_DELAY_SECONDS` (180): how long after its end a reservation's GPUs are free.
    pub release_delay: Duration,
    /// `LEADER_LEASE_SECONDS` (10, 2–300): a leader silent this long loses its lock (the
    /// database ends its session); standbys take over within this plus the retry interval.
    pub leader_lease: Duration,
    /// `LEADER_RETRY_SECONDS` (3, 1–60): how often a standby tries to become leader.
    pub leader_retry: Duration,
    /// `GITHUB_KEYS_URL` (`https://github.com`; empty disables): where `<login>.keys` is fetched
    /// from for GitHub users given access.
    pub github_keys_url: Option<String>,
    /// `GITHUB_KEYS_DEADLINE_SECONDS` (120, 10–3600): how long after its admission a
    /// reservation whose only SSH keys would come from GitHub keeps trying to fetch them while
    /// GitHub cannot be reached; past it the reservation fails with the last reason (within one
    /// more `SCHEDULER_INTERVAL_SECONDS`). Each attempt and its failure show in the
    /// reservation's detailed status at once.
    pub github_keys_deadline: Duration,
    /// `SECRETS_ENCRYPTION_KEYS` (optional): the keys that open a reservation's sealed
    /// environment values and command, the current one and those it replaced (ADR 12). A
    /// reservation sealed with a key not given here fails with the key's id as the reason.
    pub secret_keys: Option<SealingKeys>,
}

impl ProcessorConfig {
    /// Reads the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(gpudev_runtime::settings::process_env)
    }

    /// Reads settings through `get` (the environment, or a map in tests).
    pub fn from_lookup(raw: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let env = Env::new(raw);
        let get = |k: &str| env.get(k);
        let db = DbConfig::from_lookup(get)?;
        let queue_name = get("QUEUE_NAME").unwrap_or_else(|| gpudev_store::DEFAULT_QUEUE.into());
        let queue =
            Queue::new(&queue_name).map_err(|e| ConfigError::new("QUEUE_NAME", e.to_string()))?;
        let namespace = get("GPU_DEV_NAMESPACE").unwrap_or_else(|| "gpu-dev".into());
        if !is_dns1123_label(&namespace) {
            return Err(ConfigError::new(
                "GPU_DEV_NAMESPACE",
                format!("{namespace:?} is not a valid namespace name (lower-case DNS label)"),
            ));
        }
        let gpu_type_label =
            get("GPU_TYPE_LABEL").unwrap_or_else(|| labels::DEFAULT_GPU_TYPE_LABEL.into());
        if !labels::is_label_key(&gpu_type_label) {
            return Err(ConfigError::new(
                "GPU_TYPE_LABEL",
                format!("{gpu_type_label:?} is not a valid Kubernetes label key"),
            ));
        }
        let storage_class = get("STORAGE_CLASS").map(|s| s.trim().to_owned());
        if let Some(class) = &storage_class
            && !gpudev_cluster::names::is_dns1123_subdomain(class)
        {
            return Err(ConfigError::new(
                "STORAGE_CLASS",
                format!("{class:?} is not a valid StorageClass name"),
            ));
        }
        let github_keys_url = match env.raw("GITHUB_KEYS_URL") {
            None => Some("https://github.com".to_owned()),
            Some(url) if url.trim().is_empty() => None,
            Some(url) => {
                let url = url.trim().trim_end_matches('/').to_owned();
                if !(url.starts_with("https://") || url.starts_with("http://")) {
                    return Err(ConfigError::new(
                        "GITHUB_KEYS_URL",
                        format!("{url:?} is not an http(s) URL"),
                    ));
                }
                Some(url)
            }
        };
        let retry_backoff = Backoff {
            base: env.seconds("RETRY_BACKOFF_BASE_SECONDS", 10, 1..=3600)?,
            max: env.seconds("RETRY_BACKOFF_MAX_SECONDS", 300, 1..=86_400)?,
        };
        if retry_backoff.max < retry_backoff.base {
            return Err(ConfigError::new(
                "RETRY_BACKOFF_MAX_SECONDS",
                format!(
                    "{} is below RETRY_BACKOFF_BASE_SECONDS ({})",
                    retry_backoff.max.as_secs(),
                    retry_backoff.base.as_secs()
                ),
            ));
        }
        let half_life_hours = env.float("FAIR_SHARE_HALF_LIFE_HOURS", 168.0, 0.1..=8760.0)?;
        let poll = env.seconds("POLL_SECONDS", 5, 0..=60)?;
        // The long poll waits in the server for up to `poll`: the statement bound must allow
        // it. PGMQ polls in whole seconds, so below one second there is no long poll and the
        // bound stays as set.
        let db = if poll.as_secs() == 0 {
            db
        } else {
            db.with_statement_timeout_at_least(poll + LONG_POLL_MARGIN)
        };
        Ok(Self {
            db,
            queue,
            namespace,
            dev_image: env.dev_image()?,
            gpu_type_label,
            agent: agent_settings(&env)?,
            visibility_timeout: env.seconds("VISIBILITY_TIMEOUT_SECONDS", 30, 1..=3600)?,
            retry_backoff,
            poll,
            batch_size: env.int("BATCH_SIZE", 16, 1..=1000)?,
            max_reads: env.int("MAX_READS", 5, 1..=100)?,
            scheduler_interval: env.seconds("SCHEDULER_INTERVAL_SECONDS", 10, 1..=3600)?,
            pod_ready_timeout: env.seconds("POD_READY_TIMEOUT_SECONDS", 900, 10..=86_400)?,
            storage_class,
            default_disk_size_gb: env.setting(shared::DEFAULT_DISK_SIZE_GB)?,
            metrics_addr: env.addr("METRICS_ADDR", "0.0.0.0:9090")?,
            log_format: env.log_format()?,
            catalog: env.catalog()?,
            quotas: env.quotas()?,
            fair_share_half_life: Duration::from_secs_f64(half_life_hours * 3600.0),
            queue_policy: env.queue_policy()?,
            release_delay: Duration::from_secs(u64::from(
                env.setting(shared::RELEASE_DELAY_SECONDS)?,
            )),
            leader_lease: env.seconds("LEADER_LEASE_SECONDS", 10, 2..=300)?,
            leader_retry: env.seconds("LEADER_RETRY_SECONDS", 3, 1..=60)?,
            github_keys_url,
            github_keys_deadline: env.seconds("GITHUB_KEYS_DEADLINE_SECONDS", 120, 10..=3600)?,
            secret_keys: SealingKeys::from_lookup(get)?,
        })
    }

    /// Settings for tests and local runs: the defaults, with the database at `url`, metrics on
    /// a free loopback port, readable logs, no GitHub lookups and short timers.
    pub fn for_database(url: &str) -> Result<Self, ConfigError> {
        Self::for_database_with(url, &[])
    }

    /// [`Self::for_database`] with `vars` read as environment variables first (for a test that
    /// needs, say, a short `DB_STATEMENT_TIMEOUT_SECONDS` or `LEADER_LEASE_SECONDS`). The
    /// short timers are set after the variables are read: there is no long poll (it is below
    /// a second), so the statement bound is the one `vars` give.
    pub fn for_database_with(url: &str, vars: &[(&str, &str)]) -> Result<Self, ConfigError> {
        let given = |k: &str| {
            vars.iter()
                .find(|(name, _)| *name == k)
                .map(|(_, v)| (*v).to_owned())
        };
        let mut config = Self::from_lookup(|k| {
            given(k).or_else(|| match k {
                "DATABASE_URL" => Some(url.to_owned()),
                "METRICS_ADDR" => Some("127.0.0.1:0".to_owned()),
                "LOG_FORMAT" => Some("pretty".to_owned()),
                "POLL_SECONDS" => Some("0".to_owned()),
                _ => None,
            })
        })?;
        config.github_keys_url = None;
        config.poll = Duration::from_millis(200);
        config.scheduler_interval = Duration::from_secs(1);
        config.leader_retry = Duration::from_millis(200);
        config.retry_backoff = Backoff {
            base: Duration::from_millis(500),
            max: Duration::from_secs(4),
        };
        Ok(config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use gpudev_runtime::settings::lookup_in;

    fn cfg(vars: &[(&str, &str)]) -> Result<ProcessorConfig, ConfigError> {
        let given = lookup_in(vars);
        ProcessorConfig::from_lookup(|k| {
            given(k).or_else(|| {
                (k == "DATABASE_URL").then(|| "postgres://gpudev:s3cret-pw@db:5432/gpudev".into())
            })
        })
    }

    #[test]
    fn defaults_follow_the_issue() {
        let c = cfg(&[]).unwrap();
        assert_eq!(c.queue.name(), "gpu_reservations");
        assert_eq!(c.namespace, "gpu-dev");
        assert_eq!(c.gpu_type_label, "gpudev.io/gpu-type");
        assert_eq!(c.dev_image.as_str(), shared::DEFAULT_IMAGE);
        assert_eq!(c.visibility_timeout, Duration::from_secs(30));
        assert_eq!(c.retry_backoff.base, Duration::from_secs(10));
        assert_eq!(c.retry_backoff.max, Duration::from_secs(300));
        assert_eq!(c.poll, Duration::from_secs(5));
        assert_eq!(c.batch_size, 16);
        assert_eq!(c.max_reads, 5);
        assert_eq!(c.scheduler_interval, Duration::from_secs(10));
        assert_eq!(c.pod_ready_timeout, Duration::from_secs(900));
        assert_eq!(c.storage_class, None);
        assert_eq!(c.metrics_addr.port(), 9090);
        assert_eq!(c.quotas, Quotas::default(), "no running limits unless set");
        assert_eq!(c.queue_policy.promise_horizon_secs, 7200);
        assert_eq!(c.queue_policy.aging, 1.0);
        assert_eq!(c.release_delay, Duration::from_secs(180));
        assert_eq!(c.github_keys_url.as_deref(), Some("https://github.com"));
        let off = cfg(&[("GITHUB_KEYS_URL", "")]).unwrap();
        assert_eq!(off.github_keys_url, None);
        assert!(c.secret_keys.is_none());
    }

    #[test]
    fn bad_values_name_their_variable() {
        let cases = [
            ("BATCH_SIZE", "0"),
            ("MAX_READS", "many"),
            ("POLL_SECONDS", "61"),
            ("GPU_DEV_NAMESPACE", "GPU_Dev"),
            ("GPU_TYPE_LABEL", "not a label"),
            ("DEV_IMAGE", "bad image"),
            ("METRICS_ADDR", "nowhere"),
            ("LOG_FORMAT", "xml"),
            ("QUEUE_NAME", "bad-name"),
            ("STORAGE_CLASS", "Bad_Class"),
            ("FAIR_SHARE_HALF_LIFE_HOURS", "-1"),
            ("GITHUB_KEYS_URL", "ftp://x"),
            ("POD_READY_TIMEOUT_SECONDS", "1"),
            ("RETRY_BACKOFF_BASE_SECONDS", "0"),
            ("RETRY_BACKOFF_MAX_SECONDS", "86401"),
            ("QUEUE_PROMISE_HORIZON_MINUTES", "1441"),
            ("FAIR_SHARE_AGING_PERCENT", "-1"),
            ("RELEASE_DELAY_SECONDS", "soon"),
        ];
        for (var, value) in cases {
            let e = cfg(&[(var, value)]).unwrap_err();
            assert_eq!(e.variable, var, "{var}={value}: {e}");
        }
    }

    #[test]
    fn zero_quotas_mean_no_limit_and_values_are_read() {
        let c = cfg(&[
            ("MAX_ACTIVE_RESERVATIONS_PER_USER", "0"),
            ("MAX_GPUS_PER_USER", "16"),
            ("STORAGE_CLASS", "gp3"),
            ("SCHEDULER_INTERVAL_SECONDS", "2"),
        ])
        .unwrap();
        assert_eq!(c.quotas.max_active_reservations_per_user, None);
        assert_eq!(c.quotas.max_gpus_per_user, Some(16));
        assert_eq!(c.storage_class.as_deref(), Some("gp3"));
        assert_eq!(c.scheduler_interval, Duration::from_secs(2));
    }

    #[test]
    fn the_retry_backoff_is_read_and_its_cap_may_not_be_below_its_base() {
        let c = cfg(&[
            ("RETRY_BACKOFF_BASE_SECONDS", "2"),
            ("RETRY_BACKOFF_MAX_SECONDS", "60"),
        ])
        .unwrap();
        assert_eq!(c.retry_backoff.base, Duration::from_secs(2));
        assert_eq!(c.retry_backoff.max, Duration::from_secs(60));
        let e = cfg(&[
            ("RETRY_BACKOFF_BASE_SECONDS", "30"),
            ("RETRY_BACKOFF_MAX_SECONDS", "20"),
        ])
        .unwrap_err();
        assert_eq!(e.variable, "RETRY_BACKOFF_MAX_SECONDS");
        assert!(e.to_string().contains("below"), "{e}");
    }

    #[test]
    fn the_statement_bound_allows_the_long_poll_and_only_a_long_poll() {
        let poll = |secs: &str| {
            cfg(&[
                ("POLL_SECONDS", secs),
                ("DB_STATEMENT_TIMEOUT_SECONDS", "2"),
            ])
            .unwrap()
            .db
            .statement_timeout()
        };
        assert_eq!(poll("20"), Some(Duration::from_secs(25)));
        assert_eq!(poll("0"), Some(Duration::from_secs(2)));
        let test = ProcessorConfig::for_database_with(
            "postgres://u@h/db",
            &[("DB_STATEMENT_TIMEOUT_SECONDS", "1")],
        )
        .unwrap();
        assert_eq!(test.db.statement_timeout(), Some(Duration::from_secs(1)));
        assert!(test.poll < Duration::from_secs(1));
    }

    #[test]
    fn debug_never_shows_the_database_password() {
        let c = cfg(&[]).unwrap();
        assert!(!format!("{c:?}").contains("s3cret-pw"));
    }

    #[test]
    fn the_agent_needs_both_its_image_and_the_api_address() {
        assert_eq!(cfg(&[]).unwrap().agent, None);
        let both = cfg(&[
            ("AGENT_IMAGE", "ghcr.io/gpudev/gpudev:1.0"),
            ("AGENT_API_URL", "https://gpudev.example.com/"),
        ])
        .unwrap();
        assert_eq!(
            both.agent,
            Some(AgentSettings {
                image: "ghcr.io/gpudev/gpudev:1.0".into(),
                api_url: "https://gpudev.example.com".into(),
            })
        );
        for (vars, named) in [
            (vec![("AGENT_IMAGE", "gpudev:1")], "AGENT_API_URL"),
            (vec![("AGENT_API_URL", "https://x")], "AGENT_IMAGE"),
            (
                vec![("AGENT_IMAGE", "gpudev:1"), ("AGENT_API_URL", "ftp://x")],
                "AGENT_API_URL",
            ),
            (
                vec![("AGENT_IMAGE", "gpu dev"), ("AGENT_API_URL", "https://x")],
                "AGENT_IMAGE",
            ),
        ] {
            assert_eq!(cfg(&vars).unwrap_err().variable, named, "{vars:?}");
        }
    }
}
