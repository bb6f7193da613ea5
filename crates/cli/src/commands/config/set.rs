//! `gpu-dev config set`

use crate::config::Config;
use crate::error::CliResult;
use crate::paths::Paths;

/// Change a setting in ~/.config/gpu-dev/config.toml (values are checked).
///
/// Keys: api_url, aws_profile, aws_region, aws_instance_metadata, sts_endpoint, github_user,
/// output.
/// Example: gpu-dev config set api_url https://gpudev.example.com
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The key.
    pub key: String,
    /// The value.
    pub value: String,
}

/// Runs `config set`.
pub fn run(args: Args) -> CliResult {
    let paths = Paths::from_env()?;
    // A file that does not parse is replaced rather than blocking its own repair.
    let mut config = Config::load(&paths.config_file).unwrap_or_default();
    config.set(&args.key, &args.value)?;
    config.save(&paths.config_file)
}
