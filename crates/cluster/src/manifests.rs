//! All the objects of one Pod of a reservation, built together.

use k8s_openapi::api::core::v1::{Pod, Secret, Service};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;

use crate::owner::adopt;
use crate::plan::PodPlan;
use crate::{pod, secret, service};

/// The objects of one Pod: its Secret, the Pod, its SSH Service and, for multi-node
/// reservations, the reservation's headless Service (the same object from every node).
#[derive(Debug, Clone, PartialEq)]
pub struct PodManifests {
    /// The Secret ([`secret::secret`]).
    pub secret: Secret,
    /// The Pod ([`pod::pod`]).
    pub pod: Pod,
    /// The NodePort Service ([`service::ssh_service`]).
    pub ssh_service: Service,
    /// The headless Service ([`service::headless_service`]), multi-node only.
    pub headless_service: Option<Service>,
}

impl PodManifests {
    /// Builds every object of `plan`. None is owned yet: see [`crate::owner`].
    pub fn build(plan: &PodPlan) -> Self {
        Self {
            secret: secret::secret(plan),
            pod: pod::pod(plan),
            ssh_service: service::ssh_service(plan),
            headless_service: service::headless_service(plan),
        }
    }

    /// Makes the created Pod (`owner`, from [`crate::owner::owner_of`]) the owner of every
    /// other object. Idempotent.
    pub fn adopt_by(&mut self, owner: &OwnerReference) {
        adopt(&mut self.secret, owner.clone());
        adopt(&mut self.ssh_service, owner.clone());
        if let Some(headless) = &mut self.headless_service {
            adopt(headless, owner.clone());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::owner::{is_owned_by, owned_by};
    use crate::plan::tests::spec;

    #[test]
    fn every_object_but_the_pod_is_owned_by_the_pod_after_adoption() {
        let plan = &spec("h100", 16, 2).pod_plans().unwrap()[1];
        let mut manifests = PodManifests::build(plan);
        assert!(manifests.secret.metadata.owner_references.is_none());
        let owner = owned_by(plan.pod_name(), "uid-1");
        manifests.adopt_by(&owner);
        manifests.adopt_by(&owner);
        assert!(is_owned_by(&manifests.secret, "uid-1"));
        assert!(is_owned_by(&manifests.ssh_service, "uid-1"));
        let headless = manifests.headless_service.as_ref().unwrap();
        assert!(is_owned_by(headless, "uid-1"));
        assert_eq!(
            headless.metadata.owner_references.as_ref().unwrap().len(),
            1
        );
        assert!(manifests.pod.metadata.owner_references.is_none());
    }

    #[test]
    fn every_object_carries_the_three_labels() {
        let plan = &spec("h100", 16, 2).pod_plans().unwrap()[0];
        let m = PodManifests::build(plan);
        let all = [
            &m.secret.metadata,
            &m.pod.metadata,
            &m.ssh_service.metadata,
            &m.headless_service.as_ref().unwrap().metadata,
        ];
        for meta in all {
            let labels = meta.labels.as_ref().unwrap();
            assert_eq!(
                labels["app.kubernetes.io/managed-by"], "gpudev",
                "{:?}",
                meta.name
            );
            assert_eq!(
                labels["gpudev.io/reservation-id"],
                "3f2a9c1e-7b4d-4e8f-9a0b-1c2d3e4f5a6b"
            );
            assert_eq!(labels["gpudev.io/user"], "alice");
            assert_eq!(labels["app.kubernetes.io/name"], "gpudev-devbox");
            assert_eq!(meta.namespace.as_deref(), Some("gpu-dev"));
            assert_eq!(
                meta.annotations.as_ref().unwrap()["gpudev.io/username"],
                "alice"
            );
        }
    }

    #[test]
    fn building_twice_gives_identical_objects() {
        let plan = &spec("t4", 2, 1).pod_plans().unwrap()[0];
        assert_eq!(PodManifests::build(plan), PodManifests::build(plan));
    }
}
