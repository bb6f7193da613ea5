//! `POST /v1/auth/aws-iam`: a client-signed STS `GetCallerIdentity` request in, an API key out.
//!
//! The client signs the request with its own AWS credentials (SigV4) and sends us the method, URL,
//! headers and body; we post it to STS unchanged and STS tells us whose signature it is. The
//! secret key never leaves the client (the scheme of Vault's AWS auth and aws-iam-authenticator).
//!
//! Because we post to whatever URL the client names, the URL is checked first: its `host[:port]`
//! must be one of `STS_ALLOWED_HOSTS` (exact match), it must use https (http only for an allowed
//! loopback address, for local emulators), and it must be the root path with no query. Only the
//! headers a `GetCallerIdentity` signature needs are forwarded; a client `Host` header is dropped
//! (the HTTP client sets it from the checked URL, and the signature covers it). The body must be
//! the `GetCallerIdentity` action and nothing else. STS does not bound the age of a signed POST,
//! so a signature dated more than 15 minutes ago (or 5 minutes ahead) is refused here, before
//! anything is sent. A signed request logs in once: its signature is remembered until it would
//! be too old anyway, and a second use is refused (401 `signature_replayed`).

use std::collections::BTreeMap;
use std::net::IpAddr;

use actix_web::{HttpResponse, get, post, web};
use chrono::{DateTime, NaiveDateTime, Utc};
use reqwest::Url;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};

use gpudev_store::login_signatures;
use sha2::{Digest, Sha256};

use super::issue_key::{self, LoginResponse};
use crate::audit::RequestCtx;
use crate::error::{ApiError, ApiResult, ErrorBody, ErrorCode};
use crate::state::AppState;

pub use gpudev_api_types::auth::{AwsIamRequest, AwsLoginInfo, SERVER_ID_HEADER};

const METHOD: &str = "aws-iam";

/// Headers forwarded to STS (lower case). Anything else the client sends is dropped, and a
/// signature that covers anything else (besides `host`) is refused.
pub const FORWARDED_HEADERS: [&str; 6] = [
    "authorization",
    "content-type",
    "x-amz-date",
    "x-amz-security-token",
    "x-amz-content-sha256",
    SERVER_ID_HEADER,
];

/// Oldest acceptable `x-amz-date`, in seconds before now.
pub const MAX_SIGNATURE_AGE_SECS: i64 = 15 * 60;
/// Furthest acceptable `x-amz-date`, in seconds after now (clock skew).
pub const MAX_FUTURE_SKEW_SECS: i64 = 5 * 60;

/// A request that passed every check and may be posted to STS.
#[derive(Debug)]
pub struct CheckedRequest {
    /// The STS URL (allowed host, root path, no query).
    pub url: Url,
    /// Only the forwarded headers.
    pub headers: HeaderMap,
    /// The `GetCallerIdentity` form body.
    pub body: String,
    /// SHA-256 (hex) of the request's SigV4 signature: one value per signed request.
    pub signature_hash: String,
    /// Until when this request would be accepted (its `x-amz-date` plus the 15 minutes).
    pub acceptable_until: DateTime<Utc>,
}

fn bad(code: ErrorCode, detail: impl Into<String>) -> ApiError {
    ApiError::BadRequest {
        code,
        detail: detail.into(),
    }
}

/// Checks the URL against the allowed hosts: exact `host[:port]`, https (http only for a
/// loopback address that is itself allowed), root path, no query, no credentials.
pub fn check_url(raw: &str, allowed_hosts: &[String]) -> Result<Url, ApiError> {
    let url = Url::parse(raw).map_err(|e| bad(ErrorCode::InvalidStsUrl, format!("url: {e}")))?;
    let host = url
        .host_str()
        .ok_or_else(|| bad(ErrorCode::InvalidStsUrl, "url: no host"))?;
    let authority = match url.port() {
        Some(port) => format!("{host}:{port}"),
        None => host.to_owned(),
    }
    .to_ascii_lowercase();
    if !allowed_hosts
        .iter()
        .any(|h| h.eq_ignore_ascii_case(&authority))
    {
        return Err(bad(
            ErrorCode::StsHostNotAllowed,
            format!(
                "url: {authority} is not an allowed STS endpoint (allowed: {})",
                allowed_hosts.join(", ")
            ),
        ));
    }
    match url.scheme() {
        "https" => {}
        "http" if is_loopback(&url) => {}
        _ => return Err(bad(ErrorCode::InvalidStsUrl, "url: must use https")),
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(bad(
            ErrorCode::InvalidStsUrl,
            "url: must not carry credentials",
        ));
    }
    if url.path() != "/" || url.query().is_some() || url.fragment().is_some() {
        return Err(bad(
            ErrorCode::InvalidStsUrl,
            "url: must be the STS endpoint's root (path /, no query)",
        ));
    }
    Ok(url)
}

