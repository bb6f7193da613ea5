//! The Secret of a dev box Pod: its `authorized_keys`, the user's environment values, the
//! user's start command, the Jupyter token and the agent's token. These values appear nowhere else: the Pod refers
//! to them by key.

use std::collections::BTreeMap;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use crate::plan::PodPlan;

/// Key of the `authorized_keys` file.
pub const AUTHORIZED_KEYS_KEY: &str = "authorized_keys";
/// Key of the Jupyter token (present only when Jupyter is enabled).
pub const JUPYTER_TOKEN_KEY: &str = "jupyter-token";
/// Key of the file that switches Jupyter on a running dev box: the token while Jupyter is
/// enabled, empty otherwise. Always present, so it can be mounted whatever the setting.
pub const JUPYTER_KEY: &str = "jupyter";
/// Key of the agent's token (present only when the platform runs the agent, ADR 18). Written
/// when the Secret is created and never rewritten: only its hash is stored.
pub const AGENT_TOKEN_KEY: &str = "agent-token";
/// Key of the user's start command (present only when the reservation has one), mounted as a
/// file for the entrypoint to run.
pub const COMMAND_KEY: &str = "command";
/// Prefix of the keys holding environment values: `env.<NAME>`. Variable names cannot contain
/// `.` or `-`, so these never clash with the other keys.
pub const ENV_KEY_PREFIX: &str = "env.";

/// The Secret key holding the value of environment variable `name`.
pub fn env_key(name: &str) -> String {
    format!("{ENV_KEY_PREFIX}{name}")
}

/// The Pod's Secret, named [`PodPlan::secret_name`], with the Pod's labels.
///
/// It is not marked immutable: adding a user to a reservation rewrites `authorized_keys`, and
/// the dev box picks the new keys up from the mounted Secret within a minute.
pub fn secret(plan: &PodPlan) -> Secret {
    let spec = plan.spec();
    let mut data = BTreeMap::from([(
        AUTHORIZED_KEYS_KEY.to_owned(),
        ByteString(spec.authorized_keys.clone().into_bytes()),
    )]);
    if let Some(token) = &spec.jupyter {
        data.insert(
            JUPYTER_TOKEN_KEY.to_owned(),
            ByteString(token.expose().as_bytes().to_vec()),
        );
    }
    data.insert(
        JUPYTER_KEY.to_owned(),
        ByteString(
            spec.jupyter
                .as_ref()
                .map(|t| t.expose().as_bytes().to_vec())
                .unwrap_or_default(),
        ),
    );
    if let Some(agent) = &spec.agent {
        data.insert(
            AGENT_TOKEN_KEY.to_owned(),
            ByteString(agent.token.expose().as_bytes().to_vec()),
        );
    }
    if let Some(command) = &spec.command {
        data.insert(
            COMMAND_KEY.to_owned(),
            ByteString(command.as_bytes().to_vec()),
        );
    }
    for (name, value) in spec.env.iter() {
        data.insert(env_key(name), ByteString(value.as_bytes().to_vec()));
    }
    Secret {
        metadata: ObjectMeta {
            name: Some(plan.secret_name()),
            namespace: Some(plan.namespace().to_owned()),
            labels: Some(plan.pod_labels()),
            annotations: Some(plan.annotations()),
            ..Default::default()
        },
        type_: Some("Opaque".to_owned()),
        data: Some(data),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::JupyterToken;
    use crate::plan::tests::spec;

    #[test]
    fn the_secret_holds_keys_env_values_and_the_token() {
        let mut s = spec("t4", 1, 1);
        s.jupyter = Some(JupyterToken::parse("tok-0123456789abcdefXYZ").unwrap());
        let plan = PodPlan::new(&s, 0).unwrap();
        let secret = secret(&plan);
        assert_eq!(
            secret.metadata.name.as_deref(),
            Some("gpudev-3f2a9c1e7b4d-env")
        );
        assert_eq!(secret.metadata.namespace.as_deref(), Some("gpu-dev"));
        assert_eq!(secret.type_.as_deref(), Some("Opaque"));
        let data = secret.data.unwrap();
        let text = |key: &str| String::from_utf8(data[key].0.clone()).unwrap();
        assert_eq!(
            data.keys().collect::<Vec<_>>(),
            [
                "authorized_keys",
                "env.HF_TOKEN",
                "env.WANDB_API_KEY",
                "jupyter",
                "jupyter-token"
            ]
        );
        assert!(text("authorized_keys").starts_with("ssh-ed25519 "));
        assert_eq!(text("env.HF_TOKEN"), "hf_s3cr3t-value-1");
        assert_eq!(text("jupyter-token"), "tok-0123456789abcdefXYZ");
        assert_eq!(
            text("jupyter"),
            "tok-0123456789abcdefXYZ",
            "the switch is on"
        );
        let labels = secret.metadata.labels.unwrap();
        assert_eq!(labels["app.kubernetes.io/managed-by"], "gpudev");
        assert_eq!(labels["gpudev.io/user"], "alice");
    }

    #[test]
    fn without_jupyter_there_is_no_token_key_and_the_switch_is_off() {
        let plan = PodPlan::new(&spec("t4", 1, 1), 0).unwrap();
        let data = secret(&plan).data.unwrap();
        assert!(!data.contains_key(JUPYTER_TOKEN_KEY));
        assert_eq!(data[JUPYTER_KEY].0, b"", "present and empty");
    }

    #[test]
    fn the_command_is_in_the_secret_only_when_there_is_one() {
        let plan = PodPlan::new(&spec("t4", 1, 1), 0).unwrap();
        assert!(!secret(&plan).data.unwrap().contains_key(COMMAND_KEY));
        let mut s = spec("t4", 1, 1);
        s.command = Some("python train.py --token tk_s3cret".into());
        let data = secret(&PodPlan::new(&s, 0).unwrap()).data.unwrap();
        assert_eq!(data[COMMAND_KEY].0, b"python train.py --token tk_s3cret");
    }
}
