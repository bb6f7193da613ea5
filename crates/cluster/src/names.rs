//! Object names, all derived from the reservation id so that building and applying the same
//! reservation twice names the same objects (a second create answers 409 instead of making a
//! duplicate).
//!
//! | Object | Name |
//! |---|---|
//! | Pod (single node) | `gpudev-<12 hex>` |
//! | Pod (node `i` of a multi-node reservation) | `gpudev-<12 hex>-<i>` |
//! | Secret of a Pod | `<pod>-env` |
//! | SSH (and Jupyter) NodePort Service of a Pod | `<pod>-ssh` |
//! | Headless rendezvous Service (multi-node only) | `gpudev-<12 hex>-nodes` |
//! | Disk claim | [`gpudev_domain::DiskName::kube_name`] |
//! | VolumeSnapshot | `<claim>-<12 hex of the reservation>` |
//!
//! `<12 hex>` is the first 12 hex digits of the reservation id ([`short_id`]). Twelve digits of a
//! random (v4) id make a clash between two live reservations vanishingly unlikely; a caller that
//! meets an existing object on create should still check its [`crate::labels::RESERVATION_ID`]
//! label before treating it as its own.

use uuid::Uuid;

/// Prefix of every per-reservation object name.
pub const NAME_PREFIX: &str = "gpudev";
/// Hex digits of the reservation id used in names.
pub const SHORT_ID_LEN: usize = 12;
/// Longest DNS-1123 label.
pub const MAX_DNS1123_LABEL_LEN: usize = 63;
/// Longest DNS-1123 subdomain.
pub const MAX_DNS1123_SUBDOMAIN_LEN: usize = 253;

/// The first [`SHORT_ID_LEN`] hex digits of a reservation id (lower case, no hyphens).
pub fn short_id(reservation_id: Uuid) -> String {
    let mut hex = reservation_id.simple().to_string();
    hex.truncate(SHORT_ID_LEN);
    hex
}

/// The name of a reservation's Pod on node `node_index` (counted from 0) of `total_nodes`.
/// Single-node reservations have no index suffix.
pub fn pod_name(reservation_id: Uuid, node_index: u32, total_nodes: u32) -> String {
    let base = format!("{NAME_PREFIX}-{}", short_id(reservation_id));
    if total_nodes > 1 {
        format!("{base}-{node_index}")
    } else {
        base
    }
}

/// The name of the Secret holding a Pod's authorized_keys, env values and Jupyter token.
pub fn secret_name(pod_name: &str) -> String {
    format!("{pod_name}-env")
}

/// The name of a Pod's NodePort Service for SSH (and Jupyter).
pub fn ssh_service_name(pod_name: &str) -> String {
    format!("{pod_name}-ssh")
}

/// The name of a multi-node reservation's headless Service. Its Pods resolve as
/// `<pod>.<this name>.<namespace>.svc`.
pub fn headless_service_name(reservation_id: Uuid) -> String {
    format!("{NAME_PREFIX}-{}-nodes", short_id(reservation_id))
}

/// The name of the VolumeSnapshot taken of `claim_name` when `reservation_id` ends: one
/// snapshot per disk and reservation, so a second expiry run finds the first one's snapshot.
pub fn snapshot_name(claim_name: &str, reservation_id: Uuid) -> String {
    format!("{claim_name}-{}", short_id(reservation_id))
}

/// True when `s` is a DNS-1123 label: 1 to 63 characters of `[a-z0-9-]`, starting and ending
/// with a letter or digit (the rule for Pod, Secret and claim names and for namespaces).
pub fn is_dns1123_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= MAX_DNS1123_LABEL_LEN
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && s.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
        && s.ends_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
}

/// True when `s` is a DNS-1035 label: a DNS-1123 label that starts with a letter (the rule for
/// Service names).
pub fn is_dns1035_label(s: &str) -> bool {
    is_dns1123_label(s) && s.starts_with(|c: char| c.is_ascii_lowercase())
}

