//! The body of `POST /v1/jobs/submit` is parsed and resolved in the domain
//! ([`gpudev_domain::submission`]); here are its mapping to API errors and the canonical hash that
//! makes retries idempotent.

use gpudev_domain::RequestError;
use gpudev_domain::submission::SubmissionError;
use serde_json::Value;
use sha2::{Digest as _, Sha256};

pub use gpudev_domain::submission::JobSubmission;

use crate::error::ApiError;

/// 422 for a submission whose control variables or API-only fields are malformed.
pub fn submission_error(e: SubmissionError) -> ApiError {
    ApiError::invalid(e.field, e.detail)
}

/// 422 for a request the domain refused, naming the field as the submit body spells it.
pub fn request_error(e: RequestError) -> ApiError {
    let field = match e.field() {
        "env" => "env_vars",
        "name" => "name",
        other => other,
    };
    ApiError::invalid(field, e.to_string())
}

/// SHA-256 (hex) of a JSON value written canonically (object keys sorted at every level, no
/// whitespace), so the same request sent twice hashes the same whatever its key order or spacing.
pub fn canonical_hash(value: &Value) -> String {
    let mut out = Vec::new();
    write_canonical(value, &mut out);
    hex::encode(Sha256::digest(&out))
}

fn write_canonical(value: &Value, out: &mut Vec<u8>) {
    match value {
        Value::Object(map) => {
            let mut entries: Vec<(&String, &Value)> = map.iter().collect();
            entries.sort_by(|a, b| a.0.cmp(b.0));
            out.push(b'{');
            for (i, (k, v)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                out.extend_from_slice(Value::String(k.clone()).to_string().as_bytes());
                out.push(b':');
                write_canonical(v, out);
            }
            out.push(b'}');
        }
        Value::Array(items) => {
            out.push(b'[');
            for (i, v) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_canonical(v, out);
            }
            out.push(b']');
        }
        scalar => out.extend_from_slice(scalar.to_string().as_bytes()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_canonical_hash_ignores_key_order_and_spacing_only() {
        let a: Value = serde_json::from_str(r#"{"b": 1, "a": {"y": [1, 2], "x": "s"}}"#).unwrap();
        let b: Value = serde_json::from_str(r#"{"a":{"x":"s","y":[1,2]},"b":1}"#).unwrap();
        let c: Value = serde_json::from_str(r#"{"a":{"x":"s","y":[2,1]},"b":1}"#).unwrap();
        assert_eq!(canonical_hash(&a), canonical_hash(&b));
        assert_ne!(canonical_hash(&a), canonical_hash(&c));
        assert_eq!(canonical_hash(&a).len(), 64);
    }
}
