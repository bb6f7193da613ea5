//! The driver: makes the cluster hold what an admitted reservation needs, and nothing of a
//! reservation that ended.
//!
//! fetch (the reservation, its keys and env) → build ([`gpudev_cluster`], pure) → apply →
//! record. Per Pod, in the order [`gpudev_cluster::owner`] prescribes: the Secret, the Pod
//! (pinned to its admitted node), then the Services owned by the Pod, then the Secret's owner.
//! Every step first looks at what exists (deterministic names), so running the driver again —
//! after a crash, a redelivered message, a lost response — creates nothing twice.

use std::collections::BTreeMap;
use std::num::NonZeroU32;

use gpudev_cluster::ops::{self, ManagedObjects, OpsError, check_owner, create_or_get};
use gpudev_cluster::owner::{adopt, is_owned_by, owner_of, ownership_patch};
use gpudev_cluster::{
    DiskClaimSpec, DiskMount, JupyterToken, PodManifests, ReservationSpec, disk_claim, labels,
    pin_to_node,
};
use gpudev_domain::{AgentToken, DiskName, EnvVars, ReservationStatus, Username};
use gpudev_store::reservations::StoredSecrets;
use gpudev_store::reservations::{self, Reservation, Transition};
use gpudev_store::{ReservationSecrets, SealError, StoreError, disks};
use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Pod, Secret, Service};
use kube::api::{Patch, PatchParams};
use kube::{Api, ResourceExt};
use rand::distr::{Alphanumeric, SampleString};
use uuid::Uuid;

use crate::error::{ProcessorError, Result};
use crate::processor::{ACTOR, Fenced, Processor};
use gpudev_store::scheduling as db;

/// The agent token a dev box Secret holds, if any.
fn agent_token_in(secret: &Secret) -> Option<AgentToken> {
    let raw = secret
        .data
        .as_ref()?
        .get(gpudev_cluster::secret::AGENT_TOKEN_KEY)?;
    AgentToken::parse(std::str::from_utf8(&raw.0).ok()?).ok()
}

/// What a drive did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Driven {
    /// Objects created.
    pub created: usize,
    /// Objects patched (ownership).
    pub patched: usize,
}

impl Processor {
    pub(crate) fn pods_api(&self) -> Api<Pod> {
        Api::namespaced(self.inner.kube.clone(), &self.inner.config.namespace)
    }

    pub(crate) fn services_api(&self) -> Api<Service> {
        Api::namespaced(self.inner.kube.clone(), &self.inner.config.namespace)
    }

    pub(crate) fn secrets_api(&self) -> Api<Secret> {
        Api::namespaced(self.inner.kube.clone(), &self.inner.config.namespace)
    }

    /// Drives a `preparing` reservation; a permanent problem fails it (with the reason) instead
    /// of being returned. `existing` is what is known to exist already (may be empty).
    pub(crate) async fn drive_or_fail(
        &self,
        r: &Reservation,
        existing: &ManagedObjects,
    ) -> Result<Driven> {
        match self.drive(r, existing).await {
            Ok(driven) => Ok(driven),
            Err(e) if !e.is_transient() => {
                tracing::warn!(reservation_id = %r.reservation_id, error = %e, "reservation cannot start");
                self.fail(
                    r.reservation_id,
                    &format!("could not start: {e}"),
                    None,
                    "driver",
                )
                .await?;
                Ok(Driven::default())
            }
            Err(e) => Err(e),
        }
    }

