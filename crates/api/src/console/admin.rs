//! The console's admin pages.

use actix_web::web;

/// Registers the admin pages (inside the `/ui` scope).
pub fn configure(_cfg: &mut web::ServiceConfig) {}
