//! Authentication of API keys: the hot path.
//!
//! A request's key is hashed (SHA-256) and looked up by hash. Verified keys are cached in-process
//! for a short time; the cache is trusted only while a `LISTEN` connection receives the
//! `gpudev_auth_changed` notifications that database triggers send when a key is revoked or a user
//! is disabled or changes role, so revocation reaches every replica within a second. `last_used_at`
//! is written in batches, never once per request.

mod caller;
pub mod failures;
mod key_cache;
mod middleware;
mod usage;

pub use caller::{AuthMethod, Caller};
pub use failures::AuthFailures;
pub use key_cache::KeyCache;
pub use middleware::{audit_summary, require_api_key};
pub use usage::{UsageRecorder, spawn_usage_flusher};
