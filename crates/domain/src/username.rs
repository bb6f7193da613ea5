//! Usernames: the stable handle of a gpudev user.

use std::fmt;

/// Longest username we store.
pub const MAX_USERNAME_LEN: usize = 255;

/// A username made only of `[A-Za-z0-9._-]`, 1 to 255 characters.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(transparent)]
pub struct Username(String);

/// Why a string is not a valid username.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UsernameError {
    /// The string was empty (or nothing was left after sanitising).
    #[error("username must not be empty")]
    Empty,
    /// The string was longer than [`MAX_USERNAME_LEN`].
    #[error("username must be at most {MAX_USERNAME_LEN} characters")]
    TooLong,
    /// The string contained a character outside `[A-Za-z0-9._-]`.
    #[error("username may contain only letters, digits, '.', '_' and '-' (found {0:?})")]
    InvalidCharacter(char),
}

fn allowed(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')
}

impl Username {
    /// Parses a username exactly as given; nothing is rewritten.
    pub fn parse(raw: &str) -> Result<Self, UsernameError> {
        if raw.is_empty() {
            return Err(UsernameError::Empty);
        }
        if let Some(bad) = raw.chars().find(|c| !allowed(*c)) {
            return Err(UsernameError::InvalidCharacter(bad));
        }
        if raw.len() > MAX_USERNAME_LEN {
            return Err(UsernameError::TooLong);
        }
        Ok(Self(raw.to_owned()))
    }

    /// Derives a username from an identity string (an ARN session name, an OIDC claim): every
    /// character outside `[A-Za-z0-9._-]` becomes `-` and the result is cut to 255 characters.
    pub fn sanitize(raw: &str) -> Result<Self, UsernameError> {
        let cleaned: String = raw
            .chars()
            .map(|c| if allowed(c) { c } else { '-' })
            .take(MAX_USERNAME_LEN)
            .collect();
        if cleaned.is_empty() {
            return Err(UsernameError::Empty);
        }
        Ok(Self(cleaned))
    }

    /// The username as a string slice.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl AsRef<str> for Username {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Username {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl<'de> serde::Deserialize<'de> for Username {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(d)?;
        Self::parse(&raw).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_names_parse_unchanged() {
        for ok in ["alice", "a.b-c_d", "X9", &"a".repeat(255)] {
            assert_eq!(
                Username::parse(ok).map(|u| u.as_str().to_owned()),
                Ok(ok.to_owned())
            );
        }
    }

    #[test]
    fn parse_rejects_empty_long_and_odd_characters() {
        assert_eq!(Username::parse(""), Err(UsernameError::Empty));
        assert_eq!(
            Username::parse(&"a".repeat(256)),
            Err(UsernameError::TooLong)
        );
        assert_eq!(
            Username::parse("al ice"),
            Err(UsernameError::InvalidCharacter(' '))
        );
        assert_eq!(
            Username::parse("bob@corp"),
            Err(UsernameError::InvalidCharacter('@'))
        );
        assert_eq!(
            Username::parse("é"),
            Err(UsernameError::InvalidCharacter('é'))
        );
    }

    #[test]
    fn sanitize_replaces_disallowed_characters_and_truncates() {
        assert_eq!(
            Username::sanitize("bob@corp.com").map(|u| u.0),
            Ok("bob-corp.com".into())
        );
        assert_eq!(Username::sanitize("a b/c").map(|u| u.0), Ok("a-b-c".into()));
        assert_eq!(
            Username::sanitize(&"z".repeat(300)).map(|u| u.0.len()),
            Ok(255)
        );
        assert_eq!(Username::sanitize(""), Err(UsernameError::Empty));
    }

    #[test]
    fn deserializing_checks_the_rules() {
        let ok: Result<Username, _> = serde_json::from_str("\"carol\"");
        assert!(ok.is_ok());
        let bad: Result<Username, _> = serde_json::from_str("\"carol smith\"");
        assert!(bad.is_err());
    }
}
