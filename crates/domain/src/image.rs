//! Container image references, in the OCI/Docker syntax
//! `[registry[:port]/]path[:tag][@digest]`.
//!
//! The first `/`-separated component is taken as a registry when it contains `.` or `:` or is
//! `localhost` (Docker's rule, minus its "has upper case" case so that `UPPER/case` is refused
//! rather than read as a registry).

use std::fmt;

/// Longest image reference accepted.
pub const MAX_IMAGE_LEN: usize = 255;
/// Longest tag accepted (the OCI limit).
pub const MAX_TAG_LEN: usize = 128;

/// Why a string is not a valid image reference.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ImageError {
    /// The reference was empty.
    #[error("image reference must not be empty")]
    Empty,
    /// The reference was longer than [`MAX_IMAGE_LEN`].
    #[error("image reference must be at most {MAX_IMAGE_LEN} characters")]
    TooLong,
    /// The reference contained whitespace or a control character.
    #[error("image reference must not contain whitespace or control characters")]
    Whitespace,
    /// Nothing came before the `:tag` or `@digest`.
    #[error("image reference must start with a repository name")]
    MissingName,
    /// Two slashes in a row, or a leading or trailing slash.
    #[error("image repository path must not contain empty components (as in a//b)")]
    EmptyComponent,
    /// A repository path component had upper-case letters.
    #[error("image repository path must be lower-case (found {0:?})")]
    Uppercase(String),
    /// A repository path component broke the character rules.
    #[error(
        "image repository path component {0:?} must be lower-case letters and digits, \
         separated by '.', '_', '__' or '-', starting and ending with a letter or digit"
    )]
    InvalidComponent(String),
    /// The registry was not a host name with an optional port.
    #[error("image registry {0:?} must be a host name with an optional :port")]
    InvalidRegistry(String),
    /// A `:` with nothing after it.
    #[error("image tag after ':' must not be empty")]
    EmptyTag,
    /// The tag broke the character or length rules.
    #[error(
        "image tag {0:?} must start with a letter, digit or '_' and have at most 128 letters, \
         digits, '_', '.' or '-'"
    )]
    InvalidTag(String),
    /// The digest was not `algorithm:hex`.
    #[error(
        "image digest must be ALGORITHM:HEX, such as sha256: followed by 64 lower-case hex digits"
    )]
    InvalidDigest,
}

/// A syntactically valid image reference.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ImageRef {
    raw: String,
    parts: Parts,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Parts {
    registry: Option<String>,
    path: String,
    tag: Option<String>,
    digest: Option<String>,
}

fn is_lower_alnum(c: char) -> bool {
    c.is_ascii_lowercase() || c.is_ascii_digit()
}

/// `[a-z0-9]+ (separator [a-z0-9]+)*` with separators `.`, `_`, `__` or `-+`.
fn check_path_component(component: &str) -> Result<(), ImageError> {
    if component.is_empty() {
        return Err(ImageError::EmptyComponent);
    }
    if component.chars().any(|c| c.is_ascii_uppercase()) {
        return Err(ImageError::Uppercase(component.to_owned()));
    }
    let invalid = || ImageError::InvalidComponent(component.to_owned());
    let starts_ok = component.chars().next().is_some_and(is_lower_alnum);
    let ends_ok = component.chars().next_back().is_some_and(is_lower_alnum);
    if !starts_ok || !ends_ok {
        return Err(invalid());
    }
    for separator in component.split(is_lower_alnum).filter(|s| !s.is_empty()) {
        let dashes = separator.chars().all(|c| c == '-');
        if !(dashes || matches!(separator, "." | "_" | "__")) {
            return Err(invalid());
        }
    }
    Ok(())
}

