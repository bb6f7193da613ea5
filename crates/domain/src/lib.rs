//! The gpudev domain model.
//!
//! Everything here is pure: values are parsed once at the edge (HTTP handler, CLI flag, database row)
//! into newtypes whose constructors enforce the rules, and nothing downstream checks them again.

pub mod api_key;
pub mod arn;
pub mod capacity;
pub mod disk;
pub mod display_name;
pub mod env;
pub mod github_user;
pub mod gpu;
pub mod group;
pub mod idle;
pub mod image;
pub mod json_int;
mod pattern;
pub mod request;
pub mod scheduler;
pub mod secret;
pub mod ssh_key;
pub mod status;
pub mod submission;
pub mod username;

pub use api_key::{ApiKey, ApiKeyError, AuthorizationError, KeyHash, PresentedKey};
pub use arn::{ArnError, ArnKind, AwsArn};
pub use capacity::{NodeFigures, node_figures};
pub use disk::{DiskName, DiskNameError};
pub use display_name::{DisplayName, DisplayNameError};
pub use env::{EnvError, EnvVars};
pub use github_user::{GithubUser, GithubUserError};
pub use gpu::{CatalogError, GpuCatalog, GpuSpec, GpuType, GpuTypeError, UnknownGpuType};
pub use group::{GROUP_WINDOW, GroupMember};
pub use idle::{IdleLimitError, IdlePolicy};
pub use image::{ImageError, ImageRef};
pub use request::{
    Hours, HoursError, Limits, RawReservationRequest, RequestError, ReservationRequest,
    check_extension, nodes_for,
};
pub use scheduler::{
    Admission, Bookable, Impossible, NodeCapacity, PassInput, PassOutcome, Pending, Prediction,
    Promise, QueueInfo, QueuePolicy, QueueState, Quotas, ReservationKey, Running, UsageRecord,
    decayed_usage, schedule,
};
pub use secret::{AgentToken, BearerSecret, ConsoleSecret, SecretError};
pub use ssh_key::{SshKeyError, SshPublicKey};
pub use status::{ReservationStatus, TransitionError, UnknownStatus};
pub use username::{Username, UsernameError};
