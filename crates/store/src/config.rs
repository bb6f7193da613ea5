//! Database settings from the environment.
//!
//! `DATABASE_URL` wins when set; otherwise `POSTGRES_HOST`, `POSTGRES_PORT` (5432), `POSTGRES_USER`
//! (`gpudev`), `POSTGRES_PASSWORD` and `POSTGRES_DB` (`gpudev`). `DB_POOL_SIZE` (16, 1–512) and
//! `DB_CONNECT_TIMEOUT_SECONDS` (5, 1–120) tune the pool; `DB_STATEMENT_TIMEOUT_SECONDS` (10,
//! 1–3600) and `DB_IDLE_IN_TRANSACTION_TIMEOUT_SECONDS` (60, 1–3600) bound every statement and
//! every idle transaction (see [`crate::connect`]).
//!
//! TLS ([`crate::tls`]): `sslmode`, `sslrootcert`, `sslcert` and `sslkey` in `DATABASE_URL`, or
//! `POSTGRES_SSLMODE`, `POSTGRES_SSLROOTCERT`, `POSTGRES_SSLCERT` and `POSTGRES_SSLKEY` (which
//! also apply to a `DATABASE_URL` that does not say; saying one thing in both places with two
//! values is refused).

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use gpudev_runtime::{Env, shared};

use crate::tls::{SslMode, TlsSettings, split_ssl_params};

pub use gpudev_runtime::ConfigError;

/// Where and how to connect. `Debug` and `Display` never show the password.
#[derive(Clone)]
pub struct DbConfig {
    pg: tokio_postgres::Config,
    /// Which variable(s) the settings came from, for error messages.
    pub source: &'static str,
    /// Largest number of pooled connections.
    pub pool_size: usize,
    /// How long to wait for a new connection (and for a pooled one) before giving up.
    pub connect_timeout: Duration,
    /// PostgreSQL's `statement_timeout` on these connections; `None` for none (migrations).
    statement_timeout: Option<Duration>,
    /// PostgreSQL's `idle_in_transaction_session_timeout` on these connections.
    idle_in_transaction_timeout: Duration,
    tls: TlsSettings,
    /// Built from `tls` when the settings are read; `None` for `sslmode=disable`.
    tls_config: Option<Arc<rustls::ClientConfig>>,
}

