//! An authenticated conversation with the API, renewing the key when needed.
//!
//! The key is renewed before a call when there is none for this server or it expires within
//! five minutes, and after a call the API refused because the key has expired (or is unknown to
//! it). Either way the CLI logs in again once with the same method as the stored key, says so in
//! one line on standard error, and retries the call once. A revoked key or a disabled user is not
//! renewed: that is someone's decision, reported as it is.

use chrono::Utc;
use gpudev_client::ErrorCode;
use gpudev_client::{Client, ClientError};

use crate::auth;
use crate::context::Ctx;
use crate::credentials::{Credentials, LoginMethod};
use crate::error::CliError;
use crate::output;

/// A client with the stored key, renewed at most once per command.
#[derive(Debug)]
pub struct Session<'a> {
    ctx: &'a Ctx,
    credentials: Option<Credentials>,
    renewed: bool,
}

impl<'a> Session<'a> {
    /// Loads the stored key (ignored when it was issued by another server).
    pub fn new(ctx: &'a Ctx) -> Result<Self, CliError> {
        let credentials =
            Credentials::load(&ctx.paths.credentials_file)?.filter(|c| c.is_for(&ctx.api_url));
        Ok(Self {
            ctx,
            credentials,
            renewed: false,
        })
    }

    /// The stored key's id, when known.
    pub fn key_id(&self) -> Option<i64> {
        self.credentials.as_ref().and_then(|c| c.key_id)
    }

    /// Replaces the stored key (after a rotation).
    pub fn store(&mut self, credentials: Credentials) -> Result<(), CliError> {
        credentials.save(&self.ctx.paths.credentials_file)?;
        self.credentials = Some(credentials);
        Ok(())
    }

    /// Forgets the stored key (after revoking it).
    pub fn forget(&mut self) -> Result<(), CliError> {
        Credentials::delete(&self.ctx.paths.credentials_file)?;
        self.credentials = None;
        Ok(())
    }

    /// The stored credentials.
    pub fn credentials(&self) -> Option<&Credentials> {
        self.credentials.as_ref()
    }

    /// A client with a key that is good for at least five more minutes.
    pub async fn client(&mut self) -> Result<Client, CliError> {
        let now = Utc::now();
        let reason = match &self.credentials {
            Some(c) if !c.needs_renewal(now) || self.renewed => {
                return Ok(self.ctx.client.with_api_key(&c.api_key));
            }
            Some(c) if c.expires_at <= now => "Your API key has expired".to_owned(),
            Some(c) => format!(
                "Your API key expires in {}",
                output::duration((c.expires_at - now).num_seconds().max(0).unsigned_abs())
            ),
            None => "Not logged in".to_owned(),
        };
        self.renew(&reason).await
    }

    /// Runs `call` with the key; when the API answers that the key has expired (or does not know
    /// it), logs in again and runs it once more.
    pub async fn call<T>(
        &mut self,
        call: impl AsyncFn(&Client) -> Result<T, ClientError>,
    ) -> Result<T, CliError> {
        let client = self.client().await?;
        match call(&client).await {
            Err(e) if e.is_renewable_auth() && !self.renewed => {
                let reason = match e.code() {
                    Some(ErrorCode::ApiKeyExpired) => "Your API key has expired",
                    _ => "The API did not accept your key",
                };
                let client = self.renew(reason).await?;
                Ok(call(&client).await?)
            }
            other => Ok(other?),
        }
    }

    async fn renew(&mut self, reason: &str) -> Result<Client, CliError> {
        let method = self
            .credentials
            .as_ref()
            .map_or(LoginMethod::AwsIam, |c| c.method);
        self.renewed = true;
        let (credentials, answer) =
            auth::relogin(self.ctx, &self.ctx.client, self.credentials.as_ref())
                .await
                .map_err(|e| match e {
                    CliError::Auth(why) => {
                        CliError::Auth(format!("{reason}, and logging in failed: {why}"))
                    }
                    other => other,
                })?;
        let again = if self.credentials.is_some() {
            " again"
        } else {
            ""
        };
        output::notice(&format!(
            "{reason}; logged in{again} as {} with your {} (new key valid until {}).",
            answer.username,
            if method == LoginMethod::Oidc {
                "OIDC identity"
            } else {
                "AWS identity"
            },
            output::time(answer.expires_at)
        ));
        let client = self.ctx.client.with_api_key(&credentials.api_key);
        self.credentials = Some(credentials);
        Ok(client)
    }
}
