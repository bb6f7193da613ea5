//! A local AWS STS emulator (moto) for the presigned-login tests.

pub(crate) mod admin;
pub(crate) mod credentials;
pub(crate) mod moto;
