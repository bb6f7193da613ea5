//! Label and annotation keys shared by everything that creates or looks for gpudev's objects
//! (the processor's driver, the expiry job's cleanup, the availability job).
//!
//! Every per-reservation object carries [`MANAGED_BY`]`=`[`MANAGED_BY_VALUE`],
//! [`RESERVATION_ID`] and [`USER`], so one label selector ([`selector_for`]) finds all of a
//! reservation's objects and [`managed_selector`] finds everything gpudev made.

use std::collections::BTreeMap;

use gpudev_domain::Username;
use sha2::{Digest, Sha256};
use uuid::Uuid;

/// The well-known label naming the tool that manages an object.
pub const MANAGED_BY: &str = "app.kubernetes.io/managed-by";
/// Our value of [`MANAGED_BY`].
pub const MANAGED_BY_VALUE: &str = "gpudev";
/// The well-known label naming the application an object belongs to.
pub const APP_NAME: &str = "app.kubernetes.io/name";
/// [`APP_NAME`] of a dev box's Pod, Secret and Services.
pub const APP_DEVBOX: &str = "gpudev-devbox";
/// [`APP_NAME`] of a user's disk claim.
pub const APP_DISK: &str = "gpudev-disk";
/// [`APP_NAME`] of a snapshot of a user's disk.
pub const APP_DISK_SNAPSHOT: &str = "gpudev-disk-snapshot";
/// The reservation an object belongs to: the reservation id in its hyphenated form.
pub const RESERVATION_ID: &str = "gpudev.io/reservation-id";
/// The owner of an object, as [`user_value`] (a valid label value; the exact username is in
/// the [`USERNAME_ANNOTATION`] annotation).
pub const USER: &str = "gpudev.io/user";
/// Which node of a reservation a Pod (and its Secret and SSH Service) serves: `0`, `1`, ….
pub const NODE_INDEX: &str = "gpudev.io/node-index";
/// The GPU type of a dev box (informational; scheduling uses the node selector).
pub const GPU_TYPE: &str = "gpudev.io/gpu-type";
/// On a VolumeSnapshot: the name of the claim it was taken from (so "the newest N snapshots of
/// a disk" is one label selector).
pub const DISK_CLAIM: &str = "gpudev.io/disk-claim";
/// Annotation holding the exact username, which may not fit in a label value.
pub const USERNAME_ANNOTATION: &str = "gpudev.io/username";
/// Annotation holding the exact disk name chosen by the user (disk claims and snapshots).
pub const DISK_NAME_ANNOTATION: &str = "gpudev.io/disk-name";
/// Annotation on a VolumeSnapshot: the reservation whose end it records. An annotation, not a
/// label, so selectors for a reservation's objects never match (and clean up) snapshots.
pub const SNAPSHOT_RESERVATION_ANNOTATION: &str = "gpudev.io/snapshot-of-reservation";
/// The default node label whose value is the GPU type of the node (`GPU_TYPE_LABEL`).
pub const DEFAULT_GPU_TYPE_LABEL: &str = "gpudev.io/gpu-type";

/// Longest label value.
pub const MAX_LABEL_VALUE_LEN: usize = 63;

/// The label selector matching every object of one reservation (Pods, Secrets, Services):
/// `app.kubernetes.io/managed-by=gpudev,gpudev.io/reservation-id=<id>`.
pub fn selector_for(reservation_id: Uuid) -> String {
    format!(
        "{MANAGED_BY}={MANAGED_BY_VALUE},{RESERVATION_ID}={}",
        reservation_id.hyphenated()
    )
}

/// The label selector matching every object gpudev manages (for orphan cleanup).
pub fn managed_selector() -> String {
    format!("{MANAGED_BY}={MANAGED_BY_VALUE}")
}

/// The label selector matching every object of one user.
pub fn user_selector(user: &Username) -> String {
    format!(
        "{MANAGED_BY}={MANAGED_BY_VALUE},{USER}={}",
        user_value(user)
    )
}

/// The label selector matching every snapshot of one disk claim.
pub fn snapshots_of_selector(claim_name: &str) -> String {
    format!(
        "{MANAGED_BY}={MANAGED_BY_VALUE},{APP_NAME}={APP_DISK_SNAPSHOT},{DISK_CLAIM}={claim_name}"
    )
}

/// The value of the [`USER`] label for a username.
///
/// A username is made of the characters a label value allows, but may be longer than 63
/// characters or start or end with `.`, `_` or `-`. Such names become a cleaned prefix plus
/// ten hex digits of SHA-256 over the exact username, so distinct users keep distinct values.
/// Every other username is used unchanged.
pub fn user_value(user: &Username) -> String {
    let raw = user.as_str();
    if is_label_value(raw) {
        return raw.to_owned();
    }
    const PREFIX_MAX: usize = 40;
    let hash = hex::encode(Sha256::digest(raw.as_bytes()));
    let trimmed = raw.trim_matches(|c: char| !c.is_ascii_alphanumeric());
    let mut prefix: String = trimmed.chars().take(PREFIX_MAX).collect();
    while prefix.ends_with(|c: char| !c.is_ascii_alphanumeric()) {
        prefix.pop();
    }
    if prefix.is_empty() {
        format!("u-{}", &hash[..10])
    } else {
        format!("{prefix}-{}", &hash[..10])
    }
}

