//! The OAuth 2.0 device authorization grant (RFC 8628) against an OpenID Connect issuer: the
//! endpoints from discovery, the device code, and one poll of the token endpoint at a time (the
//! caller owns the waiting, so it can honour `interval` and `slow_down` and be interrupted).

use std::fmt;
use std::time::Duration;

use reqwest::Url;
use serde::Deserialize;

/// The grant type of device code polls.
pub const DEVICE_GRANT_TYPE: &str = "urn:ietf:params:oauth:grant-type:device_code";

/// Largest answer read from an issuer.
const MAX_ANSWER: usize = 256 * 1024;

/// Why talking to the issuer failed.
#[derive(Debug, thiserror::Error)]
pub enum OidcError {
    /// A URL is not https (or http on loopback), or does not parse.
    #[error("{0}")]
    BadUrl(String),
    /// The issuer could not be reached or answered something unexpected.
    #[error("the identity provider {url}: {reason}")]
    Issuer {
        /// What was asked.
        url: String,
        /// What went wrong.
        reason: String,
    },
    /// The issuer does not offer the device authorization grant.
    #[error("the identity provider {0} does not offer the device authorization flow")]
    NoDeviceFlow(String),
}

/// The endpoints the device flow needs, from the issuer's discovery document.
#[derive(Debug, Clone, Deserialize)]
pub struct DeviceEndpoints {
    /// The issuer identifier, as the issuer states it.
    pub issuer: String,
    /// Where to ask for a device code.
    pub device_authorization_endpoint: Option<String>,
    /// Where to poll for the tokens.
    pub token_endpoint: Option<String>,
}

/// The issuer's answer to a device authorization request.
#[derive(Clone, Deserialize)]
pub struct DeviceAuthorization {
    /// The secret the client polls with.
    pub device_code: String,
    /// What the user types at the verification URI.
    pub user_code: String,
    /// Where the user goes.
    pub verification_uri: String,
    /// The verification URI with the code filled in, when offered.
    #[serde(default)]
    pub verification_uri_complete: Option<String>,
    /// Seconds until the codes expire.
    pub expires_in: u64,
    /// Seconds to wait between polls (RFC 8628 default: 5).
    #[serde(default)]
    pub interval: Option<u64>,
}

impl fmt::Debug for DeviceAuthorization {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DeviceAuthorization")
            .field("device_code", &"<redacted>")
            .field("user_code", &self.user_code)
            .field("verification_uri", &self.verification_uri)
            .field("expires_in", &self.expires_in)
            .field("interval", &self.interval)
            .finish()
    }
}

impl DeviceAuthorization {
    /// The polling interval to start with: the issuer's, at least one second, five when unsaid.
    pub fn poll_interval(&self) -> Duration {
        Duration::from_secs(self.interval.unwrap_or(5).max(1))
    }
}

/// One poll's outcome.
#[derive(Clone, PartialEq, Eq)]
pub enum DevicePoll {
    /// The user approved: the ID token.
    Token(String),
    /// Not decided yet: poll again after the interval.
    Pending,
    /// Polling too fast: add five seconds to the interval, then poll again.
    SlowDown,
    /// The device code expired before the user decided.
    Expired,
    /// The user (or the issuer) refused.
    Denied,
}

impl fmt::Debug for DevicePoll {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DevicePoll::Token(_) => f.write_str("Token(<redacted>)"),
            DevicePoll::Pending => f.write_str("Pending"),
            DevicePoll::SlowDown => f.write_str("SlowDown"),
            DevicePoll::Expired => f.write_str("Expired"),
            DevicePoll::Denied => f.write_str("Denied"),
        }
    }
}

#[derive(Deserialize)]
struct TokenAnswer {
    #[serde(default)]
    id_token: Option<String>,
}

#[derive(Deserialize)]
struct ErrorAnswer {
    error: String,
    #[serde(default)]
    error_description: Option<String>,
}

/// Checks that `url` is https, or http on a loopback host.
pub fn check_url(url: &str) -> Result<Url, OidcError> {
    let parsed =
        Url::parse(url).map_err(|e| OidcError::BadUrl(format!("{url:?} is not a URL: {e}")))?;
    let host = parsed.host_str().unwrap_or_default();
    let loopback = host == "localhost"
        || host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    match parsed.scheme() {
        "https" if parsed.host().is_some() => Ok(parsed),
        "http" if loopback => Ok(parsed),
        _ => Err(OidcError::BadUrl(format!(
            "{url:?} must be an https:// URL (http:// only on localhost)"
        ))),
    }
}

/// A client of one OpenID Connect issuer.
#[derive(Debug, Clone)]
pub struct OidcClient {
    http: reqwest::Client,
    issuer: String,
    client_id: String,
}

