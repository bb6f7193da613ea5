//! A step function of free capacity over time: the availability profile of one node, or the
//! remaining allowance of one user's quota.

/// One step: from `at` (inclusive) until the next step's `at`, `free` units are available.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Step {
    at: i64,
    free: i64,
}

/// Free capacity as a function of time, from an origin (the pass's `now`) to forever.
///
/// Invariants: at least one step; steps strictly increasing in `at`; the first step starts at
/// the origin; the last step lasts forever. Times before the origin read as the origin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Profile {
    steps: Vec<Step>,
}

impl Profile {
    /// A profile with `free` units at `origin`, raised by each `(at, delta)` event from `at` on
    /// and capped at `cap` (so stale release records cannot invent capacity). Events before or
    /// at the origin are moved just after it: whatever they release is not free *now*.
    pub(super) fn from_events(
        origin: i64,
        free: i64,
        mut events: Vec<(i64, i64)>,
        cap: i64,
    ) -> Self {
        events.sort_unstable();
        let mut steps = vec![Step {
            at: origin,
            free: free.min(cap),
        }];
        let mut level = free;
        for (at, delta) in events {
            let at = at.max(origin.saturating_add(1));
            level = level.saturating_add(delta);
            let value = level.min(cap);
            match steps.last_mut() {
                Some(last) if last.at == at => last.free = value,
                _ => steps.push(Step { at, free: value }),
            }
        }
        Self { steps }
    }

    /// Index of the step containing `t`.
    fn index_at(&self, t: i64) -> usize {
        self.steps.partition_point(|s| s.at <= t).saturating_sub(1)
    }

    /// Free units at `t`.
    #[cfg(test)]
    pub(super) fn free_at(&self, t: i64) -> i64 {
        self.steps.get(self.index_at(t)).map_or(0, |s| s.free)
    }

    /// Free units after the last change (the level the profile settles at).
    #[cfg(test)]
    pub(super) fn final_free(&self) -> i64 {
        self.steps.last().map_or(0, |s| s.free)
    }

    /// The earliest `t >= from`, and no later than `limit`, such that at least `need` units are
    /// free during all of `[t, t + duration)`, with the units free at `t`.
    ///
    /// Walks the steps once: when a step is too low, no start before the next step can work, so
    /// the next candidate is that step's start.
    pub(super) fn earliest(
        &self,
        from: i64,
        need: i64,
        duration: i64,
        limit: i64,
    ) -> Option<(i64, i64)> {
        let steps = &self.steps;
        let mut start_idx = self.index_at(from);
        let mut t = from.max(steps.first()?.at);
        loop {
            if t > limit {
                return None;
            }
            let end = t.saturating_add(duration);
            let mut j = start_idx;
            let mut blocked = None;
            while let Some(step) = steps.get(j) {
                if step.at >= end {
                    break;
                }
                if step.free < need {
                    blocked = Some(j);
                    break;
                }
                j += 1;
            }
            match blocked {
                None => return Some((t, steps[start_idx].free)),
                Some(j) => {
                    start_idx = j + 1;
                    t = steps.get(start_idx)?.at;
                }
            }
        }
    }

    /// The maximal runs, clipped to start no earlier than `from`, during which at least `need`
    /// units are free, as `(start, end)` with `end == i64::MAX` for a run that never ends.
    pub(super) fn runs_at_least(&self, from: i64, need: i64) -> Vec<(i64, i64)> {
        let mut runs = Vec::new();
        let mut open: Option<i64> = None;
        let first = self.index_at(from);
        for (offset, step) in self.steps[first..].iter().enumerate() {
            let at = if offset == 0 {
                from.max(step.at)
            } else {
                step.at
            };
            match (step.free >= need, open) {
                (true, None) => open = Some(at),
                (false, Some(start)) => {
                    runs.push((start, at));
                    open = None;
                }
                _ => {}
            }
        }
        if let Some(start) = open {
            runs.push((start, i64::MAX));
        }
        runs
    }

