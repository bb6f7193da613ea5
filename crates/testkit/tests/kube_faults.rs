//! Injected faults, the request log, and the fake served over real HTTP with a kubeconfig.

use std::time::Duration;

use futures::{StreamExt, TryStreamExt};
use gpudev_testkit::kube::{FakeCluster, Fault, FaultKind, Verb};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Node, Secret};
use kube::api::{ListParams, PostParams, WatchEvent, WatchParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Api, Client, Config, Error, ResourceExt};
use serde_json::json;

const NS: &str = "gpu-dev";

fn secret(name: &str) -> Secret {
    serde_json::from_value(json!({ "metadata": { "name": name } }))
        .unwrap_or_else(|e| panic!("test secret: {e}"))
}

fn code(result: Result<Secret, Error>) -> u16 {
    match result {
        Ok(_) => 200,
        Err(Error::Api(status)) => status.code,
        Err(other) => panic!("expected an API error, got {other:?}"),
    }
}

#[tokio::test]
async fn injected_500s_are_returned_the_requested_number_of_times() {
    let fake = FakeCluster::new();
    let secrets: Api<Secret> = Api::namespaced(fake.client(), NS);
    fake.inject(
        Fault::new(FaultKind::Status500)
            .verb(Verb::Create)
            .resource("secrets")
            .times(2),
    );

    let first = code(secrets.create(&PostParams::default(), &secret("s")).await);
    let second = code(secrets.create(&PostParams::default(), &secret("s")).await);
    let third = code(secrets.create(&PostParams::default(), &secret("s")).await);

    assert_eq!([first, second, third], [500, 500, 200]);
    assert_eq!(fake.count(Verb::Create, "secrets"), 3);
    assert_eq!(fake.count_ok(Verb::Create, "secrets"), 1);
    assert_eq!(fake.objects("secrets", Some(NS)).len(), 1);
}

#[tokio::test]
async fn faults_only_hit_matching_requests() {
    let fake = FakeCluster::new();
    let secrets: Api<Secret> = Api::namespaced(fake.client(), NS);
    fake.inject(
        Fault::new(FaultKind::Status500)
            .verb(Verb::Delete)
            .resource("secrets"),
    );
    fake.inject(
        Fault::new(FaultKind::Status {
            code: 429,
            reason: "TooManyRequests",
        })
        .resource("secrets")
        .name("b"),
    );

    let a = code(secrets.create(&PostParams::default(), &secret("a")).await);
    let b = code(secrets.create(&PostParams::default(), &secret("b")).await);

    assert_eq!([a, b], [200, 429]);
    let log = fake.requests();
    assert!(log[1].injected && !log[0].injected);
    assert_eq!(log[1].name.as_deref(), Some("b"));
}

#[tokio::test]
async fn a_timeout_fault_answers_504_after_the_delay_and_does_nothing() {
    let fake = FakeCluster::new();
    let secrets: Api<Secret> = Api::namespaced(fake.client(), NS);
    fake.inject(Fault::new(FaultKind::Timeout(Duration::from_millis(100))));

    let started = std::time::Instant::now();
    let answer = code(secrets.create(&PostParams::default(), &secret("s")).await);

    assert_eq!(answer, 504);
    assert!(started.elapsed() >= Duration::from_millis(100));
    assert!(fake.objects("secrets", None).is_empty());
}

#[tokio::test]
async fn an_injected_conflict_looks_like_a_lost_lease_race() {
    let fake = FakeCluster::new();
    let leases: Api<Lease> = Api::namespaced(fake.client(), NS);
    let lease: Lease = serde_json::from_value(
        json!({ "metadata": { "name": "leader" }, "spec": { "holderIdentity": "a" } }),
    )
    .unwrap();
    let created = leases.create(&PostParams::default(), &lease).await.unwrap();
    fake.inject(
        Fault::new(FaultKind::Conflict409)
            .verb(Verb::Update)
            .resource("leases"),
    );

    let error = leases
        .replace("leader", &PostParams::default(), &created)
        .await
        .unwrap_err();
    let retried = leases
        .replace("leader", &PostParams::default(), &created)
        .await;

    assert!(matches!(error, Error::Api(s) if s.code == 409 && s.reason == "Conflict"));
    assert!(retried.is_ok());
}

#[tokio::test]
async fn the_served_cluster_works_through_a_kubeconfig_over_http() {
    let fake = FakeCluster::new();
    fake.seed_nodes("h100", 2, 8);
    let served = fake.serve("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let kubeconfig = Kubeconfig::read_from(served.kubeconfig_path()).unwrap();
    let config = Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .unwrap();
    // As the binaries do: several rustls backends are linked in a workspace build.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let client = Client::try_from(config).unwrap();

    let nodes: Api<Node> = Api::all(client.clone());
    let listed = nodes.list(&ListParams::default()).await.unwrap();
    let secrets: Api<Secret> = Api::default_namespaced(client);
    let version = fake.resource_version().to_string();
    let mut watch = secrets
        .watch(&WatchParams::default().timeout(5), &version)
        .await
        .unwrap()
        .boxed();
    fake.modify("nodes", None, "h100-node-0", |n| {
        n["metadata"]["labels"]["x"] = json!("y")
    });
    Api::<Secret>::namespaced(fake.client(), "default")
        .create(&PostParams::default(), &secret("s"))
        .await
        .unwrap();
    let event = tokio::time::timeout(Duration::from_secs(5), watch.try_next())
        .await
        .unwrap()
        .unwrap();

    assert_eq!(listed.items.len(), 2);
    assert!(served.url().starts_with("http://127.0.0.1:"));
    assert!(matches!(event, Some(WatchEvent::Added(s)) if s.name_any() == "s"));
}
