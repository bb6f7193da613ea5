//! `~/.gpu-dev/credentials`: the API key of the last login, as JSON (`api_key` and `expires_at`,
//! the original CLI's fields, plus who and which server it is for). Written atomically with mode
//! 0600; a key is only ever sent to the server it was issued by.

use std::fmt;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

use crate::error::CliError;
use crate::files;

/// A key is renewed when it expires within this long.
pub const RENEW_BEFORE: Duration = Duration::minutes(5);

/// How the key was obtained, so an automatic re-login uses the same way.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum LoginMethod {
    /// Presigned STS request (`/v1/auth/aws-iam`): the secret key is never sent.
    AwsIam,
    /// Raw AWS credentials (`/v1/auth/aws-login`, `login --send-credentials`).
    AwsLogin,
    /// An OpenID Connect ID token (`/v1/auth/oidc-login`, `login --oidc`).
    Oidc,
}

impl LoginMethod {
    /// The server's name for it.
    pub fn as_str(self) -> &'static str {
        match self {
            LoginMethod::AwsIam => "aws-iam",
            LoginMethod::AwsLogin => "aws-login",
            LoginMethod::Oidc => "oidc",
        }
    }
}

/// The stored key.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
pub struct Credentials {
    /// The API key.
    pub api_key: String,
    /// When it stops working.
    pub expires_at: DateTime<Utc>,
    /// The key's id (to recognise it in `keys list` and revoke it).
    #[serde(default)]
    pub key_id: Option<i64>,
    /// The key's first characters.
    #[serde(default)]
    pub key_prefix: Option<String>,
    /// Whose key it is.
    #[serde(default)]
    pub username: Option<String>,
    /// The API that issued it (normalised base URL).
    #[serde(default)]
    pub api_url: Option<String>,
    /// How it was obtained.
    #[serde(default = "default_method")]
    pub method: LoginMethod,
    /// For OIDC logins from `--id-token-file`: the file, read again to renew the key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id_token_file: Option<PathBuf>,
}

fn default_method() -> LoginMethod {
    LoginMethod::AwsIam
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("api_key", &"<redacted>")
            .field("expires_at", &self.expires_at)
            .field("key_id", &self.key_id)
            .field("username", &self.username)
            .field("api_url", &self.api_url)
            .field("method", &self.method)
            .finish()
    }
}

impl Credentials {
    /// True when the key expires within [`RENEW_BEFORE`] of `now` (or already has).
    pub fn needs_renewal(&self, now: DateTime<Utc>) -> bool {
        self.expires_at - now <= RENEW_BEFORE
    }

    /// True when the key was issued by the API at `api_url` (keys from before this field existed
    /// are taken as the configured server's).
    pub fn is_for(&self, api_url: &str) -> bool {
        self.api_url.as_deref().is_none_or(|u| u == api_url)
    }

    /// Reads the file: `None` when it does not exist. A file that does not parse is treated as
    /// absent (a new login replaces it); a file others can read is tightened to 0600.
    pub fn load(path: &Path) -> Result<Option<Self>, CliError> {
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => {
                return Err(CliError::Failed(format!(
                    "cannot read {}: {e}",
                    path.display()
                )));
            }
        };
        if let Ok(meta) = std::fs::metadata(path)
            && meta.permissions().mode() & 0o077 != 0
        {
            let _ = std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600));
        }
        Ok(serde_json::from_str(&text).ok())
    }

    /// Writes the file atomically with mode 0600.
    pub fn save(&self, path: &Path) -> Result<(), CliError> {
        let text = serde_json::to_vec_pretty(self)
            .map_err(|e| CliError::Failed(format!("cannot encode the credentials: {e}")))?;
        files::write_atomic(path, &text, 0o600)
    }

    /// Deletes the file (a missing file is fine).
    pub fn delete(path: &Path) -> Result<(), CliError> {
        match std::fs::remove_file(path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(CliError::Failed(format!(
                "cannot delete {}: {e}",
                path.display()
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn creds(expires_in: Duration) -> Credentials {
        Credentials {
            api_key: "k".repeat(40),
            expires_at: Utc::now() + expires_in,
            key_id: Some(7),
            key_prefix: Some("kkkkkkkk".into()),
            username: Some("alice".into()),
            api_url: Some("http://127.0.0.1:8000/".into()),
            method: LoginMethod::AwsIam,
            id_token_file: None,
        }
    }

    #[test]
    fn keys_are_renewed_five_minutes_before_they_expire() {
        let now = Utc::now();
        assert!(!creds(Duration::minutes(6)).needs_renewal(now));
        assert!(creds(Duration::minutes(4)).needs_renewal(now));
        assert!(creds(Duration::minutes(-1)).needs_renewal(now));
    }

    #[test]
    fn the_file_is_private_and_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(".gpu-dev").join("credentials");
        assert!(Credentials::load(&path).unwrap().is_none());
        let c = creds(Duration::hours(2));
        c.save(&path).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert_eq!(Credentials::load(&path).unwrap(), Some(c.clone()));
        assert!(c.is_for("http://127.0.0.1:8000/"));
        assert!(!c.is_for("https://elsewhere.example.com/"));
        assert!(!format!("{c:?}").contains("kkkkkkkkkk"));
        Credentials::delete(&path).unwrap();
        Credentials::delete(&path).unwrap();
        assert!(Credentials::load(&path).unwrap().is_none());
    }

    #[test]
    fn the_original_clis_file_is_read() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("credentials");
        std::fs::write(
            &path,
            r#"{"api_key": "abc", "expires_at": "2030-01-01T00:00:00+00:00"}"#,
        )
        .unwrap();
        let c = Credentials::load(&path).unwrap().unwrap();
        assert_eq!(c.method, LoginMethod::AwsIam);
        assert!(c.is_for("http://anything/"));
    }
}
