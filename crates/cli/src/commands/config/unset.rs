//! `gpu-dev config unset`

use crate::config::Config;
use crate::error::CliResult;
use crate::paths::Paths;

/// Remove a setting, so its default applies again.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The key.
    pub key: String,
}

/// Runs `config unset`.
pub fn run(args: Args) -> CliResult {
    let paths = Paths::from_env()?;
    let mut config = Config::load(&paths.config_file).unwrap_or_default();
    config.unset(&args.key)?;
    config.save(&paths.config_file)
}
