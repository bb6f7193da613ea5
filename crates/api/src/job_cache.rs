//! The job pages and job details a replica has answered recently, kept as ready-to-send JSON.
//!
//! Clients poll: the CLI reads one job every few seconds while it waits for its GPUs, and
//! `gpu-dev list` reads the newest page. Between changes the answer is the same, so each replica
//! keeps it per user and drops a user's answers as soon as anything about their jobs changes:
//!
//! - the database's statement triggers record in `job_changes` the users whose reservations or
//!   events a statement touched (processor, expiry, other replicas), and the replica reads that
//!   record every `JOB_CACHE_POLL_MS` (100 ms by default);
//! - a replica drops a user's answers itself after any state-changing request of theirs, before
//!   the response leaves, so a client always reads its own writes on the same replica.
//!
//! The cache is trusted only while that reader is connected (like the key cache). A read
//! takes a [`Ticket`] before it queries; its answer is stored only if the user was not
//! invalidated since, so a read that raced a change never stores what it saw before the change.
//! Every entry also has a time limit, and a page that shows a queued job's minutes-to-start is
//! kept only until that number would change.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use actix_web::web::Bytes;
use uuid::Uuid;

/// Which answer of a user's is cached.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum View {
    /// `GET /v1/jobs` with these statuses (as given, deduplicated), limit and offset.
    Page {
        /// The status filter in a canonical text form.
        statuses: String,
        /// Page size.
        limit: i64,
        /// Jobs skipped.
        offset: i64,
    },
    /// `GET /v1/jobs/{id}` by full id, read by its owner.
    Job(Uuid),
}

/// Taken before a read's query; allows storing its answer only if nothing changed meanwhile.
#[derive(Debug, Clone, Copy)]
pub struct Ticket {
    user_id: i64,
    epoch: u64,
}

#[derive(Debug)]
struct Entry {
    body: Bytes,
    fresh_until: Instant,
}

#[derive(Debug, Default)]
struct Inner {
    /// Bumped by every invalidation.
    epoch: u64,
    /// Tickets older than this may not store (the invalidation history before it was dropped).
    floor: u64,
    /// The epoch of each user's latest invalidation.
    invalidated: HashMap<i64, u64>,
    entries: HashMap<i64, HashMap<View, Entry>>,
    bytes: usize,
}

/// Most users whose latest invalidation is remembered; beyond this the history is dropped and
/// reads in flight store nothing.
const MAX_REMEMBERED: usize = 100_000;

/// Recent answers by user, with the rules above.
#[derive(Debug)]
pub struct JobCache {
    ttl: Duration,
    max_bytes: usize,
    live: AtomicBool,
    inner: Mutex<Inner>,
}

impl JobCache {
    /// A cache keeping answers for at most `ttl` (zero disables it) and `max_bytes` of bodies in
    /// all.
    pub fn new(ttl: Duration, max_bytes: usize) -> Self {
        Self {
            ttl,
            max_bytes,
            live: AtomicBool::new(false),
            inner: Mutex::new(Inner::default()),
        }
    }

    fn enabled(&self) -> bool {
        !self.ttl.is_zero() && self.live.load(Ordering::Acquire)
    }

    /// The cached answer, if any and still fresh.
    pub fn get(&self, user_id: i64, view: &View) -> Option<Bytes> {
        if !self.enabled() {
            return None;
        }
        let inner = self.inner.lock().ok()?;
        let entry = inner.entries.get(&user_id)?.get(view)?;
        (Instant::now() < entry.fresh_until).then(|| entry.body.clone())
    }

    /// Starts a read of `user_id`'s jobs.
    pub fn ticket(&self, user_id: i64) -> Ticket {
        let epoch = self.inner.lock().map_or(0, |i| i.epoch);
        Ticket { user_id, epoch }
    }

