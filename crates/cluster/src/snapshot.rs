//! VolumeSnapshots (`snapshot.storage.k8s.io/v1`) of user disks, taken by the expiry job.
//!
//! k8s-openapi covers only built-in kinds, so [`VolumeSnapshot`] is a small typed struct of the
//! fields we use. It implements k8s-openapi's `Resource`, `ListableResource` and `Metadata`
//! traits, which is all kube-rs needs for an `Api<VolumeSnapshot>`.

use std::collections::BTreeMap;

use gpudev_domain::Username;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::disk::DiskMount;
use crate::{labels, names};

/// API group of VolumeSnapshots.
pub const GROUP: &str = "snapshot.storage.k8s.io";
/// API version of VolumeSnapshots.
pub const VERSION: &str = "v1";
/// `apiVersion` of VolumeSnapshots.
pub const API_VERSION: &str = "snapshot.storage.k8s.io/v1";
/// Kind of VolumeSnapshots.
pub const KIND: &str = "VolumeSnapshot";

/// A VolumeSnapshot: a point-in-time copy of a PersistentVolumeClaim.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct VolumeSnapshot {
    /// Standard object metadata.
    pub metadata: ObjectMeta,
    /// What to snapshot and with which class.
    pub spec: VolumeSnapshotSpec,
    /// Set by the snapshot controller.
    pub status: Option<VolumeSnapshotStatus>,
}

/// The desired snapshot.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VolumeSnapshotSpec {
    /// The VolumeSnapshotClass; the cluster's default class when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub volume_snapshot_class_name: Option<String>,
    /// The volume to snapshot.
    pub source: VolumeSnapshotSource,
}

/// The source of a snapshot: exactly one of the two fields.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VolumeSnapshotSource {
    /// A claim in the snapshot's namespace (what gpudev uses).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub persistent_volume_claim_name: Option<String>,
    /// A pre-existing VolumeSnapshotContent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub volume_snapshot_content_name: Option<String>,
}

/// What the snapshot controller reports.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VolumeSnapshotStatus {
    /// The bound VolumeSnapshotContent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bound_volume_snapshot_content_name: Option<String>,
    /// When the storage system took the snapshot (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub creation_time: Option<String>,
    /// True once the snapshot can be restored from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ready_to_use: Option<bool>,
    /// The smallest volume it restores to (a quantity, e.g. `100Gi`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restore_size: Option<String>,
    /// The last error taking the snapshot.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<VolumeSnapshotError>,
}

/// An error reported by the snapshot controller.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VolumeSnapshotError {
    /// Human-readable message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// When it happened (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time: Option<String>,
}

impl VolumeSnapshot {
    /// True once the controller reports the snapshot restorable.
    pub fn is_ready(&self) -> bool {
        self.status
            .as_ref()
            .and_then(|s| s.ready_to_use)
            .unwrap_or(false)
    }
}

impl k8s_openapi::Resource for VolumeSnapshot {
    const API_VERSION: &'static str = API_VERSION;
    const GROUP: &'static str = GROUP;
    const KIND: &'static str = KIND;
    const VERSION: &'static str = VERSION;
    const URL_PATH_SEGMENT: &'static str = "volumesnapshots";
    type Scope = k8s_openapi::NamespaceResourceScope;
}

impl k8s_openapi::ListableResource for VolumeSnapshot {
    const LIST_KIND: &'static str = "VolumeSnapshotList";
}

impl k8s_openapi::Metadata for VolumeSnapshot {
    type Ty = ObjectMeta;

    fn metadata(&self) -> &ObjectMeta {
        &self.metadata
    }

    fn metadata_mut(&mut self) -> &mut ObjectMeta {
        &mut self.metadata
    }
}

/// The wire form, with `apiVersion` and `kind` as the API server writes them.
#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Wire<M, S, T> {
    api_version: String,
    kind: String,
    #[serde(default)]
    metadata: M,
    spec: S,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    status: Option<T>,
}

impl Serialize for VolumeSnapshot {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        Wire {
            api_version: API_VERSION.to_owned(),
            kind: KIND.to_owned(),
            metadata: &self.metadata,
            spec: &self.spec,
            status: self.status.as_ref(),
        }
        .serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for VolumeSnapshot {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let wire = Wire::<ObjectMeta, VolumeSnapshotSpec, VolumeSnapshotStatus>::deserialize(
            deserializer,
        )?;
        if wire.api_version != API_VERSION || wire.kind != KIND {
            return Err(serde::de::Error::custom(format!(
                "expected {API_VERSION} {KIND}, got {} {}",
                wire.api_version, wire.kind
            )));
        }
        Ok(Self {
            metadata: wire.metadata,
            spec: wire.spec,
            status: wire.status,
        })
    }
}

