//! Envelope encryption of what a user hands a dev box in confidence: its environment values and
//! its start command (ADR 12).
//!
//! Each reservation gets a fresh random 256-bit data key. The secrets (as JSON) are encrypted
//! with it by AES-256-GCM, and the data key is encrypted ("wrapped") by a key-encryption key from
//! [`SECRETS_ENCRYPTION_KEYS`], whose id is stored beside the ciphertext. Both encryptions bind
//! the reservation id as associated data, so a row copied onto another reservation does not
//! decrypt. The database only ever holds ciphertext; the key-encryption keys live in a
//! Kubernetes Secret that only the API (which seals with the current key) and the processor
//! (which opens with any configured key) read.
//!
//! Stored layout of both `data_key` and `sealed`: a 12-byte random nonce, then the AES-GCM
//! ciphertext with its 16-byte tag. A data key encrypts exactly one message, and a
//! key-encryption key one data key per reservation, so random nonces stay far below the
//! 2^32-messages bound per key.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use ring::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use ring::rand::{SecureRandom, SystemRandom};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::ConfigError;

/// The setting holding the key-encryption keys: `id:base64` entries (32 random bytes each),
/// separated by commas or white space. The first is the current key (new reservations are
/// sealed with it); the others only open what they sealed before a rotation.
pub const SECRETS_ENCRYPTION_KEYS: &str = "SECRETS_ENCRYPTION_KEYS";

/// Bytes of a key (AES-256).
pub const KEY_LEN: usize = 32;
/// Longest key id.
pub const MAX_KEY_ID_LEN: usize = 32;

/// What the data key's encryption is bound to, with the key id and the reservation id.
const DATA_KEY_CONTEXT: &[u8] = b"gpudev/reservation-data-key/v1\0";
/// What the secrets' encryption is bound to, with the reservation id.
const SECRETS_CONTEXT: &[u8] = b"gpudev/reservation-secrets/v1\0";

/// A reservation's secrets in the clear: what the API seals and the processor puts into the dev
/// box's Kubernetes Secret. `Debug` shows names only.
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReservationSecrets {
    /// Environment variables for the dev box.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// The command the dev box runs after its set-up.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<String>,
}

impl ReservationSecrets {
    /// Nothing to keep: no variables and no command.
    pub fn is_empty(&self) -> bool {
        self.env.is_empty() && self.command.is_none()
    }
}

impl fmt::Debug for ReservationSecrets {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReservationSecrets")
            .field("env", &self.env.keys().collect::<Vec<_>>())
            .field("command", &self.command.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

/// A reservation's secrets as stored: the id of the key-encryption key, the wrapped data key and
/// the ciphertext. Meaningless without the key, and bound to one reservation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SealedSecrets {
    /// Which key-encryption key wrapped the data key.
    pub key_id: String,
    /// Nonce + wrapped data key + tag.
    pub data_key: Vec<u8>,
    /// Nonce + encrypted secrets + tag.
    pub sealed: Vec<u8>,
}

/// Why secrets could not be sealed or opened. Never carries key material or plaintext.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SealError {
    /// The row names a key this program was not given.
    #[error(
        "sealed with key {key_id:?}, which is not among {SECRETS_ENCRYPTION_KEYS} (configured: \
         {configured})"
    )]
    UnknownKey {
        /// The key the row names.
        key_id: String,
        /// The ids this program has, comma-separated.
        configured: String,
    },
    /// This program has no key at all.
    #[error("no key is configured ({SECRETS_ENCRYPTION_KEYS} is unset)")]
    NoKeys,
    /// Authentication failed: the row was altered, or belongs to another reservation.
    #[error(
        "the stored secrets of reservation {reservation_id} do not decrypt with key {key_id:?}: \
         they were altered or copied from another reservation"
    )]
    Tampered {
        /// The reservation whose row was read.
        reservation_id: Uuid,
        /// The key the row names.
        key_id: String,
    },
    /// The operating system's random source failed.
    #[error("no random bytes for a data key")]
    Random,
    /// The decrypted payload is not what this program writes.
    #[error("the decrypted secrets are not readable: {0}")]
    Payload(String),
}

