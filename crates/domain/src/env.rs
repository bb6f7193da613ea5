//! Environment variables a user asks to have set in their dev box.
//!
//! Values are treated as secrets: they reach the pod through a Kubernetes Secret, and neither
//! `Debug` nor any error message here ever contains one.

use std::collections::BTreeMap;
use std::fmt;

/// Most variables in one reservation.
pub const MAX_ENV_VARS: usize = 64;
/// Longest variable name.
pub const MAX_ENV_NAME_LEN: usize = 256;
/// Largest total size of all names and values, in bytes (32 KiB).
pub const MAX_ENV_TOTAL_BYTES: usize = 32 * 1024;
/// Name prefixes the platform keeps for itself. `NVIDIA_*` variables steer the NVIDIA container
/// runtime (`NVIDIA_VISIBLE_DEVICES=all` could expose GPUs the reservation does not own);
/// `GPUDEV_*` variables are set by gpudev.
pub const RESERVED_ENV_PREFIXES: [&str; 2] = ["NVIDIA_", "GPUDEV_"];

/// Why a set of environment variables is refused. Never carries a value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EnvError {
    /// More than [`MAX_ENV_VARS`] variables.
    #[error("env may set at most {MAX_ENV_VARS} variables (got {0})")]
    TooMany(usize),
    /// An empty variable name.
    #[error("environment variable names must not be empty")]
    EmptyName,
    /// A name longer than [`MAX_ENV_NAME_LEN`].
    #[error("environment variable names must be at most {MAX_ENV_NAME_LEN} characters")]
    NameTooLong,
    /// A name outside `[A-Za-z_][A-Za-z0-9_]*`.
    #[error(
        "environment variable name {0:?} must start with a letter or '_' and contain only \
         letters, digits and '_'"
    )]
    InvalidName(String),
    /// A name with a reserved prefix.
    #[error(
        "environment variable name {0:?} is reserved (names starting with NVIDIA_ or GPUDEV_ are set by the platform)"
    )]
    ReservedName(String),
    /// A value containing a NUL byte, which no process environment can hold.
    #[error("the value of environment variable {0:?} must not contain a NUL character")]
    NulInValue(String),
    /// Names and values together exceed [`MAX_ENV_TOTAL_BYTES`].
    #[error("env names and values must total at most {MAX_ENV_TOTAL_BYTES} bytes (got {0})")]
    TooLarge(usize),
    /// A `NAME=VALUE` flag without `=`.
    #[error("environment variables must be given as NAME=VALUE")]
    MissingEquals,
}

/// A checked set of environment variables, ordered by name.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct EnvVars(BTreeMap<String, String>);

fn check_name(name: &str) -> Result<(), EnvError> {
    if name.is_empty() {
        return Err(EnvError::EmptyName);
    }
    if name.len() > MAX_ENV_NAME_LEN {
        return Err(EnvError::NameTooLong);
    }
    let first_ok = name
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_');
    if !first_ok || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        return Err(EnvError::InvalidName(name.to_owned()));
    }
    if RESERVED_ENV_PREFIXES.iter().any(|p| name.starts_with(p)) {
        return Err(EnvError::ReservedName(name.to_owned()));
    }
    Ok(())
}

fn check_value(name: &str, value: &str) -> Result<(), EnvError> {
    if value.contains('\0') {
        return Err(EnvError::NulInValue(name.to_owned()));
    }
    Ok(())
}

impl EnvVars {
    /// Checks every name and value and the count and size limits.
    pub fn parse(vars: BTreeMap<String, String>) -> Result<Self, EnvError> {
        if vars.len() > MAX_ENV_VARS {
            return Err(EnvError::TooMany(vars.len()));
        }
        let mut total = 0usize;
        for (name, value) in &vars {
            check_name(name)?;
            check_value(name, value)?;
            total = total.saturating_add(name.len()).saturating_add(value.len());
        }
        if total > MAX_ENV_TOTAL_BYTES {
            return Err(EnvError::TooLarge(total));
        }
        Ok(Self(vars))
    }

    /// Splits one `NAME=VALUE` command-line flag at its first `=` and checks both halves.
    /// The value may be empty and may itself contain `=`.
    pub fn parse_pair(flag: &str) -> Result<(String, String), EnvError> {
        let (name, value) = flag.split_once('=').ok_or(EnvError::MissingEquals)?;
        check_name(name)?;
        check_value(name, value)?;
        Ok((name.to_owned(), value.to_owned()))
    }

    /// Every `(name, value)` pair, ordered by name.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// Every name, in order.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.0.keys().map(String::as_str)
    }

    /// Number of variables.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// True when no variable is set.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Hands over the map, for the code that writes it into a Kubernetes Secret or storage.
    pub fn into_map(self) -> BTreeMap<String, String> {
        self.0
    }
}

