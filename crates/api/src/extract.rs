//! Request bodies: read within a time limit, repeated JSON keys refused, and JSON errors answered
//! with our error body instead of actix's plain-text defaults.

use std::cell::RefCell;
use std::collections::HashSet;
use std::time::Duration;

use actix_web::body::MessageBody;
use actix_web::dev::{Payload, ServiceRequest, ServiceResponse};
use actix_web::error::{JsonPayloadError, PathError, QueryPayloadError};
use actix_web::http::{Method, header};
use actix_web::middleware::Next;
use actix_web::{HttpMessage as _, HttpRequest, web};

use futures::StreamExt as _;
use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};

use crate::error::ApiError;
use crate::state::AppState;

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

/// Reads a body of at most [`MAX_BODY`] bytes and parses it with [`optional_json`]. Read here
/// rather than by the `Bytes` extractor, whose refusal of a large body is plain text.
pub async fn read_optional_json<T: serde::de::DeserializeOwned + Default>(
    payload: web::Payload,
) -> Result<T, ApiError> {
    optional_json(&read_body(payload).await?)
}

/// Reads a JSON body (`Content-Type: application/json`, at most [`MAX_BODY`] bytes) as the JSON
/// extractor would, for handlers that must check something (a credential) before they look at
/// the body.
pub async fn read_json<T: serde::de::DeserializeOwned>(
    req: &HttpRequest,
    payload: web::Payload,
) -> Result<T, ApiError> {
    let json = req
        .mime_type()
        .ok()
        .flatten()
        .is_some_and(|m| m.subtype() == "json" || m.suffix().is_some_and(|s| s == "json"));
    if !json {
        return Err(json_error(JsonPayloadError::ContentType));
    }
    parse_json(&read_body(payload).await?)
}

async fn read_body(payload: web::Payload) -> Result<web::Bytes, ApiError> {
    payload
        .to_bytes_limited(MAX_BODY)
        .await
        .map_err(|_| ApiError::PayloadTooLarge(MAX_BODY))?
        .map_err(|e| ApiError::bad_request(format!("could not read the body: {e}")))
}

/// JSON errors as the JSON extractor answers them: a value of the wrong shape names the field
/// (422), text that is not JSON is 400.
fn parse_json<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(body).map_err(|e| {
        if e.is_data() {
            ApiError::invalid("body", format!("invalid request body: {e}"))
        } else {
            ApiError::bad_request(format!("malformed JSON: {e}"))
        }
    })
}

/// Parses an optional JSON body: empty bodies (with or without `Content-Type: application/json`,
/// as the original client sends on bodyless POSTs) give `T::default()`.
pub fn optional_json<T: serde::de::DeserializeOwned + Default>(body: &[u8]) -> Result<T, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    parse_json(body)
}

/// Reads the body of every request that may carry one before its handler runs: within
/// `BODY_READ_TIMEOUT_SECONDS` (a client trickling a body in cannot hold a connection and a
/// worker longer), at most [`MAX_BODY`] bytes, and refusing JSON whose objects repeat a key
/// (which parsers disagree on: ours would take the last). Then the handler gets the body as it
/// came. Mounted inside the key check, so an unauthenticated body is never read.
pub async fn checked_body(
    mut req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    if matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS) {
        return next.call(req).await;
    }
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > MAX_BODY as u64) {
        return Err(ApiError::PayloadTooLarge(MAX_BODY).into());
    }
    let timeout = req
        .app_data::<web::Data<AppState>>()
        .map_or(DEFAULT_BODY_READ_TIMEOUT, |s| s.config.body_read_timeout);
    let mut payload = req.take_payload();
    let read = async {
        let mut body = web::BytesMut::new();
        while let Some(chunk) = payload.next().await {
            let chunk = chunk
                .map_err(|e| ApiError::bad_request(format!("could not read the body: {e}")))?;
            if body.len() + chunk.len() > MAX_BODY {
                return Err(ApiError::PayloadTooLarge(MAX_BODY));
            }
            body.extend_from_slice(&chunk);
        }
        Ok(body.freeze())
    };
    let body = tokio::time::timeout(timeout, read).await.map_err(|_| {
        ApiError::bad_request(format!(
            "the request body did not arrive within {} s",
            timeout.as_secs()
        ))
    })??;
    if let Some(path) = duplicate_key(&body) {
        return Err(ApiError::invalid(
            path.clone(),
            format!("{path}: the key appears more than once in its JSON object"),
        )
        .into());
    }
    // Every body the API takes is an object; serde would otherwise fill a struct from an array
    // field by field (`["home", 10]` as a disk). Other values are refused by the extractors (a
    // struct is never read from a number or a string); malformed JSON is left to their 400.
    let first = body.iter().find(|b| !b.is_ascii_whitespace());
    if first == Some(&b'[') && serde_json::from_slice::<serde::de::IgnoredAny>(&body).is_ok() {
        return Err(ApiError::invalid("body", "the request body must be a JSON object").into());
    }
    req.set_payload(Payload::from(body));
    next.call(req).await
}

