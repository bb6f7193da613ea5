//! Persistent disks: the user-chosen name and the Kubernetes name derived from it.

use std::fmt;

use sha2::{Digest, Sha256};

use crate::username::Username;

/// Longest disk name.
pub const MAX_DISK_NAME_LEN: usize = 63;
/// Longest DNS-1123 label (a Kubernetes object name of most kinds).
pub const MAX_KUBE_NAME_LEN: usize = 63;

/// A disk name chosen by its owner: letters, digits, `_` and `-`, 1 to 63 characters.
/// Case is kept and significant (`Data` and `data` are two disks).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(transparent)]
pub struct DiskName(String);

/// Why a string is not a valid disk name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DiskNameError {
    /// The name was empty.
    #[error("disk name must not be empty")]
    Empty,
    /// The name was longer than [`MAX_DISK_NAME_LEN`].
    #[error("disk name must be at most {MAX_DISK_NAME_LEN} characters")]
    TooLong,
    /// The name contained a character outside `[A-Za-z0-9_-]`.
    #[error("disk name may contain only letters, digits, '_' and '-' (found {0:?})")]
    InvalidCharacter(char),
}

/// Lower-cases, turns every run of other characters into one `-`, and trims `-` from both ends.
fn label_part(raw: &str, max: usize) -> String {
    let mut out = String::with_capacity(raw.len().min(max));
    for c in raw.chars() {
        if c.is_ascii_alphanumeric() {
            out.push(c.to_ascii_lowercase());
        } else if !out.is_empty() && !out.ends_with('-') {
            out.push('-');
        }
    }
    out.truncate(max);
    out.trim_end_matches('-').to_owned()
}

impl DiskName {
    /// Parses a disk name exactly as given.
    pub fn parse(raw: &str) -> Result<Self, DiskNameError> {
        if raw.is_empty() {
            return Err(DiskNameError::Empty);
        }
        if let Some(bad) = raw
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '-')))
        {
            return Err(DiskNameError::InvalidCharacter(bad));
        }
        if raw.len() > MAX_DISK_NAME_LEN {
            return Err(DiskNameError::TooLong);
        }
        Ok(Self(raw.to_owned()))
    }

    /// The name as a string slice.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// A name for the PersistentVolumeClaim of `owner`'s disk record `disk_id` when it is created:
    /// `disk-<owner>-<disk>-<hash>`, a valid DNS-1123 label of at most 63 characters.
    ///
    /// The readable parts are lower-cased, cleaned and shortened (owner to 20, disk to 26
    /// characters); the last ten hex digits are the start of SHA-256 over `owner/disk/disk_id`
    /// exactly as given, so names that clean up alike (`Data` and `data`, or two long names
    /// sharing a prefix) still get distinct claims, and so does a new disk that takes the name of
    /// one renamed or deleted before. The name is computed once, stored with the disk, and read
    /// from there ever after: a rename changes the disk's name, never its claim.
    pub fn kube_name(&self, owner: &Username, disk_id: impl fmt::Display) -> String {
        const OWNER_MAX: usize = 20;
        const DISK_MAX: usize = 26;
        const HASH_HEX: usize = 10;

        // Neither a username nor a disk name can contain '/', so this input is unambiguous.
        let digest = Sha256::digest(format!("{}/{}/{disk_id}", owner.as_str(), self.0).as_bytes());
        let hash = hex::encode(digest);
        let mut name = String::from("disk");
        for part in [
            label_part(owner.as_str(), OWNER_MAX),
            label_part(&self.0, DISK_MAX),
        ] {
            if !part.is_empty() {
                name.push('-');
                name.push_str(&part);
            }
        }
        name.push('-');
        name.push_str(&hash[..HASH_HEX]);
        name
    }
}

impl DiskName {
    /// [`DiskName::parse`]'s rule as an (ECMA 262) regular expression, for the OpenAPI document.
    pub const PATTERN: &str = "^[A-Za-z0-9_-]{1,63}$";
}

#[cfg(feature = "openapi")]
impl utoipa::PartialSchema for DiskName {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        crate::pattern::string_schema(
            Self::PATTERN.to_owned(),
            (1, MAX_DISK_NAME_LEN),
            "A disk name: 1–63 letters, digits, `_` and `-`; case is kept and significant.",
            "home",
        )
    }
}

#[cfg(feature = "openapi")]
impl utoipa::ToSchema for DiskName {}

impl AsRef<str> for DiskName {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for DiskName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl<'de> serde::Deserialize<'de> for DiskName {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(d)?;
        Self::parse(&raw).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A disk record's id, as the database gives it.
    const ID: &str = "6f1c2d9e-3b4a-4c5d-8e7f-0a1b2c3d4e5f";

    fn is_dns1123_label(s: &str) -> bool {
        let edge =
            |c: Option<char>| c.is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
        !s.is_empty()
            && s.len() <= MAX_KUBE_NAME_LEN
            && s.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
            && edge(s.chars().next())
            && edge(s.chars().next_back())
    }

