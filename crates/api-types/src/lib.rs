//! gpudev-api-types: the bodies the gpudev API reads and answers, its error body and its error
//! codes. The server (`gpudev-api`) and its client (`gpudev-client`) both use these types, so a
//! change to the wire format is a compile error on both sides rather than a silent drift.
//!
//! Pure data: serde and a few constructors, no I/O. The `openapi` feature derives the OpenAPI
//! schemas the server publishes; the client does without it.

pub mod admin;
pub mod agent;
pub mod auth;
pub mod cluster;
pub mod console;
pub mod disks;
pub mod error;
pub mod health;
pub mod jobs;
pub mod keys;
pub mod me;

pub use error::{ErrorBody, ErrorCode};
