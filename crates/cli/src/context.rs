//! What every command gets: file locations, settings, the API client and the terminal.

use std::time::Duration;

use gpudev_client::Client;

use crate::GlobalArgs;
use crate::config::{Config, DEFAULT_API_URL};
use crate::error::CliError;
use crate::output::{Format, Term};
use crate::paths::Paths;

/// Whole-request timeout of API calls.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// Connect timeout of API calls.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// The state of one invocation.
#[derive(Debug)]
pub struct Ctx {
    /// File locations.
    pub paths: Paths,
    /// Stored settings.
    pub config: Config,
    /// The API base URL (normalised, ending with `/`).
    pub api_url: String,
    /// A client of the API without a key.
    pub client: Client,
    /// Output format.
    pub format: Format,
    /// The terminal.
    pub term: Term,
}

impl Ctx {
    /// Reads the settings and applies the flags and environment over them: the API URL is
    /// `--api-url`/`GPU_DEV_API_URL`, else `api_url`, else the local default.
    pub fn new(global: &GlobalArgs) -> Result<Self, CliError> {
        let paths = Paths::from_env()?;
        let config = Config::load(&paths.config_file)?;
        let format = match global.output {
            Some(f) => f,
            None => config.output_format()?.unwrap_or(Format::Table),
        };
        let url = global
            .api_url
            .clone()
            .filter(|u| !u.trim().is_empty())
            .or_else(|| config.api_url.clone())
            .unwrap_or_else(|| DEFAULT_API_URL.to_owned());
        let client = Client::builder(&url)
            .timeout(REQUEST_TIMEOUT)
            .connect_timeout(CONNECT_TIMEOUT)
            .user_agent(concat!("gpu-dev/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| CliError::Usage(e.to_string()))?;
        Ok(Self {
            api_url: client.base_url().to_string(),
            client,
            paths,
            config,
            format,
            term: Term::detect(global.no_color),
        })
    }

    /// True for `--output json`.
    pub fn json(&self) -> bool {
        self.format == Format::Json
    }
}
