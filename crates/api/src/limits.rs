//! Rate limits: per API key on authenticated routes; on the login routes per client address and
//! identity, and per address over all identities.
//!
//! All are GCRA limiters from the `governor` crate: a steady rate per minute plus a burst. A key
//! with its own `rate_limit_per_minute` gets a limiter of its own. Failed authentications are
//! limited apart, in [`crate::auth::AuthFailures`].

use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultDirectRateLimiter, DefaultKeyedRateLimiter, Quota};

use crate::auth::Caller;
use crate::error::ApiError;
use crate::metrics::Metrics;

/// The limiters of one API process.
#[derive(Debug)]
pub struct RateLimits {
    per_minute: u32,
    burst: u32,
    keys: DefaultKeyedRateLimiter<i64>,
    custom: Mutex<HashMap<i64, (u32, Arc<DefaultDirectRateLimiter>)>>,
    login_per_minute: u32,
    logins: DefaultKeyedRateLimiter<(IpAddr, u64)>,
    login_address_per_minute: u32,
    login_addresses: DefaultKeyedRateLimiter<IpAddr>,
    /// Hashes login identities with a per-process secret, so nobody can pick identities that
    /// share an allowance with someone else's.
    identities: RandomState,
}

fn quota(per_minute: u32, burst: u32) -> Quota {
    let rate = NonZeroU32::new(per_minute.max(1)).unwrap_or(NonZeroU32::MIN);
    let burst = NonZeroU32::new(per_minute.max(1).saturating_add(burst)).unwrap_or(NonZeroU32::MIN);
    Quota::per_minute(rate).allow_burst(burst)
}

impl RateLimits {
    /// `per_minute` requests per key with `burst` extra; `login_per_minute` logins per address
    /// and identity, and `login_address_per_minute` per address.
    pub fn new(
        per_minute: u32,
        burst: u32,
        login_per_minute: u32,
        login_address_per_minute: u32,
    ) -> Self {
        Self {
            per_minute,
            burst,
            keys: DefaultKeyedRateLimiter::keyed(quota(per_minute, burst)),
            custom: Mutex::new(HashMap::new()),
            login_per_minute,
            logins: DefaultKeyedRateLimiter::keyed(quota(login_per_minute, 0)),
            login_address_per_minute,
            login_addresses: DefaultKeyedRateLimiter::keyed(quota(login_address_per_minute, 0)),
            identities: RandomState::new(),
        }
    }

    /// Counts one request of `caller`; 429 when over the key's limit.
    pub fn check_key(&self, caller: &Caller, metrics: &Metrics) -> Result<(), ApiError> {
        let verdict = match caller.rate_limit_per_minute {
            Some(limit) if limit > 0 => {
                let limit = limit as u32;
                let limiter = {
                    let mut custom = self.custom.lock().map_err(|_| {
                        ApiError::internal(anyhow::anyhow!("rate limiter lock poisoned"))
                    })?;
                    let entry = custom.entry(caller.key_id).or_insert_with(|| {
                        (
                            limit,
                            Arc::new(DefaultDirectRateLimiter::direct(quota(limit, self.burst))),
                        )
                    });
                    if entry.0 != limit {
                        *entry = (
                            limit,
                            Arc::new(DefaultDirectRateLimiter::direct(quota(limit, self.burst))),
                        );
                    }
                    entry.1.clone()
                };
                limiter.check().map_err(|n| (n, limit))
            }
            _ => self
                .keys
                .check_key(&caller.key_id)
                .map_err(|n| (n, self.per_minute)),
        };
        verdict.map_err(|(not_until, limit)| {
            metrics.rate_limited.with_label_values(&["api_key"]).inc();
            too_many(
                not_until.wait_time_from(DefaultClock::default().now()),
                limit,
            )
        })
    }

