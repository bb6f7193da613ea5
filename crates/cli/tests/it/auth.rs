//! Logging in, where keys are kept, and renewing them on the fly.

use std::os::unix::fs::PermissionsExt as _;

use crate::helpers::{Options, World};

/// The id of the stored key.
/// Waits past the second of the last login: a presigned request logs in once, and one signed
/// again within the same second is the same request, which the CLI would have to sign a second
/// time (these tests count exactly one login).
async fn next_second() {
    tokio::time::sleep(std::time::Duration::from_millis(1050)).await;
}

fn stored_key_id(w: &World) -> i64 {
    w.credentials()["key_id"].as_i64().unwrap()
}

/// Expires a key in the database, as time would.
async fn expire(w: &World, key_id: i64) {
    w.sql()
        .await
        .execute(
            "UPDATE api_keys SET created_at = now() - interval '3 hours', \
             expires_at = now() - interval '1 minute' WHERE key_id = $1",
            &[&key_id],
        )
        .await
        .unwrap();
}

#[tokio::test]
async fn login_signs_sts_itself_and_never_sends_the_secret_key() {
    let w = World::with(Options {
        record: true,
        ..Options::default()
    })
    .await;
    let recorder = w.recorder.as_ref().unwrap();

    let run = w.login().await;

    assert!(run.stdout.contains("as alice"), "{run:#?}");
    assert!(run.stdout.contains(&w.aws.arn), "{run:#?}");
    assert!(run.stdout.contains("expires"), "{run:#?}");
    let sent = recorder.text();
    assert!(sent.contains("POST /v1/auth/aws-iam"), "{sent}");
    assert!(!sent.contains("/v1/auth/aws-login"));
    assert!(
        !sent.contains(&w.aws.secret_access_key),
        "the AWS secret key reached the API"
    );
    // The server checked the signature with STS: the login is recorded as aws-iam.
    let row = w
        .sql()
        .await
        .query_one(
            "SELECT actor, auth_method, outcome FROM audit_log WHERE action = 'login'",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(row.get::<_, String>(0), "alice");
    assert_eq!(row.get::<_, String>(1), "aws-iam");
    assert_eq!(row.get::<_, String>(2), "success");

    // The contrast: --send-credentials posts the secret itself (so the recorder would have seen
    // it above).
    recorder.clear();
    w.run(&["login", "--send-credentials"]).await.ok();
    let sent = recorder.text();
    assert!(sent.contains("POST /v1/auth/aws-login"), "{sent}");
    assert!(sent.contains(&w.aws.secret_access_key));
    assert_eq!(w.credentials()["method"], "aws-login");
}

#[tokio::test]
async fn the_key_is_stored_with_mode_0600_in_a_private_directory() {
    let w = World::new().await;
    w.login().await;

    let path = w.credentials_path();
    let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let dir_mode = std::fs::metadata(path.parent().unwrap())
        .unwrap()
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(dir_mode, 0o700);
    let c = w.credentials();
    assert!(c["api_key"].as_str().unwrap().len() >= 16);
    assert_eq!(c["username"], "alice");
    assert_eq!(c["method"], "aws-iam");
    assert_eq!(c["api_url"], format!("{}/", w.api_url));
    assert!(c["expires_at"].as_str().is_some());
    let leftovers: Vec<_> = std::fs::read_dir(path.parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(leftovers, ["credentials"], "no temporary files are left");
}

#[tokio::test]
async fn login_prints_json_for_scripts_without_the_key() {
    let w = World::new().await;
    let run = w.run(&["login", "-o", "json"]).await.ok();
    let out = run.json();
    assert_eq!(out["username"], "alice");
    assert_eq!(out["role"], "user");
    assert_eq!(out["method"], "aws-iam");
    assert_eq!(out["aws_arn"], w.aws.arn.as_str());
    assert!(out["expires_at"].as_str().is_some());
    assert!(out.get("api_key").is_none());
    assert!(
        !run.stdout
            .contains(w.credentials()["api_key"].as_str().unwrap())
    );
}

#[tokio::test]
async fn an_expired_key_is_renewed_once_with_a_one_line_notice_and_the_command_succeeds() {
    let w = World::with(Options {
        record: true,
        ..Options::default()
    })
    .await;
    w.login().await;
    next_second().await;
    let old_key = w.credentials()["api_key"].as_str().unwrap().to_owned();
    expire(&w, stored_key_id(&w)).await;
    let recorder = w.recorder.as_ref().unwrap();
    recorder.clear();

    let run = w.run(&["list", "-o", "json"]).await.ok();

    assert_eq!(run.json()["jobs"], serde_json::json!([]));
    let notice: Vec<&str> = run.stderr.lines().collect();
    assert_eq!(notice.len(), 1, "{run:#?}");
    assert!(
        notice[0].starts_with("Your API key has expired; logged in again as alice"),
        "{}",
        notice[0]
    );
    // The call was refused once, the login happened once, the call was retried once.
    assert_eq!(recorder.count("GET /v1/jobs"), 2);
    assert_eq!(recorder.count("POST /v1/auth/aws-iam"), 1);
    assert_ne!(w.credentials()["api_key"].as_str().unwrap(), old_key);

    // The new key works without another login.
    recorder.clear();
    let run = w.run(&["list"]).await.ok();
    assert_eq!(run.stderr, "");
    assert_eq!(recorder.count("POST /v1/auth/"), 0);
}

#[tokio::test]
async fn a_key_about_to_expire_is_renewed_before_the_call() {
    let w = World::with(Options {
        record: true,
        ..Options::default()
    })
    .await;
    w.login().await;
    next_second().await;
    let mut c = w.credentials();
    c["expires_at"] = (chrono::Utc::now() + chrono::Duration::minutes(3))
        .to_rfc3339()
        .into();
    std::fs::write(w.credentials_path(), c.to_string()).unwrap();
    let recorder = w.recorder.as_ref().unwrap();
    recorder.clear();

    let run = w.run(&["status"]).await.ok();

    assert!(
        run.stderr
            .starts_with("Your API key expires in 2 min; logged in again as alice")
            || run
                .stderr
                .starts_with("Your API key expires in 3 min; logged in again as alice"),
        "{run:#?}"
    );
    assert_eq!(run.stderr.lines().count(), 1);
    assert_eq!(recorder.count("POST /v1/auth/aws-iam"), 1);
    assert_eq!(
        recorder.count("GET /v1/cluster/status"),
        1,
        "no refused call first"
    );
}

#[tokio::test]
async fn without_a_stored_key_the_first_command_logs_in_by_itself() {
    let w = World::new().await;
    let run = w.run(&["list"]).await.ok();
    assert!(
        run.stderr.starts_with("Not logged in; logged in as alice"),
        "{run:#?}"
    );
    assert_eq!(run.stdout.trim(), "No reservations.");
    assert_eq!(w.credentials()["username"], "alice");
}

#[tokio::test]
async fn no_aws_credentials_and_no_key_exit_3_with_a_readable_message() {
    let w = World::new().await;
    let run = w
        .run_env(
            &["list"],
            &[],
            &[
                "AWS_ACCESS_KEY_ID",
                "AWS_SECRET_ACCESS_KEY",
                "AWS_SESSION_TOKEN",
            ],
        )
        .await;
    assert_eq!(run.code, 3, "{run:#?}");
    assert_eq!(run.stdout, "");
    let err: Vec<&str> = run.stderr.lines().collect();
    assert_eq!(err.len(), 1, "{run:#?}");
    assert!(
        err[0]
            .starts_with("error: Not logged in, and logging in failed: no usable AWS credentials"),
        "{}",
        err[0]
    );
    assert!(!run.stderr.contains("panicked") && !run.stderr.contains("RUST_BACKTRACE"));
}

#[tokio::test]
async fn a_failed_renewal_says_why_and_exits_3() {
    let w = World::new().await;
    w.login().await;
    expire(&w, stored_key_id(&w)).await;
    let run = w
        .run_env(
            &["list"],
            &[],
            &["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"],
        )
        .await;
    assert_eq!(run.code, 3, "{run:#?}");
    assert!(
        run.stderr
            .starts_with("error: Your API key has expired, and logging in failed:"),
        "{run:#?}"
    );
}

#[tokio::test]
async fn a_revoked_key_is_not_renewed_behind_the_users_back() {
    let w = World::new().await;
    w.login().await;
    w.sql()
        .await
        .execute(
            "UPDATE api_keys SET revoked_at = now() WHERE key_id = $1",
            &[&stored_key_id(&w)],
        )
        .await
        .unwrap();
    let run = w.run(&["list"]).await;
    assert_eq!(run.code, 3, "{run:#?}");
    assert_eq!(
        run.stderr,
        "error: API key has been revoked (run `gpu-dev login`)\n"
    );
}

#[tokio::test]
async fn a_role_the_server_does_not_allow_is_refused_with_exit_3() {
    let w = World::with(Options {
        role: "SomeOtherRole",
        ..Options::default()
    })
    .await;
    let run = w.run(&["login"]).await;
    assert_eq!(run.code, 3, "{run:#?}");
    assert_eq!(
        run.stderr,
        "error: Access denied. Required role: SSOCloudDevGpuReservation, got: SomeOtherRole\n"
    );
    assert!(!w.credentials_path().exists());
}

#[tokio::test]
async fn a_key_is_never_sent_to_another_server() {
    let w = World::new().await;
    w.login().await;
    let other = World::new().await;
    // The first world's key in the second world's home, with the second world's API.
    std::fs::create_dir_all(other.credentials_path().parent().unwrap()).unwrap();
    std::fs::copy(w.credentials_path(), other.credentials_path()).unwrap();
    let run = other.run(&["list"]).await.ok();
    assert!(
        run.stderr.starts_with("Not logged in; logged in as alice"),
        "{run:#?}"
    );
    assert_eq!(
        other.credentials()["api_url"],
        format!("{}/", other.api_url)
    );
}

#[tokio::test]
async fn credentials_come_from_the_configured_aws_profile() {
    let w = World::new().await;
    crate::helpers::write(
        &w.home().join(".aws").join("credentials"),
        &format!(
            "[gpudev]\naws_access_key_id = {}\naws_secret_access_key = {}\naws_session_token = {}\n",
            w.aws.access_key_id, w.aws.secret_access_key, w.aws.session_token
        ),
    );
    w.run(&["config", "set", "aws_profile", "gpudev"])
        .await
        .ok();
    let run = w
        .run_env(
            &["login", "-o", "json"],
            &[],
            &[
                "AWS_ACCESS_KEY_ID",
                "AWS_SECRET_ACCESS_KEY",
                "AWS_SESSION_TOKEN",
            ],
        )
        .await
        .ok();
    assert_eq!(run.json()["username"], "alice");
    // Without the setting, the default profile is used, and there is none.
    w.run(&["config", "unset", "aws_profile"]).await.ok();
    let run = w
        .run_env(
            &["login"],
            &[],
            &[
                "AWS_ACCESS_KEY_ID",
                "AWS_SECRET_ACCESS_KEY",
                "AWS_SESSION_TOKEN",
            ],
        )
        .await;
    assert_eq!(run.code, 3, "{run:#?}");
}
