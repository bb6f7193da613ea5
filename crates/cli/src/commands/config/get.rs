//! `gpu-dev config get`

use serde_json::{Map, Value};

use crate::GlobalArgs;
use crate::config::{Config, KEYS};
use crate::error::CliResult;
use crate::output::{self, Format};
use crate::paths::Paths;

/// Print a setting, or every setting with what it is for.
///
/// Keys: api_url, aws_profile, aws_region, aws_instance_metadata, sts_endpoint, github_user,
/// output. An unset key prints nothing.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The key (all when absent).
    pub key: Option<String>,
}

/// Runs `config get`.
pub fn run(global: &GlobalArgs, args: Args) -> CliResult {
    let paths = Paths::from_env()?;
    let config = Config::load(&paths.config_file)?;
    let json = global.output == Some(Format::Json);
    match args.key {
        Some(key) => {
            let value = config.get(&key)?;
            if json {
                return output::json(&Value::from(value));
            }
            if let Some(v) = value {
                output::print(&v);
            }
        }
        None => {
            if json {
                let mut map = Map::new();
                for (key, _) in KEYS {
                    map.insert(key.to_owned(), config.get(key)?.into());
                }
                return output::json(&map);
            }
            output::print(&format!("# {}", paths.config_file.display()));
            for (key, about) in KEYS {
                match config.get(key)? {
                    Some(v) => output::print(&format!("{key} = {v:?}")),
                    None => output::print(&format!("# {key}: {about} (not set)")),
                }
            }
        }
    }
    Ok(())
}
