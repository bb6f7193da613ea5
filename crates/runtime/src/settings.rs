//! Settings from the environment, read through one set of helpers: a blank variable counts as
//! unset, numbers have a default and an accepted range, and every error names its variable.

use std::collections::HashMap;
use std::fmt::Display;
use std::net::SocketAddr;
use std::ops::RangeInclusive;
use std::str::FromStr;
use std::time::Duration;

use crate::telemetry::LogFormat;

/// A configuration problem, naming the variable at fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{variable}: {problem}")]
pub struct ConfigError {
    /// The environment variable at fault.
    pub variable: &'static str,
    /// What is wrong with it.
    pub problem: String,
}

impl ConfigError {
    /// A problem with `variable`.
    pub fn new(variable: &'static str, problem: impl Into<String>) -> Self {
        Self {
            variable,
            problem: problem.into(),
        }
    }
}

/// A whole-number setting that more than one program or the Helm chart knows: its variable, its
/// default and the values it accepts. Declared once in [`crate::shared`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IntSetting {
    /// The environment variable.
    pub var: &'static str,
    /// The value when the variable is unset.
    pub default: u32,
    /// The smallest accepted value.
    pub min: u32,
    /// The largest accepted value.
    pub max: u32,
}

/// Where settings come from: the process environment, or a map in tests.
pub struct Env<F> {
    lookup: F,
}

/// Reads the process environment.
pub fn process_env(var: &str) -> Option<String> {
    std::env::var(var).ok()
}

/// A lookup over fixed `(variable, value)` pairs, for tests: `Config::from_lookup(lookup_in(&[…]))`.
pub fn lookup_in(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
    let map: HashMap<String, String> = vars
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    move |k| map.get(k).cloned()
}

impl<F: Fn(&str) -> Option<String>> Env<F> {
    /// Settings read through `lookup`.
    pub fn new(lookup: F) -> Self {
        Self { lookup }
    }

    /// The value of `var` as it is, blank or not (for the few settings where empty means
    /// "off").
    pub fn raw(&self, var: &str) -> Option<String> {
        (self.lookup)(var)
    }

    /// The value of `var`; unset when it is blank.
    pub fn get(&self, var: &str) -> Option<String> {
        self.raw(var).filter(|v| !v.trim().is_empty())
    }

    /// A whole number within `range`, `default` when unset.
    pub fn int<T>(
        &self,
        var: &'static str,
        default: T,
        range: RangeInclusive<T>,
    ) -> Result<T, ConfigError>
    where
        T: FromStr + PartialOrd + Display + Copy,
    {
        let Some(raw) = self.get(var) else {
            return Ok(default);
        };
        let v: T = raw
            .trim()
            .parse()
            .map_err(|_| ConfigError::new(var, format!("{raw:?} is not a whole number")))?;
        if !range.contains(&v) {
            return Err(ConfigError::new(
                var,
                format!("{v} is outside {}..={}", range.start(), range.end()),
            ));
        }
        Ok(v)
    }

    /// A declared whole-number setting.
    pub fn setting(&self, s: IntSetting) -> Result<u32, ConfigError> {
        self.int(s.var, s.default, s.min..=s.max)
    }

    /// A number (fractions allowed) within `range`, `default` when unset.
    pub fn float(
        &self,
        var: &'static str,
        default: f64,
        range: RangeInclusive<f64>,
    ) -> Result<f64, ConfigError> {
        let Some(raw) = self.get(var) else {
            return Ok(default);
        };
        let v: f64 = raw
            .trim()
            .parse()
            .map_err(|_| ConfigError::new(var, format!("{raw:?} is not a number")))?;
        if !v.is_finite() || !range.contains(&v) {
            return Err(ConfigError::new(
                var,
                format!("{v} is outside {}..={}", range.start(), range.end()),
            ));
        }
        Ok(v)
    }

    /// Whole seconds within `range`, `default` when unset.
    pub fn seconds(
        &self,
        var: &'static str,
        default: u64,
        range: RangeInclusive<u64>,
    ) -> Result<Duration, ConfigError> {
        self.int(var, default, range).map(Duration::from_secs)
    }

    /// `true`/`1`/`yes` or `false`/`0`/`no`, `default` when unset.
    pub fn boolean(&self, var: &'static str, default: bool) -> Result<bool, ConfigError> {
        match self.get(var).as_deref().map(str::trim) {
            None => Ok(default),
            Some("true" | "1" | "yes") => Ok(true),
            Some("false" | "0" | "no") => Ok(false),
            Some(other) => Err(ConfigError::new(
                var,
                format!("{other:?} is neither true nor false"),
            )),
        }
    }

    /// A socket address (`host:port`), `default` when unset.
    pub fn addr(&self, var: &'static str, default: &str) -> Result<SocketAddr, ConfigError> {
        let raw = self.get(var).unwrap_or_else(|| default.to_owned());
        raw.trim().parse().map_err(|_| {
            ConfigError::new(
                var,
                format!("{raw:?} is not an address like 0.0.0.0:8000 (host:port)"),
            )
        })
    }

    /// `LOG_FORMAT`: `json` (the default) or `pretty`.
    pub fn log_format(&self) -> Result<LogFormat, ConfigError> {
        match self.get("LOG_FORMAT").as_deref().map(str::trim) {
            None | Some("json") => Ok(LogFormat::Json),
            Some("pretty") => Ok(LogFormat::Pretty),
            Some(other) => Err(ConfigError::new(
                "LOG_FORMAT",
                format!("{other:?} is neither \"json\" nor \"pretty\""),
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(vars: &[(&str, &str)]) -> Env<impl Fn(&str) -> Option<String>> {
        Env::new(lookup_in(vars))
    }

    #[test]
    fn blank_is_unset_and_numbers_are_range_checked_naming_the_variable() {
        let e = env(&[
            ("A", " "),
            ("B", "7"),
            ("C", "70"),
            ("D", "x"),
            ("F", "0.5"),
        ]);
        assert_eq!(e.int("A", 3_u32, 1..=10), Ok(3));
        assert_eq!(e.int("B", 3_u32, 1..=10), Ok(7));
        assert_eq!(
            e.int("C", 3_u32, 1..=10).unwrap_err().to_string(),
            "C: 70 is outside 1..=10"
        );
        assert_eq!(
            e.int("D", 3_u32, 1..=10).unwrap_err().to_string(),
            "D: \"x\" is not a whole number"
        );
        assert_eq!(e.float("F", 1.0, 0.1..=2.0), Ok(0.5));
        assert!(e.float("F", 1.0, 1.0..=2.0).is_err());
        assert_eq!(e.raw("A").as_deref(), Some(" "));
    }

    #[test]
    fn log_format_and_booleans() {
        let e = env(&[("LOG_FORMAT", "pretty"), ("ON", "yes"), ("BAD", "maybe")]);
        assert_eq!(e.log_format(), Ok(LogFormat::Pretty));
        assert_eq!(e.boolean("ON", false), Ok(true));
        assert_eq!(e.boolean("OFF", false), Ok(false));
        assert!(e.boolean("BAD", false).is_err());
        assert_eq!(
            env(&[("LOG_FORMAT", "xml")])
                .log_format()
                .unwrap_err()
                .variable,
            "LOG_FORMAT"
        );
    }
}
