//! The reservation state machine.
//!
//! ```text
//! queued ──> preparing ──> active ──> expired | cancelled | failed
//!   │           │
//!   │           └──> queued | failed | cancelled
//!   └──> cancelled | failed
//! ```
//! Terminal states (`expired`, `cancelled`, `failed`) never change.

use std::fmt;
use std::str::FromStr;

/// Where a reservation is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReservationStatus {
    /// Accepted and waiting for capacity.
    Queued,
    /// Admitted: its pod and objects are being created.
    Preparing,
    /// Running and reachable.
    Active,
    /// Ran to the end of its time.
    Expired,
    /// Cancelled by its owner, an admin or a cleanup rule.
    Cancelled,
    /// Could not be started or kept running.
    Failed,
}

/// A transition the state machine does not allow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("a reservation cannot go from {from} to {to}")]
pub struct TransitionError {
    /// The current state.
    pub from: ReservationStatus,
    /// The refused target state.
    pub to: ReservationStatus,
}

/// A status string that names no state.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "unknown reservation status {0:?} (expected one of queued, preparing, active, expired, cancelled, failed)"
)]
pub struct UnknownStatus(pub String);

use ReservationStatus::{Active, Cancelled, Expired, Failed, Preparing, Queued};

impl ReservationStatus {
    /// Every state, in life-cycle order.
    pub const ALL: [ReservationStatus; 6] = [Queued, Preparing, Active, Expired, Cancelled, Failed];

    /// The states of a reservation that holds or waits for capacity: what quotas count, what
    /// the scheduler and the cleanup jobs look at.
    pub const LIVE: [ReservationStatus; 3] = [Queued, Preparing, Active];

    /// The stable lower-case name used in the database, the API and the CLI.
    pub fn as_str(self) -> &'static str {
        match self {
            Queued => "queued",
            Preparing => "preparing",
            Active => "active",
            Expired => "expired",
            Cancelled => "cancelled",
            Failed => "failed",
        }
    }

    /// True for states that never change again.
    pub fn is_terminal(self) -> bool {
        matches!(self, Expired | Cancelled | Failed)
    }

    /// The states this one may move to.
    pub fn successors(self) -> &'static [ReservationStatus] {
        match self {
            Queued => &[Preparing, Cancelled, Failed],
            Preparing => &[Active, Queued, Failed, Cancelled],
            Active => &[Expired, Cancelled, Failed],
            Expired | Cancelled | Failed => &[],
        }
    }

    /// The states from which `self` may be entered: the guard of a conditional `UPDATE`.
    pub fn predecessors(self) -> &'static [ReservationStatus] {
        match self {
            Queued => &[Preparing],
            Preparing => &[Queued],
            Active => &[Preparing],
            Expired => &[Active],
            Cancelled | Failed => &[Queued, Preparing, Active],
        }
    }

    /// Checks one step of the state machine.
    pub fn check_transition(self, to: ReservationStatus) -> Result<(), TransitionError> {
        if self.successors().contains(&to) {
            Ok(())
        } else {
            Err(TransitionError { from: self, to })
        }
    }
}

impl fmt::Display for ReservationStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for ReservationStatus {
    type Err = UnknownStatus;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|st| st.as_str() == s)
            .ok_or_else(|| UnknownStatus(s.to_owned()))
    }
}

/// The old names the original API used, read as today's states.
pub const STATUS_ALIASES: [(&str, ReservationStatus); 2] =
    [("pending", Queued), ("creating_server", Preparing)];

/// A `status` filter: comma-separated state names or [`STATUS_ALIASES`], in any ASCII case,
/// with spaces around items; blank items are ignored, so an empty filter selects every state.
/// [`StatusList::pattern`] states the same rule for the OpenAPI document.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StatusList(Vec<ReservationStatus>);

impl StatusList {
    /// Parses a filter; the states come out once each, in the order first named.
    pub fn parse(raw: &str) -> Result<Self, UnknownStatus> {
        let mut out = Vec::new();
        for item in raw.split(',') {
            let item = item.trim_matches(' ').to_ascii_lowercase();
            if item.is_empty() {
                continue;
            }
            let status = match STATUS_ALIASES.iter().find(|(alias, _)| *alias == item) {
                Some((_, status)) => *status,
                None => item.parse()?,
            };
            if !out.contains(&status) {
                out.push(status);
            }
        }
        Ok(Self(out))
    }

    /// The states named (empty: every state).
    pub fn states(&self) -> &[ReservationStatus] {
        &self.0
    }

    /// The filter's grammar as an (ECMA 262) regular expression, built from the same names the
    /// parser reads: each letter of a name matches either ASCII case.
    pub fn pattern() -> String {
        let names: Vec<String> = ReservationStatus::ALL
            .iter()
            .map(|s| s.as_str())
            .chain(STATUS_ALIASES.iter().map(|(alias, _)| *alias))
            .map(|name| {
                name.chars()
                    .map(|c| {
                        if c.is_ascii_alphabetic() {
                            format!("[{}{}]", c.to_ascii_lowercase(), c.to_ascii_uppercase())
                        } else {
                            c.to_string()
                        }
                    })
                    .collect()
            })
            .collect();
        let item = format!(" *(?:{})? *", names.join("|"));
        format!("^{item}(?:,{item})*$")
    }
}

