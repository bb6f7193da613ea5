//! `/v1/disks`: create, list, get, rename, delete, operations; owners only.

use gpudev_api_types::disks::{CreateDisk, RenameDisk};
use gpudev_store::users::Role;
use gpudev_store::{Queue, disks as store_disks};
use reqwest::Method;
use serde_json::json;

use crate::helpers::{queued_reservation, spawn_app, status_json};

/// A well-formed create body.
fn create(name: &str, size_gb: Option<i64>) -> CreateDisk {
    CreateDisk {
        disk_name: name.into(),
        size_gb,
    }
}

#[tokio::test]
async fn creating_a_disk_records_it_queues_the_work_and_returns_an_operation() {
    let app = spawn_app().await;
    let (_, key) = app.user_with_key("alice", Role::User).await;

    let (status, body) =
        status_json(app.post("/v1/disks", &key, create("home", Some(200))).await).await;

    assert_eq!(status, 200, "{body}");
    assert_eq!(body["action"], "create");
    let op = body["operation_id"].as_str().unwrap().to_owned();
    let client = app.db.connect().await;
    let msgs = Queue::new("gpu_reservations")
        .unwrap()
        .read(&client, 0, 10)
        .await
        .unwrap();
    assert_eq!(msgs.len(), 1);
    assert_eq!(msgs[0].body["action"], "disk_create");
    assert_eq!(msgs[0].body["operation_id"], op.as_str());
    let (s, polled) = status_json(
        app.get(&format!("/v1/disks/home/operations/{op}"), &key)
            .await,
    )
    .await;
    assert_eq!(s, 200);
    assert_eq!(polled["status"], "pending");
    assert_eq!(polled["completed"], false);
    let (s, info) = status_json(app.get("/v1/disks/home", &key).await).await;
    assert_eq!(s, 200);
    assert_eq!(info["size_gb"], 200);
    assert_eq!(info["user_id"], "alice");
    assert_eq!(info["in_use"], false);

    // The processor completes the operation.
    let disk = store_disks::get(&client, info_user_id(&client, "alice").await, "home")
        .await
        .unwrap();
    store_disks::finish_operation(&client, disk.disk_id, disk.operation_id.unwrap(), None)
        .await
        .unwrap();
    let (_, polled) = status_json(
        app.get(&format!("/v1/disks/home/operations/{op}"), &key)
            .await,
    )
    .await;
    assert_eq!(polled["status"], "completed");
    assert_eq!(polled["completed"], true);
}

async fn info_user_id(client: &tokio_postgres::Client, name: &str) -> i64 {
    client
        .query_one("SELECT user_id FROM users WHERE username = $1", &[&name])
        .await
        .unwrap()
        .get(0)
}

#[tokio::test]
async fn bad_names_and_sizes_are_422_and_duplicates_409() {
    let app = spawn_app().await;
    let (_, key) = app.user_with_key("alice", Role::User).await;

    let bad_name = app
        .post("/v1/disks", &key, json!({"disk_name": "no spaces"}))
        .await;
    let long_name = app
        .post("/v1/disks", &key, json!({"disk_name": "x".repeat(64)}))
        .await;
    let small = app
        .post("/v1/disks", &key, json!({"disk_name": "a", "size_gb": 5}))
        .await;
    let unknown_field = app
        .post(
            "/v1/disks",
            &key,
            json!({"disk_name": "a", "colour": "red"}),
        )
        .await;
    let first = app.post("/v1/disks", &key, create("work", None)).await;
    let dup = app.post("/v1/disks", &key, create("work", None)).await;

    for r in [bad_name, long_name, small, unknown_field] {
        let (s, b) = status_json(r).await;
        assert_eq!(s, 422, "{b}");
        assert!(b["detail"].is_string());
    }
    assert_eq!(first.status().as_u16(), 200);
    let (s, b) = status_json(dup).await;
    assert_eq!(s, 409);
    assert_eq!(b["code"], "disk_exists");
}

#[tokio::test]
async fn another_users_disks_are_invisible() {
    let app = spawn_app().await;
    let (_, alice) = app.user_with_key("alice", Role::User).await;
    let (_, bob) = app.user_with_key("bob", Role::User).await;
    app.post("/v1/disks", &alice, create("home", None)).await;

    let (list_status, list) = status_json(app.get("/v1/disks", &bob).await).await;
    let get = app.get("/v1/disks/home", &bob).await;
    let del = app
        .call(Method::DELETE, "/v1/disks/home", Some(&bob), None)
        .await;
    let ren = app
        .post(
            "/v1/disks/home/rename",
            &bob,
            RenameDisk {
                new_name: "mine".into(),
            },
        )
        .await;

    assert_eq!(list_status, 200);
    assert_eq!(list["total"], 0);
    for r in [get, del, ren] {
        let (s, b) = status_json(r).await;
        assert_eq!(s, 404, "{b}");
        assert!(b["detail"].as_str().unwrap().contains("not found"));
    }
    let (_, mine) = status_json(app.get("/v1/disks", &alice).await).await;
    assert_eq!(mine["total"], 1);
}

