//! Every manifest the builders produce passes `kubernetes-validate --strict` for Kubernetes
//! 1.30, the oldest version we support (offline JSON schemas of the real API).

#![expect(
    clippy::unwrap_used,
    reason = "test helpers fail the test by panicking with the error"
)]

use std::collections::BTreeMap;
use std::num::NonZeroU32;
use std::path::{Path, PathBuf};
use std::process::Command;

use gpudev_cluster::{
    DiskClaimSpec, DiskMount, JupyterToken, PodManifests, ReservationSpec, disk_claim,
    disk_snapshot, labels, owned_by,
};
use gpudev_domain::{DiskName, EnvVars, GpuCatalog, ImageRef, Username};
use serde::Serialize;
use uuid::Uuid;

const KUBERNETES_VERSION: &str = "1.30.0";

fn validator() -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let venv = root.join(".tools/venv/bin/kubernetes-validate");
    if venv.is_file() {
        return venv;
    }
    let on_path = std::env::var_os("PATH").and_then(|path| {
        std::env::split_paths(&path)
            .map(|dir| dir.join("kubernetes-validate"))
            .find(|candidate| candidate.is_file())
    });
    on_path.unwrap_or_else(|| {
        panic!(
            "kubernetes-validate not found in {} nor on PATH: run scripts/install-python-tools",
            venv.display()
        )
    })
}

/// Runs the validator on one file and returns (exit success, combined output).
fn validate(file: &Path) -> (bool, String) {
    let output = Command::new(validator())
        .args(["--strict", "-k", KUBERNETES_VERSION])
        .arg(file)
        .output()
        .unwrap_or_else(|e| panic!("could not run kubernetes-validate: {e}"));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.success(), text)
}

fn write(dir: &Path, name: &str, object: &impl Serialize) -> PathBuf {
    let path = dir.join(format!("{name}.json"));
    let json = serde_json::to_string_pretty(object).unwrap();
    std::fs::write(&path, json).unwrap();
    path
}

fn assert_valid(path: &Path) {
    let (ok, output) = validate(path);
    assert!(ok, "{} failed validation:\n{output}", path.display());
    assert!(
        output.contains("passed"),
        "{} was not checked against a schema:\n{output}",
        path.display()
    );
}

struct Case {
    label: &'static str,
    gpu: &'static str,
    gpu_count: u32,
    nodes: u32,
    username: &'static str,
    disk: Option<&'static str>,
    jupyter: bool,
}

fn spec_for(case: &Case) -> ReservationSpec {
    let username = Username::parse(case.username).unwrap();
    ReservationSpec {
        namespace: "gpu-dev".into(),
        reservation_id: Uuid::new_v4(),
        gpu: GpuCatalog::default().lookup(case.gpu).unwrap().clone(),
        gpu_count: case.gpu_count,
        nodes: case.nodes,
        image: ImageRef::parse("pytorch/pytorch:2.8.0-cuda12.9-cudnn9-devel").unwrap(),
        env: EnvVars::parse(BTreeMap::from([
            ("HF_TOKEN".to_owned(), "hf_value".to_owned()),
            ("MULTI_LINE".to_owned(), "a\nb 'c' \"d\"".to_owned()),
        ]))
        .unwrap(),
        authorized_keys: "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIKey user@host\n".into(),
        disk: case.disk.map(|d| {
            let name = DiskName::parse(d).unwrap();
            DiskMount {
                claim_name: name.kube_name(&username, Uuid::new_v4()),
                name,
            }
        }),
        username,
        jupyter: case
            .jupyter
            .then(|| JupyterToken::parse("0123456789abcdef0123456789abcdef").unwrap()),
        command: Some("python train.py --epochs 3".into()),
        gpu_type_label: labels::DEFAULT_GPU_TYPE_LABEL.into(),
        agent: agent(),
    }
}

