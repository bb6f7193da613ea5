//! The body of `POST /v1/jobs/submit` as JSON: the original API's fields, the first-class fields,
//! and how the original client's control variables inside `env_vars` are honoured. Parsing and
//! resolving it is pure, so it can be tested (and fuzzed) without the HTTP server.
//!
//! The original client smuggled the real parameters through `env_vars` (`GPU_TYPE`, `GPU_COUNT`,
//! `GITHUB_USER`, `JUPYTER_ENABLED`, `RESERVATION_ID`, `POD_NAME`) next to its own bookkeeping
//! (`USER_ID`, `RECREATE_ENV`, `PRESERVE_ENTRYPOINT`, `DOCKER_ENABLED`). A first-class field wins
//! over its variable; every one of these variables is removed from the environment the dev box gets,
//! so only the user's own variables reach the pod. The options gpudev does not offer
//! ([`REFUSED_OPTIONS`]) are refused when asked for, never accepted and ignored.

use std::collections::BTreeMap;
use std::fmt;

use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::gpu::GpuCatalog;
use crate::request::RawReservationRequest;

/// Variables inside `env_vars` that steer the request instead of reaching the dev box.
pub const CONTROL_ENV_VARS: [&str; 10] = [
    "GPU_TYPE",
    "GPU_COUNT",
    "GITHUB_USER",
    "JUPYTER_ENABLED",
    "RESERVATION_ID",
    "POD_NAME",
    "USER_ID",
    "RECREATE_ENV",
    "PRESERVE_ENTRYPOINT",
    "DOCKER_ENABLED",
];

/// An option of the original system that gpudev does not offer. Asking for it is refused with
/// the reason, never accepted and ignored; sending it off (`false`) is accepted, as that is what
/// a dev box does anyway.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RefusedOption {
    /// The body field.
    pub field: &'static str,
    /// The original client's variable inside `env_vars`.
    pub env_var: &'static str,
    /// The original client's flag.
    pub flag: &'static str,
    /// Why it is refused, and what to do instead.
    pub reason: &'static str,
}

/// The original client's `--docker`, `--preserve-entrypoint` and `--recreate-env`, in the order
/// of [`JobSubmission`]'s fields for them.
pub const REFUSED_OPTIONS: [RefusedOption; 3] = [
    RefusedOption {
        field: "docker_enabled",
        env_var: "DOCKER_ENABLED",
        flag: "--docker",
        reason: "a Docker daemon inside a dev box needs a privileged container, which gpudev \
                 does not run (ADR 14); build the image elsewhere and give it as `image`",
    },
    RefusedOption {
        field: "preserve_entrypoint",
        env_var: "PRESERVE_ENTRYPOINT",
        flag: "--preserve-entrypoint",
        reason: "a dev box's entrypoint is gpudev's start-up (the dev user, SSH keys, sshd), \
                 which the image's own cannot replace; give the image's start command as \
                 `command`, which runs once the box is up",
    },
    RefusedOption {
        field: "recreate_env",
        env_var: "RECREATE_ENV",
        flag: "--recreate-env",
        reason: "gpudev copies the image's shell files (/etc/skel) into the home only where \
                 they are missing and never overwrites what is there; to start afresh, delete \
                 or replace them inside the box (for example cp /etc/skel/.bashrc ~/)",
    },
];

/// Longest `command`.
pub const MAX_COMMAND_LEN: usize = 16 * 1024;

