//! Every answer of the API read as the `gpudev-api-types` type its client reads it as: a field
//! renamed, retyped or made optional on one side only fails here (and at compile time where the
//! client and the server share the type). Each answer is also kept as a JSON snapshot
//! (`tests/api/snapshots/`), ids and times replaced by placeholders, so a reader sees what the
//! API says and a change to an answer shows up as a reviewed diff (`cargo insta review`).

use gpudev_api_types::admin::{AdminKeyList, AdminUserList, AuditPage, UsageReport};
use gpudev_api_types::auth::OidcIssuers;
use gpudev_api_types::cluster::{AvailabilityResponse, ClusterStatus};
use gpudev_api_types::disks::{
    CreateDisk, DiskInfo, DiskList, DiskOperationResponse, OperationStatus, RenameDisk,
    RenameResult,
};
use gpudev_api_types::health::{Health, ServiceInfo};
use gpudev_api_types::jobs::{
    ExtendRequest, JobActionResponse, JobDetail, JobList, JobSubmitResponse,
};
use gpudev_api_types::keys::{KeyInfo, KeyList, RotateRequest, RotateResponse};
use gpudev_api_types::me::{MeResponse, SshKeyList, SshKeysRequest};
use gpudev_api_types::{ErrorBody, ErrorCode};
use gpudev_store::users::Role;
use reqwest::Method;
use serde::de::DeserializeOwned;
use serde_json::Value;
use uuid::Uuid;

use crate::helpers::{TestApp, spawn_app, status_as, status_json};
use crate::jobs_common::{activate, t4};

const ED25519: &str =
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIETUbNlJBfWzOjE2V2VI7uME1ZcLQOGKhOdceh1N5BOe test@gpudev";

