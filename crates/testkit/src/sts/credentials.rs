//! Credentials handed out by the STS emulator.

use serde::Deserialize;

/// Temporary credentials of an assumed role, as a presigned STS login would carry them.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Credentials {
    /// `ASIA…` access key id.
    pub access_key_id: String,
    /// The secret that signs requests.
    pub secret_access_key: String,
    /// The session token sent as `x-amz-security-token`.
    pub session_token: String,
    /// `arn:aws:sts::123456789012:assumed-role/ROLE/SESSION`, what GetCallerIdentity answers.
    pub arn: String,
}

/// A long-lived IAM user access key (no session token).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct AccessKey {
    /// `AKIA…` access key id.
    pub access_key_id: String,
    /// The secret that signs requests.
    pub secret_access_key: String,
    /// `arn:aws:iam::123456789012:user/NAME`.
    pub arn: String,
}

/// STS refused a request: the HTTP status and the AWS error code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StsRejection {
    /// The HTTP status, 403 for bad credentials.
    pub status: u16,
    /// The AWS error code, e.g. `InvalidClientTokenId` or `SignatureDoesNotMatch`.
    pub code: String,
}