fn is_loopback(url: &Url) -> bool {
    // `host_str` writes IPv6 addresses in brackets; names (even `localhost`) are not loopback.
    url.host_str()
        .map(|h| h.trim_start_matches('[').trim_end_matches(']'))
        .and_then(|h| h.parse::<IpAddr>().ok())
        .is_some_and(|ip| ip.is_loopback())
}

/// Checks that the body is the `GetCallerIdentity` action (with its API version) and nothing
/// else, so no other STS action can be run through us.
pub fn check_body(body: &str) -> Result<(), ApiError> {
    let mut action = false;
    let mut version = false;
    for pair in body.trim_end().split('&') {
        match pair.split_once('=') {
            Some(("Action", "GetCallerIdentity")) if !action => action = true,
            Some(("Version", v))
                if !version
                    && !v.is_empty()
                    && v.len() <= 16
                    && v.bytes().all(|b| b.is_ascii_digit() || b == b'-') =>
            {
                version = true;
            }
            _ => {
                return Err(bad(
                    ErrorCode::InvalidStsRequest,
                    "body: must be Action=GetCallerIdentity&Version=2011-06-15",
                ));
            }
        }
    }
    if !(action && version) {
        return Err(bad(
            ErrorCode::InvalidStsRequest,
            "body: must be Action=GetCallerIdentity&Version=2011-06-15",
        ));
    }
    Ok(())
}

/// The `SignedHeaders` of a SigV4 `Authorization` header.
fn signed_headers(authorization: &str) -> Option<Vec<String>> {
    let params = authorization.strip_prefix("AWS4-HMAC-SHA256 ")?;
    params
        .split(',')
        .map(str::trim)
        .find_map(|p| p.strip_prefix("SignedHeaders="))
        .map(|list| list.split(';').map(str::to_ascii_lowercase).collect())
}

/// The `Signature` of a SigV4 `Authorization` header, lower-cased: the HMAC over everything the
/// request signs, so one value per signed request however the header around it is spelled.
fn signature_of(authorization: &str) -> Option<String> {
    let params = authorization.strip_prefix("AWS4-HMAC-SHA256 ")?;
    params
        .split(',')
        .map(str::trim)
        .find_map(|p| p.strip_prefix("Signature="))
        .map(|sig| sig.trim().to_ascii_lowercase())
        .filter(|sig| !sig.is_empty())
}

/// The access key id a signed request claims (`Credential=<id>/<date>/…` of its `authorization`
/// header, whatever its spelling), before any check: what the login limit counts per address.
fn claimed_access_key(headers: &BTreeMap<String, String>) -> &str {
    headers
        .iter()
        .find(|(name, _)| name.eq_ignore_ascii_case("authorization"))
        .and_then(|(_, value)| value.strip_prefix("AWS4-HMAC-SHA256 "))
        .and_then(|params| {
            params
                .split(',')
                .map(str::trim)
                .find_map(|p| p.strip_prefix("Credential="))
        })
        .and_then(|credential| credential.split('/').next())
        .unwrap_or_default()
}

/// Parses `x-amz-date` (`20260101T120000Z`).
fn parse_amz_date(raw: &str) -> Option<DateTime<Utc>> {
    NaiveDateTime::parse_from_str(raw, "%Y%m%dT%H%M%SZ")
        .ok()
        .map(|d| d.and_utc())
}

