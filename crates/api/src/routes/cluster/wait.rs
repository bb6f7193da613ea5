//! A first estimate of when GPUs of one type free up, from aggregate numbers only.
//!
//! The processor's scheduler computes the real queue positions and start times (per-node fit,
//! priorities, fair share, backfill) and writes them to the database. Until its next pass — and for
//! the availability routes, which speak about a hypothetical new request — the API answers with this
//! simpler, Slurm-like estimate: walk the running reservations in the order they end, adding their
//! GPUs to what is free now, until the GPUs wanted (the queue ahead plus the request) fit.

use chrono::{DateTime, Utc};

/// When `needed` GPUs of a type with `total` GPUs, `free` of them free now, are expected to be
/// free, given the `(end, GPUs)` of its running reservations. `None` when it cannot be told: the
/// type has too few GPUs (or none reported yet) for the demand.
pub fn estimate_start(
    now: DateTime<Utc>,
    total: i64,
    free: i64,
    needed: i64,
    running: &[(DateTime<Utc>, i32)],
) -> Option<DateTime<Utc>> {
    if needed <= 0 {
        return Some(now);
    }
    if needed > total {
        return None;
    }
    let mut free = free.max(0);
    if free >= needed {
        return Some(now);
    }
    let mut ends = running.to_vec();
    ends.sort_by_key(|(end, _)| *end);
    for (end, gpus) in ends {
        free += i64::from(gpus.max(0));
        if free >= needed {
            return Some(end.max(now));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Duration;

    #[test]
    fn free_gpus_start_now() {
        let now = Utc::now();
        assert_eq!(estimate_start(now, 8, 4, 4, &[]), Some(now));
        assert_eq!(estimate_start(now, 8, 0, 0, &[]), Some(now));
    }

    #[test]
    fn otherwise_the_start_is_when_enough_running_reservations_have_ended() {
        let now = Utc::now();
        let h = |n| now + Duration::hours(n);
        let running = [(h(3), 4), (h(1), 2), (h(2), 2)];
        assert_eq!(estimate_start(now, 8, 0, 2, &running), Some(h(1)));
        assert_eq!(estimate_start(now, 8, 0, 4, &running), Some(h(2)));
        assert_eq!(estimate_start(now, 8, 1, 5, &running), Some(h(2)));
        assert_eq!(estimate_start(now, 8, 0, 8, &running), Some(h(3)));
    }

    #[test]
    fn an_overdue_end_counts_as_now() {
        let now = Utc::now();
        let running = [(now - Duration::minutes(5), 4)];
        assert_eq!(estimate_start(now, 4, 0, 4, &running), Some(now));
    }

    #[test]
    fn demand_beyond_the_type_or_its_running_work_is_unknown() {
        let now = Utc::now();
        assert_eq!(estimate_start(now, 0, 0, 1, &[]), None);
        assert_eq!(estimate_start(now, 8, 0, 9, &[]), None);
        assert_eq!(
            estimate_start(now, 8, 0, 8, &[(now + Duration::hours(1), 4)]),
            None,
            "the rest is held by something we do not know the end of"
        );
    }
}