    /// Creates whatever is missing of `r`'s objects.
    #[tracing::instrument(skip_all, fields(reservation_id = %r.reservation_id))]
    pub(crate) async fn drive(&self, r: &Reservation, existing: &ManagedObjects) -> Result<Driven> {
        let mut spec = self.spec_for(r, true).await?;
        spec.agent = self.agent_for(r, existing).await?;
        let mut plans = spec
            .pod_plans()
            .map_err(|e| ProcessorError::Permanent(e.to_string()))?;
        // The plans are checked before the disk is touched; then the disk's record (created if
        // need be) names the claim to mount.
        if let Some(name) = &r.disk_name {
            spec.disk = Some(self.ensure_disk(r, &spec.username, name).await?);
            plans = spec
                .pod_plans()
                .map_err(|e| ProcessorError::Permanent(e.to_string()))?;
        }
        let id = r.reservation_id;
        let find = |name: &str| existing.pods.iter().find(|p| p.name_any() == name);
        let mut driven = Driven::default();
        for (index, plan) in plans.iter().enumerate() {
            let node = r.node_names.get(index).ok_or_else(|| {
                ProcessorError::Permanent(format!(
                    "node {index} of the reservation has no placement"
                ))
            })?;
            let mut manifests = PodManifests::build(plan);
            pin_to_node(&mut manifests.pod, node);

            let known_secret = existing
                .secrets
                .iter()
                .find(|s| s.name_any() == plan.secret_name())
                .cloned();
            let (pod, secret) = match find(plan.pod_name()) {
                Some(pod) => {
                    check_owner(pod, id)?;
                    (pod.clone(), known_secret)
                }
                None => {
                    let secret = match known_secret {
                        Some(s) => s,
                        None => {
                            let made =
                                create_or_get(&self.secrets_api(), &manifests.secret, id).await?;
                            driven.created += usize::from(made.created);
                            made.object
                        }
                    };
                    let made = create_or_get(&self.pods_api(), &manifests.pod, id).await?;
                    driven.created += usize::from(made.created);
                    (made.object, Some(secret))
                }
            };
            if pod.metadata.deletion_timestamp.is_some() {
                return Err(ProcessorError::Transient(format!(
                    "pod {} is still terminating; it will be created again",
                    plan.pod_name()
                )));
            }
            let owner = owner_of(&pod).ok_or_else(|| {
                ProcessorError::Transient(format!("pod {} has no uid yet", plan.pod_name()))
            })?;
            manifests.adopt_by(&owner);

            let has_service = existing
                .services
                .iter()
                .any(|s| s.name_any() == plan.ssh_service_name());
            if !has_service {
                let made = create_or_get(&self.services_api(), &manifests.ssh_service, id).await?;
                driven.created += usize::from(made.created);
            }
            if let Some(headless) = &manifests.headless_service {
                let known = existing
                    .services
                    .iter()
                    .find(|s| s.name_any() == plan.headless_service_name())
                    .cloned();
                let current = match known {
                    Some(s) => s,
                    None => {
                        let made = create_or_get(&self.services_api(), headless, id).await?;
                        driven.created += usize::from(made.created);
                        made.object
                    }
                };
                if !is_owned_by(&current, &owner.uid) {
                    let mut owners = current.clone();
                    adopt(&mut owners, owner.clone());
                    let refs = owners.metadata.owner_references.unwrap_or_default();
                    self.patch_owners(&self.services_api(), &current.name_any(), &refs)
                        .await?;
                    driven.patched += 1;
                }
            }
            let secret = match secret {
                Some(s) => s,
                None => {
                    let made = create_or_get(&self.secrets_api(), &manifests.secret, id).await?;
                    driven.created += usize::from(made.created);
                    made.object
                }
            };
            self.record_agent_token_of(r, spec.agent.as_ref(), &secret)
                .await?;
            if !is_owned_by(&secret, &owner.uid) {
                self.patch_owners(
                    &self.secrets_api(),
                    &secret.name_any(),
                    std::slice::from_ref(&owner),
                )
                .await?;
                driven.patched += 1;
            }
        }
        if driven.created > 0 {
            tracing::info!(created = driven.created, "dev box objects created");
        }
        Ok(driven)
    }

    async fn patch_owners<K>(
        &self,
        api: &Api<K>,
        name: &str,
        owners: &[k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference],
    ) -> Result<()>
    where
        K: kube::Resource<DynamicType = ()> + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
    {
        let kind = match K::kind(&()) {
            std::borrow::Cow::Borrowed(s) => s,
            std::borrow::Cow::Owned(_) => "object",
        };
        api.patch(
            name,
            &PatchParams::default(),
            &Patch::Merge(ownership_patch(owners)),
        )
        .await
        .map_err(|e| OpsError::kube("patch", kind, name, e))?;
        Ok(())
    }

