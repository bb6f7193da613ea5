//! gpudev-api: the HTTP API as a library, so tests start it in-process on a free port and call it
//! over real HTTP.

pub mod audit;
pub mod auth;
pub mod changes;
pub mod client_ip;
pub mod config;
pub mod console;
mod cors;
pub mod error;
pub mod extract;
pub mod job_cache;
pub mod limits;
pub mod metrics;
pub mod middleware;
pub mod oidc;
pub mod openapi;
pub mod queue_state;
pub mod routes;
pub mod startup;
pub mod state;
pub mod submit_writer;

pub use config::ApiConfig;
pub use startup::{Application, ShutdownHandle};
