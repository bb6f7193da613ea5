//! API keys: generated from a CSPRNG, shown to the user once, stored only as a SHA-256 hash.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::TryRngCore as _;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq as _;

/// Random bytes in a generated key (512 bits).
pub const KEY_BYTES: usize = 64;
/// Length of a generated key: 64 bytes in URL-safe base64 without padding.
pub const KEY_LEN: usize = 86;
/// Characters of the key kept in clear as its public prefix (for listing and support).
pub const PREFIX_LEN: usize = 8;

/// Why an API key could not be generated or accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApiKeyError {
    /// The operating system's random source failed.
    #[error("the system random number generator failed")]
    Rng,
    /// The presented key is not as long as every key we issue.
    #[error("API key must be {KEY_LEN} characters")]
    BadLength,
    /// The presented key contains characters that cannot appear in a key.
    #[error("API key contains characters outside the URL-safe base64 alphabet")]
    BadCharacters,
    /// The presented key is not the encoding of 64 bytes (its last character carries bits no
    /// issued key has).
    #[error("API key is not an encoding of {KEY_BYTES} bytes")]
    NotEncoded,
}

/// A freshly generated key. Its secret is printed once and then only its hash is kept.
///
/// `Debug` shows the prefix only.
#[derive(Clone, PartialEq, Eq)]
pub struct ApiKey(String);

impl ApiKey {
    /// Generates a new key from the operating system's CSPRNG.
    pub fn generate() -> Result<Self, ApiKeyError> {
        let mut bytes = [0u8; KEY_BYTES];
        rand::rngs::OsRng
            .try_fill_bytes(&mut bytes)
            .map_err(|_| ApiKeyError::Rng)?;
        Ok(Self(URL_SAFE_NO_PAD.encode(bytes)))
    }

    /// The secret itself, for the one response that hands it to its owner.
    pub fn expose_secret(&self) -> &str {
        &self.0
    }

    /// The first eight characters, safe to store and show.
    pub fn prefix(&self) -> &str {
        &self.0[..PREFIX_LEN]
    }

    /// The SHA-256 hash that is stored instead of the key.
    pub fn hash(&self) -> KeyHash {
        KeyHash::of(&self.0)
    }
}

impl fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ApiKey({}…)", self.prefix())
    }
}

/// A key as presented by a client in `Authorization: Bearer …`, checked for shape only.
#[derive(Clone, PartialEq, Eq)]
pub struct PresentedKey(String);

impl PresentedKey {
    /// Accepts exactly what [`ApiKey::generate`] makes: 86 characters of URL-safe base64 that
    /// decode to 64 bytes. Anything else cannot be a key we issued, so it is refused here,
    /// without a database lookup.
    pub fn parse(raw: &str) -> Result<Self, ApiKeyError> {
        if raw.len() != KEY_LEN {
            return Err(ApiKeyError::BadLength);
        }
        if !raw
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return Err(ApiKeyError::BadCharacters);
        }
        // 86 characters carry 516 bits; the last character's two spare bits are zero in every
        // encoding of 64 bytes, and the decoder refuses them otherwise.
        match URL_SAFE_NO_PAD.decode(raw) {
            Ok(bytes) if bytes.len() == KEY_BYTES => Ok(Self(raw.to_owned())),
            _ => Err(ApiKeyError::NotEncoded),
        }
    }

    /// Reads the key out of an `Authorization` header value: `Bearer <key>`, the scheme in any
    /// case, then one space; whitespace around the key is ignored.
    pub fn from_authorization(header: &str) -> Result<Self, AuthorizationError> {
        let (scheme, rest) = header
            .split_once(' ')
            .ok_or(AuthorizationError::NotBearer)?;
        if !scheme.eq_ignore_ascii_case("bearer") {
            return Err(AuthorizationError::NotBearer);
        }
        Self::parse(rest.trim()).map_err(AuthorizationError::Key)
    }

    /// The hash to look the key up by.
    pub fn hash(&self) -> KeyHash {
        KeyHash::of(&self.0)
    }
}

/// Why an `Authorization` header does not carry an API key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthorizationError {
    /// The header is not `Bearer <something>`.
    #[error("the Authorization header must be 'Bearer <api key>'")]
    NotBearer,
    /// The bearer token is not shaped like one of our keys.
    #[error(transparent)]
    Key(ApiKeyError),
}

impl fmt::Debug for PresentedKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PresentedKey(<redacted>)")
    }
}

/// Lower-case hex SHA-256 of a key: what the database stores and indexes.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct KeyHash(String);

impl KeyHash {
    fn of(secret: &str) -> Self {
        Self(hex::encode(Sha256::digest(secret.as_bytes())))
    }

