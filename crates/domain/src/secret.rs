//! Bearer secrets we issue: the web console's one-time sign-in links and session cookies, and
//! the tokens dev box agents report with. Each is 256 random bits in URL-safe base64, handed to
//! its holder once and stored only as its SHA-256 hash; a presented value that cannot be one of
//! ours is refused before any lookup.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::TryRngCore as _;
use sha2::{Digest, Sha256};

/// Random bytes in a secret.
const SECRET_BYTES: usize = 32;
/// Length of an encoded secret.
pub const SECRET_LEN: usize = 43;

/// A bearer secret: a one-time sign-in token, a session id or an agent token.
///
/// `Debug` never shows it.
#[derive(Clone, PartialEq, Eq)]
pub struct BearerSecret(String);

/// The console's one-time sign-in tokens and session ids.
pub type ConsoleSecret = BearerSecret;
/// The token a dev box's agent reports with (ADR 18).
pub type AgentToken = BearerSecret;

/// Why a bearer secret could not be made or read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SecretError {
    /// The operating system's random source failed.
    #[error("the system random number generator failed")]
    Rng,
    /// The presented value cannot be a secret we issued.
    #[error("not a token we issued")]
    Malformed,
}

impl BearerSecret {
    /// A new secret from the operating system's CSPRNG.
    pub fn generate() -> Result<Self, SecretError> {
        let mut bytes = [0u8; SECRET_BYTES];
        rand::rngs::OsRng
            .try_fill_bytes(&mut bytes)
            .map_err(|_| SecretError::Rng)?;
        Ok(Self(URL_SAFE_NO_PAD.encode(bytes)))
    }

    /// Reads a presented secret: exactly the encoding of 32 bytes.
    pub fn parse(raw: &str) -> Result<Self, SecretError> {
        if raw.len() != SECRET_LEN {
            return Err(SecretError::Malformed);
        }
        match URL_SAFE_NO_PAD.decode(raw) {
            Ok(bytes) if bytes.len() == SECRET_BYTES => Ok(Self(raw.to_owned())),
            _ => Err(SecretError::Malformed),
        }
    }

    /// Reads `Authorization: Bearer <secret>` (the scheme in any case, as RFC 9110 has it).
    pub fn from_authorization(header: &str) -> Result<Self, SecretError> {
        let (scheme, rest) = header.split_once(' ').ok_or(SecretError::Malformed)?;
        if !scheme.eq_ignore_ascii_case("bearer") {
            return Err(SecretError::Malformed);
        }
        Self::parse(rest.trim())
    }

    /// The secret itself, for the one answer (a link, a cookie) that hands it over.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// What is stored: the SHA-256 of the secret, in hex.
    pub fn hash(&self) -> String {
        hex::encode(Sha256::digest(self.0.as_bytes()))
    }
}

impl fmt::Debug for BearerSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("BearerSecret(…)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_generated_secret_reads_back_and_hashes_the_same() {
        let s = ConsoleSecret::generate().unwrap();
        assert_eq!(s.expose().len(), SECRET_LEN);
        let read = ConsoleSecret::parse(s.expose()).unwrap();
        assert_eq!(read.hash(), s.hash());
        assert_eq!(s.hash().len(), 64);
        assert_ne!(s, ConsoleSecret::generate().unwrap());
        assert!(!format!("{s:?}").contains(s.expose()));
    }

    #[test]
    fn a_bearer_header_carries_one_in_any_case_of_the_scheme() {
        let s = BearerSecret::generate().unwrap();
        for header in [
            format!("Bearer {}", s.expose()),
            format!("bearer {}", s.expose()),
            format!("BEARER  {} ", s.expose()),
        ] {
            assert_eq!(
                BearerSecret::from_authorization(&header).unwrap().hash(),
                s.hash()
            );
        }
        for bad in [
            s.expose().to_owned(),
            format!("Basic {}", s.expose()),
            format!("Bearer{}", s.expose()),
            "Bearer ".to_owned(),
        ] {
            assert_eq!(
                BearerSecret::from_authorization(&bad),
                Err(SecretError::Malformed),
                "{bad}"
            );
        }
    }

    #[test]
    fn values_that_cannot_be_ours_are_refused() {
        let s = ConsoleSecret::generate().unwrap();
        for bad in [
            String::new(),
            "short".into(),
            format!("{}x", s.expose()),
            format!("{}+", &s.expose()[..42]),
            "../../../../etc/passwd/aaaaaaaaaaaaaaaaaaaaaaaa".into(),
        ] {
            assert_eq!(
                ConsoleSecret::parse(&bad),
                Err(SecretError::Malformed),
                "{bad}"
            );
        }
    }
}
