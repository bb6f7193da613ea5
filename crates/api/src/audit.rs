//! Audit records for state-changing calls: who, what, on which resource, the request id, the client
//! address and the outcome. Never a secret.

use actix_web::{FromRequest, HttpMessage, HttpRequest, dev::Payload, web};
use gpudev_store::audit::{self, AuditEntry};
use serde_json::Value;
use std::future::{Ready, ready};

use crate::auth::Caller;
use crate::middleware::RequestId;
use crate::state::AppState;

/// Request facts every audit record carries; extract it in a handler with `ctx: RequestCtx`.
#[derive(Debug, Clone, Default)]
#[allow(
    missing_docs,
    reason = "fields whose names say what they hold go undocumented"
)]
pub struct RequestCtx {
    pub request_id: Option<String>,
    /// The client's address: the peer, or the client a trusted proxy reports
    /// ([`crate::client_ip`]).
    pub client_addr: Option<String>,
    /// The client's IP, for per-address rate limits.
    pub client_ip: Option<std::net::IpAddr>,
}

impl RequestCtx {
    /// The facts of `req`.
    pub fn of(req: &HttpRequest) -> Self {
        let client = req
            .peer_addr()
            .map(|peer| match req.app_data::<web::Data<AppState>>() {
                Some(state) if !state.config.trusted_proxies.is_empty() => {
                    // An unreadable value cannot be skipped (what a proxy appended may be in
                    // it, and the client's own entries before it): then only the peer is known.
                    let forwarded: Option<Vec<&str>> = req
                        .headers()
                        .get_all("x-forwarded-for")
                        .map(|v| v.to_str().ok())
                        .collect();
                    match forwarded {
                        Some(values) => state.config.trusted_proxies.client(peer.ip(), values),
                        None => peer.ip(),
                    }
                }
                _ => peer.ip(),
            });
        RequestCtx {
            request_id: req.extensions().get::<RequestId>().map(|r| r.0.clone()),
            client_addr: client.map(|ip| ip.to_string()),
            client_ip: client,
        }
    }
}

impl FromRequest for RequestCtx {
    type Error = actix_web::Error;
    type Future = Ready<Result<Self, actix_web::Error>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(Ok(Self::of(req)))
    }
}

/// One audit record, described by the handler.
#[derive(Debug, Clone)]
pub struct Audit<'a> {
    /// Action name (`reservation.submit`, `key.revoke`, `login`, …).
    pub action: &'a str,
    /// Kind of resource.
    pub target_type: Option<&'a str>,
    /// Resource id.
    pub target_id: Option<String>,
    /// `success`, `denied` or `error`.
    pub outcome: &'a str,
    /// Extra, non-secret facts.
    pub details: Option<Value>,
}

/// Writes an audit record with `db` (pass the handler's transaction to make it part of the change).
/// `caller` is `None` for logins before the user is known; `actor` then names who tried. The
/// method and issuer recorded are the caller key's, unless `auth_method` names another.
pub async fn record(
    db: &impl gpudev_store::Db,
    caller: Option<&Caller>,
    actor: &str,
    auth_method: Option<&str>,
    ctx: &RequestCtx,
    a: Audit<'_>,
) -> Result<(), gpudev_store::StoreError> {
    let issuer = caller.and_then(|c| c.key_auth_issuer.as_deref());
    record_with_issuer(db, caller, actor, auth_method, issuer, ctx, a).await
}

/// [`record`] with the OIDC issuer given explicitly (for logins, before any key exists).
pub async fn record_with_issuer(
    db: &impl gpudev_store::Db,
    caller: Option<&Caller>,
    actor: &str,
    auth_method: Option<&str>,
    auth_issuer: Option<&str>,
    ctx: &RequestCtx,
    a: Audit<'_>,
) -> Result<(), gpudev_store::StoreError> {
    let who = Actor {
        user_id: caller.map(|c| c.user_id),
        name: caller.map(|c| c.username.as_str()).unwrap_or(actor),
        auth_method: auth_method.or(caller.map(|c| c.key_auth_method.as_str())),
        auth_issuer,
    };
    record_by(db, &who, ctx, a).await
}

/// Who performs an audited action: an API caller ([`Actor::from`] a [`Caller`]), or the user of
/// a console session.
#[derive(Debug, Clone, Copy)]
pub struct Actor<'a> {
    /// The acting user, when known.
    pub user_id: Option<i64>,
    /// Their name (or who tried, for refused logins).
    pub name: &'a str,
    /// How they authenticated (`aws-iam`, `oidc`, `console_session`, …).
    pub auth_method: Option<&'a str>,
    /// The OIDC issuer of that authentication, if any.
    pub auth_issuer: Option<&'a str>,
}

impl<'a> From<&'a Caller> for Actor<'a> {
    fn from(c: &'a Caller) -> Self {
        Actor {
            user_id: Some(c.user_id),
            name: c.username.as_str(),
            auth_method: Some(c.key_auth_method.as_str()),
            auth_issuer: c.key_auth_issuer.as_deref(),
        }
    }
}

/// Writes an audit record of `actor`'s action with `db`.
pub async fn record_by(
    db: &impl gpudev_store::Db,
    actor: &Actor<'_>,
    ctx: &RequestCtx,
    a: Audit<'_>,
) -> Result<(), gpudev_store::StoreError> {
    audit::record(db, &entry(actor, ctx, &a)).await.map(|_| ())
}

/// The entry [`record_by`] writes (and [`record_many`] for each record).
pub fn entry<'a>(actor: &Actor<'a>, ctx: &'a RequestCtx, a: &'a Audit<'_>) -> AuditEntry<'a> {
    AuditEntry {
        actor_user_id: actor.user_id,
        actor: actor.name,
        auth_method: actor.auth_method,
        auth_issuer: actor.auth_issuer,
        action: a.action,
        target_type: a.target_type,
        target_id: a.target_id.as_deref(),
        outcome: a.outcome,
        request_id: ctx.request_id.as_deref(),
        client_addr: ctx.client_addr.as_deref(),
        details: a.details.clone(),
    }
}

/// Writes the records of several authenticated requests in one statement, as [`record`] would
/// write each.
pub async fn record_many(
    db: &impl gpudev_store::Db,
    records: &[(&Caller, &RequestCtx, Audit<'_>)],
) -> Result<(), gpudev_store::StoreError> {
    let entries: Vec<AuditEntry<'_>> = records
        .iter()
        .map(|(caller, ctx, a)| entry(&Actor::from(*caller), ctx, a))
        .collect();
    audit::record_many(db, &entries).await.map(|_| ())
}
