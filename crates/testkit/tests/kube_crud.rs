//! The fake Kubernetes API through real kube-rs calls: create, get, list, patch, apply,
//! replace, delete, and the error statuses.

use gpudev_testkit::TestCluster;
use gpudev_testkit::kube::Verb;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Pod, Secret, Service};
use kube::api::{DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::{Api, Error, ResourceExt};
use serde_json::json;

const NS: &str = "gpu-dev";

fn pod(name: &str, labels: serde_json::Value) -> Pod {
    serde_json::from_value(json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": { "name": name, "labels": labels },
        "spec": { "containers": [{ "name": "dev", "image": "busybox" }] },
    }))
    .unwrap_or_else(|e| panic!("test pod: {e}"))
}

fn api_error(error: Error) -> (u16, String) {
    match error {
        Error::Api(status) => (status.code, status.reason.clone()),
        other => panic!("expected an API error, got {other:?}"),
    }
}

#[tokio::test]
async fn created_objects_come_back_with_server_metadata() {
    let cluster = TestCluster::new(NS).await;
    let ns = cluster.namespace();
    let pods: Api<Pod> = Api::namespaced(cluster.client(), ns);

    let created = pods
        .create(&PostParams::default(), &pod("p1", json!({})))
        .await
        .unwrap();
    let fetched = pods.get("p1").await.unwrap();

    assert_eq!(fetched.namespace().as_deref(), Some(ns));
    assert!(created.uid().is_some());
    assert!(created.creation_timestamp().is_some());
    assert_eq!(created.metadata.generation, Some(1));
    // Nothing else writes a Secret, so reading it back gives the version its create returned
    // (a Pod's may already have moved on: a real scheduler writes to it).
    let secrets: Api<Secret> = Api::namespaced(cluster.client(), ns);
    let made = secrets
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({ "metadata": { "name": "s1" } })).unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(
        secrets.get("s1").await.unwrap().resource_version(),
        made.resource_version()
    );
    assert_eq!(
        fetched.status.and_then(|s| s.phase).as_deref(),
        Some("Pending")
    );
}

#[tokio::test]
async fn missing_objects_are_404_not_found_and_duplicates_409_already_exists() {
    let cluster = TestCluster::new(NS).await;
    let ns = cluster.namespace();
    let pods: Api<Pod> = Api::namespaced(cluster.client(), ns);

    let missing = pods.get("nope").await.unwrap_err();
    pods.create(&PostParams::default(), &pod("p1", json!({})))
        .await
        .unwrap();
    let duplicate = pods
        .create(&PostParams::default(), &pod("p1", json!({})))
        .await
        .unwrap_err();
    let delete_missing = pods
        .delete("nope", &DeleteParams::default())
        .await
        .unwrap_err();

    assert_eq!(api_error(missing), (404, "NotFound".to_owned()));
    assert_eq!(api_error(duplicate), (409, "AlreadyExists".to_owned()));
    assert_eq!(api_error(delete_missing).0, 404);
    assert_eq!(pods.get_opt("nope").await.unwrap(), None);
}

#[tokio::test]
async fn nothing_can_be_created_in_a_namespace_that_does_not_exist() {
    let cluster = TestCluster::new(NS).await;
    let missing = format!("{}-missing", cluster.namespace());
    let pods: Api<Pod> = Api::namespaced(cluster.client(), &missing);

    let error = pods
        .create(&PostParams::default(), &pod("p", json!({})))
        .await
        .unwrap_err();

    assert_eq!(api_error(error), (404, "NotFound".to_owned()));
}

#[tokio::test]
async fn invalid_names_and_labels_are_422_invalid() {
    let cluster = TestCluster::new(NS).await;
    let ns = cluster.namespace();
    let pods: Api<Pod> = Api::namespaced(cluster.client(), ns);

    let bad_name = pods
        .create(&PostParams::default(), &pod("Not_A_Name", json!({})))
        .await
        .unwrap_err();
    let bad_label = pods
        .create(
            &PostParams::default(),
            &pod("p", json!({ "gpudev.io/user": "has space" })),
        )
        .await
        .unwrap_err();

    assert_eq!(api_error(bad_name), (422, "Invalid".to_owned()));
    assert_eq!(api_error(bad_label), (422, "Invalid".to_owned()));
}