impl DbConfig {
    /// Reads the settings from the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|k| std::env::var(k).ok())
    }

    /// Reads the settings through `get` (the environment in production, a map in tests).
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let env = Env::new(&get);
        let pool_size = usize::try_from(env.setting(shared::DB_POOL_SIZE)?).unwrap_or(usize::MAX);
        let connect_timeout =
            Duration::from_secs(u64::from(env.setting(shared::DB_CONNECT_TIMEOUT_SECONDS)?));
        let statement_timeout = Duration::from_secs(u64::from(
            env.setting(shared::DB_STATEMENT_TIMEOUT_SECONDS)?,
        ));
        let idle_in_transaction_timeout = Duration::from_secs(u64::from(
            env.setting(shared::DB_IDLE_IN_TRANSACTION_TIMEOUT_SECONDS)?,
        ));

        let mut url_tls = Vec::new();
        let (mut pg, source) = match env.get("DATABASE_URL") {
            Some(url) => {
                let (url, ssl) = split_ssl_params(url.trim())
                    .map_err(|e| ConfigError::new("DATABASE_URL", e))?;
                url_tls = ssl;
                let pg = tokio_postgres::Config::from_str(&url).map_err(|e| {
                    ConfigError::new("DATABASE_URL", format!("not a valid PostgreSQL URL ({e})"))
                })?;
                if pg.get_hosts().is_empty() {
                    return Err(ConfigError::new("DATABASE_URL", "names no host"));
                }
                (pg, "DATABASE_URL")
            }
            None => {
                let host = env.get("POSTGRES_HOST").ok_or_else(|| {
                    ConfigError::new(
                        "DATABASE_URL",
                        "not set, and POSTGRES_HOST is not set either: set one of them",
                    )
                })?;
                let port = env.int("POSTGRES_PORT", 5432_u16, 1..=65535)?;
                let mut pg = tokio_postgres::Config::new();
                pg.host(host.trim())
                    .port(port)
                    .user(env.raw("POSTGRES_USER").as_deref().unwrap_or("gpudev"))
                    .dbname(env.raw("POSTGRES_DB").as_deref().unwrap_or("gpudev"));
                if let Some(pw) = env.raw("POSTGRES_PASSWORD") {
                    pg.password(pw);
                }
                (pg, "POSTGRES_HOST")
            }
        };
        if pg.get_connect_timeout().is_none() {
            pg.connect_timeout(connect_timeout);
        }
        if pg.get_application_name().is_none() {
            pg.application_name("gpudev");
        }
        let (tls, tls_config) = tls_settings(&env, &url_tls)?;
        Ok(Self {
            pg,
            source,
            pool_size,
            connect_timeout,
            statement_timeout: Some(statement_timeout),
            idle_in_transaction_timeout,
            tls,
            tls_config,
        })
    }

    /// Builds settings from a URL directly (tools and tests).
    pub fn from_url(url: &str) -> Result<Self, ConfigError> {
        Self::from_lookup(|k| (k == "DATABASE_URL").then(|| url.to_owned()))
    }

    /// The driver configuration.
    pub fn pg(&self) -> &tokio_postgres::Config {
        &self.pg
    }

    /// The TLS settings (`sslmode` and the certificate files).
    pub fn tls(&self) -> &TlsSettings {
        &self.tls
    }

    /// The rustls configuration for these connections (`None` for `sslmode=disable`).
    pub fn tls_config(&self) -> Option<&Arc<rustls::ClientConfig>> {
        self.tls_config.as_ref()
    }

    /// PostgreSQL's `statement_timeout` on these connections (`None`: no limit).
    pub fn statement_timeout(&self) -> Option<Duration> {
        self.statement_timeout
    }

    /// How long a program waits for an answer the server owes before it drops the connection:
    /// the statement timeout plus [`crate::connect::ANSWER_GRACE`] (`None` without a statement
    /// timeout).
    pub fn answer_timeout(&self) -> Option<Duration> {
        self.statement_timeout
            .map(|t| t + crate::connect::ANSWER_GRACE)
    }

    /// Raises the statement timeout to at least `floor`, for a program whose own statements
    /// legitimately wait that long (the processor's long poll).
    pub fn with_statement_timeout_at_least(mut self, floor: Duration) -> Self {
        self.statement_timeout = self.statement_timeout.map(|t| t.max(floor));
        self
    }

    /// Lifts the statement timeout and the client-side answer bound, for migrations: a schema
    /// change on a large table, or waiting for another process's migration, may take long.
    /// TCP keepalives still notice a peer that vanished.
    pub fn without_statement_timeout(mut self) -> Self {
        self.statement_timeout = None;
        self
    }

    /// The driver configuration for a new session: [`Self::pg`] with the server-side bounds
    /// added to its start-up options (options already in the URL are kept and come first), and
    /// JIT compilation off. PostgreSQL compiles a statement on every execution whose estimated
    /// cost passes `jit_above_cost`, which costs hundreds of milliseconds and never pays for the
    /// short statements these programs run: once a user had thousands of queued reservations,
    /// the generic plan's estimate for the submit statement passed it, and every batch of that
    /// user's submits spent ~200 ms compiling (one key at 64 connections fell from ~4,000 to
    /// 470–1,600 submits/s in `scripts/bench-api`).
    pub fn session_config(&self) -> tokio_postgres::Config {
        let mut pg = self.pg.clone();
        let mut options = pg.get_options().unwrap_or("").trim().to_owned();
        let statement_ms = self.statement_timeout.map_or(0, |t| t.as_millis());
        options.push_str(&format!(
            " -c statement_timeout={statement_ms} -c idle_in_transaction_session_timeout={} \
             -c jit=off",
            self.idle_in_transaction_timeout.as_millis()
        ));
        pg.options(options.trim());
        pg
    }

    /// Sets the application name reported to PostgreSQL (`pg_stat_activity`).
    pub fn with_application_name(mut self, name: &str) -> Self {
        self.pg.application_name(name);
        self
    }

    /// Makes every prepared statement on these connections run a generic plan, made once per
    /// connection, instead of one planned afresh for each call's parameters.
    ///
    /// PostgreSQL plans a prepared statement anew for each of its first five calls and then keeps
    /// doing so whenever the generic plan looks costlier than those; for `LIMIT $n` it always
    /// does (it guesses a tenth of the rows for an unknown limit), so a page of a list was
    /// planned on every request, and planning cost more than running it. The price is that a
    /// statement must not depend on its parameters to find a good plan: no
    /// `$1 IS NULL OR col = $1` filters that only an index on `col` can serve (write one
    /// statement per case instead, as the repositories do). Options already in the URL are kept.
    pub fn with_generic_plans(mut self) -> Self {
        let options = match self.pg.get_options() {
            Some(o) if !o.trim().is_empty() => format!("{o} -c plan_cache_mode=force_generic_plan"),
            _ => "-c plan_cache_mode=force_generic_plan".to_owned(),
        };
        self.pg.options(&options);
        self
    }
}

