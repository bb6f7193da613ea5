//! Where the CLI keeps its files: the configuration under `$XDG_CONFIG_HOME/gpu-dev/` (default
//! `~/.config/gpu-dev/`) and the credentials and SSH known-hosts under `~/.gpu-dev/`. Both come
//! from the environment at start, so tests point `HOME` and `XDG_CONFIG_HOME` at temporary
//! directories.

use std::path::PathBuf;

use crate::error::CliError;

/// The CLI's file locations.
#[derive(Debug, Clone)]
pub struct Paths {
    /// The user's home directory.
    pub home: PathBuf,
    /// `config.toml`.
    pub config_file: PathBuf,
    /// `~/.gpu-dev`.
    pub state_dir: PathBuf,
    /// `~/.gpu-dev/credentials`.
    pub credentials_file: PathBuf,
}

impl Paths {
    /// Locations from `HOME` and `XDG_CONFIG_HOME` (an empty or relative `XDG_CONFIG_HOME` is
    /// ignored, as the XDG specification says).
    pub fn from_env() -> Result<Self, CliError> {
        let home = std::env::var_os("HOME")
            .filter(|h| !h.is_empty())
            .map(PathBuf::from)
            .ok_or_else(|| {
                CliError::Usage("HOME is not set: gpu-dev keeps its files under it".into())
            })?;
        let config_home = std::env::var_os("XDG_CONFIG_HOME")
            .map(PathBuf::from)
            .filter(|p| p.is_absolute())
            .unwrap_or_else(|| home.join(".config"));
        let state_dir = home.join(".gpu-dev");
        Ok(Self {
            config_file: config_home.join("gpu-dev").join("config.toml"),
            credentials_file: state_dir.join("credentials"),
            state_dir,
            home,
        })
    }
}
