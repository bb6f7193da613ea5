//! Label and field selectors, as sent in `labelSelector` and `fieldSelector`.

use serde_json::Value;

use super::status::ApiError;

/// A parsed `labelSelector`: every requirement must hold.
#[derive(Debug, Clone, Default)]
pub(crate) struct LabelSelector(Vec<LabelRequirement>);

#[derive(Debug, Clone)]
enum LabelRequirement {
    Exists(String),
    NotExists(String),
    /// `key=v`, `key==v`, `key in (a,b)`.
    In(String, Vec<String>),
    /// `key!=v`, `key notin (a,b)`: also true when the key is absent, as in Kubernetes.
    NotIn(String, Vec<String>),
}

impl LabelSelector {
    /// Parses a selector; an empty string selects everything.
    pub(crate) fn parse(text: &str) -> Result<Self, ApiError> {
        split_top_level(text)
            .into_iter()
            .map(str::trim)
            .filter(|term| !term.is_empty())
            .map(parse_requirement)
            .collect::<Result<Vec<_>, _>>()
            .map(Self)
    }

    /// Whether an object with these labels is selected.
    pub(crate) fn matches(&self, labels: Option<&serde_json::Map<String, Value>>) -> bool {
        let get = |key: &str| labels.and_then(|l| l.get(key)).and_then(Value::as_str);
        self.0.iter().all(|req| match req {
            LabelRequirement::Exists(key) => get(key).is_some(),
            LabelRequirement::NotExists(key) => get(key).is_none(),
            LabelRequirement::In(key, values) => {
                get(key).is_some_and(|v| values.iter().any(|x| x == v))
            }
            LabelRequirement::NotIn(key, values) => {
                !get(key).is_some_and(|v| values.iter().any(|x| x == v))
            }
        })
    }

    /// Whether this object's `metadata.labels` are selected.
    pub(crate) fn matches_object(&self, object: &Value) -> bool {
        self.matches(
            object
                .pointer("/metadata/labels")
                .and_then(Value::as_object),
        )
    }
}