/// `host[:port]` where host is dot-separated labels of letters, digits and inner `-`.
fn check_registry(registry: &str) -> Result<(), ImageError> {
    let invalid = || ImageError::InvalidRegistry(registry.to_owned());
    let (host, port) = match registry.split_once(':') {
        Some((host, port)) => (host, Some(port)),
        None => (registry, None),
    };
    let label_ok = |label: &str| {
        !label.is_empty()
            && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
            && !label.starts_with('-')
            && !label.ends_with('-')
    };
    if !host.split('.').all(label_ok) {
        return Err(invalid());
    }
    if let Some(port) = port {
        let digits =
            !port.is_empty() && port.len() <= 5 && port.bytes().all(|b| b.is_ascii_digit());
        if !digits || !port.parse::<u32>().is_ok_and(|p| (1..=65_535).contains(&p)) {
            return Err(invalid());
        }
    }
    Ok(())
}

fn check_tag(tag: &str) -> Result<(), ImageError> {
    if tag.is_empty() {
        return Err(ImageError::EmptyTag);
    }
    let word = |c: char| c.is_ascii_alphanumeric() || c == '_';
    let first_ok = tag.chars().next().is_some_and(word);
    let rest_ok = tag.chars().all(|c| word(c) || c == '.' || c == '-');
    if !first_ok || !rest_ok || tag.len() > MAX_TAG_LEN {
        return Err(ImageError::InvalidTag(tag.to_owned()));
    }
    Ok(())
}

/// `algorithm:hex`, with the exact lengths of the registered algorithms.
fn check_digest(digest: &str) -> Result<(), ImageError> {
    let (algorithm, hex) = digest.split_once(':').ok_or(ImageError::InvalidDigest)?;
    let algorithm_ok = !algorithm.is_empty()
        && algorithm
            .split(['+', '.', '_', '-'])
            .all(|part| !part.is_empty() && part.chars().all(is_lower_alnum));
    let hex_ok = hex
        .chars()
        .all(|c| c.is_ascii_digit() || matches!(c, 'a'..='f'));
    let len_ok = match algorithm {
        "sha256" => hex.len() == 64,
        "sha512" => hex.len() == 128,
        _ => hex.len() >= 32,
    };
    if algorithm_ok && hex_ok && len_ok {
        Ok(())
    } else {
        Err(ImageError::InvalidDigest)
    }
}

impl ImageRef {
    /// Parses `[registry[:port]/]path[:tag][@digest]`.
    pub fn parse(raw: &str) -> Result<Self, ImageError> {
        if raw.is_empty() {
            return Err(ImageError::Empty);
        }
        if raw.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(ImageError::Whitespace);
        }
        if raw.len() > MAX_IMAGE_LEN {
            return Err(ImageError::TooLong);
        }

        let (rest, digest) = match raw.split_once('@') {
            Some((rest, digest)) => {
                check_digest(digest)?;
                (rest, Some(digest))
            }
            None => (raw, None),
        };
        // A ':' after the last '/' starts the tag; one before it belongs to a registry port.
        let after_slash = rest.rfind('/').map_or(0, |i| i + 1);
        let (name, tag) = match rest[after_slash..].rfind(':') {
            Some(i) => (&rest[..after_slash + i], Some(&rest[after_slash + i + 1..])),
            None => (rest, None),
        };
        if name.is_empty() {
            return Err(ImageError::MissingName);
        }
        if let Some(tag) = tag {
            check_tag(tag)?;
        }

        let (registry, path) = match name.split_once('/') {
            Some((first, path))
                if first.contains('.') || first.contains(':') || first == "localhost" =>
            {
                check_registry(first)?;
                (Some(first), path)
            }
            _ => (None, name),
        };
        for component in path.split('/') {
            check_path_component(component)?;
        }

        Ok(Self {
            raw: raw.to_owned(),
            parts: Parts {
                registry: registry.map(str::to_owned),
                path: path.to_owned(),
                tag: tag.map(str::to_owned),
                digest: digest.map(str::to_owned),
            },
        })
    }

    /// The reference exactly as given.
    pub fn as_str(&self) -> &str {
        &self.raw
    }

    /// The registry host (and port), when the reference names one.
    pub fn registry(&self) -> Option<&str> {
        self.parts.registry.as_deref()
    }

    /// The repository path without registry, tag or digest (`pytorch/pytorch`).
    pub fn path(&self) -> &str {
        &self.parts.path
    }

    /// The tag, if any.
    pub fn tag(&self) -> Option<&str> {
        self.parts.tag.as_deref()
    }

    /// The digest (`sha256:…`), if any.
    pub fn digest(&self) -> Option<&str> {
        self.parts.digest.as_deref()
    }
}