/// Replaces what differs from run to run: the ids the test learns (in every spelling the API
/// uses: full, without dashes, and the short forms in names and messages), times, and API keys.
fn redact(value: &mut Value, ids: &[Uuid]) {
    match value {
        Value::String(text) => {
            // Times, alone or inside a sentence ("… it now expires at 2026-…").
            let words: Vec<String> = text
                .split(' ')
                .map(|w| {
                    let bare = w.trim_end_matches(['.', ',', ';', ')']);
                    if chrono::DateTime::parse_from_rfc3339(bare).is_ok() {
                        w.replace(bare, "[time]")
                    } else {
                        w.to_owned()
                    }
                })
                .collect();
            *text = words.join(" ");
            for (n, id) in ids.iter().enumerate() {
                let simple = id.simple().to_string();
                for form in [
                    id.to_string(),
                    simple.clone(),
                    simple[..12].to_owned(),
                    simple[..8].to_owned(),
                ] {
                    *text = text.replace(&form, &format!("[id{n}]"));
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|v| redact(v, ids)),
        Value::Object(fields) => {
            for (name, v) in fields.iter_mut() {
                if matches!(name.as_str(), "api_key" | "key_prefix") {
                    *v = Value::String(format!("[{name}]"));
                } else if name == "gpu_hours" {
                    // GPU-hours of a reservation that is still running grow with the clock.
                    *v = Value::String("[hours]".into());
                } else if matches!(name.as_str(), "by_user" | "by_gpu_type") {
                    if let Value::Object(per) = v {
                        per.values_mut()
                            .for_each(|h| *h = Value::String("[hours]".into()));
                    }
                } else {
                    redact(v, ids);
                }
            }
        }
        _ => {}
    }
}

/// Asserts a 200 answer, reads it as `T` and compares its redacted JSON with snapshot `name`.
async fn answer<T: DeserializeOwned>(name: &str, resp: reqwest::Response, ids: &[Uuid]) -> T {
    let (status, body) = status_json(resp).await;
    assert_eq!(status, 200, "{name}: {body}");
    let typed = serde_json::from_value(body.clone())
        .unwrap_or_else(|e| panic!("{name} is not the expected answer ({e}): {body}"));
    snapshot(name, body, ids);
    typed
}

/// Compares the redacted `body` with snapshot `name`.
fn snapshot(name: &str, mut body: Value, ids: &[Uuid]) {
    redact(&mut body, ids);
    insta::assert_json_snapshot!(name, body);
}

async fn get<T: DeserializeOwned>(app: &TestApp, path: &str, key: &str, ids: &[Uuid]) -> T {
    let name = snapshot_name("get", path);
    answer(&name, app.get(path, key).await, ids).await
}

async fn post<T: DeserializeOwned>(
    app: &TestApp,
    path: &str,
    key: &str,
    body: impl serde::Serialize,
    ids: &[Uuid],
) -> T {
    let name = snapshot_name("post", path);
    answer(&name, app.post(path, key, body).await, ids).await
}

/// `get_v1_jobs_id` for `GET /v1/jobs/<uuid>`: the method and the path, ids left out.
fn snapshot_name(method: &str, path: &str) -> String {
    let mut name = method.to_owned();
    for part in path.split('/').filter(|p| !p.is_empty()) {
        name.push('_');
        name.push_str(
            if Uuid::parse_str(part).is_ok() || part.parse::<i64>().is_ok() {
                "id"
            } else {
                part
            },
        );
    }
    if name == method {
        name.push_str("_root");
    }
    name.replace('-', "_")
}

#[tokio::test]
async fn every_answer_reads_as_its_shared_type() {
    let app = spawn_app().await;
    let (_, key) = app.user_with_key("alice", Role::Admin).await;
    let mut ids = Vec::new();

    let _: ServiceInfo = get(&app, "/", &key, &ids).await;
    let _: Health = get(&app, "/health", &key, &ids).await;
    let _: OidcIssuers = get(&app, "/v1/auth/oidc", &key, &ids).await;

    let (status, raw) = status_json(app.post("/v1/jobs/submit", &key, t4(2.0)).await).await;
    assert_eq!(status, 200, "{raw}");
    let submitted: JobSubmitResponse = serde_json::from_value(raw.clone()).unwrap();
    let id = submitted.job_id;
    ids.push(id);
    snapshot("post_v1_jobs_submit", raw, &ids);
    activate(&app, id).await;
    let job: JobDetail = get(&app, &format!("/v1/jobs/{id}"), &key, &ids).await;
    assert_eq!(job.job_id, id);
    let page: JobList = get(&app, "/v1/jobs", &key, &ids).await;
    assert_eq!(page.total, 1);
    let _: JobList = get(&app, "/v1/admin/jobs", &key, &ids).await;
    let extend = ExtendRequest {
        extension_hours: 1.0,
    };
    let extended: JobActionResponse =
        post(&app, &format!("/v1/jobs/{id}/extend"), &key, extend, &ids).await;
    assert_eq!(extended.action, "extend");
    let _: JobActionResponse = post(
        &app,
        &format!("/v1/jobs/{id}/cancel"),
        &key,
        serde_json::json!({}),
        &ids,
    )
    .await;

    let _: AvailabilityResponse = get(&app, "/v1/gpu/availability", &key, &ids).await;
    let _: ClusterStatus = get(&app, "/v1/cluster/status", &key, &ids).await;
    let _: UsageReport = get(&app, "/v1/admin/usage", &key, &ids).await;

    let _: MeResponse = get(&app, "/v1/me", &key, &ids).await;
    let body = SshKeysRequest {
        keys: vec![ED25519.into()],
    };
    let put = app
        .call(
            Method::PUT,
            "/v1/me/ssh-keys",
            Some(&key),
            Some(serde_json::to_value(body).unwrap()),
        )
        .await;
    let keys: SshKeyList = answer("put_v1_me_ssh_keys", put, &ids).await;
    assert_eq!(keys.total, 1);
    let _: SshKeyList = get(&app, "/v1/me/ssh-keys", &key, &ids).await;

    let listed: KeyList = get(&app, "/v1/keys", &key, &ids).await;
    assert_eq!(listed.total, 1);
    let rotate = RotateRequest {
        revoke_current: false,
    };
    let rotated: RotateResponse = post(&app, "/v1/keys/rotate", &key, rotate, &ids).await;
    let revoke = app
        .call(
            Method::DELETE,
            &format!("/v1/keys/{}", rotated.key_id),
            Some(&key),
            None,
        )
        .await;
    let _: KeyInfo = answer("delete_v1_keys_id", revoke, &ids).await;

    let create = CreateDisk {
        disk_name: "home".into(),
        size_gb: None,
    };
    let (status, raw) = status_json(app.post("/v1/disks", &key, create).await).await;
    assert_eq!(status, 200, "{raw}");
    let created: DiskOperationResponse = serde_json::from_value(raw.clone()).unwrap();
    ids.push(created.operation_id);
    snapshot("post_v1_disks", raw, &ids);
    let operation = format!("/v1/disks/home/operations/{}", created.operation_id);
    let _: OperationStatus = get(&app, &operation, &key, &ids).await;
    let _: DiskList = get(&app, "/v1/disks", &key, &ids).await;
    let _: DiskInfo = get(&app, "/v1/disks/home", &key, &ids).await;
    let rename = RenameDisk {
        new_name: "work".into(),
    };
    let _: RenameResult = post(&app, "/v1/disks/home/rename", &key, rename, &ids).await;

    let users: AdminUserList = get(&app, "/v1/admin/users", &key, &ids).await;
    assert_eq!(users.total, 1);
    let keys: AdminKeyList = get(&app, "/v1/admin/keys", &key, &ids).await;
    assert_eq!(keys.total, 2);
    let _: AuditPage = get(&app, "/v1/admin/audit", &key, &ids).await;
}

#[tokio::test]
async fn error_answers_carry_a_code_of_the_shared_enum() {
    let app = spawn_app().await;
    let (_, key) = app.user_with_key("alice", Role::User).await;

    let (status, missing): (_, ErrorBody) = status_as(
        app.get("/v1/jobs/3f2a9c1e-7b4d-4e8f-9a0b-1c2d3e4f5a6b", &key)
            .await,
    )
    .await;
    let (unauth, anonymous): (_, ErrorBody) =
        status_as(app.call(Method::GET, "/v1/jobs", None, None).await).await;
    let (admin, refused): (_, ErrorBody) = status_as(app.get("/v1/admin/jobs", &key).await).await;

    assert_eq!((status, missing.code), (404, ErrorCode::NotFound));
    assert_eq!((unauth, anonymous.code), (401, ErrorCode::NotAuthenticated));
    assert_eq!((admin, refused.code), (403, ErrorCode::AdminRequired));
}
