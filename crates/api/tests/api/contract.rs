//! Every answer of the API read as the `gpudev-api-types` type its client reads it as: a field
//! renamed, retyped or made optional on one side only fails here (and at compile time where the
//! client and the server share the type).

use gpudev_api_types::admin::UsageReport;
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

use crate::helpers::{TestApp, spawn_app, status_as};
use crate::jobs_common::{activate, t4};

const ED25519: &str =
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIETUbNlJBfWzOjE2V2VI7uME1ZcLQOGKhOdceh1N5BOe test@gpudev";

async fn get<T: serde::de::DeserializeOwned>(app: &TestApp, path: &str, key: &str) -> T {
    let (status, body) = status_as(app.get(path, key).await).await;
    assert_eq!(status, 200, "{path}");
    body
}

async fn post<T: serde::de::DeserializeOwned>(
    app: &TestApp,
    path: &str,
    key: &str,
    body: impl serde::Serialize,
) -> T {
    let (status, answer) = status_as(app.post(path, key, body).await).await;
    assert_eq!(status, 200, "{path}");
    answer
}

#[tokio::test]
async fn every_answer_reads_as_its_shared_type() {
    let app = spawn_app().await;
    let (_, key) = app.user_with_key("alice", Role::Admin).await;

    let _: ServiceInfo = get(&app, "/", &key).await;
    let _: Health = get(&app, "/health", &key).await;
    let _: OidcIssuers = get(&app, "/v1/auth/oidc", &key).await;

    let submitted: JobSubmitResponse = post(&app, "/v1/jobs/submit", &key, t4(2.0)).await;
    let id = submitted.job_id;
    activate(&app, id).await;
    let job: JobDetail = get(&app, &format!("/v1/jobs/{id}"), &key).await;
    assert_eq!(job.job_id, id);
    let page: JobList = get(&app, "/v1/jobs", &key).await;
    assert_eq!(page.total, 1);
    let _: JobList = get(&app, "/v1/admin/jobs", &key).await;
    let extended: JobActionResponse = post(
        &app,
        &format!("/v1/jobs/{id}/extend"),
        &key,
        ExtendRequest {
            extension_hours: 1.0,
        },
    )
    .await;
    assert_eq!(extended.action, "extend");
    let _: JobActionResponse = post(
        &app,
        &format!("/v1/jobs/{id}/cancel"),
        &key,
        serde_json::json!({}),
    )
    .await;

    let _: AvailabilityResponse = get(&app, "/v1/gpu/availability", &key).await;
    let _: ClusterStatus = get(&app, "/v1/cluster/status", &key).await;
    let _: UsageReport = get(&app, "/v1/admin/usage", &key).await;

    let _: MeResponse = get(&app, "/v1/me", &key).await;
    let (status, keys): (_, SshKeyList) = status_as(
        app.call(
            Method::PUT,
            "/v1/me/ssh-keys",
            Some(&key),
            Some(
                serde_json::to_value(SshKeysRequest {
                    keys: vec![ED25519.into()],
                })
                .unwrap(),
            ),
        )
        .await,
    )
    .await;
    assert_eq!((status, keys.total), (200, 1));
    let _: SshKeyList = get(&app, "/v1/me/ssh-keys", &key).await;

    let listed: KeyList = get(&app, "/v1/keys", &key).await;
    let rotated: RotateResponse = post(
        &app,
        "/v1/keys/rotate",
        &key,
        RotateRequest {
            revoke_current: false,
        },
    )
    .await;
    let (status, _): (_, KeyInfo) = status_as(
        app.call(
            Method::DELETE,
            &format!("/v1/keys/{}", rotated.key_id),
            Some(&key),
            None,
        )
        .await,
    )
    .await;
    assert_eq!((status, listed.total), (200, 1));

    let created: DiskOperationResponse = post(
        &app,
        "/v1/disks",
        &key,
        CreateDisk {
            disk_name: "home".into(),
            size_gb: None,
        },
    )
    .await;
    let _: OperationStatus = get(
        &app,
        &format!("/v1/disks/home/operations/{}", created.operation_id),
        &key,
    )
    .await;
    let _: DiskList = get(&app, "/v1/disks", &key).await;
    let _: DiskInfo = get(&app, "/v1/disks/home", &key).await;
    let _: RenameResult = post(
        &app,
        "/v1/disks/home/rename",
        &key,
        RenameDisk {
            new_name: "work".into(),
        },
    )
    .await;
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
