//! The gpudev domain model.
//!
//! Everything here is pure: values are parsed once at the edge (HTTP handler, CLI flag, database row)
//! into newtypes whose constructors enforce the rules, and nothing downstream checks them again.

pub mod api_key;
pub mod status;
pub mod username;

pub use api_key::{ApiKey, ApiKeyError, KeyHash, PresentedKey};
pub use status::{ReservationStatus, TransitionError, UnknownStatus};
pub use username::{Username, UsernameError};
