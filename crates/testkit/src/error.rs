//! The crate-internal error: a message with context, turned into a panic at the public edge.
//!
//! Helpers return `Result` internally so each layer can say what it was doing; the public
//! functions panic with the whole chain, because a broken test environment should fail the test
//! with a readable message rather than be handled.

use std::fmt;

/// What went wrong, outermost context first.
#[derive(Debug)]
pub(crate) struct Error(String);

impl Error {
    pub(crate) fn msg(message: impl Into<String>) -> Self {
        Self(message.into())
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

pub(crate) type Result<T> = std::result::Result<T, Error>;

/// Adds "what we were doing" to any displayable error.
pub(crate) trait Context<T> {
    fn context(self, what: impl fmt::Display) -> Result<T>;
}

impl<T, E: std::error::Error> Context<T> for std::result::Result<T, E> {
    fn context(self, what: impl fmt::Display) -> Result<T> {
        self.map_err(|e| {
            // Include the causes: tokio-postgres, for one, keeps the server's message there.
            let mut message = format!("{what}: {e}");
            let mut source = e.source();
            while let Some(cause) = source {
                let cause_text = cause.to_string();
                if !message.contains(&cause_text) {
                    message = format!("{message}: {cause_text}");
                }
                source = cause.source();
            }
            Error(message)
        })
    }
}