/// The TLS settings from `DATABASE_URL`'s parameters (`from_url`) and the `POSTGRES_SSL*`
/// variables, with the rustls configuration built from them. An error names the variable that
/// gave the faulty value.
fn tls_settings<F: Fn(&str) -> Option<String>>(
    env: &Env<F>,
    from_url: &[(&'static str, String)],
) -> Result<(TlsSettings, Option<Arc<rustls::ClientConfig>>), ConfigError> {
    let var_of = |param: &str| match param {
        "sslmode" => "POSTGRES_SSLMODE",
        "sslrootcert" => "POSTGRES_SSLROOTCERT",
        "sslcert" => "POSTGRES_SSLCERT",
        _ => "POSTGRES_SSLKEY",
    };
    // Which variable each parameter came from, and its value.
    let mut given: Vec<(&'static str, &'static str, String)> = Vec::new();
    for param in ["sslmode", "sslrootcert", "sslcert", "sslkey"] {
        let in_url = from_url
            .iter()
            .rev()
            .find(|(p, _)| *p == param)
            .map(|(_, v)| v.trim());
        let in_env = env.get(var_of(param));
        match (in_url, in_env) {
            (Some(u), Some(e)) if u != e.trim() => {
                return Err(ConfigError::new(
                    var_of(param),
                    format!(
                        "DATABASE_URL says {param}={u} and this variable says {}: set it in one place",
                        e.trim()
                    ),
                ));
            }
            (Some(u), _) => given.push((param, "DATABASE_URL", u.to_owned())),
            (None, Some(e)) => given.push((param, var_of(param), e.trim().to_owned())),
            (None, None) => {}
        }
    }
    let mut tls = TlsSettings::default();
    for (param, _, value) in &given {
        match *param {
            "sslmode" => {
                tls.mode = SslMode::parse(value)
                    .map_err(|e| ConfigError::new(source_of(&given, "sslmode"), e))?;
            }
            "sslrootcert" => tls.root_cert = Some(value.into()),
            "sslcert" => tls.cert = Some(value.into()),
            _ => tls.key = Some(value.into()),
        }
    }
    let config = tls.client_config().map_err(|e| {
        // A missing file is blamed on the setting that needs it when that one was not given.
        let var = if given.iter().any(|(p, _, _)| *p == e.setting) {
            source_of(&given, e.setting)
        } else {
            source_of(&given, "sslmode")
        };
        ConfigError::new(var, format!("{}: {}", e.setting, e.problem))
    })?;
    Ok((tls, config))
}

/// The variable `param` came from (`POSTGRES_SSLMODE` when it was not given at all).
fn source_of(given: &[(&'static str, &'static str, String)], param: &str) -> &'static str {
    given
        .iter()
        .find(|(p, _, _)| *p == param)
        .map_or("POSTGRES_SSLMODE", |(_, var, _)| *var)
}

impl fmt::Display for DbConfig {
    /// `host:port/dbname as user`, without the password.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let host = match self.pg.get_hosts().first() {
            Some(tokio_postgres::config::Host::Tcp(h)) => h.clone(),
            Some(tokio_postgres::config::Host::Unix(p)) => p.display().to_string(),
            None => "?".into(),
        };
        let port = self.pg.get_ports().first().copied().unwrap_or(5432);
        write!(
            f,
            "{host}:{port}/{} as {}",
            self.pg.get_dbname().unwrap_or("?"),
            self.pg.get_user().unwrap_or("?")
        )
    }
}

