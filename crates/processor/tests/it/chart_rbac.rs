//! The Helm chart's RBAC on a real API server: the processor (and a standby taking over from
//! it) and both CronJobs run a whole lifecycle with the tokens of the chart's own
//! ServiceAccounts. Nothing they ask is refused, and every right the chart grants is one they
//! used (the API server's audit log says which).

use std::collections::BTreeSet;
use std::time::Duration;

use gpudev_domain::ReservationStatus;
use gpudev_processor::Processor;
use gpudev_store::DbConfig;
use gpudev_testkit::control_plane::AuditedRequest;
use k8s_openapi::api::rbac::v1::{ClusterRole, PolicyRule, Role};
use kube::Api;

use crate::common::{Ask, env, until_status};

/// A right: API group, resource (with `/subresource`) and verb.
type Right = (String, String, String);

/// Granted rights the lifecycle below does not exercise, each with why it stays.
const KEPT_UNUSED: &[(&str, &str, &str, &str)] = &[
    (
        "processor",
        "secrets",
        "get",
        "a create that finds the Secret already made (by a predecessor killed mid-way) reads it back",
    ),
    (
        "expiry",
        "pods/exec",
        "create",
        "exec over WebSockets arrives as `get`; from Kubernetes 1.31 the API server also checks `create`",
    ),
];