/// A reservation request. Every field is optional; `gpu_type` (or `instance_type`, or `GPU_TYPE`
/// in `env_vars`) must name a type. `Debug` never shows environment values.
#[derive(Clone, Default, Deserialize, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct JobSubmission {
    /// Container image; the platform default when absent.
    #[cfg_attr(
        feature = "openapi",
        schema(example = "pytorch/pytorch:2.8.0-cuda12.9-cudnn9-devel")
    )]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    /// EC2 instance type; names the GPU type when `gpu_type` is absent (`p5.48xlarge` → `h100`).
    #[cfg_attr(feature = "openapi", schema(example = "p5.48xlarge"))]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub instance_type: Option<String>,
    /// Hours, fractions allowed (default 1; at least 5 minutes; at most the configured maximum).
    #[cfg_attr(
        feature = "openapi",
        schema(example = 1.5, minimum = 0.08333333333333333)
    )]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub duration_hours: Option<f64>,
    /// Persistent disk to mount as home.
    #[cfg_attr(feature = "openapi", schema(value_type = Option<crate::DiskName>))]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub disk_name: Option<String>,
    /// Size of the disk when it has to be created (10–10000 GB).
    #[cfg_attr(feature = "openapi", schema(minimum = 10, maximum = 10000))]
    #[serde(
        default,
        deserialize_with = "crate::json_int::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub disk_size_gb: Option<i64>,
    /// Environment for the dev box. Values are write-only: never logged, never returned.
    #[serde(
        default,
        deserialize_with = "env_values",
        skip_serializing_if = "BTreeMap::is_empty"
    )]
    #[cfg_attr(feature = "openapi", schema(value_type = BTreeMap<String, String>))]
    pub env_vars: BTreeMap<String, String>,
    /// Command to run in the dev box.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub command: Option<String>,
    /// GPU type (`h100`, `a100`, `t4`, …; any case).
    #[cfg_attr(feature = "openapi", schema(example = "h100"))]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gpu_type: Option<String>,
    /// GPUs (default 1; 0 for CPU-only types). More than one node's worth spans whole nodes.
    #[cfg_attr(feature = "openapi", schema(example = 1))]
    #[serde(
        default,
        deserialize_with = "crate::json_int::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub gpu_count: Option<u32>,
    /// Display name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// GitHub login whose public SSH keys are installed.
    #[cfg_attr(feature = "openapi", schema(value_type = Option<crate::GithubUser>))]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub github_user: Option<String>,
    /// Start Jupyter (default false).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub jupyter_enabled: Option<bool>,
    /// Queue priority (default 0). Anyone may lower their own priority (down to -100); only
    /// admins may raise it above 0 (up to 100).
    #[cfg_attr(feature = "openapi", schema(minimum = -100, maximum = 100))]
    #[serde(
        default,
        deserialize_with = "crate::json_int::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub priority: Option<i32>,
    /// Books the reservation to start at this time (RFC 3339, such as
    /// `2026-12-08T09:00:00+01:00`): it starts then, not before, if it can be promised now;
    /// otherwise the submit is refused with the earliest start that could be. At most
    /// `MAX_BOOKING_DAYS` ahead.
    #[cfg_attr(
        feature = "openapi",
        schema(value_type = Option<String>, format = DateTime, example = "2026-12-08T09:00:00Z")
    )]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub start_at: Option<String>,
    /// The original client's `--docker`: only `false` is accepted (see [`REFUSED_OPTIONS`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub docker_enabled: Option<bool>,
    /// The original client's `--preserve-entrypoint`: only `false` is accepted.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub preserve_entrypoint: Option<bool>,
    /// The original client's `--recreate-env`: only `false` is accepted.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub recreate_env: Option<bool>,
}

impl fmt::Debug for JobSubmission {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JobSubmission")
            .field("image", &self.image)
            .field("instance_type", &self.instance_type)
            .field("duration_hours", &self.duration_hours)
            .field("disk_name", &self.disk_name)
            .field("disk_size_gb", &self.disk_size_gb)
            .field("env_vars", &self.env_vars.keys().collect::<Vec<_>>())
            .field("command", &self.command.as_ref().map(|_| "…"))
            .field("gpu_type", &self.gpu_type)
            .field("gpu_count", &self.gpu_count)
            .field("name", &self.name)
            .field("github_user", &self.github_user)
            .field("jupyter_enabled", &self.jupyter_enabled)
            .field("priority", &self.priority)
            .field("start_at", &self.start_at)
            .field("docker_enabled", &self.docker_enabled)
            .field("preserve_entrypoint", &self.preserve_entrypoint)
            .field("recreate_env", &self.recreate_env)
            .finish()
    }
}

