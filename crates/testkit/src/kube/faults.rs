//! Fault injection: make the next matching requests fail, hang or slow down.

use std::time::Duration;

use super::log::Verb;

/// What an injected fault does to a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FaultKind {
    /// Answer 500 InternalError without doing anything.
    Status500,
    /// Answer 409 Conflict (as for a stale resourceVersion) without doing anything.
    Conflict409,
    /// Wait this long, then answer 504 Timeout without doing anything (a client with a shorter
    /// timeout sees its own timeout).
    Timeout(Duration),
    /// Wait this long, then serve the request normally.
    Delay(Duration),
    /// Answer this code and reason (e.g. 429 `TooManyRequests`, 503 `ServiceUnavailable`).
    Status {
        /// HTTP status code.
        code: u16,
        /// Kubernetes reason, e.g. `TooManyRequests`.
        reason: &'static str,
    },
}

/// A fault for the next `times` requests matching the filters.
///
/// ```
/// use gpudev_testkit::kube::{Fault, FaultKind, Verb};
/// let fault = Fault::new(FaultKind::Status500).verb(Verb::Create).resource("pods").times(2);
/// # let _ = fault;
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fault {
    /// Only requests with this verb (any when `None`).
    pub verb: Option<Verb>,
    /// Only requests for this resource plural, e.g. `pods` (any when `None`).
    pub resource: Option<String>,
    /// Only requests naming this object (any when `None`).
    pub name: Option<String>,
    /// What happens.
    pub kind: FaultKind,
    /// How many matching requests fail; then the fault is spent.
    pub times: usize,
}

impl Fault {
    /// A fault for the next request of any kind, once.
    pub fn new(kind: FaultKind) -> Self {
        Self {
            verb: None,
            resource: None,
            name: None,
            kind,
            times: 1,
        }
    }

    /// Restricts the fault to one verb.
    #[must_use]
    pub fn verb(mut self, verb: Verb) -> Self {
        self.verb = Some(verb);
        self
    }

    /// Restricts the fault to one resource plural (`pods`, `services`, `leases`, …).
    #[must_use]
    pub fn resource(mut self, plural: impl Into<String>) -> Self {
        self.resource = Some(plural.into());
        self
    }

    /// Restricts the fault to one object name.
    #[must_use]
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// How many matching requests it affects.
    #[must_use]
    pub fn times(mut self, times: usize) -> Self {
        self.times = times;
        self
    }

    fn matches(&self, verb: Verb, resource: &str, name: Option<&str>) -> bool {
        self.times > 0
            && self.verb.is_none_or(|v| v == verb)
            && self.resource.as_deref().is_none_or(|r| r == resource)
            && self.name.as_deref().is_none_or(|n| Some(n) == name)
    }
}

/// Takes one use of the first fault matching a request.
pub(crate) fn take(
    faults: &mut Vec<Fault>,
    verb: Verb,
    resource: &str,
    name: Option<&str>,
) -> Option<FaultKind> {
    let fault = faults
        .iter_mut()
        .find(|f| f.matches(verb, resource, name))?;
    fault.times -= 1;
    let kind = fault.kind.clone();
    faults.retain(|f| f.times > 0);
    Some(kind)
}
