//! The live parts: `/ui/events`, a server-sent-events stream of the signed-in user's
//! reservations that `console.js` (served from `/ui/console.js`, our only script) follows with
//! an `EventSource`.
//!
//! Every [`POLL`] the stream checks that its session is still live and reads the user's
//! reservations through the same function as the page; it sends a `jobs` event only when what
//! the page shows changed, and a comment otherwise (so a closed browser is noticed). A session
//! that ended gets a `signedout` event and the stream closes. A stream lasts [`STREAM_FOR`] at
//! most, and ends when its replica starts to drain; the browser then reconnects by itself. The capacity page's stream
//! (`/ui/events?capacity`) sends `capacity` events instead, read as `GET /v1/gpu/availability`
//! reads it.

use std::sync::Arc;
use std::time::{Duration, Instant};

use actix_web::http::header;
use actix_web::web::Bytes;
use actix_web::{HttpRequest, HttpResponse, web};
use gpudev_store::console;

use super::jobs::rows;
use super::{capacity, session_of, signed_out};
use crate::error::ApiResult;
use crate::state::AppState;

/// How often a stream looks for changes.
pub(super) const POLL: Duration = Duration::from_secs(2);
/// How long one stream lasts before the browser reconnects.
pub(super) const STREAM_FOR: Duration = Duration::from_secs(300);
/// How long the browser waits before reconnecting, in milliseconds.
const RECONNECT_MS: u32 = 3000;

const SCRIPT: &str = include_str!("../../templates/console/console.js");

/// One stream's state between ticks.
struct Live {
    state: Arc<AppState>,
    session_hash: String,
    /// Capacity instead of reservations.
    capacity: bool,
    last: Option<String>,
    started: Instant,
    ticks: u64,
    done: bool,
}

pub(super) async fn events(
    state: web::Data<AppState>,
    req: HttpRequest,
) -> ApiResult<HttpResponse> {
    let Some((_, session_hash)) = session_of(&state, &req).await? else {
        return signed_out();
    };
    let live = Live {
        state: state.into_inner(),
        session_hash,
        capacity: req.query_string().split('&').any(|p| p == "capacity"),
        last: None,
        started: Instant::now(),
        ticks: 0,
        done: false,
    };
    let stream = futures::stream::unfold(live, |mut live| async move {
        if live.done {
            return None;
        }
        if live.ticks > 0 {
            tokio::time::sleep(POLL).await;
        }
        live.ticks += 1;
        let chunk = live.tick().await;
        Some((Ok::<_, actix_web::Error>(Bytes::from(chunk)), live))
    });
    Ok(HttpResponse::Ok()
        .content_type("text/event-stream")
        .insert_header((header::CACHE_CONTROL, "no-store"))
        // Proxies that buffer answers (nginx) pass this one through as it comes.
        .insert_header(("X-Accel-Buffering", "no"))
        .streaming(stream))
}

impl Live {
    /// What to send this tick.
    async fn tick(&mut self) -> String {
        let mut out = String::new();
        if self.ticks == 1 {
            out.push_str(&format!("retry: {RECONNECT_MS}\n\n"));
        }
        // A replica that is stopping ends its streams, so the browsers reconnect to another
        // while it drains instead of holding its shutdown up.
        if self.started.elapsed() >= STREAM_FOR || self.state.is_draining() {
            self.done = true;
            return out;
        }
        let session = match self.state.db().await {
            Ok(db) => console::session(&*db, &self.session_hash).await,
            Err(_) => {
                out.push_str(": the database is unavailable\n\n");
                return out;
            }
        };
        let session = match session {
            Ok(Some(s)) => s,
            Ok(None) => {
                self.done = true;
                out.push_str("event: signedout\ndata: {}\n\n");
                return out;
            }
            Err(e) => {
                tracing::warn!(error = %e, "console stream: session check failed");
                out.push_str(": try again\n\n");
                return out;
            }
        };
        let (event, json) = if self.capacity {
            (
                "capacity",
                capacity(&self.state)
                    .await
                    .map(|c| serde_json::to_string(&c)),
            )
        } else {
            (
                "jobs",
                rows(&self.state, &session)
                    .await
                    .map(|j| serde_json::to_string(&j)),
            )
        };
        let json = match json {
            Ok(json) => json,
            Err(e) => {
                tracing::warn!(error = %e, event, "console stream: reading failed");
                out.push_str(": try again\n\n");
                return out;
            }
        };
        match json {
            Ok(json) if self.last.as_deref() != Some(json.as_str()) => {
                out.push_str("event: ");
                out.push_str(event);
                out.push_str("\ndata: ");
                out.push_str(&json);
                out.push_str("\n\n");
                self.last = Some(json);
            }
            _ => out.push_str(":\n\n"),
        }
        out
    }
}

pub(super) async fn script() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/javascript; charset=utf-8")
        .insert_header((header::CACHE_CONTROL, "public, max-age=3600"))
        .body(SCRIPT)
}
