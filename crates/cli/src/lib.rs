//! `gpu-dev`, the gpudev user CLI, as a library: the command line (clap), one module per command
//! under [`commands`], and what they share (settings, credentials, the authenticated session,
//! output). `main.rs` only parses and maps the result to an exit code (see [`error`]).

pub mod auth;
pub mod aws;
pub mod commands;
pub mod config;
pub mod context;
pub mod credentials;
pub mod error;
pub mod files;
pub mod oidc;
pub mod output;
pub mod paths;
pub mod session;
pub mod wait;
pub mod when;

use clap::{Args, Parser, Subcommand};

use crate::context::Ctx;
use crate::error::CliResult;
use crate::output::Format;

/// Reserve GPU development servers ("dev boxes") on the gpudev cluster.
///
/// Log in once with your AWS identity (`gpu-dev login`), then reserve, connect, extend and cancel
/// dev boxes. Settings live in ~/.config/gpu-dev/config.toml (`gpu-dev config`), the API key in
/// ~/.gpu-dev/credentials. Exit codes: 0 success, 1 API error, 2 usage error, 3 authentication
/// error.
#[derive(Debug, Parser)]
#[command(name = "gpu-dev", version, propagate_version = true)]
pub struct Cli {
    /// Options of every command.
    #[command(flatten)]
    pub global: GlobalArgs,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Options of every command.
#[derive(Debug, Args)]
pub struct GlobalArgs {
    /// Output format (default: the `output` setting, else table).
    #[arg(long, short = 'o', global = true, value_enum, env = "GPU_DEV_OUTPUT")]
    pub output: Option<Format>,
    /// Base URL of the gpudev API (default: the `api_url` setting, else http://localhost:8000).
    #[arg(long, global = true, env = "GPU_DEV_API_URL", value_name = "URL")]
    pub api_url: Option<String>,
    /// Never colour the output (setting NO_COLOR does the same).
    #[arg(long, global = true)]
    pub no_color: bool,
}

/// The commands.
#[expect(
    missing_docs,
    reason = "a command's help is the doc comment of its Args, in the command's own file"
)]
#[derive(Debug, Subcommand)]
pub enum Command {
    Login(commands::login::Args),
    Reserve(commands::reserve::Args),
    List(commands::list::Args),
    Show(commands::show::Args),
    Cancel(commands::cancel::Args),
    Extend(commands::extend::Args),
    KeepAlive(commands::keep_alive::Args),
    Connect(commands::connect::Args),
    Console(commands::console::Args),
    Avail(commands::avail::Args),
    Status(commands::status::Args),
    /// Manage persistent home disks.
    #[command(subcommand, visible_alias = "disk")]
    Disks(commands::disks::Command),
    /// Manage your API keys.
    #[command(subcommand)]
    Keys(commands::keys::Command),
    /// Register SSH public keys for your dev boxes.
    #[command(subcommand)]
    SshKeys(commands::ssh_keys::Command),
    /// Read and change settings in ~/.config/gpu-dev/config.toml.
    #[command(subcommand)]
    Config(commands::config::Command),
    Completions(commands::completions::Args),
}

/// Runs one command.
pub async fn run(cli: Cli) -> CliResult {
    use commands::*;
    match cli.command {
        // These work without settings or a server, so a broken config file can be fixed.
        Command::Completions(args) => return completions::run(args),
        Command::Config(cmd) => return config::run(&cli.global, cmd),
        _ => {}
    }
    let ctx = Ctx::new(&cli.global)?;
    match cli.command {
        Command::Login(args) => login::run(&ctx, args).await,
        Command::Reserve(args) => reserve::run(&ctx, args).await,
        Command::List(args) => list::run(&ctx, args).await,
        Command::Show(args) => show::run(&ctx, args).await,
        Command::Cancel(args) => cancel::run(&ctx, args).await,
        Command::Extend(args) => extend::run(&ctx, args).await,
        Command::KeepAlive(args) => keep_alive::run(&ctx, args).await,
        Command::Connect(args) => connect::run(&ctx, args).await,
        Command::Console(args) => console::run(&ctx, args).await,
        Command::Avail(args) => avail::run(&ctx, args).await,
        Command::Status(args) => status::run(&ctx, args).await,
        Command::Disks(cmd) => disks::run(&ctx, cmd).await,
        Command::Keys(cmd) => keys::run(&ctx, cmd).await,
        Command::SshKeys(cmd) => ssh_keys::run(&ctx, cmd).await,
        Command::Completions(_) | Command::Config(_) => Ok(()),
    }
}
