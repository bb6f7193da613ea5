//! The nodes of one GPU type and the searches over their availability profiles.

use std::collections::BTreeMap;

use super::profile::Profile;

/// One node as the pass sees it.
#[derive(Debug)]
pub(super) struct NodeState<'a> {
    pub(super) name: &'a str,
    /// Slots on the node (GPUs, or reservation slots for CPU-only types).
    pub(super) cap: i64,
    /// Cordoned or not Ready nodes count for "could this ever fit" but are never planned on.
    pub(super) schedulable: bool,
    profile: Profile,
    /// The stretches during which the node is whole (all slots free), kept in step with the
    /// profile so gang searches need not walk every profile.
    whole: Vec<(i64, i64)>,
}

impl<'a> NodeState<'a> {
    pub(super) fn new(name: &'a str, cap: i64, schedulable: bool, profile: Profile) -> Self {
        let whole = profile.runs_at_least(i64::MIN, cap);
        Self {
            name,
            cap,
            schedulable,
            profile,
            whole,
        }
    }

    /// The first start at or after `from` at which the node stays whole for `duration`.
    fn next_whole_start(&self, from: i64, duration: i64) -> Option<i64> {
        self.whole.iter().find_map(|&(a, b)| {
            let start = a.max(from);
            (b == i64::MAX || start.saturating_add(duration) <= b).then_some(start)
        })
    }

    /// Whether the node stays whole during `[start, start + duration)`.
    fn whole_during(&self, start: i64, duration: i64) -> bool {
        self.whole
            .iter()
            .any(|&(a, b)| a <= start && (b == i64::MAX || start.saturating_add(duration) <= b))
    }
}

/// What a reservation asks of a pool.
#[derive(Debug, Clone, Copy)]
pub(super) struct Shape {
    /// Slots on each node.
    pub(super) per_node: i64,
    /// Nodes: 1 for a single-node reservation, `k >= 2` for a gang of whole nodes.
    pub(super) nodes: u32,
    /// Seconds the slots are held.
    pub(super) duration: i64,
}

impl Shape {
    fn is_gang(self) -> bool {
        self.nodes > 1
    }
}

/// The nodes of one GPU type, sorted by name, plus lower bounds on earliest starts.
#[derive(Debug, Default)]
pub(super) struct Pool<'a> {
    pub(super) nodes: Vec<NodeState<'a>>,
    bounds: LowerBounds,
}

impl<'a> Pool<'a> {
    pub(super) fn new(nodes: Vec<NodeState<'a>>) -> Self {
        Self {
            nodes,
            bounds: LowerBounds::default(),
        }
    }

    fn eligible(&self, per_node: i64) -> impl Iterator<Item = (usize, &NodeState<'a>)> {
        self.nodes
            .iter()
            .enumerate()
            .filter(move |(_, n)| n.schedulable && n.cap >= per_node && n.cap > 0)
    }

    /// A lower bound on the earliest start of `shape` from what earlier searches found.
    pub(super) fn lower_bound(&self, shape: Shape, now: i64) -> i64 {
        self.bounds.get(shape).unwrap_or(now).max(now)
    }

    /// Records the earliest start of `shape` on the nodes alone, found by searching from
    /// [`Pool::lower_bound`].
    pub(super) fn record_bound(&mut self, shape: Shape, start: i64) {
        self.bounds.record(shape, start);
    }

    /// The earliest start at or after `from` for `shape`, and the nodes to use.
    pub(super) fn earliest(&self, shape: Shape, from: i64) -> Option<(i64, Vec<usize>)> {
        if shape.is_gang() {
            self.earliest_gang(shape, from)
        } else {
            self.earliest_single(shape, from)
                .map(|(start, node)| (start, vec![node]))
        }
    }

