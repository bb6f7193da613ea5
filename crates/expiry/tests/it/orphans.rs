//! Objects left behind by reservations that ended.

use gpudev_cluster::labels;
use gpudev_domain::{ReservationStatus, Username};
use k8s_openapi::api::core::v1::{Pod, Secret, Service};
use kube::Api;
use kube::api::ListParams;
use uuid::Uuid;

use crate::common::{Made, env, fake_env};

/// The reservation each selected object belongs to.
async fn owners<K>(api: &Api<K>, selector: &ListParams) -> Vec<Option<Uuid>>
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    api.list(selector)
        .await
        .unwrap()
        .items
        .iter()
        .map(gpudev_cluster::ops::reservation_of)
        .collect()
}

#[tokio::test]
async fn nothing_labelled_by_us_survives_without_a_live_reservation() {
    let env = env().await;
    let live = env.reservation("alice", ReservationStatus::Active).await;
    env.ends_in(&live, 120.0).await;
    let live_pod = env.devbox(&live).await;
    let ended = env.reservation("bob", ReservationStatus::Cancelled).await;
    let ended_pod = env.devbox(&ended).await;
    // A Service the ended reservation's Pod never adopted: deleting the Pod does not take it.
    let labels_of_ended = labels::reservation_labels(ended.id, &ended.user);
    env.create_service("stray-ssh", &labels_of_ended, None)
        .await;
    // Objects of a reservation the database never heard of.
    let ghost = Made {
        id: Uuid::new_v4(),
        user: Username::parse("ghost").unwrap(),
        user_id: 0,
    };
    let ghost_pod = env.devbox(&ghost).await;
    // Someone else's objects, and a disk claim of ours: not ours to clean.
    let foreign = std::collections::BTreeMap::from([("app".to_owned(), "web".to_owned())]);
    env.create_secret("web-credentials", &foreign, None).await;
    let claim_owner = env.reservation("carol", ReservationStatus::Cancelled).await;
    let claim_disk = env.disk(&claim_owner, "home").await;

    let report = env.run().await;

    assert_eq!(
        report.summary.orphan_pods_deleted, 2,
        "{:?}",
        report.summary
    );
    if env.cluster.is_real() {
        // The garbage collector may not have taken the ended pods' Services yet, in which case
        // the job deletes them itself.
        assert!(
            (1..=3).contains(&report.summary.orphan_services_deleted),
            "{:?}",
            report.summary
        );
    } else {
        assert_eq!(
            report.summary.orphan_services_deleted, 1,
            "the stray one; the rest went with their pods"
        );
    }
    let selector = ListParams::default().labels(&labels::managed_selector());
    let pods: Api<Pod> = Api::namespaced(env.cluster.client(), env.ns());
    let services: Api<Service> = Api::namespaced(env.cluster.client(), env.ns());
    let secrets: Api<Secret> = Api::namespaced(env.cluster.client(), env.ns());
    // On a real cluster, deleted pods terminate and the garbage collector follows: wait.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let survivors = [
            owners(&pods, &selector).await,
            owners(&services, &selector).await,
            owners(&secrets, &selector).await,
        ];
        let settled = survivors.iter().all(|s| s == &[Some(live.id)]);
        if settled || !env.cluster.is_real() || std::time::Instant::now() >= deadline {
            for survivors in survivors {
                assert_eq!(
                    survivors,
                    [Some(live.id)],
                    "only the live reservation's objects remain"
                );
            }
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(env.exists("pods", &live_pod).await);
    assert!(env.gone("pods", &ended_pod).await);
    assert!(env.gone("pods", &ghost_pod).await);
    assert!(env.gone("services", "stray-ssh").await);
    assert!(env.exists("secrets", "web-credentials").await);
    let claim = env.claim_of(claim_disk).await;
    assert!(
        env.exists("persistentvolumeclaims", &claim).await,
        "disks outlive reservations"
    );
}

#[tokio::test]
async fn an_orphan_that_cannot_be_deleted_is_reported_and_the_rest_are_still_removed() {
    let Some(env) = fake_env("injects Kubernetes faults").await else {
        return;
    };
    let first = env.reservation("dora", ReservationStatus::Cancelled).await;
    let second = env.reservation("eve", ReservationStatus::Cancelled).await;
    let stuck = env.devbox(&first).await;
    let other = env.devbox(&second).await;
    env.fake().inject(
        gpudev_testkit::kube::Fault::new(gpudev_testkit::kube::FaultKind::Status500)
            .verb(gpudev_testkit::kube::Verb::Delete)
            .resource("pods")
            .name(stuck.clone()),
    );

    let report = env.run().await;

    assert!(!report.succeeded());
    assert!(
        report.summary.errors[0].contains("orphaned pod"),
        "{:?}",
        report.summary.errors
    );
    assert!(env.exists("pods", &stuck).await);
    assert!(
        env.gone("pods", &other).await,
        "the next orphan was still removed"
    );

    let next = env.run().await;

    assert!(next.succeeded(), "{:?}", next.summary.errors);
    assert!(env.gone("pods", &stuck).await);
}
