//! The keys of the trusted issuers: discovery, the JWKS, a cache, and refreshes that a flood of
//! unknown key ids cannot turn into a flood of requests to the issuer.

use std::time::{Duration, Instant};

use jsonwebtoken::jwk::{Jwk, JwkSet};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use tokio::sync::Mutex;

use super::config::{IssuerConfig, check_url};

/// How long fetched keys are used before they are fetched again.
pub const JWKS_MAX_AGE: Duration = Duration::from_secs(3600);

/// Largest discovery document or JWKS read.
const MAX_DOCUMENT: usize = 256 * 1024;

/// Why the keys could not be had.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// The issuer (or its discovery document) could not be reached or made no sense.
    #[error("{0}")]
    Unreachable(String),
    /// The issuer publishes no key with this id (after a refresh, or while refreshes wait).
    #[error("the issuer has no signing key with id {0:?}")]
    UnknownKey(String),
}

/// The parts of the discovery document we use.
#[derive(Debug, Clone, Deserialize)]
pub struct Discovery {
    /// Must equal the configured issuer.
    pub issuer: String,
    /// Where the keys are.
    pub jwks_uri: String,
    /// The token endpoint (the CLI's device flow, the console's code exchange).
    #[serde(default)]
    pub token_endpoint: Option<String>,
    /// The authorization endpoint (the console's sign-in).
    #[serde(default)]
    pub authorization_endpoint: Option<String>,
    /// The device authorization endpoint (RFC 8628), when the issuer offers it.
    #[serde(default)]
    pub device_authorization_endpoint: Option<String>,
}

#[derive(Default)]
struct Cache {
    keys: Option<JwkSet>,
    fetched_at: Option<Instant>,
    last_attempt: Option<Instant>,
}

/// One trusted issuer with its cached keys.
pub struct Issuer {
    /// Its settings.
    pub config: IssuerConfig,
    cache: Mutex<Cache>,
}

impl std::fmt::Debug for Issuer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Issuer")
            .field("issuer", &self.config.issuer)
            .finish_non_exhaustive()
    }
}

/// Every trusted issuer, and the HTTP client that fetches their keys.
#[derive(Debug)]
pub struct OidcProvider {
    issuers: Vec<Issuer>,
    http: reqwest::Client,
    min_refresh: Duration,
}