/// Reads `env_vars`: an object (or null) whose values are strings, numbers or booleans (the latter
/// two as their JSON text). Error messages never contain a value.
fn env_values<'de, D: Deserializer<'de>>(d: D) -> Result<BTreeMap<String, String>, D::Error> {
    struct EnvValue(String);

    impl<'de> Deserialize<'de> for EnvValue {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            struct V;
            impl Visitor<'_> for V {
                type Value = EnvValue;
                fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                    f.write_str("env_vars values must be strings")
                }
                fn visit_str<E: de::Error>(self, v: &str) -> Result<EnvValue, E> {
                    Ok(EnvValue(v.to_owned()))
                }
                fn visit_string<E: de::Error>(self, v: String) -> Result<EnvValue, E> {
                    Ok(EnvValue(v))
                }
                fn visit_bool<E: de::Error>(self, v: bool) -> Result<EnvValue, E> {
                    Ok(EnvValue(v.to_string()))
                }
                fn visit_i64<E: de::Error>(self, v: i64) -> Result<EnvValue, E> {
                    Ok(EnvValue(v.to_string()))
                }
                fn visit_u64<E: de::Error>(self, v: u64) -> Result<EnvValue, E> {
                    Ok(EnvValue(v.to_string()))
                }
                fn visit_f64<E: de::Error>(self, v: f64) -> Result<EnvValue, E> {
                    Ok(EnvValue(v.to_string()))
                }
            }
            d.deserialize_any(V)
        }
    }

    let map: Option<BTreeMap<String, EnvValue>> = Option::deserialize(d)?;
    Ok(map
        .unwrap_or_default()
        .into_iter()
        .map(|(k, v)| (k, v.0))
        .collect())
}

/// Why a submission cannot be resolved: the field at fault (as the body spells it, e.g.
/// `env_vars.GPU_COUNT`) and a sentence for the user. Never carries an environment value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{detail}")]
pub struct SubmissionError {
    /// The field at fault.
    pub field: String,
    /// What is wrong with it.
    pub detail: String,
}

fn invalid(field: impl Into<String>, detail: impl Into<String>) -> SubmissionError {
    SubmissionError {
        field: field.into(),
        detail: detail.into(),
    }
}

/// A submission with its compatibility variables applied: the request the domain checks, plus
/// the parts the domain does not model.
#[derive(Debug, Clone, PartialEq)]
pub struct Resolved {
    /// The request to check with `ReservationRequest::new`.
    pub raw: RawReservationRequest,
    /// The job id the client proposed (`RESERVATION_ID`).
    pub proposed_id: Option<Uuid>,
    /// Size for a new persistent disk.
    pub disk_size_gb: Option<i32>,
    /// Command to run.
    pub command: Option<String>,
}

/// A control variable's value, or `None` when absent or blank.
fn control(env: &BTreeMap<String, String>, name: &str) -> Option<String> {
    env.get(name)
        .map(|v| v.trim().to_owned())
        .filter(|v| !v.is_empty())
}

fn env_field(name: &str) -> String {
    format!("env_vars.{name}")
}

fn parse_flag(value: &str) -> Option<bool> {
    match value.to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" => Some(true),
        "false" | "0" | "no" | "off" => Some(false),
        _ => None,
    }
}

impl JobSubmission {
    /// `gpu_count` GPUs of `gpu_type` for `hours`; every other field takes the server's default.
    pub fn new(gpu_type: impl Into<String>, gpu_count: u32, hours: f64) -> Self {
        Self {
            gpu_type: Some(gpu_type.into()),
            gpu_count: Some(gpu_count),
            duration_hours: Some(hours),
            ..Self::default()
        }
    }

