//! The in-memory object store: objects as JSON, a global resourceVersion counter, and a bounded
//! history of changes that watches replay.

use std::collections::{BTreeMap, VecDeque};

use serde_json::{Value, json};
use tokio::sync::watch;

use super::defaults;
use super::resources::ResourceType;
use super::selectors::{FieldSelector, LabelSelector};
use super::status::ApiError;
use super::{time, validate};

/// Where an object lives: its resource, namespace (empty when cluster-scoped) and name.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Key {
    group: &'static str,
    plural: &'static str,
    pub(crate) namespace: String,
    pub(crate) name: String,
}

impl Key {
    pub(crate) fn new(rt: &'static ResourceType, namespace: Option<&str>, name: &str) -> Self {
        Self {
            group: rt.group,
            plural: rt.plural,
            namespace: if rt.namespaced {
                namespace.unwrap_or_default().to_owned()
            } else {
                String::new()
            },
            name: name.to_owned(),
        }
    }

    fn is(&self, rt: &ResourceType) -> bool {
        self.group == rt.group && self.plural == rt.plural
    }
}

/// What happened to an object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ChangeKind {
    Added,
    Modified,
    Deleted,
}

/// One entry of the change history.
#[derive(Debug, Clone)]
pub(crate) struct Change {
    pub(crate) rv: u64,
    pub(crate) kind: ChangeKind,
    pub(crate) rt: &'static ResourceType,
    pub(crate) namespace: String,
    /// The object after the change (for a deletion: as it was, with the deletion's version).
    pub(crate) object: Value,
    /// The object before a modification, so selector watches can see objects leave.
    pub(crate) previous: Option<Value>,
}

/// How a delete was asked for.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct DeleteOptions {
    /// `gracePeriodSeconds`, if given.
    pub(crate) grace_seconds: Option<u64>,
    /// `propagationPolicy: Orphan`: leave dependents alone.
    pub(crate) orphan: bool,
}

/// All objects and their history.
#[derive(Debug)]
pub(crate) struct Store {
    objects: BTreeMap<Key, Value>,
    rv: u64,
    history: VecDeque<Change>,
    history_limit: usize,
    /// The newest version dropped from the history: watches from before it get 410.
    compacted: u64,
    notify: watch::Sender<u64>,
    /// Default grace period for pod deletion (0: pods go at once).
    pub(crate) pod_grace_seconds: u64,
    /// Counter behind generated names and addresses.
    pub(crate) serial: u64,
}

impl Store {
    pub(crate) fn new(history_limit: usize) -> Self {
        Self {
            objects: BTreeMap::new(),
            rv: 1,
            history: VecDeque::new(),
            history_limit: history_limit.max(1),
            compacted: 0,
            notify: watch::channel(1).0,
            pod_grace_seconds: 0,
            serial: 0,
        }
    }

    /// The current resourceVersion.
    pub(crate) fn version(&self) -> u64 {
        self.rv
    }

    /// The newest version no longer in the history.
    pub(crate) fn compacted(&self) -> u64 {
        self.compacted
    }

    /// A receiver told about every new version.
    pub(crate) fn subscribe(&self) -> watch::Receiver<u64> {
        self.notify.subscribe()
    }

    /// Changes newer than `after`, oldest first.
    pub(crate) fn changes_after(&self, after: u64) -> impl Iterator<Item = &Change> {
        // The history is ordered by version, so skip the older part.
        let start = self.history.partition_point(|c| c.rv <= after);
        self.history.range(start..)
    }

    /// Forgets the whole history, as etcd compaction does: any watch from an older version gets 410.
    pub(crate) fn compact(&mut self) {
        self.history.clear();
        self.compacted = self.rv;
    }

    fn bump(&mut self) -> u64 {
        self.rv += 1;
        self.rv
    }

    fn record(
        &mut self,
        kind: ChangeKind,
        rt: &'static ResourceType,
        key: &Key,
        object: &Value,
        previous: Option<Value>,
    ) {
        self.history.push_back(Change {
            rv: self.rv,
            kind,
            rt,
            namespace: key.namespace.clone(),
            object: object.clone(),
            previous,
        });
        while self.history.len() > self.history_limit {
            if let Some(dropped) = self.history.pop_front() {
                self.compacted = dropped.rv;
            }
        }
        self.notify.send_replace(self.rv);
    }

    /// One object.
    pub(crate) fn get(
        &self,
        rt: &'static ResourceType,
        namespace: Option<&str>,
        name: &str,
    ) -> Result<Value, ApiError> {
        self.objects
            .get(&Key::new(rt, namespace, name))
            .cloned()
            .ok_or_else(|| ApiError::not_found(rt, name))
    }