/// A key-encryption key's id: 1 to [`MAX_KEY_ID_LEN`] characters of letters, digits, `.`, `_`
/// and `-` (a date such as `2026-12` is a good id).
fn valid_key_id(id: &str) -> bool {
    (1..=MAX_KEY_ID_LEN).contains(&id.len())
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
}

/// One key-encryption key.
#[derive(Clone)]
struct Kek {
    id: String,
    bytes: Arc<[u8; KEY_LEN]>,
}

/// The key-encryption keys of [`SECRETS_ENCRYPTION_KEYS`], the current one first. `Debug`
/// shows their ids only.
#[derive(Clone)]
pub struct SealingKeys {
    keys: Vec<Kek>,
}

impl fmt::Debug for SealingKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SealingKeys")
            .field("ids", &self.ids())
            .finish_non_exhaustive()
    }
}

impl SealingKeys {
    /// Reads [`SECRETS_ENCRYPTION_KEYS`] through `get`; `None` when it is unset or blank.
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Option<Self>, ConfigError> {
        match get(SECRETS_ENCRYPTION_KEYS).filter(|v| !v.trim().is_empty()) {
            None => Ok(None),
            Some(raw) => Self::parse(&raw)
                .map(Some)
                .map_err(|problem| ConfigError::new(SECRETS_ENCRYPTION_KEYS, problem)),
        }
    }

    /// Parses `id:base64` entries separated by commas or white space, the current key first.
    /// The error is one line and never repeats key material.
    pub fn parse(raw: &str) -> Result<Self, String> {
        let mut keys: Vec<Kek> = Vec::new();
        let entries = raw
            .split(|c: char| c == ',' || c.is_whitespace())
            .filter(|e| !e.is_empty());
        for (n, entry) in entries.enumerate() {
            let n = n + 1;
            let Some((id, material)) = entry.split_once(':') else {
                return Err(format!(
                    "entry {n} is not \"id:base64-key\" (for example \"2026-12:$(openssl rand \
                     -base64 32)\")"
                ));
            };
            if !valid_key_id(id) {
                return Err(format!(
                    "entry {n}: the key id {id:?} must be 1 to {MAX_KEY_ID_LEN} letters, digits, \
                     '.', '_' or '-'"
                ));
            }
            let bytes: [u8; KEY_LEN] = BASE64
                .decode(material)
                .ok()
                .and_then(|b| b.try_into().ok())
                .ok_or_else(|| {
                    format!(
                        "entry {n}: the key of {id:?} is not base64 of {KEY_LEN} bytes (make one \
                         with: openssl rand -base64 32)"
                    )
                })?;
            if keys.iter().any(|k| k.id == id) {
                return Err(format!("entry {n}: the key id {id:?} appears twice"));
            }
            keys.push(Kek {
                id: id.to_owned(),
                bytes: Arc::new(bytes),
            });
        }
        if keys.is_empty() {
            return Err("no key is given".into());
        }
        Ok(Self { keys })
    }

    /// A new random key with id `id`, alone; [`Self::to_setting`] writes it out. For tests and
    /// for making a key without openssl.
    pub fn generate(id: &str) -> Result<Self, String> {
        let mut bytes = [0_u8; KEY_LEN];
        SystemRandom::new()
            .fill(&mut bytes)
            .map_err(|_| SealError::Random.to_string())?;
        Self::parse(&format!("{id}:{}", BASE64.encode(bytes)))
    }

    /// These keys followed by `older` ones (the current key stays this one's): what a rotation
    /// configures. Ids already present are not repeated.
    pub fn then(&self, older: &SealingKeys) -> Self {
        let mut keys = self.keys.clone();
        for k in &older.keys {
            if !keys.iter().any(|have| have.id == k.id) {
                keys.push(k.clone());
            }
        }
        Self { keys }
    }

