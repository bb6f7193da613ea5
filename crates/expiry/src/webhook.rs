//! Posting warnings to an outside webhook (`EXPIRY_WEBHOOK_URL`), e.g. a chat integration.
//!
//! The body names the reservation, its owner and the time left; it carries no secret and no
//! environment value. Redirects are not followed and every POST has a timeout, so a slow or
//! hostile endpoint cannot hold the run up.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;
use uuid::Uuid;

use crate::config::WebhookUrl;

/// The JSON body of a warning.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[allow(
    missing_docs,
    reason = "fields whose names say what they hold go undocumented"
)]
pub struct WarningPayload {
    /// Always `reservation.expiry_warning`.
    pub event: &'static str,
    pub reservation_id: Uuid,
    /// Its owner.
    pub username: String,
    /// Its display name.
    pub name: Option<String>,
    pub gpu_type: String,
    /// The warning level (`30m`, …).
    pub level: String,
    /// Whole minutes left.
    pub minutes_left: i64,
    /// When it ends.
    pub expires_at: DateTime<Utc>,
    /// The text shown in the dev box.
    pub message: String,
}

/// Why a POST failed.
#[derive(Debug, thiserror::Error)]
pub enum WebhookError {
    /// The request could not be made or timed out.
    #[error("webhook {url}: {reason}")]
    Request {
        /// Scheme and host only.
        url: String,
        /// What happened (without the URL, which may hold a token).
        reason: String,
    },
    /// The endpoint answered with an error status.
    #[error("webhook {url} answered {status}")]
    Status {
        /// Scheme and host only.
        url: String,
        /// The HTTP status.
        status: u16,
    },
}

/// A configured webhook.
#[derive(Debug, Clone)]
pub struct Webhook {
    url: WebhookUrl,
    http: reqwest::Client,
}

impl Webhook {
    /// A webhook posting to `url` with `timeout` per request.
    pub fn new(url: WebhookUrl, timeout: Duration) -> Result<Self, WebhookError> {
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("gpudev-expiry/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| WebhookError::Request {
                url: url.to_string(),
                reason: e.to_string(),
            })?;
        Ok(Self { url, http })
    }

    /// Posts one warning.
    pub async fn post(&self, payload: &WarningPayload) -> Result<(), WebhookError> {
        let response = self
            .http
            .post(self.url.expose().clone())
            .json(payload)
            .send()
            .await
            .map_err(|e| WebhookError::Request {
                url: self.url.to_string(),
                // reqwest's message includes the URL: keep only the kind of failure.
                reason: if e.is_timeout() {
                    "timed out".to_owned()
                } else if e.is_connect() {
                    "could not connect".to_owned()
                } else {
                    "request failed".to_owned()
                },
            })?;
        let status = response.status();
        if status.is_success() {
            Ok(())
        } else {
            Err(WebhookError::Status {
                url: self.url.to_string(),
                status: status.as_u16(),
            })
        }
    }
}
