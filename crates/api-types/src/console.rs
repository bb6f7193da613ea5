//! The web console's sign-in link.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// A one-time sign-in link for the web console.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ConsoleLink {
    /// Path on this server to open in a browser (`/ui/signin/…`); it works once.
    pub path: String,
    /// When it stops working.
    pub expires_at: DateTime<Utc>,
}
