//! Timestamps as Kubernetes writes them.

use chrono::{SecondsFormat, Utc};

/// Now, as RFC 3339 with second precision (`2026-01-02T03:04:05Z`), like `metav1.Time`.
pub(crate) fn now() -> String {
    Utc::now().to_rfc3339_opts(SecondsFormat::Secs, true)
}