    /// Every object of a resource, in any namespace, with its key.
    pub(crate) fn all(&self, rt: &'static ResourceType) -> impl Iterator<Item = (&Key, &Value)> {
        self.objects.iter().filter(move |(k, _)| k.is(rt))
    }

    /// The objects a list request selects, ordered by namespace and name.
    pub(crate) fn list(
        &self,
        rt: &'static ResourceType,
        namespace: Option<&str>,
        labels: &LabelSelector,
        fields: &FieldSelector,
    ) -> Vec<Value> {
        self.all(rt)
            .filter(|(k, _)| namespace.is_none_or(|ns| k.namespace == ns))
            .filter(|(_, o)| labels.matches_object(o) && fields.matches(o))
            .map(|(_, o)| o.clone())
            .collect()
    }

    /// Creates an object (POST).
    pub(crate) fn create(
        &mut self,
        rt: &'static ResourceType,
        namespace: Option<&str>,
        mut object: Value,
    ) -> Result<Value, ApiError> {
        normalise_type(rt, &mut object)?;
        let meta = metadata_mut(&mut object)?;
        if rt.namespaced {
            let url_ns = namespace.unwrap_or("default");
            match meta.get("namespace").and_then(Value::as_str) {
                Some(body_ns) if !body_ns.is_empty() && body_ns != url_ns => {
                    return Err(ApiError::bad_request(
                        "the namespace of the provided object does not match the namespace sent on the request",
                    ));
                }
                _ => {
                    meta.insert("namespace".into(), json!(url_ns));
                }
            }
            // As on Kubernetes, a namespace must exist before anything is created in it.
            let ns_key = Key::new(&super::resources::NAMESPACES, None, url_ns);
            if !self.objects.contains_key(&ns_key) {
                return Err(ApiError::not_found(&super::resources::NAMESPACES, url_ns));
            }
        } else {
            meta.remove("namespace");
        }
        let mut name = meta
            .get("name")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        if name.is_empty() {
            let Some(prefix) = meta
                .get("generateName")
                .and_then(Value::as_str)
                .map(str::to_owned)
            else {
                return Err(ApiError::invalid(
                    rt,
                    "",
                    "metadata.name: Required value: name or generateName is required",
                ));
            };
            self.serial += 1;
            name = format!("{prefix}{}", suffix(self.serial));
            if let Ok(meta) = metadata_mut(&mut object) {
                meta.insert("name".into(), json!(name));
            }
        }
        if let Some(why) = validate::problem(rt, &object) {
            return Err(ApiError::invalid(rt, &name, why));
        }
        let key = Key::new(rt, namespace, &name);
        if self.objects.contains_key(&key) {
            return Err(ApiError::already_exists(rt, &name));
        }
        defaults::on_create(self, rt, &key, &mut object)?;
        let rv = self.bump();
        let meta = metadata_mut(&mut object)?;
        meta.insert("uid".into(), json!(uuid::Uuid::new_v4().to_string()));
        meta.insert("creationTimestamp".into(), json!(time::now()));
        meta.insert("resourceVersion".into(), json!(rv.to_string()));
        if rt.has_generation() {
            meta.insert("generation".into(), json!(1));
        } else {
            meta.remove("generation");
        }
        meta.remove("deletionTimestamp");
        meta.remove("deletionGracePeriodSeconds");
        self.objects.insert(key.clone(), object.clone());
        self.record(ChangeKind::Added, rt, &key, &object, None);
        Ok(object)
    }

