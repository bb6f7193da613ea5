//! The STS client behind both logins.
//!
//! - `aws-login`: `GetCallerIdentity` signed by the AWS SDK with the credentials the caller sent.
//!   The SDK configuration is loaded once at start-up (so the SDK's own settings, and
//!   `AWS_ENDPOINT_URL_STS` in particular, are honoured); each call only overrides the credentials.
//! - `aws-iam`: a `GetCallerIdentity` request the client signed itself, forwarded as it is to an
//!   allowed STS host. The signature covers the host, the headers and the body, so STS itself
//!   proves who signed it.
//!
//! moto's error bodies do not parse in the SDK (its `code()` is `None`), and AWS's own may not
//! either, so failures are classified by the raw HTTP status: a 4xx means the credentials or the
//! signature were refused (401 to our caller); anything that never produced an answer, or a 5xx,
//! means STS is unavailable (503).

use aws_config::BehaviorVersion;
use aws_config::identity::IdentityCache;
use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_credential_types::Credentials;
use aws_sdk_sts::config::http::HttpResponse;
use aws_sdk_sts::error::{DisplayErrorContext, SdkError};
use reqwest::header::HeaderMap;

use crate::config::ApiConfig;
use crate::error::{ApiError, ErrorCode};

/// Largest STS answer read (a `GetCallerIdentity` answer is well under 1 KiB).
const MAX_ANSWER: usize = 64 * 1024;

/// Most STS calls one API process makes at once; further logins wait for one to end (no longer
/// than the STS timeout). A call in flight holds the SDK's per-operation state and a connection
/// with its buffers, so a burst of logins would otherwise grow the process by all of them at
/// once (64 concurrent logins against a slow STS grew it by 7 MiB), for no more logins a
/// second: STS answers them one per call either way, and AWS limits its request rate per
/// account.
pub const MAX_CONCURRENT_CALLS: usize = 16;

/// Why STS did not confirm an identity.
#[derive(Debug, thiserror::Error)]
pub enum StsError {
    /// STS answered 4xx: the credentials, token or signature were refused.
    #[error("STS refused the request (HTTP {status}, {code:?})")]
    Rejected {
        /// The HTTP status STS answered.
        status: u16,
        /// The AWS error code, when the body carried one.
        code: Option<String>,
    },
    /// STS could not be reached, timed out, answered 5xx or answered something unreadable.
    #[error("STS is unavailable: {0}")]
    Unavailable(String),
    /// The request could not be built (a fault on our side).
    #[error("could not build the STS request: {0}")]
    Internal(String),
}

impl From<StsError> for ApiError {
    fn from(e: StsError) -> Self {
        match e {
            StsError::Rejected { code, .. } => ApiError::Unauthorized {
                code: ErrorCode::InvalidAwsCredentials,
                detail: match code.as_deref() {
                    None | Some("InvalidClientTokenId") => "Invalid AWS credentials".into(),
                    Some("SignatureDoesNotMatch") => "AWS signature verification failed".into(),
                    Some(other) => format!("AWS authentication failed: {other}"),
                },
            },
            StsError::Unavailable(why) => {
                tracing::warn!(error = %why, "STS unavailable");
                ApiError::Unavailable(
                    "AWS STS could not be reached to verify the credentials; try again shortly"
                        .into(),
                )
            }
            StsError::Internal(why) => ApiError::internal(anyhow::anyhow!(why)),
        }
    }
}

/// The STS clients of one API process, built once at start-up.
#[derive(Debug, Clone)]
pub struct Sts {
    sdk: aws_sdk_sts::Client,
    http: reqwest::Client,
    /// Permits for calls in flight ([`MAX_CONCURRENT_CALLS`]).
    calls: std::sync::Arc<tokio::sync::Semaphore>,
    /// How long a call may take, and so how long a login waits for a permit.
    timeout: std::time::Duration,
}

impl Sts {
    /// Loads the AWS SDK configuration once (region from `AWS_REGION`, endpoint from
    /// `AWS_ENDPOINT_URL_STS`, timeouts from `STS_TIMEOUT_SECONDS`) and builds the HTTP client
    /// that forwards presigned requests (TLS with the system's roots, no redirects, no proxy).
    pub async fn new(config: &ApiConfig) -> Result<Self, reqwest::Error> {
        let timeout = config.sts_timeout;
        let sdk_config = aws_config::defaults(BehaviorVersion::latest())
            .region(aws_config::Region::new(config.aws_region.clone()))
            // Every call brings the caller's credentials; the server has none of its own to use.
            .no_credentials()
            // Per-request credentials must never be served from a cache to another request.
            .identity_cache(IdentityCache::no_cache())
            .retry_config(RetryConfig::standard().with_max_attempts(2))
            .timeout_config(
                TimeoutConfig::builder()
                    .connect_timeout(timeout)
                    .operation_timeout(timeout)
                    .build(),
            )
            .load()
            .await;
        let mut sts_config = aws_sdk_sts::config::Builder::from(&sdk_config);
        if let Some(url) = &config.sts_endpoint {
            sts_config = sts_config.endpoint_url(url);
        }
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .connect_timeout(timeout)
            .timeout(timeout)
            .user_agent(concat!("gpudev-api/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(Self {
            sdk: aws_sdk_sts::Client::from_conf(sts_config.build()),
            http,
            calls: std::sync::Arc::new(tokio::sync::Semaphore::new(MAX_CONCURRENT_CALLS)),
            timeout,
        })
    }

