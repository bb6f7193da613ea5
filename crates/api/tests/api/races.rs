//! Concurrent writes to one thing: every answer must match what was written, and only what was
//! written is audited.

use gpudev_store::disks as store_disks;
use gpudev_store::users::Role;
use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::{count, queued_reservation, spawn_app_with, status_json};

#[tokio::test]
async fn of_twenty_concurrent_renames_of_one_disk_exactly_one_succeeds_and_is_audited() {
    // Enough connections that all twenty run at once.
    let app = spawn_app_with(&[("DB_POOL_SIZE", "24")]).await;
    let (alice, key) = app.user_with_key("alice", Role::User).await;
    let created = app
        .post("/v1/disks", &key, json!({"disk_name": "home"}))
        .await;
    assert_eq!(created.status(), 200);

    let renames = (0..20).map(|i| {
        let app = &app;
        let key = &key;
        async move {
            let resp = app
                .post(
                    "/v1/disks/home/rename",
                    key,
                    json!({"new_name": format!("n{i}")}),
                )
                .await;
            (i, status_json(resp).await)
        }
    });
    let answers: Vec<(usize, (u16, Value))> = futures::future::join_all(renames).await;

    let winners: Vec<usize> = answers
        .iter()
        .filter(|(_, (s, _))| *s == 200)
        .map(|(i, _)| *i)
        .collect();
    assert_eq!(winners.len(), 1, "exactly one rename succeeds: {answers:?}");
    for (_, (status, body)) in answers.iter().filter(|(i, _)| *i != winners[0]) {
        assert!(
            *status == 404 || *status == 409,
            "a loser gets a clear refusal: {status} {body}"
        );
        assert!(
            body["detail"].as_str().is_some_and(|d| d.contains("home")),
            "{body}"
        );
    }
    let client = app.db.connect().await;
    let disks = store_disks::list(&client, alice.user_id, false)
        .await
        .unwrap();
    assert_eq!(disks.len(), 1);
    assert_eq!(
        disks[0].disk_name.as_str(),
        format!("n{}", winners[0]),
        "the name that was answered is the name that stands"
    );
    assert_eq!(
        count(
            &app,
            "SELECT count(*) FROM audit_log WHERE action = 'disk.rename' AND outcome = 'success'"
        )
        .await,
        1,
        "only the rename that happened is audited"
    );
}

#[tokio::test]
async fn a_rename_racing_an_attach_is_refused_as_in_use_not_answered_as_done() {
    let app = spawn_app_with(&[]).await;
    let (alice, key) = app.user_with_key("alice", Role::User).await;
    let reservation = queued_reservation(&app, &alice).await;
    let created = app
        .post("/v1/disks", &key, json!({"disk_name": "home"}))
        .await;
    assert_eq!(created.status(), 200);
    let mut processor = app.db.connect().await;
    let disk = store_disks::get(&processor, alice.user_id, "home")
        .await
        .unwrap();

    // The processor attaches the disk in a transaction that is still open when the rename
    // arrives; the rename must wait for it and then see the disk in use.
    let tx = processor.transaction().await.unwrap();
    assert!(
        store_disks::attach(&tx, disk.disk_id, reservation)
            .await
            .unwrap()
    );
    let rename = tokio::spawn({
        let http = app.http.clone();
        let url = format!("{}/v1/disks/home/rename", app.base);
        let key = key.clone();
        async move {
            let resp = http
                .post(url)
                .bearer_auth(key)
                .json(&json!({"new_name": "work"}))
                .send()
                .await
                .unwrap();
            status_json(resp).await
        }
    });
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    tx.commit().await.unwrap();
    let (status, body) = rename.await.unwrap();

    assert_eq!(status, 409, "{body}");
    assert_eq!(body["code"], "disk_in_use");
    assert!(
        body["detail"]
            .as_str()
            .unwrap()
            .contains(&reservation.to_string()),
        "{body}"
    );
    let now = store_disks::get(&processor, alice.user_id, "home")
        .await
        .unwrap();
    assert_eq!(now.reservation_id, Some(reservation));
    assert_eq!(
        count(
            &app,
            "SELECT count(*) FROM audit_log WHERE action = 'disk.rename'"
        )
        .await,
        0
    );

    // Once released, the same rename goes through.
    assert!(
        store_disks::release(&processor, disk.disk_id, reservation)
            .await
            .unwrap()
    );
    let (status, body) = status_json(
        app.post("/v1/disks/home/rename", &key, json!({"new_name": "work"}))
            .await,
    )
    .await;
    assert_eq!((status, body["new_name"].as_str()), (200, Some("work")));
}