    /// Earliest start on one node; among nodes that allow it, best fit: the node with the fewest
    /// free slots at that time (then the first by name), so large holes stay whole.
    fn earliest_single(&self, shape: Shape, from: i64) -> Option<(i64, usize)> {
        let mut best: Option<(i64, i64, usize)> = None;
        for (idx, node) in self.eligible(shape.per_node) {
            let limit = best.map_or(i64::MAX, |(t, _, _)| t);
            if let Some((t, free)) =
                node.profile
                    .earliest(from, shape.per_node, shape.duration, limit)
                && best.is_none_or(|(bt, bfree, _)| (t, free) < (bt, bfree))
            {
                best = Some((t, free, idx));
            }
        }
        best.map(|(t, _, idx)| (t, idx))
    }

    /// Earliest time at which `shape.nodes` whole nodes are free together for the duration.
    ///
    /// Let `e(n)` be node `n`'s first whole-for-the-duration start at or after `t`, and `c` the
    /// `k`-th smallest of them: no earlier instant can have `k` nodes, so if `k` nodes fit at `c`
    /// that is the answer. Otherwise fewer than `k` nodes have `e(n) == c` once recomputed from
    /// `c`, so the next `c` is strictly later; the search moves forward through the nodes' own
    /// whole stretches and ends.
    fn earliest_gang(&self, shape: Shape, from: i64) -> Option<(i64, Vec<usize>)> {
        let needed = usize::try_from(shape.nodes).unwrap_or(usize::MAX);
        let eligible: Vec<usize> = self.eligible(shape.per_node).map(|(i, _)| i).collect();
        let mut starts: Vec<(i64, usize)> = Vec::with_capacity(eligible.len());
        let mut t = from;
        loop {
            starts.clear();
            starts.extend(eligible.iter().filter_map(|&i| {
                self.nodes[i]
                    .next_whole_start(t, shape.duration)
                    .map(|s| (s, i))
            }));
            if starts.len() < needed {
                return None;
            }
            let (_, &mut (candidate, _), _) = starts.select_nth_unstable(needed - 1);
            let mut fitting: Vec<usize> = starts
                .iter()
                .filter(|&&(s, i)| {
                    s <= candidate && self.nodes[i].whole_during(candidate, shape.duration)
                })
                .map(|&(_, i)| i)
                .collect();
            if fitting.len() >= needed {
                fitting.sort_unstable();
                fitting.truncate(needed);
                return Some((candidate, fitting));
            }
            t = candidate;
        }
    }

    /// Takes the slots of `shape` on `nodes` from `start` for its duration (whole nodes for a
    /// gang).
    pub(super) fn reserve(&mut self, shape: Shape, nodes: &[usize], start: i64) {
        self.adjust(shape, nodes, start, 1);
    }

    /// Gives back what [`Pool::reserve`] took with the same arguments. Earlier searches no
    /// longer bound later ones afterwards: call [`Pool::clear_bounds`] before using them again.
    pub(super) fn release(&mut self, shape: Shape, nodes: &[usize], start: i64) {
        self.adjust(shape, nodes, start, -1);
    }

    fn adjust(&mut self, shape: Shape, nodes: &[usize], start: i64, sign: i64) {
        let end = start.saturating_add(shape.duration);
        for &idx in nodes {
            if let Some(node) = self.nodes.get_mut(idx) {
                let amount = if shape.is_gang() {
                    node.cap
                } else {
                    shape.per_node
                };
                node.profile.reserve(start, end, sign * amount);
                node.whole = node.profile.runs_at_least(i64::MIN, node.cap);
            }
        }
    }

    /// Whether `shape` fits on exactly `nodes` from `start` for its duration.
    pub(super) fn fits(&self, shape: Shape, nodes: &[usize], start: i64) -> bool {
        let end = start.saturating_add(shape.duration);
        nodes.iter().all(|&idx| {
            self.nodes.get(idx).is_some_and(|node| {
                let need = if shape.is_gang() {
                    node.cap
                } else {
                    shape.per_node
                };
                node.schedulable
                    && node.cap >= shape.per_node
                    && node.profile.fits(start, end, need)
            })
        })
    }

