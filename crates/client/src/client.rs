//! The HTTP core: base URL, timeouts, the key, and turning answers into types or errors.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use reqwest::header::{HeaderMap, RETRY_AFTER};
use reqwest::{Method, RequestBuilder, Url};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::ClientError;
use gpudev_api_types::ErrorCode;

/// Whole-request timeout unless the builder sets another.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
/// Connect timeout unless the builder sets another.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// How long an idle pooled connection is kept: below the API server's 5 s keep-alive.
const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(4);
/// Largest error body read (the API's are a few hundred bytes).
const MAX_ERROR_BODY: usize = 64 * 1024;

/// A client of one gpudev API. Cheap to clone (the connection pool is shared).
#[derive(Clone)]
pub struct Client {
    http: reqwest::Client,
    base: Url,
    timeout: Duration,
    api_key: Option<Arc<str>>,
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("base", &self.base.as_str())
            .field("api_key", &self.api_key.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

/// Settings of a [`Client`].
#[derive(Debug, Clone)]
pub struct ClientBuilder {
    base: String,
    timeout: Duration,
    connect_timeout: Duration,
    user_agent: String,
}

impl ClientBuilder {
    /// Whole-request timeout (default 30 s).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Connect timeout (default 10 s).
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// `User-Agent` (the API reads a CLI version from `gpu-dev/<version>` in it).
    pub fn user_agent(mut self, agent: impl Into<String>) -> Self {
        self.user_agent = agent.into();
        self
    }

    /// Builds the client: TLS with the system's roots, no redirects (an API never redirects, and a
    /// redirect must not carry the key elsewhere).
    pub fn build(self) -> Result<Client, ClientError> {
        let mut base = Url::parse(self.base.trim()).map_err(|e| {
            ClientError::Invalid(format!("the API URL {:?} is not a URL: {e}", self.base))
        })?;
        if !matches!(base.scheme(), "http" | "https") || base.host_str().is_none() {
            return Err(ClientError::Invalid(format!(
                "the API URL {:?} must be http:// or https:// with a host",
                self.base
            )));
        }
        if base.query().is_some() || base.fragment().is_some() {
            return Err(ClientError::Invalid(format!(
                "the API URL {:?} must not have a query or fragment",
                self.base
            )));
        }
        // Paths are appended as segments: the base must end with a slash.
        if !base.path().ends_with('/') {
            let path = format!("{}/", base.path());
            base.set_path(&path);
        }
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(self.timeout)
            .connect_timeout(self.connect_timeout)
            // Forget idle connections before the server does. A pooled connection reused just as
            // the server closes it for idleness fails the request with "connection closed before
            // message completed"; the API (actix-web) closes idle keep-alive connections after
            // 5 s, so 4 s here avoids the race (seen under the sustained-load test).
            .pool_idle_timeout(POOL_IDLE_TIMEOUT)
            .user_agent(self.user_agent)
            .build()
            .map_err(|e| ClientError::Invalid(format!("could not set up HTTP: {e}")))?;
        Ok(Client {
            http,
            base,
            timeout: self.timeout,
            api_key: None,
        })
    }
}

impl Client {
    /// A client of the API at `base_url` with the default settings.
    pub fn new(base_url: &str) -> Result<Self, ClientError> {
        Self::builder(base_url).build()
    }

    /// Settings for a client of the API at `base_url`.
    pub fn builder(base_url: &str) -> ClientBuilder {
        ClientBuilder {
            base: base_url.to_owned(),
            timeout: DEFAULT_TIMEOUT,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            user_agent: concat!("gpudev-client/", env!("CARGO_PKG_VERSION")).to_owned(),
        }
    }

    /// A copy that sends `Authorization: Bearer <key>`.
    pub fn with_api_key(&self, key: impl AsRef<str>) -> Self {
        Self {
            api_key: Some(Arc::from(key.as_ref())),
            ..self.clone()
        }
    }

    /// A copy that sends no key.
    pub fn without_api_key(&self) -> Self {
        Self {
            api_key: None,
            ..self.clone()
        }
    }

    /// Whether a key is set.
    pub fn has_api_key(&self) -> bool {
        self.api_key.is_some()
    }

    /// The base URL (always ending with `/`).
    pub fn base_url(&self) -> &Url {
        &self.base
    }

    /// The URL of `segments` below the base; each segment is percent-encoded, so ids and names
    /// from users can never change the path.
    pub(crate) fn url(&self, segments: &[&str]) -> Url {
        let mut url = self.base.clone();
        if let Ok(mut path) = url.path_segments_mut() {
            path.pop_if_empty().extend(segments);
        }
        url
    }

    pub(crate) fn request(&self, method: Method, segments: &[&str]) -> RequestBuilder {
        let req = self.http.request(method, self.url(segments));
        match &self.api_key {
            Some(key) => req.bearer_auth(key),
            None => req,
        }
    }

    pub(crate) async fn get<T: DeserializeOwned>(
        &self,
        segments: &[&str],
    ) -> Result<T, ClientError> {
        self.send(self.request(Method::GET, segments)).await
    }

    pub(crate) async fn get_query<T: DeserializeOwned, Q: Serialize + ?Sized>(
        &self,
        segments: &[&str],
        query: &Q,
    ) -> Result<T, ClientError> {
        self.send(self.request(Method::GET, segments).query(query))
            .await
    }

    pub(crate) async fn post<T: DeserializeOwned, B: Serialize + ?Sized>(
        &self,
        segments: &[&str],
        body: &B,
    ) -> Result<T, ClientError> {
        self.send(self.request(Method::POST, segments).json(body))
            .await
    }

    pub(crate) async fn put<T: DeserializeOwned, B: Serialize + ?Sized>(
        &self,
        segments: &[&str],
        body: &B,
    ) -> Result<T, ClientError> {
        self.send(self.request(Method::PUT, segments).json(body))
            .await
    }

    pub(crate) async fn delete<T: DeserializeOwned>(
        &self,
        segments: &[&str],
    ) -> Result<T, ClientError> {
        self.send(self.request(Method::DELETE, segments)).await
    }

    /// Sends a request and reads a typed answer, or the API's error body.
    pub(crate) async fn send<T: DeserializeOwned>(
        &self,
        req: RequestBuilder,
    ) -> Result<T, ClientError> {
        let origin = self.base.as_str().trim_end_matches('/').to_owned();
        let resp = req
            .send()
            .await
            .map_err(|e| ClientError::from_reqwest(&origin, self.timeout, &e))?;
        let status = resp.status();
        let retry_after = retry_after(resp.headers());
        if status.is_success() {
            let bytes = resp
                .bytes()
                .await
                .map_err(|e| ClientError::from_reqwest(&origin, self.timeout, &e))?;
            return serde_json::from_slice(&bytes).map_err(|e| ClientError::Unexpected {
                url: origin,
                status: status.as_u16(),
                reason: format!("the answer does not have the expected shape ({e})"),
            });
        }
        let mut resp = resp;
        let mut body = Vec::new();
        while let Ok(Some(chunk)) = resp.chunk().await {
            if body.len() + chunk.len() > MAX_ERROR_BODY {
                break;
            }
            body.extend_from_slice(&chunk);
        }
        #[derive(serde::Deserialize)]
        struct ErrorBody {
            detail: serde_json::Value,
            #[serde(default)]
            code: Option<ErrorCode>,
            #[serde(default)]
            earliest_start: Option<chrono::DateTime<chrono::Utc>>,
        }
        match serde_json::from_slice::<ErrorBody>(&body) {
            Ok(err) => Err(ClientError::Api {
                status: status.as_u16(),
                code: err.code.unwrap_or_else(|| default_code(status.as_u16())),
                detail: match err.detail {
                    serde_json::Value::String(s) => s,
                    // FastAPI-style validation lists (older servers): keep them readable.
                    other => other.to_string(),
                },
                retry_after,
                earliest_start: err.earliest_start,
            }),
            Err(_) => Err(ClientError::Unexpected {
                url: origin,
                status: status.as_u16(),
                reason: format!(
                    "{} (not a gpudev API error; is the API URL right?)",
                    status.canonical_reason().unwrap_or("error")
                ),
            }),
        }
    }
}

fn retry_after(headers: &HeaderMap) -> Option<u64> {
    headers
        .get(RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse().ok())
}

/// A code for an error body without one (servers older than the `code` field).
fn default_code(status: u16) -> ErrorCode {
    match status {
        400 => ErrorCode::BadRequest,
        401 => ErrorCode::NotAuthenticated,
        404 => ErrorCode::NotFound,
        409 => ErrorCode::Conflict,
        422 => ErrorCode::ValidationError,
        429 => ErrorCode::RateLimited,
        503 => ErrorCode::ServiceUnavailable,
        // 403 without a code said only "forbidden", which names no reason.
        _ => ErrorCode::Unknown,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_appended_below_the_base_and_segments_are_encoded() {
        let c = Client::new("https://gpudev.example.com/api").unwrap();
        assert_eq!(c.base_url().as_str(), "https://gpudev.example.com/api/");
        assert_eq!(
            c.url(&["v1", "jobs", "../admin?x=1"]).as_str(),
            "https://gpudev.example.com/api/v1/jobs/..%2Fadmin%3Fx=1"
        );
        let root = Client::new("http://127.0.0.1:8000").unwrap();
        assert_eq!(
            root.url(&["v1", "me"]).as_str(),
            "http://127.0.0.1:8000/v1/me"
        );
    }

    #[test]
    fn unusable_base_urls_are_refused() {
        for bad in ["", "localhost:8000", "ftp://x/", "http://x/?a=1"] {
            assert!(
                matches!(Client::new(bad), Err(ClientError::Invalid(_))),
                "{bad}"
            );
        }
    }

    #[test]
    fn debug_never_shows_the_key() {
        let c = Client::new("http://127.0.0.1:1")
            .unwrap()
            .with_api_key("s3cr3t-key");
        assert!(!format!("{c:?}").contains("s3cr3t"));
    }
}
