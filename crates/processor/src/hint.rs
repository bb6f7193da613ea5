//! Queue messages, read as hints.
//!
//! A message only says *what to look at*; the database says what is true. Reservation hints
//! follow [`gpudev_store::reservations::QueueHint`] (`action`, `reservation_id`, `username`,
//! `requested_at`, `details`); disk hints carry `operation_id`, `disk_id`, `disk_name` and
//! `username` instead of a reservation.

use serde::Deserialize;
use serde_json::Value;
use uuid::Uuid;

/// What a message asks the processor to look at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Hint {
    /// A reservation was submitted.
    Create(Uuid),
    /// A reservation was cancelled (the API already changed its status).
    Cancel(Uuid),
    /// An active reservation was extended (the API already moved `expires_at`).
    Extend(Uuid),
    /// Jupyter was switched on or off for a reservation.
    Jupyter {
        /// The reservation.
        reservation_id: Uuid,
        /// On or off.
        enabled: bool,
    },
    /// A GitHub user was given SSH access to a reservation.
    AddUser(Uuid),
    /// A disk was created in the database and needs its volume claim.
    DiskCreate(DiskHint),
    /// A disk was soft-deleted.
    DiskDelete(DiskHint),
    /// A disk was renamed (nothing in Kubernetes depends on the name).
    DiskRename,
}

/// The fields of a disk hint.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct DiskHint {
    /// The tracked operation to complete.
    pub operation_id: Uuid,
    /// The disk.
    pub disk_id: Uuid,
    /// Its name.
    pub disk_name: String,
    /// Its owner.
    pub username: String,
}

/// Why a message is not a hint this processor understands: permanent, so the message is
/// dead-lettered at once.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HintError {
    /// Not a JSON object with a string `action`.
    #[error("not a hint: {0}")]
    Malformed(String),
    /// An action this processor does not know.
    #[error("unknown action {0:?}")]
    UnknownAction(String),
}

#[derive(Deserialize)]
struct ReservationFields {
    reservation_id: Uuid,
    #[serde(default)]
    details: Value,
}

impl Hint {
    /// Reads a message body.
    pub fn parse(body: &Value) -> Result<Self, HintError> {
        let action = body
            .get("action")
            .and_then(Value::as_str)
            .ok_or_else(|| HintError::Malformed("no \"action\" string".to_owned()))?;
        let reservation = || -> Result<ReservationFields, HintError> {
            serde_json::from_value(body.clone())
                .map_err(|e| HintError::Malformed(format!("{action} hint: {e}")))
        };
        let disk = || -> Result<DiskHint, HintError> {
            serde_json::from_value(body.clone())
                .map_err(|e| HintError::Malformed(format!("{action} hint: {e}")))
        };
        Ok(match action {
            "create" => Self::Create(reservation()?.reservation_id),
            "cancel" => Self::Cancel(reservation()?.reservation_id),
            "extend" => Self::Extend(reservation()?.reservation_id),
            "enable_jupyter" | "disable_jupyter" => {
                let fields = reservation()?;
                let enabled = fields
                    .details
                    .get("jupyter_enabled")
                    .and_then(Value::as_bool)
                    .unwrap_or(action == "enable_jupyter");
                Self::Jupyter {
                    reservation_id: fields.reservation_id,
                    enabled,
                }
            }
            "add_user" => Self::AddUser(reservation()?.reservation_id),
            "disk_create" => Self::DiskCreate(disk()?),
            "disk_delete" => Self::DiskDelete(disk()?),
            "disk_rename" => Self::DiskRename,
            other => return Err(HintError::UnknownAction(other.to_owned())),
        })
    }

    /// The action name, for metrics and logs.
    pub fn action(&self) -> &'static str {
        match self {
            Self::Create(_) => "create",
            Self::Cancel(_) => "cancel",
            Self::Extend(_) => "extend",
            Self::Jupyter { enabled: true, .. } => "enable_jupyter",
            Self::Jupyter { enabled: false, .. } => "disable_jupyter",
            Self::AddUser(_) => "add_user",
            Self::DiskCreate(_) => "disk_create",
            Self::DiskDelete(_) => "disk_delete",
            Self::DiskRename => "disk_rename",
        }
    }

    /// The reservation the hint is about, if any.
    pub fn reservation_id(&self) -> Option<Uuid> {
        match self {
            Self::Create(id) | Self::Cancel(id) | Self::Extend(id) | Self::AddUser(id) => Some(*id),
            Self::Jupyter { reservation_id, .. } => Some(*reservation_id),
            Self::DiskCreate(_) | Self::DiskDelete(_) | Self::DiskRename => None,
        }
    }
}

/// The action of a body that may not parse, for metrics (`invalid` when there is none).
pub fn action_label(body: &Value) -> &'static str {
    match Hint::parse(body) {
        Ok(hint) => hint.action(),
        Err(_) => "invalid",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const ID: &str = "3f2a9c1e-7b4d-4e8f-9a0b-1c2d3e4f5a6b";

    fn id() -> Uuid {
        Uuid::parse_str(ID).unwrap()
    }

    #[test]
    fn reservation_hints_as_the_api_sends_them() {
        let base = |action: &str, details: Value| {
            json!({ "action": action, "reservation_id": ID, "username": "alice",
                    "requested_at": "2026-01-01T00:00:00Z", "details": details })
        };
        assert_eq!(
            Hint::parse(&base("create", json!({"gpu_type": "h100"}))),
            Ok(Hint::Create(id()))
        );
        assert_eq!(
            Hint::parse(&base("cancel", json!({}))),
            Ok(Hint::Cancel(id()))
        );
        assert_eq!(
            Hint::parse(&base("extend", json!({"extension_hours": 2}))),
            Ok(Hint::Extend(id()))
        );
        assert_eq!(
            Hint::parse(&base("disable_jupyter", json!({"jupyter_enabled": false}))),
            Ok(Hint::Jupyter {
                reservation_id: id(),
                enabled: false
            })
        );
        assert_eq!(
            Hint::parse(&base("enable_jupyter", Value::Null)),
            Ok(Hint::Jupyter {
                reservation_id: id(),
                enabled: true
            })
        );
        assert_eq!(
            Hint::parse(&base("add_user", json!({"github_username": "bob"}))),
            Ok(Hint::AddUser(id()))
        );
    }

    #[test]
    fn disk_hints_as_the_api_sends_them() {
        let body = json!({ "action": "disk_create", "operation_id": ID, "disk_id": ID,
                           "disk_name": "home", "username": "alice", "size_gb": 100,
                           "requested_at": "2026-01-01T00:00:00Z" });
        let Ok(Hint::DiskCreate(disk)) = Hint::parse(&body) else {
            panic!("not a disk_create hint");
        };
        assert_eq!(disk.disk_name, "home");
        assert_eq!(
            Hint::parse(&json!({"action": "disk_rename"})),
            Ok(Hint::DiskRename)
        );
    }

    #[test]
    fn garbage_and_unknown_actions_are_refused_with_a_reason() {
        assert!(matches!(
            Hint::parse(&json!("hello")),
            Err(HintError::Malformed(_))
        ));
        assert!(matches!(
            Hint::parse(&json!({"action": "create"})),
            Err(HintError::Malformed(_))
        ));
        assert!(matches!(
            Hint::parse(&json!({"action": "create", "reservation_id": "nope"})),
            Err(HintError::Malformed(_))
        ));
        assert_eq!(
            Hint::parse(&json!({"action": "launch_rockets", "reservation_id": ID})),
            Err(HintError::UnknownAction("launch_rockets".into()))
        );
        assert_eq!(action_label(&json!(42)), "invalid");
    }
}
