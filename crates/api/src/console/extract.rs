//! What a console handler needs before it may act: [`Signed`], a live session, and
//! [`Checked`], a live session and a form carrying that session's CSRF token. Either refusal is
//! answered with its page (sign in; this form has expired) before the handler runs.

use actix_web::dev::Payload;
use actix_web::error::InternalError;
use actix_web::{FromRequest, HttpRequest, HttpResponse, web};
use futures::future::LocalBoxFuture;
use gpudev_store::console::SessionUser;
use serde::de::DeserializeOwned;

use super::{csrf_ok, form_expired, session_of};
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;

/// The signed-in user's live session.
pub(super) struct Signed(pub SessionUser);

/// A form of a live session that carries the session's CSRF token.
pub(super) struct Checked<T> {
    /// The session.
    pub session: SessionUser,
    /// The form as posted.
    pub form: T,
}

/// A form with the CSRF token it carries.
pub(super) trait CsrfForm {
    /// The token as posted (empty when missing).
    fn csrf(&self) -> &str;
}

/// Stops the request with `page` as its answer.
fn answered(page: ApiResult<HttpResponse>) -> actix_web::Error {
    match page {
        Ok(res) => InternalError::from_response("console refusal", res).into(),
        Err(e) => e.into(),
    }
}

fn state_of(req: &HttpRequest) -> Result<web::Data<AppState>, actix_web::Error> {
    req.app_data::<web::Data<AppState>>()
        .cloned()
        .ok_or_else(|| ApiError::internal(anyhow::anyhow!("no application state")).into())
}

async fn session(req: &HttpRequest) -> Result<SessionUser, actix_web::Error> {
    let state = state_of(req)?;
    match session_of(&state, req).await? {
        Some((s, _)) => Ok(s),
        // The sign-in page: `gpu-dev console`, and the OpenID Connect providers where there are.
        None => Err(answered(super::oidc::signed_out_page(&state))),
    }
}

impl FromRequest for Signed {
    type Error = actix_web::Error;
    type Future = LocalBoxFuture<'static, Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let req = req.clone();
        Box::pin(async move { session(&req).await.map(Signed) })
    }
}

impl<T: CsrfForm + DeserializeOwned + 'static> FromRequest for Checked<T> {
    type Error = actix_web::Error;
    type Future = LocalBoxFuture<'static, Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let req = req.clone();
        let form = web::Form::<T>::from_request(&req, payload);
        Box::pin(async move {
            let form = form.await?.into_inner();
            let session = session(&req).await?;
            if !csrf_ok(&session, form.csrf()) {
                return Err(answered(form_expired()));
            }
            Ok(Checked { session, form })
        })
    }
}