/// True when `s` is a DNS-1123 subdomain as Kubernetes checks it (the rule for most other
/// object names, VolumeSnapshots included, and for label key prefixes): at most 253
/// characters, dot-separated parts of `[a-z0-9-]` that start and end with a letter or digit.
/// Kubernetes does not limit the length of a part, and neither does this.
pub fn is_dns1123_subdomain(s: &str) -> bool {
    let part_ok = |p: &str| {
        !p.is_empty()
            && p.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
            && !p.starts_with('-')
            && !p.ends_with('-')
    };
    !s.is_empty() && s.len() <= MAX_DNS1123_SUBDOMAIN_LEN && s.split('.').all(part_ok)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id() -> Uuid {
        Uuid::parse_str("3f2a9c1e-7b4d-4e8f-9a0b-1c2d3e4f5a6b").unwrap()
    }

    #[test]
    fn names_follow_the_documented_scheme() {
        assert_eq!(short_id(id()), "3f2a9c1e7b4d");
        assert_eq!(pod_name(id(), 0, 1), "gpudev-3f2a9c1e7b4d");
        assert_eq!(pod_name(id(), 0, 2), "gpudev-3f2a9c1e7b4d-0");
        assert_eq!(pod_name(id(), 1, 2), "gpudev-3f2a9c1e7b4d-1");
        assert_eq!(
            secret_name("gpudev-3f2a9c1e7b4d"),
            "gpudev-3f2a9c1e7b4d-env"
        );
        assert_eq!(
            ssh_service_name("gpudev-3f2a9c1e7b4d-1"),
            "gpudev-3f2a9c1e7b4d-1-ssh"
        );
        assert_eq!(headless_service_name(id()), "gpudev-3f2a9c1e7b4d-nodes");
        assert_eq!(
            snapshot_name("disk-alice-home-0123456789", id()),
            "disk-alice-home-0123456789-3f2a9c1e7b4d"
        );
    }

    #[test]
    fn names_are_deterministic_and_dns_safe() {
        for nodes in [1, 2, 16, 999] {
            for index in [0, nodes - 1] {
                let pod = pod_name(id(), index, nodes);
                assert_eq!(pod, pod_name(id(), index, nodes));
                for name in [&pod, &secret_name(&pod)] {
                    assert!(is_dns1123_label(name), "{name}");
                }
                for name in [ssh_service_name(&pod), headless_service_name(id())] {
                    assert!(is_dns1035_label(&name), "{name}");
                }
            }
        }
        let upper = Uuid::max();
        assert!(is_dns1123_label(&pod_name(upper, 0, 1)));
        let longest_claim = "d".repeat(63);
        assert!(is_dns1123_subdomain(&snapshot_name(&longest_claim, id())));
    }

    #[test]
    fn different_reservations_get_different_names() {
        let other = Uuid::parse_str("3f2a9c1e-7b4e-4e8f-9a0b-1c2d3e4f5a6b").unwrap();
        assert_ne!(pod_name(id(), 0, 1), pod_name(other, 0, 1));
    }

    #[test]
    fn dns_rules() {
        assert!(is_dns1123_label("a-1"));
        assert!(is_dns1123_label("1a"));
        assert!(!is_dns1123_label("1a-"));
        assert!(!is_dns1123_label("A"));
        assert!(!is_dns1123_label(""));
        assert!(!is_dns1123_label(&"a".repeat(64)));
        assert!(is_dns1035_label("a1"));
        assert!(!is_dns1035_label("1a"));
        assert!(is_dns1123_subdomain("gpudev.io"));
        assert!(!is_dns1123_subdomain("gpudev..io"));
        assert!(!is_dns1123_subdomain(".io"));
        assert!(!is_dns1123_subdomain("a-.io"));
        assert!(!is_dns1123_subdomain("Gpudev.io"));
        assert!(is_dns1123_subdomain(&"a".repeat(253)));
        assert!(!is_dns1123_subdomain(&"a".repeat(254)));
    }
}