    /// Everything the builders need, from the reservation row, the catalog and the
    /// configuration, but for the disk: its claim comes from the disk's record
    /// ([`Self::ensure_disk`]). `starting`: for a dev box about to be created, which must have
    /// an SSH key ([`Self::keys_to_start`]).
    pub(crate) async fn spec_for(
        &self,
        r: &Reservation,
        starting: bool,
    ) -> Result<ReservationSpec> {
        let config = &self.inner.config;
        let gpu = config.catalog.get(&r.gpu_type).cloned().ok_or_else(|| {
            ProcessorError::Permanent(format!("GPU type {} is not offered", r.gpu_type))
        })?;
        let username = r.username.clone();
        let image = r.image.clone().unwrap_or_else(|| config.dev_image.clone());
        let secrets = self.secrets_of(r).await?;
        let env = EnvVars::parse(secrets.env)
            .map_err(|e| ProcessorError::Permanent(format!("environment: {e}")))?;
        let command = secrets.command;
        let authorized_keys = if starting {
            self.keys_to_start(r).await?
        } else {
            self.keys_of_running(r).await?
        };
        let jupyter = if r.jupyter_enabled {
            Some(self.jupyter_token(r).await?)
        } else {
            None
        };
        Ok(ReservationSpec {
            namespace: config.namespace.clone(),
            reservation_id: r.reservation_id,
            username,
            gpu,
            gpu_count: u32::try_from(r.gpu_count)
                .map_err(|_| ProcessorError::Permanent("negative GPU count".into()))?,
            nodes: u32::try_from(r.node_count)
                .map_err(|_| ProcessorError::Permanent("negative node count".into()))?,
            image,
            env,
            authorized_keys,
            // Filled in by `drive` from the disk's record, which it creates when missing.
            disk: None,
            jupyter,
            command,
            gpu_type_label: config.gpu_type_label.clone(),
            // Set by `drive` only: the token is written once, when the Secret is made.
            agent: None,
        })
    }

    /// The `authorized_keys` of a dev box about to be created. A box nobody could log in to is
    /// not started: with no key at all, the reservation fails at once when no attempt could
    /// help (no key registered, GitHub has no such user, or none of theirs), with how to fix
    /// it. While GitHub cannot be asked, each failed attempt shows in the detailed status and
    /// the events at once, and the next comes within the time left; past
    /// `GITHUB_KEYS_DEADLINE_SECONDS` from the admission the reservation fails with the reason.
    async fn keys_to_start(&self, r: &Reservation) -> Result<String> {
        let keys = self.inner.keys.authorized_keys(&self.inner.pool, r).await?;
        if keys.count > 0 {
            return Ok(keys.file);
        }
        const FIX: &str = "register an SSH public key with `gpu-dev ssh-keys add` (or name a \
             GitHub user who publishes one) and reserve again";
        let problems = keys.describe_problems();
        let deadline = self.inner.config.github_keys_deadline;
        let since = r.admitted_at.unwrap_or_else(chrono::Utc::now);
        let give_up_at = since + chrono::Duration::from_std(deadline).unwrap_or_default();
        let left = (give_up_at - chrono::Utc::now()).to_std().ok();
        match left {
            Some(left) if keys.may_improve() => {
                let detail = format!(
                    "no SSH key yet, attempt {{attempt}} to fetch GitHub keys failed: {problems}; \
                     trying again until {} ({} s after admission, GITHUB_KEYS_DEADLINE_SECONDS), \
                     then the reservation fails",
                    give_up_at.format("%H:%M:%S UTC"),
                    deadline.as_secs()
                );
                let details = serde_json::json!({
                    "github_keys": keys
                        .problems
                        .iter()
                        .map(|(login, p)| serde_json::json!({"login": login, "problem": p.to_string()}))
                        .collect::<Vec<_>>(),
                    "give_up_at": give_up_at,
                });
                let leader = self.leader()?;
                {
                    let client = leader.lock().await?;
                    db::record_key_attempt(&*client, r.reservation_id, &detail, &details)
                        .await
                        .fenced(&leader)?;
                }
                Err(ProcessorError::NoKeysYet {
                    detail: format!("no SSH key yet: {problems}"),
                    retry_within: left,
                })
            }
            _ if keys.may_improve() => Err(ProcessorError::Permanent(format!(
                "no SSH key for the dev box: GitHub keys could not be fetched within {} s of \
                 admission ({problems}) and no key is registered; {FIX}",
                deadline.as_secs()
            ))),
            _ if keys.problems.is_empty() => Err(ProcessorError::Permanent(format!(
                "no SSH key for the dev box: none is registered and no GitHub user is named; {FIX}"
            ))),
            _ => Err(ProcessorError::Permanent(format!(
                "no SSH key for the dev box: none is registered and {problems}; {FIX}"
            ))),
        }
    }