#[tokio::test]
async fn disks_in_use_cannot_be_deleted_or_renamed_and_free_ones_can() {
    let app = spawn_app().await;
    let (alice, key) = app.user_with_key("alice", Role::User).await;
    app.post("/v1/disks", &key, create("home", None)).await;
    app.post("/v1/disks", &key, create("taken", None)).await;
    let client = app.db.connect().await;
    let disk = store_disks::get(&client, alice.user_id, "home")
        .await
        .unwrap();
    let reservation_id = queued_reservation(&app, &alice).await;
    store_disks::attach(&client, disk.disk_id, reservation_id)
        .await
        .unwrap();

    let (s1, b1) = status_json(
        app.call(Method::DELETE, "/v1/disks/home", Some(&key), None)
            .await,
    )
    .await;
    let (s2, b2) = status_json(
        app.post(
            "/v1/disks/home/rename",
            &key,
            RenameDisk {
                new_name: "x".into(),
            },
        )
        .await,
    )
    .await;
    assert_eq!(
        (s1, b1["code"].as_str()),
        (409, Some("disk_in_use")),
        "{b1}"
    );
    assert_eq!(
        (s2, b2["code"].as_str()),
        (409, Some("disk_in_use")),
        "{b2}"
    );

    store_disks::release(&client, disk.disk_id, reservation_id)
        .await
        .unwrap();
    let (s3, b3) = status_json(
        app.post(
            "/v1/disks/home/rename",
            &key,
            RenameDisk {
                new_name: "taken".into(),
            },
        )
        .await,
    )
    .await;
    assert_eq!(
        (s3, b3["code"].as_str()),
        (409, Some("disk_exists")),
        "{b3}"
    );
    let (s4, b4) = status_json(
        app.post(
            "/v1/disks/home/rename",
            &key,
            RenameDisk {
                new_name: "scratch".into(),
            },
        )
        .await,
    )
    .await;
    assert_eq!(s4, 200, "{b4}");
    assert_eq!(b4["new_name"], "scratch");
    // Bodyless DELETE, as the original client sends it.
    let del = app
        .http
        .delete(format!("{}/v1/disks/scratch", app.base))
        .bearer_auth(&key)
        .header("content-type", "application/json")
        .header("content-length", "0")
        .send()
        .await
        .unwrap();
    let (s5, b5) = status_json(del).await;
    assert_eq!(s5, 200, "{b5}");
    assert!(
        b5["message"]
            .as_str()
            .unwrap()
            .contains("Will be deleted on")
    );
    let op = b5["operation_id"].as_str().unwrap();
    let (s6, b6) = status_json(
        app.get(&format!("/v1/disks/scratch/operations/{op}"), &key)
            .await,
    )
    .await;
    assert_eq!(s6, 200);
    assert_eq!(b6["is_deleted"], true);
    assert!(b6["delete_date"].is_string());
    assert_eq!(
        status_json(app.get("/v1/disks/scratch", &key).await)
            .await
            .0,
        404
    );
    let audit: i64 = client
        .query_one(
            "SELECT count(*) FROM audit_log WHERE action LIKE 'disk.%' AND actor = 'alice'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(audit, 4, "two creates, a rename and a delete are audited");
}

#[tokio::test]
async fn a_renamed_or_deleted_disks_name_can_be_given_to_a_new_disk_with_its_own_claim() {
    let app = spawn_app().await;
    let (alice, key) = app.user_with_key("alice", Role::User).await;
    let created = app.post("/v1/disks", &key, create("home", None)).await;
    assert_eq!(created.status(), 200);
    let renamed = app
        .post(
            "/v1/disks/home/rename",
            &key,
            RenameDisk {
                new_name: "old-home".into(),
            },
        )
        .await;
    assert_eq!(renamed.status(), 200);

    let (again, body) = status_json(app.post("/v1/disks", &key, create("home", None)).await).await;
    assert_eq!(again, 200, "the name is free after the rename: {body}");
    let deleted = app
        .call(Method::DELETE, "/v1/disks/home", Some(&key), None)
        .await;
    assert_eq!(deleted.status(), 200);
    let (third, body) = status_json(app.post("/v1/disks", &key, create("home", None)).await).await;
    assert_eq!(
        third, 200,
        "the name is free while the deleted disk waits for its purge: {body}"
    );

    let client = app.db.connect().await;
    let claims: Vec<String> = client
        .query(
            "SELECT kube_name FROM disks WHERE user_id = $1 ORDER BY created_at",
            &[&alice.user_id],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(claims.len(), 3);
    assert!(
        claims[0] != claims[1] && claims[1] != claims[2] && claims[0] != claims[2],
        "each disk has its own claim: {claims:?}"
    );
    let old = store_disks::get(&client, alice.user_id, "old-home")
        .await
        .unwrap();
    assert_eq!(old.kube_name, claims[0], "a rename keeps the claim");
}

#[tokio::test]
async fn an_operation_still_answers_after_a_later_operation_on_its_disk() {
    let app = spawn_app().await;
    let (alice, key) = app.user_with_key("alice", Role::User).await;
    let (_, created) = status_json(app.post("/v1/disks", &key, create("home", None)).await).await;
    let first = created["operation_id"].as_str().unwrap().to_owned();
    let client = app.db.connect().await;
    let disk = store_disks::get(&client, alice.user_id, "home")
        .await
        .unwrap();
    assert!(
        store_disks::finish_operation(&client, disk.disk_id, first.parse().unwrap(), None)
            .await
            .unwrap()
    );
    let (_, deleted) = status_json(
        app.call(Method::DELETE, "/v1/disks/home", Some(&key), None)
            .await,
    )
    .await;
    let second = deleted["operation_id"].as_str().unwrap().to_owned();

    let (s1, op1) = status_json(
        app.get(&format!("/v1/disks/home/operations/{first}"), &key)
            .await,
    )
    .await;
    let (s2, op2) = status_json(
        app.get(&format!("/v1/disks/home/operations/{second}"), &key)
            .await,
    )
    .await;

    assert_eq!(s1, 200, "the create is still known: {op1}");
    assert_eq!(
        (op1["status"].as_str(), op1["completed"].as_bool()),
        (Some("completed"), Some(true))
    );
    assert_eq!(s2, 200, "{op2}");
    assert_eq!(
        (op2["status"].as_str(), op2["is_deleted"].as_bool()),
        (Some("pending"), Some(true))
    );
    // Another user cannot read them.
    let (_, bob) = app.user_with_key("bob", Role::User).await;
    let (s3, _) = status_json(
        app.get(&format!("/v1/disks/home/operations/{first}"), &bob)
            .await,
    )
    .await;
    assert_eq!(s3, 404);
}

#[tokio::test]
async fn a_disks_content_is_the_listing_of_its_newest_listed_snapshot_and_its_owners_only() {
    let app = spawn_app().await;
    let (alice, key) = app.user_with_key("alice", Role::User).await;
    let (_, bob) = app.user_with_key("bob", Role::User).await;
    let (status, _) = status_json(app.post("/v1/disks", &key, create("home", None)).await).await;
    assert_eq!(status, 200);
    let content = |key: &str, name: &str| {
        let (app, key, name) = (&app, key.to_owned(), name.to_owned());
        async move { status_json(app.get(&format!("/v1/disks/{name}/content"), &key).await).await }
    };

    let (s1, none) = content(&key, "home").await;
    assert_eq!(s1, 200, "{none}");
    assert_eq!(none["content"], serde_json::Value::Null);
    assert!(
        none["message"].as_str().unwrap().contains("no listing yet"),
        "{none}"
    );

    // Two snapshots, as the expiry job records them; the newer one's listing is shown.
    let client = app.db.connect().await;
    let disk = store_disks::get(&client, alice.user_id, "home")
        .await
        .unwrap();
    for (snapshot, listing) in [
        ("snap-old", "old.txt\n"),
        ("snap-new", "data\ndata/a.csv\nrun.py\n"),
    ] {
        let id = store_disks::add_snapshot(&client, disk.disk_id, snapshot, None)
            .await
            .unwrap();
        store_disks::set_snapshot_listing(&client, id, listing)
            .await
            .unwrap();
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    let (s2, shown) = content(&key, "home").await;
    assert_eq!(s2, 200, "{shown}");
    assert_eq!(shown["content"], "data\ndata/a.csv\nrun.py\n");
    assert!(shown["snapshot_date"].is_string(), "{shown}");
    assert_eq!(shown["s3_path"], serde_json::Value::Null);
    assert!(
        shown["message"].as_str().unwrap().contains("3 entries"),
        "{shown}"
    );

    let (s3, other) = content(&bob, "home").await;
    assert_eq!(s3, 404, "another user's disk: {other}");
    let (s4, missing) = content(&key, "nope").await;
    assert_eq!(s4, 404, "{missing}");
    assert!(missing["detail"].as_str().unwrap().contains("nope"));
}