#[tokio::test]
async fn label_selectors_filter_lists() {
    let cluster = TestCluster::new(NS).await;
    let ns = cluster.namespace();
    let pods: Api<Pod> = Api::namespaced(cluster.client(), ns);
    for (name, user, tier) in [
        ("a", "alice", "gold"),
        ("b", "bob", "gold"),
        ("c", "carol", "free"),
    ] {
        let labels = json!({ "app.kubernetes.io/managed-by": "gpudev", "gpudev.io/user": user, "tier": tier });
        pods.create(&PostParams::default(), &pod(name, labels))
            .await
            .unwrap();
    }
    pods.create(&PostParams::default(), &pod("other", json!({})))
        .await
        .unwrap();
    let names = |selector: &str| {
        let pods = pods.clone();
        let lp = ListParams::default().labels(selector);
        async move {
            let list = pods.list(&lp).await.unwrap();
            assert!(
                list.metadata
                    .resource_version
                    .is_some_and(|v| !v.is_empty())
            );
            list.items
                .iter()
                .map(ResourceExt::name_any)
                .collect::<Vec<_>>()
        }
    };

    assert_eq!(
        names("app.kubernetes.io/managed-by=gpudev").await,
        ["a", "b", "c"]
    );
    assert_eq!(names("gpudev.io/user=alice").await, ["a"]);
    assert_eq!(names("tier!=gold").await, ["c", "other"]);
    assert_eq!(names("gpudev.io/user in (bob,carol)").await, ["b", "c"]);
    assert_eq!(names("tier,gpudev.io/user notin (alice)").await, ["b", "c"]);
    assert_eq!(names("!tier").await, ["other"]);
}

#[tokio::test]
async fn field_selectors_filter_lists_and_all_namespace_lists_see_every_namespace() {
    let cluster = TestCluster::new(NS).await;
    let client = cluster.client();
    let (a, b) = (
        cluster.namespace_like("a").await,
        cluster.namespace_like("b").await,
    );
    // No node matches them, so they stay Pending and unbound on a real cluster too.
    let unschedulable = |name: &str| {
        let mut p = pod(name, json!({}));
        p.spec.as_mut().unwrap().node_selector =
            Some([("gpudev.io/test".to_owned(), "nowhere".to_owned())].into());
        p
    };
    Api::<Pod>::namespaced(client.clone(), &a)
        .create(&PostParams::default(), &unschedulable("p1"))
        .await
        .unwrap();
    Api::<Pod>::namespaced(client.clone(), &b)
        .create(&PostParams::default(), &unschedulable("p2"))
        .await
        .unwrap();
    let all: Api<Pod> = Api::all(client);
    // A real cluster holds other tests' pods too: count only ours.
    let ours = |list: kube::core::ObjectList<Pod>| -> Vec<String> {
        let mut names: Vec<String> = list
            .items
            .into_iter()
            .filter(|p| [a.as_str(), b.as_str()].contains(&p.namespace().as_deref().unwrap_or("")))
            .map(|p| format!("{}/{}", p.namespace().unwrap_or_default(), p.name_any()))
            .collect();
        names.sort();
        names
    };

    let everything = ours(all.list(&ListParams::default()).await.unwrap());
    let by_name = ours(
        all.list(&ListParams::default().fields("metadata.name=p2"))
            .await
            .unwrap(),
    );
    let unbound = ours(
        all.list(&ListParams::default().fields("spec.nodeName=,status.phase=Pending"))
            .await
            .unwrap(),
    );

    // Only indexed fields can be selected on.
    let unsupported = all
        .list(&ListParams::default().fields("metadata.labels.team=x"))
        .await
        .unwrap_err();
    assert_eq!(api_error(unsupported), (400, "BadRequest".to_owned()));
    assert_eq!(everything, [format!("{a}/p1"), format!("{b}/p2")]);
    assert_eq!(by_name, [format!("{b}/p2")]);
    assert_eq!(unbound, everything);
}

