//! Applying PATCH bodies: JSON merge patch, strategic merge (treated as merge), JSON patch and
//! server-side apply (approximated as a merge of the applied configuration).

use serde_json::Value;

use super::status::ApiError;

/// The patch flavours, from the request's `Content-Type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PatchKind {
    /// `application/merge-patch+json` (RFC 7386).
    Merge,
    /// `application/strategic-merge-patch+json`: applied as a merge patch, so lists are replaced
    /// whole rather than merged by key.
    Strategic,
    /// `application/json-patch+json` (RFC 6902).
    Json,
    /// `application/apply-patch+yaml`: server-side apply. Creates the object when absent;
    /// otherwise the applied fields are merged in. Fields dropped from the applied configuration
    /// are not removed (there is no managed-field tracking).
    Apply,
}

impl PatchKind {
    /// The flavour named by a `Content-Type`.
    pub(crate) fn from_content_type(content_type: &str) -> Result<Self, ApiError> {
        let media = content_type.split(';').next().unwrap_or_default().trim();
        match media {
            "application/merge-patch+json" => Ok(Self::Merge),
            "application/strategic-merge-patch+json" => Ok(Self::Strategic),
            "application/json-patch+json" => Ok(Self::Json),
            "application/apply-patch+yaml" | "application/apply-patch+json" => Ok(Self::Apply),
            _ => Err(ApiError::unsupported_media_type(content_type)),
        }
    }
}

/// Applies a patch body to `target`.
pub(crate) fn apply(kind: PatchKind, target: &mut Value, body: &[u8]) -> Result<(), ApiError> {
    match kind {
        PatchKind::Merge | PatchKind::Strategic | PatchKind::Apply => {
            merge(target, &parse_json(body)?);
            Ok(())
        }
        PatchKind::Json => {
            let patch: json_patch::Patch = serde_json::from_slice(body)
                .map_err(|e| ApiError::bad_request(format!("invalid JSON patch: {e}")))?;
            json_patch::patch(target, &patch).map_err(|e| {
                ApiError::custom(
                    422,
                    "Invalid",
                    format!("the JSON patch could not be applied: {e}"),
                )
            })
        }
    }
}

/// Parses a JSON body (server-side apply bodies from kube-rs are JSON, which is also YAML).
pub(crate) fn parse_json(body: &[u8]) -> Result<Value, ApiError> {
    serde_json::from_slice(body).map_err(|e| {
        ApiError::bad_request(format!(
            "the request body is not valid JSON (YAML apply bodies are not supported): {e}"
        ))
    })
}

/// RFC 7386 merge: objects merge key by key, `null` deletes, anything else replaces.
pub(crate) fn merge(target: &mut Value, patch: &Value) {
    let Value::Object(patch_map) = patch else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = Value::Object(serde_json::Map::new());
    }
    if let Value::Object(target_map) = target {
        for (key, value) in patch_map {
            if value.is_null() {
                target_map.remove(key);
            } else {
                merge(target_map.entry(key.clone()).or_insert(Value::Null), value);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn merge_patch_merges_objects_replaces_lists_and_deletes_nulls() {
        let mut doc = json!({ "a": { "b": 1, "c": 2 }, "l": [1, 2], "gone": true });
        merge(
            &mut doc,
            &json!({ "a": { "c": 3, "d": 4 }, "l": [3], "gone": null }),
        );
        assert_eq!(doc, json!({ "a": { "b": 1, "c": 3, "d": 4 }, "l": [3] }));
    }

    #[test]
    fn json_patch_operations_apply() {
        let mut doc = json!({ "metadata": { "labels": { "a": "1" } } });
        let body = br#"[{"op":"add","path":"/metadata/labels/b","value":"2"},{"op":"remove","path":"/metadata/labels/a"}]"#;
        apply(PatchKind::Json, &mut doc, body).unwrap();
        assert_eq!(doc, json!({ "metadata": { "labels": { "b": "2" } } }));
    }

    #[test]
    fn unknown_content_types_are_415() {
        assert_eq!(
            PatchKind::from_content_type("text/plain").unwrap_err().code,
            415
        );
        assert_eq!(
            PatchKind::from_content_type("application/apply-patch+yaml").unwrap(),
            PatchKind::Apply
        );
    }
}
