//! Ownership: every per-reservation object except the Pod names the Pod as its owner, so that
//! deleting the Pod lets Kubernetes' garbage collector delete the rest (the original leaked the
//! headless and Jupyter Services because cleanup deleted objects one by one).
//!
//! A Pod's uid exists only once the API server has created it, so ownership is a separate step:
//!
//! 1. create the Secret (so the container can start as soon as it is scheduled);
//! 2. create the Pod; take [`owner_of`] the returned Pod;
//! 3. [`adopt`] the Services before creating them;
//! 4. patch the Secret with [`ownership_patch`] (a JSON merge patch).
//!
//! A multi-node reservation's headless Service is adopted by every node's Pod: the garbage
//! collector removes an object once all its owners are gone.
//!
//! `blockOwnerDeletion` is left unset: it needs permission to update the Pod's finalizers and
//! matters only for foreground deletion, which gpudev does not use.

use k8s_openapi::Metadata;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};

/// An owner reference to the Pod `pod_name` with uid `pod_uid`, as the controlling owner.
pub fn owned_by(pod_name: &str, pod_uid: &str) -> OwnerReference {
    OwnerReference {
        api_version: "v1".to_owned(),
        kind: "Pod".to_owned(),
        name: pod_name.to_owned(),
        uid: pod_uid.to_owned(),
        controller: Some(true),
        block_owner_deletion: None,
    }
}

/// The owner reference to a Pod as the API server returned it; `None` before it was created
/// (no name or uid yet).
pub fn owner_of(pod: &Pod) -> Option<OwnerReference> {
    let name = pod.metadata.name.as_deref()?;
    let uid = pod.metadata.uid.as_deref()?;
    Some(owned_by(name, uid))
}

/// True when `object` names the owner with uid `uid`.
pub fn is_owned_by<K: Metadata<Ty = ObjectMeta>>(object: &K, uid: &str) -> bool {
    object
        .metadata()
        .owner_references
        .iter()
        .flatten()
        .any(|r| r.uid == uid)
}

/// Adds `owner` to `object`'s owner references. Idempotent (an owner with the same uid is not
/// added twice), and an object keeps at most one controlling owner, as the API server demands:
/// further owners are added as non-controlling.
pub fn adopt<K: Metadata<Ty = ObjectMeta>>(object: &mut K, mut owner: OwnerReference) {
    let refs = object
        .metadata_mut()
        .owner_references
        .get_or_insert_with(Vec::new);
    if refs.iter().any(|r| r.uid == owner.uid) {
        return;
    }
    if refs.iter().any(|r| r.controller == Some(true)) {
        owner.controller = Some(false);
    }
    refs.push(owner);
}

/// `object`, [adopted](adopt) by `owner`.
pub fn with_owner<K: Metadata<Ty = ObjectMeta>>(mut object: K, owner: OwnerReference) -> K {
    adopt(&mut object, owner);
    object
}

/// A JSON merge patch setting an existing object's owner references to `owners` (for the
/// Secret, created before its Pod). A merge patch replaces the whole list, which is right here:
/// gpudev is the only writer of its objects' owners.
pub fn ownership_patch(owners: &[OwnerReference]) -> serde_json::Value {
    serde_json::json!({ "metadata": { "ownerReferences": owners } })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::PodPlan;
    use crate::plan::tests::spec;
    use crate::{secret, service};
    use serde_json::json;

    #[test]
    fn owned_by_points_at_the_pod() {
        let owner = owned_by("gpudev-3f2a9c1e7b4d", "uid-1");
        assert_eq!(owner.api_version, "v1");
        assert_eq!(owner.kind, "Pod");
        assert_eq!(owner.name, "gpudev-3f2a9c1e7b4d");
        assert_eq!(owner.uid, "uid-1");
        assert_eq!(owner.controller, Some(true));
    }

    #[test]
    fn owner_of_needs_a_created_pod() {
        let plan = PodPlan::new(&spec("t4", 1, 1), 0).unwrap();
        let mut pod = crate::pod::pod(&plan);
        assert_eq!(owner_of(&pod), None);
        pod.metadata.uid = Some("uid-1".into());
        assert_eq!(
            owner_of(&pod),
            Some(owned_by("gpudev-3f2a9c1e7b4d", "uid-1"))
        );
    }

    #[test]
    fn adopting_twice_adds_one_reference() {
        let plan = PodPlan::new(&spec("t4", 1, 1), 0).unwrap();
        let owner = owned_by(plan.pod_name(), "uid-1");
        let mut service = service::ssh_service(&plan);
        assert!(!is_owned_by(&service, "uid-1"));
        adopt(&mut service, owner.clone());
        adopt(&mut service, owner.clone());
        assert_eq!(service.metadata.owner_references, Some(vec![owner]));
        assert!(is_owned_by(&service, "uid-1"));
    }

    #[test]
    fn a_headless_service_owned_by_every_node_has_one_controller() {
        let plans = spec("h100", 16, 2).pod_plans().unwrap();
        let mut headless = service::headless_service(&plans[0]).unwrap();
        for (i, plan) in plans.iter().enumerate() {
            adopt(
                &mut headless,
                owned_by(plan.pod_name(), &format!("uid-{i}")),
            );
        }
        let refs = headless.metadata.owner_references.unwrap();
        assert_eq!(refs.len(), 2);
        assert_eq!(refs[0].controller, Some(true));
        assert_eq!(refs[1].controller, Some(false));
        assert_eq!(refs[1].name, "gpudev-3f2a9c1e7b4d-1");
    }

    #[test]
    fn the_ownership_patch_sets_the_owner_list() {
        let plan = PodPlan::new(&spec("t4", 1, 1), 0).unwrap();
        let owner = owned_by(plan.pod_name(), "uid-1");
        assert_eq!(
            ownership_patch(std::slice::from_ref(&owner)),
            json!({"metadata": {"ownerReferences": [{
                "apiVersion": "v1",
                "kind": "Pod",
                "name": "gpudev-3f2a9c1e7b4d",
                "uid": "uid-1",
                "controller": true
            }]}})
        );
        let secret = with_owner(secret::secret(&plan), owner);
        assert!(is_owned_by(&secret, "uid-1"));
    }
}
