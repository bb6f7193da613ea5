use std::fmt;

/// Errors from the storage layer.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Configuration was missing or invalid.
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    /// No database connection could be obtained from the pool.
    #[error("{0}")]
    Unavailable(String),
    /// A query failed.
    #[error("database error: {0}")]
    Db(#[from] tokio_postgres::Error),
    /// Migrations could not be applied.
    #[error("migration failed: {0}")]
    Migration(String),
    /// The addressed row does not exist.
    #[error("{0} not found")]
    NotFound(NotFound),
    /// A reservation was not in a state that allows the requested change.
    #[error(transparent)]
    Transition(#[from] gpudev_domain::TransitionError),
    /// A stored value did not parse back into its domain type.
    #[error("corrupt row: {0}")]
    Corrupt(String),
    /// A value conflicts with an existing row (a unique name, say).
    #[error("conflict: {0}")]
    Conflict(String),
}

/// What was not found, for messages that name it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NotFound {
    /// A user, by name or id.
    User(String),
    /// An API key, by id.
    ApiKey(i64),
    /// A reservation, by id.
    Reservation(uuid::Uuid),
    /// A disk, by owner and name.
    Disk(String),
    /// A PGMQ queue, by name.
    Queue(String),
}

impl fmt::Display for NotFound {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NotFound::User(u) => write!(f, "user {u:?}"),
            NotFound::ApiKey(id) => write!(f, "API key {id}"),
            NotFound::Reservation(id) => write!(f, "reservation {id}"),
            NotFound::Disk(d) => write!(f, "disk {d:?}"),
            NotFound::Queue(q) => write!(f, "queue {q:?}"),
        }
    }
}

impl From<deadpool_postgres::PoolError> for StoreError {
    fn from(e: deadpool_postgres::PoolError) -> Self {
        match e {
            deadpool_postgres::PoolError::Backend(db) => StoreError::Db(db),
            other => StoreError::Unavailable(other.to_string()),
        }
    }
}

impl StoreError {
    /// True when the error means the database could not be reached (as opposed to a bad query):
    /// callers answer 503 and retry later.
    pub fn is_unavailable(&self) -> bool {
        match self {
            StoreError::Unavailable(_) => true,
            StoreError::Db(e) => {
                e.is_closed()
                    || e.code().is_none() && e.as_db_error().is_none()
                    || e.code().is_some_and(is_outage_state)
            }
            _ => false,
        }
    }

    /// True when PostgreSQL refused a text value it cannot store (a NUL character, or one the
    /// database encoding lacks): bad input, not a fault.
    pub fn is_unstorable_text(&self) -> bool {
        use tokio_postgres::error::SqlState;
        matches!(self, StoreError::Db(e) if e.code() == Some(&SqlState::CHARACTER_NOT_IN_REPERTOIRE)
            || e.code() == Some(&SqlState::UNTRANSLATABLE_CHARACTER))
    }

    /// True for a unique-constraint violation.
    pub fn is_unique_violation(&self) -> bool {
        matches!(self, StoreError::Db(e) if e.code() == Some(&tokio_postgres::error::SqlState::UNIQUE_VIOLATION))
    }

    /// A unique-constraint violation as a [`StoreError::Conflict`] saying `detail`; any other
    /// error unchanged.
    pub fn unique_as_conflict(self, detail: impl FnOnce() -> String) -> Self {
        if self.is_unique_violation() {
            StoreError::Conflict(detail())
        } else {
            self
        }
    }
}

/// SQLSTATEs the server sends when it, not the query, is the problem. A server shutting down
/// answers the statements in flight with `57P01 admin_shutdown` (a fast stop) or `57P02
/// crash_shutdown` before closing their connections, and refuses new ones with `57P03
/// cannot_connect_now` while it starts or stops; these are outages (503, retry), not bugs (500).
fn is_outage_state(code: &tokio_postgres::error::SqlState) -> bool {
    use tokio_postgres::error::SqlState;
    *code == SqlState::ADMIN_SHUTDOWN
        || *code == SqlState::CRASH_SHUTDOWN
        || *code == SqlState::CANNOT_CONNECT_NOW
        || *code == SqlState::TOO_MANY_CONNECTIONS
        // Class 08: connection exceptions.
        || code.code().starts_with("08")
}

#[cfg(test)]
mod tests {
    use tokio_postgres::error::SqlState;

    use super::is_outage_state;

    #[test]
    fn a_server_going_away_is_an_outage_and_a_bad_statement_is_not() {
        for state in [
            SqlState::ADMIN_SHUTDOWN,
            SqlState::CRASH_SHUTDOWN,
            SqlState::CANNOT_CONNECT_NOW,
            SqlState::TOO_MANY_CONNECTIONS,
            SqlState::CONNECTION_FAILURE,
            SqlState::CONNECTION_EXCEPTION,
        ] {
            assert!(is_outage_state(&state), "{}", state.code());
        }
        for state in [
            SqlState::UNIQUE_VIOLATION,
            SqlState::SYNTAX_ERROR,
            SqlState::QUERY_CANCELED,
            SqlState::T_R_SERIALIZATION_FAILURE,
        ] {
            assert!(!is_outage_state(&state), "{}", state.code());
        }
    }
}
