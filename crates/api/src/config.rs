//! API settings from the environment. Every variable has a default; a bad value stops start-up with
//! a message naming the variable.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use gpudev_domain::{GpuCatalog, ImageRef, Limits, Quotas};
use gpudev_runtime::{ConfigError, Env, LogFormat, shared};
use gpudev_store::{DbConfig, Queue, SealingKeys};

use crate::client_ip::TrustedProxies;
use crate::oidc::config::{IssuerConfig, apply_console_secrets, parse_issuers};

/// Everything the API needs to start.
#[derive(Debug, Clone)]
pub struct ApiConfig {
    /// Database connection.
    pub db: DbConfig,
    /// `QUEUE_NAME` (`gpu_reservations`).
    pub queue: Queue,
    /// `API_KEY_TTL_HOURS` (2, 1–168): lifetime of keys issued by logins and rotation.
    pub api_key_ttl_hours: u32,
    /// `ALLOWED_AWS_ROLE` (`SSOCloudDevGpuReservation`): the role a caller must have assumed.
    pub allowed_aws_role: String,
    /// `ADMIN_AWS_ROLE` (optional): callers with this role log in as admins.
    pub admin_aws_role: Option<String>,
    /// `AWS_REGION` (`us-east-1`).
    pub aws_region: String,
    /// `STS_ALLOWED_HOSTS` (comma-separated): hosts a presigned STS request may target.
    pub sts_allowed_hosts: Vec<String>,
    /// `AWS_LOGIN_SERVER_ID` (`gpudev`; 1–128 visible ASCII characters): the value a signed
    /// `aws-iam` login must carry in its signed `x-gpudev-server-id` header.
    pub aws_login_server_id: String,
    /// `STS_TIMEOUT_SECONDS` (5, 1–60).
    pub sts_timeout: Duration,
    /// `AWS_ENDPOINT_URL_STS` (optional): the STS endpoint `aws-login` calls, as the AWS SDK's own
    /// variable means it (a local emulator, a VPC endpoint). Read here so it is part of the typed
    /// settings and tests can set it without touching the process environment.
    pub sts_endpoint: Option<String>,
    /// `BIND_ADDR` (`0.0.0.0:8000`).
    pub bind_addr: SocketAddr,
    /// `METRICS_ADDR` (`0.0.0.0:9090`).
    pub metrics_addr: SocketAddr,
    /// `LOG_FORMAT` (`json` | `pretty`).
    pub log_format: LogFormat,
    /// `GPU_CATALOG_JSON` (optional): replaces the default GPU catalog.
    pub catalog: GpuCatalog,
    /// `MAX_RESERVATION_HOURS` (24), `MAX_LIFETIME_HOURS` (72), `MAX_NODES` (4).
    pub limits: Limits,
    /// `DEV_IMAGE`: the image used when a request names none.
    pub default_image: ImageRef,
    /// `MAX_ACTIVE_RESERVATIONS_PER_USER` and `MAX_GPUS_PER_USER` (0, no limit): what one user
    /// may hold at once; the scheduler keeps what is beyond them queued. A request for more GPUs
    /// than the limit is refused (see [`gpudev_runtime::shared`]).
    pub quotas: Quotas,
    /// `MAX_QUEUED_RESERVATIONS_PER_USER` (100; 0 no limit): reservations one user may have
    /// queued; a submit beyond it is refused.
    pub max_queued_per_user: Option<u32>,
    /// `IDLE_MINUTES`, `IDLE_MAX_MINUTES`, `IDLE_GPU_PERCENT`, `IDLE_WARNING_MINUTES`: when a
    /// dev box counts as idle and is released (ADR 18).
    pub idle: gpudev_domain::IdlePolicy,
    /// `MAX_BOOKING_DAYS` (14; 0 turns bookings off) and `MAX_BOOKED_GPU_HOURS_PER_USER` (192;
    /// 0 no limit): how far ahead a start may be booked, and how many GPU-hours one user may
    /// have booked and waiting (see [`gpudev_runtime::shared`]).
    pub bookings: gpudev_runtime::shared::BookingLimits,
    /// `RATE_LIMIT_PER_MINUTE` (120): requests per minute per API key.
    pub rate_limit_per_minute: u32,
    /// `RATE_LIMIT_BURST` (30): extra requests allowed in a burst.
    pub rate_limit_burst: u32,
    /// `LOGIN_RATE_LIMIT_PER_MINUTE` (10): login attempts per minute per client address and
    /// identity (the AWS access key id, or the OIDC token's issuer and subject), so one
    /// person's failures do not lock out others behind the same address.
    pub login_rate_limit_per_minute: u32,
    /// `LOGIN_ADDRESS_RATE_LIMIT_PER_MINUTE` (100): login attempts per minute per client address,
    /// whatever the identities, so changing identity on every attempt stays bounded.
    pub login_address_rate_limit_per_minute: u32,
    /// `AUTH_FAILURE_LIMIT` (20): failed API key authentications per client address within
    /// `AUTH_FAILURE_WINDOW_SECONDS` (60) after which the address is answered 429 until the
    /// window ends (see [`crate::auth::AuthFailures`]).
    pub auth_failure_limit: u32,
    /// `AUTH_FAILURE_WINDOW_SECONDS` (60, 1–3600): the window of `AUTH_FAILURE_LIMIT`.
    pub auth_failure_window: Duration,
    /// `BODY_READ_TIMEOUT_SECONDS` (10, 1–300): the longest a request body may take to arrive
    /// (see [`crate::extract::checked_body`]).
    pub body_read_timeout: Duration,
    /// `TRUSTED_PROXIES` (comma-separated addresses and CIDR networks; empty = none): peers
    /// whose `X-Forwarded-For` names the client, for per-address limits and the audit log.
    pub trusted_proxies: TrustedProxies,
    /// `CORS_ALLOWED_ORIGINS` (comma-separated; empty = CORS closed).
    pub cors_allowed_origins: Vec<String>,
    /// `KEY_CACHE_SECONDS` (30, 0–300): how long a verified key is trusted without a lookup while
    /// the change listener is connected (0 disables the cache).
    pub key_cache_ttl: Duration,
    /// `JOB_CACHE_SECONDS` (30, 0–300): how long a job page or job detail is reused without a
    /// query while the change listener is connected (0 disables the cache).
    pub job_cache_ttl: Duration,
    /// `JOB_CACHE_POLL_MS` (100, 10–1000): how often the replica asks whose jobs changed.
    pub job_cache_poll: Duration,
    /// `JOB_CACHE_MAX_MB` (64, 1–4096): memory for cached job answers.
    pub job_cache_max_bytes: usize,
    /// `SHUTDOWN_DRAIN_SECONDS` (5, 0–60): how long readiness fails before the server stops.
    pub shutdown_drain: Duration,
    /// `DISK_DELETE_GRACE_DAYS` (30, 1–365).
    pub disk_delete_grace_days: u32,
    /// `EXTEND_DEFER_SECONDS` (15, 0–120): how long after an extension asked by a client that
    /// does not identify itself as gpudev's (the original client) the active reservation's end
    /// moves (the processor applies it on its next tick after this; ADR 15). 0 applies every
    /// extension at once.
    pub extend_defer: Duration,
    /// `DEFAULT_DISK_SIZE_GB` (100, 10–10000).
    pub default_disk_size_gb: u32,
    /// `GPU_HOURLY_PRICES` (JSON object gpu_type → USD per GPU-hour), for usage reports.
    pub gpu_hourly_prices: BTreeMap<String, f64>,
    /// `OIDC_ISSUERS_JSON` (optional JSON array): the OIDC issuers whose ID tokens log in; none
    /// turns `POST /v1/auth/oidc-login` off. See [`crate::oidc::config`].
    pub oidc_issuers: Vec<IssuerConfig>,
    /// `CONSOLE_PUBLIC_URL` (optional): the console's address as browsers reach it
    /// (`https://gpudev.example.com`); OIDC sign-ins return to `<it>/ui/signin/oidc/callback`.
    /// Unset, the address is taken from each request (scheme and `Host`).
    pub console_public_url: Option<String>,
    /// `OIDC_TIMEOUT_SECONDS` (5, 1–60): timeout of requests to an issuer.
    pub oidc_timeout: Duration,
    /// `OIDC_JWKS_MIN_REFRESH_SECONDS` (30, 0–3600): least time between two fetches of an
    /// issuer's keys caused by tokens with unknown key ids.
    pub oidc_jwks_min_refresh: Duration,
    /// `SECRETS_ENCRYPTION_KEYS` (optional): the keys that seal a submit's environment values
    /// and command; the API seals with the first (ADR 12). Without it, a submit carrying either
    /// is refused (503).
    pub secret_keys: Option<SealingKeys>,
}