/// Splits on commas that are not inside `( … )`.
fn split_top_level(text: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let mut depth = 0_i32;
    let mut start = 0;
    for (i, c) in text.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                parts.push(&text[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&text[start..]);
    parts
}

fn parse_requirement(term: &str) -> Result<LabelRequirement, ApiError> {
    let bad = || {
        ApiError::bad_request(format!(
            "unable to parse requirement: invalid label selector term {term:?}"
        ))
    };
    let key = |k: &str| {
        let k = k.trim();
        if k.is_empty() || k.contains(char::is_whitespace) {
            Err(bad())
        } else {
            Ok(k.to_owned())
        }
    };
    if let Some(rest) = term.strip_prefix('!') {
        return Ok(LabelRequirement::NotExists(key(rest)?));
    }
    if let Some((k, v)) = term.split_once("!=") {
        return Ok(LabelRequirement::NotIn(key(k)?, vec![v.trim().to_owned()]));
    }
    if let Some((k, v)) = term.split_once("==").or_else(|| term.split_once('=')) {
        return Ok(LabelRequirement::In(key(k)?, vec![v.trim().to_owned()]));
    }
    if let Some(open) = term.find('(') {
        let close = term.rfind(')').filter(|&c| c > open).ok_or_else(bad)?;
        let values: Vec<String> = term[open + 1..close]
            .split(',')
            .map(|v| v.trim().to_owned())
            .filter(|v| !v.is_empty())
            .collect();
        let mut head = term[..open].split_whitespace();
        let (Some(k), Some(op), None) = (head.next(), head.next(), head.next()) else {
            return Err(bad());
        };
        return match op {
            "in" => Ok(LabelRequirement::In(key(k)?, values)),
            "notin" => Ok(LabelRequirement::NotIn(key(k)?, values)),
            _ => Err(bad()),
        };
    }
    Ok(LabelRequirement::Exists(key(term)?))
}

/// A parsed `fieldSelector`: `path=value`, `path==value` or `path!=value` terms, all of which
/// must hold. The paths a kind supports are those the API server indexes (see
/// [`FieldSelector::check_supported`]); a missing field compares as the empty string.
#[derive(Debug, Clone, Default)]
pub(crate) struct FieldSelector(Vec<(String, bool, String)>);

impl FieldSelector {
    /// Parses a selector; an empty string selects everything.
    pub(crate) fn parse(text: &str) -> Result<Self, ApiError> {
        text.split(',')
            .map(str::trim)
            .filter(|term| !term.is_empty())
            .map(|term| {
                let (path, equal, value) = if let Some((p, v)) = term.split_once("!=") {
                    (p, false, v)
                } else if let Some((p, v)) = term.split_once("==").or_else(|| term.split_once('='))
                {
                    (p, true, v)
                } else {
                    return Err(ApiError::bad_request(format!(
                        "invalid selector: '{term}'; can't understand '{term}'"
                    )));
                };
                Ok((path.trim().to_owned(), equal, value.trim().to_owned()))
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Self)
    }

    /// Refuses, as the API server does (400), a field the kind cannot be selected by: only
    /// `metadata.name`, `metadata.namespace` and a few fields per kind are indexed.
    pub(crate) fn check_supported(&self, plural: &str) -> Result<(), ApiError> {
        const EVENT_FIELDS: &[&str] = &[
            "involvedObject.kind",
            "involvedObject.namespace",
            "involvedObject.name",
            "involvedObject.uid",
            "involvedObject.apiVersion",
            "involvedObject.resourceVersion",
            "involvedObject.fieldPath",
            "regarding.kind",
            "regarding.namespace",
            "regarding.name",
            "regarding.uid",
            "regarding.apiVersion",
            "regarding.resourceVersion",
            "regarding.fieldPath",
            "reason",
            "reportingComponent",
            "reportingController",
            "source",
            "type",
        ];
        let per_kind: &[&str] = match plural {
            "pods" => &[
                "spec.nodeName",
                "spec.restartPolicy",
                "spec.schedulerName",
                "spec.serviceAccountName",
                "spec.hostNetwork",
                "status.phase",
                "status.podIP",
                "status.podIPs",
                "status.nominatedNodeName",
            ],
            "nodes" => &["spec.unschedulable"],
            "namespaces" => &["status.phase"],
            "secrets" => &["type"],
            "services" => &["spec.clusterIP", "spec.type"],
            "events" => EVENT_FIELDS,
            _ => &[],
        };
        for (path, _, _) in &self.0 {
            let path = path.as_str();
            if !matches!(path, "metadata.name" | "metadata.namespace") && !per_kind.contains(&path)
            {
                return Err(ApiError::bad_request(format!(
                    "field label not supported: {path}"
                )));
            }
        }
        Ok(())
    }

    /// Whether the object is selected.
    pub(crate) fn matches(&self, object: &Value) -> bool {
        self.0
            .iter()
            .all(|(path, equal, value)| (field_value(object, path) == *value) == *equal)
    }
}

/// The value at a dotted path, as a selector compares it.
fn field_value(object: &Value, path: &str) -> String {
    let pointer: String = path.split('.').map(|part| format!("/{part}")).collect();
    match object.pointer(&pointer) {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> Value {
        let map: serde_json::Map<String, Value> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), Value::String((*v).to_owned())))
            .collect();
        json!({ "metadata": { "labels": map } })
    }

    fn selects(selector: &str, pairs: &[(&str, &str)]) -> bool {
        LabelSelector::parse(selector)
            .map(|s| s.matches_object(&labels(pairs)))
            .unwrap_or(false)
    }

    #[test]
    fn label_selector_forms_match_as_kubernetes_does() {
        assert!(selects("", &[]));
        assert!(selects("a=1", &[("a", "1")]));
        assert!(selects("a==1,b", &[("a", "1"), ("b", "x")]));
        assert!(!selects("a=1", &[("a", "2")]));
        assert!(selects("a!=1", &[]));
        assert!(!selects("a!=1", &[("a", "1")]));
        assert!(selects("a in (1, 2),c notin (3)", &[("a", "2")]));
        assert!(!selects("a in (1,2)", &[("a", "3")]));
        assert!(!selects("a notin (1,2)", &[("a", "1")]));
        assert!(selects("!a", &[("b", "1")]));
        assert!(!selects("!a", &[("a", "1")]));
        assert!(selects(
            "app.kubernetes.io/managed-by=gpudev",
            &[("app.kubernetes.io/managed-by", "gpudev")]
        ));
    }

    #[test]
    fn malformed_label_selectors_are_rejected() {
        assert!(LabelSelector::parse("a in 1,2").is_err());
        assert!(LabelSelector::parse("a b").is_err());
        assert!(LabelSelector::parse("x maybe (1)").is_err());
    }

    #[test]
    fn field_selectors_compare_dotted_paths() {
        let pod = json!({ "metadata": { "name": "p" }, "spec": { "nodeName": "n1" }, "status": { "phase": "Running" } });
        let check = |s: &str| {
            FieldSelector::parse(s)
                .map(|f| f.matches(&pod))
                .unwrap_or(false)
        };
        assert!(check("metadata.name=p"));
        assert!(check("spec.nodeName==n1,status.phase!=Failed"));
        assert!(!check("status.phase=Pending"));
        assert!(check("spec.schedulerName="));
        assert!(FieldSelector::parse("nonsense").is_err());
    }
}