/// Checks the headers and keeps only those STS needs. Fails with 400 for a missing or unusable
/// signature (or one that does not cover [`SERVER_ID_HEADER`]), and with 401 for one dated
/// outside the accepted window or signed for a server id other than `server_id`.
pub fn check_headers(
    headers: &BTreeMap<String, String>,
    server_id: &str,
    now: DateTime<Utc>,
) -> Result<HeaderMap, ApiError> {
    let mut lower: BTreeMap<String, &str> = BTreeMap::new();
    for (name, value) in headers {
        if lower
            .insert(name.to_ascii_lowercase(), value.as_str())
            .is_some()
        {
            return Err(bad(
                ErrorCode::InvalidStsRequest,
                format!("headers: {name} is given twice"),
            ));
        }
    }
    let authorization = lower.get("authorization").copied().ok_or_else(|| {
        bad(
            ErrorCode::InvalidStsRequest,
            "headers: authorization is missing (the request must be SigV4-signed)",
        )
    })?;
    let signed = signed_headers(authorization).ok_or_else(|| {
        bad(
            ErrorCode::InvalidStsRequest,
            "headers: authorization is not an AWS4-HMAC-SHA256 signature with SignedHeaders",
        )
    })?;
    for name in &signed {
        if name == "host" {
            continue;
        }
        if !FORWARDED_HEADERS.contains(&name.as_str()) {
            return Err(bad(
                ErrorCode::InvalidStsRequest,
                format!(
                    "headers: the signature covers {name}, which is not forwarded (sign only {})",
                    FORWARDED_HEADERS.join(", ")
                ),
            ));
        }
        if !lower.contains_key(name) {
            return Err(bad(
                ErrorCode::InvalidStsRequest,
                format!("headers: signed header {name} is missing"),
            ));
        }
    }
    if !signed.iter().any(|h| h == "host") || !signed.iter().any(|h| h == "x-amz-date") {
        return Err(bad(
            ErrorCode::InvalidStsRequest,
            "headers: the signature must cover host and x-amz-date",
        ));
    }
    // The login is for this server: a request signed for another service that verifies AWS
    // identities the same way (without this header, or with its own id) is worth nothing here.
    if !signed.iter().any(|h| h == SERVER_ID_HEADER) {
        return Err(bad(
            ErrorCode::InvalidStsRequest,
            format!(
                "headers: the signature must cover {SERVER_ID_HEADER}, set to this server's id \
                 (GET /v1/auth/aws gives it; gpu-dev does this from version 0.2)"
            ),
        ));
    }
    let signed_for = lower.get(SERVER_ID_HEADER).copied().unwrap_or_default();
    // Not a secret (GET /v1/auth/aws publishes it): a plain comparison.
    if signed_for != server_id {
        return Err(ApiError::Unauthorized {
            code: ErrorCode::WrongServerId,
            detail: format!(
                "the request was signed for server id {signed_for:?}, not this server's \
                 ({server_id:?}): it was meant for another service; sign a login for this one"
            ),
        });
    }
    let date = lower
        .get("x-amz-date")
        .and_then(|d| parse_amz_date(d))
        .ok_or_else(|| {
            bad(
                ErrorCode::InvalidStsRequest,
                "headers: x-amz-date must look like 20260101T120000Z",
            )
        })?;
    let age = now.signed_duration_since(date).num_seconds();
    if !(-MAX_FUTURE_SKEW_SECS..=MAX_SIGNATURE_AGE_SECS).contains(&age) {
        return Err(ApiError::Unauthorized {
            code: ErrorCode::SignatureExpired,
            detail: format!(
                "the signed request is dated {date} and the server's time is {now}: it must be \
                 at most 15 minutes old (and at most 5 minutes ahead); sign a new one"
            ),
        });
    }
    let mut out = HeaderMap::new();
    for name in FORWARDED_HEADERS {
        if let Some(value) = lower.get(name) {
            let value = HeaderValue::from_str(value).map_err(|_| {
                bad(
                    ErrorCode::InvalidStsRequest,
                    format!("headers: {name} is not a valid header value"),
                )
            })?;
            out.insert(HeaderName::from_static(name), value);
        }
    }
    Ok(out)
}