#[tokio::test]
async fn merge_and_json_patches_change_objects_and_bump_the_version() {
    let cluster = TestCluster::new(NS).await;
    let ns = cluster.namespace();
    let pods: Api<Pod> = Api::namespaced(cluster.client(), ns);
    let created = pods
        .create(&PostParams::default(), &pod("p", json!({ "a": "1" })))
        .await
        .unwrap();

    let merged = pods
        .patch(
            "p",
            &PatchParams::default(),
            &Patch::Merge(json!({ "metadata": { "labels": { "b": "2" } } })),
        )
        .await
        .unwrap();
    let ops: json_patch::Patch =
        serde_json::from_value(json!([{ "op": "remove", "path": "/metadata/labels/a" }])).unwrap();
    let patched = pods
        .patch("p", &PatchParams::default(), &Patch::<()>::Json(ops))
        .await
        .unwrap();

    assert_eq!(merged.labels().get("a").map(String::as_str), Some("1"));
    assert_eq!(merged.labels().get("b").map(String::as_str), Some("2"));
    assert!(!patched.labels().contains_key("a"));
    assert_ne!(created.resource_version(), merged.resource_version());
    assert_eq!(merged.metadata.generation, Some(1), "labels are not spec");
}

#[tokio::test]
async fn applying_the_same_object_twice_creates_it_once_and_changes_nothing_the_second_time() {
    let cluster = TestCluster::new(NS).await;
    let ns = cluster.namespace();
    let secrets: Api<Secret> = Api::namespaced(cluster.client(), ns);
    let secret: Secret = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Secret",
        "metadata": { "name": "env", "labels": { "gpudev.io/reservation-id": "r1" } },
        "stringData": { "A": "1" },
    }))
    .unwrap();
    let params = PatchParams::apply("gpudev-processor").force();

    let first = secrets
        .patch("env", &params, &Patch::Apply(&secret))
        .await
        .unwrap();
    let second = secrets
        .patch("env", &params, &Patch::Apply(&secret))
        .await
        .unwrap();

    assert_eq!(first.resource_version(), second.resource_version());
    assert_eq!(
        secrets
            .list(&ListParams::default())
            .await
            .unwrap()
            .items
            .len(),
        1
    );
    if let Some(fake) = cluster.fake() {
        assert_eq!(fake.count(Verb::Patch, "secrets"), 2);
        assert_eq!(fake.count(Verb::Create, "secrets"), 0);
    }
}

#[tokio::test]
async fn apply_without_a_field_manager_is_rejected() {
    let cluster = TestCluster::new(NS).await;
    let ns = cluster.namespace();
    let secrets: Api<Secret> = Api::namespaced(cluster.client(), ns);
    let result = secrets
        .patch(
            "env",
            &PatchParams::default(),
            &Patch::Apply(json!({ "apiVersion": "v1", "kind": "Secret" })),
        )
        .await;
    assert!(result.is_err());
}

#[tokio::test]
async fn replace_with_a_stale_resource_version_is_409_conflict() {
    let cluster = TestCluster::new(NS).await;
    let ns = cluster.namespace();
    let leases: Api<Lease> = Api::namespaced(cluster.client(), ns);
    let lease: Lease = serde_json::from_value(json!({
        "metadata": { "name": "gpudev-processor" },
        "spec": { "holderIdentity": "a", "leaseDurationSeconds": 15 },
    }))
    .unwrap();
    let created = leases.create(&PostParams::default(), &lease).await.unwrap();

    let mut by_b = created.clone();
    by_b.spec.as_mut().unwrap().holder_identity = Some("b".to_owned());
    let replaced = leases
        .replace("gpudev-processor", &PostParams::default(), &by_b)
        .await
        .unwrap();
    let mut by_c = created.clone();
    by_c.spec.as_mut().unwrap().holder_identity = Some("c".to_owned());
    let stale = leases
        .replace("gpudev-processor", &PostParams::default(), &by_c)
        .await
        .unwrap_err();

    assert_eq!(replaced.spec.unwrap().holder_identity.as_deref(), Some("b"));
    assert_eq!(api_error(stale), (409, "Conflict".to_owned()));
    let now = leases.get("gpudev-processor").await.unwrap();
    assert_eq!(now.spec.unwrap().holder_identity.as_deref(), Some("b"));
    // Leases, like most built-in kinds, have no generation.
    assert_eq!(now.metadata.generation, None);
}