    /// Stores a read's answer unless the user was invalidated after its ticket was taken. It is
    /// served until `stale_at` at the latest (and never beyond the cache's time limit).
    pub fn put(&self, ticket: Ticket, view: View, body: Bytes, stale_at: Option<Instant>) {
        if !self.enabled() {
            return;
        }
        let now = Instant::now();
        let fresh_until = stale_at.map_or(now + self.ttl, |at| at.min(now + self.ttl));
        if fresh_until <= now || body.len() > self.max_bytes {
            return;
        }
        let Ok(mut inner) = self.inner.lock() else {
            return;
        };
        let changed_since = inner
            .invalidated
            .get(&ticket.user_id)
            .is_some_and(|&at| at > ticket.epoch);
        if ticket.epoch < inner.floor || changed_since {
            return;
        }
        if inner.bytes + body.len() > self.max_bytes {
            inner.evict_stale(now);
            if inner.bytes + body.len() > self.max_bytes {
                inner.entries.clear();
                inner.bytes = 0;
            }
        }
        inner.bytes += body.len();
        let old = inner
            .entries
            .entry(ticket.user_id)
            .or_default()
            .insert(view, Entry { body, fresh_until });
        if let Some(old) = old {
            inner.bytes -= old.body.len();
        }
    }

    /// Drops every answer of these users; reads of theirs in flight will not store.
    pub fn invalidate_users(&self, user_ids: impl IntoIterator<Item = i64>) {
        let Ok(mut inner) = self.inner.lock() else {
            return;
        };
        inner.epoch += 1;
        let epoch = inner.epoch;
        if inner.invalidated.len() >= MAX_REMEMBERED {
            inner.invalidated.clear();
            inner.floor = epoch;
        }
        for user_id in user_ids {
            inner.invalidated.insert(user_id, epoch);
            if let Some(views) = inner.entries.remove(&user_id) {
                let freed: usize = views.values().map(|e| e.body.len()).sum();
                inner.bytes -= freed;
            }
        }
    }

    /// Drops everything; reads in flight will not store.
    pub fn clear(&self) {
        if let Ok(mut inner) = self.inner.lock() {
            inner.epoch += 1;
            inner.floor = inner.epoch;
            inner.invalidated.clear();
            inner.entries.clear();
            inner.bytes = 0;
        }
    }

    /// Trusts the cache (the listener is connected) or stops trusting and clears it.
    pub fn set_live(&self, live: bool) {
        if !live {
            self.live.store(false, Ordering::Release);
        }
        self.clear();
        if live {
            self.live.store(true, Ordering::Release);
        }
    }

    /// Bytes of answers held.
    pub fn bytes(&self) -> usize {
        self.inner.lock().map_or(0, |i| i.bytes)
    }
}