impl ApiConfig {
    /// Reads the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(gpudev_runtime::settings::process_env)
    }

    /// Reads settings through `get` (the environment, or a map in tests).
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let env = Env::new(get);
        let get = |k: &str| env.get(k);
        let db = DbConfig::from_lookup(get)?;
        let queue_name = get("QUEUE_NAME").unwrap_or_else(|| gpudev_store::DEFAULT_QUEUE.into());
        let queue =
            Queue::new(&queue_name).map_err(|e| ConfigError::new("QUEUE_NAME", e.to_string()))?;
        let catalog = env.catalog()?;
        let limits = Limits {
            max_duration_hours: env.float("MAX_RESERVATION_HOURS", 24.0, 0.1..=720.0)?,
            max_lifetime_hours: env.float("MAX_LIFETIME_HOURS", 72.0, 0.1..=8760.0)?,
            max_nodes: env.setting(shared::MAX_NODES)?,
        };
        if limits.max_lifetime_hours < limits.max_duration_hours {
            return Err(ConfigError::new(
                "MAX_LIFETIME_HOURS",
                "must be at least MAX_RESERVATION_HOURS",
            ));
        }
        let default_image = env.dev_image()?;
        let gpu_hourly_prices = match get("GPU_HOURLY_PRICES") {
            Some(json) => serde_json::from_str::<BTreeMap<String, f64>>(&json).map_err(|e| {
                ConfigError::new(
                    "GPU_HOURLY_PRICES",
                    format!("not a JSON object of numbers ({e})"),
                )
            })?,
            None => BTreeMap::new(),
        };
        if gpu_hourly_prices
            .values()
            .any(|p| !p.is_finite() || *p < 0.0)
        {
            return Err(ConfigError::new(
                "GPU_HOURLY_PRICES",
                "prices must be non-negative numbers",
            ));
        }
        let list = |k: &str| -> Vec<String> {
            get(k)
                .map(|v| {
                    v.split(',')
                        .map(|s| s.trim().to_owned())
                        .filter(|s| !s.is_empty())
                        .collect()
                })
                .unwrap_or_default()
        };
        let aws_region = get("AWS_REGION").unwrap_or_else(|| "us-east-1".into());
        let mut sts_allowed_hosts = list("STS_ALLOWED_HOSTS");
        if sts_allowed_hosts.is_empty() {
            sts_allowed_hosts = vec![
                "sts.amazonaws.com".into(),
                format!("sts.{aws_region}.amazonaws.com"),
            ];
        }
        Ok(Self {
            db,
            queue,
            api_key_ttl_hours: env.int("API_KEY_TTL_HOURS", 2, 1..=168)?,
            allowed_aws_role: get("ALLOWED_AWS_ROLE")
                .unwrap_or_else(|| "SSOCloudDevGpuReservation".into()),
            admin_aws_role: get("ADMIN_AWS_ROLE"),
            aws_region,
            sts_allowed_hosts,
            aws_login_server_id: server_id(get("AWS_LOGIN_SERVER_ID"))?,
            sts_timeout: env.seconds("STS_TIMEOUT_SECONDS", 5, 1..=60)?,
            sts_endpoint: endpoint_url(&get, "AWS_ENDPOINT_URL_STS")?,
            bind_addr: env.addr("BIND_ADDR", "0.0.0.0:8000")?,
            metrics_addr: env.addr("METRICS_ADDR", "0.0.0.0:9090")?,
            log_format: env.log_format()?,
            catalog,
            limits,
            default_image,
            quotas: env.quotas()?,
            max_queued_per_user: env.max_queued_per_user()?,
            idle: env.idle_policy()?,
            bookings: env.booking_limits()?,
            rate_limit_per_minute: env.int("RATE_LIMIT_PER_MINUTE", 120, 1..=1_000_000)?,
            rate_limit_burst: env.int("RATE_LIMIT_BURST", 30, 0..=1_000_000)?,
            login_rate_limit_per_minute: env.int("LOGIN_RATE_LIMIT_PER_MINUTE", 10, 1..=100_000)?,
            login_address_rate_limit_per_minute: env.int(
                "LOGIN_ADDRESS_RATE_LIMIT_PER_MINUTE",
                100,
                1..=1_000_000,
            )?,
            auth_failure_limit: env.int("AUTH_FAILURE_LIMIT", 20, 1..=1_000_000)?,
            auth_failure_window: env.seconds("AUTH_FAILURE_WINDOW_SECONDS", 60, 1..=3600)?,
            body_read_timeout: env.seconds(
                "BODY_READ_TIMEOUT_SECONDS",
                crate::extract::DEFAULT_BODY_READ_TIMEOUT.as_secs(),
                1..=300,
            )?,
            trusted_proxies: TrustedProxies::parse(&get("TRUSTED_PROXIES").unwrap_or_default())
                .map_err(|e| ConfigError::new("TRUSTED_PROXIES", e))?,
            cors_allowed_origins: list("CORS_ALLOWED_ORIGINS"),
            key_cache_ttl: env.seconds("KEY_CACHE_SECONDS", 30, 0..=300)?,
            job_cache_ttl: env.seconds("JOB_CACHE_SECONDS", 30, 0..=300)?,
            job_cache_poll: Duration::from_millis(env.int("JOB_CACHE_POLL_MS", 100, 10..=1000)?),
            job_cache_max_bytes: usize::try_from(env.int("JOB_CACHE_MAX_MB", 64_u32, 1..=4096)?)
                .unwrap_or(usize::MAX)
                .saturating_mul(1 << 20),
            shutdown_drain: env.seconds("SHUTDOWN_DRAIN_SECONDS", 5, 0..=60)?,
            disk_delete_grace_days: env.int("DISK_DELETE_GRACE_DAYS", 30, 1..=365)?,
            extend_defer: env.seconds("EXTEND_DEFER_SECONDS", 15, 0..=120)?,
            default_disk_size_gb: env.setting(shared::DEFAULT_DISK_SIZE_GB)?,
            gpu_hourly_prices,
            oidc_issuers: {
                let mut issuers = parse_issuers(get("OIDC_ISSUERS_JSON").as_deref())?;
                apply_console_secrets(
                    &mut issuers,
                    get("OIDC_CONSOLE_CLIENT_SECRETS_JSON").as_deref(),
                )?;
                issuers
            },
            console_public_url: console_public_url(get("CONSOLE_PUBLIC_URL"))?,
            oidc_timeout: env.seconds("OIDC_TIMEOUT_SECONDS", 5, 1..=60)?,
            oidc_jwks_min_refresh: env.seconds("OIDC_JWKS_MIN_REFRESH_SECONDS", 30, 0..=3600)?,
            secret_keys: SealingKeys::from_lookup(get)?,
        })
    }
}

