//! The storage controllers' part: provisioning claims and taking snapshots.

use serde_json::{Value, json};

use super::uid_of;
use crate::kube::resources;
use crate::kube::store::{Key, Store};
use crate::kube::time;

/// Binds every Pending claim, as a dynamic provisioner would.
pub(super) fn bind_claims(store: &mut Store) -> usize {
    let pending: Vec<(Key, Value)> = store
        .all(&resources::PVCS)
        .filter(|(_, c)| c.pointer("/status/phase").and_then(Value::as_str) != Some("Bound"))
        .map(|(k, c)| (k.clone(), c.clone()))
        .collect();
    let count = pending.len();
    for (key, mut claim) in pending {
        let size = claim
            .pointer("/spec/resources/requests/storage")
            .cloned()
            .unwrap_or(json!("1Gi"));
        let modes = claim
            .pointer("/spec/accessModes")
            .cloned()
            .unwrap_or(json!(["ReadWriteOnce"]));
        claim["spec"]["volumeName"] = json!(format!("pvc-{}", uid_of(&claim)));
        claim["status"] =
            json!({ "phase": "Bound", "accessModes": modes, "capacity": { "storage": size } });
        store.write(&resources::PVCS, &key, claim);
    }
    count
}

/// Marks every new VolumeSnapshot ready to use, sized as its source claim.
pub(super) fn ready_snapshots(store: &mut Store) -> usize {
    let fresh: Vec<(Key, Value)> = store
        .all(&resources::VOLUME_SNAPSHOTS)
        .filter(|(_, s)| s.pointer("/status/readyToUse").and_then(Value::as_bool) != Some(true))
        .map(|(k, s)| (k.clone(), s.clone()))
        .collect();
    let count = fresh.len();
    for (key, mut snapshot) in fresh {
        let size = snapshot
            .pointer("/spec/source/persistentVolumeClaimName")
            .and_then(Value::as_str)
            .and_then(|claim| {
                store
                    .get(&resources::PVCS, Some(&key.namespace), claim)
                    .ok()
            })
            .and_then(|claim| claim.pointer("/status/capacity/storage").cloned())
            .unwrap_or(json!("0"));
        snapshot["status"] = json!({
            "readyToUse": true,
            "creationTime": time::now(),
            "restoreSize": size,
            "boundVolumeSnapshotContentName": format!("snapcontent-{}", uid_of(&snapshot)),
        });
        store.write(&resources::VOLUME_SNAPSHOTS, &key, snapshot);
    }
    count
}
