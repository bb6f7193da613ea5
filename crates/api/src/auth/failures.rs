//! Failed authentications per client address: counted, throttled and sampled for the audit log.
//!
//! Each address has a window of `AUTH_FAILURE_WINDOW_SECONDS`. Once it has failed
//! `AUTH_FAILURE_LIMIT` times in its window, its requests are answered 429 until the window ends,
//! before any database lookup (a key this replica has already verified still passes: it costs
//! nothing and belongs to someone who is not guessing). The first [`AUDITED_PER_WINDOW`] failures
//! of a window are audited one by one; the rest, and the requests refused while throttled, are
//! written as one summary record when the window ends, so a flood costs a handful of writes.
//!
//! IPv6 clients are counted per /64, the block one subscriber usually holds; IPv4-mapped IPv6
//! addresses count as the IPv4 address.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Failures of one address per window that get an audit record of their own.
pub const AUDITED_PER_WINDOW: u32 = 5;

/// Most addresses tracked at once. Beyond it, new addresses are not counted (and so not
/// throttled) until windows end: memory stays bounded whatever the number of addresses.
const MAX_TRACKED: usize = 100_000;

/// The failure counts of one API process.
#[derive(Debug)]
pub struct AuthFailures {
    limit: u32,
    window: Duration,
    tracked: Mutex<HashMap<IpAddr, Window>>,
}

#[derive(Debug, Clone, Copy)]
struct Window {
    started: Instant,
    failures: u32,
    /// Requests admitted and not yet decided.
    pending: u32,
    throttled: u32,
}

/// Whether a request may try to authenticate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// It may.
    Admitted,
    /// The address has used its failures; this long is left of its window.
    Throttled(Duration),
}

/// What an address did in a window that has ended, when more happened than was audited one by
/// one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Summary {
    /// The address (an IPv6 one as its /64 network address).
    pub addr: IpAddr,
    /// Failed authentications in the window.
    pub failures: u32,
    /// Of those, how many have no audit record of their own.
    pub unaudited: u32,
    /// Requests refused with 429 while the address was throttled.
    pub throttled: u32,
    /// The window's length.
    pub window: Duration,
}

/// The address a client is counted under.
pub fn bucket(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let s = v6.segments();
                IpAddr::V6(Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
            }
        },
    }
}

impl AuthFailures {
    /// Throttles an address after `limit` failures within `window`.
    pub fn new(limit: u32, window: Duration) -> Self {
        Self {
            limit: limit.max(1),
            window: window.max(Duration::from_millis(1)),
            tracked: Mutex::new(HashMap::new()),
        }
    }

    /// The window's length.
    pub fn window(&self) -> Duration {
        self.window
    }

    /// The failure limit per window.
    pub fn limit(&self) -> u32 {
        self.limit
    }

    /// Lets a request from `ip` try to authenticate, or refuses it (with the time left in the
    /// window, the refusal counted) once the address has used its failures. Once an address
    /// has failed in a window, its requests still being checked count as failures too, so
    /// however many it sends at once no more than the limit are looked up; a client that has
    /// not failed may send as many at once as it likes. The summary of the address's previous
    /// window comes along when that window has just ended. Every admitted request must be
    /// followed by [`fail`](Self::fail) or [`forgive`](Self::forgive).
    pub fn admit(&self, ip: IpAddr) -> (Admission, Option<Summary>) {
        let now = Instant::now();
        let Ok(mut tracked) = self.tracked.lock() else {
            return (Admission::Admitted, None);
        };
        let addr = bucket(ip);
        let ended = self.roll(&mut tracked, addr, now);
        if !tracked.contains_key(&addr) {
            if tracked.len() >= MAX_TRACKED {
                return (Admission::Admitted, ended);
            }
            tracked.insert(
                addr,
                Window {
                    started: now,
                    failures: 0,
                    pending: 0,
                    throttled: 0,
                },
            );
        }
        let admission = match tracked.get_mut(&addr) {
            Some(w)
                if w.failures >= self.limit
                    || w.failures > 0 && w.failures.saturating_add(w.pending) >= self.limit =>
            {
                w.throttled = w.throttled.saturating_add(1);
                Admission::Throttled((w.started + self.window).saturating_duration_since(now))
            }
            Some(w) => {
                w.pending = w.pending.saturating_add(1);
                Admission::Admitted
            }
            None => Admission::Admitted,
        };
        (admission, ended)
    }

    /// Records that an admitted request from `ip` failed. True when it is among the first
    /// [`AUDITED_PER_WINDOW`] failures of its window and so gets an audit record of its own.
    pub fn fail(&self, ip: IpAddr) -> bool {
        let Ok(mut tracked) = self.tracked.lock() else {
            return false;
        };
        let Some(w) = tracked.get_mut(&bucket(ip)) else {
            return false;
        };
        w.pending = w.pending.saturating_sub(1);
        w.failures = w.failures.saturating_add(1);
        w.failures <= AUDITED_PER_WINDOW
    }

    /// Records that an admitted request from `ip` was refused after all, because the address
    /// has used its failures on other replicas: counted as throttled in its window.
    pub fn refuse(&self, ip: IpAddr) {
        if let Ok(mut tracked) = self.tracked.lock()
            && let Some(w) = tracked.get_mut(&bucket(ip))
        {
            w.pending = w.pending.saturating_sub(1);
            w.throttled = w.throttled.saturating_add(1);
        }
    }

