//! Rate limits shared by every API replica: per API key on authenticated routes; on the login
//! routes per client address and identity, and per address over all identities; and the failed
//! authentications of an address.
//!
//! Each limit is a token bucket in PostgreSQL ([`gpudev_store::rate_limits`], ADR 13): a steady
//! rate per minute plus a burst. A replica holds a small *lease* of tokens per bucket, taken from
//! the database when it has none. A bucket's first lease on a replica is one token; while the
//! client keeps the replica busy each new lease doubles, up to a sixteenth of the bucket, so a busy
//! key costs one statement per many requests and an occasional one a statement per request.
//! Tokens a replica has not used within [`RETURN_AFTER`] go back to the bucket. Together the
//! replicas therefore admit at most what one bucket admits; a client may be refused early while
//! other replicas hold unused tokens of its bucket, at most a sixteenth of the bucket each, for
//! about a second. After the database refuses, the replica refuses the bucket on its own until
//! the next token is due, so a flood costs a statement per token, not per request.
//!
//! When the database cannot be reached within [`DB_BOUND`], requests are let through unchecked
//! for [`UNCHECKED_FOR`] and counted (`gpudev_api_rate_limit_unchecked_total`): a limit is not
//! worth failing requests that may not need the database at all.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use gpudev_store::Pool;
use gpudev_store::rate_limits::{self, Take, Taken};
use sha2::{Digest, Sha256};
use tokio::sync::Mutex as AsyncMutex;

use crate::auth::Caller;
use crate::auth::failures::bucket;
use crate::config::ApiConfig;
use crate::error::ApiError;
use crate::metrics::Metrics;

/// Unused tokens of a lease go back to their bucket after this long without a request.
pub const RETURN_AFTER: Duration = Duration::from_secs(1);
/// A lease taken within this time of the previous one is twice as large.
const GROW_WITHIN: Duration = Duration::from_secs(1);
/// The largest lease is this fraction of its bucket's capacity.
const LEASE_SHARE: u32 = 16;
/// The longest a request waits for the database to hand out tokens.
pub const DB_BOUND: Duration = Duration::from_secs(1);
/// How long a bucket is let through unchecked after the database could not be reached.
pub const UNCHECKED_FOR: Duration = Duration::from_secs(1);
/// A bucket not used for this long is forgotten by the replica.
const FORGET_AFTER: Duration = Duration::from_secs(60);
/// Most buckets a replica keeps leases for; beyond it, each request asks the database.
const MAX_LEASES: usize = 100_000;

/// What a limit counts; the names are those of the `rate_limit_buckets.scope` column and of the
/// `limit` label of `gpudev_api_rate_limited_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Scope {
    /// Requests of one API key.
    ApiKey,
    /// Logins of one identity from one address.
    LoginIdentity,
    /// Logins from one address.
    LoginAddress,
    /// Failed authentications from one address.
    AuthFailures,
    /// Reports of one dev box agent (by its token).
    AgentReport,
}

impl Scope {
    /// The scope's name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ApiKey => "api_key",
            Self::LoginIdentity => "login_identity",
            Self::LoginAddress => "login_address",
            Self::AuthFailures => "auth_failures",
            Self::AgentReport => "agent_report",
        }
    }
}

/// Reports one dev box agent may send per minute.
pub const AGENT_REPORTS_PER_MINUTE: u32 = 6;
/// Extra agent reports allowed in a burst.
const AGENT_REPORT_BURST: u32 = 4;

/// One limit's numbers.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Limit {
    /// Tokens per second.
    rate: f64,
    /// The bucket's size.
    capacity: u32,
    /// The limit as configured, shown in the 429 answer.
    shown: u32,
}

impl Limit {
    fn per_minute(per_minute: u32, burst: u32) -> Self {
        let per_minute = per_minute.max(1);
        Self {
            rate: f64::from(per_minute) / 60.0,
            capacity: per_minute.saturating_add(burst),
            shown: per_minute,
        }
    }