fn endpoint_url(
    get: &impl Fn(&str) -> Option<String>,
    var: &'static str,
) -> Result<Option<String>, ConfigError> {
    let Some(raw) = get(var) else {
        return Ok(None);
    };
    let url = raw.trim();
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"));
    match rest {
        Some(host) if !host.is_empty() && !url.chars().any(char::is_whitespace) => {
            Ok(Some(url.to_owned()))
        }
        _ => Err(ConfigError::new(
            var,
            format!("{raw:?} is not an http:// or https:// URL"),
        )),
    }
}

/// `CONSOLE_PUBLIC_URL`: an https:// origin (http:// on loopback), without a path, query or
/// trailing slash.
fn console_public_url(value: Option<String>) -> Result<Option<String>, ConfigError> {
    let Some(raw) = value else {
        return Ok(None);
    };
    let url = raw.trim().trim_end_matches('/');
    let origin_only = url
        .split_once("://")
        .is_some_and(|(_, rest)| !rest.is_empty() && !rest.contains('/'));
    crate::oidc::config::check_url(url)
        .and_then(|()| {
            origin_only
                .then_some(())
                .ok_or_else(|| format!("{url:?} must be a scheme and host without a path"))
        })
        .map_err(|e| ConfigError::new("CONSOLE_PUBLIC_URL", e))?;
    Ok(Some(url.to_owned()))
}