#[tokio::test]
async fn the_charts_service_accounts_run_the_whole_lifecycle_with_no_right_refused_or_unused() {
    if gpudev_testkit::skip_on_fake("the fake has no RBAC") {
        return;
    }
    let env = env().await;
    let plane = env.cluster.control_plane().unwrap();
    let release = env.cluster.namespace_like("system").await;
    let accounts = plane.install_chart_rbac(&release, env.ns()).await;
    let as_processor = plane
        .client_with_token(env.ns(), &accounts.processor)
        .await
        .unwrap();
    let as_expiry = plane
        .client_with_token(env.ns(), &accounts.expiry)
        .await
        .unwrap();
    let as_availability = plane
        .client_with_token(env.ns(), &accounts.availability)
        .await
        .unwrap();
    env.cluster.seed_nodes("h100", 3, 8).await;
    let alice = env.user("alice").await;

    // The processor: a dev box with a disk and Jupyter, and a two-node gang, to active; the
    // gang cancelled and cleaned up.
    let p = Processor::build(env.config.clone(), as_processor)
        .await
        .unwrap();
    assert!(p.try_become_leader().await.unwrap());
    let view = p.start_cluster_view();
    view.wait_until_ready().await;
    let solo = env
        .submit(
            &alice,
            Ask {
                disk: Some("home"),
                jupyter: true,
                ..Ask::gpus("h100", 4)
            },
        )
        .await;
    let gang = env
        .submit(
            &alice,
            Ask {
                nodes: 2,
                ..Ask::gpus("h100", 16)
            },
        )
        .await;
    let unpullable = env
        .submit(
            &alice,
            Ask {
                image: "unpullable.invalid/gpudev/missing:1",
                ..Ask::gpus("h100", 1)
            },
        )
        .await;
    p.process_once().await.unwrap();
    until_status(&env, &p, solo, ReservationStatus::Active).await;
    until_status(&env, &p, gang, ReservationStatus::Active).await;
    until_status(&env, &p, unpullable, ReservationStatus::Failed).await;
    assert!(env.get(solo).await.ssh_command.is_some());
    let detail = env.get(unpullable).await.detailed_status.unwrap();
    assert!(detail.contains("Failed to pull image"), "{detail}");
    env.assert_gone(unpullable).await;
    for (action, enabled) in [("disable_jupyter", false), ("enable_jupyter", true)] {
        crate::lifecycle::announce(
            &env,
            solo,
            action,
            serde_json::json!({ "jupyter_enabled": enabled }),
        )
        .await;
        // The hint, and any message the watchers queued meanwhile (under load, a failed pod's
        // own message may still be waiting).
        let archived = p.process_once().await.unwrap().archived;
        assert!(archived >= 1, "the {action} hint was not handled");
        assert_eq!(env.get(solo).await.jupyter_url.is_some(), enabled);
    }
    env.cancel(gang).await;
    p.process_once().await.unwrap();
    env.assert_gone(gang).await;

    // Failover: a standby with the same token takes over once the leader's database session
    // dies, and starts the next dev box.
    let standby = Processor::build(
        env.config.clone(),
        plane
            .client_with_token(env.ns(), &accounts.processor)
            .await
            .unwrap(),
    )
    .await
    .unwrap();
    assert!(!standby.try_become_leader().await.unwrap());
    let pid = p.leader_backend_pid().unwrap();
    env.db
        .connect()
        .await
        .execute("SELECT pg_terminate_backend($1)", &[&pid])
        .await
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !standby.try_become_leader().await.unwrap() {
        assert!(std::time::Instant::now() < deadline, "no takeover");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let next = env.submit(&alice, Ask::gpus("h100", 4)).await;
    standby.process_once().await.unwrap();
    until_status(&env, &standby, next, ReservationStatus::Active).await;

    // Availability, from the real nodes and pods.
    let db_url = env.db.url();
    let pool = gpudev_store::connect_pool(&DbConfig::from_url(&db_url).unwrap())
        .await
        .unwrap();
    let label = env.cluster.gpu_type_label().to_owned();
    let avail_config = gpudev_availability::Config::from_lookup(|k| match k {
        "DATABASE_URL" => Some(db_url.clone()),
        "GPU_TYPE_LABEL" => Some(label.clone()),
        _ => None,
    })
    .unwrap();
    let figures = gpudev_availability::run_once(&pool, &as_availability, &avail_config)
        .await
        .unwrap();
    assert_eq!(figures.nodes, 3);
    let h100 = &figures.types["h100"];
    assert_eq!(h100.total_gpus, 24, "{h100:?}");
    assert_eq!(h100.available_gpus, 16, "{h100:?}");

    // Expiry: warnings (delivered by exec), then the end: the pod goes, the disk is
    // snapshotted, and the snapshot is recorded ready once the cluster says so.
    let ns = env.ns().to_owned();
    let expiry_config = gpudev_expiry::Config::from_lookup(|k| match k {
        "DATABASE_URL" => Some(db_url.clone()),
        "GPU_DEV_NAMESPACE" => Some(ns.clone()),
        "SNAPSHOT_CLASS" => Some("csi-snapshots".to_owned()),
        "EXEC_TIMEOUT_SECONDS" => Some("2".to_owned()),
        _ => None,
    })
    .unwrap();
    let notifier = gpudev_expiry::ExecNotifier::new(as_expiry.clone(), Duration::from_secs(2));
    let expiry = gpudev_expiry::Expiry::new(pool, as_expiry, expiry_config, notifier).unwrap();
    let db = env.db.connect().await;
    let set_end = |minutes: f64| {
        let db = &db;
        async move {
            db.execute(
                "UPDATE reservations SET expires_at = now() + make_interval(secs => $2::float8 * 60) \
                 WHERE reservation_id = $1",
                &[&solo, &minutes],
            )
            .await
            .unwrap();
        }
    };
    set_end(10.0).await;
    let warned = expiry.run_once().await.unwrap();
    assert_eq!(warned.summary.warnings, 1, "{:?}", warned.summary);
    // No kubelet runs on a kwok node: the exec is authorized, then fails to connect.
    assert_eq!(warned.summary.notice_failures, 1, "{:?}", warned.summary);
    set_end(-5.0).await;
    let ended = expiry.run_once().await.unwrap();
    assert_eq!(ended.summary.expired, 1, "{:?}", ended.summary);
    assert_eq!(ended.summary.snapshots_created, 1, "{:?}", ended.summary);
    assert!(ended.summary.errors.is_empty(), "{:?}", ended.summary);
    env.assert_gone(solo).await;
    env.cluster.step().await;
    let settled = expiry.run_once().await.unwrap();
    assert_eq!(settled.summary.snapshots_ready, 1, "{:?}", settled.summary);
    assert!(settled.summary.errors.is_empty(), "{:?}", settled.summary);

    // Expiry again: objects labelled for a reservation that does not exist are removed, and
    // the disk, deleted by its owner and past its date, loses its claim and its snapshot.
    let stray = gpudev_cluster::labels::reservation_labels(
        uuid::Uuid::new_v4(),
        &gpudev_domain::Username::parse("alice").unwrap(),
    );
    let orphan = serde_json::json!({ "metadata": { "name": "stray", "labels": stray } });
    let admin = env.cluster.client();
    let mut service = orphan.clone();
    service["spec"] = serde_json::json!({ "ports": [{ "port": 22 }] });
    Api::<k8s_openapi::api::core::v1::Service>::namespaced(admin.clone(), env.ns())
        .create(
            &Default::default(),
            &serde_json::from_value(service).unwrap(),
        )
        .await
        .unwrap();
    Api::<k8s_openapi::api::core::v1::Secret>::namespaced(admin, env.ns())
        .create(
            &Default::default(),
            &serde_json::from_value(orphan).unwrap(),
        )
        .await
        .unwrap();
    gpudev_store::disks::soft_delete(
        &db,
        alice.id,
        "home",
        chrono::Duration::days(30),
        uuid::Uuid::new_v4(),
    )
    .await
    .unwrap();
    db.execute(
        "UPDATE disks SET delete_after = now() - interval '1 minute' WHERE user_id = $1",
        &[&alice.id],
    )
    .await
    .unwrap();
    let swept = expiry.run_once().await.unwrap();
    assert_eq!(
        swept.summary.orphan_services_deleted, 1,
        "{:?}",
        swept.summary
    );
    assert_eq!(
        swept.summary.orphan_secrets_deleted, 1,
        "{:?}",
        swept.summary
    );
    assert_eq!(swept.summary.disks_purged, 1, "{:?}", swept.summary);
    assert!(swept.summary.errors.is_empty(), "{:?}", swept.summary);
    // The claim goes once the PVC protection controller sees no Pod using it.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while !env.objects("persistentvolumeclaims").await.is_empty() {
        assert!(
            std::time::Instant::now() < deadline,
            "the claim is still there"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // What the API server saw.
    let requests = plane.audited_requests(&release);
    let refused: Vec<&AuditedRequest> = requests.iter().filter(|r| r.code == 403).collect();
    assert!(refused.is_empty(), "refused: {refused:#?}");
    for component in ["processor", "expiry", "availability"] {
        let user = format!(
            "system:serviceaccount:{release}:{}",
            account(&requests, component)
        );
        let used: BTreeSet<Right> = requests
            .iter()
            .filter(|r| r.user == user)
            .map(|r| (r.group.clone(), r.resource.clone(), r.verb.clone()))
            .collect();
        let granted = granted(&env.cluster.client(), &release, env.ns(), component).await;
        let unused: Vec<&Right> = granted
            .iter()
            .filter(|(_, resource, verb)| {
                !used.iter().any(|(_, r, v)| r == resource && v == verb)
                    && !KEPT_UNUSED
                        .iter()
                        .any(|(c, r, v, _)| *c == component && r == resource && v == verb)
            })
            .collect();
        assert!(
            unused.is_empty(),
            "{component} is granted rights it never used: {unused:?}\nit used: {used:?}"
        );
    }
}

/// The name of a component's ServiceAccount as the audit log shows it.
fn account(requests: &[AuditedRequest], component: &str) -> String {
    requests
        .iter()
        .filter_map(|r| r.user.rsplit(':').next())
        .find(|name| name.ends_with(&format!("-{component}")))
        .unwrap_or_else(|| panic!("{component} made no request"))
        .to_owned()
}

/// Every right the chart's Roles and ClusterRoles give `component`.
async fn granted(
    admin: &kube::Client,
    release: &str,
    user_namespace: &str,
    component: &str,
) -> BTreeSet<Right> {
    let mut rules: Vec<PolicyRule> = Vec::new();
    let roles: Api<Role> = Api::namespaced(admin.clone(), user_namespace);
    for role in roles.list(&Default::default()).await.unwrap().items {
        if role
            .metadata
            .name
            .as_deref()
            .unwrap_or("")
            .ends_with(&format!("-{component}"))
        {
            rules.extend(role.rules.unwrap_or_default());
        }
    }
    let cluster_roles: Api<ClusterRole> = Api::all(admin.clone());
    for role in cluster_roles.list(&Default::default()).await.unwrap().items {
        if role.metadata.name.as_deref().is_some_and(|n| {
            n.starts_with(&format!("{release}-")) && n.ends_with(&format!("-{component}-cluster"))
        }) {
            rules.extend(role.rules.unwrap_or_default());
        }
    }
    let mut rights = BTreeSet::new();
    for rule in rules {
        for group in rule.api_groups.unwrap_or_default() {
            for resource in rule.resources.clone().unwrap_or_default() {
                for verb in &rule.verbs {
                    rights.insert((group.clone(), resource.clone(), verb.clone()));
                }
            }
        }
    }
    rights
}
