//! core/v1 Events, as the scheduler and kubelet record them.

use serde_json::{Value, json};

use super::{name_of, uid_of};
use crate::kube::resources::{self, ResourceType};
use crate::kube::store::Store;
use crate::kube::time;

/// Records a core/v1 Event about an object.
pub(super) fn event(
    store: &mut Store,
    about: &Value,
    kind: &str,
    reason: &str,
    message: &str,
    component: &str,
) {
    store.serial += 1;
    let namespace = about
        .pointer("/metadata/namespace")
        .and_then(Value::as_str)
        .unwrap_or("default")
        .to_owned();
    let name = name_of(about);
    let rt: &ResourceType = resources_of(about);
    let now = time::now();
    let object = json!({
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": { "name": format!("{name}.{:016x}", store.serial), "namespace": namespace },
        "involvedObject": {
            "apiVersion": rt.api_version(),
            "kind": rt.kind,
            "name": name,
            "namespace": namespace,
            "uid": uid_of(about),
            "resourceVersion": about.pointer("/metadata/resourceVersion").cloned().unwrap_or(json!("")),
        },
        "reason": reason,
        "message": message,
        "type": kind,
        "count": 1,
        "firstTimestamp": now,
        "lastTimestamp": now,
        "source": { "component": component },
        "reportingComponent": component,
        "reportingInstance": "",
    });
    // An event that cannot be stored is not worth failing the simulation over.
    let _ = store.create(&resources::EVENTS, Some(&namespace), object);
}

fn resources_of(object: &Value) -> &'static ResourceType {
    let kind = object["kind"].as_str().unwrap_or("Pod");
    resources::RESOURCES
        .iter()
        .copied()
        .find(|r| r.kind == kind)
        .unwrap_or(&resources::PODS)
}