    /// The `authorized_keys` to write into a running dev box (users added, Jupyter switched):
    /// whatever keys there are, unless there are none and a later attempt may find some.
    async fn keys_of_running(&self, r: &Reservation) -> Result<String> {
        let keys = self.inner.keys.authorized_keys(&self.inner.pool, r).await?;
        if keys.count == 0 && keys.may_improve() {
            return Err(ProcessorError::Transient(format!(
                "no SSH keys yet: {}",
                keys.describe_problems()
            )));
        }
        Ok(keys.file)
    }

    /// The reservation's environment values and command, opened with the configured keys
    /// (ADR 12). A row that does not open (altered, moved from another reservation, or sealed
    /// with a key this processor lacks) is a permanent failure: the reservation fails with the
    /// reason rather than start a dev box without its environment.
    async fn secrets_of(&self, r: &Reservation) -> Result<ReservationSecrets> {
        let stored = {
            let db = self.db().await?;
            reservations::stored_secrets(&**db, r.reservation_id).await?
        };
        let id = r.reservation_id;
        match stored {
            Some(StoredSecrets::Sealed(sealed)) => {
                let keys = self.inner.config.secret_keys.as_ref();
                keys.ok_or(SealError::NoKeys)
                    .and_then(|keys| keys.open(id, &sealed))
                    .map_err(|e| ProcessorError::Permanent(format!("environment and command: {e}")))
            }
            plain => {
                // Written before secrets were sealed: read as they are, once, and said so.
                let env = match plain {
                    Some(StoredSecrets::Plain(env)) => env,
                    _ => BTreeMap::new(),
                };
                if !env.is_empty() || r.command.is_some() {
                    tracing::warn!(
                        reservation_id = %id,
                        "environment values or command stored in plain text before the upgrade \
                         that seals them; using them as stored"
                    );
                }
                Ok(ReservationSecrets {
                    env,
                    command: r.command.clone(),
                })
            }
        }
    }

    /// The agent `r`'s dev box runs, when the platform runs one: the token of a Secret of `r`
    /// that exists already, else a new one. Its hash is stored before any Secret holds it, so
    /// a box's agent is never refused for a token the database has not seen.
    async fn agent_for(
        &self,
        r: &Reservation,
        existing: &ManagedObjects,
    ) -> Result<Option<gpudev_cluster::AgentSpec>> {
        let Some(settings) = &self.inner.config.agent else {
            return Ok(None);
        };
        let known = existing
            .secrets
            .iter()
            .filter(|s| ops::reservation_of(*s) == Some(r.reservation_id))
            .find_map(agent_token_in);
        let token = match known {
            Some(token) => token,
            None => {
                let token = AgentToken::generate()
                    .map_err(|e| ProcessorError::Transient(format!("agent token: {e}")))?;
                self.store_agent_token(r.reservation_id, &token).await?;
                token
            }
        };
        Ok(Some(gpudev_cluster::AgentSpec {
            image: settings.image.clone(),
            api_url: settings.api_url.clone(),
            token,
        }))
    }

    /// Stores the hash of the agent token `secret` really holds when it is not the one `r`
    /// was about to get (the Secret existed already, made by an earlier attempt).
    async fn record_agent_token_of(
        &self,
        r: &Reservation,
        planned: Option<&gpudev_cluster::AgentSpec>,
        secret: &Secret,
    ) -> Result<()> {
        let Some(planned) = planned else {
            return Ok(());
        };
        match agent_token_in(secret) {
            Some(actual) if actual != planned.token => {
                self.store_agent_token(r.reservation_id, &actual).await
            }
            _ => Ok(()),
        }
    }