/// `AWS_LOGIN_SERVER_ID`: 1–128 visible ASCII characters, `gpudev` when unset (or empty).
fn server_id(value: Option<String>) -> Result<String, ConfigError> {
    let Some(value) = value else {
        return Ok("gpudev".to_owned());
    };
    if value.is_empty() || value.len() > 128 || !value.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(ConfigError::new(
            "AWS_LOGIN_SERVER_ID",
            "must be 1-128 visible ASCII characters (no spaces)",
        ));
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;
    use gpudev_runtime::settings::lookup_in;

    fn cfg(vars: &[(&str, &str)]) -> Result<ApiConfig, ConfigError> {
        let given = lookup_in(vars);
        ApiConfig::from_lookup(|k| {
            given(k).or_else(|| (k == "DATABASE_URL").then(|| "postgres://u@localhost/db".into()))
        })
    }

    #[test]
    fn defaults_match_the_documented_values() {
        let c = cfg(&[]).unwrap();
        assert_eq!(c.api_key_ttl_hours, 2);
        assert_eq!(c.allowed_aws_role, "SSOCloudDevGpuReservation");
        assert_eq!(c.queue.name(), "gpu_reservations");
        assert_eq!(c.bind_addr.to_string(), "0.0.0.0:8000");
        assert_eq!(c.metrics_addr.to_string(), "0.0.0.0:9090");
        assert_eq!(c.log_format, LogFormat::Json);
        assert_eq!(
            c.sts_allowed_hosts,
            vec!["sts.amazonaws.com", "sts.us-east-1.amazonaws.com"]
        );
        assert_eq!(c.rate_limit_per_minute, 120);
        assert_eq!(c.login_rate_limit_per_minute, 10);
        assert_eq!(c.login_address_rate_limit_per_minute, 100);
        assert_eq!(c.auth_failure_limit, 20);
        assert_eq!(c.auth_failure_window, Duration::from_secs(60));
        assert_eq!(c.body_read_timeout, Duration::from_secs(10));
        assert_eq!(c.sts_endpoint, None);
        assert_eq!(c.aws_login_server_id, "gpudev");
        assert!(c.oidc_issuers.is_empty());
        assert_eq!(c.oidc_timeout, Duration::from_secs(5));
        assert_eq!(c.oidc_jwks_min_refresh, Duration::from_secs(30));
        let local = cfg(&[("AWS_ENDPOINT_URL_STS", "http://127.0.0.1:5000")]).unwrap();
        assert_eq!(local.sts_endpoint.as_deref(), Some("http://127.0.0.1:5000"));
        assert_eq!(c.console_public_url, None);
        let public = cfg(&[("CONSOLE_PUBLIC_URL", "https://gpudev.example.com/")]).unwrap();
        assert_eq!(
            public.console_public_url.as_deref(),
            Some("https://gpudev.example.com")
        );
    }

    #[test]
    fn out_of_range_values_name_their_variable() {
        for (var, value) in [
            ("API_KEY_TTL_HOURS", "0"),
            ("API_KEY_TTL_HOURS", "169"),
            ("BIND_ADDR", "localhost"),
            ("LOG_FORMAT", "xml"),
            ("QUEUE_NAME", "bad-name"),
            ("GPU_CATALOG_JSON", "{}"),
            ("DEV_IMAGE", "Not An Image"),
            ("GPU_HOURLY_PRICES", "[1]"),
            ("MAX_RESERVATION_HOURS", "abc"),
            ("AWS_ENDPOINT_URL_STS", "localhost:5000"),
            (
                "OIDC_ISSUERS_JSON",
                "[{\"issuer\": \"http://idp.example\", \"client_id\": \"c\"}]",
            ),
            ("OIDC_TIMEOUT_SECONDS", "0"),
            ("OIDC_JWKS_MIN_REFRESH_SECONDS", "3601"),
            ("LOGIN_ADDRESS_RATE_LIMIT_PER_MINUTE", "0"),
            ("AUTH_FAILURE_LIMIT", "0"),
            ("AUTH_FAILURE_WINDOW_SECONDS", "3601"),
            ("BODY_READ_TIMEOUT_SECONDS", "0"),
            ("AWS_LOGIN_SERVER_ID", "two words"),
            ("CONSOLE_PUBLIC_URL", "http://gpudev.example.com"),
            ("CONSOLE_PUBLIC_URL", "https://gpudev.example.com/ui"),
            (
                "OIDC_CONSOLE_CLIENT_SECRETS_JSON",
                "{\"https://idp.example\": \"s\"}",
            ),
        ] {
            let err = cfg(&[(var, value)]).unwrap_err();
            assert_eq!(err.variable, var, "{var}={value}: {err}");
        }
        assert_eq!(
            cfg(&[("DATABASE_URL", "::bad::")]).unwrap_err().variable,
            "DATABASE_URL"
        );
    }
}
