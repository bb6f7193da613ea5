//! `config.toml`: the user's settings. Every key is optional; `GPU_DEV_API_URL` and the global
//! flags override what is stored here.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::CliError;
use crate::files;
use crate::output::Format;

/// The API URL when nothing else names one (the local system started by `scripts/dev-up`).
pub const DEFAULT_API_URL: &str = "http://localhost:8000";

/// Settings stored in `config.toml`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Config {
    /// Base URL of the gpudev API.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub api_url: Option<String>,
    /// AWS profile to log in with (default: `AWS_PROFILE`, else the default profile).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub aws_profile: Option<String>,
    /// AWS region whose STS endpoint signs the login (default: the profile's or `AWS_REGION`,
    /// else us-east-1).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub aws_region: Option<String>,
    /// STS endpoint to sign the login for, when not the region's (`AWS_ENDPOINT_URL_STS` wins).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sts_endpoint: Option<String>,
    /// GitHub login whose public keys are installed in dev boxes (`reserve --github-user`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub github_user: Option<String>,
    /// Default output format: `table` or `json`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub output: Option<String>,
    /// `true` to also take AWS credentials from EC2 instance metadata (an instance role).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub aws_instance_metadata: Option<String>,
    /// OpenID Connect issuer for `gpu-dev login --oidc` (default: the first the API lists).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub oidc_issuer: Option<String>,
    /// OAuth client id for that issuer (default: the one the API lists for it).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub oidc_client_id: Option<String>,
}

/// The keys `config get|set|unset` know, with what each is for.
pub const KEYS: [(&str, &str); 9] = [
    (
        "api_url",
        "base URL of the gpudev API (GPU_DEV_API_URL overrides it)",
    ),
    ("aws_profile", "AWS profile used by `gpu-dev login`"),
    (
        "aws_region",
        "AWS region whose STS endpoint signs the login",
    ),
    (
        "aws_instance_metadata",
        "true: also take AWS credentials from EC2 instance metadata (an instance role)",
    ),
    (
        "sts_endpoint",
        "STS endpoint to sign the login for (AWS_ENDPOINT_URL_STS overrides it)",
    ),
    (
        "github_user",
        "GitHub login whose SSH keys go into dev boxes",
    ),
    ("output", "default output format: table or json"),
    (
        "oidc_issuer",
        "OpenID Connect issuer for `gpu-dev login --oidc` (default: the API's first)",
    ),
    (
        "oidc_client_id",
        "OAuth client id for `gpu-dev login --oidc` (default: the API's for the issuer)",
    ),
];

impl Config {
    /// Reads the file; a missing file is an empty configuration.
    pub fn load(path: &Path) -> Result<Self, CliError> {
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Self::default()),
            Err(e) => {
                return Err(CliError::Failed(format!(
                    "cannot read {}: {e}",
                    path.display()
                )));
            }
        };
        toml::from_str(&text).map_err(|e| {
            CliError::Usage(format!("{} is not valid: {}", path.display(), e.message()))
        })
    }

    /// Writes the file atomically (a reader never sees half of it).
    pub fn save(&self, path: &Path) -> Result<(), CliError> {
        let text = toml::to_string(self)
            .map_err(|e| CliError::Failed(format!("cannot write the configuration: {e}")))?;
        files::write_atomic(path, text.as_bytes(), 0o644)
    }

    fn slot(&mut self, key: &str) -> Result<&mut Option<String>, CliError> {
        Ok(match key {
            "api_url" => &mut self.api_url,
            "aws_profile" => &mut self.aws_profile,
            "aws_region" => &mut self.aws_region,
            "sts_endpoint" => &mut self.sts_endpoint,
            "github_user" => &mut self.github_user,
            "output" => &mut self.output,
            "aws_instance_metadata" => &mut self.aws_instance_metadata,
            "oidc_issuer" => &mut self.oidc_issuer,
            "oidc_client_id" => &mut self.oidc_client_id,
            other => return Err(unknown_key(other)),
        })
    }

    /// The value of `key` (`None` when unset); unknown keys are a usage error.
    pub fn get(&self, key: &str) -> Result<Option<String>, CliError> {
        let mut copy = self.clone();
        copy.slot(key).map(|v| v.clone())
    }

    /// Sets `key` after checking the value.
    pub fn set(&mut self, key: &str, value: &str) -> Result<(), CliError> {
        let value = value.trim();
        if value.is_empty() {
            return Err(CliError::Usage(format!(
                "{key}: give a value, or use `gpu-dev config unset {key}`"
            )));
        }
        check(key, value)?;
        *self.slot(key)? = Some(value.to_owned());
        Ok(())
    }

    /// Removes `key`.
    pub fn unset(&mut self, key: &str) -> Result<(), CliError> {
        *self.slot(key)? = None;
        Ok(())
    }

    /// Whether EC2 instance metadata may supply AWS credentials.
    pub fn instance_metadata(&self) -> bool {
        self.aws_instance_metadata.as_deref() == Some("true")
    }

    /// The output format stored here, if valid.
    pub fn output_format(&self) -> Result<Option<Format>, CliError> {
        self.output
            .as_deref()
            .map(|o| {
                Format::parse(o).ok_or_else(|| {
                    CliError::Usage(format!(
                        "config output = {o:?}: must be table or json (fix it with `gpu-dev config set output table`)"
                    ))
                })
            })
            .transpose()
    }
}

