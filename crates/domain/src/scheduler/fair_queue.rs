//! Fair-share tags: each reservation's place in the order, fixed when it is first seen.
//!
//! This is start-time fair queueing (Goyal, Vin and Cheng, 1996) per GPU type, with booked
//! GPU-seconds as the measure of service. Each GPU type has a *virtual time* `v` that never
//! goes back. A new reservation of user `u` gets the tag `S = max(v, F_u)`, where `F_u` is the
//! largest `tag + cost` over `u`'s live reservations of that type (`cost` = slots × booked
//! seconds), so booking costs share at once and a user's reservations queue behind each other in
//! proportion to what they booked. A user with nothing live starts at `v`, level with everyone
//! else, plus at most one request's worth of their decayed past use (so among fresh users the
//! one with less recent use goes first). When a reservation ends, it drops out of `F_u`, so
//! what it did not use is given back.
//!
//! Among backlogged users this bounds the difference in booked service between any two users
//! by about one reservation each; and since tags are fixed, the order of reservations already
//! waiting never changes — only a new arrival with a smaller tag (a user with less live work)
//! can be placed ahead of one that is not yet promised.
//!
//! After a pass, `v` moves to the smallest tag still waiting (the oldest request in fair
//! terms); when nothing waits, to the largest tag admitted in the pass. It never goes back.

use std::collections::{BTreeMap, HashMap};

use crate::gpu::GpuType;
use crate::username::Username;

/// Fair-share service of one reservation: slots × seconds (a CPU-only node counts one slot).
pub(super) fn cost(slots_per_node: i64, nodes: u32, duration_secs: i64) -> f64 {
    (slots_per_node.max(1) as f64) * f64::from(nodes.max(1)) * (duration_secs.max(0) as f64)
}

/// The largest finish tag (`tag + cost`) of each user's live reservations, per GPU type.
#[derive(Debug, Default)]
pub(super) struct Finishes<'a> {
    by_user: HashMap<(&'a GpuType, &'a Username), f64>,
}

impl<'a> Finishes<'a> {
    /// Counts one live reservation that already has a tag.
    pub(super) fn record(&mut self, gpu_type: &'a GpuType, user: &'a Username, finish: f64) {
        let entry = self
            .by_user
            .entry((gpu_type, user))
            .or_insert(f64::NEG_INFINITY);
        if finish > *entry {
            *entry = finish;
        }
    }

    /// The tag for a new reservation costing `cost`, of a user whose decayed past use is
    /// `history`: `max(F_u, v + min(history, cost))`. Records its own finish.
    pub(super) fn assign(
        &mut self,
        gpu_type: &'a GpuType,
        user: &'a Username,
        virtual_time: f64,
        cost: f64,
        history: f64,
    ) -> f64 {
        let finish = self
            .by_user
            .get(&(gpu_type, user))
            .copied()
            .unwrap_or(f64::NEG_INFINITY);
        let tag = finish.max(virtual_time + history.clamp(0.0, cost));
        self.record(gpu_type, user, tag + cost);
        tag
    }
}

/// The virtual time of each GPU type after a pass: the smallest tag still waiting (promised or
/// not), or when nothing waits the largest tag admitted in the pass; never earlier than before.
pub(super) fn advance_clocks(
    before: &BTreeMap<GpuType, f64>,
    waiting_min: &BTreeMap<&GpuType, f64>,
    admitted_max: &BTreeMap<&GpuType, f64>,
) -> BTreeMap<GpuType, f64> {
    let mut after = before.clone();
    for (gpu_type, t) in admitted_max
        .iter()
        .filter(|(t, _)| !waiting_min.contains_key(*t))
        .chain(waiting_min.iter())
    {
        let entry = after.entry((*gpu_type).clone()).or_insert(0.0);
        if t.is_finite() && *t > *entry {
            *entry = *t;
        }
    }
    after
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(name: &str) -> Username {
        Username::parse(name).unwrap()
    }

    #[test]
    fn a_users_second_reservation_queues_behind_the_first_by_what_it_booked() {
        let (h100, alice, bob) = (GpuType::parse("h100").unwrap(), user("alice"), user("bob"));
        let mut f = Finishes::default();
        assert_eq!(f.assign(&h100, &alice, 10.0, 100.0, 0.0), 10.0);
        assert_eq!(f.assign(&h100, &alice, 10.0, 50.0, 0.0), 110.0);
        assert_eq!(
            f.assign(&h100, &bob, 10.0, 500.0, 0.0),
            10.0,
            "bob starts level"
        );
    }

    #[test]
    fn a_user_whose_live_work_finished_in_virtual_time_starts_at_v() {
        let (h100, alice) = (GpuType::parse("h100").unwrap(), user("alice"));
        let mut f = Finishes::default();
        f.record(&h100, &alice, 40.0);
        assert_eq!(f.assign(&h100, &alice, 100.0, 1.0, 0.0), 100.0);
    }

    #[test]
    fn recent_use_delays_a_fresh_start_by_at_most_one_request() {
        let (h100, alice, bob) = (GpuType::parse("h100").unwrap(), user("alice"), user("bob"));
        let mut f = Finishes::default();
        assert_eq!(f.assign(&h100, &alice, 100.0, 50.0, 1e9), 150.0);
        assert_eq!(f.assign(&h100, &bob, 100.0, 50.0, 20.0), 120.0);
    }

    #[test]
    fn clocks_follow_the_oldest_waiting_tag_and_never_go_back() {
        let (h100, a100) = (
            GpuType::parse("h100").unwrap(),
            GpuType::parse("a100").unwrap(),
        );
        let before = BTreeMap::from([(h100.clone(), 50.0)]);
        let waiting = BTreeMap::from([(&h100, 80.0)]);
        let admitted = BTreeMap::from([(&h100, 500.0), (&a100, 7.0)]);
        let after = advance_clocks(&before, &waiting, &admitted);
        assert_eq!((after[&h100], after[&a100]), (80.0, 7.0));
        let waiting = BTreeMap::from([(&h100, 20.0)]);
        let after = advance_clocks(&after, &waiting, &BTreeMap::new());
        assert_eq!(after[&h100], 80.0);
    }
}