#[cfg(feature = "openapi")]
impl utoipa::PartialSchema for StatusList {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::ObjectBuilder::new()
            .schema_type(utoipa::openapi::schema::Type::String)
            .pattern(Some(Self::pattern()))
            .description(Some(
                "Comma-separated statuses (`queued,active`), any case; every status when empty. \
                 `pending` and `creating_server` are read as `queued` and `preparing`.",
            ))
            .into()
    }
}

#[cfg(feature = "openapi")]
impl utoipa::ToSchema for StatusList {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_status_list_reads_names_aliases_case_blanks_and_spaces() {
        let states = |raw| StatusList::parse(raw).map(|l| l.states().to_vec());
        assert_eq!(states(""), Ok(vec![]));
        assert_eq!(states(" , ,"), Ok(vec![]));
        assert_eq!(states("active, queued,,Active"), Ok(vec![Active, Queued]));
        assert_eq!(
            states("pending,CREATING_SERVER"),
            Ok(vec![Queued, Preparing])
        );
        assert!(states("active,running").is_err());
        assert!(states("active,\tqueued").is_err());
    }

    /// The pattern the document publishes accepts exactly what the parser accepts.
    #[test]
    fn the_status_list_pattern_agrees_with_the_parser() {
        let spelled: Vec<String> = ReservationStatus::ALL
            .map(|s| format!(" {s} ,{}", s.as_str().to_uppercase()))
            .to_vec();
        let mut samples = vec![
            "",
            ",",
            " ",
            "queued",
            "QUEUED",
            "Queued ,  active",
            "active,,",
            "pending",
            "creating_server",
            "creating-server",
            "queue",
            "queuedd",
            "active;queued",
            "\tactive",
            "active\n",
            "é",
            "failed,expired,cancelled,preparing",
            "running",
        ];
        samples.extend(spelled.iter().map(String::as_str));
        crate::pattern::assert_agrees(
            &StatusList::pattern(),
            usize::MAX,
            |s| StatusList::parse(s).is_ok(),
            &samples,
            // Letters that spell names, aliases and separators.
            &['a', 'A', 'c', 'e', 'q', 'u', 'd', ',', ' ', '_', '\t'],
            4,
        );
    }

    #[test]
    fn the_documented_transitions_are_allowed() {
        let allowed = [
            (Queued, Preparing),
            (Preparing, Active),
            (Active, Expired),
            (Active, Cancelled),
            (Active, Failed),
            (Queued, Cancelled),
            (Queued, Failed),
            (Preparing, Queued),
            (Preparing, Failed),
            (Preparing, Cancelled),
        ];
        for (from, to) in allowed {
            assert_eq!(from.check_transition(to), Ok(()), "{from} -> {to}");
        }
    }

    #[test]
    fn everything_else_is_refused() {
        let mut allowed_count = 0;
        for from in ReservationStatus::ALL {
            for to in ReservationStatus::ALL {
                if from.check_transition(to).is_ok() {
                    allowed_count += 1;
                } else {
                    assert_eq!(from.check_transition(to), Err(TransitionError { from, to }));
                }
            }
        }
        assert_eq!(allowed_count, 10);
        assert!(Queued.check_transition(Active).is_err());
        assert!(Queued.check_transition(Expired).is_err());
        assert!(Active.check_transition(Queued).is_err());
    }

    #[test]
    fn terminal_states_never_change() {
        for from in [Expired, Cancelled, Failed] {
            assert!(from.is_terminal());
            for to in ReservationStatus::ALL {
                assert!(from.check_transition(to).is_err(), "{from} -> {to}");
            }
        }
        assert!(!Queued.is_terminal() && !Preparing.is_terminal() && !Active.is_terminal());
    }

    #[test]
    fn predecessors_are_the_inverse_of_successors() {
        for to in ReservationStatus::ALL {
            for from in ReservationStatus::ALL {
                assert_eq!(
                    to.predecessors().contains(&from),
                    from.successors().contains(&to),
                    "{from} -> {to}"
                );
            }
        }
    }

    #[test]
    fn names_round_trip_and_unknown_names_are_refused() {
        for st in ReservationStatus::ALL {
            assert_eq!(st.as_str().parse::<ReservationStatus>(), Ok(st));
            assert_eq!(serde_json::to_string(&st).unwrap(), format!("\"{st}\""));
        }
        assert_eq!(
            "pending".parse::<ReservationStatus>(),
            Err(UnknownStatus("pending".into()))
        );
        assert!("Active".parse::<ReservationStatus>().is_err());
    }
}
