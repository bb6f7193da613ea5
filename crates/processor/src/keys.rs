//! The `authorized_keys` of a dev box: the owner's registered keys, and the public keys GitHub
//! publishes for the GitHub logins given access (the owner's, the reservation's, and users
//! added later). Every line is checked as an OpenSSH public key; duplicates (by fingerprint) are
//! dropped.
//!
//! Each GitHub lookup is one request of at most [`GITHUB_TIMEOUT`]. What went wrong with each
//! login is reported ([`KeyProblem`]) so that the driver can show it at once and decide: a dev
//! box with no key at all is started by no one (see [`crate::driver`]).

use std::collections::BTreeSet;
use std::fmt;
use std::time::Duration;

use gpudev_domain::SshPublicKey;
use gpudev_store::{Pool, reservations::Reservation, ssh_keys, users};

use crate::error::Result;

/// Most keys taken from one GitHub login.
const MAX_GITHUB_KEYS: usize = 32;
/// Largest `<login>.keys` body read.
const MAX_GITHUB_BODY: usize = 64 * 1024;
/// The longest one GitHub lookup may take, connection included.
pub const GITHUB_TIMEOUT: Duration = Duration::from_secs(5);

/// Where keys come from.
#[derive(Debug, Clone)]
pub struct KeySource {
    http: reqwest::Client,
    github_base: Option<String>,
}

/// Why a GitHub login gave no keys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyProblem {
    /// GitHub has no such user (404): asking again will not help.
    UnknownUser,
    /// The user publishes no SSH key GitHub would let them use.
    NoKeys,
    /// This installation does not fetch keys from GitHub (`GITHUB_KEYS_URL` is empty).
    LookupsOff,
    /// The lookup failed (timeout, refused connection, an error status): a later attempt may
    /// work.
    Unreachable(String),
}

impl KeyProblem {
    /// True when another attempt may find keys.
    pub fn is_transient(&self) -> bool {
        matches!(self, Self::Unreachable(_))
    }
}

impl fmt::Display for KeyProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::UnknownUser => f.write_str("GitHub has no such user"),
            Self::NoKeys => f.write_str("the GitHub user publishes no usable SSH key"),
            Self::LookupsOff => f.write_str("this installation does not fetch keys from GitHub"),
            Self::Unreachable(why) => write!(f, "GitHub could not be asked: {why}"),
        }
    }
}

/// An `authorized_keys` file and what could not be added to it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuthorizedKeys {
    /// The file (one key a line).
    pub file: String,
    /// How many keys it holds.
    pub count: usize,
    /// Each GitHub login that gave no keys, with why.
    pub problems: Vec<(String, KeyProblem)>,
}

impl AuthorizedKeys {
    /// The problems in one line (`octocat: GitHub has no such user; …`).
    pub fn describe_problems(&self) -> String {
        self.problems
            .iter()
            .map(|(login, p)| format!("{login}: {p}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    /// True when some login may still give keys on a later attempt.
    pub fn may_improve(&self) -> bool {
        self.problems.iter().any(|(_, p)| p.is_transient())
    }
}

impl KeySource {
    /// Keys from the database, and from `<github_base>/<login>.keys` when a base is given.
    pub fn new(github_base: Option<String>) -> Self {
        let http = reqwest::Client::builder()
            .timeout(GITHUB_TIMEOUT)
            .connect_timeout(GITHUB_TIMEOUT)
            .redirect(reqwest::redirect::Policy::limited(2))
            .build()
            .unwrap_or_default();
        Self { http, github_base }
    }

    /// The GitHub logins whose keys `reservation` gets, given its owner's account login.
    fn logins(reservation: &Reservation, owners_login: Option<&str>) -> BTreeSet<String> {
        reservation
            .github_user
            .iter()
            .map(|l| l.as_str())
            .chain(owners_login)
            .chain(reservation.secondary_users.iter().map(|l| l.as_str()))
            .map(str::to_owned)
            .collect()
    }

    /// The `authorized_keys` file for `reservation`, with what each GitHub login that gave no
    /// keys went through. Fails only when the database does.
    pub async fn authorized_keys(
        &self,
        pool: &Pool,
        reservation: &Reservation,
    ) -> Result<AuthorizedKeys> {
        let db = pool.get().await.map_err(gpudev_store::StoreError::from)?;
        let registered = ssh_keys::list(&**db, reservation.user_id).await?;
        let owner = users::find_by_id(&**db, reservation.user_id).await?;
        drop(db);
        // Every login was parsed when its row was read.
        let owners_login = owner.and_then(|u| u.github_username);
        let logins = Self::logins(reservation, owners_login.as_ref().map(|l| l.as_str()));
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
        let mut problems = Vec::new();
        for login in &logins {
            match self.github_keys(login).await {
                Ok(keys) => keys.into_iter().for_each(&mut push),
                Err(problem) => {
                    if problem != KeyProblem::LookupsOff {
                        tracing::warn!(login, problem = %problem, "no GitHub keys");
                    }
                    problems.push((login.clone(), problem));
                }
            }
        }
        let count = lines.len();
        let mut file = lines.join("\n");
        if !file.is_empty() {
            file.push('\n');
        }
        Ok(AuthorizedKeys {
            file,
            count,
            problems,
        })
    }

    /// The valid keys GitHub publishes for `login`.
    async fn github_keys(&self, login: &str) -> std::result::Result<Vec<SshPublicKey>, KeyProblem> {
        let Some(base) = &self.github_base else {
            return Err(KeyProblem::LookupsOff);
        };
        let url = format!("{base}/{login}.keys");
        let response = self.http.get(&url).send().await.map_err(|e| {
            KeyProblem::Unreachable(if e.is_timeout() {
                format!("no answer from {url} within {} s", GITHUB_TIMEOUT.as_secs())
            } else if e.is_connect() {
                format!("cannot connect to {url}")
            } else {
                format!("{url}: {e}")
            })
        })?;
        if response.status() == reqwest::StatusCode::NOT_FOUND {
            return Err(KeyProblem::UnknownUser);
        }
        if !response.status().is_success() {
            return Err(KeyProblem::Unreachable(format!(
                "{url} answered {}",
                response.status()
            )));
        }
        let body = response.bytes().await.map_err(|e| {
            KeyProblem::Unreachable(if e.is_timeout() {
                format!(
                    "{url} did not finish its answer within {} s",
                    GITHUB_TIMEOUT.as_secs()
                )
            } else {
                format!("{url}: {e}")
            })
        })?;
        let text = String::from_utf8_lossy(&body[..body.len().min(MAX_GITHUB_BODY)]).into_owned();
        let keys: Vec<SshPublicKey> = text
            .lines()
            .filter_map(|l| SshPublicKey::parse(l).ok())
            .take(MAX_GITHUB_KEYS)
            .collect();
        if keys.is_empty() {
            return Err(KeyProblem::NoKeys);
        }
        Ok(keys)
    }
}