impl fmt::Debug for DbConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DbConfig")
            .field("target", &self.to_string())
            .field("source", &self.source)
            .field("pool_size", &self.pool_size)
            .field("statement_timeout", &self.statement_timeout)
            .field("tls", &self.tls)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use gpudev_runtime::settings::lookup_in;

    fn cfg(vars: &[(&str, &str)]) -> Result<DbConfig, ConfigError> {
        DbConfig::from_lookup(lookup_in(vars))
    }

    #[test]
    fn database_url_wins_over_postgres_variables() {
        let c = cfg(&[
            ("DATABASE_URL", "postgres://u:secret@db.example:6543/app"),
            ("POSTGRES_HOST", "other"),
        ])
        .unwrap();
        assert_eq!(c.to_string(), "db.example:6543/app as u");
        assert_eq!(c.source, "DATABASE_URL");
    }

    #[test]
    fn postgres_variables_have_defaults() {
        let c = cfg(&[("POSTGRES_HOST", "pg"), ("POSTGRES_PASSWORD", "pw")]).unwrap();
        assert_eq!(c.to_string(), "pg:5432/gpudev as gpudev");
        assert_eq!(c.pool_size, 16);
    }

    #[test]
    fn missing_settings_name_the_variable() {
        let e = cfg(&[]).unwrap_err();
        assert_eq!(e.variable, "DATABASE_URL");
    }

    #[test]
    fn bad_values_name_their_variable() {
        assert_eq!(
            cfg(&[("DATABASE_URL", "postgres://h/db?bogus=1")])
                .unwrap_err()
                .variable,
            "DATABASE_URL"
        );
        assert_eq!(
            cfg(&[("DATABASE_URL", "not a url at all ===")])
                .unwrap_err()
                .variable,
            "DATABASE_URL"
        );
        let e = cfg(&[("POSTGRES_HOST", "h"), ("POSTGRES_PORT", "70000")]).unwrap_err();
        assert_eq!(e.variable, "POSTGRES_PORT");
        assert!(e.to_string().contains("70000"));
        let e = cfg(&[("POSTGRES_HOST", "h"), ("DB_POOL_SIZE", "many")]).unwrap_err();
        assert_eq!(e.variable, "DB_POOL_SIZE");
    }

    #[test]
    fn sessions_are_told_their_bounds_and_the_answer_bound_is_a_little_longer() {
        let c = cfg(&[
            (
                "DATABASE_URL",
                "postgres://u@h/db?options=-c%20search_path%3Dx",
            ),
            ("DB_STATEMENT_TIMEOUT_SECONDS", "7"),
        ])
        .unwrap();
        assert_eq!(
            c.session_config().get_options(),
            Some(
                "-c search_path=x -c statement_timeout=7000 \
                 -c idle_in_transaction_session_timeout=60000 -c jit=off"
            )
        );
        assert_eq!(c.answer_timeout(), Some(Duration::from_secs(9)));
        let poll = c
            .clone()
            .with_statement_timeout_at_least(Duration::from_secs(20));
        assert_eq!(poll.statement_timeout(), Some(Duration::from_secs(20)));
        let migrate = c.without_statement_timeout();
        assert_eq!(migrate.answer_timeout(), None);
        assert!(
            migrate
                .session_config()
                .get_options()
                .unwrap()
                .contains("statement_timeout=0")
        );
        let e = cfg(&[
            ("POSTGRES_HOST", "h"),
            ("DB_STATEMENT_TIMEOUT_SECONDS", "0"),
        ])
        .unwrap_err();
        assert_eq!(e.variable, "DB_STATEMENT_TIMEOUT_SECONDS");
    }

    #[test]
    fn tls_settings_come_from_the_url_or_the_variables_and_may_not_disagree() {
        let c = cfg(&[("DATABASE_URL", "postgres://u@h/db?sslmode=require")]).unwrap();
        assert_eq!(c.tls().mode, SslMode::Require);
        assert!(c.tls_config().is_some());
        let c = cfg(&[("POSTGRES_HOST", "h"), ("POSTGRES_SSLMODE", "disable")]).unwrap();
        assert_eq!(c.tls().mode, SslMode::Disable);
        assert!(c.tls_config().is_none());
        assert_eq!(
            cfg(&[("POSTGRES_HOST", "h")]).unwrap().tls().mode,
            SslMode::Prefer
        );
        let e = cfg(&[
            ("DATABASE_URL", "postgres://u@h/db?sslmode=require"),
            ("POSTGRES_SSLMODE", "verify-full"),
        ])
        .unwrap_err();
        assert_eq!(e.variable, "POSTGRES_SSLMODE");
        assert!(e.problem.contains("one place"), "{e}");
        let e = cfg(&[("DATABASE_URL", "postgres://u@h/db?sslmode=verify-full")]).unwrap_err();
        assert_eq!(e.variable, "DATABASE_URL");
        assert!(e.problem.contains("sslrootcert"), "{e}");
        let e = cfg(&[
            ("POSTGRES_HOST", "h"),
            ("POSTGRES_SSLMODE", "verify-ca"),
            ("POSTGRES_SSLROOTCERT", "/nonexistent/ca.crt"),
        ])
        .unwrap_err();
        assert_eq!(e.variable, "POSTGRES_SSLROOTCERT");
        assert!(e.problem.contains("/nonexistent/ca.crt"), "{e}");
        let e = cfg(&[("POSTGRES_HOST", "h"), ("POSTGRES_SSLMODE", "on")]).unwrap_err();
        assert_eq!(e.variable, "POSTGRES_SSLMODE");
    }

    #[test]
    fn the_password_is_never_displayed() {
        let c = cfg(&[("DATABASE_URL", "postgres://u:hunter2secret@h/db")]).unwrap();
        assert!(!c.to_string().contains("hunter2secret"));
        assert!(!format!("{c:?}").contains("hunter2secret"));
    }
}