/// Every check of `req`, in the order that sends nothing anywhere unless all pass.
pub fn check(
    req: &AwsIamRequest,
    allowed_hosts: &[String],
    server_id: &str,
    now: DateTime<Utc>,
) -> Result<CheckedRequest, ApiError> {
    if !req.method.eq_ignore_ascii_case("POST") {
        return Err(bad(
            ErrorCode::InvalidStsRequest,
            "method: only a signed POST of GetCallerIdentity is accepted",
        ));
    }
    let url = check_url(&req.url, allowed_hosts)?;
    check_body(&req.body)?;
    let headers = check_headers(&req.headers, server_id, now)?;
    // check_headers refused the request unless both are present and readable.
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| {
                bad(
                    ErrorCode::InvalidStsRequest,
                    format!("headers: {name} is missing"),
                )
            })
    };
    let signature = signature_of(header("authorization")?).ok_or_else(|| {
        bad(
            ErrorCode::InvalidStsRequest,
            "headers: authorization carries no Signature",
        )
    })?;
    let signature_hash = hex::encode(Sha256::digest(signature.as_bytes()));
    let signed_at = parse_amz_date(header("x-amz-date")?).ok_or_else(|| {
        bad(
            ErrorCode::InvalidStsRequest,
            "headers: x-amz-date must look like 20260101T120000Z",
        )
    })?;
    Ok(CheckedRequest {
        url,
        headers,
        body: req.body.clone(),
        signature_hash,
        acceptable_until: signed_at + chrono::Duration::seconds(MAX_SIGNATURE_AGE_SECS),
    })
}

/// Logs in with a presigned STS `GetCallerIdentity` request: the server forwards it to STS, the
/// role must be `ALLOWED_AWS_ROLE` (or `ADMIN_AWS_ROLE`), and a new API key is issued.
#[utoipa::path(post, path = "/v1/auth/aws-iam", tag = "auth",
    request_body = AwsIamRequest,
    responses(
        (status = 200, body = LoginResponse, description = "a new API key (shown once)"),
        (status = 400, body = ErrorBody, description = "not an allowed STS endpoint, or not a signed GetCallerIdentity request"),
        (status = 401, body = ErrorBody, description = "STS refused the signature, it is older than 15 minutes, or it was used already"),
        (status = 403, body = ErrorBody, description = "wrong role, an IAM user, or a disabled user"),
        (status = 429, body = ErrorBody, description = "too many logins from this address"),
        (status = 503, body = ErrorBody, description = "STS cannot be reached"),
    ))]
#[post("/aws-iam")]
pub async fn aws_iam(
    state: web::Data<AppState>,
    ctx: RequestCtx,
    body: web::Json<AwsIamRequest>,
) -> ApiResult<HttpResponse> {
    let result = login(&state, &ctx, &body).await;
    issue_key::respond(&state, METHOD, result)
}

async fn login(
    state: &AppState,
    ctx: &RequestCtx,
    req: &AwsIamRequest,
) -> ApiResult<LoginResponse> {
    if let Some(ip) = ctx.client_ip {
        state
            .limits
            .check_login(ip, claimed_access_key(&req.headers), &state.metrics)
            .await?;
    }
    let checked = match check(
        req,
        &state.config.sts_allowed_hosts,
        &state.config.aws_login_server_id,
        Utc::now(),
    ) {
        Ok(c) => c,
        Err(e) => {
            if let ApiError::Unauthorized { code, .. } = &e {
                issue_key::audit_denied(state, ctx, METHOD, "anonymous", code.as_str(), None).await;
            }
            return Err(e);
        }
    };
    let arn = match state
        .sts
        .forward_signed(checked.url, checked.headers, checked.body)
        .await
    {
        Ok(arn) => arn,
        Err(e) => {
            let e = ApiError::from(e);
            if matches!(e, ApiError::Unauthorized { .. }) {
                issue_key::audit_denied(state, ctx, METHOD, "anonymous", "sts_refused", None).await;
            }
            return Err(e);
        }
    };
    // Each signed request logs in once: whoever copies one (from a log, a proxy, a server the
    // user was tricked into logging in to) cannot use it again, on any replica.
    let fresh = {
        let db = state.db().await?;
        login_signatures::claim(&*db, &checked.signature_hash, checked.acceptable_until).await?
    };
    if !fresh {
        issue_key::audit_denied(
            state,
            ctx,
            METHOD,
            "anonymous",
            "signature_replayed",
            Some(&arn),
        )
        .await;
        return Err(ApiError::Unauthorized {
            code: ErrorCode::SignatureReplayed,
            detail: "This signed request has been used to log in already; sign a new one".into(),
        });
    }
    issue_key::complete_login(state, ctx, METHOD, &arn).await
}

/// What `gpu-dev login` signs into its `aws-iam` request so that it is valid here only. Public:
/// the server id names this installation and is no secret.
#[utoipa::path(get, path = "/v1/auth/aws", tag = "auth",
    responses((status = 200, body = AwsLoginInfo, description = "the header to sign and its value")))]