    fn user(name: &str) -> Username {
        Username::parse(name).unwrap()
    }

    fn disk(name: &str) -> DiskName {
        DiskName::parse(name).unwrap()
    }

    #[test]
    fn disk_names_follow_the_rules() {
        for ok in ["home", "My_Disk-2", "-lead", "_", &"d".repeat(63)] {
            assert_eq!(DiskName::parse(ok).map(|d| d.0), Ok(ok.to_owned()));
        }
        assert_eq!(DiskName::parse(""), Err(DiskNameError::Empty));
        assert_eq!(
            DiskName::parse(&"d".repeat(64)),
            Err(DiskNameError::TooLong)
        );
        assert_eq!(
            DiskName::parse("a.b"),
            Err(DiskNameError::InvalidCharacter('.'))
        );
        assert_eq!(
            DiskName::parse("a b"),
            Err(DiskNameError::InvalidCharacter(' '))
        );
        assert_eq!(
            DiskName::parse("a/b"),
            Err(DiskNameError::InvalidCharacter('/'))
        );
    }

    #[test]
    fn kube_name_is_readable_for_plain_input_and_stable() {
        let name = disk("home").kube_name(&user("alice"), ID);
        assert!(name.starts_with("disk-alice-home-"), "{name}");
        assert_eq!(name.len(), "disk-alice-home-".len() + 10);
        let expected = &hex::encode(Sha256::digest(format!("alice/home/{ID}").as_bytes()))[..10];
        assert_eq!(name, format!("disk-alice-home-{expected}"));
        assert_eq!(name, disk("home").kube_name(&user("alice"), ID));
    }

    #[test]
    fn a_new_disk_record_of_the_same_name_gets_another_claim() {
        let owner = user("alice");
        assert_ne!(
            disk("home").kube_name(&owner, ID),
            disk("home").kube_name(&owner, "another-disk-id")
        );
    }

    #[test]
    fn kube_names_are_dns1123_labels_for_awkward_input() {
        let long_user = "U.ser_".repeat(42);
        let owners = ["Alice.Smith", "a", "_", "...", "-x-", long_user.as_str()];
        let long_disk = "D_-".repeat(21);
        let disks = [
            "HOME",
            "my_disk",
            "-lead",
            "trail-",
            "___",
            "-",
            long_disk.as_str(),
        ];
        for owner in owners {
            for d in disks {
                let name = disk(d).kube_name(&user(owner), ID);
                assert!(is_dns1123_label(&name), "{owner:?} {d:?} -> {name:?}");
            }
        }
        let name = disk(&"z".repeat(63)).kube_name(&user(&"y".repeat(255)), ID);
        assert!(is_dns1123_label(&name), "{name}");
        assert_eq!(name.len(), 63);
    }

    #[test]
    fn case_and_punctuation_differences_do_not_collide() {
        let owner = user("alice");
        let names = ["data", "Data", "DATA", "da_ta", "da-ta", "da__ta"]
            .map(|d| disk(d).kube_name(&owner, ID));
        for (i, a) in names.iter().enumerate() {
            for b in &names[i + 1..] {
                assert_ne!(a, b);
            }
        }
    }

    #[test]
    fn the_same_disk_of_different_owners_gets_different_names() {
        let d = disk("home");
        assert_ne!(
            d.kube_name(&user("alice"), ID),
            d.kube_name(&user("Alice"), ID)
        );
        // Long owners sharing their first 20 characters stay apart too.
        let a = format!("{}a", "x".repeat(30));
        let b = format!("{}b", "x".repeat(30));
        assert_ne!(d.kube_name(&user(&a), ID), d.kube_name(&user(&b), ID));
    }

    #[test]
    fn owner_and_disk_boundary_is_unambiguous() {
        // "a-b" + "c" and "a" + "b-c" read alike once joined with '-'.
        assert_ne!(
            disk("c").kube_name(&user("a-b"), ID),
            disk("b-c").kube_name(&user("a"), ID)
        );
    }

    /// The pattern the OpenAPI document publishes accepts exactly what the parser accepts.
    #[test]
    fn the_disk_name_pattern_agrees_with_the_parser() {
        assert!(DiskName::PATTERN.contains(&format!("{{1,{MAX_DISK_NAME_LEN}}}")));
        let long = ["d".repeat(62), "d".repeat(63), "d".repeat(64)];
        let mut samples = vec!["", "home", "a b", "a.b", "é", "a\n", "_-", "Z9"];
        samples.extend(long.iter().map(String::as_str));
        crate::pattern::assert_agrees(
            DiskName::PATTERN,
            MAX_DISK_NAME_LEN,
            |s| DiskName::parse(s).is_ok(),
            &samples,
            &['a', 'Z', '0', '_', '-', '.', ' ', '/', 'é', '\n'],
            3,
        );
    }

    #[test]
    fn deserializing_checks_the_rules() {
        assert!(serde_json::from_str::<DiskName>("\"home\"").is_ok());
        assert!(serde_json::from_str::<DiskName>("\"ho me\"").is_err());
    }
}