    async fn store_agent_token(&self, id: Uuid, token: &AgentToken) -> Result<()> {
        let leader = self.leader()?;
        let client = leader.lock().await?;
        gpudev_store::activity::set_agent_token(&*client, id, &token.hash())
            .await
            .fenced(&leader)?;
        Ok(())
    }

    /// The reservation's Jupyter token, generated and stored on first use.
    pub(crate) async fn jupyter_token(&self, r: &Reservation) -> Result<JupyterToken> {
        let token = match &r.jupyter_token {
            Some(t) => t.clone(),
            None => {
                let candidate = Alphanumeric.sample_string(&mut rand::rng(), 40);
                let leader = self.leader()?;
                let client = leader.lock().await?;
                db::ensure_jupyter_token(&*client, r.reservation_id, &candidate)
                    .await
                    .fenced(&leader)?
                    .unwrap_or(candidate)
            }
        };
        JupyterToken::parse(&token)
            .map_err(|e| ProcessorError::Permanent(format!("stored Jupyter token: {e}")))
    }

    /// Makes sure the user's disk exists (row and claim) and is attached to `r`; returns it with
    /// the claim its record names.
    async fn ensure_disk(
        &self,
        r: &Reservation,
        owner: &Username,
        name: &DiskName,
    ) -> Result<DiskMount> {
        let config = &self.inner.config;
        let leader = self.leader()?;
        let disk = {
            let found = {
                let db = self.db().await?;
                disks::get(&**db, r.user_id, name.as_str()).await
            };
            match found {
                Ok(d) => d,
                Err(StoreError::NotFound(_)) => {
                    let size = r
                        .disk_size_gb
                        .unwrap_or(i32::try_from(config.default_disk_size_gb).unwrap_or(100));
                    let client = leader.lock().await?;
                    let disk_id = Uuid::new_v4();
                    let new = disks::NewDisk {
                        disk_id,
                        user_id: r.user_id,
                        disk_name: name,
                        kube_name: &name.kube_name(owner, disk_id),
                        size_gb: size,
                        operation_id: None,
                    };
                    match disks::create(&*client, &new).await {
                        Ok(d) => d,
                        Err(StoreError::Conflict(_)) => {
                            disks::get(&*client, r.user_id, name.as_str())
                                .await
                                .fenced(&leader)?
                        }
                        Err(e) => return Err(leader.classify(e.into())),
                    }
                }
                Err(e) => return Err(e.into()),
            }
        };
        if let Some(other) = disk.reservation_id
            && other != r.reservation_id
        {
            let status = {
                let db = self.db().await?;
                db::statuses(&**db, &[other]).await?.get(&other).copied()
            };
            match status {
                Some(s) if !s.is_terminal() => {
                    return Err(ProcessorError::Permanent(format!(
                        "disk {name} is in use by reservation {other}"
                    )));
                }
                _ => {
                    let client = leader.lock().await?;
                    disks::release(&*client, disk.disk_id, other)
                        .await
                        .fenced(&leader)?;
                }
            }
        }
        let attached = {
            let client = leader.lock().await?;
            disks::attach(&*client, disk.disk_id, r.reservation_id)
                .await
                .fenced(&leader)?
        };
        if !attached {
            return Err(ProcessorError::Transient(format!(
                "disk {name} changed while being attached"
            )));
        }
        let mount = DiskMount {
            name: name.clone(),
            claim_name: disk.kube_name,
        };
        self.ensure_claim(owner, &mount, disk.size_gb).await?;
        Ok(mount)
    }