    /// Counts one login attempt from `ip` as `identity` (what the login claims to be, before
    /// any check: an access key id, an issuer and subject); 429 when over the limit of that
    /// identity from that address, or of the address as a whole. Keyed by both, someone failing
    /// again and again is throttled without locking out the others behind the same NAT or proxy.
    pub fn check_login(
        &self,
        ip: IpAddr,
        identity: &str,
        metrics: &Metrics,
    ) -> Result<(), ApiError> {
        let ip = crate::auth::failures::bucket(ip);
        let who = self.identities.hash_one(identity);
        let now = || DefaultClock::default().now();
        self.logins.check_key(&(ip, who)).map_err(|not_until| {
            metrics
                .rate_limited
                .with_label_values(&["login_identity"])
                .inc();
            too_many(not_until.wait_time_from(now()), self.login_per_minute)
        })?;
        self.login_addresses.check_key(&ip).map_err(|not_until| {
            metrics
                .rate_limited
                .with_label_values(&["login_address"])
                .inc();
            too_many(
                not_until.wait_time_from(now()),
                self.login_address_per_minute,
            )
        })
    }

    /// Drops state of keys and addresses not seen recently (call periodically).
    pub fn shrink(&self) {
        self.keys.retain_recent();
        self.logins.retain_recent();
        self.login_addresses.retain_recent();
        if let Ok(mut custom) = self.custom.lock()
            && custom.len() > 10_000
        {
            custom.clear();
        }
    }
}

/// 429 with the time until a request would be accepted, rounded up to whole seconds.
pub(crate) fn too_many(wait: std::time::Duration, limit: u32) -> ApiError {
    ApiError::TooManyRequests {
        retry_after: wait.as_secs() + u64::from(wait.subsec_nanos() > 0),
        limit,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use gpudev_store::users::Role;

    fn caller(key_id: i64, limit: Option<i32>) -> Caller {
        Caller {
            user_id: 1,
            username: gpudev_domain::Username::parse("u").unwrap(),
            role: Role::User,
            key_id,
            key_expires_at: chrono::Utc::now(),
            rate_limit_per_minute: limit,
            key_auth_method: "admin".into(),
            key_auth_issuer: None,
        }
    }

    #[test]
    fn a_key_gets_its_rate_plus_burst_then_429_with_a_retry_time() {
        let limits = RateLimits::new(3, 2, 10, 100);
        let metrics = Metrics::new().unwrap();
        let c = caller(1, None);
        for _ in 0..5 {
            assert!(limits.check_key(&c, &metrics).is_ok());
        }
        match limits.check_key(&c, &metrics) {
            Err(ApiError::TooManyRequests { retry_after, limit }) => {
                assert!(retry_after >= 1);
                assert_eq!(limit, 3);
            }
            other => panic!("expected 429, got {other:?}"),
        }
        assert!(
            limits.check_key(&caller(2, None), &metrics).is_ok(),
            "keys are independent"
        );
    }

    #[test]
    fn a_per_key_override_replaces_the_default() {
        let limits = RateLimits::new(1000, 0, 10, 100);
        let metrics = Metrics::new().unwrap();
        let c = caller(7, Some(2));
        assert!(limits.check_key(&c, &metrics).is_ok());
        assert!(limits.check_key(&c, &metrics).is_ok());
        assert!(limits.check_key(&c, &metrics).is_err());
    }

    #[test]
    fn logins_are_limited_per_address_and_identity_and_per_address() {
        let limits = RateLimits::new(100, 0, 2, 5);
        let metrics = Metrics::new().unwrap();
        let a: IpAddr = "127.0.0.1".parse().unwrap();
        let b: IpAddr = "127.0.0.2".parse().unwrap();
        assert!(limits.check_login(a, "mallory", &metrics).is_ok());
        assert!(limits.check_login(a, "mallory", &metrics).is_ok());
        assert!(limits.check_login(a, "mallory", &metrics).is_err());
        assert!(
            limits.check_login(a, "alice", &metrics).is_ok(),
            "another identity behind the same address"
        );
        assert!(limits.check_login(b, "mallory", &metrics).is_ok());
        // Changing identity every time runs into the address's own limit.
        assert!(limits.check_login(a, "x1", &metrics).is_ok());
        assert!(limits.check_login(a, "x2", &metrics).is_ok());
        assert!(limits.check_login(a, "x3", &metrics).is_err());
    }
}
