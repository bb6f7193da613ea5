//! Settings from the environment.
//!
//! | Variable | Default | Meaning |
//! |---|---|---|
//! | `DATABASE_URL` or `POSTGRES_*` | — | the database (see [`gpudev_store::DbConfig`]) |
//! | `GPU_TYPE_LABEL` | `gpudev.io/gpu-type` | the node label whose value is the node's GPU type |
//! | `MAX_NODES` | 4 | most whole nodes one multi-node reservation may span (1–64) |
//! | `HOSTNAME` | `gpudev-availability` | recorded as the writer of the rows and the run |
//! | `LOG_FORMAT` | `json` | `json` or `pretty` |

use gpudev_cluster::labels;
use gpudev_runtime::{ConfigError, Env, LogFormat, shared};
use gpudev_store::DbConfig;

/// Everything one run needs to know.
#[derive(Debug, Clone)]
pub struct Config {
    /// The database.
    pub db: DbConfig,
    /// The node label naming a node's GPU type.
    pub gpu_type_label: String,
    /// Most whole nodes one multi-node reservation may span.
    pub max_nodes: u32,
    /// Who writes the rows (the pod's host name).
    pub writer: String,
    /// Log line format.
    pub log_format: LogFormat,
}

impl Config {
    /// Reads the settings from the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(gpudev_runtime::settings::process_env)
    }

    /// Reads the settings through `get` (the environment in production, a map in tests).
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let env = Env::new(get);
        let get = |k: &str| env.get(k);
        let db = DbConfig::from_lookup(get)?.with_application_name("gpudev-availability");
        let gpu_type_label = get("GPU_TYPE_LABEL")
            .map(|v| v.trim().to_owned())
            .unwrap_or_else(|| labels::DEFAULT_GPU_TYPE_LABEL.to_owned());
        if !labels::is_label_key(&gpu_type_label) {
            return Err(ConfigError::new(
                "GPU_TYPE_LABEL",
                format!("{gpu_type_label:?} is not a valid label key"),
            ));
        }
        let max_nodes = env.setting(shared::MAX_NODES)?;
        let log_format = env.log_format()?;
        Ok(Self {
            db,
            gpu_type_label,
            max_nodes,
            writer: get("HOSTNAME").unwrap_or_else(|| "gpudev-availability".to_owned()),
            log_format,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use gpudev_runtime::settings::lookup_in;

    fn cfg(vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
        Config::from_lookup(lookup_in(vars))
    }

    const DB: (&str, &str) = ("DATABASE_URL", "postgres://u@h/db");

    #[test]
    fn defaults_apply_when_only_the_database_is_set() {
        let c = cfg(&[DB]).unwrap();
        assert_eq!(c.gpu_type_label, "gpudev.io/gpu-type");
        assert_eq!(c.max_nodes, 4);
        assert_eq!(c.writer, "gpudev-availability");
        assert_eq!(c.log_format, LogFormat::Json);
    }

    #[test]
    fn bad_values_name_their_variable() {
        assert_eq!(cfg(&[]).unwrap_err().variable, "DATABASE_URL");
        for (var, value) in [
            ("GPU_TYPE_LABEL", "not a label/"),
            ("MAX_NODES", "0"),
            ("MAX_NODES", "many"),
            ("LOG_FORMAT", "xml"),
        ] {
            let e = cfg(&[DB, (var, value)]).unwrap_err();
            assert_eq!(e.variable, var, "{value}");
        }
    }

    #[test]
    fn the_writer_is_the_host_name() {
        let c = cfg(&[DB, ("HOSTNAME", "gpudev-availability-29123-abcde")]).unwrap();
        assert_eq!(c.writer, "gpudev-availability-29123-abcde");
    }
}