#[get("/aws")]
pub async fn aws_login_info(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok().json(AwsLoginInfo {
        server_id_header: SERVER_ID_HEADER.to_owned(),
        server_id: state.config.aws_login_server_id.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn allowed() -> Vec<String> {
        vec![
            "sts.amazonaws.com".into(),
            "sts.us-east-1.amazonaws.com".into(),
            "127.0.0.1:4566".into(),
            "localhost:4566".into(),
        ]
    }

    #[test]
    fn the_claimed_access_key_is_read_from_the_credential() {
        let mut headers = BTreeMap::new();
        headers.insert(
            "Authorization".to_owned(),
            "AWS4-HMAC-SHA256 SignedHeaders=host, Credential=ASIAEXAMPLE/20260101/us-east-1/sts/aws4_request, Signature=s"
                .to_owned(),
        );
        assert_eq!(claimed_access_key(&headers), "ASIAEXAMPLE");
        assert_eq!(claimed_access_key(&BTreeMap::new()), "");
    }

    #[test]
    fn a_signature_is_the_same_however_its_header_is_spelled() {
        let plain = "AWS4-HMAC-SHA256 Credential=AKIA/20260101/us-east-1/sts/aws4_request, \
                     SignedHeaders=host;x-amz-date, Signature=abc123";
        let respelled = "AWS4-HMAC-SHA256 Signature=ABC123 ,Credential=AKIA/20260101/us-east-1/sts/aws4_request,SignedHeaders=host;x-amz-date";
        assert_eq!(signature_of(plain).as_deref(), Some("abc123"));
        assert_eq!(signature_of(respelled), signature_of(plain));
        assert_eq!(
            signature_of("AWS4-HMAC-SHA256 Credential=x, Signature="),
            None
        );
        assert_eq!(signature_of("Bearer abc"), None);
    }

    fn code_of(r: Result<impl std::fmt::Debug, ApiError>) -> &'static str {
        match r {
            Err(ApiError::BadRequest { code, .. } | ApiError::Unauthorized { code, .. }) => {
                code.as_str()
            }
            other => panic!("expected 400 or 401, got {other:?}"),
        }
    }

    #[test]
    fn allowed_sts_urls_pass() {
        for url in [
            "https://sts.amazonaws.com/",
            "https://sts.amazonaws.com",
            "https://STS.us-east-1.amazonaws.com:443/",
            "http://127.0.0.1:4566/",
        ] {
            assert!(check_url(url, &allowed()).is_ok(), "{url}");
        }
    }

    #[test]
    fn other_hosts_schemes_and_paths_are_refused() {
        for (url, code) in [
            ("https://evil.example.com/", "sts_host_not_allowed"),
            (
                "https://sts.amazonaws.com.evil.example.com/",
                "sts_host_not_allowed",
            ),
            ("https://sts.amazonaws.com:8443/", "sts_host_not_allowed"),
            ("https://127.0.0.1:4567/", "sts_host_not_allowed"),
            ("http://sts.amazonaws.com/", "invalid_sts_url"),
            ("http://localhost:4566/", "invalid_sts_url"),
            ("https://user:pw@sts.amazonaws.com/", "invalid_sts_url"),
            ("https://sts.amazonaws.com/other", "invalid_sts_url"),
            (
                "https://sts.amazonaws.com/?Action=AssumeRole",
                "invalid_sts_url",
            ),
            ("ftp://sts.amazonaws.com/", "invalid_sts_url"),
            ("not a url", "invalid_sts_url"),
        ] {
            assert_eq!(code_of(check_url(url, &allowed())), code, "{url}");
        }
    }

    #[test]
    fn only_the_get_caller_identity_body_passes() {
        assert!(check_body("Action=GetCallerIdentity&Version=2011-06-15").is_ok());
        assert!(check_body("Version=2011-06-15&Action=GetCallerIdentity").is_ok());
        for body in [
            "",
            "Action=GetCallerIdentity",
            "Action=AssumeRole&Version=2011-06-15",
            "Action=GetCallerIdentity&Version=2011-06-15&RoleArn=x",
            "Action=GetCallerIdentity&Action=GetCallerIdentity&Version=2011-06-15",
        ] {
            assert_eq!(code_of(check_body(body)), "invalid_sts_request", "{body:?}");
        }
    }

    fn signed(date: &str) -> BTreeMap<String, String> {
        BTreeMap::from([
            (
                "Authorization".into(),
                "AWS4-HMAC-SHA256 Credential=ASIA/20260101/us-east-1/sts/aws4_request, \
                 SignedHeaders=content-type;host;x-amz-date;x-amz-security-token;x-gpudev-server-id, \
                 Signature=abc"
                    .into(),
            ),
            ("X-Gpudev-Server-Id".into(), SERVER.into()),
            (
                "Content-Type".into(),
                "application/x-www-form-urlencoded; charset=utf-8".into(),
            ),
            ("X-Amz-Date".into(), date.into()),
            ("X-Amz-Security-Token".into(), "token".into()),
            ("Host".into(), "evil.example.com".into()),
            ("User-Agent".into(), "aws-sdk".into()),
        ])
    }

    const SERVER: &str = "gpudev.example.com";

    fn at(s: &str) -> DateTime<Utc> {
        parse_amz_date(s).unwrap()
    }

    #[test]
    fn signed_headers_are_kept_and_host_and_others_dropped() {
        let out =
            check_headers(&signed("20260101T120000Z"), SERVER, at("20260101T120500Z")).unwrap();
        let mut names: Vec<&str> = out.keys().map(HeaderName::as_str).collect();
        names.sort_unstable();
        assert_eq!(
            names,
            [
                "authorization",
                "content-type",
                "x-amz-date",
                "x-amz-security-token",
                "x-gpudev-server-id"
            ]
        );
    }

    #[test]
    fn a_request_signed_for_another_server_or_without_its_id_is_refused() {
        let now = at("20260101T120000Z");
        let h = signed("20260101T120000Z");
        assert_eq!(
            code_of(check_headers(&h, "another", now)),
            "wrong_server_id"
        );

        // Present but not signed: anyone could have added it.
        let mut h = signed("20260101T120000Z");
        h.insert(
            "Authorization".into(),
            "AWS4-HMAC-SHA256 Credential=x, SignedHeaders=content-type;host;x-amz-date;\
             x-amz-security-token, Signature=s"
                .into(),
        );
        assert_eq!(
            code_of(check_headers(&h, SERVER, now)),
            "invalid_sts_request"
        );

        // Signed but absent.
        let mut h = signed("20260101T120000Z");
        h.remove("X-Gpudev-Server-Id");
        assert_eq!(
            code_of(check_headers(&h, SERVER, now)),
            "invalid_sts_request"
        );
    }

    #[test]
    fn stale_or_future_dates_are_401_and_the_window_edges_pass() {
        let h = signed("20260101T120000Z");
        assert!(check_headers(&h, SERVER, at("20260101T121500Z")).is_ok());
        assert!(check_headers(&h, SERVER, at("20260101T115500Z")).is_ok());
        assert_eq!(
            code_of(check_headers(&h, SERVER, at("20260101T121501Z"))),
            "signature_expired"
        );
        assert_eq!(
            code_of(check_headers(&h, SERVER, at("20260101T115459Z"))),
            "signature_expired"
        );
    }

    #[test]
    fn unsigned_requests_and_unforwardable_signed_headers_are_400() {
        let now = at("20260101T120000Z");
        let mut h = signed("20260101T120000Z");
        h.remove("Authorization");
        assert_eq!(
            code_of(check_headers(&h, SERVER, now)),
            "invalid_sts_request"
        );

        let mut h = signed("20260101T120000Z");
        h.insert(
            "Authorization".into(),
            "AWS4-HMAC-SHA256 Credential=x, SignedHeaders=host;user-agent;x-amz-date, Signature=s"
                .into(),
        );
        assert_eq!(
            code_of(check_headers(&h, SERVER, now)),
            "invalid_sts_request"
        );

        let mut h = signed("20260101T120000Z");
        h.remove("X-Amz-Security-Token");
        assert_eq!(
            code_of(check_headers(&h, SERVER, now)),
            "invalid_sts_request"
        );

        let mut h = signed("yesterday");
        h.insert("authorization".into(), "dup".into());
        assert_eq!(
            code_of(check_headers(&h, SERVER, now)),
            "invalid_sts_request"
        );

        let h = signed("yesterday");
        assert_eq!(
            code_of(check_headers(&h, SERVER, now)),
            "invalid_sts_request"
        );
    }
}
