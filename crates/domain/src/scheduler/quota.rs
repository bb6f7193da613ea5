//! Per-user quotas, treated as one more resource on the timeline.

use super::profile::Profile;

/// Per-user limits on what may be held at once (active and preparing reservations together).
/// `None` means unlimited.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Quotas {
    /// Most reservations one user may hold at once.
    pub max_active_reservations_per_user: Option<u32>,
    /// Most GPUs one user may hold at once, over all their reservations and GPU types.
    pub max_gpus_per_user: Option<u32>,
}

/// Which limit stands in the way.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Limit {
    Reservations(u32),
    Gpus(u32),
}

/// One user's remaining allowance over time: a reservation held during `[s, e)` takes one
/// reservation and its GPUs from the allowance during `[s, e)`.
#[derive(Debug)]
pub(super) struct UserQuota {
    reservations: Option<(u32, Profile)>,
    gpus: Option<(u32, Profile)>,
}

/// What one user already holds: `(expires_at, gpus)` per running reservation.
pub(super) type Holdings = Vec<(i64, i64)>;

impl UserQuota {
    pub(super) fn new(quotas: Quotas, now: i64, holdings: &Holdings) -> Self {
        let build = |limit: u32, amount: &dyn Fn(i64) -> i64| {
            let max = i64::from(limit);
            let held: i64 = holdings.iter().map(|&(_, g)| amount(g)).sum();
            let releases = holdings.iter().map(|&(at, g)| (at, amount(g))).collect();
            (limit, Profile::from_events(now, max - held, releases, max))
        };
        Self {
            reservations: quotas
                .max_active_reservations_per_user
                .map(|limit| build(limit, &|_| 1)),
            gpus: quotas.max_gpus_per_user.map(|limit| build(limit, &|g| g)),
        }
    }

    /// The (limit, profile, need) pairs that apply to a reservation of `gpus` GPUs. A CPU-only
    /// reservation adds no GPUs, so the GPU limit does not hold it back.
    fn checks(&self, gpus: i64) -> impl Iterator<Item = (Limit, &Profile, i64)> {
        let reservations = self
            .reservations
            .as_ref()
            .map(|(limit, p)| (Limit::Reservations(*limit), p, 1));
        let gpus = self
            .gpus
            .as_ref()
            .filter(|_| gpus > 0)
            .map(|(limit, p)| (Limit::Gpus(*limit), p, gpus));
        reservations.into_iter().chain(gpus)
    }

    /// The earliest `t >= from` at which the user may hold `gpus` more GPUs in one more
    /// reservation for `duration` seconds, or `None` if never.
    pub(super) fn earliest(&self, from: i64, gpus: i64, duration: i64) -> Option<i64> {
        let mut t = from;
        // Each profile can only push `t` later, to one of its own steps, so this settles.
        loop {
            let mut moved = false;
            for (_, profile, need) in self.checks(gpus) {
                let (start, _) = profile.earliest(t, need, duration, i64::MAX)?;
                if start != t {
                    t = start;
                    moved = true;
                }
            }
            if !moved {
                return Some(t);
            }
        }
    }

    /// The first limit that keeps the reservation from being held during `[start, end)`.
    pub(super) fn blocking(&self, start: i64, end: i64, gpus: i64) -> Option<Limit> {
        self.checks(gpus)
            .find(|(_, profile, need)| !profile.fits(start, end, *need))
            .map(|(limit, _, _)| limit)
    }

    /// Gives back what [`UserQuota::reserve`] charged with the same arguments.
    pub(super) fn release(&mut self, start: i64, end: i64, gpus: i64) {
        if let Some((_, p)) = &mut self.reservations {
            p.reserve(start, end, -1);
        }
        if let Some((_, p)) = &mut self.gpus {
            p.reserve(start, end, -gpus);
        }
    }

    /// Charges a reservation held during `[start, end)` to the user.
    pub(super) fn reserve(&mut self, start: i64, end: i64, gpus: i64) {
        if let Some((_, p)) = &mut self.reservations {
            p.reserve(start, end, 1);
        }
        if let Some((_, p)) = &mut self.gpus {
            p.reserve(start, end, gpus);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quota_frees_when_the_users_own_reservations_end() {
        let quotas = Quotas {
            max_active_reservations_per_user: Some(2),
            max_gpus_per_user: Some(8),
        };
        // Holds 2 reservations (4 GPUs until 100, 2 GPUs until 200).
        let q = UserQuota::new(quotas, 0, &vec![(100, 4), (200, 2)]);
        assert_eq!(q.blocking(0, 10, 1), Some(Limit::Reservations(2)));
        assert_eq!(q.earliest(0, 1, 10), Some(100));
        assert_eq!(q.earliest(0, 8, 10), Some(200), "8 GPUs only once both end");
        assert_eq!(q.earliest(0, 9, 10), None);
    }

    #[test]
    fn cpu_reservations_are_not_held_back_by_the_gpu_limit() {
        let quotas = Quotas {
            max_active_reservations_per_user: None,
            max_gpus_per_user: Some(4),
        };
        let q = UserQuota::new(quotas, 0, &vec![(100, 6)]);
        assert_eq!(q.blocking(0, 10, 0), None);
        assert_eq!(q.blocking(0, 10, 1), Some(Limit::Gpus(4)));
    }
}