    fn per_window(count: u32, window: Duration) -> Self {
        let count = count.max(1);
        Self {
            rate: f64::from(count) / window.as_secs_f64().max(0.001),
            capacity: count,
            shown: count,
        }
    }

    fn max_lease(&self) -> u32 {
        (self.capacity / LEASE_SHARE).max(1)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Bucket {
    scope: Scope,
    key: String,
}

/// A replica's share of one bucket.
#[derive(Debug)]
struct Lease {
    limit: Limit,
    /// Tokens taken from the bucket and not yet used.
    tokens: u32,
    /// The size of the latest lease.
    size: u32,
    /// When the latest lease was taken.
    filled: Option<Instant>,
    /// When the bucket was last asked for a token.
    used: Instant,
    /// Refused without asking the database until then.
    denied_until: Option<Instant>,
    /// Let through without asking the database until then.
    unchecked_until: Option<Instant>,
}

impl Lease {
    fn new(limit: Limit, now: Instant) -> Self {
        Self {
            limit,
            tokens: 0,
            size: 0,
            filled: None,
            used: now,
            denied_until: None,
            unchecked_until: None,
        }
    }
}

/// The rate limits of one API process.
#[derive(Debug)]
pub struct RateLimits {
    pool: Pool,
    api_key_default: Limit,
    burst: u32,
    login_identity: Limit,
    login_address: Limit,
    auth_failures: Limit,
    agent_report: Limit,
    leases: Mutex<HashMap<Bucket, Arc<AsyncMutex<Lease>>>>,
}

impl RateLimits {
    /// The limits `config` sets, kept in `pool`'s database.
    pub fn new(pool: Pool, config: &ApiConfig) -> Self {
        Self {
            pool,
            api_key_default: Limit::per_minute(
                config.rate_limit_per_minute,
                config.rate_limit_burst,
            ),
            burst: config.rate_limit_burst,
            login_identity: Limit::per_minute(config.login_rate_limit_per_minute, 0),
            login_address: Limit::per_minute(config.login_address_rate_limit_per_minute, 0),
            auth_failures: Limit::per_window(config.auth_failure_limit, config.auth_failure_window),
            agent_report: Limit::per_minute(AGENT_REPORTS_PER_MINUTE, AGENT_REPORT_BURST),
            leases: Mutex::new(HashMap::new()),
        }
    }

    /// Counts one request of `caller`; 429 when over the key's limit (its own
    /// `rate_limit_per_minute` when it has one).
    pub async fn check_key(&self, caller: &Caller, metrics: &Metrics) -> Result<(), ApiError> {
        let limit = match caller.rate_limit_per_minute {
            Some(own) if own > 0 => Limit::per_minute(own.unsigned_abs(), self.burst),
            _ => self.api_key_default,
        };
        self.admit(Scope::ApiKey, caller.key_id.to_string(), limit, metrics)
            .await
    }

    /// Counts one report of the agent whose token hashes to `token_hash`; 429 beyond
    /// [`AGENT_REPORTS_PER_MINUTE`] (an agent reports once a minute, and retries a failed
    /// report a few times).
    pub async fn check_agent(&self, token_hash: &str, metrics: &Metrics) -> Result<(), ApiError> {
        self.admit(
            Scope::AgentReport,
            token_hash[..32.min(token_hash.len())].to_owned(),
            self.agent_report,
            metrics,
        )
        .await
    }

    /// Counts one login attempt from `ip` as `identity` (what the login claims to be, before
    /// any check: an access key id, an issuer and subject); 429 when over the limit of that
    /// identity from that address, or of the address as a whole. Keyed by both, someone failing
    /// again and again is throttled without locking out the others behind the same NAT or proxy.
    /// The identity is kept only as a hash.
    pub async fn check_login(
        &self,
        ip: IpAddr,
        identity: &str,
        metrics: &Metrics,
    ) -> Result<(), ApiError> {
        let ip = bucket(ip);
        let who = hex::encode(&Sha256::digest(identity.as_bytes())[..16]);
        self.admit(
            Scope::LoginIdentity,
            format!("{ip} {who}"),
            self.login_identity,
            metrics,
        )
        .await?;
        self.admit(
            Scope::LoginAddress,
            ip.to_string(),
            self.login_address,
            metrics,
        )
        .await
    }

    /// Charges a failed authentication from `ip` to the address's allowance, shared by every
    /// replica. Once it is used up, [`auth_failures_denied`](Self::auth_failures_denied) answers
    /// until the next failure is allowed.
    pub async fn charge_auth_failure(&self, ip: IpAddr, metrics: &Metrics) {
        let key = bucket(ip).to_string();
        let _ = self
            .take_one(Scope::AuthFailures, key, self.auth_failures, true, metrics)
            .await;
    }

    /// How long `ip` is still refused for having used its failed authentications (on any
    /// replica, as far as this one learned when it last charged a failure of that address).
    pub fn auth_failures_denied(&self, ip: IpAddr) -> Option<Duration> {
        let key = Bucket {
            scope: Scope::AuthFailures,
            key: bucket(ip).to_string(),
        };
        let cell = self.lock_leases().get(&key).cloned()?;
        let lease = cell.try_lock().ok()?;
        let now = Instant::now();
        lease
            .denied_until
            .filter(|until| *until > now)
            .map(|until| until - now)
    }

    /// Gives back the tokens of leases idle for [`RETURN_AFTER`] and forgets buckets idle for a
    /// minute; with `forget_full`, also deletes the buckets that have filled up from the
    /// database. Call every second or so.
    pub async fn tick(&self, forget_full: bool) {
        let now = Instant::now();
        let mut unused: Vec<(Scope, String, u32)> = Vec::new();
        self.lock_leases().retain(|bucket, cell| {
            let Ok(mut lease) = cell.try_lock() else {
                return true;
            };
            let idle = now.saturating_duration_since(lease.used);
            if lease.tokens > 0 && idle >= RETURN_AFTER {
                unused.push((bucket.scope, bucket.key.clone(), lease.tokens));
                lease.tokens = 0;
            }
            let denied = lease.denied_until.is_some_and(|until| until > now);
            idle < FORGET_AFTER || lease.tokens > 0 || denied
        });
        if unused.is_empty() && !forget_full {
            return;
        }
        let res = tokio::time::timeout(DB_BOUND * 5, async {
            let db = self.pool.get().await?;
            let back: Vec<(&str, &str, u32)> = unused
                .iter()
                .map(|(scope, key, n)| (scope.as_str(), key.as_str(), *n))
                .collect();
            rate_limits::give_back(&*db, &back).await?;
            if forget_full {
                rate_limits::forget_full(&*db).await?;
            }
            Ok::<_, gpudev_store::StoreError>(())
        })
        .await;
        match res {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::warn!(error = %e, "could not return unused rate-limit tokens"),
            Err(_) => tracing::warn!("returning unused rate-limit tokens timed out"),
        }
    }

    fn lock_leases(&self) -> std::sync::MutexGuard<'_, HashMap<Bucket, Arc<AsyncMutex<Lease>>>> {
        self.leases.lock().unwrap_or_else(|e| e.into_inner())
    }

    async fn admit(
        &self,
        scope: Scope,
        key: String,
        limit: Limit,
        metrics: &Metrics,
    ) -> Result<(), ApiError> {
        match self.take_one(scope, key, limit, false, metrics).await {
            None => Ok(()),
            Some(wait) => {
                metrics
                    .rate_limited
                    .with_label_values(&[scope.as_str()])
                    .inc();
                Err(too_many(wait, limit.shown))
            }
        }
    }

    /// Uses one token of the bucket, from the replica's lease or a new one; the time until the
    /// next token when there is none. With `deny_at_empty`, the bucket is refused from the moment
    /// its last token is used (for failures, where the token is charged after the fact).
    async fn take_one(
        &self,
        scope: Scope,
        key: String,
        limit: Limit,
        deny_at_empty: bool,
        metrics: &Metrics,
    ) -> Option<Duration> {
        let bucket = Bucket { scope, key };
        let cell = {
            let mut leases = self.lock_leases();
            let now = Instant::now();
            match leases.get(&bucket) {
                Some(cell) => cell.clone(),
                None if leases.len() >= MAX_LEASES => {
                    Arc::new(AsyncMutex::new(Lease::new(limit, now)))
                }
                None => leases
                    .entry(bucket.clone())
                    .or_insert_with(|| Arc::new(AsyncMutex::new(Lease::new(limit, now))))
                    .clone(),
            }
        };
        let mut lease = cell.lock().await;
        let now = Instant::now();
        lease.used = now;
        if lease.limit != limit {
            lease.limit = limit;
            lease.size = 0;
        }
        if lease.tokens > 0 {
            lease.tokens -= 1;
            return None;
        }
        if let Some(until) = lease.denied_until {
            if until > now {
                return Some(until - now);
            }
            lease.denied_until = None;
        }
        if let Some(until) = lease.unchecked_until {
            if until > now {
                metrics
                    .rate_limit_unchecked
                    .with_label_values(&[scope.as_str()])
                    .inc();
                return None;
            }
            lease.unchecked_until = None;
        }
        let busy = lease
            .filled
            .is_some_and(|at| now.saturating_duration_since(at) < GROW_WITHIN);
        lease.size = if busy {
            lease.size.saturating_mul(2).clamp(1, limit.max_lease())
        } else {
            1
        };
        let take = Take {
            scope: scope.as_str(),
            key: &bucket.key,
            rate: limit.rate,
            capacity: f64::from(limit.capacity),
            want: lease.size,
        };
        let answer = self.take(take).await;
        // Deadlines count from the answer: the take itself may have taken a while.
        let now = Instant::now();
        match answer {
            Ok(taken) => {
                lease.filled = Some(now);
                let wait = Duration::from_secs_f64(taken.seconds_to_next_token(limit.rate))
                    .max(Duration::from_millis(1));
                if taken.granted == 0 {
                    lease.denied_until = Some(now + wait);
                    return Some(wait);
                }
                lease.tokens = taken.granted - 1;
                if deny_at_empty && lease.tokens == 0 && taken.tokens_left < 1.0 {
                    lease.denied_until = Some(now + wait);
                }
                None
            }
            Err(e) => {
                tracing::warn!(
                    error = %e,
                    limit = scope.as_str(),
                    "rate limits unreachable; letting requests through unchecked"
                );
                lease.unchecked_until = Some(now + UNCHECKED_FOR);
                metrics
                    .rate_limit_unchecked
                    .with_label_values(&[scope.as_str()])
                    .inc();
                None
            }
        }
    }

    async fn take(&self, take: Take<'_>) -> Result<Taken, anyhow::Error> {
        let taken = tokio::time::timeout(DB_BOUND, async {
            let db = self.pool.get().await?;
            let mut taken = rate_limits::take(&*db, std::slice::from_ref(&take)).await?;
            taken
                .pop()
                .ok_or_else(|| anyhow::anyhow!("no answer for the bucket"))
        })
        .await
        .map_err(|_| anyhow::anyhow!("no answer within {DB_BOUND:?}"))??;
        Ok(taken)
    }
}

/// 429 with the time until a request would be accepted, rounded up to whole seconds.
pub(crate) fn too_many(wait: Duration, limit: u32) -> ApiError {
    ApiError::TooManyRequests {
        retry_after: wait.as_secs() + u64::from(wait.subsec_nanos() > 0),
        limit,
    }
}
