//! Watches on the fake Kubernetes API, through kube-runtime's watcher and reflector.

use std::time::Duration;

use futures::{StreamExt, TryStreamExt};
use gpudev_testkit::TestCluster;
use gpudev_testkit::kube::FakeConfig;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{DeleteParams, Patch, PatchParams, PostParams, WatchEvent, WatchParams};
use kube::runtime::{WatchStreamExt, reflector, watcher};
use kube::{Api, ResourceExt};
use serde_json::json;

const NS: &str = "gpu-dev";

fn pod(name: &str, labels: serde_json::Value) -> Pod {
    serde_json::from_value(json!({
        "metadata": { "name": name, "labels": labels },
        "spec": { "containers": [{ "name": "dev", "image": "busybox" }] },
    }))
    .unwrap_or_else(|e| panic!("test pod: {e}"))
}

/// A readable summary of a watcher event.
fn describe(event: &watcher::Event<Pod>) -> String {
    match event {
        watcher::Event::Init => "init".to_owned(),
        watcher::Event::InitApply(p) => format!("init-apply {}", p.name_any()),
        watcher::Event::InitDone => "init-done".to_owned(),
        watcher::Event::Apply(p) => format!("apply {}", p.name_any()),
        watcher::Event::Delete(p) => format!("delete {}", p.name_any()),
    }
}

async fn next<S>(stream: &mut S) -> Result<watcher::Event<Pod>, watcher::Error>
where
    S: futures::Stream<Item = Result<watcher::Event<Pod>, watcher::Error>> + Unpin,
{
    tokio::time::timeout(Duration::from_secs(5), stream.next())
        .await
        .unwrap_or_else(|_| panic!("no watcher event within 5 s"))
        .unwrap_or_else(|| panic!("the watcher stream ended"))
}

#[tokio::test]
async fn the_default_watcher_lists_then_sees_added_modified_and_deleted() {
    // The fake only: exact event sequences: on a real cluster the scheduler writes to the pod and deletion is graceful (ADR 6).
    let cluster = TestCluster::fake_with(NS, FakeConfig::default());
    let ns = cluster.namespace();
    let pods: Api<Pod> = Api::namespaced(cluster.client(), ns);
    pods.create(&PostParams::default(), &pod("before", json!({})))
        .await
        .unwrap();
    let mut events = watcher(pods.clone(), watcher::Config::default()).boxed();

    let mut seen = Vec::new();
    for _ in 0..3 {
        seen.push(describe(&next(&mut events).await.unwrap()));
    }
    pods.create(&PostParams::default(), &pod("after", json!({})))
        .await
        .unwrap();
    pods.patch(
        "before",
        &PatchParams::default(),
        &Patch::Merge(json!({ "metadata": { "labels": { "x": "1" } } })),
    )
    .await
    .unwrap();
    pods.delete("after", &DeleteParams::default())
        .await
        .unwrap();
    for _ in 0..3 {
        seen.push(describe(&next(&mut events).await.unwrap()));
    }

    assert_eq!(
        seen,
        [
            "init",
            "init-apply before",
            "init-done",
            "apply after",
            "apply before",
            "delete after"
        ]
    );
}

#[tokio::test]
async fn a_watch_from_a_compacted_version_gets_one_410_error_event() {
    // The fake only: a real API server may answer a stale version from its watch cache instead of 410 (ADR 6).
    let cluster = TestCluster::fake_with(NS, FakeConfig::default());
    let ns = cluster.namespace();
    let pods: Api<Pod> = Api::namespaced(cluster.client(), ns);
    pods.create(&PostParams::default(), &pod("p", json!({})))
        .await
        .unwrap();
    cluster.fake().unwrap().compact();

    let events: Vec<_> = pods
        .watch(&WatchParams::default().timeout(5), "1")
        .await
        .unwrap()
        .try_collect()
        .await
        .unwrap();

    assert_eq!(events.len(), 1);
    match &events[0] {
        WatchEvent::Error(status) => {
            assert_eq!((status.code, status.reason.as_str()), (410, "Expired"))
        }
        other => panic!("expected an ERROR event, got {other:?}"),
    }
}

#[tokio::test]
async fn the_watcher_relists_after_its_version_is_compacted_away() {
    // The fake only: it needs a change and a compaction with nothing in between, which a test
    // cannot arrange on a real API server.
    let cluster = TestCluster::fake_with(NS, FakeConfig::default());
    let fake = cluster.fake().unwrap();
    let ns = cluster.namespace();
    let pods: Api<Pod> = Api::namespaced(cluster.client(), ns);
    pods.create(&PostParams::default(), &pod("p", json!({})))
        .await
        .unwrap();
    let mut events = watcher(pods.clone(), watcher::Config::default()).boxed();
    for _ in 0..3 {
        next(&mut events).await.unwrap();
    }

    // Change and compact with no await in between, so the live watch falls behind the history.
    fake.modify("pods", Some(ns), "p", |p| {
        p["metadata"]["labels"] = json!({ "changed": "yes" })
    });
    fake.compact();

    let mut seen = Vec::new();
    loop {
        match next(&mut events).await {
            Err(watcher::Error::WatchError(status)) => seen.push(format!("error {}", status.code)),
            Err(other) => panic!("unexpected watcher error {other:?}"),
            Ok(event) => {
                let done = matches!(event, watcher::Event::InitDone);
                if let watcher::Event::InitApply(p) = &event {
                    assert_eq!(p.labels().get("changed").map(String::as_str), Some("yes"));
                }
                seen.push(describe(&event));
                if done {
                    break;
                }
            }
        }
    }
    assert_eq!(seen, ["error 410", "init", "init-apply p", "init-done"]);
}

