//! The `gpudev-admin` command line, as a library so tests can drive it in-process too.

use std::io::Write;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use gpudev_store::{DbConfig, Queue};

mod commands;
mod output;

pub use output::Format;

/// gpudev operator tool: database migrations, API keys, users and the reservation queue.
///
/// Connects with DATABASE_URL, or POSTGRES_HOST, POSTGRES_PORT, POSTGRES_USER, POSTGRES_PASSWORD
/// and POSTGRES_DB.
#[derive(Debug, Parser)]
#[command(name = "gpudev-admin", version)]
pub struct Cli {
    /// Output format.
    #[arg(long, short = 'o', global = true, value_enum, default_value_t = Format::Table)]
    pub output: Format,
    /// The reservation queue.
    #[arg(long, global = true, env = "QUEUE_NAME", default_value = gpudev_store::DEFAULT_QUEUE)]
    pub queue: String,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Top-level commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Apply pending database migrations (idempotent; safe to run concurrently).
    Migrate,
    /// Create, list and revoke API keys.
    #[command(subcommand)]
    Keys(KeysCommand),
    /// List, create, enable, disable and promote users.
    #[command(subcommand)]
    Users(UsersCommand),
    /// Inspect the reservation queue.
    #[command(subcommand)]
    Queue(QueueCommand),
}

/// `keys …`
#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Create a key for a user and print it once.
    Create {
        /// The key's owner.
        #[arg(long)]
        user: String,
        /// Lifetime in hours (1 to 8760).
        #[arg(long, default_value_t = 24, value_parser = clap::value_parser!(u32).range(1..=8760))]
        ttl_hours: u32,
        /// Free text shown in listings.
        #[arg(long)]
        description: Option<String>,
        /// Requests per minute allowed for this key (overrides the server default).
        #[arg(long, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
        rate_limit: Option<u32>,
    },
    /// List keys (never their secrets).
    List {
        /// Only this user's keys.
        #[arg(long)]
        user: Option<String>,
    },
    /// Revoke a key by id.
    Revoke {
        /// The key id, as shown by `keys list`.
        id: i64,
    },
}

/// `users …`
#[derive(Debug, Subcommand)]
pub enum UsersCommand {
    /// List users.
    List,
    /// Create a user (for service accounts; people are created on first login).
    Create {
        /// Username: letters, digits, '.', '_' and '-'.
        username: String,
        /// Make the user an admin.
        #[arg(long)]
        admin: bool,
    },
    /// Disable a user: their keys are revoked and logging in is refused.
    Disable {
        /// The user.
        username: String,
    },
    /// Enable a disabled user.
    Enable {
        /// The user.
        username: String,
    },
    /// Make a user an admin.
    GrantAdmin {
        /// The user.
        username: String,
    },
    /// Make an admin a normal user.
    RevokeAdmin {
        /// The user.
        username: String,
    },
    /// Let an OpenID Connect identity sign in as an existing user (the same person); the user's
    /// AWS logins keep working. The identity is in the refused login's audit record.
    LinkOidc {
        /// The user.
        username: String,
        /// The issuer URL, exactly as configured (`OIDC_ISSUERS_JSON`).
        #[arg(long)]
        issuer: String,
        /// The token's `sub` claim.
        #[arg(long)]
        subject: String,
    },
    /// Remove a user's OpenID Connect identity.
    UnlinkOidc {
        /// The user.
        username: String,
    },
}

/// `queue …`
#[derive(Debug, Subcommand)]
pub enum QueueCommand {
    /// Depth and message ages of the queue and its dead-letter queue.
    Stats,
    /// Messages the processor gave up on, newest first.
    DeadLetters {
        /// How many to show.
        #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(i64).range(1..=10_000))]
        limit: i64,
    },
}

/// Runs one command, writing its result to `out`.
pub async fn run(cli: Cli, out: &mut impl Write) -> anyhow::Result<()> {
    let queue = Queue::new(&cli.queue).context("QUEUE_NAME")?;
    let cfg = DbConfig::from_env()?.with_application_name("gpudev-admin");
    let ctx = commands::Ctx {
        format: cli.output,
        queue,
    };
    match cli.command {
        Command::Migrate => commands::migrate::run(&cfg, &ctx, out).await,
        Command::Keys(cmd) => commands::keys::run(&cfg, &ctx, cmd, out).await,
        Command::Users(cmd) => commands::users::run(&cfg, &ctx, cmd, out).await,
        Command::Queue(cmd) => commands::queue::run(&cfg, &ctx, cmd, out).await,
    }
}