impl fmt::Debug for EnvVars {
    /// Shows names only: values are secrets.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.names()).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn valid_names_and_values_are_kept_in_name_order() {
        let env = EnvVars::parse(map(&[
            ("WANDB_API_KEY", "s3cret"),
            ("_x1", ""),
            ("a", "b=c"),
        ]))
        .unwrap();
        assert_eq!(env.len(), 3);
        assert!(!env.is_empty());
        assert_eq!(
            env.names().collect::<Vec<_>>(),
            ["WANDB_API_KEY", "_x1", "a"]
        );
        assert_eq!(
            env.iter().collect::<Vec<_>>(),
            [("WANDB_API_KEY", "s3cret"), ("_x1", ""), ("a", "b=c")]
        );
    }

    #[test]
    fn an_empty_map_is_an_empty_set() {
        let env = EnvVars::parse(BTreeMap::new()).unwrap();
        assert!(env.is_empty());
        assert_eq!(env, EnvVars::default());
    }

    #[test]
    fn bad_names_are_refused() {
        assert_eq!(EnvVars::parse(map(&[("", "v")])), Err(EnvError::EmptyName));
        for bad in ["1ABC", "A-B", "A B", "A.B", "É"] {
            assert_eq!(
                EnvVars::parse(map(&[(bad, "v")])),
                Err(EnvError::InvalidName(bad.to_owned())),
                "{bad}"
            );
        }
        assert!(EnvVars::parse(map(&[(&"N".repeat(256), "v")])).is_ok());
        assert_eq!(
            EnvVars::parse(map(&[(&"N".repeat(257), "v")])),
            Err(EnvError::NameTooLong)
        );
    }

    #[test]
    fn platform_reserved_names_are_refused() {
        for bad in [
            "NVIDIA_VISIBLE_DEVICES",
            "NVIDIA_DRIVER_CAPABILITIES",
            "GPUDEV_TOKEN",
        ] {
            assert_eq!(
                EnvVars::parse(map(&[(bad, "all")])),
                Err(EnvError::ReservedName(bad.to_owned()))
            );
        }
        assert!(EnvVars::parse(map(&[("CUDA_VISIBLE_DEVICES", "0")])).is_ok());
    }

    #[test]
    fn values_with_nul_are_refused_without_echoing_the_value() {
        let err = EnvVars::parse(map(&[("TOKEN", "abc\0hunter2")])).unwrap_err();
        assert_eq!(err, EnvError::NulInValue("TOKEN".into()));
        assert!(!err.to_string().contains("hunter2"));
    }

    #[test]
    fn at_most_64_variables_are_accepted() {
        let names: Vec<String> = (0..65).map(|i| format!("V{i}")).collect();
        let vars = |n: usize| {
            names[..n]
                .iter()
                .map(|k| (k.clone(), String::new()))
                .collect()
        };
        assert!(EnvVars::parse(vars(64)).is_ok());
        assert_eq!(EnvVars::parse(vars(65)), Err(EnvError::TooMany(65)));
    }

    #[test]
    fn names_and_values_may_total_at_most_32_kib() {
        // "A" (1 byte) + value.
        let fits = "x".repeat(MAX_ENV_TOTAL_BYTES - 1);
        assert!(EnvVars::parse(map(&[("A", &fits)])).is_ok());
        let over = "x".repeat(MAX_ENV_TOTAL_BYTES);
        assert_eq!(
            EnvVars::parse(map(&[("A", &over)])),
            Err(EnvError::TooLarge(MAX_ENV_TOTAL_BYTES + 1))
        );
    }

    #[test]
    fn debug_prints_names_but_never_values() {
        let env =
            EnvVars::parse(map(&[("HF_TOKEN", "hf_topsecret"), ("X", "also-secret")])).unwrap();
        let shown = format!("{env:?}");
        assert_eq!(shown, r#"{"HF_TOKEN", "X"}"#);
        assert!(!shown.contains("topsecret") && !shown.contains("also-secret"));
    }

    #[test]
    fn parse_pair_splits_at_the_first_equals_sign() {
        assert_eq!(EnvVars::parse_pair("K=V"), Ok(("K".into(), "V".into())));
        assert_eq!(EnvVars::parse_pair("K=a=b"), Ok(("K".into(), "a=b".into())));
        assert_eq!(EnvVars::parse_pair("K="), Ok(("K".into(), String::new())));
        assert_eq!(EnvVars::parse_pair("K"), Err(EnvError::MissingEquals));
        assert_eq!(EnvVars::parse_pair("=V"), Err(EnvError::EmptyName));
        assert_eq!(
            EnvVars::parse_pair("1K=V"),
            Err(EnvError::InvalidName("1K".into()))
        );
        assert_eq!(
            EnvVars::parse_pair("K=\0"),
            Err(EnvError::NulInValue("K".into()))
        );
    }

    #[test]
    fn into_map_returns_what_was_parsed() {
        let m = map(&[("A", "1")]);
        assert_eq!(EnvVars::parse(m.clone()).unwrap().into_map(), m);
    }
}
