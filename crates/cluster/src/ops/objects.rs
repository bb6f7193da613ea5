//! Creating, finding and deleting gpudev's objects, idempotently.
//!
//! Object names are deterministic ([`crate::names`]), so "create" is "create unless it is there":
//! a 409 `AlreadyExists` is answered by reading the object and checking its
//! [`labels::RESERVATION_ID`] label. Ours is success; anyone else's is a [`OpsError::NameClash`]
//! and is never overwritten.

use std::fmt::Debug;

use k8s_openapi::api::core::v1::{Pod, Secret, Service};
use kube::api::{DeleteParams, ListParams, PostParams};
use kube::{Api, Client, Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;
use uuid::Uuid;

use super::error::{OpsError, is_already_exists, is_not_found};
use crate::labels;

/// What [`create_or_get`] found.
#[derive(Debug, Clone, PartialEq)]
pub struct Ensured<K> {
    /// The object as the API server has it.
    pub object: K,
    /// True when this call created it; false when it was already there.
    pub created: bool,
}

/// The reservation an object belongs to, by its label.
pub fn reservation_of<K: Resource>(object: &K) -> Option<Uuid> {
    object
        .meta()
        .labels
        .as_ref()?
        .get(labels::RESERVATION_ID)
        .and_then(|v| Uuid::parse_str(v).ok())
}

fn kind<K: Resource<DynamicType = ()>>() -> &'static str {
    // k8s-openapi kinds are static strings behind a Cow.
    match K::kind(&()) {
        std::borrow::Cow::Borrowed(s) => s,
        std::borrow::Cow::Owned(_) => "object",
    }
}

/// The object named `name`, or `None` when there is none.
pub async fn get_opt<K>(api: &Api<K>, name: &str) -> Result<Option<K>, OpsError>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug,
{
    api.get_opt(name)
        .await
        .map_err(|e| OpsError::kube("get", kind::<K>(), name, e))
}

/// Creates `object` for reservation `reservation_id`, or returns the existing object of that
/// name when it is labelled with the same reservation.
pub async fn create_or_get<K>(
    api: &Api<K>,
    object: &K,
    reservation_id: Uuid,
) -> Result<Ensured<K>, OpsError>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Serialize + Debug,
{
    let name = object.name_any();
    match api.create(&PostParams::default(), object).await {
        Ok(created) => Ok(Ensured {
            object: created,
            created: true,
        }),
        Err(e) if is_already_exists(&e) => {
            let existing = get_opt(api, &name).await?.ok_or_else(|| {
                // Deleted between the create and the get: the caller's next attempt creates it.
                OpsError::kube("create", kind::<K>(), &name, e)
            })?;
            check_owner(&existing, reservation_id)?;
            Ok(Ensured {
                object: existing,
                created: false,
            })
        }
        Err(e) => Err(OpsError::kube("create", kind::<K>(), &name, e)),
    }
}

/// Fails with [`OpsError::NameClash`] unless `object` is labelled with `reservation_id`.
pub fn check_owner<K: Resource<DynamicType = ()>>(
    object: &K,
    reservation_id: Uuid,
) -> Result<(), OpsError> {
    match reservation_of(object) {
        Some(id) if id == reservation_id => Ok(()),
        other => Err(OpsError::NameClash {
            kind: kind::<K>(),
            name: object.name_any(),
            expected: reservation_id,
            found: other.map_or_else(
                || "no gpudev reservation".to_owned(),
                |id| format!("reservation {id}"),
            ),
        }),
    }
}

/// Deletes the object named `name`; false when there was none.
pub async fn delete_if_present<K>(api: &Api<K>, name: &str) -> Result<bool, OpsError>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug,
{
    match api.delete(name, &DeleteParams::default()).await {
        Ok(_) => Ok(true),
        Err(e) if is_not_found(&e) => Ok(false),
        Err(e) => Err(OpsError::kube("delete", kind::<K>(), name, e)),
    }
}