    /// Wraps a hash read back from storage.
    pub fn from_stored(hex: String) -> Self {
        Self(hex)
    }

    /// The hex digest.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Compares two hashes in constant time, so a comparison never tells how many leading
    /// characters matched.
    pub fn ct_eq(&self, other: &KeyHash) -> bool {
        self.0.as_bytes().ct_eq(other.0.as_bytes()).into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_keys_are_86_url_safe_characters_and_unique() {
        let a = ApiKey::generate().unwrap();
        let b = ApiKey::generate().unwrap();
        assert_eq!(a.expose_secret().len(), KEY_LEN);
        assert!(PresentedKey::parse(a.expose_secret()).is_ok());
        assert!(!a.expose_secret().contains('='));
        assert_ne!(a, b);
    }

    #[test]
    fn prefix_is_the_first_eight_characters() {
        let k = ApiKey::generate().unwrap();
        assert_eq!(k.prefix(), &k.expose_secret()[..8]);
    }

    #[test]
    fn hash_is_sha256_hex_and_matches_the_presented_form() {
        let k = ApiKey::generate().unwrap();
        let h = k.hash();
        assert_eq!(h.as_str().len(), 64);
        assert!(
            h.as_str()
                .bytes()
                .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
        );
        let presented = PresentedKey::parse(k.expose_secret()).unwrap();
        assert!(presented.hash().ct_eq(&h));
        // Known vector: sha256("abc").
        assert_eq!(
            KeyHash::of("abc").as_str(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn presented_keys_of_another_length_than_issued_ones_are_refused() {
        let k = ApiKey::generate().unwrap();
        let secret = k.expose_secret();
        assert!(PresentedKey::parse(secret).is_ok());
        for wrong in [
            "",
            &secret[..KEY_LEN - 1],
            &format!("{secret}A"),
            &"a".repeat(16),
            &"a".repeat(256),
        ] {
            assert_eq!(
                PresentedKey::parse(wrong),
                Err(ApiKeyError::BadLength),
                "{wrong:?}"
            );
        }
    }

    #[test]
    fn a_last_character_no_encoding_of_64_bytes_ends_with_is_refused() {
        // 'A' ends an encoding of 64 bytes (its spare bits are zero); 'B' sets a spare bit.
        let ok = format!("{}A", "A".repeat(KEY_LEN - 1));
        let spare = format!("{}B", "A".repeat(KEY_LEN - 1));
        assert!(PresentedKey::parse(&ok).is_ok());
        assert_eq!(PresentedKey::parse(&spare), Err(ApiKeyError::NotEncoded));
    }

    #[test]
    fn presented_keys_with_foreign_characters_are_refused() {
        let key = ApiKey::generate().unwrap();
        for (at, c) in [(3, ' '), (10, '+'), (40, '/'), (85, '=')] {
            let mut bad = key.expose_secret().to_owned();
            bad.replace_range(at..=at, &c.to_string());
            assert_eq!(
                PresentedKey::parse(&bad),
                Err(ApiKeyError::BadCharacters),
                "{c:?}"
            );
        }
    }

    #[test]
    fn debug_output_never_contains_the_secret() {
        let k = ApiKey::generate().unwrap();
        let shown = format!("{k:?}");
        assert!(!shown.contains(k.expose_secret()));
        let p = PresentedKey::parse(k.expose_secret()).unwrap();
        assert!(!format!("{p:?}").contains(k.expose_secret()));
    }

    #[test]
    fn the_authorization_header_carries_the_key_after_a_bearer_scheme_in_any_case() {
        let k = ApiKey::generate().unwrap();
        for header in [
            format!("Bearer {}", k.expose_secret()),
            format!("bearer {}", k.expose_secret()),
            format!("BEARER   {} ", k.expose_secret()),
        ] {
            let presented = PresentedKey::from_authorization(&header).unwrap();
            assert!(presented.hash().ct_eq(&k.hash()), "{header}");
        }
        for header in [
            String::new(),
            "Bearer".into(),
            k.expose_secret().to_owned(),
            format!("Basic {}", k.expose_secret()),
            format!("Bearer\t{}", k.expose_secret()),
        ] {
            assert_eq!(
                PresentedKey::from_authorization(&header),
                Err(AuthorizationError::NotBearer),
                "{header:?}"
            );
        }
        assert_eq!(
            PresentedKey::from_authorization("Bearer short"),
            Err(AuthorizationError::Key(ApiKeyError::BadLength))
        );
    }

    #[test]
    fn different_hashes_compare_unequal() {
        assert!(!KeyHash::of("a").ct_eq(&KeyHash::of("b")));
    }
}