impl fmt::Display for ImageRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.raw)
    }
}

impl serde::Serialize for ImageRef {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.raw)
    }
}

impl<'de> serde::Deserialize<'de> for ImageRef {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(d)?;
        Self::parse(&raw).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex64() -> String {
        "0123456789abcdef".repeat(4)
    }

    #[test]
    fn the_documented_examples_parse() {
        let digest_ref = format!("img@sha256:{}", hex64());
        for ok in [
            "pytorch/pytorch:2.8.0-cuda12.9-cudnn9-devel",
            "ubuntu",
            "ghcr.io/org/img:v1",
            "localhost:5000/a/b",
            "nvcr.io/nvidia/pytorch:24.01-py3",
            digest_ref.as_str(),
        ] {
            assert_eq!(
                ImageRef::parse(ok).map(|r| r.raw),
                Ok(ok.to_owned()),
                "{ok}"
            );
        }
    }

    #[test]
    fn parts_are_split_out() {
        let r = ImageRef::parse("nvcr.io/nvidia/pytorch:24.01-py3").unwrap();
        assert_eq!(r.registry(), Some("nvcr.io"));
        assert_eq!(r.path(), "nvidia/pytorch");
        assert_eq!(r.tag(), Some("24.01-py3"));
        assert_eq!(r.digest(), None);

        let r = ImageRef::parse("localhost:5000/a/b").unwrap();
        assert_eq!(
            (r.registry(), r.path(), r.tag()),
            (Some("localhost:5000"), "a/b", None)
        );

        let r = ImageRef::parse("pytorch/pytorch:2.8.0-cuda12.9-cudnn9-devel").unwrap();
        assert_eq!(r.registry(), None);
        assert_eq!(r.path(), "pytorch/pytorch");

        let raw = format!("Registry.Example.com:443/team/img:v2@sha256:{}", hex64());
        let r = ImageRef::parse(&raw).unwrap();
        assert_eq!(r.registry(), Some("Registry.Example.com:443"));
        assert_eq!(r.tag(), Some("v2"));
        assert_eq!(r.digest(), Some(format!("sha256:{}", hex64()).as_str()));
    }

    #[test]
    fn path_separators_follow_the_oci_grammar() {
        for ok in ["a.b/c_d", "a__b", "a---b", "a-b.c_d__e", "0"] {
            assert!(ImageRef::parse(ok).is_ok(), "{ok}");
        }
        for bad in ["a___b", "a..b", "a._b", "a-_b", "a_", "a."] {
            assert_eq!(
                ImageRef::parse(bad),
                Err(ImageError::InvalidComponent(bad.to_owned())),
                "{bad}"
            );
        }
    }

    #[test]
    fn the_documented_bad_references_are_refused() {
        assert_eq!(
            ImageRef::parse("UPPER/case"),
            Err(ImageError::Uppercase("UPPER".into()))
        );
        assert_eq!(ImageRef::parse("a//b"), Err(ImageError::EmptyComponent));
        assert_eq!(ImageRef::parse("img:"), Err(ImageError::EmptyTag));
        assert_eq!(ImageRef::parse(":tag"), Err(ImageError::MissingName));
        assert_eq!(
            ImageRef::parse("img:tag with space"),
            Err(ImageError::Whitespace)
        );
        assert_eq!(
            ImageRef::parse("-bad"),
            Err(ImageError::InvalidComponent("-bad".into()))
        );
        assert_eq!(ImageRef::parse(&"a".repeat(256)), Err(ImageError::TooLong));
        assert_eq!(ImageRef::parse(""), Err(ImageError::Empty));
    }

