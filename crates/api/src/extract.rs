//! JSON body handling that answers with our error body instead of actix's plain-text defaults.

use actix_web::error::{JsonPayloadError, PathError, QueryPayloadError};
use actix_web::{HttpRequest, web};

use crate::error::ApiError;

/// Largest request body accepted.
pub const MAX_BODY: usize = 64 * 1024;

/// JSON extractor settings: 64 KiB limit, JSON error bodies.
pub fn json_config() -> web::JsonConfig {
    web::JsonConfig::default()
        .limit(MAX_BODY)
        .error_handler(|err, _req: &HttpRequest| json_error(err).into())
}

fn json_error(err: JsonPayloadError) -> ApiError {
    match err {
        JsonPayloadError::Overflow { limit }
        | JsonPayloadError::OverflowKnownLength { limit, .. } => ApiError::PayloadTooLarge(limit),
        JsonPayloadError::ContentType => ApiError::UnsupportedMediaType(
            "request body must be JSON (Content-Type: application/json)".into(),
        ),
        JsonPayloadError::Deserialize(e) if e.is_data() => {
            ApiError::invalid("body", format!("invalid request body: {e}"))
        }
        JsonPayloadError::Deserialize(e) => ApiError::bad_request(format!("malformed JSON: {e}")),
        JsonPayloadError::Payload(e) => {
            ApiError::bad_request(format!("could not read the body: {e}"))
        }
        other => ApiError::bad_request(other.to_string()),
    }
}

/// Query-string settings with JSON error bodies.
pub fn query_config() -> web::QueryConfig {
    web::QueryConfig::default().error_handler(|err, _req| {
        let detail = match &err {
            QueryPayloadError::Deserialize(e) => format!("invalid query parameter: {e}"),
            other => other.to_string(),
        };
        ApiError::invalid("query", detail).into()
    })
}

/// Path settings with JSON error bodies.
pub fn path_config() -> web::PathConfig {
    web::PathConfig::default().error_handler(|err, _req| {
        let detail = match &err {
            PathError::Deserialize(e) => format!("invalid path parameter: {e}"),
            other => other.to_string(),
        };
        ApiError::invalid("path", detail).into()
    })
}

/// Parses an optional JSON body: empty bodies (with or without `Content-Type: application/json`,
/// as the original client sends on bodyless POSTs) give `T::default()`.
pub fn optional_json<T: serde::de::DeserializeOwned + Default>(body: &[u8]) -> Result<T, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    serde_json::from_slice(body).map_err(|e| {
        if e.is_data() {
            ApiError::invalid("body", format!("invalid request body: {e}"))
        } else {
            ApiError::bad_request(format!("malformed JSON: {e}"))
        }
    })
}