    /// Records that an admitted request from `ip` authenticated (or could not be checked).
    pub fn forgive(&self, ip: IpAddr) {
        if let Ok(mut tracked) = self.tracked.lock()
            && let Some(w) = tracked.get_mut(&bucket(ip))
        {
            w.pending = w.pending.saturating_sub(1);
        }
    }

    /// Forgets every window that has ended, returning the summaries worth recording (call
    /// periodically, so an address that stopped is summarised too).
    pub fn sweep(&self) -> Vec<Summary> {
        let now = Instant::now();
        let Ok(mut tracked) = self.tracked.lock() else {
            return Vec::new();
        };
        let mut summaries = Vec::new();
        tracked.retain(|addr, w| {
            if now.duration_since(w.started) < self.window {
                return true;
            }
            summaries.extend(self.summary(*addr, w));
            false
        });
        summaries
    }

    /// Ends `addr`'s window if its time is over, returning its summary if it needs one.
    fn roll(
        &self,
        tracked: &mut HashMap<IpAddr, Window>,
        addr: IpAddr,
        now: Instant,
    ) -> Option<Summary> {
        let w = tracked.get(&addr)?;
        if now.duration_since(w.started) < self.window {
            return None;
        }
        let w = tracked.remove(&addr)?;
        self.summary(addr, &w)
    }

    fn summary(&self, addr: IpAddr, w: &Window) -> Option<Summary> {
        let unaudited = w.failures.saturating_sub(AUDITED_PER_WINDOW);
        (unaudited > 0 || w.throttled > 0).then_some(Summary {
            addr,
            failures: w.failures,
            unaudited,
            throttled: w.throttled,
            window: self.window,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn throttled(f: &AuthFailures, a: IpAddr) -> Option<Duration> {
        match f.admit(a).0 {
            Admission::Throttled(wait) => Some(wait),
            Admission::Admitted => None,
        }
    }

    /// A request from `a` that fails; whether it was audited singly.
    fn failing(f: &AuthFailures, a: IpAddr) -> bool {
        assert_eq!(f.admit(a).0, Admission::Admitted);
        f.fail(a)
    }

    #[test]
    fn an_address_is_throttled_after_its_failures_and_others_are_not() {
        let f = AuthFailures::new(3, Duration::from_secs(60));
        let a = ip("203.0.113.7");
        for _ in 0..3 {
            failing(&f, a);
        }
        let wait = throttled(&f, a).expect("throttled after three failures");
        assert!(wait > Duration::from_secs(58) && wait <= Duration::from_secs(60));
        assert_eq!(throttled(&f, ip("203.0.113.8")), None);
    }

    #[test]
    fn once_an_address_has_failed_its_requests_in_flight_count_against_it() {
        let f = AuthFailures::new(3, Duration::from_secs(60));
        let fresh = ip("203.0.113.9");
        for _ in 0..10 {
            assert_eq!(
                throttled(&f, fresh),
                None,
                "no failure yet: no limit on bursts"
            );
        }
        let a = ip("203.0.113.10");
        failing(&f, a);
        assert_eq!(throttled(&f, a), None);
        assert!(throttled(&f, a).is_none());
        assert!(
            throttled(&f, a).is_some(),
            "one failure and two in flight use the allowance"
        );
        f.forgive(a);
        assert_eq!(throttled(&f, a), None, "one of them authenticated");
    }

    #[test]
    fn only_the_first_failures_of_a_window_are_audited_and_the_rest_are_summarised() {
        let f = AuthFailures::new(100, Duration::from_millis(50));
        let a = ip("198.51.100.1");
        let audited = (0..12).filter(|_| failing(&f, a)).count();
        assert_eq!(audited, AUDITED_PER_WINDOW as usize);
        assert!(f.sweep().is_empty(), "the window is still open");
        std::thread::sleep(Duration::from_millis(60));
        let (again, ended) = f.admit(a);
        assert_eq!(again, Admission::Admitted);
        assert!(f.fail(a), "a new window audits again");
        assert_eq!(
            ended,
            Some(Summary {
                addr: a,
                failures: 12,
                unaudited: 7,
                throttled: 0,
                window: Duration::from_millis(50),
            })
        );
    }

    #[test]
    fn a_quiet_window_needs_no_summary_and_a_sweep_reports_the_loud_ones() {
        let f = AuthFailures::new(2, Duration::from_millis(30));
        failing(&f, ip("192.0.2.1"));
        for _ in 0..2 {
            failing(&f, ip("192.0.2.2"));
        }
        assert!(throttled(&f, ip("192.0.2.2")).is_some());
        std::thread::sleep(Duration::from_millis(40));
        let summaries = f.sweep();
        assert_eq!(summaries.len(), 1, "{summaries:?}");
        assert_eq!(summaries[0].addr, ip("192.0.2.2"));
        assert_eq!(summaries[0].throttled, 1);
        assert_eq!(throttled(&f, ip("192.0.2.2")), None, "the window ended");
    }

    #[test]
    fn ipv6_clients_count_per_64_and_mapped_addresses_as_ipv4() {
        let f = AuthFailures::new(2, Duration::from_secs(60));
        failing(&f, ip("2001:db8:1:2::1"));
        failing(&f, ip("2001:db8:1:2:ffff::9"));
        assert!(throttled(&f, ip("2001:db8:1:2::77")).is_some());
        assert_eq!(throttled(&f, ip("2001:db8:1:3::1")), None);
        assert_eq!(bucket(ip("::ffff:10.1.2.3")), ip("10.1.2.3"));
    }
}