impl Inner {
    fn evict_stale(&mut self, now: Instant) {
        let mut freed = 0;
        self.entries.retain(|_, views| {
            views.retain(|_, e| {
                let keep = now < e.fresh_until;
                if !keep {
                    freed += e.body.len();
                }
                keep
            });
            !views.is_empty()
        });
        self.bytes -= freed;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn page(limit: i64) -> View {
        View::Page {
            statuses: String::new(),
            limit,
            offset: 0,
        }
    }

    fn live(ttl: u64) -> JobCache {
        let c = JobCache::new(Duration::from_secs(ttl), 1 << 20);
        c.set_live(true);
        c
    }

    #[test]
    fn nothing_is_kept_until_the_listener_is_live_or_with_a_zero_ttl() {
        let c = JobCache::new(Duration::from_secs(30), 1 << 20);
        c.put(c.ticket(1), page(10), Bytes::from_static(b"a"), None);
        assert!(c.get(1, &page(10)).is_none());
        c.set_live(true);
        c.put(c.ticket(1), page(10), Bytes::from_static(b"a"), None);
        assert_eq!(c.get(1, &page(10)).as_deref(), Some(&b"a"[..]));
        c.set_live(false);
        assert!(
            c.get(1, &page(10)).is_none(),
            "losing the listener drops trust"
        );
        c.set_live(true);
        assert!(c.get(1, &page(10)).is_none(), "and what was kept before");

        let off = JobCache::new(Duration::ZERO, 1 << 20);
        off.set_live(true);
        off.put(off.ticket(1), page(10), Bytes::from_static(b"a"), None);
        assert!(off.get(1, &page(10)).is_none());
    }

    #[test]
    fn invalidating_a_user_drops_only_their_answers() {
        let c = live(30);
        c.put(c.ticket(1), page(10), Bytes::from_static(b"a"), None);
        c.put(
            c.ticket(1),
            View::Job(Uuid::nil()),
            Bytes::from_static(b"b"),
            None,
        );
        c.put(c.ticket(2), page(10), Bytes::from_static(b"c"), None);
        c.invalidate_users([1]);
        assert!(c.get(1, &page(10)).is_none());
        assert!(c.get(1, &View::Job(Uuid::nil())).is_none());
        assert!(c.get(2, &page(10)).is_some());
        assert_eq!(c.bytes(), 1);
    }

    #[test]
    fn a_read_that_raced_a_change_does_not_store_what_it_saw() {
        let c = live(30);
        let before = c.ticket(1);
        let other = c.ticket(2);
        c.invalidate_users([1]);
        c.put(before, page(10), Bytes::from_static(b"stale"), None);
        assert!(c.get(1, &page(10)).is_none());
        // Another user's read is unaffected; a read started after the change stores.
        c.put(other, page(10), Bytes::from_static(b"b"), None);
        assert!(c.get(2, &page(10)).is_some());
        c.put(c.ticket(1), page(10), Bytes::from_static(b"fresh"), None);
        assert_eq!(c.get(1, &page(10)).as_deref(), Some(&b"fresh"[..]));
    }

    #[test]
    fn a_read_in_flight_across_a_clear_or_a_reconnect_does_not_store() {
        let c = live(30);
        let before = c.ticket(1);
        c.clear();
        c.put(before, page(10), Bytes::from_static(b"stale"), None);
        assert!(c.get(1, &page(10)).is_none());
        let before = c.ticket(1);
        c.set_live(false);
        c.set_live(true);
        c.put(before, page(10), Bytes::from_static(b"stale"), None);
        assert!(c.get(1, &page(10)).is_none());
    }

    #[test]
    fn answers_expire_at_their_own_limit_or_the_ttl() {
        let c = live(30);
        let past = Instant::now() - Duration::from_millis(1);
        c.put(c.ticket(1), page(1), Bytes::from_static(b"a"), Some(past));
        assert!(c.get(1, &page(1)).is_none());
        let soon = Instant::now() + Duration::from_millis(30);
        c.put(c.ticket(1), page(2), Bytes::from_static(b"b"), Some(soon));
        assert!(c.get(1, &page(2)).is_some());
        std::thread::sleep(Duration::from_millis(40));
        assert!(c.get(1, &page(2)).is_none());
    }

    #[test]
    fn the_byte_budget_is_kept() {
        let c = JobCache::new(Duration::from_secs(30), 10);
        c.set_live(true);
        c.put(c.ticket(1), page(1), Bytes::from_static(b"123456"), None);
        c.put(c.ticket(2), page(1), Bytes::from_static(b"123456"), None);
        assert!(c.bytes() <= 10, "{}", c.bytes());
        assert!(c.get(2, &page(1)).is_some(), "the newest answer is kept");
        c.put(
            c.ticket(3),
            page(1),
            Bytes::from_static(b"12345678901"),
            None,
        );
        assert!(
            c.get(3, &page(1)).is_none(),
            "an answer over the budget is not kept"
        );
        // Replacing an answer counts only the new one.
        c.put(c.ticket(2), page(1), Bytes::from_static(b"1234"), None);
        assert_eq!(c.bytes(), 4);
    }
}