    /// A permit to call STS: at once while fewer than [`MAX_CONCURRENT_CALLS`] calls are in
    /// flight, otherwise once one ends; unavailable if none ended within the STS timeout.
    async fn permit(&self) -> Result<tokio::sync::SemaphorePermit<'_>, StsError> {
        match tokio::time::timeout(self.timeout, self.calls.acquire()).await {
            Ok(Ok(permit)) => Ok(permit),
            Ok(Err(_)) => Err(StsError::Internal("the STS call limiter was closed".into())),
            Err(_) => Err(StsError::Unavailable(format!(
                "{MAX_CONCURRENT_CALLS} logins were being verified with STS and none ended \
                 within the STS timeout"
            ))),
        }
    }

    /// `GetCallerIdentity` signed with the given credentials; the caller's ARN.
    #[tracing::instrument(skip_all)]
    pub async fn caller_identity(
        &self,
        access_key_id: &str,
        secret_access_key: &str,
        session_token: Option<&str>,
    ) -> Result<String, StsError> {
        let _permit = self.permit().await?;
        let credentials = Credentials::new(
            access_key_id,
            secret_access_key,
            session_token.map(str::to_owned),
            None,
            "gpudev-aws-login",
        );
        let answer = self
            .sdk
            .get_caller_identity()
            .customize()
            .config_override(
                aws_sdk_sts::config::Builder::default().credentials_provider(credentials),
            )
            .send()
            .await;
        match answer {
            Ok(out) => out
                .arn()
                .map(str::to_owned)
                .ok_or_else(|| StsError::Unavailable("STS answered without an ARN".into())),
            Err(e) => Err(classify_sdk_error(&e)),
        }
    }

    /// Posts a client-signed `GetCallerIdentity` request to `url` (already checked against the
    /// allowed hosts) and returns the ARN STS confirms. `Host` is set from `url` by the client.
    #[tracing::instrument(skip_all, fields(host = url.host_str().unwrap_or_default()))]
    pub async fn forward_signed(
        &self,
        url: reqwest::Url,
        headers: HeaderMap,
        body: String,
    ) -> Result<String, StsError> {
        let _permit = self.permit().await?;
        let mut resp = self
            .http
            .post(url)
            .headers(headers)
            .body(body)
            .send()
            .await
            .map_err(|e| StsError::Unavailable(format!("{e:#}")))?;
        let status = resp.status();
        let mut answer = Vec::new();
        while let Some(chunk) = resp
            .chunk()
            .await
            .map_err(|e| StsError::Unavailable(format!("reading the answer: {e:#}")))?
        {
            if answer.len() + chunk.len() > MAX_ANSWER {
                return Err(StsError::Unavailable(format!(
                    "the answer is larger than {MAX_ANSWER} bytes"
                )));
            }
            answer.extend_from_slice(&chunk);
        }
        let text = String::from_utf8_lossy(&answer);
        if status.is_success() {
            caller_arn(&text).ok_or_else(|| {
                StsError::Unavailable("STS answered without a GetCallerIdentity result".into())
            })
        } else if status.is_client_error() {
            Err(StsError::Rejected {
                status: status.as_u16(),
                code: error_code(&text),
            })
        } else {
            Err(StsError::Unavailable(format!("STS answered HTTP {status}")))
        }
    }
}

fn classify_sdk_error<E>(e: &SdkError<E, HttpResponse>) -> StsError
where
    E: std::error::Error + Send + Sync + 'static,
{
    if let Some(raw) = e.raw_response() {
        let status = raw.status().as_u16();
        return if (400..500).contains(&status) {
            let body = raw.body().bytes().map(String::from_utf8_lossy);
            StsError::Rejected {
                status,
                code: body.as_deref().and_then(error_code),
            }
        } else {
            StsError::Unavailable(format!("STS answered HTTP {status}"))
        };
    }
    match e {
        SdkError::ConstructionFailure(_) => {
            StsError::Internal(format!("{}", DisplayErrorContext(e)))
        }
        // Dispatch failures (refused, DNS, TLS), timeouts and unreadable answers.
        _ => StsError::Unavailable(format!("{}", DisplayErrorContext(e))),
    }
}

