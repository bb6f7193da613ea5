//! Signing STS `GetCallerIdentity` for `POST /v1/auth/aws-iam`.
//!
//! The client signs the request with its own credentials (SigV4, the headers `content-type`,
//! `host`, `x-amz-date` and `x-amz-security-token`) and sends the signed request, not the
//! credentials, to the API, which posts it to STS. The signature covers the host and port, so the
//! URL signed here must be exactly the URL the server will post to: the regional endpoint of the
//! caller's region, or the endpoint configured with `AWS_ENDPOINT_URL_STS`.

use std::collections::BTreeMap;
use std::fmt;
use std::time::SystemTime;

use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
use aws_sigv4::sign::v4;
use reqwest::Url;

use crate::error::ClientError;
use gpudev_api_types::auth::{AwsIamRequest, SERVER_ID_HEADER};

/// The form body of `GetCallerIdentity`.
pub const GET_CALLER_IDENTITY_BODY: &str = "Action=GetCallerIdentity&Version=2011-06-15";
/// Its content type.
pub const FORM_CONTENT_TYPE: &str = "application/x-www-form-urlencoded; charset=utf-8";

/// AWS credentials used only to sign, never sent. `Debug` shows the access key id alone.
#[derive(Clone)]
#[allow(
    missing_docs,
    reason = "fields whose names say what they hold go undocumented"
)]
pub struct AwsCredentials {
    pub access_key_id: String,
    pub secret_access_key: String,
    /// Session token of temporary credentials.
    pub session_token: Option<String>,
}

impl fmt::Debug for AwsCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AwsCredentials")
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &"<redacted>")
            .field(
                "session_token",
                &self.session_token.as_ref().map(|_| "<redacted>"),
            )
            .finish()
    }
}

/// The regional STS endpoint of `region` (`https://sts.us-east-1.amazonaws.com/`), with the
/// China partition's domain for `cn-*` regions.
pub fn regional_endpoint(region: &str) -> String {
    let domain = if region.starts_with("cn-") {
        "amazonaws.com.cn"
    } else {
        "amazonaws.com"
    };
    format!("https://sts.{region}.{domain}/")
}

/// Signs `GetCallerIdentity` for `endpoint` in `region` at `time`, for the gpudev server whose
/// id is `server_id` (`GET /v1/auth/aws`): the signature covers [`SERVER_ID_HEADER`] with it, so
/// the request is worth nothing to any other service. The URL is normalised to the endpoint's
/// root (`http://127.0.0.1:4566` becomes `http://127.0.0.1:4566/`) and the very same string is
/// both signed and returned.
pub fn presign_get_caller_identity(
    credentials: &AwsCredentials,
    region: &str,
    endpoint: &str,
    server_id: &str,
    time: SystemTime,
) -> Result<AwsIamRequest, ClientError> {
    let url = Url::parse(endpoint.trim())
        .map_err(|e| ClientError::Invalid(format!("STS endpoint {endpoint:?}: {e}")))?;
    if url.path() != "/" || url.query().is_some() || url.host_str().is_none() {
        return Err(ClientError::Invalid(format!(
            "STS endpoint {endpoint:?} must be a host's root URL such as https://sts.us-east-1.amazonaws.com/"
        )));
    }
    let url = url.to_string();
    let identity = aws_credential_types::Credentials::new(
        &credentials.access_key_id,
        &credentials.secret_access_key,
        credentials.session_token.clone(),
        None,
        "gpudev-client",
    )
    .into();
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(region)
        .name("sts")
        .time(time)
        .settings(SigningSettings::default())
        .build()
        .map_err(|e| ClientError::Invalid(format!("could not sign the STS request: {e}")))?
        .into();
    let signable = SignableRequest::new(
        "POST",
        &url,
        [
            ("content-type", FORM_CONTENT_TYPE),
            (SERVER_ID_HEADER, server_id),
        ]
        .into_iter(),
        SignableBody::Bytes(GET_CALLER_IDENTITY_BODY.as_bytes()),
    )
    .map_err(|e| ClientError::Invalid(format!("could not sign the STS request: {e}")))?;
    let (instructions, _) = sign(signable, &params)
        .map_err(|e| ClientError::Invalid(format!("could not sign the STS request: {e}")))?
        .into_parts();
    let mut headers = BTreeMap::new();
    headers.insert("content-type".to_owned(), FORM_CONTENT_TYPE.to_owned());
    headers.insert(SERVER_ID_HEADER.to_owned(), server_id.to_owned());
    for (name, value) in instructions.headers() {
        headers.insert(name.to_ascii_lowercase(), value.to_owned());
    }
    Ok(AwsIamRequest {
        method: "POST".into(),
        url,
        headers,
        body: GET_CALLER_IDENTITY_BODY.into(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn creds() -> AwsCredentials {
        AwsCredentials {
            access_key_id: "ASIAEXAMPLEEXAMPLE00".into(),
            secret_access_key: "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY".into(),
            session_token: Some("token-token-token".into()),
        }
    }

    #[test]
    fn the_signed_request_carries_a_signature_but_never_the_secret() {
        let req = presign_get_caller_identity(
            &creds(),
            "us-west-2",
            &regional_endpoint("us-west-2"),
            "gpudev.example.com",
            SystemTime::now(),
        )
        .unwrap();
        assert_eq!(req.url, "https://sts.us-west-2.amazonaws.com/");
        assert_eq!(req.body, GET_CALLER_IDENTITY_BODY);
        let auth = &req.headers["authorization"];
        assert!(auth.starts_with("AWS4-HMAC-SHA256 Credential=ASIAEXAMPLEEXAMPLE00/"));
        assert!(auth.contains("/us-west-2/sts/aws4_request"));
        assert!(auth.contains(
            "SignedHeaders=content-type;host;x-amz-date;x-amz-security-token;x-gpudev-server-id"
        ));
        assert_eq!(req.headers["x-gpudev-server-id"], "gpudev.example.com");
        assert_eq!(req.headers["x-amz-security-token"], "token-token-token");
        assert!(req.headers.contains_key("x-amz-date"));
        let all = serde_json::to_string(&req).unwrap();
        assert!(!all.contains("wJalrXUtnFEMI"), "{all}");
        assert!(!format!("{:?}", creds()).contains("wJalrXUtnFEMI"));
    }

    #[test]
    fn a_local_endpoint_is_signed_at_its_root() {
        let req = presign_get_caller_identity(
            &creds(),
            "us-east-1",
            "http://127.0.0.1:4566",
            "gpudev",
            SystemTime::now(),
        )
        .unwrap();
        assert_eq!(req.url, "http://127.0.0.1:4566/");
        assert!(
            presign_get_caller_identity(
                &creds(),
                "us-east-1",
                "http://x/path",
                "gpudev",
                SystemTime::now()
            )
            .is_err()
        );
    }

    #[test]
    fn china_regions_use_their_own_domain() {
        assert_eq!(
            regional_endpoint("cn-north-1"),
            "https://sts.cn-north-1.amazonaws.com.cn/"
        );
    }
}