    /// The keys in the setting's format, current first. It holds the key material: for writing
    /// into a Secret, never for a log.
    pub fn to_setting(&self) -> String {
        self.keys
            .iter()
            .map(|k| format!("{}:{}", k.id, BASE64.encode(*k.bytes)))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// The key ids, current first.
    pub fn ids(&self) -> Vec<&str> {
        self.keys.iter().map(|k| k.id.as_str()).collect()
    }

    /// The id of the key new reservations are sealed with.
    pub fn current_id(&self) -> &str {
        // `parse` refuses an empty list.
        self.keys.first().map_or("", |k| k.id.as_str())
    }

    /// Encrypts `secrets` for reservation `reservation_id` with a fresh data key wrapped by the
    /// current key.
    pub fn seal(
        &self,
        reservation_id: Uuid,
        secrets: &ReservationSecrets,
    ) -> Result<SealedSecrets, SealError> {
        let kek = self.keys.first().ok_or(SealError::NoKeys)?;
        let rng = SystemRandom::new();
        let mut data_key = [0_u8; KEY_LEN];
        rng.fill(&mut data_key).map_err(|_| SealError::Random)?;
        let payload = serde_json::to_vec(secrets).map_err(|e| SealError::Payload(e.to_string()))?;
        let sealed = encrypt(&rng, &data_key, &secrets_aad(reservation_id), payload)?;
        let wrapped = encrypt(
            &rng,
            &kek.bytes,
            &data_key_aad(&kek.id, reservation_id),
            data_key.to_vec(),
        )?;
        Ok(SealedSecrets {
            key_id: kek.id.clone(),
            data_key: wrapped,
            sealed,
        })
    }

    /// Decrypts what [`Self::seal`] stored for reservation `reservation_id`, with whichever
    /// configured key the row names.
    pub fn open(
        &self,
        reservation_id: Uuid,
        stored: &SealedSecrets,
    ) -> Result<ReservationSecrets, SealError> {
        let kek = self
            .keys
            .iter()
            .find(|k| k.id == stored.key_id)
            .ok_or_else(|| SealError::UnknownKey {
                key_id: stored.key_id.clone(),
                configured: self.ids().join(", "),
            })?;
        let tampered = || SealError::Tampered {
            reservation_id,
            key_id: stored.key_id.clone(),
        };
        let data_key: [u8; KEY_LEN] = decrypt(
            &kek.bytes,
            &data_key_aad(&kek.id, reservation_id),
            &stored.data_key,
        )
        .ok_or_else(tampered)?
        .try_into()
        .map_err(|_| tampered())?;
        let payload = decrypt(&data_key, &secrets_aad(reservation_id), &stored.sealed)
            .ok_or_else(tampered)?;
        serde_json::from_slice(&payload).map_err(|e| SealError::Payload(e.to_string()))
    }
}

fn secrets_aad(reservation_id: Uuid) -> Vec<u8> {
    [SECRETS_CONTEXT, reservation_id.as_bytes()].concat()
}

fn data_key_aad(key_id: &str, reservation_id: Uuid) -> Vec<u8> {
    [
        DATA_KEY_CONTEXT,
        reservation_id.as_bytes(),
        key_id.as_bytes(),
    ]
    .concat()
}

/// Nonce + AES-256-GCM(`key`, `aad`, `plain`) + tag.
fn encrypt(
    rng: &SystemRandom,
    key: &[u8; KEY_LEN],
    aad: &[u8],
    mut plain: Vec<u8>,
) -> Result<Vec<u8>, SealError> {
    let mut nonce = [0_u8; NONCE_LEN];
    rng.fill(&mut nonce).map_err(|_| SealError::Random)?;
    let key = aead_key(key)?;
    key.seal_in_place_append_tag(
        Nonce::assume_unique_for_key(nonce),
        Aad::from(aad),
        &mut plain,
    )
    .map_err(|_| SealError::Payload("the secrets are too large to encrypt".into()))?;
    Ok([nonce.as_slice(), &plain].concat())
}

/// The plaintext of what [`encrypt`] made; `None` when it does not authenticate.
fn decrypt(key: &[u8; KEY_LEN], aad: &[u8], stored: &[u8]) -> Option<Vec<u8>> {
    let (nonce, ciphertext) = stored.split_at_checked(NONCE_LEN)?;
    let nonce = Nonce::try_assume_unique_for_key(nonce).ok()?;
    let key = aead_key(key).ok()?;
    let mut in_out = ciphertext.to_vec();
    let plain = key.open_in_place(nonce, Aad::from(aad), &mut in_out).ok()?;
    Some(plain.to_vec())
}

fn aead_key(bytes: &[u8; KEY_LEN]) -> Result<LessSafeKey, SealError> {
    UnboundKey::new(&AES_256_GCM, bytes)
        .map(LessSafeKey::new)
        .map_err(|_| SealError::Payload("the AES-256-GCM key was refused".into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secrets() -> ReservationSecrets {
        ReservationSecrets {
            env: BTreeMap::from([("HF_TOKEN".to_owned(), "hf_s3cr3t".to_owned())]),
            command: Some("python train.py".to_owned()),
        }
    }

    #[test]
    fn what_is_sealed_opens_for_its_reservation_only() {
        let keys = SealingKeys::generate("k1").unwrap();
        let id = Uuid::new_v4();
        let sealed = keys.seal(id, &secrets()).unwrap();
        assert_eq!(sealed.key_id, "k1");
        assert_eq!(keys.open(id, &sealed).unwrap(), secrets());
        assert!(matches!(
            keys.open(Uuid::new_v4(), &sealed),
            Err(SealError::Tampered { .. })
        ));
        let mut flipped = sealed.clone();
        flipped.sealed[NONCE_LEN] ^= 1;
        assert!(matches!(
            keys.open(id, &flipped),
            Err(SealError::Tampered { .. })
        ));
        let mut renamed = sealed;
        renamed.key_id = "k2".into();
        let err = keys.open(id, &renamed).unwrap_err();
        assert_eq!(
            err.to_string(),
            "sealed with key \"k2\", which is not among SECRETS_ENCRYPTION_KEYS (configured: k1)"
        );
    }

    #[test]
    fn the_setting_is_parsed_with_one_line_errors_that_never_show_a_key() {
        let k1 = SealingKeys::generate("2026-06").unwrap();
        let k2 = SealingKeys::generate("2026-12").unwrap();
        let both =
            SealingKeys::parse(&format!("{}, {}", k2.to_setting(), k1.to_setting())).unwrap();
        assert_eq!(both.ids(), ["2026-12", "2026-06"]);
        assert_eq!(both.current_id(), "2026-12");
        assert_eq!(k2.then(&k1).to_setting(), both.to_setting());
        assert!(!format!("{both:?}").contains(&k1.to_setting()[8..]));

        let short = format!("k:{}", BASE64.encode([7_u8; 16]));
        let err = SealingKeys::parse(&short).unwrap_err();
        assert_eq!(
            err,
            "entry 1: the key of \"k\" is not base64 of 32 bytes (make one with: openssl rand \
             -base64 32)"
        );
        assert!(!err.contains(&short[2..]));
        assert!(
            SealingKeys::parse("nokey")
                .unwrap_err()
                .starts_with("entry 1 is not")
        );
        assert!(SealingKeys::parse(&format!("bad id:{}", BASE64.encode([0_u8; 32]))).is_err());
        let twice = format!("{},{}", k1.to_setting(), k1.to_setting());
        assert!(
            SealingKeys::parse(&twice)
                .unwrap_err()
                .contains("appears twice")
        );
        let err = SealingKeys::from_lookup(|_| Some("x:y".into())).unwrap_err();
        assert_eq!(err.variable, SECRETS_ENCRYPTION_KEYS);
        assert!(!err.to_string().contains('\n'));
        assert!(
            SealingKeys::from_lookup(|_| Some("  ".into()))
                .unwrap()
                .is_none()
        );
    }

    #[test]
    fn debug_never_shows_values() {
        let shown = format!("{:?}", secrets());
        assert!(shown.contains("HF_TOKEN"));
        assert!(!shown.contains("hf_s3cr3t"));
        assert!(!shown.contains("train.py"));
    }
}
