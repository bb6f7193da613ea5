//! The PersistentVolumeClaim of a user's disk.
//!
//! Unlike the per-reservation objects it has no owner and no reservation label: a disk outlives
//! every reservation that mounts it, and nothing that cleans up after reservations may match it.

use std::collections::BTreeMap;
use std::num::NonZeroU32;

use gpudev_domain::{DiskName, Username};
use k8s_openapi::api::core::v1::{
    PersistentVolumeClaim, PersistentVolumeClaimSpec, TypedLocalObjectReference,
    VolumeResourceRequirements,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use crate::labels;
use crate::snapshot;

/// A user's disk as the database records it: the name its owner uses and the name of its
/// PersistentVolumeClaim, fixed when the disk was created (a rename changes only the former).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiskMount {
    /// The disk's name as its owner wrote it.
    pub name: DiskName,
    /// Its PersistentVolumeClaim (the stored `disks.kube_name`).
    pub claim_name: String,
}

/// How to create a new disk.
#[derive(Debug, Clone, PartialEq, Eq)]
#[allow(
    missing_docs,
    reason = "fields whose names say what they hold go undocumented"
)]
pub struct DiskClaimSpec {
    /// The StorageClass (`STORAGE_CLASS`); the cluster's default class when absent.
    pub storage_class: Option<String>,
    pub size_gib: NonZeroU32,
    /// A VolumeSnapshot (in the same namespace) to fill the new disk from.
    pub restore_from: Option<String>,
}

/// The labels of a disk claim: managed by gpudev, `app.kubernetes.io/name=gpudev-disk`, and
/// the owner.
pub fn disk_labels(owner: &Username) -> BTreeMap<String, String> {
    BTreeMap::from([
        (
            labels::MANAGED_BY.to_owned(),
            labels::MANAGED_BY_VALUE.to_owned(),
        ),
        (labels::APP_NAME.to_owned(), labels::APP_DISK.to_owned()),
        (labels::USER.to_owned(), labels::user_value(owner)),
    ])
}

/// The claim of `owner`'s disk `disk` in `namespace`, named as the disk's record says: one
/// ReadWriteOnce filesystem volume.
pub fn disk_claim(
    namespace: &str,
    owner: &Username,
    disk: &DiskMount,
    spec: &DiskClaimSpec,
) -> PersistentVolumeClaim {
    let size = Quantity(format!("{}Gi", spec.size_gib));
    PersistentVolumeClaim {
        metadata: ObjectMeta {
            name: Some(disk.claim_name.clone()),
            namespace: Some(namespace.to_owned()),
            labels: Some(disk_labels(owner)),
            annotations: Some(BTreeMap::from([
                (labels::USERNAME_ANNOTATION.to_owned(), owner.to_string()),
                (
                    labels::DISK_NAME_ANNOTATION.to_owned(),
                    disk.name.to_string(),
                ),
            ])),
            ..Default::default()
        },
        spec: Some(PersistentVolumeClaimSpec {
            access_modes: Some(vec!["ReadWriteOnce".to_owned()]),
            storage_class_name: spec.storage_class.clone(),
            volume_mode: Some("Filesystem".to_owned()),
            resources: Some(VolumeResourceRequirements {
                requests: Some(BTreeMap::from([("storage".to_owned(), size)])),
                ..Default::default()
            }),
            data_source: spec
                .restore_from
                .as_ref()
                .map(|name| TypedLocalObjectReference {
                    api_group: Some(snapshot::GROUP.to_owned()),
                    kind: snapshot::KIND.to_owned(),
                    name: name.clone(),
                }),
            ..Default::default()
        }),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alice() -> Username {
        Username::parse("alice").unwrap()
    }

    fn home() -> DiskMount {
        DiskMount {
            name: DiskName::parse("home").unwrap(),
            claim_name: "disk-alice-home-0123456789".into(),
        }
    }

    fn claim_spec(restore_from: Option<&str>) -> DiskClaimSpec {
        DiskClaimSpec {
            storage_class: Some("gp3".into()),
            size_gib: NonZeroU32::new(100).unwrap(),
            restore_from: restore_from.map(str::to_owned),
        }
    }

    #[test]
    fn a_new_disk_is_a_read_write_once_claim_of_the_class_and_size() {
        let claim = disk_claim("gpu-dev", &alice(), &home(), &claim_spec(None));
        assert_eq!(
            claim.metadata.name.as_deref(),
            Some("disk-alice-home-0123456789")
        );
        assert_eq!(claim.metadata.namespace.as_deref(), Some("gpu-dev"));
        let spec = claim.spec.unwrap();
        assert_eq!(spec.access_modes, Some(vec!["ReadWriteOnce".to_owned()]));
        assert_eq!(spec.storage_class_name.as_deref(), Some("gp3"));
        assert_eq!(
            spec.resources.unwrap().requests.unwrap()["storage"],
            Quantity("100Gi".into())
        );
        assert!(spec.data_source.is_none());
    }

    #[test]
    fn the_claim_is_not_tied_to_a_reservation() {
        let claim = disk_claim("gpu-dev", &alice(), &home(), &claim_spec(None));
        let labels = claim.metadata.labels.unwrap();
        assert_eq!(labels["app.kubernetes.io/managed-by"], "gpudev");
        assert_eq!(labels["app.kubernetes.io/name"], "gpudev-disk");
        assert_eq!(labels["gpudev.io/user"], "alice");
        assert!(!labels.contains_key("gpudev.io/reservation-id"));
        assert!(claim.metadata.owner_references.is_none());
        assert_eq!(
            claim.metadata.annotations.unwrap()["gpudev.io/disk-name"],
            "home"
        );
    }

    #[test]
    fn a_disk_can_be_restored_from_a_snapshot() {
        let claim = disk_claim("gpu-dev", &alice(), &home(), &claim_spec(Some("snap-1")));
        let source = claim.spec.unwrap().data_source.unwrap();
        assert_eq!(source.api_group.as_deref(), Some("snapshot.storage.k8s.io"));
        assert_eq!(source.kind, "VolumeSnapshot");
        assert_eq!(source.name, "snap-1");
    }

    #[test]
    fn no_storage_class_means_the_cluster_default() {
        let mut spec = claim_spec(None);
        spec.storage_class = None;
        let claim = disk_claim("gpu-dev", &alice(), &home(), &spec);
        assert!(claim.spec.unwrap().storage_class_name.is_none());
    }
}
