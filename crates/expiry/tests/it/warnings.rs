//! Warnings before the end.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use crate::common::{Recorder, env, env_with};

fn warning_levels(events: &[gpudev_store::reservations::Event]) -> Vec<String> {
    events
        .iter()
        .filter(|e| e.kind == "warning")
        .map(|e| e.details["level"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn a_reservation_entering_its_last_30_minutes_is_warned_once_in_its_pod_and_its_history() {
    let env = env().await;
    let made = env.active_ending_in("alice", 25.0).await;
    let pod = env.devbox(&made).await;

    let first = env.run().await;
    let second = env.run().await;

    assert_eq!(first.summary.warnings, 1);
    assert_eq!(second.summary.warnings, 0, "the level was sent already");
    let events = env.events(&made).await;
    assert_eq!(warning_levels(&events), ["30m"]);
    let warning = events.iter().find(|e| e.kind == "warning").unwrap();
    assert_eq!(warning.reason.as_deref(), Some("expires in 25 minutes"));
    assert_eq!(warning.actor, "expiry");
    assert_eq!(warning.details["delivery"]["pods_notified"], 1);
    let notices = env.recorder.notices();
    assert_eq!(notices.len(), 1);
    assert_eq!(notices[0].0, pod);
    assert_eq!(notices[0].1.level, "30m");
    assert_eq!(notices[0].1.minutes_left, 25);
    let sent: Vec<String> = env
        .client
        .query_one(
            "SELECT warnings_sent FROM reservations WHERE reservation_id = $1",
            &[&made.id],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(sent, ["30m"]);
}

#[tokio::test]
async fn a_reservation_first_seen_with_four_minutes_left_gets_only_the_five_minute_warning() {
    let env = env().await;
    let made = env.active_ending_in("bob", 4.0).await;
    env.devbox(&made).await;

    env.run().await;
    env.run().await;

    assert_eq!(warning_levels(&env.events(&made).await), ["5m"]);
    assert_eq!(env.recorder.notices().len(), 1);
}

#[tokio::test]
async fn reservations_further_away_than_the_widest_threshold_are_not_warned() {
    let env = env().await;
    let made = env.active_ending_in("carol", 31.0).await;
    env.devbox(&made).await;

    let report = env.run().await;

    assert_eq!(report.summary.warnings, 0);
    assert!(warning_levels(&env.events(&made).await).is_empty());
    assert!(env.recorder.notices().is_empty());
}

#[tokio::test]
async fn each_level_is_sent_once_as_the_end_approaches() {
    let env = env().await;
    let made = env.active_ending_in("dave", 29.0).await;
    env.devbox(&made).await;

    env.run().await;
    env.ends_in(&made, 14.0).await;
    env.run().await;
    env.run().await;
    env.ends_in(&made, 4.5).await;
    env.run().await;

    assert_eq!(
        warning_levels(&env.events(&made).await),
        ["30m", "15m", "5m"]
    );
    let minutes: Vec<i64> = env
        .recorder
        .notices()
        .iter()
        .map(|(_, n)| n.minutes_left)
        .collect();
    assert_eq!(minutes, [29, 14, 5]);
}

#[tokio::test]
async fn extending_a_reservation_re_arms_its_warnings() {
    let env = env().await;
    let made = env.active_ending_in("erin", 20.0).await;
    env.devbox(&made).await;
    env.run().await;

    // The API's extend (the same store call) clears the levels already sent.
    gpudev_store::reservations::extend(&env.client, made.id, 1.0, 72.0, "erin")
        .await
        .unwrap();
    let after_extend = env.run().await;
    assert_eq!(
        after_extend.summary.warnings, 0,
        "80 minutes left: nothing due yet"
    );
    // Time passes: the new end is 20 minutes away again.
    env.ends_in(&made, 20.0).await;
    env.run().await;

    assert_eq!(warning_levels(&env.events(&made).await), ["30m", "30m"]);
    assert_eq!(env.recorder.notices().len(), 2);
}

#[tokio::test]
async fn a_failed_delivery_into_the_pod_is_recorded_and_not_retried() {
    let env = env().await;
    let made = env.active_ending_in("frank", 10.0).await;
    env.devbox(&made).await;
    let failing = Recorder {
        fail: true,
        ..Recorder::default()
    };

    let first = env.job_with(failing.clone()).run_once().await.unwrap();
    let second = env.job_with(failing.clone()).run_once().await.unwrap();

    assert_eq!(first.summary.warnings, 1);
    assert_eq!(first.summary.notice_failures, 1);
    assert!(
        first.succeeded(),
        "a user we could not reach is not a failed run"
    );
    assert_eq!(second.summary.warnings, 0);
    assert_eq!(failing.notices().len(), 1, "not retried");
    let events = env.events(&made).await;
    let warning = events.iter().find(|e| e.kind == "warning").unwrap();
    let failures = warning.details["delivery"]["pod_failures"]
        .as_array()
        .unwrap();
    assert!(failures[0].as_str().unwrap().contains("sh: not found"));
}

#[tokio::test]
async fn warnings_for_a_multi_node_reservation_reach_every_pod() {
    let env = env().await;
    let made = env.active_ending_in("gina", 10.0).await;
    let first = env.devbox(&made).await;
    // A second pod of the same reservation (node 1 of a multi-node reservation).
    let labels = gpudev_cluster::labels::reservation_labels(made.id, &made.user);
    let pod: k8s_openapi::api::core::v1::Pod = serde_json::from_value(serde_json::json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": format!("{first}-1"), "namespace": env.ns(), "labels": labels},
        "spec": {"containers": [{"name": "dev", "image": "busybox"}]}
    }))
    .unwrap();
    let api: kube::Api<k8s_openapi::api::core::v1::Pod> =
        kube::Api::namespaced(env.cluster.client(), env.ns());
    api.create(&Default::default(), &pod).await.unwrap();

    env.run().await;

    let mut pods: Vec<String> = env.recorder.notices().into_iter().map(|(p, _)| p).collect();
    pods.sort();
    assert_eq!(pods, [first.clone(), format!("{first}-1")]);
}

/// A one-request-at-a-time HTTP server that records request bodies and answers `status`, or
/// never answers when `status` is 0.
pub(crate) async fn hook_server(status: u16) -> (String, Arc<Mutex<Vec<String>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!(
        "http://{}/hooks/T0/s3cr3tToken",
        listener.local_addr().unwrap()
    );
    let bodies = Arc::new(Mutex::new(Vec::new()));
    let seen = Arc::clone(&bodies);
    tokio::spawn(async move {
        loop {
            let Ok((mut socket, _)) = listener.accept().await else {
                return;
            };
            let mut buf = Vec::new();
            let mut chunk = [0u8; 4096];
            loop {
                let n = socket.read(&mut chunk).await.unwrap_or(0);
                if n == 0 {
                    break;
                }
                buf.extend_from_slice(&chunk[..n]);
                let text = String::from_utf8_lossy(&buf);
                if let Some(end) = text.find("\r\n\r\n") {
                    let length = text[..end]
                        .lines()
                        .find_map(|l| {
                            l.to_ascii_lowercase()
                                .strip_prefix("content-length:")
                                .map(|v| v.trim().parse::<usize>().unwrap())
                        })
                        .unwrap_or(0);
                    if buf.len() >= end + 4 + length {
                        seen.lock()
                            .unwrap()
                            .push(String::from_utf8_lossy(&buf[end + 4..]).into_owned());
                        break;
                    }
                }
            }
            if status == 0 {
                tokio::time::sleep(Duration::from_secs(30)).await;
            } else {
                let reply = format!(
                    "HTTP/1.1 {status} X\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
                );
                let _ = socket.write_all(reply.as_bytes()).await;
            }
        }
    });
    (url, bodies)
}

#[tokio::test]
async fn warnings_are_posted_to_the_webhook_without_any_secret() {
    let (url, bodies) = hook_server(200).await;
    let env = env_with(Default::default(), &[("EXPIRY_WEBHOOK_URL", &url)]).await;
    let made = env.active_ending_in("hank", 12.0).await;
    env.devbox(&made).await;

    let report = env.run().await;

    assert_eq!(report.summary.webhooks_posted, 1);
    let bodies = bodies.lock().unwrap().clone();
    assert_eq!(bodies.len(), 1);
    let body: serde_json::Value = serde_json::from_str(&bodies[0]).unwrap();
    assert_eq!(body["event"], "reservation.expiry_warning");
    assert_eq!(body["reservation_id"], made.id.to_string());
    assert_eq!(body["username"], "hank");
    assert_eq!(body["level"], "15m");
    assert_eq!(body["minutes_left"], 12);
    assert!(
        !bodies[0].contains("hf_s3cr3t_value"),
        "no environment values"
    );
    let events = env.events(&made).await;
    let warning = events.iter().find(|e| e.kind == "warning").unwrap();
    assert_eq!(warning.details["delivery"]["webhook"], "posted");
}

#[tokio::test]
async fn a_webhook_that_never_answers_is_given_up_on_after_its_timeout() {
    let (url, _) = hook_server(0).await;
    let env = env_with(
        Default::default(),
        &[
            ("EXPIRY_WEBHOOK_URL", &url),
            ("EXPIRY_WEBHOOK_TIMEOUT_SECONDS", "1"),
        ],
    )
    .await;
    let made = env.active_ending_in("ivan", 12.0).await;
    env.devbox(&made).await;

    let started = std::time::Instant::now();
    let report = env.run().await;

    assert!(started.elapsed() < Duration::from_secs(10));
    assert_eq!(report.summary.webhook_failures, 1);
    assert_eq!(report.summary.warnings, 1);
    assert!(report.succeeded());
    let logged = format!("{:?}", report.summary);
    assert!(!logged.contains("s3cr3tToken"));
}
