//! The kinds of object the fake serves, and where each lives in the REST tree.

/// One served resource: its API group and version, its plural (the path segment) and its kind.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct ResourceType {
    /// API group; empty for the core group (`/api/v1`).
    pub(crate) group: &'static str,
    /// API version within the group.
    pub(crate) version: &'static str,
    /// The plural name used in paths, e.g. `pods`.
    pub(crate) plural: &'static str,
    /// The kind, e.g. `Pod`.
    pub(crate) kind: &'static str,
    /// Whether objects live in a namespace.
    pub(crate) namespaced: bool,
    /// Whether a `/status` subresource exists (writes to the main path then keep the status).
    pub(crate) has_status: bool,
}

impl ResourceType {
    /// Whether the API server keeps `metadata.generation` for this kind: Pods (from
    /// Kubernetes 1.33) and custom resources do; Services, Secrets, Leases, Nodes and the
    /// other built-ins we serve do not.
    pub(crate) fn has_generation(&self) -> bool {
        self.plural == "pods" || self.group == VOLUME_SNAPSHOTS.group
    }

    /// The `apiVersion` field of objects of this kind.
    pub(crate) fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.to_owned()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    /// The name used in status messages, e.g. `pods` or `leases.coordination.k8s.io`.
    pub(crate) fn qualified_plural(&self) -> String {
        if self.group.is_empty() {
            self.plural.to_owned()
        } else {
            format!("{}.{}", self.plural, self.group)
        }
    }
}

const fn core(
    plural: &'static str,
    kind: &'static str,
    namespaced: bool,
    has_status: bool,
) -> ResourceType {
    ResourceType {
        group: "",
        version: "v1",
        plural,
        kind,
        namespaced,
        has_status,
    }
}

/// Nodes (cluster-scoped).
pub(crate) static NODES: ResourceType = core("nodes", "Node", false, true);
/// Namespaces (cluster-scoped).
pub(crate) static NAMESPACES: ResourceType = core("namespaces", "Namespace", false, true);
/// Pods.
pub(crate) static PODS: ResourceType = core("pods", "Pod", true, true);
/// Services.
pub(crate) static SERVICES: ResourceType = core("services", "Service", true, true);
/// Secrets.
pub(crate) static SECRETS: ResourceType = core("secrets", "Secret", true, false);
/// ConfigMaps.
pub(crate) static CONFIG_MAPS: ResourceType = core("configmaps", "ConfigMap", true, false);
/// PersistentVolumeClaims.
pub(crate) static PVCS: ResourceType = core(
    "persistentvolumeclaims",
    "PersistentVolumeClaim",
    true,
    true,
);
/// core/v1 Events (what `kubectl describe` shows).
pub(crate) static EVENTS: ResourceType = core("events", "Event", true, false);
/// events.k8s.io/v1 Events (what kube-runtime's `Recorder` writes); stored apart from core Events.
pub(crate) static EVENTS_V1: ResourceType = ResourceType {
    group: "events.k8s.io",
    version: "v1",
    plural: "events",
    kind: "Event",
    namespaced: true,
    has_status: false,
};
/// coordination.k8s.io/v1 Leases.
pub(crate) static LEASES: ResourceType = ResourceType {
    group: "coordination.k8s.io",
    version: "v1",
    plural: "leases",
    kind: "Lease",
    namespaced: true,
    has_status: false,
};
/// snapshot.storage.k8s.io/v1 VolumeSnapshots, a custom resource in a real cluster.
pub(crate) static VOLUME_SNAPSHOTS: ResourceType = ResourceType {
    group: "snapshot.storage.k8s.io",
    version: "v1",
    plural: "volumesnapshots",
    kind: "VolumeSnapshot",
    namespaced: true,
    has_status: true,
};

/// Every resource the fake knows. Anything else answers 404, as a missing CRD would.
pub(crate) static RESOURCES: [&ResourceType; 11] = [
    &NODES,
    &NAMESPACES,
    &PODS,
    &SERVICES,
    &SECRETS,
    &CONFIG_MAPS,
    &PVCS,
    &EVENTS,
    &EVENTS_V1,
    &LEASES,
    &VOLUME_SNAPSHOTS,
];

/// The resource served under `group`/`version` with this plural, if any.
pub(crate) fn find(group: &str, version: &str, plural: &str) -> Option<&'static ResourceType> {
    RESOURCES
        .iter()
        .copied()
        .find(|r| r.group == group && r.version == version && r.plural == plural)
}

/// The resource with this plural in any group, preferring the core group (for fault filters and
/// counters, where tests name resources by plural only).
pub(crate) fn by_plural(plural: &str) -> Option<&'static ResourceType> {
    RESOURCES.iter().copied().find(|r| r.plural == plural)
}