    /// The index of the node called `name`.
    pub(super) fn index_of(&self, name: &str) -> Option<usize> {
        self.nodes.binary_search_by(|n| n.name.cmp(name)).ok()
    }

    /// Forgets the lower bounds learnt so far in the pass.
    pub(super) fn clear_bounds(&mut self) {
        self.bounds = LowerBounds::default();
    }
}

/// Lower bounds on earliest starts, valid for the rest of a pass.
///
/// A pass only ever takes capacity away, so the earliest start of a shape never moves earlier;
/// and a shape that asks for no more (fewer slots or nodes, no longer) than another can start no
/// later. So the earliest start found for one shape bounds every larger one from below, and the
/// next search can begin there instead of at `now`. This is what keeps 10,000 queued
/// reservations of a few common shapes cheap.
#[derive(Debug, Default)]
struct LowerBounds {
    /// (slots per node, nodes) → duration → earliest start; the starts are kept increasing in
    /// the duration, so the entry at the largest duration not above `d` is the bound for `d`.
    by_shape: BTreeMap<(i64, u32), BTreeMap<i64, i64>>,
}

impl LowerBounds {
    fn get(&self, shape: Shape) -> Option<i64> {
        // Single-node shapes are bounded by smaller single-node shapes; gangs by smaller gangs of
        // the same per-node size (whole nodes of the same eligibility).
        let keys = self.by_shape.range(
            (
                if shape.is_gang() { shape.per_node } else { 0 },
                if shape.is_gang() { 2 } else { 0 },
            )..=(shape.per_node, shape.nodes),
        );
        keys.filter(|((per_node, nodes), _)| {
            if shape.is_gang() {
                *per_node == shape.per_node && *nodes <= shape.nodes
            } else {
                *nodes <= 1
            }
        })
        .filter_map(|(_, by_duration)| {
            by_duration
                .range(..=shape.duration)
                .next_back()
                .map(|(_, t)| *t)
        })
        .max()
    }

    fn record(&mut self, shape: Shape, start: i64) {
        let by_duration = self
            .by_shape
            .entry((shape.per_node, shape.nodes))
            .or_default();
        let known = by_duration
            .range(..=shape.duration)
            .next_back()
            .map(|(_, t)| *t);
        if known.is_some_and(|t| t >= start) {
            return;
        }
        by_duration.insert(shape.duration, start);
        // Entries for longer durations with an earlier start are now weaker than this one.
        let stale: Vec<i64> = by_duration
            .range(shape.duration.saturating_add(1)..)
            .take_while(|(_, t)| **t <= start)
            .map(|(d, _)| *d)
            .collect();
        for d in stale {
            by_duration.remove(&d);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shape(per_node: i64, nodes: u32, duration: i64) -> Shape {
        Shape {
            per_node,
            nodes,
            duration,
        }
    }

    #[test]
    fn lower_bounds_carry_over_to_larger_shapes_only() {
        let mut bounds = LowerBounds::default();
        bounds.record(shape(2, 1, 100), 50);
        assert_eq!(bounds.get(shape(2, 1, 100)), Some(50));
        assert_eq!(bounds.get(shape(4, 1, 200)), Some(50));
        assert_eq!(bounds.get(shape(1, 1, 100)), None, "fewer slots");
        assert_eq!(bounds.get(shape(2, 1, 99)), None, "shorter");
        assert_eq!(bounds.get(shape(2, 2, 100)), None, "gangs are separate");
        bounds.record(shape(2, 1, 10), 70);
        assert_eq!(
            bounds.get(shape(2, 1, 100)),
            Some(70),
            "stale entry dropped"
        );
        bounds.record(shape(8, 2, 10), 90);
        assert_eq!(bounds.get(shape(8, 3, 10)), Some(90));
        assert_eq!(
            bounds.get(shape(8, 1, 10)),
            Some(70),
            "a gang bounds no single"
        );
    }
}