impl OidcProvider {
    /// Builds the provider; nothing is fetched until the first login. `min_refresh` is the least
    /// time between two fetches of one issuer's keys caused by unknown key ids.
    pub fn new(
        issuers: Vec<IssuerConfig>,
        timeout: Duration,
        min_refresh: Duration,
    ) -> Result<Self, reqwest::Error> {
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout)
            // A redirect could lead anywhere; issuers publish their documents directly.
            .redirect(reqwest::redirect::Policy::none())
            .build()?;
        Ok(Self {
            issuers: issuers
                .into_iter()
                .map(|config| Issuer {
                    config,
                    cache: Mutex::new(Cache::default()),
                })
                .collect(),
            http,
            min_refresh,
        })
    }

    /// The configured issuers.
    pub fn issuers(&self) -> impl Iterator<Item = &IssuerConfig> {
        self.issuers.iter().map(|i| &i.config)
    }

    /// True when at least one issuer is configured.
    pub fn is_enabled(&self) -> bool {
        !self.issuers.is_empty()
    }

    /// The issuer whose identifier is exactly `iss`.
    pub fn find(&self, iss: &str) -> Option<&Issuer> {
        self.issuers.iter().find(|i| i.config.issuer == iss)
    }

    /// The key `kid` of `issuer`. Keys are fetched on first use, when older than
    /// [`JWKS_MAX_AGE`], and when `kid` is unknown, but an unknown `kid` causes at most one fetch
    /// per `min_refresh`; concurrent callers wait for the one fetch in progress.
    pub async fn key(&self, issuer: &Issuer, kid: &str) -> Result<Jwk, KeyError> {
        let mut cache = issuer.cache.lock().await;
        let now = Instant::now();
        let fresh = cache
            .fetched_at
            .is_some_and(|t| now.duration_since(t) < JWKS_MAX_AGE);
        let cached = cache.keys.as_ref().and_then(|set| set.find(kid)).cloned();
        if let (true, Some(key)) = (fresh, &cached) {
            return Ok(key.clone());
        }
        // Until keys were fetched once, every login tries (the login rate limit bounds that);
        // after that, at most one fetch per `min_refresh`, whatever the tokens claim.
        let recently_tried = cache
            .last_attempt
            .is_some_and(|t| now.duration_since(t) < self.min_refresh);
        if recently_tried && cache.keys.is_some() {
            return cached.ok_or_else(|| KeyError::UnknownKey(kid.to_owned()));
        }
        cache.last_attempt = Some(now);
        match self.fetch_keys(&issuer.config).await {
            Ok(set) => {
                tracing::info!(issuer = %issuer.config.issuer, keys = set.keys.len(), "fetched the issuer's keys");
                let found = set.find(kid).cloned();
                cache.keys = Some(set);
                cache.fetched_at = Some(Instant::now());
                found.ok_or_else(|| KeyError::UnknownKey(kid.to_owned()))
            }
            Err(e) => {
                tracing::warn!(issuer = %issuer.config.issuer, error = %e, "could not fetch the issuer's keys");
                // Keys past their age still verify while the issuer is away.
                cached.ok_or(e)
            }
        }
    }

    /// The issuer's discovery document, checked: its `issuer` must be the configured one and its
    /// endpoints https (or loopback http).
    pub async fn discover(&self, config: &IssuerConfig) -> Result<Discovery, KeyError> {
        let doc: Discovery = self.get_json(&config.discovery_url()).await?;
        if doc.issuer != config.issuer {
            return Err(KeyError::Unreachable(format!(
                "the discovery document of {} names another issuer",
                config.issuer
            )));
        }
        for url in [Some(&doc.jwks_uri), doc.token_endpoint.as_ref()]
            .into_iter()
            .chain([
                doc.device_authorization_endpoint.as_ref(),
                doc.authorization_endpoint.as_ref(),
            ])
            .flatten()
        {
            check_url(url)
                .map_err(|e| KeyError::Unreachable(format!("{}: endpoint {e}", config.issuer)))?;
        }
        Ok(doc)
    }

    async fn fetch_keys(&self, config: &IssuerConfig) -> Result<JwkSet, KeyError> {
        let doc = self.discover(config).await?;
        self.get_json(&doc.jwks_uri).await
    }

    /// Posts `form` to an issuer's endpoint (with HTTP Basic client authentication when
    /// `basic` is given) and reads the JSON answer, whatever its status: OAuth endpoints answer
    /// their errors as JSON with status 400 or 401.
    pub async fn post_form(
        &self,
        url: &str,
        form: &[(&str, &str)],
        basic: Option<(&str, &str)>,
    ) -> Result<(reqwest::StatusCode, serde_json::Value), KeyError> {
        let mut req = self
            .http
            .post(url)
            .header(reqwest::header::ACCEPT, "application/json")
            .form(form);
        if let Some((id, secret)) = basic {
            // RFC 6749 §2.3.1: both form-encoded before they are joined.
            let enc = |s: &str| {
                serde_urlencoded::to_string([("v", s)])
                    .map(|pair| pair.trim_start_matches("v=").to_owned())
                    .unwrap_or_default()
            };
            req = req.basic_auth(enc(id), Some(enc(secret)));
        }
        let resp = req
            .send()
            .await
            .map_err(|e| KeyError::Unreachable(format!("{url}: {}", e.without_url())))?;
        let status = resp.status();
        Ok((status, Self::read_json(url, resp).await?))
    }

    async fn get_json<T: DeserializeOwned>(&self, url: &str) -> Result<T, KeyError> {
        let unreachable = |what: String| KeyError::Unreachable(format!("{url}: {what}"));
        let resp = self
            .http
            .get(url)
            .header(reqwest::header::ACCEPT, "application/json")
            .send()
            .await
            .map_err(|e| unreachable(e.without_url().to_string()))?;
        if !resp.status().is_success() {
            return Err(unreachable(format!("answered {}", resp.status())));
        }
        Self::read_json(url, resp).await
    }

    /// A JSON body of at most [`MAX_DOCUMENT`] bytes.
    async fn read_json<T: DeserializeOwned>(
        url: &str,
        mut resp: reqwest::Response,
    ) -> Result<T, KeyError> {
        let unreachable = |what: String| KeyError::Unreachable(format!("{url}: {what}"));
        let mut body = Vec::new();
        while let Some(chunk) = resp
            .chunk()
            .await
            .map_err(|e| unreachable(e.without_url().to_string()))?
        {
            if body.len() + chunk.len() > MAX_DOCUMENT {
                return Err(unreachable("the document is too large".into()));
            }
            body.extend_from_slice(&chunk);
        }
        serde_json::from_slice(&body)
            .map_err(|e| unreachable(format!("not the expected JSON ({e})")))
    }
}
