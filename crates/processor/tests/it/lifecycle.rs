//! A reservation's life through the processor: queued → preparing → active, and the objects it
//! gets on the way.

use std::time::Duration;

use gpudev_domain::ReservationStatus;

use crate::common::{Ask, env, until_status, wait_status};

#[tokio::test]
async fn a_submitted_reservation_becomes_active_with_an_ssh_command() {
    let env = env().await;
    let nodes = env.cluster.seed_nodes("h100", 1, 8).await;
    let alice = env.user("slow-alice").await;
    let id = env.submit(&alice, Ask::gpus("h100", 4)).await;
    let p = env.leader().await;

    let outcome = p.process_once().await.unwrap();
    assert_eq!(outcome.received, 1);
    assert_eq!(outcome.archived, 1);
    assert_eq!(outcome.pass.as_ref().unwrap().admitted, vec![id]);
    let r = env.get(id).await;
    assert_eq!(r.status, ReservationStatus::Preparing);
    assert_eq!(r.node_names, nodes);
    assert_eq!(r.namespace.as_deref(), Some(env.ns()));
    assert!(r.admitted_at.is_some());
    assert_eq!(env.queued_messages().await, 0, "the hint was archived");
    // Secret, Pod and SSH Service exist, pinned to the admitted node.
    assert_eq!(env.objects_of(id).await, 3);
    let pod = &env.objects("pods").await[0];
    let pinned = &pod["spec"]["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
        ["nodeSelectorTerms"][0]["matchExpressions"][0];
    assert_eq!(pinned["key"], "kubernetes.io/hostname");
    assert_eq!(pinned["values"][0], nodes[0].as_str());
    // The Secret and the Service are owned by the Pod.
    let uid = pod["metadata"]["uid"].as_str().unwrap();
    for kind in ["secrets", "services"] {
        let object = &env.objects(kind).await[0];
        assert_eq!(
            object["metadata"]["ownerReferences"][0]["uid"], uid,
            "{kind}"
        );
    }

    env.cluster.step().await;
    let report = p.reconcile().await.unwrap();
    assert_eq!(report.activated, vec![id]);
    let r = env.get(id).await;
    assert_eq!(r.status, ReservationStatus::Active);
    let port = r.node_port.unwrap();
    assert!((30000..=32767).contains(&port), "{port}");
    let ip = r.node_ip.clone().unwrap();
    let node: k8s_openapi::api::core::v1::Node = kube::Api::all(env.cluster.client())
        .get(&nodes[0])
        .await
        .unwrap();
    let internal = node.status.unwrap().addresses.unwrap();
    assert!(
        internal
            .iter()
            .any(|a| a.type_ == "InternalIP" && a.address == ip),
        "{ip} is the node's InternalIP: {internal:?}"
    );
    assert_eq!(
        r.ssh_command.as_deref(),
        Some(format!("ssh -p {port} dev@{ip}").as_str())
    );
    let launched = r.launched_at.unwrap();
    assert_eq!(
        (r.expires_at.unwrap() - launched).num_seconds(),
        2 * 3600,
        "expires_at = launched_at + duration"
    );
    assert_eq!(r.detailed_status.as_deref(), Some("ready"));
    let metrics = p.metrics().render();
    assert!(
        metrics.contains("gpudev_processor_admissions_total{gpu_type=\"h100\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("gpudev_processor_queued_to_active_seconds_count{gpu_type=\"h100\"} 1")
    );
    assert!(
        metrics
            .contains("gpudev_processor_messages_total{action=\"create\",outcome=\"archived\"} 1")
    );
}

#[tokio::test]
async fn the_running_processor_takes_a_reservation_to_active_through_its_pod_watcher() {
    let mut env = env().await;
    env.config.scheduler_interval = Duration::from_secs(3600);
    env.cluster.seed_nodes("t4", 2, 4).await;
    let _sim = env.cluster.start_background(Duration::from_millis(50));
    let alice = env.user("alice").await;
    let p = env.processor().await;
    let running = crate::common::run(&p);
    let id = env.submit(&alice, Ask::gpus("t4", 2)).await;
    // Only the message and the watcher can make this quick: the periodic pass is an hour away.
    wait_status(&env, id, ReservationStatus::Active, Duration::from_secs(10)).await;
    assert!(env.get(id).await.ssh_command.is_some());
    assert!(p.is_leader());
    running.stop().await;
    assert!(!p.is_leader(), "shutdown releases the leader lock");
}

#[tokio::test]
async fn a_slow_users_dev_box_is_still_preparing_a_second_after_its_pass() {
    // What the tests that look at a preparing dev box rely on: on the real control plane a
    // `slow-` user's Pod runs 3 s after it is bound, not 200 ms (on the fake, at the next step).
    let env = env().await;
    env.cluster.seed_nodes("h100", 1, 8).await;
    let alice = env.user("slow-alice").await;
    let id = env.submit(&alice, Ask::gpus("h100", 1)).await;
    let p = env.leader().await;
    p.process_once().await.unwrap();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let report = p.reconcile().await.unwrap();
    assert!(report.activated.is_empty(), "{report:?}");
    assert_eq!(env.status(id).await, ReservationStatus::Preparing);
    until_status(&env, &p, id, ReservationStatus::Active).await;
}

#[tokio::test]
async fn a_multinode_reservation_gets_whole_nodes_a_headless_service_and_activates_when_all_pods_are_ready()
 {
    let env = env().await;
    env.cluster.seed_nodes("h100", 3, 8).await;
    let alice = env.user("slow-alice").await;
    let id = env
        .submit(
            &alice,
            Ask {
                nodes: 2,
                ..Ask::gpus("h100", 16)
            },
        )
        .await;
    let p = env.leader().await;
    p.process_once().await.unwrap();
    let r = env.get(id).await;
    assert_eq!(r.status, ReservationStatus::Preparing);
    assert_eq!(r.node_names.len(), 2);
    // Two pods, two secrets, two SSH services and one headless service owned by both pods.
    assert_eq!(env.objects("pods").await.len(), 2);
    assert_eq!(env.objects("services").await.len(), 3);
    let headless = env
        .objects("services")
        .await
        .into_iter()
        .find(|s| s["metadata"]["name"].as_str().unwrap().ends_with("-nodes"))
        .unwrap();
    assert_eq!(
        headless["metadata"]["ownerReferences"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
    until_status(&env, &p, id, ReservationStatus::Active).await;
    let r = env.get(id).await;
    assert!(r.ssh_command.is_some());
}

#[tokio::test]
async fn a_reservation_with_a_disk_gets_its_claim_and_gives_the_disk_back_when_cancelled() {
    let mut env = env().await;
    env.config.storage_class = Some("gp3".into());
    env.cluster.seed_nodes("l4", 1, 4).await;
    let alice = env.user("alice").await;
    let id = env
        .submit(
            &alice,
            Ask {
                disk: Some("home"),
                ..Ask::gpus("l4", 1)
            },
        )
        .await;
    let p = env.leader().await;
    p.process_once().await.unwrap();
    let claims = env.objects("persistentvolumeclaims").await;
    assert_eq!(claims.len(), 1);
    assert_eq!(claims[0]["spec"]["storageClassName"], "gp3");
    let claim_name = claims[0]["metadata"]["name"].as_str().unwrap().to_owned();
    let pod = &env.objects("pods").await[0];
    let volumes = pod["spec"]["volumes"].as_array().unwrap();
    assert!(
        volumes
            .iter()
            .any(|v| v["persistentVolumeClaim"]["claimName"] == claim_name.as_str())
    );
    let db = env.db.connect().await;
    let disk = gpudev_store::disks::get(&db, alice.id, "home")
        .await
        .unwrap();
    assert_eq!(disk.reservation_id, Some(id));
    assert_eq!(disk.status, "in_use");

    env.cancel(id).await;
    p.process_once().await.unwrap();
    env.assert_gone(id).await;
    let disk = gpudev_store::disks::get(&db, alice.id, "home")
        .await
        .unwrap();
    assert_eq!(
        disk.reservation_id, None,
        "the disk is free for the next reservation"
    );
    assert_eq!(
        env.objects("persistentvolumeclaims").await.len(),
        1,
        "the disk outlives it"
    );
}

fn one_l4_with_disk(disk: &'static str) -> Ask {
    Ask {
        disk: Some(disk),
        ..Ask::gpus("l4", 1)
    }
}

#[tokio::test]
async fn a_renamed_disk_keeps_its_claim_and_its_old_name_can_be_used_for_a_new_disk() {
    let env = env().await;
    env.cluster.seed_nodes("l4", 1, 4).await;
    let alice = env.user("alice").await;
    let p = env.leader().await;
    let first = env.submit(&alice, one_l4_with_disk("home")).await;
    p.process_once().await.unwrap();
    let claim = env.objects("persistentvolumeclaims").await[0]["metadata"]["name"]
        .as_str()
        .unwrap()
        .to_owned();
    env.cancel(first).await;
    p.process_once().await.unwrap();

    let db = env.db.connect().await;
    let renamed = gpudev_store::disks::rename(&db, alice.id, "home", "work")
        .await
        .unwrap();
    assert!(matches!(renamed, gpudev_store::disks::Renamed::Done(_)));
    let second = env.submit(&alice, one_l4_with_disk("work")).await;
    p.process_once().await.unwrap();
    let claims = env.objects("persistentvolumeclaims").await;
    assert_eq!(claims.len(), 1, "no new, empty claim for the renamed disk");
    let pod = env
        .objects("pods")
        .await
        .into_iter()
        .find(|pod| pod["metadata"]["labels"]["gpudev.io/reservation-id"] == second.to_string())
        .expect("the second reservation's pod");
    let mounted: Vec<&str> = pod["spec"]["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|v| v["persistentVolumeClaim"]["claimName"].as_str())
        .collect();
    assert_eq!(
        mounted,
        [claim.as_str()],
        "the same volume, under its new name"
    );
    env.cancel(second).await;
    p.process_once().await.unwrap();

    // The old name is free: a reservation asking for "home" gets a new disk of its own.
    let third = env.submit(&alice, one_l4_with_disk("home")).await;
    p.process_once().await.unwrap();
    let home = gpudev_store::disks::get(&db, alice.id, "home")
        .await
        .unwrap();
    assert_eq!(home.reservation_id, Some(third));
    assert_ne!(home.kube_name, claim);
    let names: Vec<String> = env
        .objects("persistentvolumeclaims")
        .await
        .iter()
        .map(|c| c["metadata"]["name"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(names.len(), 2);
    assert!(names.contains(&home.kube_name) && names.contains(&claim));
}

#[tokio::test]
async fn secrets_carry_keys_and_env_values_that_the_pod_only_references() {
    let env = env().await;
    env.cluster.seed_nodes("t4", 1, 4).await;
    let alice = env.user("slow-alice").await;
    let mut ask = Ask::gpus("t4", 1);
    ask.env.insert("HF_TOKEN".into(), "hf_very-s3cret".into());
    let id = env.submit(&alice, ask).await;
    let p = env.leader().await;
    p.process_once().await.unwrap();
    let secret = &env.objects("secrets").await[0];
    assert!(secret["data"]["authorized_keys"].is_string());
    assert!(secret["data"]["env.HF_TOKEN"].is_string());
    let pod = serde_json::to_string(&env.objects("pods").await[0]).unwrap();
    assert!(!pod.contains("hf_very-s3cret"));
    assert!(!pod.contains("AAAAC3NzaC1lZDI1NTE5"));
    assert_eq!(env.status(id).await, ReservationStatus::Preparing);
}

/// A stand-in for `https://github.com/<login>.keys`: answers every request with `body`.
async fn github_keys(body: &'static str) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        loop {
            let Ok((mut stream, _)) = listener.accept().await else {
                return;
            };
            let mut buf = [0u8; 4096];
            let _ = stream.read(&mut buf).await;
            let response = format!(
                "HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = stream.write_all(response.as_bytes()).await;
        }
    });
    format!("http://{addr}")
}

const BOB_KEY: &str =
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGRlZmdoaWprbG1ub3BxcnN0dXZ3eHl6e3x9fn+AgYKD bob@github";

pub(crate) async fn announce(
    env: &crate::common::Env,
    id: uuid::Uuid,
    action: &str,
    details: serde_json::Value,
) {
    use gpudev_store::QueueMessage;
    use gpudev_store::reservations::{self, Change};
    let mut db = env.db.connect().await;
    let tx = db.transaction().await.unwrap();
    let now = match action {
        "add_user" => reservations::add_secondary_user(
            &tx,
            id,
            &gpudev_domain::GithubUser::parse("bob").unwrap(),
            "alice",
        )
        .await
        .unwrap(),
        _ => reservations::set_jupyter(&tx, id, action == "enable_jupyter", "alice")
            .await
            .unwrap(),
    };
    let Change::Applied(now) = now else {
        panic!("refused");
    };
    let message = match action {
        "add_user" => QueueMessage::AddUser,
        "enable_jupyter" => QueueMessage::EnableJupyter,
        _ => QueueMessage::DisableJupyter,
    };
    reservations::send_hint(&tx, &env.queue(), &now, message, details)
        .await
        .unwrap();
    tx.commit().await.unwrap();
}

async fn secret_value(env: &crate::common::Env, key: &str) -> Option<String> {
    use base64::Engine as _;
    let secret = &env.objects("secrets").await[0];
    secret["data"][key].as_str().map(|v| {
        String::from_utf8(base64::engine::general_purpose::STANDARD.decode(v).unwrap()).unwrap()
    })
}

#[tokio::test]
async fn an_added_github_user_gets_into_a_running_dev_box() {
    let mut env = env().await;
    env.config.github_keys_url = Some(github_keys(BOB_KEY).await);
    env.cluster.seed_nodes("t4", 1, 4).await;
    let alice = env.user("alice").await;
    let id = env.submit(&alice, Ask::gpus("t4", 1)).await;
    let p = env.leader().await;
    p.process_once().await.unwrap();
    until_status(&env, &p, id, ReservationStatus::Active).await;
    assert!(
        !secret_value(&env, "authorized_keys")
            .await
            .unwrap()
            .contains("bob@github")
    );

    announce(
        &env,
        id,
        "add_user",
        serde_json::json!({"github_username": "bob"}),
    )
    .await;
    let outcome = p.process_once().await.unwrap();
    assert_eq!(outcome.archived, 1);
    let keys = secret_value(&env, "authorized_keys").await.unwrap();
    assert!(keys.contains("bob@github"), "{keys}");
    assert!(
        keys.contains("test@gpudev"),
        "the owner keeps access: {keys}"
    );
}

#[tokio::test]
async fn a_user_and_jupyter_added_while_preparing_are_in_the_dev_box_before_it_is_active() {
    let mut env = env().await;
    env.config.github_keys_url = Some(github_keys(BOB_KEY).await);
    env.cluster.seed_nodes("t4", 1, 4).await;
    let alice = env.user("slow-alice").await;
    let id = env.submit(&alice, Ask::gpus("t4", 1)).await;
    let p = env.leader().await;
    p.process_once().await.unwrap();
    assert_eq!(env.status(id).await, ReservationStatus::Preparing);
    assert_eq!(secret_value(&env, "jupyter").await.as_deref(), Some(""));

    announce(
        &env,
        id,
        "add_user",
        serde_json::json!({"github_username": "bob"}),
    )
    .await;
    announce(
        &env,
        id,
        "enable_jupyter",
        serde_json::json!({"jupyter_enabled": true}),
    )
    .await;
    p.process_once().await.unwrap();

    let keys = secret_value(&env, "authorized_keys").await.unwrap();
    assert!(keys.contains("bob@github"), "{keys}");
    let token = secret_value(&env, "jupyter").await.unwrap();
    assert!(!token.is_empty(), "the switch is on before the box is up");
    until_status(&env, &p, id, ReservationStatus::Active).await;
    let url = env.get(id).await.jupyter_url.expect("a URL once active");
    assert!(url.ends_with(&format!("/lab?token={token}")), "{url}");
}

#[tokio::test]
async fn jupyter_can_be_closed_and_reopened_on_a_dev_box_started_with_it() {
    let env = env().await;
    env.cluster.seed_nodes("t4", 1, 4).await;
    let alice = env.user("alice").await;
    let id = env
        .submit(
            &alice,
            Ask {
                jupyter: true,
                ..Ask::gpus("t4", 1)
            },
        )
        .await;
    let p = env.leader().await;
    p.process_once().await.unwrap();
    until_status(&env, &p, id, ReservationStatus::Active).await;
    let r = env.get(id).await;
    let token = r.jupyter_token.clone().unwrap();
    let url = r.jupyter_url.unwrap();
    assert!(
        url.contains(&r.node_ip.unwrap()) && url.contains(&token),
        "{url}"
    );
    assert_eq!(
        secret_value(&env, "jupyter-token").await.as_deref(),
        Some(token.as_str())
    );
    async fn has_port(env: &crate::common::Env) -> bool {
        env.objects("services").await[0]["spec"]["ports"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["name"] == "jupyter")
    }
    assert!(has_port(&env).await);

    announce(
        &env,
        id,
        "disable_jupyter",
        serde_json::json!({"jupyter_enabled": false}),
    )
    .await;
    assert_eq!(p.process_once().await.unwrap().archived, 1);
    assert!(!has_port(&env).await);
    assert_eq!(env.get(id).await.jupyter_url, None);
    assert!(
        secret_value(&env, "jupyter-token").await.is_some(),
        "kept for container restarts"
    );

    announce(
        &env,
        id,
        "enable_jupyter",
        serde_json::json!({"jupyter_enabled": true}),
    )
    .await;
    assert_eq!(p.process_once().await.unwrap().archived, 1);
    assert!(has_port(&env).await);
    // The port was released and allocated again, so it may differ (as on Kubernetes); the
    // token and the host stay, and the URL names the Service's new port.
    let reopened = env.get(id).await.jupyter_url.unwrap();
    let jupyter_port = env.objects("services").await[0]["spec"]["ports"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "jupyter")
        .unwrap()["nodePort"]
        .as_u64()
        .unwrap();
    let host = url.split(':').take(2).collect::<Vec<_>>().join(":");
    assert_eq!(
        reopened,
        format!("{host}:{jupyter_port}/lab?token={token}"),
        "reopened at {reopened}, first at {url}"
    );
}

#[tokio::test]
async fn jupyter_switched_on_and_off_on_a_dev_box_started_without_it() {
    let env = env().await;
    env.cluster.seed_nodes("t4", 1, 4).await;
    let alice = env.user("alice").await;
    let id = env.submit(&alice, Ask::gpus("t4", 1)).await;
    let p = env.leader().await;
    p.process_once().await.unwrap();
    until_status(&env, &p, id, ReservationStatus::Active).await;
    assert_eq!(
        secret_value(&env, "jupyter").await.as_deref(),
        Some(""),
        "started with the switch off"
    );
    announce(
        &env,
        id,
        "enable_jupyter",
        serde_json::json!({"jupyter_enabled": true}),
    )
    .await;
    assert_eq!(p.process_once().await.unwrap().archived, 1);
    let r = env.get(id).await;
    assert!(r.jupyter_enabled);
    // The box follows its Secret's switch: the token is in it, the port is open and the URL
    // is shown; the entrypoint starts the server (see the cluster crate's sandbox test).
    let token = secret_value(&env, "jupyter").await.unwrap();
    assert!(token.len() >= 16, "{token:?}");
    let url = r.jupyter_url.expect("the URL of the running box");
    assert!(url.ends_with(&format!("/lab?token={token}")), "{url}");
    let db = env.db.connect().await;
    let events = gpudev_store::reservations::events(&db, id).await.unwrap();
    assert!(
        events.iter().any(|e| e
            .reason
            .as_deref()
            .is_some_and(|r| r.starts_with("Jupyter is starting"))),
        "{events:?}"
    );

    announce(
        &env,
        id,
        "disable_jupyter",
        serde_json::json!({"jupyter_enabled": false}),
    )
    .await;
    assert_eq!(p.process_once().await.unwrap().archived, 1);
    assert_eq!(secret_value(&env, "jupyter").await.as_deref(), Some(""));
    assert_eq!(env.get(id).await.jupyter_url, None);
}
