//! Idle dev boxes (ADR 18).
//!
//! The API keeps each box's idle stretch from its agent's reports; this step acts on it. A box
//! idle for its limit less the warning time is warned about once per stretch (claimed with
//! one guarded update, delivered like an expiry warning: into the box and to the webhook); a
//! box still idle at its limit, warned at least the warning time before, is ended like an
//! expiry (Pods, snapshot, disk) with the reason "idle", after a re-check under the
//! reservation's lock. Activity or `gpu-dev keep-alive` in between ends the stretch, and with
//! it the countdown. A box whose agent went silent is never ended for that: it gets a note
//! instead, once per silence.

use gpudev_domain::idle::SILENT_AFTER;
use gpudev_store::activity::{self, IdleBox};
use gpudev_store::expiry as store;

use super::expire::{Ended, LOCK};
use super::warnings::Recipient;
use crate::notify::{Notice, PodNotifier};
use crate::run::{ACTOR, Expiry, StepError, Summary};

/// How long agent reports are kept.
const REPORT_HISTORY_SECS: f64 = 2.0 * 3600.0;

/// The reason an idle box's reservation ends with.
pub const IDLE_REASON: &str = "idle";

impl<N: PodNotifier> Expiry<N> {
    /// Notes silent agents, purges old reports, warns about and releases idle boxes.
    pub(crate) async fn handle_idle(&self, s: &mut Summary) -> Result<(), StepError> {
        let fresh = SILENT_AFTER.as_secs_f64();
        let idle = {
            let db = self.pool.get().await?;
            let (silent, noted) = activity::note_silent_agents(&**db, fresh, ACTOR).await?;
            s.agents_silent = silent;
            s.agents_silent_noted = noted;
            s.activity_reports_purged = activity::purge_reports(&**db, REPORT_HISTORY_SECS).await?;
            if !self.cfg.idle.enabled() {
                return Ok(());
            }
            activity::idle_boxes(&**db, fresh).await?
        };
        for b in idle {
            let Some(limit) = self.cfg.idle.limit_for(b.idle_minutes) else {
                continue;
            };
            let limit_secs = f64::from(limit) * 60.0;
            let warn_secs = f64::from(self.cfg.idle.warning_for(limit)) * 60.0;
            let result = match b.seconds_since_warning {
                None if b.idle_seconds >= limit_secs - warn_secs => {
                    self.warn_idle(s, &b, (limit_secs - b.idle_seconds).max(warn_secs))
                        .await
                }
                Some(since) if b.idle_seconds >= limit_secs && since >= warn_secs => {
                    self.release_idle(s, &b, limit_secs, warn_secs).await
                }
                _ => Ok(()),
            };
            if let Err(e) = result {
                s.error(&format!("idle reservation {}", b.reservation_id), e);
                if s.database_unavailable() {
                    break;
                }
            }
        }
        Ok(())
    }

    async fn warn_idle(
        &self,
        s: &mut Summary,
        b: &IdleBox,
        release_in_secs: f64,
    ) -> Result<(), StepError> {
        let claimed = {
            let db = self.pool.get().await?;
            activity::claim_idle_warning(
                &**db,
                b.reservation_id,
                b.idle_since,
                release_in_secs,
                ACTOR,
            )
            .await?
        };
        let Some(release_at) = claimed else {
            return Ok(()); // used meanwhile, or another run warned
        };
        s.idle_warnings += 1;
        let notice = Notice {
            reservation_id: b.reservation_id,
            level: "idle".to_owned(),
            minutes_left: (release_in_secs / 60.0).ceil() as i64,
            expires_at: release_at,
            idle: true,
        };
        let to = Recipient {
            username: b.username.to_string(),
            name: b.name.clone(),
            gpu_type: b.gpu_type.to_string(),
        };
        let delivery = self.deliver_notice(s, &to, &notice).await;
        let db = self.pool.get().await?;
        store::record_warning_delivery(&**db, b.reservation_id, "idle", &delivery).await?;
        tracing::info!(reservation_id = %b.reservation_id, %release_at, "idle warning sent");
        Ok(())
    }

    async fn release_idle(
        &self,
        s: &mut Summary,
        b: &IdleBox,
        limit_secs: f64,
        warn_secs: f64,
    ) -> Result<(), StepError> {
        let mut db = self.pool.get().await?;
        let tx = db.transaction().await?;
        if !store::try_lock(&*tx, LOCK, b.reservation_id).await? {
            s.skipped_busy += 1;
            return Ok(());
        }
        let fresh = SILENT_AFTER.as_secs_f64();
        if !activity::still_idle(&*tx, b.reservation_id, limit_secs, warn_secs, fresh).await? {
            return Ok(()); // used or kept alive meanwhile
        }
        let Some(r) = store::active_one(&*tx, b.reservation_id).await? else {
            return Ok(());
        };
        let ended: Ended = self.end_reservation(&tx, &r, IDLE_REASON).await?;
        tx.commit().await?;
        ended.add_to(s);
        if ended.transitioned {
            s.idle_released += 1;
        }
        tracing::info!(reservation_id = %b.reservation_id, user = %b.username, "released: idle");
        Ok(())
    }
}
