//! The original client's multi-node reservations (ADR 16).
//!
//! Its `reserve --distributed` sends one single-node submit per node, each for a whole node and
//! named `<name> - Node <i>/<N>`. gpudev recognises such a member by that name and stores the
//! members of one group as a single reservation of N whole nodes, admitted all together or not
//! at all.

use std::time::Duration;

/// How long a group waits for its other members after the first one arrived. The original
/// client sends them within a second; anything later is not part of the same command.
pub const GROUP_WINDOW: Duration = Duration::from_secs(60);

/// Most nodes a group may name (the limit on nodes per reservation still applies).
const MAX_GROUP_SIZE: u32 = 64;

/// One node of a group, read from a reservation's name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupMember {
    base: String,
    index: u32,
    size: u32,
}

impl GroupMember {
    /// Reads `<name> - Node <i>/<N>` (1 ≤ i ≤ N, 2 ≤ N ≤ 64, a non-empty name); anything else
    /// is not a member of a group.
    pub fn recognise(name: &str) -> Option<Self> {
        let (base, tail) = name.rsplit_once(" - Node ")?;
        let base = base.trim();
        let (i, n) = tail.trim().split_once('/')?;
        let digits =
            |s: &str| !s.is_empty() && s.len() <= 3 && s.bytes().all(|b| b.is_ascii_digit());
        if base.is_empty() || !digits(i) || !digits(n) {
            return None;
        }
        let (i, n): (u32, u32) = (i.parse().ok()?, n.parse().ok()?);
        if !(2..=MAX_GROUP_SIZE).contains(&n) || !(1..=n).contains(&i) {
            return None;
        }
        Some(Self {
            base: base.to_owned(),
            index: i - 1,
            size: n,
        })
    }

    /// The group's name, without the node suffix.
    pub fn base(&self) -> &str {
        &self.base
    }

    /// This member's node, 0-based ("Node 1/N" is 0).
    pub fn index(&self) -> u32 {
        self.index
    }

    /// Nodes in the group.
    pub fn size(&self) -> u32 {
        self.size
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_original_clients_node_names_are_members() {
        let m = GroupMember::recognise("train - Node 2/4").unwrap();
        assert_eq!((m.base(), m.index(), m.size()), ("train", 1, 4));
        let m = GroupMember::recognise("a - b - Node 1/2").unwrap();
        assert_eq!((m.base(), m.index(), m.size()), ("a - b", 0, 2));
    }

    #[test]
    fn other_names_are_not() {
        for name in [
            "train",
            "train - Node 0/2",
            "train - Node 3/2",
            "train - Node 1/1",
            "train - Node 1/65",
            " - Node 1/2",
            "train - Node 1/2x",
            "train - Node +1/2",
            "train - Node 1/",
            "train - node 1/2",
        ] {
            assert_eq!(GroupMember::recognise(name), None, "{name}");
        }
    }
}
