//! The production notifier against a stand-in API server that speaks the exec websocket
//! (`v4.channel.k8s.io`), which the fake cluster cannot.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::Utc;
use futures::{SinkExt, StreamExt};
use gpudev_expiry::{ExecNotifier, Notice, NotifyError, PodNotifier};
use tokio::net::TcpListener;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::handshake::server::{Request, Response};
use uuid::Uuid;

/// Serves one exec request: records its URI, writes `stderr` on channel 2, then the final
/// `status` on channel 3, and closes. Returns the client for it and the recorded URI.
#[allow(clippy::result_large_err, reason = "tungstenite's callback signature")]
async fn exec_server(
    stderr: &'static str,
    status: serde_json::Value,
) -> (kube::Client, Arc<Mutex<String>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let seen = Arc::new(Mutex::new(String::new()));
    let record = Arc::clone(&seen);
    tokio::spawn(async move {
        let (stream, _) = listener.accept().await.unwrap();
        let callback = move |req: &Request, mut res: Response| {
            *record.lock().unwrap() = req.uri().to_string();
            res.headers_mut().insert(
                "Sec-WebSocket-Protocol",
                "v4.channel.k8s.io".parse().unwrap(),
            );
            Ok(res)
        };
        let mut ws = tokio_tungstenite::accept_hdr_async(stream, callback)
            .await
            .unwrap();
        if !stderr.is_empty() {
            let mut frame = vec![2u8];
            frame.extend_from_slice(stderr.as_bytes());
            ws.send(Message::binary(frame)).await.unwrap();
        }
        let mut frame = vec![3u8];
        frame.extend_from_slice(status.to_string().as_bytes());
        ws.send(Message::binary(frame)).await.unwrap();
        ws.close(None).await.ok();
        while ws.next().await.is_some() {}
    });
    let config = kube::Config::new(url.parse().unwrap());
    // As the binary does: several rustls backends are linked in a workspace build.
    gpudev_runtime::install_crypto_provider();
    (kube::Client::try_from(config).unwrap(), seen)
}

fn notice() -> Notice {
    Notice {
        reservation_id: Uuid::new_v4(),
        level: "5m".into(),
        minutes_left: 4,
        expires_at: Utc::now(),
        idle: false,
    }
}

#[tokio::test]
async fn the_exec_notifier_runs_the_notice_script_in_the_dev_container() {
    let (client, seen) =
        exec_server("", serde_json::json!({"metadata": {}, "status": "Success"})).await;
    let notifier = ExecNotifier::new(client, Duration::from_secs(5));
    let notice = notice();

    notifier
        .deliver("gpu-dev", "gpudev-abc", &notice)
        .await
        .unwrap();

    let uri = seen.lock().unwrap().clone();
    assert!(
        uri.starts_with("/api/v1/namespaces/gpu-dev/pods/gpudev-abc/exec?"),
        "{uri}"
    );
    let query: Vec<(String, String)> = uri
        .split_once('?')
        .unwrap()
        .1
        .split('&')
        .filter(|kv| !kv.is_empty())
        .map(|kv| {
            let (k, v) = kv
                .split_once('=')
                .unwrap_or_else(|| panic!("{kv:?} in {uri}"));
            (k.to_owned(), percent_decode(v))
        })
        .collect();
    let get = |k: &str| {
        query
            .iter()
            .filter(|(key, _)| key == k)
            .map(|(_, v)| v.clone())
            .collect::<Vec<_>>()
    };
    assert_eq!(get("container"), ["dev"]);
    assert_eq!(get("stderr"), ["true"]);
    assert!(
        get("stdin").is_empty() && get("tty").is_empty(),
        "no stdin, no tty"
    );
    let command = get("command");
    assert_eq!(&command[..2], ["sh", "-c"]);
    assert!(
        command[2].contains("GPUDEV_HOME=/home/dev"),
        "{}",
        command[2]
    );
    assert!(command[2].contains("wall"), "{}", command[2]);
    assert_eq!(command[4], "GPUDEV_EXPIRES_IN_4MIN.txt");
    assert_eq!(
        command[5],
        notice.text(),
        "the text is an argument, not part of the script"
    );
}

#[tokio::test]
async fn a_failing_notice_script_is_reported_with_its_error_output() {
    let status = serde_json::json!({
        "metadata": {}, "status": "Failure", "reason": "NonZeroExitCode",
        "message": "command terminated with non-zero exit code: 1"
    });
    let (client, _) = exec_server(
        "sh: cannot create /home/dev/x: Read-only file system",
        status,
    )
    .await;
    let notifier = ExecNotifier::new(client, Duration::from_secs(5));

    let err = notifier
        .deliver("gpu-dev", "gpudev-abc", &notice())
        .await
        .unwrap_err();

    assert!(matches!(err, NotifyError::Script { .. }), "{err}");
    assert!(err.to_string().contains("Read-only file system"), "{err}");
}

#[tokio::test]
async fn a_pod_that_does_not_answer_is_given_up_on_after_the_timeout() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        let (_stream, _) = listener.accept().await.unwrap();
        tokio::time::sleep(Duration::from_secs(30)).await;
    });
    gpudev_runtime::install_crypto_provider();
    let client = kube::Client::try_from(kube::Config::new(url.parse().unwrap())).unwrap();
    let notifier = ExecNotifier::new(client, Duration::from_millis(300));

    let err = notifier
        .deliver("gpu-dev", "gpudev-abc", &notice())
        .await
        .unwrap_err();

    assert!(matches!(err, NotifyError::Timeout { .. }), "{err}");
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap();
                out.push(u8::from_str_radix(hex, 16).unwrap());
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).unwrap()
}
