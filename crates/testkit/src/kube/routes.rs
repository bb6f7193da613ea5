//! Request dispatch: path and verb to store operation, with the request log and injected
//! faults around it.

use std::convert::Infallible;
use std::sync::Arc;

use bytes::Bytes;
use futures::StreamExt;
use http::{Method, Request, Response, StatusCode, header};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::Frame;
use serde_json::{Value, json};

use super::faults::{self, FaultKind};
use super::log::{RequestRecord, Verb};
use super::patch::{self, PatchKind};
use super::path::{self, Query, Route};
use super::selectors::{FieldSelector, LabelSelector};
use super::state::Shared;
use super::status::ApiError;
use super::store::DeleteOptions;
use super::watch::{self, Filter};

/// The body of every response: a whole JSON document or a stream of watch events.
pub(crate) type ResponseBody = UnsyncBoxBody<Bytes, Infallible>;

/// How many requests the log keeps; past this the older half is dropped.
const LOG_LIMIT: usize = 200_000;

/// What a handled request answers.
enum Reply {
    Json(StatusCode, Value),
    Stream(tokio::sync::mpsc::Receiver<Bytes>),
}

/// Answers one request.
pub(crate) async fn handle(shared: Arc<Shared>, request: Request<Bytes>) -> Response<ResponseBody> {
    let path = request.uri().path().to_owned();
    if path == "/version" && request.method() == Method::GET {
        return json_response(StatusCode::OK, &version());
    }
    let route = match path::parse_path(&path) {
        Ok(route) => route,
        Err(error) => return error_response(&error),
    };
    let query = Query::parse(request.uri().query());
    let verb = match verb_of(request.method(), &route, &query) {
        Ok(verb) => verb,
        Err(error) => return error_response(&error),
    };
    let mut record = RequestRecord {
        verb,
        resource: route.rt.plural.to_owned(),
        subresource: route.subresource.clone(),
        namespace: route.namespace.clone(),
        name: route.name.clone().or_else(|| body_name(request.body())),
        status: 0,
        injected: false,
    };

    let fault = {
        let mut inner = shared.lock();
        faults::take(
            &mut inner.faults,
            verb,
            route.rt.plural,
            record.name.as_deref(),
        )
    };
    let reply = match fault {
        Some(FaultKind::Delay(delay)) => {
            tokio::time::sleep(delay).await;
            dispatch(&shared, verb, &route, &query, &request)
        }
        Some(kind) => {
            record.injected = true;
            Err(injected(kind, &route).await)
        }
        None => dispatch(&shared, verb, &route, &query, &request),
    };

    let response = match reply {
        Ok(Reply::Json(code, body)) => json_response(code, &body),
        Ok(Reply::Stream(lines)) => stream_response(lines),
        Err(error) => error_response(&error),
    };
    record.status = response.status().as_u16();
    let mut inner = shared.lock();
    if inner.log.len() >= LOG_LIMIT {
        // A long local run would otherwise grow without bound; tests never get near this.
        inner.log.drain(..LOG_LIMIT / 2);
    }
    inner.log.push(record);
    drop(inner);
    response
}

fn verb_of(method: &Method, route: &Route, query: &Query) -> Result<Verb, ApiError> {
    let named = route.name.is_some();
    let verb = match *method {
        Method::GET if named => Verb::Get,
        Method::GET if query.flag("watch") => Verb::Watch,
        Method::GET => Verb::List,
        Method::POST if !named => Verb::Create,
        Method::PUT if named => Verb::Update,
        Method::PATCH if named => Verb::Patch,
        Method::DELETE if named => Verb::Delete,
        Method::DELETE => Verb::DeleteCollection,
        _ => {
            return Err(ApiError::method_not_allowed(format!(
                "{method} is not supported on {}",
                route.rt.plural
            )));
        }
    };
    if route.subresource.is_some() && !matches!(verb, Verb::Get | Verb::Update | Verb::Patch) {
        return Err(ApiError::method_not_allowed(format!(
            "{verb} is not supported on a subresource"
        )));
    }
    Ok(verb)
}