/// The `Arn` of a `GetCallerIdentityResponse/GetCallerIdentityResult` document; `None` for any
/// other document, a missing or repeated `Arn`, or XML that does not parse (DTDs are refused).
pub fn caller_arn(xml: &str) -> Option<String> {
    let doc = roxmltree::Document::parse(xml).ok()?;
    let root = doc.root_element();
    if root.tag_name().name() != "GetCallerIdentityResponse" {
        return None;
    }
    let mut results = root
        .children()
        .filter(|n| n.is_element() && n.tag_name().name() == "GetCallerIdentityResult");
    let result = results.next()?;
    if results.next().is_some() {
        return None;
    }
    let mut arns = result
        .children()
        .filter(|n| n.is_element() && n.tag_name().name() == "Arn");
    let arn = arns.next()?;
    if arns.next().is_some() {
        return None;
    }
    let text = arn.text()?.trim();
    (!text.is_empty()).then(|| text.to_owned())
}

/// The AWS error code (`<Code>` anywhere in the document) of an error answer, when it has one.
pub fn error_code(xml: &str) -> Option<String> {
    let doc = roxmltree::Document::parse(xml).ok()?;
    let code = doc
        .descendants()
        .find(|n| n.is_element() && n.tag_name().name() == "Code")?
        .text()?
        .trim();
    let plausible = !code.is_empty()
        && code.len() <= 64
        && code.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'.');
    plausible.then(|| code.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    const OK: &str = r#"<GetCallerIdentityResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">
  <GetCallerIdentityResult>
    <Arn>arn:aws:sts::123456789012:assumed-role/Dev/alice</Arn>
    <UserId>AROAEXAMPLE:alice</UserId>
    <Account>123456789012</Account>
  </GetCallerIdentityResult>
  <ResponseMetadata><RequestId>01234567-89ab</RequestId></ResponseMetadata>
</GetCallerIdentityResponse>"#;

    #[test]
    fn the_arn_is_read_from_a_get_caller_identity_answer() {
        assert_eq!(
            caller_arn(OK).as_deref(),
            Some("arn:aws:sts::123456789012:assumed-role/Dev/alice")
        );
    }

    #[test]
    fn other_documents_and_ambiguous_answers_give_no_arn() {
        for doc in [
            "",
            "not xml",
            "<AssumeRoleResponse><GetCallerIdentityResult><Arn>arn:x</Arn></GetCallerIdentityResult></AssumeRoleResponse>",
            "<GetCallerIdentityResponse><Arn>arn:x</Arn></GetCallerIdentityResponse>",
            "<GetCallerIdentityResponse><GetCallerIdentityResult><Arn>a</Arn><Arn>b</Arn></GetCallerIdentityResult></GetCallerIdentityResponse>",
            "<GetCallerIdentityResponse><GetCallerIdentityResult><Arn> </Arn></GetCallerIdentityResult></GetCallerIdentityResponse>",
            r#"<!DOCTYPE x [<!ENTITY a "arn">]><GetCallerIdentityResponse><GetCallerIdentityResult><Arn>&a;</Arn></GetCallerIdentityResult></GetCallerIdentityResponse>"#,
        ] {
            assert_eq!(caller_arn(doc), None, "{doc}");
        }
    }

    #[test]
    fn error_codes_are_read_from_aws_and_moto_error_bodies() {
        let aws = r#"<ErrorResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">
  <Error><Type>Sender</Type><Code>SignatureDoesNotMatch</Code><Message>nope</Message></Error>
  <RequestId>x</RequestId></ErrorResponse>"#;
        let moto = "<ErrorResponse><Errors><Error><Code>InvalidClientTokenId</Code>\
                    <Message>The security token included in the request is invalid.</Message>\
                    </Error></Errors></ErrorResponse>";
        assert_eq!(error_code(aws).as_deref(), Some("SignatureDoesNotMatch"));
        assert_eq!(error_code(moto).as_deref(), Some("InvalidClientTokenId"));
        assert_eq!(error_code("<html>proxy error</html>"), None);
        assert_eq!(
            error_code("<Error><Code>two words</Code></Error>"),
            None,
            "a code is never free text"
        );
    }

    #[test]
    fn refusals_map_to_401_with_the_original_details() {
        let detail = |code: Option<&str>| match ApiError::from(StsError::Rejected {
            status: 403,
            code: code.map(str::to_owned),
        }) {
            ApiError::Unauthorized { detail, .. } => detail,
            other => panic!("expected 401, got {other:?}"),
        };
        assert_eq!(detail(None), "Invalid AWS credentials");
        assert_eq!(
            detail(Some("InvalidClientTokenId")),
            "Invalid AWS credentials"
        );
        assert_eq!(
            detail(Some("SignatureDoesNotMatch")),
            "AWS signature verification failed"
        );
        assert_eq!(
            detail(Some("ExpiredToken")),
            "AWS authentication failed: ExpiredToken"
        );
        assert!(matches!(
            ApiError::from(StsError::Unavailable("refused".into())),
            ApiError::Unavailable(_)
        ));
    }
}
