//! Every object the driver sends passes `kubernetes-validate --strict` for Kubernetes 1.30
//! (the builders are validated in gpudev-cluster; this checks what the driver adds, such as the
//! node pinning and the owner references, on the objects as the API server stored them).

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

use crate::common::{Ask, env};

fn validator() -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let venv = root.join(".tools/venv/bin/kubernetes-validate");
    if venv.is_file() {
        return venv;
    }
    std::env::var_os("PATH")
        .and_then(|path| {
            std::env::split_paths(&path)
                .map(|dir| dir.join("kubernetes-validate"))
                .find(|candidate| candidate.is_file())
        })
        .unwrap_or_else(|| {
            panic!(
                "kubernetes-validate not found in {} nor on PATH: run scripts/install-python-tools",
                venv.display()
            )
        })
}

/// The object as a client would have sent it: without what the server adds.
fn as_sent(mut object: Value, kind: &str) -> Value {
    object["apiVersion"] = Value::from("v1");
    object["kind"] = Value::from(kind);
    if let Some(meta) = object["metadata"].as_object_mut() {
        for field in [
            "uid",
            "resourceVersion",
            "creationTimestamp",
            "generation",
            "managedFields",
        ] {
            meta.remove(field);
        }
    }
    if let Some(map) = object.as_object_mut() {
        map.remove("status");
    }
    object
}

#[tokio::test]
async fn every_object_the_driver_creates_passes_kubernetes_validate() {
    let mut env = env().await;
    env.config.storage_class = Some("gp3".into());
    env.cluster.seed_nodes("h100", 3, 8).await;
    env.cluster.seed_nodes("cpu-x86", 1, 0).await;
    let alice = env.user("alice").await;
    let mut with_env = Ask {
        disk: Some("home"),
        jupyter: true,
        ..Ask::gpus("h100", 2)
    };
    with_env.env.insert("WANDB_API_KEY".into(), "w-123".into());
    env.submit(&alice, with_env).await;
    env.submit(
        &alice,
        Ask {
            nodes: 2,
            ..Ask::gpus("h100", 16)
        },
    )
    .await;
    env.submit(&alice, Ask::gpus("cpu-x86", 0)).await;
    let mut config = env.config.clone();
    config.quotas = gpudev_domain::Quotas::default();
    // Boxes with gpudev's agent: its init container and volume are validated too.
    config.agent = Some(gpudev_processor::config::AgentSettings {
        image: "ghcr.io/gpudev/gpudev:0.1.0".into(),
        api_url: "https://gpudev.example.com".into(),
    });
    let p = env.processor_with(config).await;
    assert!(p.try_become_leader().await.unwrap());
    p.process_once().await.unwrap();
    p.scheduler_pass().await.unwrap();

    let dir = tempfile_dir();
    let mut files = Vec::new();
    for (plural, kind) in [
        ("pods", "Pod"),
        ("services", "Service"),
        ("secrets", "Secret"),
        ("persistentvolumeclaims", "PersistentVolumeClaim"),
    ] {
        for object in env.objects(plural).await {
            let name = object["metadata"]["name"].as_str().unwrap().to_owned();
            let path = dir.join(format!("{plural}-{name}.json"));
            std::fs::write(
                &path,
                serde_json::to_string_pretty(&as_sent(object, kind)).unwrap(),
            )
            .unwrap();
            files.push(path);
        }
    }
    // Pods: the single-node one, two multi-node ones, and the CPU one.
    assert!(
        files
            .iter()
            .filter(|f| f.to_string_lossy().contains("/pods-"))
            .count()
            >= 3
    );
    let output = Command::new(validator())
        .args(["--strict", "-k", "1.30.0"])
        .args(&files)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(output.status.success(), "{text}");
    assert_eq!(text.matches("passed").count(), files.len(), "{text}");
    let _ = std::fs::remove_dir_all(dir);
}

fn tempfile_dir() -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "gpudev-processor-manifests-{}",
        uuid::Uuid::new_v4()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}