/// The labels every object of a reservation carries.
pub fn reservation_labels(reservation_id: Uuid, user: &Username) -> BTreeMap<String, String> {
    BTreeMap::from([
        (MANAGED_BY.to_owned(), MANAGED_BY_VALUE.to_owned()),
        (APP_NAME.to_owned(), APP_DEVBOX.to_owned()),
        (
            RESERVATION_ID.to_owned(),
            reservation_id.hyphenated().to_string(),
        ),
        (USER.to_owned(), user_value(user)),
    ])
}

/// True when `value` is a valid label value: at most 63 characters of `[A-Za-z0-9._-]`,
/// starting and ending with a letter or digit (or empty).
pub fn is_label_value(value: &str) -> bool {
    if value.is_empty() {
        return true;
    }
    value.len() <= MAX_LABEL_VALUE_LEN
        && value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
        && value.starts_with(|c: char| c.is_ascii_alphanumeric())
        && value.ends_with(|c: char| c.is_ascii_alphanumeric())
}

/// True when `key` is a valid label key: an optional DNS subdomain prefix and `/`, then a name
/// that is a non-empty [label value](is_label_value).
pub fn is_label_key(key: &str) -> bool {
    let (prefix, name) = match key.split_once('/') {
        Some((prefix, name)) => (Some(prefix), name),
        None => (None, key),
    };
    let prefix_ok = prefix.is_none_or(crate::names::is_dns1123_subdomain);
    prefix_ok && !name.is_empty() && is_label_value(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(name: &str) -> Username {
        Username::parse(name).unwrap()
    }

    #[test]
    fn selector_for_names_the_managed_by_and_reservation_labels() {
        let id = Uuid::parse_str("0123456789abcdef0123456789abcdef").unwrap();
        assert_eq!(
            selector_for(id),
            "app.kubernetes.io/managed-by=gpudev,\
             gpudev.io/reservation-id=01234567-89ab-cdef-0123-456789abcdef"
        );
        assert_eq!(managed_selector(), "app.kubernetes.io/managed-by=gpudev");
        assert_eq!(
            user_selector(&user("alice")),
            "app.kubernetes.io/managed-by=gpudev,gpudev.io/user=alice"
        );
        assert_eq!(
            snapshots_of_selector("disk-alice-home-0123456789"),
            "app.kubernetes.io/managed-by=gpudev,app.kubernetes.io/name=gpudev-disk-snapshot,\
             gpudev.io/disk-claim=disk-alice-home-0123456789"
        );
    }

    #[test]
    fn plain_usernames_are_label_values_unchanged() {
        for name in ["alice", "Alice.Smith", "a_b-c", "x", &"y".repeat(63)] {
            assert_eq!(user_value(&user(name)), name);
        }
    }

    #[test]
    fn awkward_usernames_become_distinct_valid_label_values() {
        let long = "z".repeat(64);
        let awkward = [
            "-alice",
            "alice.",
            "_",
            "...",
            "a-",
            long.as_str(),
            "-alice-",
        ];
        let values: Vec<String> = awkward.iter().map(|n| user_value(&user(n))).collect();
        for (name, value) in awkward.iter().zip(&values) {
            assert!(is_label_value(value), "{name:?} -> {value:?}");
            assert_ne!(value, name);
        }
        for (i, a) in values.iter().enumerate() {
            for b in &values[i + 1..] {
                assert_ne!(a, b);
            }
        }
        assert!(user_value(&user("-alice")).starts_with("alice-"));
        // The same user always gets the same value.
        assert_eq!(user_value(&user("-alice")), user_value(&user("-alice")));
    }

    #[test]
    fn label_value_and_key_rules() {
        assert!(is_label_value(""));
        assert!(is_label_value("a.b_c-d"));
        assert!(!is_label_value("-a"));
        assert!(!is_label_value("a/b"));
        assert!(!is_label_value(&"a".repeat(64)));
        assert!(is_label_key("gpudev.io/gpu-type"));
        assert!(is_label_key("node.kubernetes.io/instance-type"));
        assert!(is_label_key("GpuType"));
        assert!(!is_label_key("gpudev.io/"));
        assert!(!is_label_key("/gpu"));
        assert!(!is_label_key("Bad_Prefix/gpu"));
        assert!(!is_label_key("a/b/c"));
        assert!(!is_label_key(""));
    }

    #[test]
    fn reservation_labels_are_the_three_required_ones_and_the_app_name() {
        let id = Uuid::nil();
        let labels = reservation_labels(id, &user("bob"));
        assert_eq!(labels.len(), 4);
        assert_eq!(labels[MANAGED_BY], "gpudev");
        assert_eq!(labels[APP_NAME], "gpudev-devbox");
        assert_eq!(labels[RESERVATION_ID], id.hyphenated().to_string());
        assert_eq!(labels[USER], "bob");
    }
}
