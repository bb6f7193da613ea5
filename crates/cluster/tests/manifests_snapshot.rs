//! What a dev box is, in Kubernetes terms: every object one reservation's Pod gets, as YAML
//! snapshots (`tests/snapshots/`). A change to a builder shows up here as a reviewed diff
//! (`cargo insta review`, or `INSTA_UPDATE=always cargo test` and a look at the diff).

#![expect(
    clippy::unwrap_used,
    reason = "test helpers fail the test by panicking with the error"
)]

use std::collections::BTreeMap;
use std::num::NonZeroU32;

use gpudev_cluster::{
    DiskClaimSpec, DiskMount, JupyterToken, PodManifests, ReservationSpec, disk_claim, labels,
    owned_by, pin_to_node,
};
use gpudev_domain::{DiskName, EnvVars, GpuCatalog, ImageRef, Username};
use uuid::Uuid;

/// One h100 reservation of 8 GPUs on one node, with a home disk and Jupyter: every optional
/// part of a dev box is present. Ids are fixed so the snapshots are stable.
fn reservation() -> ReservationSpec {
    let username = Username::parse("alice").unwrap();
    let disk = DiskName::parse("home").unwrap();
    let disk_id = Uuid::parse_str("6a1f0c2e-0d3b-4f6e-8c1a-2b3c4d5e6f70").unwrap();
    ReservationSpec {
        namespace: "gpu-dev".into(),
        reservation_id: Uuid::parse_str("3f2a9c1e-7b4d-4e8f-9a0b-1c2d3e4f5a6b").unwrap(),
        gpu: GpuCatalog::default().lookup("h100").unwrap().clone(),
        gpu_count: 8,
        nodes: 1,
        image: ImageRef::parse("pytorch/pytorch:2.8.0-cuda12.9-cudnn9-devel").unwrap(),
        env: EnvVars::parse(BTreeMap::from([(
            "HF_TOKEN".to_owned(),
            "hf_value".to_owned(),
        )]))
        .unwrap(),
        authorized_keys: "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIKey alice@laptop\n".into(),
        disk: Some(DiskMount {
            claim_name: disk.kube_name(&username, disk_id),
            name: disk,
        }),
        username,
        jupyter: Some(JupyterToken::parse("0123456789abcdef0123456789abcdef").unwrap()),
        command: Some("python train.py --epochs 3".into()),
        gpu_type_label: labels::DEFAULT_GPU_TYPE_LABEL.into(),
        agent: agent(),
    }
}

#[test]
fn one_reservations_objects() {
    let spec = reservation();
    let plans = spec.pod_plans().unwrap();
    assert_eq!(plans.len(), 1);
    let mut objects = PodManifests::build(&plans[0]);
    // As the processor leaves them: the Pod pinned to the node it was admitted on, and the
    // other objects owned by the created Pod.
    pin_to_node(&mut objects.pod, "gpu-node-1");
    objects.adopt_by(&owned_by(plans[0].pod_name(), "pod-uid"));

    // The entrypoint script is its own file; the snapshot shows where it goes, not its text.
    let container = &mut objects.pod.spec.as_mut().unwrap().containers[0];
    for arg in container.command.iter_mut().flatten() {
        if *arg == gpudev_cluster::pod::ENTRYPOINT {
            *arg = "<crates/cluster/src/entrypoint.sh>".into();
        }
    }

    insta::assert_yaml_snapshot!("secret", objects.secret);
    insta::assert_yaml_snapshot!("pod", objects.pod);
    insta::assert_yaml_snapshot!("ssh_service", objects.ssh_service);
    assert!(objects.headless_service.is_none(), "single-node");
}

#[test]
fn one_disks_claim() {
    let spec = reservation();
    let disk = spec.disk.as_ref().unwrap();
    let claim = disk_claim(
        &spec.namespace,
        &spec.username,
        disk,
        &DiskClaimSpec {
            storage_class: None,
            size_gib: NonZeroU32::new(100).unwrap(),
            restore_from: None,
        },
    );
    insta::assert_yaml_snapshot!("disk_claim", claim);
}

/// The agent as a platform with idle detection runs it (a fixed token, for stable output).
fn agent() -> Option<gpudev_cluster::plan::AgentSpec> {
    Some(gpudev_cluster::plan::AgentSpec {
        image: "ghcr.io/gpudev/gpudev:0.1.0".into(),
        api_url: "https://gpudev.example.com".into(),
        token: gpudev_domain::AgentToken::parse("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA")
            .unwrap(),
    })
}
