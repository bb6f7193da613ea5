//! Queue messages, read as hints.
//!
//! A message only says *what to look at*; the database says what is true. The messages are
//! [`gpudev_store::QueueMessage`], the one type the API sends; [`Hint`] is what the processor
//! makes of one.

use gpudev_store::hints::{Action, QueueMessage};
use serde_json::Value;
use uuid::Uuid;

pub use gpudev_store::hints::{DiskHint, MessageError as HintError};

/// What a message asks the processor to look at.
#[derive(Debug, Clone, PartialEq)]
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

impl From<QueueMessage> for Hint {
    fn from(message: QueueMessage) -> Self {
        let jupyter = |hint: gpudev_store::hints::ReservationHint, default: bool| Hint::Jupyter {
            reservation_id: hint.reservation_id,
            // The details say what was asked; the action alone tells it when they do not.
            enabled: hint
                .details
                .get("jupyter_enabled")
                .and_then(Value::as_bool)
                .unwrap_or(default),
        };
        match message {
            QueueMessage::Create(h) => Hint::Create(h.reservation_id),
            QueueMessage::Cancel(h) => Hint::Cancel(h.reservation_id),
            QueueMessage::Extend(h) => Hint::Extend(h.reservation_id),
            QueueMessage::EnableJupyter(h) => jupyter(h, true),
            QueueMessage::DisableJupyter(h) => jupyter(h, false),
            QueueMessage::AddUser(h) => Hint::AddUser(h.reservation_id),
            QueueMessage::DiskCreate(d) => Hint::DiskCreate(d),
            QueueMessage::DiskDelete(d) => Hint::DiskDelete(d),
            QueueMessage::DiskRename => Hint::DiskRename,
        }
    }
}

impl Hint {
    /// Reads a message body.
    pub fn parse(body: &Value) -> Result<Self, HintError> {
        QueueMessage::parse(body).map(Hint::from)
    }

    /// The action name, for metrics and logs.
    pub fn action(&self) -> &'static str {
        let action = match self {
            Self::Create(_) => Action::Create,
            Self::Cancel(_) => Action::Cancel,
            Self::Extend(_) => Action::Extend,
            Self::Jupyter { enabled: true, .. } => Action::EnableJupyter,
            Self::Jupyter { enabled: false, .. } => Action::DisableJupyter,
            Self::AddUser(_) => Action::AddUser,
            Self::DiskCreate(_) => Action::DiskCreate,
            Self::DiskDelete(_) => Action::DiskDelete,
            Self::DiskRename => Action::DiskRename,
        };
        action.as_str()
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
