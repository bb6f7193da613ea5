//! OpenSSH public keys that users register for their dev boxes' `authorized_keys`.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD};
use sha2::{Digest, Sha256};

/// Key types we accept (DSA and other legacy types are refused).
pub const ACCEPTED_TYPES: [&str; 7] = [
    "ssh-ed25519",
    "ssh-rsa",
    "ecdsa-sha2-nistp256",
    "ecdsa-sha2-nistp384",
    "ecdsa-sha2-nistp521",
    "sk-ssh-ed25519@openssh.com",
    "sk-ecdsa-sha2-nistp256@openssh.com",
];

/// Longest key line accepted (large RSA keys are about 1 KiB).
pub const MAX_KEY_LEN: usize = 8 * 1024;

/// Why a public key line was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SshKeyError {
    /// Empty line.
    #[error("SSH public key is empty")]
    Empty,
    /// Longer than [`MAX_KEY_LEN`].
    #[error("SSH public key is longer than {MAX_KEY_LEN} characters")]
    TooLong,
    /// Not `<type> <base64> [comment]`.
    #[error("SSH public key must look like '<type> <base64> [comment]' (an OpenSSH .pub line)")]
    Shape,
    /// A key type we do not accept.
    #[error("SSH key type {0:?} is not accepted (use ssh-ed25519, ecdsa or ssh-rsa)")]
    UnsupportedType(String),
    /// The key body is not base64 or does not match its declared type.
    #[error("SSH public key body is not a valid {0} key")]
    BadBody(String),
    /// An RSA key shorter than 2048 bits.
    #[error("RSA keys must be at least 2048 bits")]
    WeakRsa,
    /// Control characters (a second line could smuggle an authorized_keys option).
    #[error("SSH public key must be a single line without control characters")]
    ControlCharacters,
}

/// A validated OpenSSH public key: type, body and an optional comment, on one line.
#[derive(Clone, PartialEq, Eq)]
pub struct SshPublicKey {
    key_type: String,
    body: String,
    comment: Option<String>,
    fingerprint: String,
}

impl SshPublicKey {
    /// Parses one `authorized_keys`-style line without options.
    pub fn parse(raw: &str) -> Result<Self, SshKeyError> {
        let line = raw.trim();
        if line.is_empty() {
            return Err(SshKeyError::Empty);
        }
        if line.len() > MAX_KEY_LEN {
            return Err(SshKeyError::TooLong);
        }
        if line.chars().any(char::is_control) {
            return Err(SshKeyError::ControlCharacters);
        }
        let mut parts = line.splitn(3, ' ');
        let (Some(key_type), Some(body)) = (parts.next(), parts.next()) else {
            return Err(SshKeyError::Shape);
        };
        let comment = parts
            .next()
            .map(str::trim)
            .filter(|c| !c.is_empty())
            .map(str::to_owned);
        if !ACCEPTED_TYPES.contains(&key_type) {
            return Err(SshKeyError::UnsupportedType(key_type.to_owned()));
        }
        let blob = STANDARD
            .decode(body)
            .map_err(|_| SshKeyError::BadBody(key_type.to_owned()))?;
        // The blob starts with the key type as an SSH string (u32 length, bytes).
        let declared =
            read_string(&blob, 0).ok_or_else(|| SshKeyError::BadBody(key_type.to_owned()))?;
        if declared.0 != key_type.as_bytes() {
            return Err(SshKeyError::BadBody(key_type.to_owned()));
        }
        if key_type == "ssh-rsa" {
            // ssh-rsa blob: string type, mpint e, mpint n. The modulus size is the key size.
            let e = read_string(&blob, declared.1)
                .ok_or_else(|| SshKeyError::BadBody(key_type.to_owned()))?;
            let n =
                read_string(&blob, e.1).ok_or_else(|| SshKeyError::BadBody(key_type.to_owned()))?;
            let modulus = n.0.iter().skip_while(|b| **b == 0).count();
            if modulus * 8 < 2048 {
                return Err(SshKeyError::WeakRsa);
            }
        }
        let fingerprint = format!("SHA256:{}", STANDARD_NO_PAD.encode(Sha256::digest(&blob)));
        Ok(Self {
            key_type: key_type.to_owned(),
            body: body.to_owned(),
            comment,
            fingerprint,
        })
    }

    /// The key type (`ssh-ed25519`, …).
    pub fn key_type(&self) -> &str {
        &self.key_type
    }

    /// The comment, if any.
    pub fn comment(&self) -> Option<&str> {
        self.comment.as_deref()
    }

    /// OpenSSH's fingerprint format: `SHA256:<base64 without padding>`.
    pub fn fingerprint(&self) -> &str {
        &self.fingerprint
    }

    /// The line for `authorized_keys`: type, body and comment.
    pub fn to_line(&self) -> String {
        match &self.comment {
            Some(c) => format!("{} {} {c}", self.key_type, self.body),
            None => format!("{} {}", self.key_type, self.body),
        }
    }
}

/// Reads an SSH wire-format string at `at`; returns it and the offset after it.
fn read_string(blob: &[u8], at: usize) -> Option<(&[u8], usize)> {
    let len_bytes: [u8; 4] = blob.get(at..at + 4)?.try_into().ok()?;
    let len = u32::from_be_bytes(len_bytes) as usize;
    let start = at + 4;
    let s = blob.get(start..start.checked_add(len)?)?;
    Some((s, start + len))
}

