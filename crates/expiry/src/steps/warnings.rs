//! Warnings before a reservation ends.
//!
//! For each active reservation within the largest threshold, the most urgent level it has
//! reached is claimed with one conditional update ([`store::claim_warning`]): the level (and
//! the less urgent ones it skipped) join `warnings_sent` and a `warning` event is recorded —
//! only if the level was not sent yet, so overlapping runs warn once. Delivery follows the
//! claim: at most once, and a failed delivery is counted and written into the event instead of
//! retried. Extending a reservation clears `warnings_sent` (the API's extend), which re-arms
//! every level for the new end.

use gpudev_store::expiry as store;
use kube::ResourceExt;
use serde_json::json;

use crate::k8s;
use crate::notify::{Notice, PodNotifier};
use crate::run::{ACTOR, Expiry, StepError, Summary};
use crate::webhook::WarningPayload;

/// The label of a level: `30m`.
pub fn level_label(minutes: u32) -> String {
    format!("{minutes}m")
}

/// Whom a notice is about, for the webhook.
pub(crate) struct Recipient {
    pub(crate) username: String,
    pub(crate) name: Option<String>,
    pub(crate) gpu_type: String,
}

impl<N: PodNotifier> Expiry<N> {
    /// Delivers a claimed notice: into each of the reservation's Pods (unless in-pod warnings
    /// are off) and to the webhook. At most once: failures are counted and returned in the
    /// delivery record, not retried.
    pub(crate) async fn deliver_notice(
        &self,
        s: &mut Summary,
        to: &Recipient,
        notice: &Notice,
    ) -> serde_json::Value {
        let id = notice.reservation_id;
        let mut delivered = 0u64;
        let mut failures = Vec::new();
        if self.cfg.in_pod_warnings {
            match k8s::pods_of(&self.kube, &self.cfg.namespace, id).await {
                Ok(pods) => {
                    for pod in pods
                        .iter()
                        .filter(|p| p.metadata.deletion_timestamp.is_none())
                    {
                        match self
                            .notifier
                            .deliver(&self.cfg.namespace, &pod.name_any(), notice)
                            .await
                        {
                            Ok(()) => delivered += 1,
                            Err(e) => failures.push(e.to_string()),
                        }
                    }
                }
                Err(e) => failures.push(e.to_string()),
            }
        }
        s.notices_delivered += delivered;
        s.notice_failures += u64::try_from(failures.len()).unwrap_or(0);
        for f in &failures {
            tracing::warn!(reservation_id = %id, error = %f, "warning not delivered into the pod");
        }
        let webhook = match &self.webhook {
            None => "off",
            Some(hook) => {
                let payload = WarningPayload {
                    event: if notice.idle {
                        "reservation.idle_warning"
                    } else {
                        "reservation.expiry_warning"
                    },
                    reservation_id: id,
                    username: to.username.clone(),
                    name: to.name.clone(),
                    gpu_type: to.gpu_type.clone(),
                    level: notice.level.clone(),
                    minutes_left: notice.minutes_left,
                    expires_at: notice.expires_at,
                    message: notice.text(),
                };
                match hook.post(&payload).await {
                    Ok(()) => {
                        s.webhooks_posted += 1;
                        "posted"
                    }
                    Err(e) => {
                        tracing::warn!(reservation_id = %id, error = %e, "warning webhook failed");
                        s.webhook_failures += 1;
                        "failed"
                    }
                }
            }
        };
        json!({
            "pods_notified": delivered,
            "pod_failures": failures,
            "webhook": webhook,
        })
    }

    /// Sends every warning that is due.
    pub(crate) async fn send_warnings(&self, s: &mut Summary) -> Result<(), StepError> {
        let Some(&widest) = self.cfg.warning_minutes.first() else {
            return Ok(());
        };
        let active = {
            let db = self.pool.get().await?;
            store::active(&**db).await?
        };
        for r in active
            .iter()
            .filter(|r| r.seconds_left > 0.0 && r.seconds_left <= f64::from(widest) * 60.0)
        {
            // Thresholds run most distant first, so the last reached is the most urgent.
            let reached: Vec<u32> = self
                .cfg
                .warning_minutes
                .iter()
                .copied()
                .filter(|m| r.seconds_left <= f64::from(*m) * 60.0)
                .collect();
            let Some(&urgent) = reached.last() else {
                continue;
            };
            let level = level_label(urgent);
            if r.warnings_sent.contains(&level) {
                continue;
            }
            let levels: Vec<String> = reached.iter().copied().map(level_label).collect();
            let claimed = {
                let db = self.pool.get().await?;
                store::claim_warning(
                    &**db,
                    r.reservation_id,
                    &level,
                    &levels,
                    f64::from(urgent) * 60.0,
                    ACTOR,
                )
                .await?
            };
            let Some(claimed) = claimed else {
                continue;
            };
            s.warnings += 1;
            let notice = Notice {
                reservation_id: r.reservation_id,
                level: level.clone(),
                minutes_left: claimed.minutes_left,
                expires_at: claimed.expires_at,
                idle: false,
            };
            let to = Recipient {
                username: r.username.to_string(),
                name: r.name.as_ref().map(ToString::to_string),
                gpu_type: r.gpu_type.to_string(),
            };
            let delivery = self.deliver_notice(s, &to, &notice).await;
            let db = self.pool.get().await?;
            store::record_warning_delivery(&**db, r.reservation_id, &level, &delivery).await?;
            tracing::info!(
                reservation_id = %r.reservation_id,
                level = %level,
                minutes_left = claimed.minutes_left,
                "expiry warning sent"
            );
        }
        Ok(())
    }
}