/// What `BODY_READ_TIMEOUT_SECONDS` defaults to.
pub const DEFAULT_BODY_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// The path (`env_vars.FOO`, `keys[1].name`) of the first key that an object of a JSON text
/// repeats; `None` for JSON without one, and for text that is not JSON (the handler's parser
/// then says what is wrong with it).
pub fn duplicate_key(body: &[u8]) -> Option<String> {
    let found = RefCell::new(None);
    let mut de = serde_json::Deserializer::from_slice(body);
    let walk = Walk {
        path: String::new(),
        found: &found,
    };
    // An error is either the duplicate (recorded in `found`) or text that is not JSON.
    let _ = walk.deserialize(&mut de);
    found.into_inner()
}

/// Walks a JSON value, remembering where it is, to find a repeated key.
struct Walk<'a> {
    path: String,
    found: &'a RefCell<Option<String>>,
}

impl<'de> DeserializeSeed<'de> for Walk<'_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Walk<'_> {
    type Value = ();

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<(), E> {
        Ok(())
    }

    fn visit_i64<E: de::Error>(self, _: i64) -> Result<(), E> {
        Ok(())
    }

    fn visit_u64<E: de::Error>(self, _: u64) -> Result<(), E> {
        Ok(())
    }

    fn visit_f64<E: de::Error>(self, _: f64) -> Result<(), E> {
        Ok(())
    }

    fn visit_str<E: de::Error>(self, _: &str) -> Result<(), E> {
        Ok(())
    }

    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let mut i = 0;
        while seq
            .next_element_seed(Walk {
                path: format!("{}[{i}]", self.path),
                found: self.found,
            })?
            .is_some()
        {
            i += 1;
        }
        Ok(())
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let mut seen = HashSet::new();
        while let Some(key) = map.next_key::<String>()? {
            let path = if self.path.is_empty() {
                key.clone()
            } else {
                format!("{}.{key}", self.path)
            };
            if !seen.insert(key) {
                *self.found.borrow_mut() = Some(path);
                return Err(de::Error::custom("duplicate key"));
            }
            map.next_value_seed(Walk {
                path,
                found: self.found,
            })?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::duplicate_key;

    #[test]
    fn a_repeated_key_is_found_with_its_path_at_any_depth() {
        assert_eq!(duplicate_key(br#"{"a": 1, "a": 2}"#).as_deref(), Some("a"));
        assert_eq!(
            duplicate_key(br#"{"env_vars": {"X": "1", "Y": "2", "X": "3"}}"#).as_deref(),
            Some("env_vars.X")
        );
        assert_eq!(
            duplicate_key(br#"{"keys": [{"n": 1}, {"n": 1, "n": 2}]}"#).as_deref(),
            Some("keys[1].n")
        );
        // Escapes are read: "\u0061" is "a".
        assert_eq!(
            duplicate_key(br#"{"a": 1, "\u0061": 2}"#).as_deref(),
            Some("a")
        );
    }

    #[test]
    fn json_without_repeats_and_text_that_is_not_json_pass() {
        for ok in [
            &br#"{"a": {"a": 1}, "b": [{"a": 1}, {"a": 2}], "c": null}"#[..],
            b"[]",
            b"",
            b"not json",
            br#"{"a": 1, "b""#,
        ] {
            assert_eq!(duplicate_key(ok), None, "{}", String::from_utf8_lossy(ok));
        }
    }
}