    /// Creates the user's disk claim unless it exists.
    pub(crate) async fn ensure_claim(
        &self,
        owner: &Username,
        disk: &DiskMount,
        size_gb: i32,
    ) -> Result<()> {
        let config = &self.inner.config;
        let api: Api<PersistentVolumeClaim> =
            Api::namespaced(self.inner.kube.clone(), &config.namespace);
        let claim_name = &disk.claim_name;
        if ops::get_opt(&api, claim_name).await?.is_some() {
            return Ok(());
        }
        let size = u32::try_from(size_gb)
            .ok()
            .and_then(NonZeroU32::new)
            .ok_or_else(|| ProcessorError::Permanent(format!("disk size {size_gb} GB")))?;
        let claim = disk_claim(
            &config.namespace,
            owner,
            disk,
            &DiskClaimSpec {
                storage_class: config.storage_class.clone(),
                size_gib: size,
                restore_from: None,
            },
        );
        match api.create(&kube::api::PostParams::default(), &claim).await {
            Ok(_) => Ok(()),
            // The name comes from the disk's record: whoever created it made this disk's claim.
            Err(e) if ops::is_already_exists(&e) => Ok(()),
            Err(e) => Err(OpsError::kube("create", "PersistentVolumeClaim", claim_name, e).into()),
        }
    }

    /// Deletes every object of a reservation that is not live, and frees its disk when it was
    /// cancelled or failed. Returns how many objects were deleted.
    #[tracing::instrument(skip_all, fields(reservation_id = %id))]
    pub(crate) async fn clean_up(
        &self,
        id: Uuid,
        status: ReservationStatus,
        objects: Option<&ManagedObjects>,
    ) -> Result<usize> {
        let config = &self.inner.config;
        let deleted = match objects {
            Some(objects) => {
                ops::delete_objects(&self.inner.kube, &config.namespace, objects).await?
            }
            None => {
                ops::delete_reservation_objects(&self.inner.kube, &config.namespace, id).await?
            }
        };
        if deleted > 0 {
            tracing::info!(deleted, %status, "dev box objects deleted");
        }
        if matches!(
            status,
            ReservationStatus::Cancelled | ReservationStatus::Failed
        ) {
            self.release_disk_of(id).await?;
        }
        Ok(deleted)
    }

    /// Detaches the disk of an ended reservation in the database.
    pub(crate) async fn release_disk_of(&self, id: Uuid) -> Result<()> {
        let attached = {
            let db = self.db().await?;
            disks::attached_to(&**db, id).await?
        };
        if attached.is_empty() {
            return Ok(());
        }
        let leader = self.leader()?;
        let client = leader.lock().await?;
        for disk_id in attached {
            disks::release(&*client, disk_id, id)
                .await
                .fenced(&leader)?;
        }
        Ok(())
    }

    /// Fails a reservation (from whatever live state it is in) with `reason`, shows `detail`
    /// (or the reason) as its detailed status, and removes its objects. A reservation that
    /// already ended is left alone. Callers hold the objects lock.
    pub(crate) async fn fail(
        &self,
        id: Uuid,
        reason: &str,
        detail: Option<&str>,
        cause: &str,
    ) -> Result<bool> {
        let leader = self.leader()?;
        let failed = {
            let mut client = leader.lock().await?;
            let tx = client.transaction().await.fenced(&leader)?;
            let changed = match reservations::transition(
                &tx,
                id,
                Transition {
                    to: ReservationStatus::Failed,
                    reason: Some(reason),
                    actor: ACTOR,
                },
            )
            .await
            {
                Ok(_) => true,
                Err(StoreError::Transition(_) | StoreError::NotFound(_)) => false,
                Err(e) => return Err(leader.classify(e.into())),
            };
            if changed && let Some(detail) = detail {
                db::set_detail(&tx, id, ReservationStatus::Failed, detail)
                    .await
                    .fenced(&leader)?;
            }
            if changed {
                reservations::delete_secret_env(&tx, id)
                    .await
                    .fenced(&leader)?;
            }
            tx.commit().await.fenced(&leader)?;
            changed
        };
        if failed {
            self.inner
                .metrics
                .failures
                .with_label_values(&[cause])
                .inc();
            tracing::warn!(reservation_id = %id, reason, "reservation failed");
            self.clean_up(id, ReservationStatus::Failed, None).await?;
        }
        Ok(failed)
    }