async fn injected(kind: FaultKind, route: &Route) -> ApiError {
    let name = route.name.as_deref().unwrap_or_default();
    match kind {
        FaultKind::Status500 => ApiError::internal("injected fault: internal error"),
        FaultKind::Conflict409 => ApiError::conflict(route.rt, name),
        FaultKind::Timeout(delay) => {
            tokio::time::sleep(delay).await;
            ApiError::timeout(
                "injected fault: the server was unable to return a response in the time allotted",
            )
        }
        FaultKind::Status { code, reason } => {
            ApiError::custom(code, reason, format!("injected fault: {reason}"))
        }
        FaultKind::Delay(_) => ApiError::internal("unreachable: delays are served"),
    }
}

fn dispatch(
    shared: &Arc<Shared>,
    verb: Verb,
    route: &Route,
    query: &Query,
    request: &Request<Bytes>,
) -> Result<Reply, ApiError> {
    let rt = route.rt;
    let ns = route.namespace.as_deref();
    let name = route.name.as_deref().unwrap_or_default();
    let status_only = route.subresource.is_some();
    let body = request.body();
    let ok = |value: Value| Ok(Reply::Json(StatusCode::OK, value));
    match verb {
        Verb::Get => {
            let object = shared.lock().store.get(rt, ns, name)?;
            ok(filter(route, &Query::default(), request)?.show(&object))
        }
        Verb::List => {
            let filter = filter(route, query, request)?;
            let inner = shared.lock();
            let items: Vec<Value> = inner
                .store
                .list(rt, ns, &filter.labels, &filter.fields)
                .iter()
                .map(|o| filter.show(o))
                .collect();
            ok(list(&filter, items, inner.store.version()))
        }
        Verb::Watch => {
            let filter = filter(route, query, request)?;
            Ok(Reply::Stream(watch::start(
                Arc::clone(shared),
                filter,
                query,
            )?))
        }
        Verb::Create => {
            let object = patch::parse_json(body)?;
            let created = shared.lock().store.create(rt, ns, object)?;
            Ok(Reply::Json(StatusCode::CREATED, created))
        }
        Verb::Update => {
            let object = patch::parse_json(body)?;
            ok(shared
                .lock()
                .store
                .update(rt, ns, name, object, status_only)?)
        }
        Verb::Patch => {
            let content_type = request
                .headers()
                .get(header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default();
            let kind = PatchKind::from_content_type(content_type)?;
            if kind == PatchKind::Apply && query.str("fieldManager").is_empty() {
                return Err(ApiError::bad_request(
                    "PatchOptions.meta.k8s.io \"\" is invalid: fieldManager: Required value: is required for apply patch",
                ));
            }
            let mut inner = shared.lock();
            let current = match inner.store.get(rt, ns, name) {
                Ok(current) => current,
                Err(error) if kind == PatchKind::Apply && !status_only && error.code == 404 => {
                    let mut object = patch::parse_json(body)?;
                    let meta = super::store::metadata_mut(&mut object)?;
                    meta.entry("name").or_insert_with(|| json!(name));
                    if meta.get("name").and_then(Value::as_str) != Some(name) {
                        return Err(ApiError::bad_request(
                            "the name of the object does not match the name on the URL",
                        ));
                    }
                    let created = inner.store.create(rt, ns, object)?;
                    return Ok(Reply::Json(StatusCode::CREATED, created));
                }
                Err(error) => return Err(error),
            };
            let mut next = current;
            patch::apply(kind, &mut next, body)?;
            ok(inner.store.update(rt, ns, name, next, status_only)?)
        }
        Verb::Delete => {
            let options = delete_options(query, body);
            ok(shared.lock().store.delete(rt, ns, name, options)?)
        }
        Verb::DeleteCollection => {
            let filter = filter(route, query, request)?;
            let options = delete_options(query, body);
            let mut inner = shared.lock();
            let doomed = inner.store.list(rt, ns, &filter.labels, &filter.fields);
            let mut deleted = Vec::new();
            for object in doomed {
                let object_ns = object
                    .pointer("/metadata/namespace")
                    .and_then(Value::as_str)
                    .map(str::to_owned);
                let object_name = object
                    .pointer("/metadata/name")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_owned();
                if let Ok(gone) =
                    inner
                        .store
                        .delete(rt, object_ns.as_deref(), &object_name, options)
                {
                    deleted.push(gone);
                }
            }
            let version = inner.store.version();
            ok(list(&filter, deleted, version))
        }
    }
}

fn filter(route: &Route, query: &Query, request: &Request<Bytes>) -> Result<Filter, ApiError> {
    let accept = request
        .headers()
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let fields = FieldSelector::parse(query.str("fieldSelector"))?;
    fields.check_supported(route.rt.plural)?;
    Ok(Filter {
        rt: route.rt,
        namespace: route.namespace.clone(),
        labels: LabelSelector::parse(query.str("labelSelector"))?,
        fields,
        metadata_only: accept.contains("as=PartialObjectMetadata"),
    })
}

fn list(filter: &Filter, items: Vec<Value>, version: u64) -> Value {
    let (kind, api_version) = if filter.metadata_only {
        (
            "PartialObjectMetadataList".to_owned(),
            "meta.k8s.io/v1".to_owned(),
        )
    } else {
        (format!("{}List", filter.rt.kind), filter.rt.api_version())
    };
    json!({
        "kind": kind,
        "apiVersion": api_version,
        "metadata": { "resourceVersion": version.to_string() },
        "items": items,
    })
}

fn delete_options(query: &Query, body: &[u8]) -> DeleteOptions {
    let body: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    let grace_seconds = query
        .get("gracePeriodSeconds")
        .and_then(|g| g.parse().ok())
        .or_else(|| body.get("gracePeriodSeconds").and_then(Value::as_u64));
    let policy = query
        .get("propagationPolicy")
        .map(str::to_owned)
        .or_else(|| {
            body.get("propagationPolicy")
                .and_then(Value::as_str)
                .map(str::to_owned)
        });
    DeleteOptions {
        grace_seconds,
        orphan: policy.as_deref() == Some("Orphan"),
    }
}

fn body_name(body: &Bytes) -> Option<String> {
    let value: Value = serde_json::from_slice(body).ok()?;
    value
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .map(str::to_owned)
}

fn version() -> Value {
    json!({
        "major": "1",
        "minor": "33",
        "gitVersion": "v1.33.0-gpudev-fake",
        "gitCommit": "0000000000000000000000000000000000000000",
        "gitTreeState": "clean",
        "buildDate": "2025-01-01T00:00:00Z",
        "goVersion": "go1.24",
        "compiler": "gc",
        "platform": "linux/amd64",
    })
}

fn json_response(code: StatusCode, body: &Value) -> Response<ResponseBody> {
    let mut response = Response::new(Full::new(Bytes::from(body.to_string())).boxed_unsync());
    *response.status_mut() = code;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    response
}

fn error_response(error: &ApiError) -> Response<ResponseBody> {
    let code = StatusCode::from_u16(error.code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    json_response(code, &error.to_status())
}

fn stream_response(lines: tokio::sync::mpsc::Receiver<Bytes>) -> Response<ResponseBody> {
    let frames = futures::stream::unfold(lines, |mut lines| async move {
        lines
            .recv()
            .await
            .map(|line| (Ok::<_, Infallible>(Frame::data(line)), lines))
    })
    .boxed();
    let mut response = Response::new(StreamBody::new(frames).boxed_unsync());
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    response
}
