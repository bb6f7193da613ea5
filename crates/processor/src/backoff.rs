//! How long a message whose handling failed stays hidden before its next delivery.
//!
//! The delay doubles with every failed delivery, from `RETRY_BACKOFF_BASE_SECONDS` up to
//! `RETRY_BACKOFF_MAX_SECONDS`, so a fault that lasts gets fewer and fewer attempts. Each delay is
//! drawn between half its ceiling and the ceiling ("equal jitter"): messages that failed together
//! (an outage hits a whole batch) spread out instead of coming back in lockstep, while a later
//! delivery never waits less than the one before.

use std::time::Duration;

/// Exponential backoff with jitter for queue retries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    /// The ceiling of the delay after a first failed delivery.
    pub base: Duration,
    /// The largest delay.
    pub max: Duration,
}

impl Backoff {
    /// The ceiling of the delay after the `read_ct`-th delivery failed: base × 2^(read_ct − 1),
    /// at most `max`.
    pub fn ceiling(&self, read_ct: i32) -> Duration {
        let doublings = u32::try_from(read_ct.saturating_sub(1)).unwrap_or(0);
        2u32.checked_pow(doublings)
            .and_then(|factor| self.base.checked_mul(factor))
            .map_or(self.max, |d| d.min(self.max))
    }

    /// The delay for `jitter` in 0..=1: from half the ceiling (0) to the ceiling (1).
    pub fn delay_with(&self, read_ct: i32, jitter: f64) -> Duration {
        self.ceiling(read_ct)
            .mul_f64(0.5 + 0.5 * jitter.clamp(0.0, 1.0))
    }

    /// The delay after the `read_ct`-th delivery failed, with random jitter.
    pub fn delay(&self, read_ct: i32) -> Duration {
        self.delay_with(read_ct, rand::random::<f64>())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const B: Backoff = Backoff {
        base: Duration::from_secs(10),
        max: Duration::from_secs(300),
    };

    #[test]
    fn the_ceiling_doubles_with_each_delivery_up_to_the_cap() {
        let ceilings: Vec<u64> = (1..=8).map(|n| B.ceiling(n).as_secs()).collect();
        assert_eq!(ceilings, [10, 20, 40, 80, 160, 300, 300, 300]);
        assert_eq!(B.ceiling(i32::MAX), B.max, "no overflow");
        assert_eq!(B.ceiling(0), B.base, "a read count below one counts as one");
    }

    #[test]
    fn jitter_stays_between_half_the_ceiling_and_the_ceiling() {
        assert_eq!(B.delay_with(3, 0.0), Duration::from_secs(20));
        assert_eq!(B.delay_with(3, 1.0), Duration::from_secs(40));
        assert_eq!(B.delay_with(3, 7.0), Duration::from_secs(40));
        for n in 1..=10 {
            let d = B.delay(n);
            assert!(d >= B.ceiling(n) / 2 && d <= B.ceiling(n), "{n}: {d:?}");
        }
    }

    #[test]
    fn random_delays_differ_so_a_failed_batch_does_not_return_in_lockstep() {
        let delays: std::collections::HashSet<Duration> = (0..20).map(|_| B.delay(4)).collect();
        assert!(delays.len() > 1, "{delays:?}");
    }
}
