//! The validation a real API server does that our manifests could plausibly fail: object
//! names and label keys and values.

use serde_json::Value;

use super::resources::{self, ResourceType};

/// Why an object is invalid, or `None`.
pub(crate) fn problem(rt: &ResourceType, object: &Value) -> Option<String> {
    let name = object
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let name_problem = if std::ptr::eq(rt, &resources::SERVICES) {
        dns1035_label(name)
    } else if std::ptr::eq(rt, &resources::NAMESPACES) {
        dns1123_label(name)
    } else {
        dns1123_subdomain(name)
    };
    if let Some(why) = name_problem {
        return Some(format!("metadata.name: Invalid value: {name:?}: {why}"));
    }
    let labels = object
        .pointer("/metadata/labels")
        .and_then(Value::as_object);
    for (key, value) in labels.into_iter().flatten() {
        if let Some(why) = label_key(key) {
            return Some(format!("metadata.labels: Invalid value: {key:?}: {why}"));
        }
        let Some(value) = value.as_str() else {
            return Some(format!(
                "metadata.labels: Invalid value: {key:?}: the value must be a string"
            ));
        };
        if let Some(why) = label_value(value) {
            return Some(format!("metadata.labels: Invalid value: {value:?}: {why}"));
        }
    }
    None
}

/// Why a pod update is refused, or `None`: a pod's spec is immutable except for container
/// images, `activeDeadlineSeconds`, added tolerations and `terminationGracePeriodSeconds`.
pub(crate) fn pod_update_problem(old: &Value, new: &Value) -> Option<String> {
    let frozen = |pod: &Value| {
        let mut spec = pod.get("spec").cloned().unwrap_or(Value::Null);
        if let Some(map) = spec.as_object_mut() {
            for field in [
                "activeDeadlineSeconds",
                "tolerations",
                "terminationGracePeriodSeconds",
            ] {
                map.remove(field);
            }
            for list in ["containers", "initContainers"] {
                for container in map
                    .get_mut(list)
                    .and_then(Value::as_array_mut)
                    .into_iter()
                    .flatten()
                {
                    if let Some(container) = container.as_object_mut() {
                        container.remove("image");
                    }
                }
            }
        }
        spec
    };
    (frozen(old) != frozen(new)).then(|| {
        "spec: Forbidden: pod updates may not change fields other than `spec.containers[*].image`, \
         `spec.initContainers[*].image`, `spec.activeDeadlineSeconds`, `spec.tolerations` (only \
         additions to existing tolerations) or `spec.terminationGracePeriodSeconds`"
            .to_owned()
    })
}

fn is_lower_alnum(c: char) -> bool {
    c.is_ascii_lowercase() || c.is_ascii_digit()
}

fn dns1123_label(name: &str) -> Option<String> {
    let ok = !name.is_empty()
        && name.len() <= 63
        && name.chars().all(|c| is_lower_alnum(c) || c == '-')
        && name.starts_with(is_lower_alnum)
        && name.ends_with(is_lower_alnum);
    (!ok).then(|| {
        "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', \
         start and end with an alphanumeric character, and be at most 63 characters"
            .to_owned()
    })
}

fn dns1123_subdomain(name: &str) -> Option<String> {
    // Each dot-separated part is label-shaped, but only the whole name is length-limited.
    let part_ok = |part: &str| {
        !part.is_empty()
            && part.chars().all(|c| is_lower_alnum(c) || c == '-')
            && part.starts_with(is_lower_alnum)
            && part.ends_with(is_lower_alnum)
    };
    let ok = !name.is_empty() && name.len() <= 253 && name.split('.').all(part_ok);
    (!ok).then(|| {
        "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', \
         and must start and end with an alphanumeric character (at most 253 characters)"
            .to_owned()
    })
}

fn dns1035_label(name: &str) -> Option<String> {
    let ok = dns1123_label(name).is_none() && name.starts_with(|c: char| c.is_ascii_lowercase());
    (!ok).then(|| {
        "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an \
         alphabetic character, end with an alphanumeric character, and be at most 63 characters"
            .to_owned()
    })
}

fn qualified_name_part(name: &str) -> bool {
    let alnum = |c: char| c.is_ascii_alphanumeric();
    !name.is_empty()
        && name.len() <= 63
        && name
            .chars()
            .all(|c| alnum(c) || matches!(c, '-' | '_' | '.'))
        && name.starts_with(alnum)
        && name.ends_with(alnum)
}

fn label_key(key: &str) -> Option<String> {
    let (prefix, name) = match key.split_once('/') {
        Some((prefix, name)) => (Some(prefix), name),
        None => (None, key),
    };
    if let Some(prefix) = prefix
        && dns1123_subdomain(prefix).is_some()
    {
        return Some("the prefix must be a DNS subdomain".to_owned());
    }
    (!qualified_name_part(name)).then(|| {
        "name part must consist of alphanumeric characters, '-', '_' or '.', start and end with an \
         alphanumeric character, and be at most 63 characters"
            .to_owned()
    })
}

fn label_value(value: &str) -> Option<String> {
    (!value.is_empty() && !qualified_name_part(value)).then(|| {
        "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', \
         start and end with an alphanumeric character, and be at most 63 characters"
            .to_owned()
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn names_and_labels_are_checked_like_kubernetes() {
        let pod =
            |name: &str, labels: Value| json!({ "metadata": { "name": name, "labels": labels } });
        assert_eq!(
            problem(
                &resources::PODS,
                &pod("gpu-dev-abc.1", json!({ "gpudev.io/user": "alice" }))
            ),
            None
        );
        assert!(problem(&resources::PODS, &pod("Upper", json!({}))).is_some());
        assert!(problem(&resources::PODS, &pod("x", json!({ "k": "has space" }))).is_some());
        assert!(problem(&resources::PODS, &pod("x", json!({ "bad/prefix/x": "v" }))).is_some());
        assert!(problem(&resources::SERVICES, &pod("1abc", json!({}))).is_some());
        assert!(problem(&resources::SERVICES, &pod("a.b", json!({}))).is_some());
        assert!(problem(&resources::PODS, &pod(&"a".repeat(64), json!({}))).is_none());
        assert!(problem(&resources::SERVICES, &pod(&"a".repeat(64), json!({}))).is_some());
    }
}