    /// Makes sure a step begins exactly at `t` (for `t` after the origin) and returns its index.
    fn split_at(&mut self, t: i64) -> usize {
        let i = self.index_at(t);
        if self.steps[i].at == t || t < self.steps[i].at {
            return i;
        }
        let free = self.steps[i].free;
        self.steps.insert(i + 1, Step { at: t, free });
        i + 1
    }

    /// Takes `amount` units during `[start, end)`.
    pub(super) fn reserve(&mut self, start: i64, end: i64, amount: i64) {
        if end <= start || amount == 0 {
            return;
        }
        let first = self.split_at(start);
        let last = if end == i64::MAX {
            self.steps.len()
        } else {
            self.split_at(end)
        };
        for step in &mut self.steps[first..last] {
            step.free -= amount;
        }
    }

    /// Whether `need` units are free during all of `[start, end)`.
    pub(super) fn fits(&self, start: i64, end: i64, need: i64) -> bool {
        let first = self.index_at(start);
        self.steps[first..]
            .iter()
            .take_while(|s| s.at < end)
            .all(|s| s.free >= need)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn profile() -> Profile {
        // 2 free now, 5 from t=10, 8 from t=20.
        Profile::from_events(0, 2, vec![(20, 3), (10, 3)], 8)
    }

    #[test]
    fn events_accumulate_in_time_order_and_are_capped() {
        let p = Profile::from_events(0, 2, vec![(20, 3), (10, 3), (30, 5)], 8);
        assert_eq!(
            [
                p.free_at(0),
                p.free_at(9),
                p.free_at(10),
                p.free_at(20),
                p.free_at(99)
            ],
            [2, 2, 5, 8, 8]
        );
    }

    #[test]
    fn overdue_releases_count_only_after_the_origin() {
        let p = Profile::from_events(100, 0, vec![(50, 4)], 8);
        assert_eq!((p.free_at(100), p.free_at(101)), (0, 4));
    }

    #[test]
    fn earliest_finds_the_first_window_with_enough_room() {
        let p = profile();
        assert_eq!(p.earliest(0, 2, 100, i64::MAX), Some((0, 2)));
        assert_eq!(p.earliest(0, 4, 100, i64::MAX), Some((10, 5)));
        assert_eq!(p.earliest(0, 6, 5, i64::MAX), Some((20, 8)));
        assert_eq!(p.earliest(0, 9, 5, i64::MAX), None);
        assert_eq!(
            p.earliest(0, 6, 5, 19),
            None,
            "the limit cuts the search short"
        );
    }

    #[test]
    fn earliest_skips_a_hole_that_the_window_would_cross() {
        let mut p = Profile::from_events(0, 8, vec![], 8);
        p.reserve(10, 20, 8);
        assert_eq!(p.earliest(0, 1, 10, i64::MAX), Some((0, 8)));
        assert_eq!(p.earliest(0, 1, 11, i64::MAX), Some((20, 8)));
        assert_eq!(p.earliest(5, 1, 5, i64::MAX), Some((5, 8)));
    }

    #[test]
    fn reserve_takes_units_only_inside_the_interval() {
        let mut p = profile();
        p.reserve(5, 15, 2);
        assert_eq!(
            [
                p.free_at(0),
                p.free_at(5),
                p.free_at(10),
                p.free_at(15),
                p.free_at(20)
            ],
            [2, 0, 3, 5, 8]
        );
        assert!(p.fits(15, 30, 5));
        assert!(!p.fits(14, 30, 5));
        p.reserve(0, i64::MAX, 1);
        assert_eq!(p.final_free(), 7);
    }

    #[test]
    fn runs_at_least_lists_the_stretches_with_enough_room() {
        let mut p = Profile::from_events(0, 8, vec![], 8);
        p.reserve(10, 20, 1);
        p.reserve(30, 40, 1);
        assert_eq!(
            p.runs_at_least(5, 8),
            vec![(5, 10), (20, 30), (40, i64::MAX)]
        );
        assert_eq!(p.runs_at_least(25, 7), vec![(25, i64::MAX)]);
    }
}