#[tokio::test]
async fn a_patch_carrying_a_stale_resource_version_is_409_conflict() {
    let cluster = TestCluster::new(NS).await;
    let ns = cluster.namespace();
    let pods: Api<Pod> = Api::namespaced(cluster.client(), ns);
    pods.create(&PostParams::default(), &pod("p", json!({})))
        .await
        .unwrap();

    let stale = json!({ "metadata": { "resourceVersion": "1", "labels": { "x": "y" } } });
    let error = pods
        .patch("p", &PatchParams::default(), &Patch::Merge(stale))
        .await
        .unwrap_err();

    assert_eq!(api_error(error).0, 409);
}

#[tokio::test]
async fn deleting_a_pod_deletes_the_services_and_secrets_it_owns() {
    let cluster = TestCluster::new(NS).await;
    let ns = cluster.namespace();
    let client = cluster.client();
    let pods: Api<Pod> = Api::namespaced(client.clone(), ns);
    let services: Api<Service> = Api::namespaced(client.clone(), ns);
    let secrets: Api<Secret> = Api::namespaced(client, ns);
    let owner = pods
        .create(&PostParams::default(), &pod("dev", json!({})))
        .await
        .unwrap();
    let owner_ref =
        json!([{ "apiVersion": "v1", "kind": "Pod", "name": "dev", "uid": owner.uid().unwrap() }]);
    let service: Service = serde_json::from_value(json!({
        "metadata": { "name": "dev-ssh", "ownerReferences": owner_ref },
        "spec": { "type": "NodePort", "ports": [{ "name": "ssh", "port": 22 }] },
    }))
    .unwrap();
    let secret: Secret = serde_json::from_value(
        json!({ "metadata": { "name": "dev-env", "ownerReferences": owner_ref } }),
    )
    .unwrap();
    let unowned: Secret =
        serde_json::from_value(json!({ "metadata": { "name": "keep" } })).unwrap();
    services
        .create(&PostParams::default(), &service)
        .await
        .unwrap();
    secrets
        .create(&PostParams::default(), &secret)
        .await
        .unwrap();
    secrets
        .create(&PostParams::default(), &unowned)
        .await
        .unwrap();

    pods.delete("dev", &DeleteParams::default()).await.unwrap();

    // The fake collects garbage at once; the controller manager's collector takes a moment.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while cluster.is_real()
        && services.get_opt("dev-ssh").await.unwrap().is_some()
        && std::time::Instant::now() < deadline
    {
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    while cluster.is_real()
        && secrets.get_opt("dev-env").await.unwrap().is_some()
        && std::time::Instant::now() < deadline
    {
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(services.get_opt("dev-ssh").await.unwrap(), None);
    assert_eq!(secrets.get_opt("dev-env").await.unwrap(), None);
    assert!(secrets.get_opt("keep").await.unwrap().is_some());
}

#[tokio::test]
async fn node_port_services_get_a_port_that_survives_reapplying() {
    let cluster = TestCluster::new(NS).await;
    let ns = cluster.namespace();
    let services: Api<Service> = Api::namespaced(cluster.client(), ns);
    let service = json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": { "name": "ssh" },
        "spec": { "type": "NodePort", "selector": { "app": "x" }, "ports": [{ "name": "ssh", "port": 22 }] },
    });
    let params = PatchParams::apply("test");

    let first = services
        .patch("ssh", &params, &Patch::Apply(&service))
        .await
        .unwrap();
    let again = services
        .patch("ssh", &params, &Patch::Apply(&service))
        .await
        .unwrap();
    let headless: Service = serde_json::from_value(json!({
        "metadata": { "name": "rendezvous" }, "spec": { "clusterIP": "None", "ports": [{ "port": 29500 }] },
    }))
    .unwrap();
    let headless = services
        .create(&PostParams::default(), &headless)
        .await
        .unwrap();

    let port = first.spec.as_ref().unwrap().ports.as_ref().unwrap()[0]
        .node_port
        .unwrap();
    assert!((30000..=32767).contains(&port));
    assert_eq!(
        again.spec.as_ref().unwrap().ports.as_ref().unwrap()[0].node_port,
        Some(port)
    );
    assert_eq!(first.resource_version(), again.resource_version());
    assert!(
        first
            .spec
            .unwrap()
            .cluster_ip
            .is_some_and(|ip| ip.starts_with("10.96."))
    );
    assert_eq!(headless.spec.unwrap().cluster_ip.as_deref(), Some("None"));
}

