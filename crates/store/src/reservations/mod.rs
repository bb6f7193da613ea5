//! Reservations, their secrets and their event history.
//!
//! [`submit()`] writes the row, its creation event and the PGMQ message in one transaction, so a
//! reservation is never acknowledged without a message and a message never names a missing row.
//! [`transition()`] is the only way a status changes: one statement that locks the row, applies the
//! change only when the current status is an allowed predecessor, and records the event.
//!
//! One file per concern: `model` (the rows and how they are read), `submit`, `queries`,
//! `transitions`, `actions` (extend, Jupyter, extra users, hints) and `secrets`; everything is
//! re-exported here, so callers name `reservations::…` whatever file it lives in. `groups` (the
//! original client's multi-node reservations, ADR 16) is named `reservations::groups::…`.

mod actions;
pub mod groups;
mod model;
mod queries;
mod secrets;
mod submit;
mod transitions;

pub use actions::*;
pub use model::*;
pub use queries::*;
pub use secrets::*;
pub use submit::*;
pub use transitions::*;
