//! Fair share: each user's recent GPU use, with older use counting for less.

use std::collections::BTreeMap;

use crate::username::Username;

/// One stretch of GPU use by a user: `gpus` GPUs held from `started_at` to `ended_at` (unix
/// seconds). For a reservation that is still running, pass the current time as `ended_at`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsageRecord {
    /// Who used the GPUs.
    pub user: Username,
    /// GPUs held (all nodes together; 0 for CPU-only reservations).
    pub gpus: u32,
    /// When the use began.
    pub started_at: i64,
    /// When the use ended (or `now` while it goes on).
    pub ended_at: i64,
}

/// Each user's GPU-seconds, decayed with the given half-life: a GPU-second used one half-life
/// before `now` counts as half a GPU-second, two half-lives before as a quarter, and so on
/// (Slurm's `PriorityDecayHalfLife`, Kueue's admission fair sharing).
///
/// The decay is integrated exactly over each record, so splitting a record in two gives the same
/// total. Use after `now` is ignored. A `half_life_secs` of zero or less forgets all use, which
/// turns fair share off. Users without use are absent (their usage is zero).
pub fn decayed_usage(
    records: &[UsageRecord],
    now: i64,
    half_life_secs: i64,
) -> BTreeMap<Username, f64> {
    let mut usage = BTreeMap::new();
    if half_life_secs <= 0 {
        return usage;
    }
    let half_life = half_life_secs as f64;
    for record in records {
        let end = record.ended_at.min(now);
        if record.gpus == 0 || end <= record.started_at {
            continue;
        }
        // ∫ 2^(-(now - t)/h) dt from a to b = h/ln2 · (2^(-(now - b)/h) - 2^(-(now - a)/h)).
        let weight_at = |t: i64| (-((now - t) as f64) / half_life).exp2();
        let seconds =
            half_life / std::f64::consts::LN_2 * (weight_at(end) - weight_at(record.started_at));
        *usage.entry(record.user.clone()).or_insert(0.0) += f64::from(record.gpus) * seconds;
    }
    usage
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(name: &str) -> Username {
        Username::parse(name).unwrap()
    }

    fn record(name: &str, gpus: u32, started_at: i64, ended_at: i64) -> UsageRecord {
        UsageRecord {
            user: user(name),
            gpus,
            started_at,
            ended_at,
        }
    }

    #[test]
    fn recent_use_counts_almost_fully() {
        let usage = decayed_usage(&[record("alice", 8, 999_990, 1_000_000)], 1_000_000, 86_400);
        let alice = usage[&user("alice")];
        assert!((alice - 80.0).abs() < 0.01, "{alice}");
    }

    #[test]
    fn use_one_half_life_ago_counts_half() {
        let day = 86_400;
        let now = 10 * day;
        let recent = decayed_usage(&[record("a", 1, now - 60, now)], now, day);
        let old = decayed_usage(&[record("a", 1, now - day - 60, now - day)], now, day);
        let ratio = old[&user("a")] / recent[&user("a")];
        assert!((ratio - 0.5).abs() < 1e-6, "{ratio}");
    }

    #[test]
    fn splitting_a_record_does_not_change_the_total() {
        let now = 50_000;
        let whole = decayed_usage(&[record("a", 2, 1_000, 40_000)], now, 7_200);
        let split = decayed_usage(
            &[
                record("a", 2, 1_000, 25_000),
                record("a", 2, 25_000, 40_000),
            ],
            now,
            7_200,
        );
        assert!((whole[&user("a")] - split[&user("a")]).abs() < 1e-6);
    }

    #[test]
    fn heavier_users_have_more_usage_and_idle_users_none() {
        let now = 100_000;
        let usage = decayed_usage(
            &[
                record("heavy", 8, 50_000, now),
                record("light", 1, 90_000, now),
                record("cpu", 0, 0, now),
                record("future", 4, now + 10, now + 100),
            ],
            now,
            86_400,
        );
        assert!(usage[&user("heavy")] > usage[&user("light")]);
        assert!(!usage.contains_key(&user("cpu")));
        assert!(!usage.contains_key(&user("future")));
    }

    #[test]
    fn a_zero_half_life_turns_fair_share_off() {
        assert!(decayed_usage(&[record("a", 8, 0, 100)], 100, 0).is_empty());
    }
}