fn unknown_key(key: &str) -> CliError {
    let known: Vec<&str> = KEYS.iter().map(|(k, _)| *k).collect();
    CliError::Usage(format!(
        "unknown configuration key {key:?} (known keys: {})",
        known.join(", ")
    ))
}

fn check(key: &str, value: &str) -> Result<(), CliError> {
    let bad = |why: &str| CliError::Usage(format!("{key} = {value:?}: {why}"));
    match key {
        "api_url" => {
            gpudev_client::Client::new(value).map_err(|e| bad(&e.to_string()))?;
        }
        "sts_endpoint" if !(value.starts_with("https://") || value.starts_with("http://")) => {
            return Err(bad("must be an http:// or https:// URL"));
        }
        "aws_region"
            if !value
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-') =>
        {
            return Err(bad("must look like us-east-1"));
        }
        "oidc_issuer" => {
            gpudev_client::oidc::check_url(value).map_err(|e| bad(&e.to_string()))?;
        }
        "oidc_client_id" if value.chars().any(char::is_whitespace) => {
            return Err(bad("must not contain spaces"));
        }
        "output" => {
            Format::parse(value).ok_or_else(|| bad("must be table or json"))?;
        }
        "aws_instance_metadata" if value != "true" && value != "false" => {
            return Err(bad("must be true or false"));
        }
        "github_user" => {
            let ok = value.len() <= 39
                && value
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !value.starts_with('-');
            if !ok {
                return Err(bad("must be a GitHub login"));
            }
        }
        _ => {}
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_checks_values_and_unknown_keys_are_refused() {
        let mut c = Config::default();
        c.set("api_url", "https://gpudev.example.com").unwrap();
        c.set("output", "json").unwrap();
        assert_eq!(
            c.get("api_url").unwrap().as_deref(),
            Some("https://gpudev.example.com")
        );
        assert_eq!(c.output_format().unwrap(), Some(Format::Json));
        assert!(matches!(c.set("output", "yaml"), Err(CliError::Usage(_))));
        assert!(matches!(c.set("api_url", "nope"), Err(CliError::Usage(_))));
        assert!(matches!(c.set("colour", "x"), Err(CliError::Usage(_))));
        assert!(matches!(c.get("colour"), Err(CliError::Usage(_))));
        c.unset("output").unwrap();
        assert_eq!(c.get("output").unwrap(), None);
    }

    #[test]
    fn the_file_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("gpu-dev").join("config.toml");
        assert_eq!(Config::load(&path).unwrap(), Config::default());
        let mut c = Config::default();
        c.set("github_user", "octocat").unwrap();
        c.save(&path).unwrap();
        assert_eq!(Config::load(&path).unwrap(), c);
        std::fs::write(&path, "output = [").unwrap();
        assert!(matches!(Config::load(&path), Err(CliError::Usage(_))));
    }
}
