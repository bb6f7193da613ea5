//! gpudev's Kubernetes layer: pure builders of the objects a reservation needs.
//!
//! Nothing here does I/O. The processor turns an admitted reservation into a
//! [`ReservationSpec`], plans each of its Pods ([`PodPlan`], one per node), builds the objects
//! ([`PodManifests`]) and applies them; the expiry job builds [`snapshot::disk_snapshot`]s; all
//! of them find gpudev's objects again through the label helpers in [`labels`].
//!
//! Per Pod of a reservation (see [`names`] for the names):
//! - a [`Secret`](secret::secret) with `authorized_keys`, the user's env values and the Jupyter
//!   token: the only place those values appear;
//! - the [`Pod`](pod::pod): the image running sshd as a non-root user (the module explains why
//!   the container itself runs as root), GPUs and a proportional CPU and memory share
//!   ([`resources`]), home on the user's disk or an emptyDir;
//! - a NodePort [`Service`](service::ssh_service) for SSH and Jupyter;
//! - for multi-node reservations, one [headless Service](service::headless_service).
//!
//! Every one of these carries the labels of [`labels::reservation_labels`] and, once the Pod
//! exists, is owned by it ([`owner`]), so deleting the Pod deletes the rest. The user's disk
//! claim ([`disk::disk_claim`]) and its snapshots are neither labelled with a reservation nor
//! owned: they outlive reservations.
//!
//! The scheduler's view of the cluster ([`capacity`]) and the pinning of a Pod to its admitted
//! node ([`placement`]) are pure too. The only I/O is in [`ops`]: the kube-rs operations the
//! processor and the CronJobs share.

pub mod capacity;
pub mod disk;
pub mod labels;
pub mod manifests;
pub mod names;
pub mod ops;
pub mod owner;
pub mod placement;
pub mod plan;
pub mod pod;
pub mod resources;
pub mod secret;
pub mod service;
pub mod snapshot;

pub use disk::{DiskClaimSpec, DiskMount, disk_claim};
pub use manifests::PodManifests;
pub use owner::{adopt, owned_by, owner_of, ownership_patch, with_owner};
pub use placement::{pin_to_node, pinned_node};
pub use plan::{
    AgentSpec, Home, JupyterToken, JupyterTokenError, PlanError, PodPlan, ReservationSpec,
};
pub use resources::NodeShare;
pub use snapshot::{VolumeSnapshot, disk_snapshot};