    #[test]
    fn the_length_limit_is_255_characters() {
        assert!(ImageRef::parse(&"a".repeat(255)).is_ok());
        assert_eq!(ImageRef::parse(&"a".repeat(256)), Err(ImageError::TooLong));
    }

    #[test]
    fn control_characters_and_tabs_are_refused() {
        for bad in ["img\t", "img\n", "img\u{0}", "a b"] {
            assert_eq!(ImageRef::parse(bad), Err(ImageError::Whitespace), "{bad:?}");
        }
    }

    #[test]
    fn slashes_at_either_end_are_refused() {
        assert_eq!(ImageRef::parse("/img"), Err(ImageError::EmptyComponent));
        assert_eq!(ImageRef::parse("img/"), Err(ImageError::EmptyComponent));
        assert_eq!(ImageRef::parse("ghcr.io/"), Err(ImageError::EmptyComponent));
    }

    #[test]
    fn tags_follow_the_tag_rules() {
        assert!(ImageRef::parse("img:_x").is_ok());
        assert!(ImageRef::parse(&format!("img:{}", "t".repeat(128))).is_ok());
        let long = "t".repeat(129);
        assert_eq!(
            ImageRef::parse(&format!("img:{long}")),
            Err(ImageError::InvalidTag(long))
        );
        assert_eq!(
            ImageRef::parse("img:.x"),
            Err(ImageError::InvalidTag(".x".into()))
        );
        assert_eq!(
            ImageRef::parse("img:-x"),
            Err(ImageError::InvalidTag("-x".into()))
        );
        assert_eq!(
            ImageRef::parse("img:a+b"),
            Err(ImageError::InvalidTag("a+b".into()))
        );
        // Only the last ':' starts a tag, so the first one lands in the path and is refused.
        assert_eq!(
            ImageRef::parse("img:a:b"),
            Err(ImageError::InvalidComponent("img:a".into()))
        );
    }

    #[test]
    fn registries_must_be_hosts_with_an_optional_port() {
        for bad in [
            "-reg.io/img",
            "reg..io/img",
            "reg_x.io/img",
            "localhost:/img",
            "localhost:99999/img",
            "localhost:0/img",
            "localhost:50a/img",
        ] {
            assert!(
                matches!(ImageRef::parse(bad), Err(ImageError::InvalidRegistry(_))),
                "{bad}: {:?}",
                ImageRef::parse(bad)
            );
        }
    }

    #[test]
    fn digests_must_be_algorithm_colon_hex_of_the_right_length() {
        assert!(ImageRef::parse(&format!("img@sha512:{}", hex64().repeat(2))).is_ok());
        for bad in [
            "img@".to_owned(),
            "img@sha256".to_owned(),
            format!("img@sha256:{}", &hex64()[..63]),
            format!("img@sha256:{}0", hex64()),
            format!("img@sha256:{}", hex64().to_uppercase()),
            format!("img@SHA256:{}", hex64()),
            format!("img@:{}", hex64()),
            format!("img@sha256:{}@sha256:{}", hex64(), hex64()),
        ] {
            assert_eq!(
                ImageRef::parse(&bad),
                Err(ImageError::InvalidDigest),
                "{bad}"
            );
        }
        assert_eq!(
            ImageRef::parse(&format!("@sha256:{}", hex64())),
            Err(ImageError::MissingName)
        );
    }

    #[test]
    fn serde_round_trips_as_a_string_and_checks_on_the_way_in() {
        let r = ImageRef::parse("ghcr.io/org/img:v1").unwrap();
        assert_eq!(serde_json::to_string(&r).unwrap(), "\"ghcr.io/org/img:v1\"");
        let back: ImageRef = serde_json::from_str("\"ghcr.io/org/img:v1\"").unwrap();
        assert_eq!(back, r);
        assert!(serde_json::from_str::<ImageRef>("\"UPPER/case\"").is_err());
    }
}
