//! Why a command failed, and the exit code that says so.
//!
//! | code | meaning |
//! |---|---|
//! | 0 | success |
//! | 1 | the API refused or failed the request (its `detail` is printed), or a local failure |
//! | 2 | usage error: bad flags or arguments (clap), or a bad configuration value |
//! | 3 | authentication error: not logged in, no AWS credentials, or a key or login refused |
//! | 130 | interrupted (Ctrl-C) while waiting; the reservation itself stands |

use gpudev_client::ErrorCode;
use std::process::ExitCode;

use gpudev_client::ClientError;

/// A failed command.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// Bad arguments or configuration (exit 2).
    #[error("{0}")]
    Usage(String),
    /// The API answered with an error or could not be reached (exit 1, or 3 for authentication).
    #[error(transparent)]
    Api(#[from] ClientError),
    /// Not logged in, or logging in failed before the API was asked (exit 3).
    #[error("{0}")]
    Auth(String),
    /// Anything else that went wrong (exit 1): a file that cannot be written, a reservation that
    /// failed while we waited.
    #[error("{0}")]
    Failed(String),
    /// The user pressed Ctrl-C (exit 130); what to do next was already printed.
    #[error("interrupted")]
    Interrupted,
}

impl CliError {
    /// The process exit code.
    pub fn exit_code(&self) -> ExitCode {
        ExitCode::from(match self {
            CliError::Usage(_) => 2,
            CliError::Auth(_) => 3,
            CliError::Api(e) if e.is_auth() => 3,
            CliError::Api(_) | CliError::Failed(_) => 1,
            CliError::Interrupted => 130,
        })
    }

    /// What to print on standard error: one line with the API's `detail`, and a hint for
    /// authentication problems.
    pub fn message(&self) -> String {
        match self {
            CliError::Api(e) if e.is_auth() => {
                let hint = match e.code() {
                    Some(ErrorCode::UserDisabled) => "ask an administrator to enable your account",
                    Some(ErrorCode::AwsRoleDenied) => {
                        "log in with the AWS role the server allows (set aws_profile with `gpu-dev config set`)"
                    }
                    _ => "run `gpu-dev login`",
                };
                format!("{e} ({hint})")
            }
            CliError::Api(ClientError::Api {
                status: 429,
                detail,
                retry_after,
                ..
            }) => match retry_after {
                Some(s) => format!("{detail} (try again in {s} s)"),
                None => detail.clone(),
            },
            other => other.to_string(),
        }
    }
}

impl From<std::io::Error> for CliError {
    fn from(e: std::io::Error) -> Self {
        CliError::Failed(e.to_string())
    }
}

/// Result alias for commands.
pub type CliResult<T = ()> = Result<T, CliError>;