#[test]
fn every_manifest_passes_kubernetes_validate_strict() {
    let cases = [
        Case {
            label: "single-gpu",
            gpu: "t4",
            gpu_count: 1,
            nodes: 1,
            username: "alice",
            disk: None,
            jupyter: false,
        },
        Case {
            label: "eight-gpu-disk-jupyter",
            gpu: "h100",
            gpu_count: 8,
            nodes: 1,
            username: "bob.smith",
            disk: Some("Home_Disk"),
            jupyter: true,
        },
        Case {
            label: "multinode",
            gpu: "b200",
            gpu_count: 16,
            nodes: 2,
            username: "carol",
            disk: Some("shared"),
            jupyter: false,
        },
        Case {
            label: "cpu-only-jupyter",
            gpu: "cpu-x86",
            gpu_count: 0,
            nodes: 1,
            username: "-odd_user-",
            disk: None,
            jupyter: true,
        },
        Case {
            label: "long-username",
            gpu: "a10g",
            gpu_count: 3,
            nodes: 1,
            username: "a-very-long-username-that-does-not-fit-into-a-label-value-at-all-1234",
            disk: Some("d"),
            jupyter: false,
        },
    ];
    let dir = tempfile::tempdir().unwrap();
    let mut validated = 0;
    for case in &cases {
        let spec = spec_for(case);
        for plan in spec.pod_plans().unwrap() {
            let mut manifests = PodManifests::build(&plan);
            let prefix = format!("{}-node{}", case.label, plan.node_index());
            // The Pod as it is created (no owner), then the rest as they are created (owned).
            assert_valid(&write(dir.path(), &format!("{prefix}-pod"), &manifests.pod));
            manifests.adopt_by(&owned_by(plan.pod_name(), &Uuid::new_v4().to_string()));
            assert_valid(&write(
                dir.path(),
                &format!("{prefix}-secret"),
                &manifests.secret,
            ));
            assert_valid(&write(
                dir.path(),
                &format!("{prefix}-ssh"),
                &manifests.ssh_service,
            ));
            validated += 3;
            if let Some(headless) = &manifests.headless_service {
                assert_valid(&write(dir.path(), &format!("{prefix}-headless"), headless));
                validated += 1;
            }
        }
        if let Some(disk) = &spec.disk {
            for restore_from in [None, Some("earlier-snapshot".to_owned())] {
                let claim = disk_claim(
                    &spec.namespace,
                    &spec.username,
                    disk,
                    &DiskClaimSpec {
                        storage_class: Some("gp3".into()),
                        size_gib: NonZeroU32::new(200).unwrap(),
                        restore_from: restore_from.clone(),
                    },
                );
                let name = format!("{}-pvc-{}", case.label, restore_from.is_some());
                assert_valid(&write(dir.path(), &name, &claim));
                validated += 1;
            }
            // A custom resource: the validator has no schema and only warns, but it must not
            // fail.
            let snapshot = disk_snapshot(
                &spec.namespace,
                &spec.username,
                disk,
                spec.reservation_id,
                Some("ebs-snapshots"),
            );
            let path = write(dir.path(), &format!("{}-snapshot", case.label), &snapshot);
            let (ok, output) = validate(&path);
            assert!(ok, "{} failed validation:\n{output}", path.display());
        }
    }
    // 5 cases, 6 Pods; 2 headless Services; 3 disks × 2 claims.
    assert_eq!(validated, 6 * 3 + 2 + 3 * 2);
}

#[test]
fn the_validator_does_reject_a_broken_pod() {
    // Guards the test above against a validator that accepts anything.
    let case = Case {
        label: "broken",
        gpu: "t4",
        gpu_count: 1,
        nodes: 1,
        username: "alice",
        disk: None,
        jupyter: false,
    };
    let plan = &spec_for(&case).pod_plans().unwrap()[0];
    let mut pod = serde_json::to_value(PodManifests::build(plan).pod).unwrap();
    pod["spec"]["containers"][0]["ports"][0]["containerPort"] = serde_json::json!("twenty-two");
    let dir = tempfile::tempdir().unwrap();
    let (ok, output) = validate(&write(dir.path(), "broken-pod", &pod));
    assert!(!ok, "a Pod with a string port passed:\n{output}");
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