    /// Replaces an object (PUT, or the result of a PATCH), keeping what the server owns.
    ///
    /// `status_only` is the `/status` subresource: only the status changes. Otherwise a kind
    /// with a status subresource keeps its status. A stale `resourceVersion` in `new` is a 409.
    pub(crate) fn update(
        &mut self,
        rt: &'static ResourceType,
        namespace: Option<&str>,
        name: &str,
        mut new: Value,
        status_only: bool,
    ) -> Result<Value, ApiError> {
        let key = Key::new(rt, namespace, name);
        let current = self
            .objects
            .get(&key)
            .cloned()
            .ok_or_else(|| ApiError::not_found(rt, name))?;
        normalise_type(rt, &mut new)?;
        let meta = metadata_mut(&mut new)?;
        match meta.get("name").and_then(Value::as_str) {
            Some(body_name) if !body_name.is_empty() && body_name != name => {
                return Err(ApiError::bad_request(format!(
                    "the name of the object ({body_name}) does not match the name on the URL ({name})"
                )));
            }
            _ => {}
        }
        let current_rv = current
            .pointer("/metadata/resourceVersion")
            .cloned()
            .unwrap_or(Value::Null);
        match meta.get("resourceVersion") {
            Some(Value::String(rv))
                if !rv.is_empty() && Value::String(rv.clone()) != current_rv =>
            {
                return Err(ApiError::conflict(rt, name));
            }
            _ => {}
        }
        let mut next = if status_only {
            let mut next = current.clone();
            match new.get("status") {
                Some(status) => next["status"] = status.clone(),
                None => {
                    if let Some(map) = next.as_object_mut() {
                        map.remove("status");
                    }
                }
            }
            // A built-in kind's /status takes label and annotation changes too (a custom
            // resource's takes only the status), as the API server does.
            if rt.group != super::resources::VOLUME_SNAPSHOTS.group {
                for field in ["labels", "annotations"] {
                    if let Some(value) = new.pointer(&format!("/metadata/{field}")) {
                        next["metadata"][field] = value.clone();
                    }
                }
            }
            next
        } else {
            if rt.has_status
                && let Some(map) = new.as_object_mut()
            {
                match current.get("status") {
                    Some(status) => {
                        map.insert("status".into(), status.clone());
                    }
                    None => {
                        map.remove("status");
                    }
                }
            }
            // The server owns these fields whatever the client sent.
            let meta = metadata_mut(&mut new)?;
            for field in [
                "uid",
                "creationTimestamp",
                "deletionTimestamp",
                "deletionGracePeriodSeconds",
                "generation",
                "namespace",
                "name",
            ] {
                match current.pointer(&format!("/metadata/{field}")) {
                    Some(value) => {
                        meta.insert(field.into(), value.clone());
                    }
                    None => {
                        meta.remove(field);
                    }
                }
            }
            new
        };
        if let Some(why) = validate::problem(rt, &next) {
            return Err(ApiError::invalid(rt, name, why));
        }
        if std::ptr::eq(rt, &super::resources::PODS)
            && let Some(why) = validate::pod_update_problem(&current, &next)
        {
            return Err(ApiError::invalid(rt, name, why));
        }
        defaults::on_update(self, rt, &key, &current, &mut next)?;
        if let Ok(meta) = metadata_mut(&mut next) {
            meta.insert("resourceVersion".into(), current_rv);
        }
        if next == current {
            // A no-op write changes nothing and tells no watcher, as in Kubernetes.
            return Ok(current);
        }
        if rt.has_generation() && spec_of(&next) != spec_of(&current) {
            let generation = current
                .pointer("/metadata/generation")
                .and_then(Value::as_i64)
                .unwrap_or(1);
            if let Ok(meta) = metadata_mut(&mut next) {
                meta.insert("generation".into(), json!(generation + 1));
            }
        }
        Ok(self.write(rt, &key, next))
    }

    /// Stores a new version of an existing object (used by updates and by the simulation, which
    /// may change anything), finishing a pending deletion once no finalizer is left.
    pub(crate) fn write(&mut self, rt: &'static ResourceType, key: &Key, mut next: Value) -> Value {
        let previous = self.objects.get(key).cloned();
        let terminating = next.pointer("/metadata/deletionTimestamp").is_some();
        let finalizers = next
            .pointer("/metadata/finalizers")
            .and_then(Value::as_array)
            .is_some_and(|f| !f.is_empty());
        if terminating && !finalizers && !std::ptr::eq(rt, &super::resources::PODS) {
            return self.remove(rt, key, false).unwrap_or(next);
        }
        let rv = self.bump();
        if let Ok(meta) = metadata_mut(&mut next) {
            meta.insert("resourceVersion".into(), json!(rv.to_string()));
        }
        self.objects.insert(key.clone(), next.clone());
        self.record(ChangeKind::Modified, rt, key, &next, previous);
        next
    }

