//! GitHub logins, used to fetch a user's public SSH keys.

use std::fmt;

/// Longest GitHub login.
pub const MAX_GITHUB_LOGIN_LEN: usize = 39;

/// A GitHub login: 1 to 39 letters, digits or single hyphens, not starting or ending with a
/// hyphen. Case is kept (GitHub itself ignores it).
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(transparent)]
pub struct GithubUser(String);

/// Why a string is not a valid GitHub login.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GithubUserError {
    /// The login was empty.
    #[error("github_user must not be empty")]
    Empty,
    /// The login was longer than [`MAX_GITHUB_LOGIN_LEN`].
    #[error("github_user must be at most {MAX_GITHUB_LOGIN_LEN} characters")]
    TooLong,
    /// The login contained something other than letters, digits and `-`.
    #[error("github_user may contain only letters, digits and '-' (found {0:?})")]
    InvalidCharacter(char),
    /// The login had a leading, trailing or doubled hyphen.
    #[error("github_user must not start or end with '-' or contain '--'")]
    BadHyphen,
}

impl GithubUser {
    /// Parses a GitHub login exactly as given.
    pub fn parse(raw: &str) -> Result<Self, GithubUserError> {
        if raw.is_empty() {
            return Err(GithubUserError::Empty);
        }
        if let Some(bad) = raw
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || *c == '-'))
        {
            return Err(GithubUserError::InvalidCharacter(bad));
        }
        if raw.len() > MAX_GITHUB_LOGIN_LEN {
            return Err(GithubUserError::TooLong);
        }
        if raw.starts_with('-') || raw.ends_with('-') || raw.contains("--") {
            return Err(GithubUserError::BadHyphen);
        }
        Ok(Self(raw.to_owned()))
    }

    /// The login as a string slice.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl GithubUser {
    /// [`GithubUser::parse`]'s rule as an (ECMA 262) regular expression, for the OpenAPI document
    /// (the length is its `maxLength`).
    pub const PATTERN: &str = "^[A-Za-z0-9]+(?:-[A-Za-z0-9]+)*$";
}

#[cfg(feature = "openapi")]
impl utoipa::PartialSchema for GithubUser {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        crate::pattern::string_schema(
            Self::PATTERN.to_owned(),
            (1, MAX_GITHUB_LOGIN_LEN),
            "A GitHub login: letters, digits and single inner hyphens, at most 39 characters.",
            "octocat",
        )
    }
}

#[cfg(feature = "openapi")]
impl utoipa::ToSchema for GithubUser {}

impl fmt::Display for GithubUser {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl<'de> serde::Deserialize<'de> for GithubUser {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(d)?;
        Self::parse(&raw).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The pattern and `maxLength` the OpenAPI document publishes accept exactly what the parser
    /// accepts.
    #[test]
    fn the_github_login_pattern_agrees_with_the_parser() {
        let long = ["g".repeat(38), "g".repeat(39), "g".repeat(40)];
        let mut samples = vec!["", "octocat", "a-b-c", "a--b", "-a", "a-", "a_b", "é"];
        samples.extend(long.iter().map(String::as_str));
        crate::pattern::assert_agrees(
            GithubUser::PATTERN,
            MAX_GITHUB_LOGIN_LEN,
            |s| GithubUser::parse(s).is_ok(),
            &samples,
            &['a', 'Z', '0', '-', '_', ' ', '.'],
            4,
        );
    }

    #[test]
    fn valid_logins_parse_unchanged() {
        let max = "a".repeat(39);
        for ok in ["octocat", "Octo-Cat", "a", "a1-b2-c3", "42", max.as_str()] {
            assert_eq!(GithubUser::parse(ok).map(|u| u.0), Ok(ok.to_owned()));
        }
    }

    #[test]
    fn invalid_logins_are_refused() {
        assert_eq!(GithubUser::parse(""), Err(GithubUserError::Empty));
        assert_eq!(
            GithubUser::parse(&"a".repeat(40)),
            Err(GithubUserError::TooLong)
        );
        assert_eq!(GithubUser::parse("-octo"), Err(GithubUserError::BadHyphen));
        assert_eq!(GithubUser::parse("octo-"), Err(GithubUserError::BadHyphen));
        assert_eq!(GithubUser::parse("oc--to"), Err(GithubUserError::BadHyphen));
        assert_eq!(
            GithubUser::parse("oc_to"),
            Err(GithubUserError::InvalidCharacter('_'))
        );
        assert_eq!(
            GithubUser::parse("oc.to"),
            Err(GithubUserError::InvalidCharacter('.'))
        );
        assert_eq!(
            GithubUser::parse("../x"),
            Err(GithubUserError::InvalidCharacter('.'))
        );
    }
}