#[tokio::test]
async fn a_delete_racing_a_delete_is_done_once() {
    let app = spawn_app_with(&[("DB_POOL_SIZE", "12")]).await;
    let (_, key) = app.user_with_key("alice", Role::User).await;
    app.post("/v1/disks", &key, json!({"disk_name": "home"}))
        .await;

    let deletes = (0..10).map(|_| async {
        status_json(
            app.call(Method::DELETE, "/v1/disks/home", Some(&key), None)
                .await,
        )
        .await
    });
    let answers = futures::future::join_all(deletes).await;

    let ok = answers.iter().filter(|(s, _)| *s == 200).count();
    assert_eq!(ok, 1, "{answers:?}");
    assert!(
        answers.iter().all(|(s, _)| *s == 200 || *s == 404),
        "{answers:?}"
    );
    assert_eq!(
        count(
            &app,
            "SELECT count(*) FROM audit_log WHERE action = 'disk.delete'"
        )
        .await,
        1
    );
}

#[tokio::test]
async fn concurrent_rotations_revoking_one_key_mint_exactly_one_successor() {
    let app = spawn_app_with(&[("DB_POOL_SIZE", "12")]).await;
    let (alice, key) = app.user_with_key("alice", Role::User).await;

    let rotations = (0..10).map(|_| async {
        status_json(
            app.post("/v1/keys/rotate", &key, json!({"revoke_current": true}))
                .await,
        )
        .await
    });
    let answers = futures::future::join_all(rotations).await;

    let ok = answers.iter().filter(|(s, _)| *s == 200).count();
    assert_eq!(ok, 1, "one successor of a revoked key: {answers:?}");
    for (s, b) in answers.iter().filter(|(s, _)| *s != 200) {
        assert_eq!(
            (*s, b["code"].as_str()),
            (403, Some("api_key_revoked")),
            "{b}"
        );
    }
    assert_eq!(
        count(
            &app,
            &format!(
                "SELECT count(*) FROM api_keys WHERE user_id = {} AND revoked_at IS NULL",
                alice.user_id
            )
        )
        .await,
        1,
        "the old key is revoked and only one new key exists"
    );
    assert_eq!(
        count(
            &app,
            "SELECT count(*) FROM audit_log WHERE action = 'key.rotate'"
        )
        .await,
        1
    );
}

#[tokio::test]
async fn concurrent_ssh_key_replacements_leave_one_whole_set() {
    let app = spawn_app_with(&[("DB_POOL_SIZE", "12")]).await;
    let (alice, key) = app.user_with_key("alice", Role::User).await;
    // Two disjoint sets; a merge of both would hold a key from each.
    let sets = [
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIETUbNlJBfWzOjE2V2VI7uME1ZcLQOGKhOdceh1N5BOe a@gpudev",
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIPlYOanOdaAzziQG3hlzyAkN7TZKZ8jvR/v4UEaa4rb5 b@gpudev",
    ];

    for _ in 0..5 {
        let puts = (0..10).map(|i| {
            let set = &sets[i % 2];
            let app = &app;
            let key = &key;
            async move {
                app.call(
                    Method::PUT,
                    "/v1/me/ssh-keys",
                    Some(key),
                    Some(json!({ "keys": [set] })),
                )
                .await
                .status()
                .as_u16()
            }
        });
        let statuses = futures::future::join_all(puts).await;
        assert!(statuses.iter().all(|s| *s == 200), "{statuses:?}");
        let stored = gpudev_store::ssh_keys::list(&app.db.connect().await, alice.user_id)
            .await
            .unwrap();
        assert_eq!(
            stored.len(),
            1,
            "one whole set remains, never a merge: {stored:?}"
        );
    }
}
