//! The queue's messages. Each one is a hint: it names what changed (a reservation or a disk) and
//! the processor re-reads the database for the truth. The API sends them and the processor reads
//! them through this one type, so the two cannot disagree on a field or an action name.
//!
//! On the wire a message is a JSON object tagged by `action`:
//! `{"action": "create", "reservation_id": "…", "username": "alice", "requested_at": "…",
//! "details": {…}}`, or for disks `{"action": "disk_create", "operation_id": "…", "disk_id": "…",
//! "disk_name": "home", "username": "alice", "size_gb": 100, "requested_at": "…"}`.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

/// A queue message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum QueueMessage {
    /// A reservation was submitted.
    Create(ReservationHint),
    /// A reservation was cancelled (its status already changed).
    Cancel(ReservationHint),
    /// An active reservation was extended (`expires_at` already moved).
    Extend(ReservationHint),
    /// Jupyter was switched on.
    EnableJupyter(ReservationHint),
    /// Jupyter was switched off.
    DisableJupyter(ReservationHint),
    /// A GitHub user was given SSH access.
    AddUser(ReservationHint),
    /// A disk was recorded and needs its volume claim.
    DiskCreate(DiskHint),
    /// A disk was soft-deleted.
    DiskDelete(DiskHint),
    /// A disk was renamed. Nothing in Kubernetes depends on the name; the action is still read so
    /// that such messages from the original system are archived rather than dead-lettered.
    DiskRename,
}

/// The action of a message, on its own: for metrics, logs and telling an unknown action from a
/// malformed message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// See [`QueueMessage::Create`].
    Create,
    /// See [`QueueMessage::Cancel`].
    Cancel,
    /// See [`QueueMessage::Extend`].
    Extend,
    /// See [`QueueMessage::EnableJupyter`].
    EnableJupyter,
    /// See [`QueueMessage::DisableJupyter`].
    DisableJupyter,
    /// See [`QueueMessage::AddUser`].
    AddUser,
    /// See [`QueueMessage::DiskCreate`].
    DiskCreate,
    /// See [`QueueMessage::DiskDelete`].
    DiskDelete,
    /// See [`QueueMessage::DiskRename`].
    DiskRename,
}

impl Action {
    /// The action as it is written in a message.
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Create => "create",
            Action::Cancel => "cancel",
            Action::Extend => "extend",
            Action::EnableJupyter => "enable_jupyter",
            Action::DisableJupyter => "disable_jupyter",
            Action::AddUser => "add_user",
            Action::DiskCreate => "disk_create",
            Action::DiskDelete => "disk_delete",
            Action::DiskRename => "disk_rename",
        }
    }
}

/// The body of a hint about a reservation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReservationHint {
    /// The reservation concerned.
    pub reservation_id: Uuid,
    /// Its owner.
    pub username: String,
    /// When the hint was written.
    pub requested_at: DateTime<Utc>,
    /// Facts for people reading the queue (`gpu_type`, `extension_hours`, …); only
    /// `jupyter_enabled` is read, and only by the Jupyter actions.
    #[serde(default, skip_serializing_if = "Value::is_null")]
    pub details: Value,
}

/// The body of a hint about a disk.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[allow(
    missing_docs,
    reason = "fields whose names say what they hold go undocumented"
)]
pub struct DiskHint {
    /// The tracked operation to complete.
    pub operation_id: Uuid,
    pub disk_id: Uuid,
    pub disk_name: String,
    /// Its owner.
    pub username: String,
    /// Its size (creates).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size_gb: Option<i64>,
    /// When it is removed for good (deletes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delete_date: Option<DateTime<Utc>>,
    /// When the hint was written.
    pub requested_at: DateTime<Utc>,
}

/// Why a message body is not a [`QueueMessage`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MessageError {
    /// Not a JSON object with a known `action` and that action's fields.
    #[error("not a hint: {0}")]
    Malformed(String),
    /// An action this build does not know.
    #[error("unknown action {0:?}")]
    UnknownAction(String),
}

