//! What the API server fills in on create and keeps on update: a Service's cluster IP and node
//! ports (30000–32767), port defaults, a Secret's `stringData` folded into `data`, and the first
//! phase of pods, claims and namespaces.

use std::collections::HashSet;

use serde_json::{Value, json};

use super::resources::{self, ResourceType};
use super::status::ApiError;
use super::store::{Key, Store};

/// The node port range, as in a default cluster.
const NODE_PORTS: std::ops::RangeInclusive<u64> = 30000..=32767;

/// Defaults for a new object.
pub(crate) fn on_create(
    store: &mut Store,
    rt: &'static ResourceType,
    key: &Key,
    object: &mut Value,
) -> Result<(), ApiError> {
    if std::ptr::eq(rt, &resources::SERVICES) {
        return service(store, key, None, object);
    }
    if std::ptr::eq(rt, &resources::SECRETS) {
        secret(object);
        return Ok(());
    }
    let phase = if std::ptr::eq(rt, &resources::PODS) || std::ptr::eq(rt, &resources::PVCS) {
        "Pending"
    } else if std::ptr::eq(rt, &resources::NAMESPACES) {
        "Active"
    } else {
        return Ok(());
    };
    if object.pointer("/status/phase").is_none() {
        let status = object
            .as_object_mut()
            .map(|map| map.entry("status").or_insert_with(|| json!({})));
        if let Some(Value::Object(status)) = status {
            status.insert("phase".into(), json!(phase));
        }
    }
    Ok(())
}

/// Defaults kept across an update (a re-applied Service keeps its IP and node ports).
pub(crate) fn on_update(
    store: &mut Store,
    rt: &'static ResourceType,
    key: &Key,
    old: &Value,
    new: &mut Value,
) -> Result<(), ApiError> {
    if std::ptr::eq(rt, &resources::SERVICES) {
        return service(store, key, Some(old), new);
    }
    if std::ptr::eq(rt, &resources::SECRETS) {
        secret(new);
    }
    Ok(())
}

fn service(
    store: &mut Store,
    key: &Key,
    old: Option<&Value>,
    object: &mut Value,
) -> Result<(), ApiError> {
    let name = key.name.clone();
    let invalid = |why: String| ApiError::invalid(&resources::SERVICES, &name, why);
    let used_ports: HashSet<u64> = store
        .all(&resources::SERVICES)
        .filter(|(k, _)| *k != key)
        .flat_map(|(_, svc)| {
            ports(svc)
                .iter()
                .filter_map(|p| p.get("nodePort").and_then(Value::as_u64))
                .collect::<Vec<_>>()
        })
        .collect();
    let old_ports: Vec<Value> = old.map(|o| ports(o).to_vec()).unwrap_or_default();
    let old_ip = old.and_then(|o| o.pointer("/spec/clusterIP")).cloned();
    store.serial += 1;
    let serial = store.serial;

    let Some(spec) = object.get_mut("spec").and_then(Value::as_object_mut) else {
        return Err(invalid("spec: Required value".to_owned()));
    };
    let kind = spec
        .get("type")
        .and_then(Value::as_str)
        .unwrap_or("ClusterIP")
        .to_owned();
    spec.insert("type".into(), json!(kind));
    spec.entry("sessionAffinity")
        .or_insert_with(|| json!("None"));
    let ip_missing = spec
        .get("clusterIP")
        .and_then(Value::as_str)
        .is_none_or(str::is_empty);
    if ip_missing {
        let ip = old_ip.unwrap_or_else(|| {
            json!(format!(
                "10.96.{}.{}",
                (serial / 250) % 250,
                serial % 250 + 1
            ))
        });
        spec.insert("clusterIP".into(), ip.clone());
        spec.insert("clusterIPs".into(), json!([ip]));
    }
    let wants_node_ports = kind == "NodePort" || kind == "LoadBalancer";
    let mut taken = used_ports;
    let Some(Value::Array(ports)) = spec.get_mut("ports") else {
        return Ok(());
    };
    for port in ports.iter_mut() {
        let Some(port) = port.as_object_mut() else {
            continue;
        };
        port.entry("protocol").or_insert_with(|| json!("TCP"));
        if let Some(number) = port.get("port").cloned() {
            port.entry("targetPort").or_insert(number);
        }
        if !wants_node_ports {
            continue;
        }
        let given = port
            .get("nodePort")
            .and_then(Value::as_u64)
            .filter(|p| *p != 0);
        let node_port = match given {
            Some(p) if !NODE_PORTS.contains(&p) => {
                return Err(invalid(format!(
                    "spec.ports.nodePort: Invalid value: {p}: provided port is not in the valid range. The range of valid ports is 30000-32767"
                )));
            }
            Some(p) if taken.contains(&p) => {
                return Err(invalid(format!(
                    "spec.ports.nodePort: Invalid value: {p}: provided port is already allocated"
                )));
            }
            Some(p) => p,
            None => {
                let same = |o: &&Value| {
                    o.get("port") == port.get("port") && o.get("protocol") == port.get("protocol")
                };
                let kept = old_ports
                    .iter()
                    .find(same)
                    .and_then(|o| o.get("nodePort"))
                    .and_then(Value::as_u64);
                // Like the API server's allocator, a new port is not simply the lowest free one,
                // so a port removed and added again gets another number (deterministically here).
                let span = NODE_PORTS.end() - NODE_PORTS.start() + 1;
                let start = NODE_PORTS.start() + serial.wrapping_mul(7919) % span;
                let mut rotated = (start..=*NODE_PORTS.end()).chain(*NODE_PORTS.start()..start);
                match kept
                    .filter(|p| !taken.contains(p))
                    .or_else(|| rotated.find(|p| !taken.contains(p)))
                {
                    Some(p) => p,
                    None => {
                        return Err(invalid(
                            "spec.ports.nodePort: the node port range is full".to_owned(),
                        ));
                    }
                }
            }
        };
        taken.insert(node_port);
        port.insert("nodePort".into(), json!(node_port));
    }
    Ok(())
}

fn ports(service: &Value) -> &[Value] {
    service
        .pointer("/spec/ports")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default()
}

/// Folds `stringData` into `data` (base64), as the API server does: it never stores
/// `stringData`. The type defaults to `Opaque`.
fn secret(object: &mut Value) {
    use base64::Engine as _;
    let Some(map) = object.as_object_mut() else {
        return;
    };
    map.entry("type").or_insert_with(|| json!("Opaque"));
    let Some(Value::Object(plain)) = map.remove("stringData") else {
        return;
    };
    let data = map.entry("data").or_insert_with(|| json!({}));
    if !data.is_object() {
        *data = json!({});
    }
    for (key, value) in plain {
        let text = value.as_str().unwrap_or_default();
        data[key.as_str()] = json!(base64::engine::general_purpose::STANDARD.encode(text));
    }
}