#[tokio::test]
async fn the_status_subresource_changes_the_status_and_metadata_but_not_the_spec() {
    let cluster = TestCluster::new(NS).await;
    let ns = cluster.namespace();
    let pods: Api<Pod> = Api::namespaced(cluster.client(), ns);
    pods.create(&PostParams::default(), &pod("p", json!({})))
        .await
        .unwrap();

    let patch =
        json!({ "metadata": { "labels": { "ignored": "yes" } }, "status": { "phase": "Running" } });
    let after = pods
        .patch_status("p", &PatchParams::default(), &Patch::Merge(patch))
        .await
        .unwrap();
    let main = json!({ "status": { "phase": "Failed" } });
    let still = pods
        .patch("p", &PatchParams::default(), &Patch::Merge(main))
        .await
        .unwrap();

    assert_eq!(after.status.unwrap().phase.as_deref(), Some("Running"));
    // A built-in kind's /status takes metadata changes as well (a custom resource's does not).
    assert_eq!(
        after
            .metadata
            .labels
            .unwrap_or_default()
            .get("ignored")
            .map(String::as_str),
        Some("yes")
    );
    assert_eq!(still.status.unwrap().phase.as_deref(), Some("Running"));
    assert_eq!(
        pods.get_status("p")
            .await
            .unwrap()
            .status
            .unwrap()
            .phase
            .as_deref(),
        Some("Running")
    );
}

#[tokio::test]
async fn volume_snapshots_are_served_as_a_custom_resource() {
    use kube::api::{ApiResource, DynamicObject, GroupVersionKind};
    let cluster = TestCluster::new(NS).await;
    let ns = cluster.namespace();
    let gvk = GroupVersionKind::gvk("snapshot.storage.k8s.io", "v1", "VolumeSnapshot");
    let ar = ApiResource::from_gvk_with_plural(&gvk, "volumesnapshots");
    let snapshots: Api<DynamicObject> = Api::namespaced_with(cluster.client(), ns, &ar);
    let snapshot: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "snapshot.storage.k8s.io/v1", "kind": "VolumeSnapshot",
        "metadata": { "name": "home-alice-1", "labels": { "gpudev.io/user": "alice" } },
        "spec": { "source": { "persistentVolumeClaimName": "home-alice" } },
    }))
    .unwrap();

    snapshots
        .create(&PostParams::default(), &snapshot)
        .await
        .unwrap();
    cluster.step().await;
    let listed = snapshots
        .list(&ListParams::default().labels("gpudev.io/user=alice"))
        .await
        .unwrap();

    assert_eq!(listed.items.len(), 1);
    assert_eq!(listed.items[0].data["status"]["readyToUse"], json!(true));
    snapshots
        .delete("home-alice-1", &DeleteParams::default())
        .await
        .unwrap();
    assert!(
        snapshots
            .list(&ListParams::default())
            .await
            .unwrap()
            .items
            .is_empty()
    );
}

#[tokio::test]
async fn generate_name_and_delete_collection_work() {
    let cluster = TestCluster::new(NS).await;
    let ns = cluster.namespace();
    let secrets: Api<Secret> = Api::namespaced(cluster.client(), ns);
    let template: Secret = serde_json::from_value(json!({
        "metadata": { "generateName": "tmp-", "labels": { "kind": "tmp" } },
    }))
    .unwrap();
    let a = secrets
        .create(&PostParams::default(), &template)
        .await
        .unwrap();
    let b = secrets
        .create(&PostParams::default(), &template)
        .await
        .unwrap();

    assert!(a.name_any().starts_with("tmp-"));
    assert_ne!(a.name_any(), b.name_any());
    secrets
        .delete_collection(
            &DeleteParams::default(),
            &ListParams::default().labels("kind=tmp"),
        )
        .await
        .unwrap();
    assert!(
        secrets
            .list(&ListParams::default())
            .await
            .unwrap()
            .items
            .is_empty()
    );
}