impl QueueMessage {
    /// Reads a message body, telling an unknown action from a malformed message.
    pub fn parse(body: &Value) -> Result<Self, MessageError> {
        let action = body
            .get("action")
            .and_then(Value::as_str)
            .ok_or_else(|| MessageError::Malformed("no \"action\" string".to_owned()))?;
        if serde_json::from_value::<Action>(Value::String(action.to_owned())).is_err() {
            return Err(MessageError::UnknownAction(action.to_owned()));
        }
        QueueMessage::deserialize(body)
            .map_err(|e| MessageError::Malformed(format!("{action} hint: {e}")))
    }

    /// Its action.
    pub fn action(&self) -> Action {
        match self {
            QueueMessage::Create(_) => Action::Create,
            QueueMessage::Cancel(_) => Action::Cancel,
            QueueMessage::Extend(_) => Action::Extend,
            QueueMessage::EnableJupyter(_) => Action::EnableJupyter,
            QueueMessage::DisableJupyter(_) => Action::DisableJupyter,
            QueueMessage::AddUser(_) => Action::AddUser,
            QueueMessage::DiskCreate(_) => Action::DiskCreate,
            QueueMessage::DiskDelete(_) => Action::DiskDelete,
            QueueMessage::DiskRename => Action::DiskRename,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const ID: &str = "3f2a9c1e-7b4d-4e8f-9a0b-1c2d3e4f5a6b";

    /// Bodies exactly as the API wrote them before the messages had a type; messages still in a
    /// queue when a new build starts must read the same.
    #[test]
    fn messages_written_before_the_type_existed_still_parse() {
        let reservation = |action: &str, details: Value| {
            json!({ "action": action, "reservation_id": ID, "username": "alice",
                    "requested_at": "2026-01-01T00:00:00Z", "details": details })
        };
        for (body, action) in [
            (
                reservation(
                    "create",
                    json!({"gpu_type": "h100", "gpu_count": 8, "node_count": 1}),
                ),
                Action::Create,
            ),
            (reservation("cancel", json!({})), Action::Cancel),
            (
                reservation("extend", json!({"extension_hours": 2.0})),
                Action::Extend,
            ),
            (
                reservation("enable_jupyter", json!({"jupyter_enabled": true})),
                Action::EnableJupyter,
            ),
            (
                reservation("disable_jupyter", json!({"jupyter_enabled": false})),
                Action::DisableJupyter,
            ),
            (
                reservation("add_user", json!({"github_username": "bob"})),
                Action::AddUser,
            ),
            (
                json!({ "action": "disk_create", "operation_id": ID, "disk_id": ID,
                        "disk_name": "home", "username": "alice", "size_gb": 100,
                        "requested_at": "2026-01-01T00:00:00Z" }),
                Action::DiskCreate,
            ),
            (
                json!({ "action": "disk_delete", "operation_id": ID, "disk_id": ID,
                        "disk_name": "home", "username": "alice",
                        "delete_date": "2026-01-31T00:00:00Z",
                        "requested_at": "2026-01-01T00:00:00Z" }),
                Action::DiskDelete,
            ),
            (json!({"action": "disk_rename"}), Action::DiskRename),
        ] {
            let message = QueueMessage::parse(&body).unwrap();
            assert_eq!(message.action(), action);
            assert_eq!(
                serde_json::to_value(&message).unwrap(),
                body,
                "written back the same"
            );
        }
    }

    #[test]
    fn unknown_actions_and_malformed_bodies_are_told_apart() {
        assert_eq!(
            QueueMessage::parse(&json!({"action": "launch_rockets", "reservation_id": ID})),
            Err(MessageError::UnknownAction("launch_rockets".into()))
        );
        for body in [
            json!("hello"),
            json!({"action": 7}),
            json!({"action": "create"}),
            json!({"action": "create", "reservation_id": "nope"}),
        ] {
            assert!(
                matches!(QueueMessage::parse(&body), Err(MessageError::Malformed(_))),
                "{body}"
            );
        }
    }

    #[test]
    fn every_action_is_written_as_its_name() {
        for action in [
            Action::Create,
            Action::Cancel,
            Action::Extend,
            Action::EnableJupyter,
            Action::DisableJupyter,
            Action::AddUser,
            Action::DiskCreate,
            Action::DiskDelete,
            Action::DiskRename,
        ] {
            assert_eq!(
                serde_json::to_value(action).unwrap(),
                json!(action.as_str())
            );
        }
    }
}