impl OidcClient {
    /// A client of `issuer` as the OAuth client `client_id`; `timeout` bounds each request.
    pub fn new(issuer: &str, client_id: &str, timeout: Duration) -> Result<Self, OidcError> {
        check_url(issuer)?;
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(timeout)
            .connect_timeout(timeout)
            .user_agent(concat!("gpudev-client/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| OidcError::BadUrl(format!("could not set up HTTP: {e}")))?;
        Ok(Self {
            http,
            issuer: issuer.trim_end_matches('/').to_owned(),
            client_id: client_id.to_owned(),
        })
    }

    /// Reads the discovery document and checks that it is this issuer's.
    pub async fn discover(&self) -> Result<DeviceEndpoints, OidcError> {
        let url = format!("{}/.well-known/openid-configuration", self.issuer);
        let resp = self.send(self.http.get(&url), &url).await?;
        let (status, body) = resp;
        if status != 200 {
            return Err(issuer_error(&url, format!("answered {status}")));
        }
        let doc: DeviceEndpoints = serde_json::from_slice(&body)
            .map_err(|e| issuer_error(&url, format!("not a discovery document ({e})")))?;
        if doc.issuer.trim_end_matches('/') != self.issuer {
            return Err(issuer_error(
                &url,
                "the document names another issuer".into(),
            ));
        }
        Ok(doc)
    }

    /// Asks for a device code (scope `openid profile email`).
    pub async fn start_device_flow(
        &self,
        endpoints: &DeviceEndpoints,
    ) -> Result<DeviceAuthorization, OidcError> {
        let url = endpoints
            .device_authorization_endpoint
            .as_deref()
            .ok_or_else(|| OidcError::NoDeviceFlow(self.issuer.clone()))?;
        check_url(url)?;
        let form = [
            ("client_id", self.client_id.as_str()),
            ("scope", "openid profile email"),
        ];
        let (status, body) = self.send(self.http.post(url).form(&form), url).await?;
        if status != 200 {
            return Err(issuer_error(url, oauth_reason(status, &body)));
        }
        serde_json::from_slice(&body)
            .map_err(|e| issuer_error(url, format!("not a device authorization ({e})")))
    }

    /// Polls the token endpoint once.
    pub async fn poll_device_token(
        &self,
        endpoints: &DeviceEndpoints,
        authorization: &DeviceAuthorization,
    ) -> Result<DevicePoll, OidcError> {
        let url = endpoints
            .token_endpoint
            .as_deref()
            .ok_or_else(|| OidcError::NoDeviceFlow(self.issuer.clone()))?;
        check_url(url)?;
        let form = [
            ("grant_type", DEVICE_GRANT_TYPE),
            ("device_code", authorization.device_code.as_str()),
            ("client_id", self.client_id.as_str()),
        ];
        let (status, body) = self.send(self.http.post(url).form(&form), url).await?;
        if status == 200 {
            let answer: TokenAnswer = serde_json::from_slice(&body)
                .map_err(|e| issuer_error(url, format!("not a token answer ({e})")))?;
            return answer.id_token.map(DevicePoll::Token).ok_or_else(|| {
                issuer_error(
                    url,
                    "the answer has no id_token (is the openid scope allowed?)".into(),
                )
            });
        }
        let error: Option<ErrorAnswer> = serde_json::from_slice(&body).ok();
        match error.as_ref().map(|e| e.error.as_str()) {
            Some("authorization_pending") => Ok(DevicePoll::Pending),
            Some("slow_down") => Ok(DevicePoll::SlowDown),
            Some("expired_token") => Ok(DevicePoll::Expired),
            Some("access_denied") => Ok(DevicePoll::Denied),
            _ => Err(issuer_error(url, oauth_reason(status, &body))),
        }
    }

    async fn send(
        &self,
        req: reqwest::RequestBuilder,
        url: &str,
    ) -> Result<(u16, Vec<u8>), OidcError> {
        let mut resp = req
            .header(reqwest::header::ACCEPT, "application/json")
            .send()
            .await
            .map_err(|e| issuer_error(url, e.without_url().to_string()))?;
        let status = resp.status().as_u16();
        let mut body = Vec::new();
        while let Some(chunk) = resp
            .chunk()
            .await
            .map_err(|e| issuer_error(url, e.without_url().to_string()))?
        {
            if body.len() + chunk.len() > MAX_ANSWER {
                return Err(issuer_error(url, "the answer is too large".into()));
            }
            body.extend_from_slice(&chunk);
        }
        Ok((status, body))
    }
}

fn issuer_error(url: &str, reason: String) -> OidcError {
    OidcError::Issuer {
        url: url.to_owned(),
        reason,
    }
}

/// The OAuth error of an answer, in a few words (never the raw body).
fn oauth_reason(status: u16, body: &[u8]) -> String {
    match serde_json::from_slice::<ErrorAnswer>(body) {
        Ok(e) => match e.error_description {
            Some(d) => format!("{} ({d})", e.error),
            None => e.error,
        },
        Err(_) => format!("answered {status}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_https_or_loopback_http_is_accepted() {
        assert!(check_url("https://login.example.com").is_ok());
        assert!(check_url("http://127.0.0.1:9000").is_ok());
        assert!(check_url("http://localhost/realms/a").is_ok());
        assert!(check_url("http://[::1]:80").is_ok());
        assert!(check_url("http://login.example.com").is_err());
        assert!(check_url("ftp://127.0.0.1").is_err());
        assert!(check_url("not a url").is_err());
    }

    #[test]
    fn the_interval_defaults_to_five_and_is_at_least_one_second() {
        let mut a = DeviceAuthorization {
            device_code: "secret".into(),
            user_code: "ABCD".into(),
            verification_uri: "https://x".into(),
            verification_uri_complete: None,
            expires_in: 60,
            interval: None,
        };
        assert_eq!(a.poll_interval(), Duration::from_secs(5));
        a.interval = Some(0);
        assert_eq!(a.poll_interval(), Duration::from_secs(1));
        assert!(!format!("{a:?}").contains("secret"));
    }
}