    /// Deletes an object (DELETE): at once, or by marking it terminating when it has finalizers
    /// or is a pod with a grace period.
    pub(crate) fn delete(
        &mut self,
        rt: &'static ResourceType,
        namespace: Option<&str>,
        name: &str,
        options: DeleteOptions,
    ) -> Result<Value, ApiError> {
        let key = Key::new(rt, namespace, name);
        let current = self
            .objects
            .get(&key)
            .cloned()
            .ok_or_else(|| ApiError::not_found(rt, name))?;
        let has_finalizers = current
            .pointer("/metadata/finalizers")
            .and_then(Value::as_array)
            .is_some_and(|f| !f.is_empty());
        let grace = if std::ptr::eq(rt, &super::resources::PODS) {
            options.grace_seconds.unwrap_or(self.pod_grace_seconds)
        } else {
            0
        };
        let terminating = current.pointer("/metadata/deletionTimestamp").is_some();
        if has_finalizers || (grace > 0 && !terminating) {
            if terminating {
                return Ok(current);
            }
            let mut next = current;
            if let Ok(meta) = metadata_mut(&mut next) {
                meta.insert("deletionTimestamp".into(), json!(time::now()));
                meta.insert("deletionGracePeriodSeconds".into(), json!(grace));
            }
            return Ok(self.write(rt, &key, next));
        }
        self.remove(rt, &key, options.orphan)
            .ok_or_else(|| ApiError::not_found(rt, name))
    }

    /// Removes an object now, then (unless orphaning) every dependent none of whose owners is left.
    pub(crate) fn remove(
        &mut self,
        rt: &'static ResourceType,
        key: &Key,
        orphan: bool,
    ) -> Option<Value> {
        let mut object = self.objects.remove(key)?;
        let rv = self.bump();
        if let Ok(meta) = metadata_mut(&mut object) {
            meta.insert("resourceVersion".into(), json!(rv.to_string()));
        }
        self.record(ChangeKind::Deleted, rt, key, &object, None);
        if !orphan {
            self.collect_garbage();
        }
        Some(object)
    }

    /// Deletes objects whose every owner reference names a uid that no longer exists.
    fn collect_garbage(&mut self) {
        loop {
            let uids: std::collections::HashSet<&str> = self
                .objects
                .values()
                .filter_map(|o| o.pointer("/metadata/uid").and_then(Value::as_str))
                .collect();
            let orphaned: Option<Key> = self
                .objects
                .iter()
                .find(|(_, o)| {
                    let owners = o
                        .pointer("/metadata/ownerReferences")
                        .and_then(Value::as_array);
                    owners.is_some_and(|refs| {
                        !refs.is_empty()
                            && refs.iter().all(|r| {
                                r.get("uid")
                                    .and_then(Value::as_str)
                                    .is_none_or(|uid| !uids.contains(uid))
                            })
                    })
                })
                .map(|(k, _)| k.clone());
            let Some(key) = orphaned else { return };
            let Some(rt) = super::resources::RESOURCES
                .iter()
                .copied()
                .find(|rt| key.is(rt))
            else {
                return;
            };
            self.remove(rt, &key, false);
        }
    }
}

/// Fills in or checks `kind` and `apiVersion`.
fn normalise_type(rt: &ResourceType, object: &mut Value) -> Result<(), ApiError> {
    let Some(map) = object.as_object_mut() else {
        return Err(ApiError::bad_request("the body must be a JSON object"));
    };
    let api_version = rt.api_version();
    for (field, expected) in [("kind", rt.kind.to_owned()), ("apiVersion", api_version)] {
        match map.get(field).and_then(Value::as_str) {
            Some(given) if !given.is_empty() && given != expected => {
                return Err(ApiError::bad_request(format!(
                    "the {field} in the data ({given}) does not match the expected {field} ({expected})"
                )));
            }
            _ => {
                map.insert(field.into(), json!(expected));
            }
        }
    }
    Ok(())
}

/// The object's `metadata`, created when missing.
pub(crate) fn metadata_mut(
    object: &mut Value,
) -> Result<&mut serde_json::Map<String, Value>, ApiError> {
    let map = object
        .as_object_mut()
        .ok_or_else(|| ApiError::bad_request("the body must be a JSON object"))?;
    let meta = map.entry("metadata").or_insert_with(|| json!({}));
    if !meta.is_object() {
        *meta = json!({});
    }
    meta.as_object_mut()
        .ok_or_else(|| ApiError::bad_request("metadata must be an object"))
}

/// Everything but metadata and status: what `generation` counts changes of.
fn spec_of(object: &Value) -> Value {
    let mut copy = object.clone();
    if let Some(map) = copy.as_object_mut() {
        map.remove("metadata");
        map.remove("status");
    }
    copy
}

/// Five characters for `generateName`, from a serial number (distinct for 33 million names).
fn suffix(serial: u64) -> String {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let mut n = serial.wrapping_mul(2_654_435_761) % 27_u64.pow(5);
    (0..5)
        .map(|_| {
            let c = ALPHABET[usize::try_from(n % 27).unwrap_or(0)];
            n /= 27;
            char::from(c)
        })
        .collect()
}