/// Every object matching a label selector.
pub async fn list_selected<K>(api: &Api<K>, selector: &str) -> Result<Vec<K>, OpsError>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug,
{
    api.list(&ListParams::default().labels(selector))
        .await
        .map(|l| l.items)
        .map_err(|e| OpsError::kube("list", kind::<K>(), selector, e))
}

/// The dev box objects gpudev manages in one namespace.
#[derive(Debug, Clone, Default)]
pub struct ManagedObjects {
    /// Dev box Pods.
    pub pods: Vec<Pod>,
    /// SSH and headless Services.
    pub services: Vec<Service>,
    /// The Pods' Secrets.
    pub secrets: Vec<Secret>,
}

impl ManagedObjects {
    /// Every reservation that has at least one object.
    pub fn reservations(&self) -> std::collections::BTreeSet<Uuid> {
        let pods = self.pods.iter().filter_map(reservation_of);
        let services = self.services.iter().filter_map(reservation_of);
        let secrets = self.secrets.iter().filter_map(reservation_of);
        pods.chain(services).chain(secrets).collect()
    }

    /// Only the objects of one reservation.
    pub fn of(&self, reservation_id: Uuid) -> ManagedObjects {
        let mine = |id: Option<Uuid>| id == Some(reservation_id);
        ManagedObjects {
            pods: self
                .pods
                .iter()
                .filter(|o| mine(reservation_of(*o)))
                .cloned()
                .collect(),
            services: self
                .services
                .iter()
                .filter(|o| mine(reservation_of(*o)))
                .cloned()
                .collect(),
            secrets: self
                .secrets
                .iter()
                .filter(|o| mine(reservation_of(*o)))
                .cloned()
                .collect(),
        }
    }

    /// How many objects there are.
    pub fn len(&self) -> usize {
        self.pods.len() + self.services.len() + self.secrets.len()
    }

    /// True when there are none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Lists the dev box Pods, Services and Secrets matching `selector` in `namespace` (three list
/// requests).
pub async fn list_managed(
    client: &Client,
    namespace: &str,
    selector: &str,
) -> Result<ManagedObjects, OpsError> {
    let pods: Api<Pod> = Api::namespaced(client.clone(), namespace);
    let services: Api<Service> = Api::namespaced(client.clone(), namespace);
    let secrets: Api<Secret> = Api::namespaced(client.clone(), namespace);
    let (pods, services, secrets) = futures::try_join!(
        list_selected(&pods, selector),
        list_selected(&services, selector),
        list_selected(&secrets, selector),
    )?;
    Ok(ManagedObjects {
        pods,
        services,
        secrets,
    })
}

/// Deletes the given objects (Pods first, so their owned objects go with them; the rest by name
/// in case they were never adopted). Returns how many were deleted.
pub async fn delete_objects(
    client: &Client,
    namespace: &str,
    objects: &ManagedObjects,
) -> Result<usize, OpsError> {
    let pods: Api<Pod> = Api::namespaced(client.clone(), namespace);
    let services: Api<Service> = Api::namespaced(client.clone(), namespace);
    let secrets: Api<Secret> = Api::namespaced(client.clone(), namespace);
    let mut deleted = 0;
    for pod in &objects.pods {
        // A Pod already terminating needs no second delete.
        if pod.meta().deletion_timestamp.is_none() {
            deleted += usize::from(delete_if_present(&pods, &pod.name_any()).await?);
        }
    }
    for service in &objects.services {
        deleted += usize::from(delete_if_present(&services, &service.name_any()).await?);
    }
    for secret in &objects.secrets {
        deleted += usize::from(delete_if_present(&secrets, &secret.name_any()).await?);
    }
    Ok(deleted)
}

/// Deletes every dev box object of one reservation in `namespace`; returns how many there were.
pub async fn delete_reservation_objects(
    client: &Client,
    namespace: &str,
    reservation_id: Uuid,
) -> Result<usize, OpsError> {
    let objects = list_managed(client, namespace, &labels::selector_for(reservation_id)).await?;
    delete_objects(client, namespace, &objects).await
}
