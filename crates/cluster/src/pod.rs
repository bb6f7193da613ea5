//! The dev box Pod.
//!
//! # What runs in it
//!
//! One container, `dev`, from the reservation's image. Its command is [`ENTRYPOINT`], a POSIX
//! shell script that installs sshd (and sudo) if the image lacks them, creates the user `dev`
//! (uid [`DEV_UID`]), gives it `/home/dev`, installs the public keys from the Secret, writes the
//! container's environment where login shells read it, optionally starts Jupyter as `dev`,
//! starts the reservation's command (if any, from the Secret) as `dev` in the background, and
//! finally `exec`s sshd on port 22 in the foreground.
//!
//! # Why the container runs as root, and why that is acceptable
//!
//! sshd has to start as root: it reads host keys only root may read, and after a login it
//! switches to the logged-in user with `setuid`. Creating the `dev` user and handing it a home
//! on a freshly formatted disk also needs root. The alternative (sshd running as `dev` on a
//! high port) would demand images prepared in advance with sshd and a matching user, which the
//! "bring any CUDA image" promise rules out.
//!
//! What a person can do with the box is bounded by how sshd is configured and by what the Pod
//! is denied, not by the uid of process 1:
//! - sshd allows only `dev` (`AllowUsers dev`, `PermitRootLogin no`), only by public key
//!   (passwords and keyboard-interactive off); the keys live in a root-owned file outside the
//!   home, refreshed from the Secret.
//! - `dev` has passwordless sudo when the image has sudo. That is deliberate: the user owns the
//!   box and needs to install packages. Root inside the container is no more than the container
//!   itself is allowed, which is why the limits below are on the Pod:
//! - not privileged, no host network, PID, IPC or paths; the default seccomp profile; the
//!   `NET_RAW` capability dropped (no raw sockets for spoofing on the node network);
//! - no service account token (`automountServiceAccountToken: false`), so nothing in the box can
//!   talk to the Kubernetes API as anyone; no service links (`enableServiceLinks: false`), so
//!   other services' addresses do not leak into the environment;
//! - the user's secrets arrive through the Secret (by key reference), never in the Pod spec that
//!   anyone allowed to read Pods in the namespace could see.
//!
//! The namespace therefore needs the Pod Security Standard `baseline`, not `restricted`.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    Capabilities, Container, ContainerPort, EmptyDirVolumeSource, EnvVar, EnvVarSource, KeyToPath,
    PersistentVolumeClaimVolumeSource, Pod, PodSecurityContext, PodSpec, Probe,
    ResourceRequirements, SeccompProfile, SecretKeySelector, SecretVolumeSource, SecurityContext,
    TCPSocketAction, Toleration, Volume, VolumeMount,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use crate::labels;
use crate::plan::{Home, PodPlan};
use crate::resources::GPU_RESOURCE;
use crate::secret::{
    AGENT_TOKEN_KEY, AUTHORIZED_KEYS_KEY, COMMAND_KEY, JUPYTER_KEY, JUPYTER_TOKEN_KEY, env_key,
};

/// The script the container runs (see the module docs).
pub const ENTRYPOINT: &str = include_str!("entrypoint.sh");
/// The uid (and gid) of `dev`, fixed so a persistent disk stays owned by `dev` across images.
pub const DEV_UID: u32 = 1081;
/// The name of the container.
pub const CONTAINER_NAME: &str = "dev";
/// sshd's port.
pub const SSH_PORT: i32 = 22;
/// Jupyter's port.
pub const JUPYTER_PORT: i32 = 8888;
/// The port multi-node jobs rendezvous on (torch's default `MASTER_PORT`).
pub const RENDEZVOUS_PORT: i32 = 29500;
/// Where the home directory is mounted.
pub const HOME_PATH: &str = "/home/dev";
/// Where the Secret's `authorized_keys` is mounted.
pub const SECRET_PATH: &str = "/etc/gpudev/secret";
/// Where runtime files (keys, sshd config, the login environment) live, in memory.
pub const RUN_PATH: &str = "/run/gpudev";
/// Size of the memory-backed runtime directory.
pub const RUN_SIZE: &str = "16Mi";
/// Seconds a stopping dev box gets to flush files to its disk.
pub const TERMINATION_GRACE_SECONDS: i64 = 30;

