//! The typed client against the real API (in-process, real HTTP, PostgreSQL + PGMQ, moto): every
//! answer decodes into its type, errors carry the API's code and detail, and the presigned
//! login works with STS in strict mode.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    missing_docs,
    reason = "tests fail by panicking with the error"
)]

use std::collections::{BTreeSet, HashMap};
use std::time::{Duration, SystemTime};

use gpudev_api::{ApiConfig, Application};
use gpudev_client::sts::{self, AwsCredentials};
use gpudev_client::types::jobs::Applies;
use gpudev_client::{Client, ClientError, ErrorCode, JobSubmission, ListQuery};
use gpudev_testkit::Moto;

const ROLE: &str = "SSOCloudDevGpuReservation";

struct Env {
    moto: Moto,
    client: Client,
    _db: gpudev_testkit::TestDb,
}

async fn env() -> Env {
    let (moto, db) = tokio::join!(gpudev_testkit::sts(), gpudev_testkit::test_db());
    let vars: HashMap<&str, String> = HashMap::from([
        ("DATABASE_URL", db.url()),
        ("BIND_ADDR", "127.0.0.1:0".into()),
        ("METRICS_ADDR", "127.0.0.1:0".into()),
        ("SHUTDOWN_DRAIN_SECONDS", "0".into()),
        ("LOG_FORMAT", "pretty".into()),
        ("AWS_ENDPOINT_URL_STS", moto.endpoint()),
        ("STS_ALLOWED_HOSTS", format!("127.0.0.1:{}", moto.port())),
        ("KEY_CACHE_SECONDS", "0".into()),
        (
            "SECRETS_ENCRYPTION_KEYS",
            "client-test:AQIDBAUGBwgJCgsMDQ4PEBESExQVFhcYGRobHB0eHyA=".into(),
        ),
    ]);
    let config = ApiConfig::from_lookup(|k| vars.get(k).cloned()).unwrap();
    let app = Application::build(config).await.unwrap();
    let client = Client::builder(&format!("http://{}", app.api_addr()))
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    tokio::spawn(app.run_until_stopped());
    Env {
        moto,
        client,
        _db: db,
    }
}

/// Logs `user` in through aws-iam; the client with the new key.
async fn logged_in(env: &Env, user: &str) -> Client {
    logged_in_with_key(env, user).await.0
}

/// Logs `user` in through aws-iam and registers an SSH key; the client with the new key, and
/// the key.
async fn logged_in_with_key(env: &Env, user: &str) -> (Client, String) {
    let c = env.moto.mint(ROLE, user).await;
    let creds = AwsCredentials {
        access_key_id: c.access_key_id,
        secret_access_key: c.secret_access_key,
        session_token: Some(c.session_token),
    };
    let server = env.client.aws_login_info().await.unwrap();
    let signed = sts::presign_get_caller_identity(
        &creds,
        env.moto.region(),
        &env.moto.endpoint(),
        &server.server_id,
        SystemTime::now(),
    )
    .unwrap();
    let login = env.client.login_aws_iam(&signed).await.unwrap();
    assert_eq!(login.username, user);
    assert_eq!(login.role, "user");
    let client = env.client.with_api_key(&login.api_key);
    // Someone who reserves dev boxes has a key to log in to them with.
    client.set_ssh_keys(&[SSH_KEY.to_owned()]).await.unwrap();
    (client, login.api_key)
}

const SSH_KEY: &str =
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIETUbNlJBfWzOjE2V2VI7uME1ZcLQOGKhOdceh1N5BOe client@test";

#[tokio::test]
async fn a_presigned_login_gives_a_key_and_a_stale_or_tampered_one_is_refused() {
    let env = env().await;
    let alice = logged_in(&env, "alice").await;
    let me = alice.me().await.unwrap();
    assert_eq!(me.username, "alice");
    assert_eq!(me.current_key.auth_method, "aws-iam");

    let c = env.moto.mint(ROLE, "bob").await;
    let creds = AwsCredentials {
        access_key_id: c.access_key_id,
        secret_access_key: c.secret_access_key,
        session_token: Some(c.session_token),
    };
    let server = env.client.aws_login_info().await.unwrap();
    assert_eq!(server.server_id_header, "x-gpudev-server-id");
    let old = SystemTime::now() - Duration::from_secs(20 * 60);
    let stale = sts::presign_get_caller_identity(
        &creds,
        "us-east-1",
        &env.moto.endpoint(),
        &server.server_id,
        old,
    )
    .unwrap();
    let err = env.client.login_aws_iam(&stale).await.unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::SignatureExpired));
    assert!(err.is_auth());

    let mut tampered = sts::presign_get_caller_identity(
        &creds,
        "us-east-1",
        &env.moto.endpoint(),
        &server.server_id,
        SystemTime::now(),
    )
    .unwrap();
    tampered.url = sts::regional_endpoint("us-east-1");
    let err = env.client.login_aws_iam(&tampered).await.unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::StsHostNotAllowed));
    assert_eq!(err.status(), Some(400));

    // A fresh, valid signature for another service's server id is worth nothing here, and
    // neither is one whose server id header was changed after signing.
    let elsewhere = sts::presign_get_caller_identity(
        &creds,
        "us-east-1",
        &env.moto.endpoint(),
        "another-service",
        SystemTime::now(),
    )
    .unwrap();
    let err = env.client.login_aws_iam(&elsewhere).await.unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::WrongServerId));
    assert_eq!(err.status(), Some(401));
    let mut relabelled = elsewhere.clone();
    relabelled
        .headers
        .insert("x-gpudev-server-id".into(), server.server_id.clone());
    let err = env.client.login_aws_iam(&relabelled).await.unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::InvalidAwsCredentials), "{err}");
    // Signed for this server, it logs in.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let ours = sts::presign_get_caller_identity(
        &creds,
        "us-east-1",
        &env.moto.endpoint(),
        &server.server_id,
        SystemTime::now(),
    )
    .unwrap();
    assert_eq!(
        env.client.login_aws_iam(&ours).await.unwrap().username,
        "bob"
    );
}

