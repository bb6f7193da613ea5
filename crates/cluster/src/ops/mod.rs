//! Kubernetes I/O shared by the processor and the CronJobs, through kube-rs: idempotent create,
//! find and delete of gpudev's objects ([`objects`]) and reading the cluster's capacity
//! ([`capacity`]). Everything else in this crate is pure; this module is the edge.

pub mod capacity;
pub mod error;
pub mod objects;

pub use capacity::{fetch_capacities, nodes_and_pods};
pub use error::{OpsError, is_already_exists, is_not_found};
pub use objects::{
    Ensured, ManagedObjects, check_owner, create_or_get, delete_if_present, delete_objects,
    delete_reservation_objects, get_opt, list_managed, list_selected, reservation_of,
};
