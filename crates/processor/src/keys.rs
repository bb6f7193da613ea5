//! The `authorized_keys` of a dev box: the owner's registered keys, and the public keys GitHub
//! publishes for the GitHub logins given access (the owner's, the reservation's, and users
//! added later). Every line is checked as an OpenSSH public key; duplicates (by fingerprint) are
//! dropped.

use std::collections::BTreeSet;
use std::time::Duration;

use gpudev_domain::SshPublicKey;
use gpudev_store::{Pool, reservations::Reservation, ssh_keys, users};

use crate::error::{ProcessorError, Result};

/// Most keys taken from one GitHub login.
const MAX_GITHUB_KEYS: usize = 32;
/// Largest `<login>.keys` body read.
const MAX_GITHUB_BODY: usize = 64 * 1024;

/// Where keys come from.
#[derive(Debug, Clone)]
pub struct KeySource {
    http: reqwest::Client,
    github_base: Option<String>,
}

impl KeySource {
    /// Keys from the database, and from `<github_base>/<login>.keys` when a base is given.
    pub fn new(github_base: Option<String>) -> Self {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(5))
            .redirect(reqwest::redirect::Policy::limited(2))
            .build()
            .unwrap_or_default();
        Self { http, github_base }
    }

    /// The `authorized_keys` file for `reservation`. Fails (transiently) only when there are no
    /// keys at all and a GitHub lookup failed, so a retry may still find some.
    pub async fn authorized_keys(&self, pool: &Pool, reservation: &Reservation) -> Result<String> {
        let db = pool.get().await.map_err(gpudev_store::StoreError::from)?;
        let registered = ssh_keys::list(&**db, reservation.user_id).await?;
        let owner = users::find_by_id(&**db, reservation.user_id).await?;
        drop(db);
        // Every login was parsed when its row was read.
        let owners_login = owner.and_then(|u| u.github_username);
        let logins: BTreeSet<String> = reservation
            .github_user
            .iter()
            .chain(owners_login.as_ref())
            .chain(reservation.secondary_users.iter())
            .map(|login| login.as_str().to_owned())
            .collect();
        let mut seen = BTreeSet::new();
        let mut lines = Vec::new();
        let mut push = |key: SshPublicKey| {
            if seen.insert(key.fingerprint().to_owned()) {
                lines.push(key.to_line());
            }
        };
        for stored in registered {
            if let Ok(key) = SshPublicKey::parse(&stored.public_key) {
                push(key);
            }
        }
        let mut lookup_error = None;
        for login in &logins {
            match self.github_keys(login).await {
                Ok(keys) => keys.into_iter().for_each(&mut push),
                Err(e) => {
                    tracing::warn!(login, error = %e, "could not fetch GitHub keys");
                    lookup_error = Some(e);
                }
            }
        }
        if lines.is_empty()
            && let Some(e) = lookup_error
        {
            return Err(ProcessorError::Transient(format!(
                "no SSH keys yet: fetching GitHub keys failed: {e}"
            )));
        }
        let mut file = lines.join("\n");
        if !file.is_empty() {
            file.push('\n');
        }
        Ok(file)
    }

    /// The valid keys GitHub publishes for `login` (none when lookups are off).
    async fn github_keys(&self, login: &str) -> std::result::Result<Vec<SshPublicKey>, String> {
        let Some(base) = &self.github_base else {
            return Ok(Vec::new());
        };
        let url = format!("{base}/{login}.keys");
        let response = self
            .http
            .get(&url)
            .send()
            .await
            .map_err(|e| e.to_string())?;
        if response.status() == reqwest::StatusCode::NOT_FOUND {
            return Ok(Vec::new());
        }
        if !response.status().is_success() {
            return Err(format!("{url} answered {}", response.status()));
        }
        let body = response.bytes().await.map_err(|e| e.to_string())?;
        let text = String::from_utf8_lossy(&body[..body.len().min(MAX_GITHUB_BODY)]).into_owned();
        Ok(text
            .lines()
            .filter_map(|l| SshPublicKey::parse(l).ok())
            .take(MAX_GITHUB_KEYS)
            .collect())
    }
}