#[tokio::test]
async fn every_job_answer_decodes_and_errors_carry_code_and_detail() {
    let env = env().await;
    let alice = logged_in(&env, "alice").await;

    let mut job = JobSubmission::new("t4", 2, 1.5);
    job.name = Some("exp".into());
    job.env_vars.insert("SECRET".into(), "v".into());
    let submitted = alice.submit_job(&job, Some("key-1")).await.unwrap();
    assert_eq!(submitted.status, "queued");
    let again = alice.submit_job(&job, Some("key-1")).await.unwrap();
    assert_eq!(
        again.job_id, submitted.job_id,
        "idempotent with the same key"
    );

    let id = submitted.job_id.to_string();
    let detail = alice.get_job(&id[..8]).await.unwrap();
    assert_eq!(detail.job_id, submitted.job_id);
    assert_eq!(detail.gpu_count, 2);
    assert_eq!(detail.duration_hours, 1.5);
    assert_eq!(detail.env_names, ["SECRET"]);
    assert_eq!(detail.short_id(), id[..8]);
    assert!(!detail.is_terminal());

    let list = alice
        .list_jobs(&ListQuery {
            status: Some("queued".into()),
            ..ListQuery::default()
        })
        .await
        .unwrap();
    assert_eq!(list.total, 1);

    let extended = alice.extend_job(&id, 1.0, Some("ext-1")).await.unwrap();
    assert_eq!(
        extended.applies,
        Applies::AtStart,
        "a queued job runs longer once it starts"
    );
    let again = alice.extend_job(&id, 1.0, Some("ext-1")).await.unwrap();
    assert_eq!(again.applies, extended.applies);
    assert_eq!(alice.get_job(&id).await.unwrap().extended_hours, 1.0);
    let cancelled = alice.cancel_job(&id).await.unwrap();
    assert_eq!(cancelled.status, "cancelled");
    let err = alice.extend_job(&id, 1.0, None).await.unwrap_err();
    assert!(
        matches!(&err, ClientError::Api { status: 409, code, .. } if *code == ErrorCode::InvalidState)
    );

    let err = alice
        .get_job("00000000-0000-4000-8000-000000000000")
        .await
        .unwrap_err();
    assert!(err.is_not_found());
    assert_eq!(
        err.to_string(),
        "Job 00000000-0000-4000-8000-000000000000 not found"
    );
    let err = alice.get_job("../../admin/users").await.unwrap_err();
    assert!(err.is_not_found(), "path segments are encoded: {err:?}");

    let err = env
        .client
        .list_jobs(&ListQuery::default())
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::NotAuthenticated));
    assert!(err.is_auth() && err.is_renewable_auth());
}

#[tokio::test]
async fn the_job_type_reads_every_field_the_api_sends() {
    let env = env().await;
    let (alice, key) = logged_in_with_key(&env, "alice").await;
    let id = alice
        .submit_job(&JobSubmission::new("t4", 1, 1.0), None)
        .await
        .unwrap()
        .job_id;
    let url = alice.base_url().join(&format!("v1/jobs/{id}")).unwrap();
    let raw: serde_json::Value = reqwest::Client::new()
        .get(url)
        .bearer_auth(&key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let typed = serde_json::to_value(alice.get_job(&id.to_string()).await.unwrap()).unwrap();
    let keys = |v: &serde_json::Value| -> BTreeSet<String> {
        v.as_object().unwrap().keys().cloned().collect()
    };
    // Two fields only repeat others (`current_detailed_status`, `warning`).
    let mut missing: Vec<String> = keys(&raw).difference(&keys(&typed)).cloned().collect();
    missing.retain(|k| k != "current_detailed_status" && k != "warning");
    assert!(missing.is_empty(), "JobDetail lacks {missing:?}");
}
