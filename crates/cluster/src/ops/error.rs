//! Errors of the Kubernetes operations, sorted into "try again" and "this will never work".

use uuid::Uuid;

/// A failed Kubernetes operation.
#[derive(Debug, thiserror::Error)]
pub enum OpsError {
    /// The API server (or the way to it) failed.
    #[error("{verb} {kind} {name:?}: {}", describe(source))]
    Kube {
        /// What was tried: `create`, `get`, `list`, `patch`, `delete`.
        verb: &'static str,
        /// The kind of object.
        kind: &'static str,
        /// The object's name (or the selector, for a list).
        name: String,
        /// The client's error.
        #[source]
        source: kube::Error,
    },
    /// An object with our deterministic name exists but belongs to another reservation (or to
    /// nobody we know): never overwrite it.
    #[error("{kind} {name:?} already exists and belongs to {found}, not to reservation {expected}")]
    NameClash {
        /// The kind of object.
        kind: &'static str,
        /// Its name.
        name: String,
        /// The reservation that wanted the name.
        expected: Uuid,
        /// Whose it is, as its label says.
        found: String,
    },
}

impl OpsError {
    /// Wraps a client error with what was being done.
    pub fn kube(verb: &'static str, kind: &'static str, name: &str, source: kube::Error) -> Self {
        Self::Kube {
            verb,
            kind,
            name: name.to_owned(),
            source,
        }
    }

    /// True when trying again later may succeed: server errors, throttling, timeouts, lost
    /// connections, optimistic-concurrency conflicts, and also missing permissions or a missing
    /// namespace (an operator can fix those without touching the reservation). False for
    /// requests the API server rejects as malformed or invalid, and for name clashes.
    pub fn is_transient(&self) -> bool {
        match self {
            Self::NameClash { .. } => false,
            Self::Kube { source, .. } => match source {
                kube::Error::Api(status) => !matches!(status.code, 400 | 405 | 413 | 415 | 422),
                _ => true,
            },
        }
    }

    /// The HTTP status of an API error, if it was one.
    pub fn status_code(&self) -> Option<u16> {
        match self {
            Self::Kube {
                source: kube::Error::Api(status),
                ..
            } => Some(status.code),
            _ => None,
        }
    }
}

/// The API server's message when it sent one (it says what was wrong), else the client error.
fn describe(e: &kube::Error) -> String {
    match e {
        kube::Error::Api(status) if !status.message.is_empty() => {
            format!("{} ({} {})", status.message, status.code, status.reason)
        }
        other => other.to_string(),
    }
}

/// True when `e` is the API server's 404.
pub fn is_not_found(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == 404)
}

/// True when `e` is the API server's 409 `AlreadyExists` (a create of a name that is taken).
pub fn is_already_exists(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == 409 && s.reason == "AlreadyExists")
}

#[cfg(test)]
mod tests {
    use super::*;
    use kube::core::Status;

    fn api(code: u16, reason: &str) -> OpsError {
        let status = Status::failure("boom", reason).with_code(code).boxed();
        OpsError::kube("create", "Pod", "gpudev-1", kube::Error::Api(status))
    }

    #[test]
    fn server_trouble_is_transient_and_invalid_requests_are_not() {
        for code in [500, 503, 504, 429, 409, 403, 404] {
            assert!(api(code, "x").is_transient(), "{code}");
        }
        for code in [400, 422] {
            assert!(!api(code, "Invalid").is_transient(), "{code}");
        }
        assert_eq!(api(422, "Invalid").status_code(), Some(422));
        let shown = api(500, "InternalError").to_string();
        assert!(shown.contains("boom"), "{shown}");
        assert!(shown.contains("create Pod \"gpudev-1\""), "{shown}");
    }
}