/// Where the agent's binary is put (an emptyDir shared with its init container).
pub const AGENT_PATH: &str = "/opt/gpudev/bin";
/// The init container that copies the agent into the Pod.
pub const AGENT_INIT_NAME: &str = "gpudev-agent";
const VOLUME_AGENT: &str = "agent";
const VOLUME_SECRET: &str = "secret";
const VOLUME_RUN: &str = "run";
const VOLUME_SHM: &str = "shm";
const VOLUME_HOME: &str = "home";

/// The dev box Pod of `plan`. It has no owner; the objects created after it are owned by it
/// ([`crate::owner`]).
pub fn pod(plan: &PodPlan) -> Pod {
    let spec = plan.spec();
    let mut annotations = plan.annotations();
    if let Home::Disk { disk_name, .. } = plan.home() {
        annotations.insert(
            labels::DISK_NAME_ANNOTATION.to_owned(),
            disk_name.to_string(),
        );
    }
    Pod {
        metadata: ObjectMeta {
            name: Some(plan.pod_name().to_owned()),
            namespace: Some(plan.namespace().to_owned()),
            labels: Some(plan.pod_labels()),
            annotations: Some(annotations),
            ..Default::default()
        },
        spec: Some(PodSpec {
            init_containers: spec.agent.as_ref().map(|a| vec![agent_installer(a)]),
            containers: vec![container(plan)],
            volumes: Some(volumes(plan)),
            node_selector: Some(BTreeMap::from([(
                spec.gpu_type_label.clone(),
                spec.gpu.name.to_string(),
            )])),
            tolerations: (!spec.gpu.is_cpu_only()).then(|| {
                vec![Toleration {
                    key: Some(GPU_RESOURCE.to_owned()),
                    operator: Some("Exists".to_owned()),
                    effect: Some("NoSchedule".to_owned()),
                    ..Default::default()
                }]
            }),
            // Multi-node Pods resolve each other as <pod>.<headless service>.
            subdomain: plan.is_multinode().then(|| plan.headless_service_name()),
            restart_policy: Some("Always".to_owned()),
            termination_grace_period_seconds: Some(TERMINATION_GRACE_SECONDS),
            automount_service_account_token: Some(false),
            enable_service_links: Some(false),
            security_context: Some(PodSecurityContext {
                seccomp_profile: Some(SeccompProfile {
                    type_: "RuntimeDefault".to_owned(),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn container(plan: &PodPlan) -> Container {
    let mut ports = vec![ContainerPort {
        name: Some("ssh".to_owned()),
        container_port: SSH_PORT,
        protocol: Some("TCP".to_owned()),
        ..Default::default()
    }];
    if plan.spec().jupyter.is_some() {
        ports.push(ContainerPort {
            name: Some("jupyter".to_owned()),
            container_port: JUPYTER_PORT,
            protocol: Some("TCP".to_owned()),
            ..Default::default()
        });
    }
    if plan.is_multinode() {
        ports.push(ContainerPort {
            name: Some("rendezvous".to_owned()),
            container_port: RENDEZVOUS_PORT,
            protocol: Some("TCP".to_owned()),
            ..Default::default()
        });
    }
    Container {
        name: CONTAINER_NAME.to_owned(),
        image: Some(plan.spec().image.to_string()),
        image_pull_policy: Some("IfNotPresent".to_owned()),
        command: Some(vec![
            "/bin/sh".to_owned(),
            "-c".to_owned(),
            ENTRYPOINT.to_owned(),
        ]),
        ports: Some(ports),
        env: Some(env(plan)),
        resources: Some(plan.share().requirements()),
        volume_mounts: Some(volume_mounts(plan)),
        readiness_probe: Some(Probe {
            tcp_socket: Some(TCPSocketAction {
                port: IntOrString::Int(SSH_PORT),
                ..Default::default()
            }),
            initial_delay_seconds: Some(2),
            period_seconds: Some(5),
            timeout_seconds: Some(2),
            failure_threshold: Some(3),
            ..Default::default()
        }),
        security_context: Some(SecurityContext {
            run_as_user: Some(0),
            run_as_non_root: Some(false),
            privileged: Some(false),
            // `dev` reaches root through sudo, a setuid program: no_new_privs would break it.
            allow_privilege_escalation: Some(true),
            capabilities: Some(Capabilities {
                drop: Some(vec!["NET_RAW".to_owned()]),
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// The init container that copies `gpudev-agent` from gpudev's image into the Pod: no root, no
/// privileges, nothing writable but its target.
fn agent_installer(agent: &crate::plan::AgentSpec) -> Container {
    Container {
        name: AGENT_INIT_NAME.to_owned(),
        image: Some(agent.image.clone()),
        image_pull_policy: Some("IfNotPresent".to_owned()),
        command: Some(vec![
            "/usr/local/bin/gpudev-agent".to_owned(),
            "install".to_owned(),
            format!("{AGENT_PATH}/gpudev-agent"),
        ]),
        volume_mounts: Some(vec![VolumeMount {
            name: VOLUME_AGENT.to_owned(),
            mount_path: AGENT_PATH.to_owned(),
            ..Default::default()
        }]),
        resources: Some(ResourceRequirements {
            requests: Some(BTreeMap::from([
                ("cpu".to_owned(), Quantity("10m".to_owned())),
                ("memory".to_owned(), Quantity("16Mi".to_owned())),
            ])),
            limits: Some(BTreeMap::from([(
                "memory".to_owned(),
                Quantity("64Mi".to_owned()),
            )])),
            ..Default::default()
        }),
        security_context: Some(SecurityContext {
            run_as_user: Some(65532),
            run_as_group: Some(65532),
            run_as_non_root: Some(true),
            privileged: Some(false),
            allow_privilege_escalation: Some(false),
            read_only_root_filesystem: Some(true),
            capabilities: Some(Capabilities {
                drop: Some(vec!["ALL".to_owned()]),
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn plain(name: &str, value: impl Into<String>) -> EnvVar {
    EnvVar {
        name: name.to_owned(),
        value: Some(value.into()),
        ..Default::default()
    }
}

fn from_secret(name: &str, secret: &str, key: String) -> EnvVar {
    EnvVar {
        name: name.to_owned(),
        value_from: Some(EnvVarSource {
            secret_key_ref: Some(SecretKeySelector {
                name: secret.to_owned(),
                key,
                optional: Some(false),
            }),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// The container's environment: facts about the reservation as plain values, the user's
/// variables and the Jupyter token by reference to the Secret.
fn env(plan: &PodPlan) -> Vec<EnvVar> {
    let spec = plan.spec();
    let share = plan.share();
    let secret = plan.secret_name();
    let mut env = vec![
        plain(
            "GPUDEV_RESERVATION_ID",
            spec.reservation_id.hyphenated().to_string(),
        ),
        plain("GPUDEV_USER", spec.username.to_string()),
        plain("GPUDEV_GPU_TYPE", spec.gpu.name.to_string()),
        plain("GPUDEV_GPUS", share.gpus.to_string()),
        plain("GPUDEV_CPUS", share.whole_cpus().to_string()),
        plain("GPUDEV_NODE_RANK", plan.node_index().to_string()),
        plain("GPUDEV_NNODES", plan.total_nodes().to_string()),
        plain("GPUDEV_MASTER_ADDR", plan.rendezvous_host()),
        plain("GPUDEV_MASTER_PORT", RENDEZVOUS_PORT.to_string()),
        plain(
            "GPUDEV_JUPYTER",
            if spec.jupyter.is_some() { "1" } else { "0" },
        ),
    ];
    if let Some(agent) = &spec.agent {
        env.push(plain("GPUDEV_AGENT_URL", agent.api_url.clone()));
    }
    if spec.jupyter.is_some() {
        env.push(from_secret(
            "GPUDEV_JUPYTER_TOKEN",
            &secret,
            JUPYTER_TOKEN_KEY.to_owned(),
        ));
    }
    env.extend(
        spec.env
            .names()
            .map(|name| from_secret(name, &secret, env_key(name))),
    );
    env
}

fn memory_dir(name: &str, size: Quantity) -> Volume {
    Volume {
        name: name.to_owned(),
        empty_dir: Some(EmptyDirVolumeSource {
            medium: Some("Memory".to_owned()),
            size_limit: Some(size),
        }),
        ..Default::default()
    }
}

fn volumes(plan: &PodPlan) -> Vec<Volume> {
    let home = match plan.home() {
        Home::Disk { claim_name, .. } => Volume {
            name: VOLUME_HOME.to_owned(),
            persistent_volume_claim: Some(PersistentVolumeClaimVolumeSource {
                claim_name: claim_name.clone(),
                read_only: Some(false),
            }),
            ..Default::default()
        },
        Home::Ephemeral => Volume {
            name: VOLUME_HOME.to_owned(),
            empty_dir: Some(EmptyDirVolumeSource::default()),
            ..Default::default()
        },
    };
    let mut volumes = vec![
        Volume {
            name: VOLUME_SECRET.to_owned(),
            secret: Some(SecretVolumeSource {
                secret_name: Some(plan.secret_name()),
                // Only the keys file and the command: env values reach the container by key
                // reference.
                items: Some(secret_files(plan)),
                default_mode: Some(0o400),
                optional: Some(false),
            }),
            ..Default::default()
        },
        memory_dir(VOLUME_RUN, Quantity(RUN_SIZE.to_owned())),
        memory_dir(
            VOLUME_SHM,
            Quantity(format!("{}Mi", plan.share().shm_mib())),
        ),
        home,
    ];
    if plan.spec().agent.is_some() {
        volumes.push(Volume {
            name: VOLUME_AGENT.to_owned(),
            empty_dir: Some(EmptyDirVolumeSource {
                size_limit: Some(Quantity("64Mi".to_owned())),
                ..Default::default()
            }),
            ..Default::default()
        });
    }
    volumes
}

/// The Secret's keys mounted as files under [`SECRET_PATH`]: `authorized_keys`, the Jupyter
/// switch, and the start command when there is one (the entrypoint runs it; it never appears in
/// the Pod spec).
fn secret_files(plan: &PodPlan) -> Vec<KeyToPath> {
    let file = |key: &str| KeyToPath {
        key: key.to_owned(),
        path: key.to_owned(),
        ..Default::default()
    };
    let mut files = vec![file(AUTHORIZED_KEYS_KEY), file(JUPYTER_KEY)];
    if plan.spec().command.is_some() {
        files.push(file(COMMAND_KEY));
    }
    if plan.spec().agent.is_some() {
        files.push(file(AGENT_TOKEN_KEY));
    }
    files
}

fn volume_mounts(plan: &PodPlan) -> Vec<VolumeMount> {
    let mount = |name: &str, path: &str, read_only: bool| VolumeMount {
        name: name.to_owned(),
        mount_path: path.to_owned(),
        read_only: read_only.then_some(true),
        ..Default::default()
    };
    let mut mounts = vec![
        mount(VOLUME_SECRET, SECRET_PATH, true),
        mount(VOLUME_RUN, RUN_PATH, false),
        mount(VOLUME_SHM, "/dev/shm", false),
        mount(VOLUME_HOME, HOME_PATH, false),
    ];
    if plan.spec().agent.is_some() {
        mounts.push(mount(VOLUME_AGENT, AGENT_PATH, true));
    }
    mounts
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::JupyterToken;
    use crate::plan::tests::spec;
    use gpudev_domain::DiskName;

    fn build(gpu: &str, count: u32, nodes: u32, index: u32) -> Pod {
        pod(&PodPlan::new(&spec(gpu, count, nodes), index).unwrap())
    }

    fn container_of(pod: &Pod) -> &Container {
        &pod.spec.as_ref().unwrap().containers[0]
    }

    fn env_of(pod: &Pod) -> BTreeMap<String, EnvVar> {
        container_of(pod)
            .env
            .clone()
            .unwrap()
            .into_iter()
            .map(|e| (e.name.clone(), e))
            .collect()
    }

    #[test]
    fn gpu_requests_equal_limits_equal_the_gpus_on_the_node() {
        for (gpu, count, nodes, want) in
            [("t4", 1, 1, "1"), ("h100", 8, 1, "8"), ("h100", 16, 2, "8")]
        {
            let pod = build(gpu, count, nodes, 0);
            let resources = container_of(&pod).resources.clone().unwrap();
            assert_eq!(resources.requests, resources.limits);
            assert_eq!(
                resources.limits.unwrap()["nvidia.com/gpu"],
                Quantity(want.into())
            );
        }
    }

    #[test]
    fn cpu_and_memory_are_the_node_share() {
        let pod = build("h100", 4, 1, 0);
        let limits = container_of(&pod)
            .resources
            .clone()
            .unwrap()
            .limits
            .unwrap();
        // p5.48xlarge: 192 vCPUs, 2048 GiB; 4 of 8 GPUs, 90%.
        assert_eq!(limits["cpu"], Quantity("86400m".into()));
        assert_eq!(limits["memory"], Quantity("943718Mi".into()));
    }

    #[test]
    fn cpu_types_have_no_gpu_and_no_gpu_toleration() {
        let pod = build("cpu-arm", 0, 1, 0);
        let spec = pod.spec.as_ref().unwrap();
        assert!(spec.tolerations.is_none());
        let limits = container_of(&pod)
            .resources
            .clone()
            .unwrap()
            .limits
            .unwrap();
        assert!(!limits.contains_key("nvidia.com/gpu"));
        assert_eq!(limits["cpu"], Quantity("7200m".into()));
        assert_eq!(
            spec.node_selector.as_ref().unwrap()["gpudev.io/gpu-type"],
            "cpu-arm"
        );
    }

    #[test]
    fn gpu_pods_select_their_type_and_tolerate_the_gpu_taint() {
        let pod = build("a100", 2, 1, 0);
        let spec = pod.spec.as_ref().unwrap();
        assert_eq!(
            spec.node_selector,
            Some(BTreeMap::from([(
                "gpudev.io/gpu-type".into(),
                "a100".into()
            )]))
        );
        let toleration = &spec.tolerations.as_ref().unwrap()[0];
        assert_eq!(toleration.key.as_deref(), Some("nvidia.com/gpu"));
        assert_eq!(toleration.operator.as_deref(), Some("Exists"));
        assert_eq!(toleration.effect.as_deref(), Some("NoSchedule"));
    }

    #[test]
    fn the_configured_gpu_type_label_is_used() {
        let mut s = spec("t4", 1, 1);
        s.gpu_type_label = "GpuType".into();
        let pod = pod(&PodPlan::new(&s, 0).unwrap());
        let selector = pod.spec.unwrap().node_selector.unwrap();
        assert_eq!(selector, BTreeMap::from([("GpuType".into(), "t4".into())]));
    }

    #[test]
    fn the_pod_is_labelled_and_locked_down() {
        let pod = build("t4", 1, 1, 0);
        let labels = pod.metadata.labels.clone().unwrap();
        assert_eq!(labels["app.kubernetes.io/managed-by"], "gpudev");
        assert_eq!(labels["app.kubernetes.io/name"], "gpudev-devbox");
        assert_eq!(
            labels["gpudev.io/reservation-id"],
            "3f2a9c1e-7b4d-4e8f-9a0b-1c2d3e4f5a6b"
        );
        assert_eq!(labels["gpudev.io/user"], "alice");
        assert_eq!(pod.metadata.name.as_deref(), Some("gpudev-3f2a9c1e7b4d"));
        let spec = pod.spec.as_ref().unwrap();
        assert_eq!(spec.automount_service_account_token, Some(false));
        assert_eq!(spec.enable_service_links, Some(false));
        assert_eq!(spec.host_network, None);
        let security = container_of(&pod).security_context.clone().unwrap();
        assert_eq!(security.privileged, Some(false));
        assert_eq!(
            security.capabilities.unwrap().drop,
            Some(vec!["NET_RAW".to_owned()])
        );
        let probe = container_of(&pod).readiness_probe.clone().unwrap();
        assert_eq!(probe.tcp_socket.unwrap().port, IntOrString::Int(22));
    }

    #[test]
    fn env_values_never_appear_in_the_pod() {
        let mut s = spec("t4", 1, 1);
        s.jupyter = Some(JupyterToken::parse("tok-0123456789abcdefXYZ").unwrap());
        let plan = PodPlan::new(&s, 0).unwrap();
        let json = serde_json::to_string(&pod(&plan)).unwrap();
        for (_, value) in s.env.iter() {
            assert!(!json.contains(value), "{value} leaked into the Pod");
        }
        assert!(!json.contains("tok-0123456789abcdefXYZ"));
        assert!(!json.contains("AAAAC3NzaC1lZDI1NTE5AAAAIKey"));
        // The names are there, each read from the Secret by key.
        let env = env_of(&pod(&plan));
        let hf = env["HF_TOKEN"].value_from.clone().unwrap();
        let key = hf.secret_key_ref.unwrap();
        assert_eq!(key.name, "gpudev-3f2a9c1e7b4d-env");
        assert_eq!(key.key, "env.HF_TOKEN");
        assert!(env["HF_TOKEN"].value.is_none());
        let token = env["GPUDEV_JUPYTER_TOKEN"].value_from.clone().unwrap();
        assert_eq!(token.secret_key_ref.unwrap().key, "jupyter-token");
    }

    #[test]
    fn home_is_the_disk_claim_or_an_empty_dir() {
        let volume = |pod: &Pod| {
            pod.spec
                .as_ref()
                .unwrap()
                .volumes
                .as_ref()
                .unwrap()
                .iter()
                .find(|v| v.name == "home")
                .cloned()
                .unwrap()
        };
        let ephemeral = build("t4", 1, 1, 0);
        assert!(volume(&ephemeral).empty_dir.is_some());

        let mut s = spec("t4", 1, 1);
        s.disk = Some(crate::DiskMount {
            name: DiskName::parse("home").unwrap(),
            claim_name: "disk-alice-home-0123456789".into(),
        });
        let with_disk = pod(&PodPlan::new(&s, 0).unwrap());
        let claim = volume(&with_disk)
            .persistent_volume_claim
            .unwrap()
            .claim_name;
        assert_eq!(claim, "disk-alice-home-0123456789");
        assert_eq!(
            with_disk.metadata.annotations.as_ref().unwrap()["gpudev.io/disk-name"],
            "home"
        );
        let mounts = container_of(&with_disk).volume_mounts.clone().unwrap();
        assert!(
            mounts
                .iter()
                .any(|m| m.name == "home" && m.mount_path == "/home/dev")
        );
    }

    #[test]
    fn shm_is_memory_backed_and_half_the_memory() {
        let pod = build("t4", 1, 1, 0);
        let shm = pod
            .spec
            .as_ref()
            .unwrap()
            .volumes
            .as_ref()
            .unwrap()
            .iter()
            .find(|v| v.name == "shm")
            .cloned()
            .unwrap()
            .empty_dir
            .unwrap();
        assert_eq!(shm.medium.as_deref(), Some("Memory"));
        assert_eq!(shm.size_limit, Some(Quantity("22118Mi".into())));
        let mounts = container_of(&pod).volume_mounts.clone().unwrap();
        assert!(
            mounts
                .iter()
                .any(|m| m.name == "shm" && m.mount_path == "/dev/shm")
        );
    }

    #[test]
    fn multinode_pods_know_their_rank_and_rendezvous() {
        let pod = build("h100", 16, 2, 1);
        assert_eq!(pod.metadata.name.as_deref(), Some("gpudev-3f2a9c1e7b4d-1"));
        assert_eq!(
            pod.spec.as_ref().unwrap().subdomain.as_deref(),
            Some("gpudev-3f2a9c1e7b4d-nodes")
        );
        let env = env_of(&pod);
        let value = |name: &str| env[name].value.clone().unwrap();
        assert_eq!(value("GPUDEV_NODE_RANK"), "1");
        assert_eq!(value("GPUDEV_NNODES"), "2");
        assert_eq!(value("GPUDEV_GPUS"), "8");
        assert_eq!(
            value("GPUDEV_MASTER_ADDR"),
            "gpudev-3f2a9c1e7b4d-0.gpudev-3f2a9c1e7b4d-nodes.gpu-dev.svc"
        );
        assert_eq!(pod.metadata.labels.unwrap()["gpudev.io/node-index"], "1");
        assert!(build("t4", 1, 1, 0).spec.unwrap().subdomain.is_none());
    }

    #[test]
    fn jupyter_adds_its_port_only_when_enabled() {
        let ports = |pod: &Pod| -> Vec<i32> {
            container_of(pod)
                .ports
                .clone()
                .unwrap()
                .iter()
                .map(|p| p.container_port)
                .collect()
        };
        assert_eq!(ports(&build("t4", 1, 1, 0)), [22]);
        let mut s = spec("t4", 1, 1);
        s.jupyter = Some(JupyterToken::parse("tok-0123456789abcdefXYZ").unwrap());
        let with = pod(&PodPlan::new(&s, 0).unwrap());
        assert_eq!(ports(&with), [22, 8888]);
        assert_eq!(env_of(&with)["GPUDEV_JUPYTER"].value.as_deref(), Some("1"));
    }

    #[test]
    fn the_entrypoint_is_valid_sh_and_agrees_with_the_pod() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("entrypoint.sh");
        std::fs::write(&path, ENTRYPOINT).unwrap();
        let status = std::process::Command::new("sh")
            .arg("-n")
            .arg(&path)
            .status()
            .unwrap();
        assert!(status.success(), "sh -n rejected the entrypoint");
        assert!(ENTRYPOINT.contains(&format!("DEV_UID={DEV_UID}\n")));
        assert!(ENTRYPOINT.contains(&format!("DEV_HOME={HOME_PATH}\n")));
        assert!(ENTRYPOINT.contains(&format!("RUN={RUN_PATH}\n")));
        assert!(ENTRYPOINT.contains(&format!("SECRET_DIR={SECRET_PATH}\n")));
        assert!(ENTRYPOINT.contains(&format!("KEYS_SRC=$SECRET_DIR/{AUTHORIZED_KEYS_KEY}\n")));
        assert!(ENTRYPOINT.contains(&format!("\"$SECRET_DIR/{COMMAND_KEY}\"")));
        assert!(ENTRYPOINT.contains(&format!("JUPYTER_SRC=$SECRET_DIR/{JUPYTER_KEY}\n")));
        assert!(ENTRYPOINT.contains(&format!("AGENT_BIN={AGENT_PATH}/gpudev-agent\n")));
        assert!(ENTRYPOINT.contains(&format!("\"$SECRET_DIR/{AGENT_TOKEN_KEY}\"")));
        assert!(ENTRYPOINT.contains(&format!("Port {SSH_PORT}\n")));
        assert!(ENTRYPOINT.contains(&format!("--port={JUPYTER_PORT}")));
        assert!(ENTRYPOINT.contains("PermitRootLogin no"));
        assert!(ENTRYPOINT.contains("PasswordAuthentication no"));
    }

    #[test]
    fn the_agent_is_copied_in_by_an_unprivileged_init_container_and_its_token_is_a_secret_file() {
        let without = build("t4", 1, 1, 0);
        assert!(without.spec.as_ref().unwrap().init_containers.is_none());
        assert!(!env_of(&without).contains_key("GPUDEV_AGENT_URL"));

        let mut s = spec("t4", 1, 1);
        let token = gpudev_domain::AgentToken::generate().unwrap();
        s.agent = Some(crate::plan::AgentSpec {
            image: "ghcr.io/gpudev/gpudev:1.2.3".into(),
            api_url: "https://gpudev.example.com".into(),
            token: token.clone(),
        });
        let plan = s.pod_plans().unwrap().remove(0);
        let pod = pod(&plan);
        let spec = pod.spec.as_ref().unwrap();
        let init = &spec.init_containers.as_ref().unwrap()[0];
        assert_eq!(init.image.as_deref(), Some("ghcr.io/gpudev/gpudev:1.2.3"));
        assert_eq!(
            init.command.as_ref().unwrap()[1..],
            ["install".to_owned(), format!("{AGENT_PATH}/gpudev-agent")]
        );
        let sc = init.security_context.as_ref().unwrap();
        assert_eq!(sc.run_as_non_root, Some(true));
        assert_eq!(sc.allow_privilege_escalation, Some(false));
        assert_eq!(sc.read_only_root_filesystem, Some(true));
        assert_eq!(
            sc.capabilities.as_ref().unwrap().drop.as_deref(),
            Some(&["ALL".to_owned()][..])
        );
        let dev = container_of(&pod);
        assert!(
            dev.volume_mounts
                .as_ref()
                .unwrap()
                .iter()
                .any(|m| m.mount_path == AGENT_PATH && m.read_only == Some(true))
        );
        assert_eq!(
            env_of(&pod)["GPUDEV_AGENT_URL"].value.as_deref(),
            Some("https://gpudev.example.com")
        );
        let secret_volume = spec
            .volumes
            .as_ref()
            .unwrap()
            .iter()
            .find(|v| v.name == VOLUME_SECRET)
            .unwrap();
        assert!(
            secret_volume
                .secret
                .as_ref()
                .unwrap()
                .items
                .as_ref()
                .unwrap()
                .iter()
                .any(|i| i.key == AGENT_TOKEN_KEY)
        );
        // The token itself is in the Secret only.
        let text = serde_json::to_string(&pod).unwrap();
        assert!(!text.contains(token.expose()));
        let secret = crate::secret::secret(&plan);
        assert_eq!(
            secret.data.unwrap()[AGENT_TOKEN_KEY].0,
            token.expose().as_bytes()
        );
    }

    #[test]
    fn the_command_reaches_the_container_as_a_secret_file_never_in_the_spec() {
        let mut s = spec("t4", 1, 1);
        s.command = Some("python train.py --token tk_s3cret".into());
        let pod = pod(&PodPlan::new(&s, 0).unwrap());
        let text = serde_json::to_string(&pod).unwrap();
        assert!(
            !text.contains("tk_s3cret"),
            "the command is in the Pod spec"
        );
        let volumes = pod.spec.as_ref().unwrap().volumes.as_ref().unwrap();
        let secret = volumes
            .iter()
            .find(|v| v.name == VOLUME_SECRET)
            .and_then(|v| v.secret.as_ref())
            .unwrap();
        let files: Vec<_> = secret
            .items
            .as_ref()
            .unwrap()
            .iter()
            .map(|i| (i.key.as_str(), i.path.as_str()))
            .collect();
        assert_eq!(
            files,
            [
                (AUTHORIZED_KEYS_KEY, AUTHORIZED_KEYS_KEY),
                (JUPYTER_KEY, JUPYTER_KEY),
                (COMMAND_KEY, COMMAND_KEY)
            ]
        );
        // The entrypoint runs that file, as dev, after its set-up and before sshd takes over.
        let run = ENTRYPOINT.find("$SECRET_DIR/command").unwrap();
        assert!(run > ENTRYPOINT.find("sshd -t -f").unwrap());
        assert!(run < ENTRYPOINT.find("exec /usr/sbin/sshd").unwrap());
        let without = pod_of_default();
        let text = serde_json::to_string(&without).unwrap();
        assert!(!text.contains("\"command\",\"path\""));
    }

    fn pod_of_default() -> Pod {
        pod(&PodPlan::new(&spec("t4", 1, 1), 0).unwrap())
    }
}
