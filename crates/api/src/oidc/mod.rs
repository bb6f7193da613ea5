//! OpenID Connect login: trusted issuers, their keys, and ID token verification.

pub mod config;
pub mod provider;
pub mod verify;

pub use config::IssuerConfig;
pub use provider::OidcProvider;
pub use verify::{OidcIdentity, Rejection, verify};
