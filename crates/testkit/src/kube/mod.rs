//! A fake Kubernetes API server, in process, for the processor's and CronJobs' tests and for
//! the local run: no API server can be installed on the machines this project runs on.
//!
//! [`FakeCluster::client`] gives a real `kube::Client` whose requests go to an in-memory store
//! through a tower service; [`FakeCluster::serve`] serves the same over HTTP on loopback and
//! writes a kubeconfig for binaries (`KUBECONFIG=…`).
//!
//! # What it serves
//! The REST paths kube-rs uses for core/v1 Nodes, Namespaces, Pods, Services, Secrets,
//! ConfigMaps, PersistentVolumeClaims and Events, events.k8s.io/v1 Events,
//! coordination.k8s.io/v1 Leases and snapshot.storage.k8s.io/v1 VolumeSnapshots: get, list,
//! watch, create, replace, patch (merge, strategic merge as merge, JSON patch, server-side
//! apply), delete and delete-collection, and the `/status` subresource where Kubernetes has
//! one. Objects are kept as JSON, so any field round-trips.
//!
//! - Every object gets `uid`, `creationTimestamp`, `generation` (bumped on spec changes) and
//!   a `resourceVersion` from one global counter; lists carry the current version.
//! - Errors are Kubernetes `Status` bodies: 404 NotFound, 409 AlreadyExists, 409 Conflict
//!   (stale `resourceVersion` on replace or patch), 422 Invalid (names that are not DNS
//!   names, bad label keys or values, node ports out of range or taken), 400 BadRequest.
//! - `labelSelector` (`=`, `==`, `!=`, `in`, `notin`, `key`, `!key`) and `fieldSelector`
//!   (`=`, `==`, `!=` on any dotted path: `metadata.name`, `spec.nodeName`, `status.phase`,
//!   `involvedObject.name`, …). `limit` is ignored: lists come whole, without `continue`.
//! - Server-side apply creates an absent object and otherwise merges the applied fields in;
//!   there are no managed fields, so fields dropped from an applied configuration stay.
//!   A no-op write changes nothing (no new version, no watch event).
//! - Deleting an object deletes, recursively, every object whose owners are all gone
//!   (ownerReferences by uid), unless `propagationPolicy=Orphan`. Objects with finalizers
//!   are only marked (`deletionTimestamp`) until an update removes the finalizers.
//! - Writes to the main path of a kind with a status subresource keep the stored status;
//!   writes to `/status` change only the status.
//! - Services get a cluster IP and, for `NodePort`/`LoadBalancer`, node ports from
//!   30000–32767, kept when the Service is re-applied without them.
//! - A Secret's `stringData` is folded into base64 `data`, as the API server does.
//! - A Pod's spec is immutable (422) except for images, `activeDeadlineSeconds`,
//!   tolerations and `terminationGracePeriodSeconds`; re-applying the same Pod after the
//!   scheduler bound it is a no-op.
//! - Objects can only be created in a namespace that exists (404 otherwise); a new fake has
//!   Kubernetes' own namespaces and those of [`FakeConfig::namespaces`] (`gpu-dev`).
//! - Watches replay the bounded history after `resourceVersion` (no version or `0`: the
//!   current objects as ADDED first), then stream live until `timeoutSeconds`, with a
//!   BOOKMARK at the end when `allowWatchBookmarks` is set; `sendInitialEvents` streaming
//!   lists are supported. A version older than the history answers one `ERROR` event with a
//!   410 Status, so kube-runtime's watcher relists. Objects entering or leaving a selector
//!   appear as ADDED or DELETED.
//! - Metadata-only requests (`as=PartialObjectMetadata` in `Accept`) are answered with
//!   `PartialObjectMetadata`.
//!
//! # The simulation
//! Nothing happens to pods until [`FakeCluster::step`] runs (or a background
//! [`FakeCluster::start_simulation`] runs it). A step: binds each unbound pod, oldest first,
//! to the fullest Ready, schedulable node whose labels satisfy its `nodeSelector` and required
//! node affinity, whose
//! `NoSchedule`/`NoExecute` taints it tolerates, and whose free `nvidia.com/gpu`, CPU and
//! memory (allocatable minus the requests of unfinished pods bound to it) cover its requests;
//! or sets `PodScheduled=False` and records a `FailedScheduling` Event (once per distinct
//! message). After [`FakeConfig::ready_delay`] a bound pod runs: `Running`, `Ready=True`,
//! `podIP`, `hostIP`, container statuses and `Pulled`/`Started` Events; or fails as a
//! [`FakeCluster::fail_pods`] rule says. The step also binds pending claims and makes
//! VolumeSnapshots ready, and removes pods whose termination period
//! ([`FakeConfig::pod_termination`]) is over.
//!
//! # Not supported
//! Preferred affinities, pod (anti-)affinity and topology spread, pod eviction from NotReady nodes,
//! `dryRun` (requests are carried out), pagination, managed fields and apply conflicts,
//! YAML bodies, protobuf, discovery (`/api`, `/apis`; `/version` answers), and kinds not
//! listed above (they answer 404 like a missing CRD).

mod cluster;
mod defaults;
mod faults;
mod log;
mod nodes;
mod patch;
mod path;
mod quantity;
mod resources;
mod routes;
mod selectors;
mod service;
mod simulate;
mod state;
mod status;
mod store;
mod time;
mod validate;
mod watch;

pub use cluster::{FakeCluster, Simulation};
pub use faults::{Fault, FaultKind};
pub use log::{RequestRecord, Verb};
pub use nodes::NodeSpec;
pub use service::Served;
pub use simulate::{PodFailure, PodMatch};
pub use state::FakeConfig;
