//! The web console's OpenID Connect sign-ins in progress (`console_oidc_signins`): recorded when
//! the browser is sent to the provider, used once when it comes back.

use crate::{Db, StoreError};

/// A sign-in in progress, as the callback needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingSignin {
    /// The issuer the browser was sent to.
    pub issuer: String,
    /// SHA-256 (hex) of the nonce the ID token must carry.
    pub nonce_hash: String,
    /// The redirect URI sent with the authorization request (the code exchange repeats it).
    pub redirect_uri: String,
}

/// Records a sign-in started with `issuer`, valid for `ttl_secs`. Old rows (expired for a day)
/// go in the same statement.
pub async fn start(
    db: &impl Db,
    state_hash: &str,
    code_challenge: &str,
    pending: &PendingSignin,
    ttl_secs: f64,
) -> Result<(), StoreError> {
    db.execute(
        "WITH gone AS (DELETE FROM console_oidc_signins WHERE expires_at < now() - interval '1 day') \
         INSERT INTO console_oidc_signins \
           (state_hash, issuer, code_challenge, nonce_hash, redirect_uri, expires_at) \
         VALUES ($1, $2, $3, $4, $5, now() + make_interval(secs => $6))",
        &[
            &state_hash,
            &pending.issuer,
            &code_challenge,
            &pending.nonce_hash,
            &pending.redirect_uri,
            &ttl_secs,
        ],
    )
    .await?;
    Ok(())
}

/// Uses the sign-in of `state_hash`: one guarded statement that succeeds once, before it
/// expires, and only for the browser whose PKCE verifier hashes to `code_challenge`.
pub async fn redeem(
    db: &impl Db,
    state_hash: &str,
    code_challenge: &str,
) -> Result<Option<PendingSignin>, StoreError> {
    let row = db
        .query_opt(
            "UPDATE console_oidc_signins SET used_at = now() \
             WHERE state_hash = $1 AND code_challenge = $2 \
               AND used_at IS NULL AND expires_at > now() \
             RETURNING issuer, nonce_hash, redirect_uri",
            &[&state_hash, &code_challenge],
        )
        .await?;
    Ok(row.map(|r| PendingSignin {
        issuer: r.get(0),
        nonce_hash: r.get(1),
        redirect_uri: r.get(2),
    }))
}
