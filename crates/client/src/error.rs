//! What can go wrong talking to the API.

use std::error::Error as _;

use gpudev_api_types::ErrorCode;

/// A failed API call.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The API answered with an error: its status, its stable `code` and its `detail` sentence.
    #[error("{detail}")]
    Api {
        /// HTTP status.
        status: u16,
        /// Stable code (`not_found`, `api_key_expired`, …); [`ErrorCode::Unknown`] for a code this
        /// build does not know.
        code: ErrorCode,
        /// What went wrong, written for the user.
        detail: String,
        /// Seconds to wait before retrying (429 and 503 answers).
        retry_after: Option<u64>,
        /// With `booking_unavailable`: the earliest start that could be booked instead.
        earliest_start: Option<chrono::DateTime<chrono::Utc>>,
    },
    /// The API could not be reached (refused, DNS, TLS).
    #[error("could not reach the gpudev API at {url}: {reason}")]
    Unreachable {
        /// The API base URL.
        url: String,
        /// The innermost cause, in a few words.
        reason: String,
    },
    /// The API did not answer in time.
    #[error("the gpudev API at {url} did not answer within {seconds} s")]
    Timeout {
        /// The API base URL.
        url: String,
        /// The timeout.
        seconds: u64,
    },
    /// The answer was not what the API sends (a proxy's error page, a different service, a
    /// version mismatch). Only the status and a short reason are kept, never the raw body.
    #[error("unexpected answer from {url} (HTTP {status}): {reason}")]
    Unexpected {
        /// The API base URL.
        url: String,
        /// HTTP status.
        status: u16,
        /// Why it could not be read.
        reason: String,
    },
    /// The base URL or a value given to the client is unusable.
    #[error("{0}")]
    Invalid(String),
}

impl ClientError {
    /// The API's error code, when the API answered with one.
    pub fn code(&self) -> Option<ErrorCode> {
        match self {
            ClientError::Api { code, .. } => Some(*code),
            _ => None,
        }
    }

    /// The HTTP status, when there was an answer.
    pub fn status(&self) -> Option<u16> {
        match self {
            ClientError::Api { status, .. } | ClientError::Unexpected { status, .. } => {
                Some(*status)
            }
            _ => None,
        }
    }

    /// True when the API refused who the caller is (as opposed to what was asked): a missing,
    /// unknown, expired or revoked key, a disabled user, or a refused login.
    pub fn is_auth(&self) -> bool {
        match self {
            ClientError::Api { status, code, .. } => {
                *status == 401 || (*status == 403 && code.is_auth())
            }
            _ => false,
        }
    }

    /// True when logging in again would help: the key expired, or the server does not know it.
    pub fn is_renewable_auth(&self) -> bool {
        self.code().is_some_and(ErrorCode::is_renewable_auth)
    }

    /// True for a 404 answer.
    pub fn is_not_found(&self) -> bool {
        matches!(self, ClientError::Api { status: 404, .. })
    }

    pub(crate) fn from_reqwest(
        url: &str,
        timeout: std::time::Duration,
        e: &reqwest::Error,
    ) -> Self {
        if e.is_timeout() {
            return ClientError::Timeout {
                url: url.to_owned(),
                seconds: timeout.as_secs(),
            };
        }
        // reqwest's own message names the URL and the method; the innermost cause says why.
        let mut reason = e.to_string();
        let mut source = e.source();
        while let Some(s) = source {
            reason = s.to_string();
            source = s.source();
        }
        ClientError::Unreachable {
            url: url.to_owned(),
            reason,
        }
    }
}
