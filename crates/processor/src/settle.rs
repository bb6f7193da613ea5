//! Settling a `preparing` reservation from what its Pods show: `active` once every Pod is
//! Ready (with the address, port and SSH command), `failed` when a Pod cannot start, and —
//! past `POD_READY_TIMEOUT_SECONDS` — back to the queue once if it could not be scheduled, or
//! failed.

use chrono::Utc;
use gpudev_cluster::capacity::{instance_type, node_address};
use gpudev_cluster::names;
use gpudev_cluster::ops;
use gpudev_domain::ReservationStatus;
use gpudev_store::StoreError;
use gpudev_store::reservations::{self, Reservation, Transition};
use k8s_openapi::api::core::v1::{Event, Node, Pod, Service};
use kube::api::ListParams;
use kube::{Api, ResourceExt};
use uuid::Uuid;

use crate::error::{ProcessorError, Result};
use crate::pods::{ReservationState, combine, summarize_events};
use crate::processor::{ACTOR, Fenced, Processor};
use gpudev_store::scheduling::{self as db, Connection};

/// What settling did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Settled {
    /// Nothing to do (not preparing, or still on its way).
    Unchanged,
    /// It became active.
    Activated,
    /// It failed.
    Failed,
    /// It went back to the queue.
    Requeued,
}

impl Processor {
    /// Looks at a `preparing` reservation's Pods and moves it on when they say so. With
    /// `timeouts`, a reservation past `POD_READY_TIMEOUT_SECONDS` is requeued or failed too.
    /// `pods` are its Pods when the caller has them (else they are listed). Callers hold the
    /// objects lock.
    pub(crate) async fn settle(
        &self,
        r: &Reservation,
        pods: Option<Vec<Pod>>,
        timeouts: bool,
    ) -> Result<Settled> {
        if r.status != ReservationStatus::Preparing {
            return Ok(Settled::Unchanged);
        }
        let pods = match pods {
            Some(p) => p,
            None => {
                ops::list_selected(
                    &self.pods_api(),
                    &gpudev_cluster::labels::selector_for(r.reservation_id),
                )
                .await?
            }
        };
        let expected = usize::try_from(r.node_count.max(1)).unwrap_or(1);
        let refs: Vec<&Pod> = pods.iter().collect();
        let state = combine(&refs, expected);
        match state {
            ReservationState::Ready => self.activate(r, &pods).await,
            ReservationState::Failed(why) => {
                let events = self.events_of(&pods).await;
                let reason = format!("the dev box could not start: {why}");
                let detail = if events.is_empty() {
                    reason.clone()
                } else {
                    format!("{reason} (pod events: {events})")
                };
                self.fail(r.reservation_id, &reason, Some(&detail), "pod")
                    .await?;
                Ok(Settled::Failed)
            }
            other if timeouts && self.timed_out(r) => self.time_out(r, &pods, other).await,
            ReservationState::Unschedulable(why) => {
                let detail = format!("waiting for the node to take the dev box: {why}");
                self.set_detail(r.reservation_id, &detail).await?;
                Ok(Settled::Unchanged)
            }
            _ => Ok(Settled::Unchanged),
        }
    }

    fn timed_out(&self, r: &Reservation) -> bool {
        let limit = chrono::Duration::from_std(self.inner.config.pod_ready_timeout)
            .unwrap_or(chrono::Duration::MAX);
        r.admitted_at.is_some_and(|t| Utc::now() - t > limit)
    }

    async fn time_out(
        &self,
        r: &Reservation,
        pods: &[Pod],
        state: ReservationState,
    ) -> Result<Settled> {
        let secs = self.inner.config.pod_ready_timeout.as_secs();
        let events = self.events_of(pods).await;
        let with_events = |text: String| {
            if events.is_empty() {
                text
            } else {
                format!("{text} (pod events: {events})")
            }
        };
        let not_placed = match &state {
            ReservationState::Unschedulable(why) => Some(why.clone()),
            ReservationState::Missing => Some("its pods do not exist".to_owned()),
            _ => None,
        };
        let Some(why) = not_placed else {
            let what = match state {
                ReservationState::Starting(Some(reason)) => format!(" ({reason})"),
                _ => String::new(),
            };
            let reason = format!("the dev box was not ready within {secs} s{what}");
            self.fail(
                r.reservation_id,
                &reason,
                Some(&with_events(reason.clone())),
                "timeout",
            )
            .await?;
            return Ok(Settled::Failed);
        };
        let requeued_before = {
            let db = self.db().await?;
            db::requeue_count(&**db, r.reservation_id).await?
        };
        if requeued_before > 0 {
            let reason =
                format!("the dev box could not be scheduled within {secs} s, twice: {why}");
            self.fail(
                r.reservation_id,
                &reason,
                Some(&with_events(reason.clone())),
                "unschedulable",
            )
            .await?;
            return Ok(Settled::Failed);
        }
        let reason = format!("not scheduled within {secs} s ({why}); back in the queue");
        let leader = self.leader()?;
        let moved = {
            let client = leader.lock().await?;
            match reservations::transition(
                &*client,
                r.reservation_id,
                Transition {
                    to: ReservationStatus::Queued,
                    reason: Some(&reason),
                    actor: ACTOR,
                },
            )
            .await
            {
                Ok(_) => true,
                Err(StoreError::Transition(_) | StoreError::NotFound(_)) => false,
                Err(e) => return Err(leader.classify(e.into())),
            }
        };
        if !moved {
            return Ok(Settled::Unchanged);
        }
        tracing::warn!(reservation_id = %r.reservation_id, %reason, "reservation requeued");
        self.clean_up(r.reservation_id, ReservationStatus::Queued, None)
            .await?;
        Ok(Settled::Requeued)
    }

