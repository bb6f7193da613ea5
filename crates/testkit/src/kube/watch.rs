//! Watches: newline-delimited JSON events newer than a resourceVersion, replayed from the
//! history and then streamed live until `timeoutSeconds`.
//!
//! A version older than the kept history answers HTTP 200 with one `ERROR` event carrying a
//! 410 `Status`: that is what makes kube-runtime's watcher relist (an HTTP 410 on the request
//! itself would make it retry the stale version forever).

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::path::Query;
use super::resources::ResourceType;
use super::selectors::{FieldSelector, LabelSelector};
use super::state::Shared;
use super::status::ApiError;
use super::store::{ChangeKind, Store};

/// Which objects a watch or list sees, and how they are shown.
#[derive(Debug, Clone)]
pub(crate) struct Filter {
    pub(crate) rt: &'static ResourceType,
    pub(crate) namespace: Option<String>,
    pub(crate) labels: LabelSelector,
    pub(crate) fields: FieldSelector,
    /// Only metadata (`Accept: …;as=PartialObjectMetadata…`), as metadata watchers ask.
    pub(crate) metadata_only: bool,
}

impl Filter {
    fn selects(&self, object: &Value) -> bool {
        self.labels.matches_object(object) && self.fields.matches(object)
    }

    /// The object as the client asked to see it.
    pub(crate) fn show(&self, object: &Value) -> Value {
        if self.metadata_only {
            json!({
                "kind": "PartialObjectMetadata",
                "apiVersion": "meta.k8s.io/v1",
                "metadata": object.get("metadata").cloned().unwrap_or_else(|| json!({})),
            })
        } else {
            object.clone()
        }
    }
}

/// Starts a watch: checks the request, then streams lines from a task into the returned receiver.
pub(crate) fn start(
    shared: Arc<Shared>,
    filter: Filter,
    query: &Query,
) -> Result<mpsc::Receiver<Bytes>, ApiError> {
    let from = match query.str("resourceVersion") {
        "" | "0" => None,
        text => Some(
            text.parse::<u64>()
                .map_err(|_| ApiError::bad_request(format!("invalid resourceVersion {text:?}")))?,
        ),
    };
    let timeout = match query.get("timeoutSeconds") {
        Some(text) => Duration::from_secs(
            text.parse()
                .map_err(|_| ApiError::bad_request(format!("invalid timeoutSeconds {text:?}")))?,
        ),
        None => Duration::from_secs(1800),
    };
    let options = Options {
        from,
        initial_events: query.flag("sendInitialEvents"),
        bookmarks: query.flag("allowWatchBookmarks"),
        deadline: Instant::now() + timeout,
    };
    let (tx, rx) = mpsc::channel(64);
    tokio::spawn(run(shared, filter, options, tx));
    Ok(rx)
}

#[derive(Debug, Clone, Copy)]
struct Options {
    from: Option<u64>,
    initial_events: bool,
    bookmarks: bool,
    deadline: Instant,
}

async fn run(shared: Arc<Shared>, filter: Filter, options: Options, tx: mpsc::Sender<Bytes>) {
    let opened = {
        let inner = shared.lock();
        let store = &inner.store;
        let notified = store.subscribe();
        match options.from {
            Some(from) if !options.initial_events && from < store.compacted() => {
                Err(expired(from, store.compacted()))
            }
            Some(from) if !options.initial_events => Ok((notified, from, Vec::new())),
            _ => {
                let objects = store.list(
                    filter.rt,
                    filter.namespace.as_deref(),
                    &filter.labels,
                    &filter.fields,
                );
                let mut lines: Vec<Bytes> = objects
                    .iter()
                    .map(|o| line("ADDED", &filter.show(o)))
                    .collect();
                if options.initial_events && options.bookmarks {
                    lines.push(bookmark(filter.rt, store.version(), true));
                }
                Ok((notified, store.version(), lines))
            }
        }
    };
    let (mut notified, mut last, first_lines) = match opened {
        Ok(opened) => opened,
        Err(error_line) => {
            send_all(&tx, vec![error_line]).await;
            return;
        }
    };
    if !send_all(&tx, first_lines).await {
        return;
    }
    loop {
        let next = {
            let inner = shared.lock();
            notified.borrow_and_update();
            if last < inner.store.compacted() {
                Err(expired(last, inner.store.compacted()))
            } else {
                let lines = changes(&inner.store, &filter, last);
                last = inner.store.version();
                Ok(lines)
            }
        };
        match next {
            Ok(lines) => {
                if !send_all(&tx, lines).await {
                    return;
                }
            }
            Err(error_line) => {
                send_all(&tx, vec![error_line]).await;
                return;
            }
        }
        tokio::select! {
            changed = notified.changed() => {
                if changed.is_err() {
                    return;
                }
            }
            () = tokio::time::sleep_until(options.deadline) => {
                if options.bookmarks {
                    send_all(&tx, vec![bookmark(filter.rt, last, false)]).await;
                }
                return;
            }
            () = tx.closed() => return,
        }
    }
}

/// The event lines for changes after `last` that the filter sees. An object that stops (or
/// starts) matching the selectors shows as deleted (or added), as in Kubernetes.
fn changes(store: &Store, filter: &Filter, last: u64) -> Vec<Bytes> {
    store
        .changes_after(last)
        .filter(|c| std::ptr::eq(c.rt, filter.rt) || c.rt == filter.rt)
        .filter(|c| {
            filter
                .namespace
                .as_ref()
                .is_none_or(|ns| *ns == c.namespace)
        })
        .filter_map(|c| {
            let now = filter.selects(&c.object);
            let before = c.previous.as_ref().is_some_and(|p| filter.selects(p));
            let kind = match (c.kind, before, now) {
                (ChangeKind::Added, _, true) => "ADDED",
                (ChangeKind::Deleted, _, true) => "DELETED",
                (ChangeKind::Modified, true, true) => "MODIFIED",
                (ChangeKind::Modified, false, true) => "ADDED",
                (ChangeKind::Modified, true, false) => "DELETED",
                _ => return None,
            };
            Some(line(kind, &filter.show(&c.object)))
        })
        .collect()
}

fn line(kind: &str, object: &Value) -> Bytes {
    let mut text = json!({ "type": kind, "object": object }).to_string();
    text.push('\n');
    Bytes::from(text)
}

fn expired(version: u64, oldest: u64) -> Bytes {
    line("ERROR", &ApiError::expired(version, oldest).to_status())
}

fn bookmark(rt: &ResourceType, version: u64, initial_end: bool) -> Bytes {
    let mut metadata = json!({ "resourceVersion": version.to_string() });
    if initial_end {
        metadata["annotations"] = json!({ "k8s.io/initial-events-end": "true" });
    }
    line(
        "BOOKMARK",
        &json!({ "kind": rt.kind, "apiVersion": rt.api_version(), "metadata": metadata }),
    )
}

/// Sends lines in order; false when the client went away.
async fn send_all(tx: &mpsc::Sender<Bytes>, lines: Vec<Bytes>) -> bool {
    for line in lines {
        if tx.send(line).await.is_err() {
            return false;
        }
    }
    true
}