#[tokio::test]
async fn a_label_selected_watch_sees_objects_leave_the_selection_as_deleted() {
    // The fake only: exact event sequences: on a real cluster the scheduler writes to the pod (ADR 6).
    let cluster = TestCluster::fake_with(NS, FakeConfig::default());
    let ns = cluster.namespace();
    let pods: Api<Pod> = Api::namespaced(cluster.client(), ns);
    pods.create(
        &PostParams::default(),
        &pod("p", json!({ "app.kubernetes.io/managed-by": "gpudev" })),
    )
    .await
    .unwrap();
    let config = watcher::Config::default().labels("app.kubernetes.io/managed-by=gpudev");
    let mut events = watcher(pods.clone(), config).boxed();
    for _ in 0..3 {
        next(&mut events).await.unwrap();
    }

    pods.create(&PostParams::default(), &pod("unmanaged", json!({})))
        .await
        .unwrap();
    let unlabel = json!({ "metadata": { "labels": { "app.kubernetes.io/managed-by": null } } });
    pods.patch("p", &PatchParams::default(), &Patch::Merge(unlabel))
        .await
        .unwrap();

    assert_eq!(describe(&next(&mut events).await.unwrap()), "delete p");
}

#[tokio::test]
async fn a_reflector_store_mirrors_the_cluster() {
    let cluster = TestCluster::new(NS).await;
    let ns = cluster.namespace();
    let pods: Api<Pod> = Api::namespaced(cluster.client(), ns);
    pods.create(&PostParams::default(), &pod("a", json!({})))
        .await
        .unwrap();
    let (reader, writer) = reflector::store::<Pod>();
    let stream =
        reflector(writer, watcher(pods.clone(), watcher::Config::default())).applied_objects();
    let drain = tokio::spawn(stream.for_each(|_| async {}));

    reader.wait_until_ready().await.unwrap();
    pods.create(&PostParams::default(), &pod("b", json!({})))
        .await
        .unwrap();
    pods.delete("a", &DeleteParams::default()).await.unwrap();
    let converged = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            let mut names: Vec<String> = reader.state().iter().map(|p| p.name_any()).collect();
            names.sort();
            if names == ["b"] {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;

    drain.abort();
    assert!(converged.is_ok(), "the reflector never saw exactly [b]");
}

#[tokio::test]
async fn a_watch_ends_at_its_timeout_with_a_bookmark() {
    // The fake only: a real API server sends bookmarks on its own schedule (ADR 6).
    let cluster = TestCluster::fake_with(NS, FakeConfig::default());
    let ns = cluster.namespace();
    let pods: Api<Pod> = Api::namespaced(cluster.client(), ns);
    pods.create(&PostParams::default(), &pod("p", json!({})))
        .await
        .unwrap();
    let version = pods
        .list(&kube::api::ListParams::default())
        .await
        .unwrap()
        .metadata
        .resource_version
        .unwrap();

    let params = WatchParams::default().timeout(1);
    let events: Vec<_> = pods
        .watch(&params, &version)
        .await
        .unwrap()
        .try_collect()
        .await
        .unwrap();

    assert!(
        matches!(events.as_slice(), [WatchEvent::Bookmark(b)] if b.metadata.resource_version == version)
    );
}

#[tokio::test]
async fn streaming_lists_send_initial_events_then_a_bookmark() {
    let cluster = TestCluster::new(NS).await;
    let ns = cluster.namespace();
    let pods: Api<Pod> = Api::namespaced(cluster.client(), ns);
    pods.create(&PostParams::default(), &pod("p", json!({})))
        .await
        .unwrap();
    let mut events = watcher(pods.clone(), watcher::Config::default().streaming_lists()).boxed();

    let mut seen = Vec::new();
    for _ in 0..3 {
        seen.push(describe(&next(&mut events).await.unwrap()));
    }
    pods.create(&PostParams::default(), &pod("q", json!({})))
        .await
        .unwrap();
    // On a real cluster the scheduler may write to p meanwhile; those come as "apply p".
    loop {
        let event = describe(&next(&mut events).await.unwrap());
        if event != "apply p" {
            seen.push(event);
            break;
        }
    }

    assert_eq!(seen, ["init", "init-apply p", "init-done", "apply q"]);
}