    async fn set_detail(&self, id: Uuid, detail: &str) -> Result<()> {
        let leader = self.leader()?;
        let client = leader.lock().await?;
        db::set_detail(&*client, id, ReservationStatus::Preparing, detail)
            .await
            .fenced(&leader)
    }

    /// The newest Events of the given Pods, as one line (empty when there are none or they
    /// cannot be read: they only decorate a failure).
    async fn events_of(&self, pods: &[Pod]) -> String {
        let api: Api<Event> =
            Api::namespaced(self.inner.kube.clone(), &self.inner.config.namespace);
        let mut all = Vec::new();
        for pod in pods {
            let fields = format!("involvedObject.name={}", pod.name_any());
            match api.list(&ListParams::default().fields(&fields)).await {
                Ok(list) => all.extend(list.items),
                Err(e) => tracing::debug!(error = %e, "pod events unavailable"),
            }
        }
        summarize_events(&all, 5)
    }

    /// Marks a reservation whose Pods are all Ready `active`, with how to reach it.
    async fn activate(&self, r: &Reservation, pods: &[Pod]) -> Result<Settled> {
        let connection = self.connection(r, pods).await?;
        let leader = self.leader()?;
        let activated = {
            let mut client = leader.lock().await?;
            let tx = client.transaction().await.fenced(&leader)?;
            let activated = match reservations::transition(
                &tx,
                r.reservation_id,
                Transition {
                    to: ReservationStatus::Active,
                    reason: Some("the dev box is ready"),
                    actor: ACTOR,
                },
            )
            .await
            {
                Ok(now) => Some(now),
                Err(StoreError::Transition(_) | StoreError::NotFound(_)) => None,
                Err(e) => return Err(leader.classify(e.into())),
            };
            if activated.is_some() {
                db::record_connection(&tx, r.reservation_id, &connection)
                    .await
                    .fenced(&leader)?;
            }
            tx.commit().await.fenced(&leader)?;
            activated
        };
        let Some(now) = activated else {
            return Ok(Settled::Unchanged);
        };
        let metrics = &self.inner.metrics;
        if let Some(launched) = now.launched_at {
            let waited = (launched - now.created_at).num_milliseconds() as f64 / 1000.0;
            metrics
                .queue_wait
                .with_label_values(&[now.gpu_type.as_str()])
                .observe(waited.max(0.0));
            if let Some(admitted) = now.admitted_at {
                let ready = (launched - admitted).num_milliseconds() as f64 / 1000.0;
                metrics.pod_ready.observe(ready.max(0.0));
            }
        }
        tracing::info!(reservation_id = %r.reservation_id, ssh = %connection.ssh_command, "reservation active");
        Ok(Settled::Activated)
    }

    /// Where node 0's sshd answers: the node's address and the SSH Service's NodePort.
    async fn connection(&self, r: &Reservation, pods: &[Pod]) -> Result<Connection> {
        let total = u32::try_from(r.node_count.max(1)).unwrap_or(1);
        let first = names::pod_name(r.reservation_id, 0, total);
        let pod = pods
            .iter()
            .find(|p| p.name_any() == first)
            .ok_or_else(|| ProcessorError::Transient(format!("pod {first} is not listed")))?;
        let node_name = pod
            .spec
            .as_ref()
            .and_then(|s| s.node_name.clone())
            .ok_or_else(|| ProcessorError::Transient(format!("pod {first} is not bound")))?;
        let nodes: Api<Node> = Api::all(self.inner.kube.clone());
        let node = ops::get_opt(&nodes, &node_name)
            .await?
            .ok_or_else(|| ProcessorError::Transient(format!("node {node_name} is gone")))?;
        let node_ip = node_address(&node)
            .or_else(|| pod.status.as_ref().and_then(|s| s.host_ip.clone()))
            .ok_or_else(|| ProcessorError::Transient(format!("node {node_name} has no address")))?;
        let service_name = names::ssh_service_name(&first);
        let service = ops::get_opt(&self.services_api(), &service_name)
            .await?
            .ok_or_else(|| {
                ProcessorError::Transient(format!("service {service_name} is missing"))
            })?;
        let ssh_port = node_port(&service, "ssh").ok_or_else(|| {
            ProcessorError::Transient(format!("service {service_name} has no SSH node port"))
        })?;
        let jupyter_url = if r.jupyter_enabled {
            let token = self.jupyter_token(r).await?;
            node_port(&service, "jupyter")
                .map(|port| format!("http://{node_ip}:{port}/lab?token={}", token.expose()))
        } else {
            None
        };
        Ok(Connection {
            ssh_command: format!("ssh -p {ssh_port} dev@{node_ip}"),
            node_ip,
            node_port: ssh_port,
            jupyter_url,
            instance_type: instance_type(&node),
        })
    }

    /// The Jupyter URL of an active reservation, when its Service has the port.
    pub(crate) async fn jupyter_url(&self, r: &Reservation) -> Result<Option<String>> {
        let Some(ip) = r.node_ip.clone() else {
            return Ok(None);
        };
        let total = u32::try_from(r.node_count.max(1)).unwrap_or(1);
        let service_name = names::ssh_service_name(&names::pod_name(r.reservation_id, 0, total));
        let Some(service) = ops::get_opt(&self.services_api(), &service_name).await? else {
            return Ok(None);
        };
        let token = self.jupyter_token(r).await?;
        Ok(node_port(&service, "jupyter")
            .map(|port| format!("http://{ip}:{port}/lab?token={}", token.expose())))
    }
}

fn node_port(service: &Service, port_name: &str) -> Option<i32> {
    service
        .spec
        .as_ref()?
        .ports
        .as_ref()?
        .iter()
        .find(|p| p.name.as_deref() == Some(port_name))
        .and_then(|p| p.node_port)
}
