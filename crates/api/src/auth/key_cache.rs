use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use super::Caller;

/// Most keys held; beyond this the cache is cleared (cheap, and keys are re-verified in one query).
const MAX_ENTRIES: usize = 100_000;

/// Verified keys by hash, trusted for a short time and only while the change listener is live.
#[derive(Debug)]
pub struct KeyCache {
    ttl: Duration,
    live: AtomicBool,
    entries: Mutex<HashMap<String, (Caller, Instant)>>,
}

impl KeyCache {
    /// A cache trusting entries for `ttl` (zero disables it).
    pub fn new(ttl: Duration) -> Self {
        Self {
            ttl,
            live: AtomicBool::new(false),
            entries: Mutex::new(HashMap::new()),
        }
    }

    /// The cached caller for a key hash, if fresh and the cache is trusted.
    pub fn get(&self, hash: &str) -> Option<Caller> {
        if self.ttl.is_zero() || !self.live.load(Ordering::Acquire) {
            return None;
        }
        let entries = self.entries.lock().ok()?;
        let (caller, at) = entries.get(hash)?;
        let fresh = at.elapsed() < self.ttl && caller.key_expires_at > chrono::Utc::now();
        fresh.then(|| caller.clone())
    }

    /// Remembers a verified key.
    pub fn put(&self, hash: String, caller: Caller) {
        if self.ttl.is_zero() || !self.live.load(Ordering::Acquire) {
            return;
        }
        if let Ok(mut entries) = self.entries.lock() {
            if entries.len() >= MAX_ENTRIES {
                entries.clear();
            }
            entries.insert(hash, (caller, Instant::now()));
        }
    }

    /// Forgets every key of one user (their key was revoked, or they were disabled).
    pub fn invalidate_user(&self, user_id: i64) {
        if let Ok(mut entries) = self.entries.lock() {
            entries.retain(|_, (c, _)| c.user_id != user_id);
        }
    }

    /// Forgets everything.
    pub fn clear(&self) {
        if let Ok(mut entries) = self.entries.lock() {
            entries.clear();
        }
    }

    /// Trusts the cache (the listener is connected) or stops trusting and clears it.
    pub fn set_live(&self, live: bool) {
        if !live {
            self.clear();
        }
        self.live.store(live, Ordering::Release);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use gpudev_store::users::Role;

    fn caller(user_id: i64) -> Caller {
        Caller {
            user_id,
            username: gpudev_domain::Username::parse(&format!("u{user_id}")).unwrap(),
            role: Role::User,
            key_id: user_id,
            key_expires_at: chrono::Utc::now() + chrono::Duration::hours(1),
            rate_limit_per_minute: None,
            key_auth_method: "admin".into(),
            key_auth_issuer: None,
        }
    }

    #[test]
    fn nothing_is_served_until_the_listener_is_live() {
        let c = KeyCache::new(Duration::from_secs(30));
        c.put("h".into(), caller(1));
        assert!(c.get("h").is_none());
        c.set_live(true);
        c.put("h".into(), caller(1));
        assert_eq!(c.get("h").map(|c| c.user_id), Some(1));
        c.set_live(false);
        assert!(c.get("h").is_none(), "losing the listener drops trust");
    }

    #[test]
    fn invalidating_a_user_drops_only_their_keys() {
        let c = KeyCache::new(Duration::from_secs(30));
        c.set_live(true);
        c.put("a".into(), caller(1));
        c.put("b".into(), caller(2));
        c.invalidate_user(1);
        assert!(c.get("a").is_none());
        assert!(c.get("b").is_some());
    }

    #[test]
    fn a_zero_ttl_disables_the_cache_and_expired_keys_are_not_served() {
        let off = KeyCache::new(Duration::ZERO);
        off.set_live(true);
        off.put("a".into(), caller(1));
        assert!(off.get("a").is_none());
        let c = KeyCache::new(Duration::from_secs(30));
        c.set_live(true);
        let mut expired = caller(3);
        expired.key_expires_at = chrono::Utc::now() - chrono::Duration::seconds(1);
        c.put("x".into(), expired);
        assert!(c.get("x").is_none());
    }
}
