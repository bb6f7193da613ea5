//! The optional display name a user gives a reservation.

use std::fmt;

/// Longest display name, in characters.
pub const MAX_DISPLAY_NAME_CHARS: usize = 63;

/// A reservation's display name: 1 to 63 printable characters, no leading or trailing spaces.
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(transparent)]
pub struct DisplayName(String);

/// Why a string is not a valid display name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DisplayNameError {
    /// The name was empty or only spaces.
    #[error("name must not be empty")]
    Empty,
    /// The name was longer than [`MAX_DISPLAY_NAME_CHARS`].
    #[error("name must be at most {MAX_DISPLAY_NAME_CHARS} characters")]
    TooLong,
    /// The name began or ended with a space.
    #[error("name must not begin or end with a space")]
    EdgeSpace,
    /// The name contained a control, formatting or non-space whitespace character.
    #[error("name must contain only printable characters (found U+{0:04X})")]
    Unprintable(u32),
}

/// Characters that print nothing or reorder text: controls, whitespace other than the plain
/// space, and the invisible formatting characters used to disguise text (zero-width and
/// bidirectional controls, the BOM).
fn printable(c: char) -> bool {
    if c == ' ' {
        return true;
    }
    let invisible = matches!(c,
        '\u{00AD}'
        | '\u{061C}'
        | '\u{180E}'
        | '\u{200B}'..='\u{200F}'
        | '\u{202A}'..='\u{202E}'
        | '\u{2060}'..='\u{2064}'
        | '\u{2066}'..='\u{206F}'
        | '\u{FEFF}'
        | '\u{FFF9}'..='\u{FFFB}'
    );
    !(c.is_control() || c.is_whitespace() || invisible)
}

impl DisplayName {
    /// Parses a display name exactly as given.
    pub fn parse(raw: &str) -> Result<Self, DisplayNameError> {
        if raw.trim_matches(' ').is_empty() {
            return Err(DisplayNameError::Empty);
        }
        if let Some(bad) = raw.chars().find(|c| !printable(*c)) {
            return Err(DisplayNameError::Unprintable(u32::from(bad)));
        }
        if raw.chars().count() > MAX_DISPLAY_NAME_CHARS {
            return Err(DisplayNameError::TooLong);
        }
        if raw.starts_with(' ') || raw.ends_with(' ') {
            return Err(DisplayNameError::EdgeSpace);
        }
        Ok(Self(raw.to_owned()))
    }

    /// The name as a string slice.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for DisplayName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl<'de> serde::Deserialize<'de> for DisplayName {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(d)?;
        Self::parse(&raw).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ordinary_names_parse_unchanged() {
        let max = "é".repeat(63);
        for ok in ["training run #3", "x", "Ünïcödé 名前", max.as_str()] {
            assert_eq!(DisplayName::parse(ok).map(|n| n.0), Ok(ok.to_owned()));
        }
    }

    #[test]
    fn empty_blank_and_overlong_names_are_refused() {
        assert_eq!(DisplayName::parse(""), Err(DisplayNameError::Empty));
        assert_eq!(DisplayName::parse("   "), Err(DisplayNameError::Empty));
        assert_eq!(
            DisplayName::parse(&"é".repeat(64)),
            Err(DisplayNameError::TooLong)
        );
        assert_eq!(DisplayName::parse(" x"), Err(DisplayNameError::EdgeSpace));
        assert_eq!(DisplayName::parse("x "), Err(DisplayNameError::EdgeSpace));
    }

    #[test]
    fn control_and_invisible_characters_are_refused() {
        assert_eq!(
            DisplayName::parse("a\nb"),
            Err(DisplayNameError::Unprintable(0x0A))
        );
        assert_eq!(
            DisplayName::parse("a\tb"),
            Err(DisplayNameError::Unprintable(0x09))
        );
        assert_eq!(
            DisplayName::parse("a\u{7f}"),
            Err(DisplayNameError::Unprintable(0x7F))
        );
        assert_eq!(
            DisplayName::parse("a\u{202E}b"),
            Err(DisplayNameError::Unprintable(0x202E))
        );
        assert_eq!(
            DisplayName::parse("a\u{200B}b"),
            Err(DisplayNameError::Unprintable(0x200B))
        );
        assert_eq!(
            DisplayName::parse("a\u{00A0}b"),
            Err(DisplayNameError::Unprintable(0xA0))
        );
        assert_eq!(
            DisplayName::parse("a\u{1b}b").unwrap_err().to_string(),
            "name must contain only printable characters (found U+001B)"
        );
    }
}