impl fmt::Debug for SshPublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SshPublicKey({} {})", self.key_type, self.fingerprint)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn blob(parts: &[&[u8]]) -> String {
        let mut out = Vec::new();
        for p in parts {
            out.extend_from_slice(&(p.len() as u32).to_be_bytes());
            out.extend_from_slice(p);
        }
        STANDARD.encode(out)
    }

    fn ed25519() -> String {
        format!(
            "ssh-ed25519 {} alice@laptop",
            blob(&[b"ssh-ed25519", &[7u8; 32]])
        )
    }

    #[test]
    fn an_ed25519_key_parses_with_its_comment_and_fingerprint() {
        let k = SshPublicKey::parse(&ed25519()).unwrap();
        assert_eq!(k.key_type(), "ssh-ed25519");
        assert_eq!(k.comment(), Some("alice@laptop"));
        assert!(k.fingerprint().starts_with("SHA256:"));
        assert_eq!(k.fingerprint().len(), 7 + 43);
        assert_eq!(k.to_line(), ed25519());
    }

    #[test]
    fn fingerprints_match_what_ssh_keygen_prints() {
        // Keys generated with ssh-keygen; the expected values are what `ssh-keygen -lf` printed.
        let ed = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIETUbNlJBfWzOjE2V2VI7uME1ZcLQOGKhOdceh1N5BOe test@gpudev";
        let rsa = "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABgQCycjuIafXfKHrUAzZGH9tcU7y5ocMWGiJUqbxAp4w3emwlh91T4rCtuC6F4a7y0MRa3lmxTmxUqpiXECJbECXV83iGdlJNnzqHoD16BK2iAs8WvPSqbLz1Qs0epGOKc1y3eskbLd44Y8fIvpz/NNFNFQiLfrytHEwh4jBZcMvl8sIU8FC2zMg9MP5QVowrerTBC2+lAiJ+vrMlpNJycfqXvcJc576fd0jTVxKh4Qc2mh5LZMy03gE/+a3+OmLJtCNrW20b/nGSgCntHl/aqkNAsu2pDXEqzB6Do48dONR9A7eW7/nd3ZaSmCcuSe8I+AeWfev7KftPaW3Mivgt35ibTrDJsmlZUHdP3uTftJAgwe6iITqbaXepxXWqdHfv0DO6ctU1jgAO1LsWovSvrFMYCQSGGo9QuYko7yOD+4kgrDR/KIyocgJQeJVXm3l/lh6KTgHuEBr//oYfx9Tbkq6mOzDiZRSaeeDh85dPVLeSlJTtppHmBsAT88qthRtUrJc= rsa@gpudev";
        assert_eq!(
            SshPublicKey::parse(ed).unwrap().fingerprint(),
            "SHA256:e9NHLWGRrb2UbsEWaYl1bVaYfM+/+Wwvn3E/dbo+6TA"
        );
        assert_eq!(
            SshPublicKey::parse(rsa).unwrap().fingerprint(),
            "SHA256:HjQh4O+eiq3yNyQ4XUaBmkuV7TLBhr408kBAtaPeY04"
        );
    }

    #[test]
    fn a_body_that_does_not_match_its_type_is_refused() {
        let body = blob(&[b"ssh-rsa", &[1u8; 32]]);
        assert_eq!(
            SshPublicKey::parse(&format!("ssh-ed25519 {body}")),
            Err(SshKeyError::BadBody("ssh-ed25519".into()))
        );
        assert!(SshPublicKey::parse("ssh-ed25519 not*base64").is_err());
    }

    #[test]
    fn short_rsa_keys_are_refused_and_long_ones_accepted() {
        let weak = blob(&[b"ssh-rsa", &[1, 0, 1], &[0xff; 128]]);
        assert_eq!(
            SshPublicKey::parse(&format!("ssh-rsa {weak}")),
            Err(SshKeyError::WeakRsa)
        );
        let strong = blob(&[b"ssh-rsa", &[1, 0, 1], &[0xff; 256]]);
        assert!(SshPublicKey::parse(&format!("ssh-rsa {strong}")).is_ok());
    }

    #[test]
    fn odd_lines_are_refused() {
        assert_eq!(SshPublicKey::parse("  "), Err(SshKeyError::Empty));
        assert_eq!(SshPublicKey::parse("ssh-ed25519"), Err(SshKeyError::Shape));
        assert_eq!(
            SshPublicKey::parse("ssh-dss AAAA"),
            Err(SshKeyError::UnsupportedType("ssh-dss".into()))
        );
        let two_lines = format!("{}\nssh-ed25519 AAAA", ed25519());
        assert_eq!(
            SshPublicKey::parse(&two_lines),
            Err(SshKeyError::ControlCharacters)
        );
        let options = format!("command=\"rm -rf /\" {}", ed25519());
        assert!(
            SshPublicKey::parse(&options).is_err(),
            "authorized_keys options are not accepted"
        );
        assert_eq!(
            SshPublicKey::parse(&"a".repeat(MAX_KEY_LEN + 1)),
            Err(SshKeyError::TooLong)
        );
    }
}