/// The snapshot the expiry job takes of `owner`'s disk `disk` when reservation `reservation_id`
/// ends, named [`names::snapshot_name`] (so a second run finds the first run's snapshot) and
/// labelled so that [`labels::snapshots_of_selector`] of the claim lists every snapshot of the
/// disk. `snapshot_class` is the configured VolumeSnapshotClass.
pub fn disk_snapshot(
    namespace: &str,
    owner: &Username,
    disk: &DiskMount,
    reservation_id: Uuid,
    snapshot_class: Option<&str>,
) -> VolumeSnapshot {
    let claim = disk.claim_name.clone();
    VolumeSnapshot {
        metadata: ObjectMeta {
            name: Some(names::snapshot_name(&claim, reservation_id)),
            namespace: Some(namespace.to_owned()),
            labels: Some(BTreeMap::from([
                (
                    labels::MANAGED_BY.to_owned(),
                    labels::MANAGED_BY_VALUE.to_owned(),
                ),
                (
                    labels::APP_NAME.to_owned(),
                    labels::APP_DISK_SNAPSHOT.to_owned(),
                ),
                (labels::USER.to_owned(), labels::user_value(owner)),
                (labels::DISK_CLAIM.to_owned(), claim.clone()),
            ])),
            annotations: Some(BTreeMap::from([
                (labels::USERNAME_ANNOTATION.to_owned(), owner.to_string()),
                (
                    labels::DISK_NAME_ANNOTATION.to_owned(),
                    disk.name.to_string(),
                ),
                (
                    labels::SNAPSHOT_RESERVATION_ANNOTATION.to_owned(),
                    reservation_id.hyphenated().to_string(),
                ),
            ])),
            ..Default::default()
        },
        spec: VolumeSnapshotSpec {
            volume_snapshot_class_name: snapshot_class.map(str::to_owned),
            source: VolumeSnapshotSource {
                persistent_volume_claim_name: Some(claim),
                volume_snapshot_content_name: None,
            },
        },
        status: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use gpudev_domain::DiskName;
    use serde_json::json;

    fn build() -> VolumeSnapshot {
        disk_snapshot(
            "gpu-dev",
            &Username::parse("alice").unwrap(),
            &DiskMount {
                name: DiskName::parse("home").unwrap(),
                claim_name: claim(),
            },
            Uuid::parse_str("3f2a9c1e-7b4d-4e8f-9a0b-1c2d3e4f5a6b").unwrap(),
            Some("ebs-snapshots"),
        )
    }

    fn claim() -> String {
        "disk-alice-home-0123456789".to_owned()
    }

    #[test]
    fn the_snapshot_names_its_claim_and_class() {
        let snapshot = build();
        assert_eq!(
            snapshot.metadata.name,
            Some(format!("{}-3f2a9c1e7b4d", claim()))
        );
        assert_eq!(snapshot.metadata.namespace.as_deref(), Some("gpu-dev"));
        assert_eq!(
            snapshot.spec.volume_snapshot_class_name.as_deref(),
            Some("ebs-snapshots")
        );
        assert_eq!(
            snapshot.spec.source.persistent_volume_claim_name,
            Some(claim())
        );
        assert!(snapshot.spec.source.volume_snapshot_content_name.is_none());
        assert!(!snapshot.is_ready());
    }

    #[test]
    fn the_snapshot_is_found_by_its_disk_and_not_by_its_reservation() {
        let labels = build().metadata.labels.unwrap();
        assert_eq!(labels["app.kubernetes.io/managed-by"], "gpudev");
        assert_eq!(labels["app.kubernetes.io/name"], "gpudev-disk-snapshot");
        assert_eq!(labels["gpudev.io/disk-claim"], claim());
        assert_eq!(labels["gpudev.io/user"], "alice");
        assert!(!labels.contains_key("gpudev.io/reservation-id"));
        let annotations = build().metadata.annotations.unwrap();
        assert_eq!(
            annotations["gpudev.io/snapshot-of-reservation"],
            "3f2a9c1e-7b4d-4e8f-9a0b-1c2d3e4f5a6b"
        );
        assert!(build().metadata.owner_references.is_none());
    }

    #[test]
    fn it_serializes_as_the_api_server_expects() {
        let value = serde_json::to_value(build()).unwrap();
        assert_eq!(value["apiVersion"], "snapshot.storage.k8s.io/v1");
        assert_eq!(value["kind"], "VolumeSnapshot");
        assert_eq!(
            value["spec"],
            json!({
                "volumeSnapshotClassName": "ebs-snapshots",
                "source": {"persistentVolumeClaimName": claim()}
            })
        );
        assert!(value.get("status").is_none());
    }

    #[test]
    fn it_reads_back_what_the_api_server_returns() {
        let returned = json!({
            "apiVersion": "snapshot.storage.k8s.io/v1",
            "kind": "VolumeSnapshot",
            "metadata": {"name": "s", "namespace": "gpu-dev", "uid": "u-1", "resourceVersion": "7"},
            "spec": {"source": {"persistentVolumeClaimName": "c"}},
            "status": {
                "boundVolumeSnapshotContentName": "snapcontent-1",
                "creationTime": "2026-01-01T00:00:00Z",
                "readyToUse": true,
                "restoreSize": "100Gi",
                "unknownFutureField": 1
            }
        });
        let snapshot: VolumeSnapshot = serde_json::from_value(returned).unwrap();
        assert!(snapshot.is_ready());
        assert_eq!(snapshot.metadata.uid.as_deref(), Some("u-1"));
        assert_eq!(
            snapshot.status.unwrap().restore_size.as_deref(),
            Some("100Gi")
        );
        let round_trip: VolumeSnapshot =
            serde_json::from_value(serde_json::to_value(build()).unwrap()).unwrap();
        assert_eq!(round_trip, build());
    }

    #[test]
    fn another_kind_is_refused() {
        let wrong =
            json!({"apiVersion": "v1", "kind": "Pod", "metadata": {}, "spec": {"source": {}}});
        assert!(serde_json::from_value::<VolumeSnapshot>(wrong).is_err());
    }

    #[test]
    fn the_resource_traits_point_kube_at_the_right_path() {
        use k8s_openapi::Resource;
        assert_eq!(VolumeSnapshot::API_VERSION, "snapshot.storage.k8s.io/v1");
        assert_eq!(VolumeSnapshot::URL_PATH_SEGMENT, "volumesnapshots");
    }
}