#[tokio::test]
async fn kube_runtime_recorder_events_are_stored_and_repeats_become_a_series() {
    use k8s_openapi::api::events::v1::Event as EventV1;
    use kube::Resource;
    use kube::runtime::events::{Event, EventType, Recorder};
    let cluster = TestCluster::new(NS).await;
    let ns = cluster.namespace();
    let pods: Api<Pod> = Api::namespaced(cluster.client(), ns);
    let p = pods
        .create(&PostParams::default(), &pod("p", json!({})))
        .await
        .unwrap();
    let recorder = Recorder::new(cluster.client(), "gpudev-processor".into());
    let event = Event {
        type_: EventType::Normal,
        reason: "Admitted".into(),
        note: Some("reservation admitted".into()),
        action: "Admit".into(),
        secondary: None,
    };

    recorder.publish(&event, &p.object_ref(&())).await.unwrap();
    recorder.publish(&event, &p.object_ref(&())).await.unwrap();

    let events: Api<EventV1> = Api::namespaced(cluster.client(), ns);
    let listed = events
        .list(&ListParams::default().fields("regarding.name=p"))
        .await
        .unwrap();
    // Only ours: a real scheduler reports on the pod too.
    let ours: Vec<&EventV1> = listed
        .items
        .iter()
        .filter(|e| e.reporting_controller.as_deref() == Some("gpudev-processor"))
        .collect();
    assert_eq!(ours.len(), 1);
    assert_eq!(ours[0].series.as_ref().map(|s| s.count), Some(2));
}

#[tokio::test]
async fn metadata_only_requests_get_partial_object_metadata() {
    let cluster = TestCluster::new(NS).await;
    let ns = cluster.namespace();
    let pods: Api<Pod> = Api::namespaced(cluster.client(), ns);
    pods.create(&PostParams::default(), &pod("p", json!({ "a": "1" })))
        .await
        .unwrap();

    let one = pods.get_metadata("p").await.unwrap();
    let all = pods.list_metadata(&ListParams::default()).await.unwrap();

    assert_eq!(one.labels().get("a").map(String::as_str), Some("1"));
    assert_eq!(
        one.types.as_ref().map(|t| t.kind.as_str()),
        Some("PartialObjectMetadata")
    );
    assert_eq!(all.items.len(), 1);
}

#[tokio::test]
async fn secret_string_data_is_stored_as_base64_data() {
    let cluster = TestCluster::new(NS).await;
    let ns = cluster.namespace();
    let secrets: Api<Secret> = Api::namespaced(cluster.client(), ns);
    let secret: Secret = serde_json::from_value(json!({
        "metadata": { "name": "env" }, "stringData": { "TOKEN": "s3cret" },
    }))
    .unwrap();

    let created = secrets
        .create(&PostParams::default(), &secret)
        .await
        .unwrap();

    assert_eq!(created.string_data, None);
    assert_eq!(created.data.unwrap()["TOKEN"].0, b"s3cret");
    assert_eq!(created.type_.as_deref(), Some("Opaque"));
}

#[tokio::test]
async fn reapplying_a_scheduled_running_pod_changes_nothing_but_changing_its_spec_is_422() {
    let cluster = TestCluster::new(NS).await;
    let ns = cluster.namespace();
    cluster.seed_nodes("h100", 1, 8).await;
    let pods: Api<Pod> = Api::namespaced(cluster.client(), ns);
    let params = PatchParams::apply("gpudev-processor").force();
    let desired = pod("dev", json!({ "gpudev.io/reservation-id": "r1" }));
    pods.patch("dev", &params, &Patch::Apply(&desired))
        .await
        .unwrap();
    cluster.step().await;
    let running = pods.get("dev").await.unwrap();

    let reapplied = pods
        .patch("dev", &params, &Patch::Apply(&desired))
        .await
        .unwrap();
    let mut changed = desired.clone();
    changed.spec.as_mut().unwrap().containers[0].command = Some(vec!["sleep".into()]);
    let refused = pods
        .patch("dev", &params, &Patch::Apply(&changed))
        .await
        .unwrap_err();

    assert_eq!(reapplied.resource_version(), running.resource_version());
    assert_eq!(api_error(refused), (422, "Invalid".to_owned()));
}