    /// Applies the compatibility rules and the defaults. Fails naming the field when a control
    /// variable or an API-only field is malformed; everything else is checked by
    /// [`ReservationRequest::new`](crate::ReservationRequest::new) afterwards.
    pub fn resolve(self, catalog: &GpuCatalog) -> Result<Resolved, SubmissionError> {
        let mut env = self.env_vars;
        let controls: BTreeMap<&str, String> = CONTROL_ENV_VARS
            .iter()
            .filter_map(|name| control(&env, name).map(|v| (*name, v)))
            .collect();
        env.retain(|k, _| !CONTROL_ENV_VARS.contains(&k.as_str()));

        let asked = [
            self.docker_enabled,
            self.preserve_entrypoint,
            self.recreate_env,
        ];
        for (option, field) in REFUSED_OPTIONS.iter().zip(asked) {
            let variable = controls
                .get(option.env_var)
                .map(|v| {
                    parse_flag(v).ok_or_else(|| {
                        invalid(
                            env_field(option.env_var),
                            format!("{} must be true or false", option.env_var),
                        )
                    })
                })
                .transpose()?;
            let refused = |field: String, how: String| {
                invalid(
                    field,
                    format!(
                        "{} ({how}) is not supported: {}",
                        option.flag, option.reason
                    ),
                )
            };
            if field == Some(true) {
                return Err(refused(
                    option.field.to_owned(),
                    format!("{}: true", option.field),
                ));
            }
            if variable == Some(true) {
                return Err(refused(
                    env_field(option.env_var),
                    format!("{}=true", option.env_var),
                ));
            }
        }

        let gpu_type = match self.gpu_type.or_else(|| controls.get("GPU_TYPE").cloned()) {
            Some(t) => t,
            None => match self.instance_type.as_deref().map(str::trim) {
                Some(it) if !it.is_empty() => match catalog.by_instance_type(it) {
                    Some(spec) => spec.name.as_str().to_owned(),
                    None => {
                        let known: Vec<String> = catalog
                            .iter()
                            .map(|s| format!("{} ({})", s.instance_type, s.name))
                            .collect();
                        return Err(invalid(
                            "instance_type",
                            format!(
                                "unknown instance type {it:?} (known instance types: {})",
                                known.join(", ")
                            ),
                        ));
                    }
                },
                _ => {
                    return Err(invalid(
                        "gpu_type",
                        format!(
                            "gpu_type is required, or an instance_type that names one (known GPU types: {})",
                            catalog.names().collect::<Vec<_>>().join(", ")
                        ),
                    ));
                }
            },
        };

        let gpu_count = match self.gpu_count {
            Some(n) => n,
            None => match controls.get("GPU_COUNT") {
                Some(v) => v.parse::<u32>().map_err(|_| {
                    invalid(
                        env_field("GPU_COUNT"),
                        "GPU_COUNT must be a whole number of GPUs",
                    )
                })?,
                None => match catalog.lookup(&gpu_type) {
                    Ok(spec) if spec.is_cpu_only() => 0,
                    _ => 1,
                },
            },
        };

        let jupyter = match self.jupyter_enabled {
            Some(b) => b,
            None => match controls.get("JUPYTER_ENABLED") {
                Some(v) => parse_flag(v).ok_or_else(|| {
                    invalid(
                        env_field("JUPYTER_ENABLED"),
                        "JUPYTER_ENABLED must be true or false",
                    )
                })?,
                None => false,
            },
        };

        let proposed_id = controls
            .get("RESERVATION_ID")
            .map(|v| {
                Uuid::parse_str(v).map_err(|_| {
                    invalid(
                        env_field("RESERVATION_ID"),
                        "RESERVATION_ID must be a UUID such as 0b9f6c1e-5d1a-4c3e-9a53-2f6d1f7c8a90",
                    )
                })
            })
            .transpose()?;

        let disk_size_gb = self
            .disk_size_gb
            .map(|s| {
                i32::try_from(s)
                    .ok()
                    .filter(|s| (10..=10_000).contains(s))
                    .ok_or_else(|| {
                        invalid("disk_size_gb", "disk_size_gb must be between 10 and 10000")
                    })
            })
            .transpose()?;

        if let Some(cmd) = &self.command {
            if cmd.len() > MAX_COMMAND_LEN {
                return Err(invalid(
                    "command",
                    format!("command must be at most {MAX_COMMAND_LEN} bytes"),
                ));
            }
            if cmd.contains('\0') {
                return Err(invalid(
                    "command",
                    "command must not contain a NUL character",
                ));
            }
        }

        Ok(Resolved {
            raw: RawReservationRequest {
                gpu_type,
                gpu_count,
                duration_hours: self.duration_hours.unwrap_or(1.0),
                image: self.image,
                env,
                disk_name: self.disk_name,
                name: self.name.or_else(|| controls.get("POD_NAME").cloned()),
                jupyter,
                // The original client sends an empty GITHUB_USER when none is configured: that
                // names no one, as if absent.
                github_user: self
                    .github_user
                    .filter(|g| !g.trim().is_empty())
                    .or_else(|| controls.get("GITHUB_USER").cloned())
                    .filter(|g| !g.trim().is_empty()),
                priority: self.priority.unwrap_or(0),
            },
            proposed_id,
            disk_size_gb,
            command: self.command,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    fn resolve(body: Value) -> Result<Resolved, SubmissionError> {
        serde_json::from_value::<JobSubmission>(body)
            .unwrap()
            .resolve(&GpuCatalog::default())
    }

    fn field_of(body: Value) -> String {
        resolve(body).unwrap_err().field
    }

    #[test]
    fn first_class_fields_are_taken_as_given() {
        let r = resolve(json!({
            "gpu_type": "H100", "gpu_count": 4, "duration_hours": 2.5, "name": "run",
            "github_user": "octocat", "jupyter_enabled": true, "priority": -3,
            "disk_name": "home", "disk_size_gb": 200, "command": "python train.py",
            "env_vars": {"WANDB_API_KEY": "secret"}
        }))
        .unwrap();
        assert_eq!(r.raw.gpu_type, "H100");
        assert_eq!(r.raw.gpu_count, 4);
        assert_eq!(r.raw.duration_hours, 2.5);
        assert_eq!(r.raw.name.as_deref(), Some("run"));
        assert_eq!(r.raw.github_user.as_deref(), Some("octocat"));
        assert!(r.raw.jupyter);
        assert_eq!(r.raw.priority, -3);
        assert_eq!(r.disk_size_gb, Some(200));
        assert_eq!(r.command.as_deref(), Some("python train.py"));
        assert_eq!(r.raw.env.len(), 1);
        assert_eq!(r.proposed_id, None);
    }

    #[test]
    fn control_variables_fill_absent_fields_and_never_reach_the_pod() {
        let id = Uuid::new_v4();
        let r = resolve(json!({
            "instance_type": "p5.48xlarge",
            "duration_hours": 4,
            "env_vars": {
                "GPU_TYPE": "A100", "GPU_COUNT": "2", "GITHUB_USER": "octocat",
                "JUPYTER_ENABLED": "True", "RESERVATION_ID": id.to_string(),
                "POD_NAME": "gpu-dev-1234", "USER_ID": "alice", "RECREATE_ENV": "false",
                "PRESERVE_ENTRYPOINT": "false", "DOCKER_ENABLED": "false",
                "HF_TOKEN": "hf_x"
            }
        }))
        .unwrap();
        assert_eq!(r.raw.gpu_type, "A100", "GPU_TYPE wins over instance_type");
        assert_eq!(r.raw.gpu_count, 2);
        assert_eq!(r.raw.github_user.as_deref(), Some("octocat"));
        assert!(r.raw.jupyter);
        assert_eq!(r.raw.name.as_deref(), Some("gpu-dev-1234"));
        assert_eq!(r.proposed_id, Some(id));
        assert_eq!(r.raw.env.keys().collect::<Vec<_>>(), ["HF_TOKEN"]);
    }

    #[test]
    fn an_empty_github_user_names_no_one_and_a_blank_field_falls_back_to_the_variable() {
        let empty = resolve(json!({"gpu_type": "t4", "env_vars": {"GITHUB_USER": ""}})).unwrap();
        let blank = resolve(json!({
            "gpu_type": "t4", "github_user": " ", "env_vars": {"GITHUB_USER": "octocat"}
        }))
        .unwrap();
        assert_eq!(empty.raw.github_user, None);
        assert_eq!(blank.raw.github_user.as_deref(), Some("octocat"));
    }

    #[test]
    fn options_gpudev_does_not_offer_are_refused_naming_the_option_and_why() {
        for option in REFUSED_OPTIONS {
            let by_variable = resolve(json!({
                "gpu_type": "t4", "env_vars": {option.env_var: "True"}
            }))
            .unwrap_err();
            assert_eq!(by_variable.field, format!("env_vars.{}", option.env_var));
            assert!(
                by_variable.detail.starts_with(&format!(
                    "{} ({}=true) is not supported: ",
                    option.flag, option.env_var
                )),
                "{}",
                by_variable.detail
            );
            let by_field = resolve(json!({"gpu_type": "t4", option.field: true})).unwrap_err();
            assert_eq!(by_field.field, option.field);
            assert!(
                by_field.detail.contains(option.reason),
                "{}",
                by_field.detail
            );
            let unreadable =
                resolve(json!({"gpu_type": "t4", "env_vars": {option.env_var: "maybe"}}))
                    .unwrap_err();
            assert_eq!(
                unreadable.detail,
                format!("{} must be true or false", option.env_var)
            );
            // Off is what a dev box does anyway.
            let off = resolve(json!({
                "gpu_type": "t4", option.field: false, "env_vars": {option.env_var: "false"}
            }))
            .unwrap();
            assert!(off.raw.env.is_empty());
        }
    }

    #[test]
    fn first_class_fields_win_over_control_variables_which_are_still_removed() {
        let r = resolve(json!({
            "gpu_type": "t4", "gpu_count": 1, "jupyter_enabled": false, "github_user": "hubot",
            "env_vars": {"GPU_TYPE": "h100", "GPU_COUNT": "8", "JUPYTER_ENABLED": "true",
                         "GITHUB_USER": "octocat"}
        }))
        .unwrap();
        assert_eq!(
            (r.raw.gpu_type.as_str(), r.raw.gpu_count, r.raw.jupyter),
            ("t4", 1, false)
        );
        assert_eq!(r.raw.github_user.as_deref(), Some("hubot"));
        assert!(r.raw.env.is_empty());
    }

    #[test]
    fn instance_type_alone_picks_the_gpu_type_and_defaults_apply() {
        let r = resolve(json!({"instance_type": "g4dn.12xlarge"})).unwrap();
        assert_eq!(r.raw.gpu_type, "t4");
        assert_eq!(r.raw.gpu_count, 1);
        assert_eq!(r.raw.duration_hours, 1.0);
        assert!(!r.raw.jupyter);
        let cpu = resolve(json!({"instance_type": "c7i.8xlarge"})).unwrap();
        assert_eq!(
            (cpu.raw.gpu_type.as_str(), cpu.raw.gpu_count),
            ("cpu-x86", 0)
        );
    }

    #[test]
    fn malformed_inputs_name_their_field() {
        assert_eq!(field_of(json!({})), "gpu_type");
        assert_eq!(
            field_of(json!({"instance_type": "m5.large"})),
            "instance_type"
        );
        assert_eq!(
            field_of(json!({"gpu_type": "t4", "env_vars": {"GPU_COUNT": "two"}})),
            "env_vars.GPU_COUNT"
        );
        assert_eq!(
            field_of(json!({"gpu_type": "t4", "env_vars": {"JUPYTER_ENABLED": "maybe"}})),
            "env_vars.JUPYTER_ENABLED"
        );
        assert_eq!(
            field_of(json!({"gpu_type": "t4", "env_vars": {"RESERVATION_ID": "not-a-uuid"}})),
            "env_vars.RESERVATION_ID"
        );
        for size in [9, 10_001, -1] {
            assert_eq!(
                field_of(json!({"gpu_type": "t4", "disk_size_gb": size})),
                "disk_size_gb"
            );
        }
        assert_eq!(
            field_of(json!({"gpu_type": "t4", "command": "a\u{0}b"})),
            "command"
        );
    }

    #[test]
    fn env_values_may_be_scalars_and_errors_never_show_values() {
        let s: JobSubmission =
            serde_json::from_value(json!({"env_vars": {"A": 1, "B": true, "C": "x", "D": 1.5}}))
                .unwrap();
        assert_eq!(s.env_vars["A"], "1");
        assert_eq!(s.env_vars["B"], "true");
        assert_eq!(s.env_vars["D"], "1.5");
        let null: JobSubmission = serde_json::from_value(json!({"env_vars": null})).unwrap();
        assert!(null.env_vars.is_empty());
        let err = serde_json::from_value::<JobSubmission>(
            json!({"env_vars": {"TOKEN": {"nested": "supersecret"}}}),
        )
        .unwrap_err();
        assert!(!err.to_string().contains("supersecret"), "{err}");
        let shown = format!(
            "{:?}",
            serde_json::from_value::<JobSubmission>(json!({"env_vars": {"T": "supersecret"}}))
                .unwrap()
        );
        assert!(
            shown.contains('T') && !shown.contains("supersecret"),
            "{shown}"
        );
    }
}