    /// Rewrites `authorized_keys` in every Pod Secret of an active reservation (users added);
    /// the dev box re-reads it within a minute.
    pub(crate) async fn refresh_keys(&self, r: &Reservation) -> Result<()> {
        let keys = self.keys_of_running(r).await?;
        let secrets =
            ops::list_selected(&self.secrets_api(), &labels::selector_for(r.reservation_id))
                .await?;
        for secret in secrets {
            let patch = serde_json::json!({
                "data": { gpudev_cluster::secret::AUTHORIZED_KEYS_KEY:
                    k8s_openapi::ByteString(keys.clone().into_bytes()) }
            });
            let name = secret.name_any();
            self.secrets_api()
                .patch(&name, &PatchParams::default(), &Patch::Merge(patch))
                .await
                .map_err(|e| OpsError::kube("patch", "Secret", &name, e))?;
        }
        Ok(())
    }

    /// Opens or closes the Jupyter port of an active reservation: the token in its Secrets,
    /// the port on its SSH Services, and the URL in the database.
    pub(crate) async fn apply_jupyter(&self, r: &Reservation, enabled: bool) -> Result<()> {
        let mut spec = self.spec_for(r, false).await?;
        spec.jupyter = if enabled {
            Some(self.jupyter_token(r).await?)
        } else {
            None
        };
        let plans = spec
            .pod_plans()
            .map_err(|e| ProcessorError::Permanent(e.to_string()))?;
        for plan in &plans {
            let manifests = PodManifests::build(plan);
            let ports = manifests
                .ssh_service
                .spec
                .as_ref()
                .and_then(|s| s.ports.clone())
                .unwrap_or_default();
            let name = plan.ssh_service_name();
            let patch = serde_json::json!({ "spec": { "ports": ports } });
            self.services_api()
                .patch(&name, &PatchParams::default(), &Patch::Merge(patch))
                .await
                .map_err(|e| OpsError::kube("patch", "Service", &name, e))?;
            // The token stays in the Secret once there: a running container whose environment
            // refers to it could not restart without it.
            let data: BTreeMap<String, k8s_openapi::ByteString> =
                manifests.secret.data.clone().unwrap_or_default();
            let secret_name = plan.secret_name();
            let patch = serde_json::json!({ "data": data });
            self.secrets_api()
                .patch(&secret_name, &PatchParams::default(), &Patch::Merge(patch))
                .await
                .map_err(|e| OpsError::kube("patch", "Secret", &secret_name, e))?;
        }
        // A dev box follows the Secret's Jupyter switch while it runs (its entrypoint starts and
        // stops the server within about a minute of the change). Boxes made before the switch
        // existed run Jupyter only if they started with it.
        let served = match plans.first() {
            Some(plan) => ops::get_opt(&self.pods_api(), plan.pod_name())
                .await?
                .is_some_and(|pod| follows_switch(&pod) || started_with_jupyter(&pod)),
            None => false,
        };
        let url = if enabled && served {
            self.jupyter_url(r).await?
        } else {
            None
        };
        let leader = self.leader()?;
        let client = leader.lock().await?;
        db::set_jupyter_url(&*client, r.reservation_id, url.as_deref())
            .await
            .fenced(&leader)?;
        if enabled {
            let note = if served {
                "Jupyter is starting in the running dev box; it answers at the URL within about \
                 a minute"
            } else {
                "Jupyter is enabled for the next start of this dev box; the running one was \
                 started without it by an older version"
            };
            reservations::record_event(
                &*client,
                r.reservation_id,
                "note",
                note,
                ACTOR,
                serde_json::json!({ "jupyter_enabled": true }),
            )
            .await
            .fenced(&leader)?;
        }
        Ok(())
    }
}

/// True when the Pod mounts the Secret's Jupyter switch, so its Jupyter server follows it.
fn follows_switch(pod: &Pod) -> bool {
    pod.spec.as_ref().is_some_and(|spec| {
        spec.volumes.iter().flatten().any(|v| {
            v.secret.as_ref().is_some_and(|s| {
                s.items
                    .iter()
                    .flatten()
                    .any(|i| i.key == gpudev_cluster::secret::JUPYTER_KEY)
            })
        })
    })
}

/// True when the Pod's container was started with `GPUDEV_JUPYTER=1`.
fn started_with_jupyter(pod: &Pod) -> bool {
    pod.spec.as_ref().is_some_and(|spec| {
        spec.containers.iter().any(|c| {
            c.env
                .iter()
                .flatten()
                .any(|e| e.name == "GPUDEV_JUPYTER" && e.value.as_deref() == Some("1"))
        })
    })
}
