//! API keys authenticate only while their key is live and their owner is active.

use crate::common::user;
use chrono::Duration;
use gpudev_domain::{ApiKey, PresentedKey, Username};
use gpudev_store::StoreError;
use gpudev_store::api_keys::{self, KeyRejection, NewKey};
use gpudev_store::users::{self, Role};

fn new_key(ttl: Duration) -> NewKey<'static> {
    NewKey {
        ttl,
        description: Some("test"),
        auth_method: "admin",
        auth_issuer: None,
        rate_limit_per_minute: None,
    }
}

fn presented(k: &ApiKey) -> PresentedKey {
    PresentedKey::parse(k.expose_secret()).unwrap()
}

#[tokio::test]
async fn a_live_key_authenticates_its_owner_and_only_its_hash_is_stored() {
    let db = gpudev_testkit::test_db().await;
    let client = db.connect().await;
    let alice = user(&client, "alice").await;
    let key = ApiKey::generate().unwrap();
    api_keys::insert(&client, alice.user_id, &key, &new_key(Duration::hours(2)))
        .await
        .unwrap();

    let auth = api_keys::authenticate(&client, &presented(&key).hash())
        .await
        .unwrap()
        .unwrap();

    assert_eq!(auth.username.as_str(), "alice");
    assert_eq!(auth.role, Role::User);
    let stored: i64 = client
        .query_one(
            "SELECT count(*) FROM api_keys WHERE key_hash = $1 AND key_prefix = $2",
            &[&key.hash().as_str(), &key.prefix()],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(stored, 1);
    let leaked: i64 = client
        .query_one(
            "SELECT count(*) FROM api_keys k WHERE row_to_json(k)::text LIKE '%' || $1 || '%'",
            &[&key.expose_secret()],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(leaked, 0, "the secret itself is never stored");
}

#[tokio::test]
async fn unknown_revoked_and_expired_keys_are_rejected_with_their_reason() {
    let db = gpudev_testkit::test_db().await;
    let client = db.connect().await;
    let alice = user(&client, "alice").await;
    let revoked = ApiKey::generate().unwrap();
    let rec = api_keys::insert(
        &client,
        alice.user_id,
        &revoked,
        &new_key(Duration::hours(1)),
    )
    .await
    .unwrap();
    api_keys::revoke(&client, rec.key_id, Some(alice.user_id))
        .await
        .unwrap();
    let expired = ApiKey::generate().unwrap();
    let rec = api_keys::insert(
        &client,
        alice.user_id,
        &expired,
        &new_key(Duration::hours(1)),
    )
    .await
    .unwrap();
    client
        .execute(
            "UPDATE api_keys SET created_at = now() - interval '2 hours', expires_at = now() - interval '1 second' WHERE key_id = $1",
            &[&rec.key_id],
        )
        .await
        .unwrap();

    let check = |k: ApiKey| {
        let client = &client;
        async move {
            api_keys::authenticate(client, &presented(&k).hash())
                .await
                .unwrap()
        }
    };
    assert_eq!(
        check(ApiKey::generate().unwrap()).await,
        Err(KeyRejection::Unknown)
    );
    assert_eq!(check(revoked).await, Err(KeyRejection::Revoked));
    assert_eq!(check(expired).await, Err(KeyRejection::Expired));
}

#[tokio::test]
async fn users_revoke_only_their_own_keys() {
    let db = gpudev_testkit::test_db().await;
    let client = db.connect().await;
    let alice = user(&client, "alice").await;
    let mallory = user(&client, "mallory").await;
    let key = ApiKey::generate().unwrap();
    let rec = api_keys::insert(&client, alice.user_id, &key, &new_key(Duration::hours(1)))
        .await
        .unwrap();

    let err = api_keys::revoke(&client, rec.key_id, Some(mallory.user_id))
        .await
        .unwrap_err();

    assert!(matches!(err, StoreError::NotFound(_)));
    assert!(
        api_keys::authenticate(&client, &presented(&key).hash())
            .await
            .unwrap()
            .is_ok()
    );
}

#[tokio::test]
async fn disabling_a_user_refuses_their_keys_and_logging_in_does_not_re_enable_them() {
    let db = gpudev_testkit::test_db().await;
    let client = db.connect().await;
    let name = Username::parse("alice").unwrap();
    let arn = "arn:aws:sts::123456789012:assumed-role/SSOCloudDevGpuReservation/alice";
    let alice = users::upsert_aws_login(&client, &name, arn, false)
        .await
        .unwrap();
    let key = ApiKey::generate().unwrap();
    api_keys::insert(&client, alice.user_id, &key, &new_key(Duration::hours(1)))
        .await
        .unwrap();

    users::set_active(&client, "alice", false).await.unwrap();
    let again = users::upsert_aws_login(&client, &name, arn, false)
        .await
        .unwrap();

    assert!(
        !again.is_active,
        "a login must not re-enable a disabled user"
    );
    assert_eq!(again.user_id, alice.user_id);
    assert_eq!(
        api_keys::authenticate(&client, &presented(&key).hash())
            .await
            .unwrap(),
        Err(KeyRejection::UserDisabled)
    );
    let keys = api_keys::list(&client, Some(&again)).await.unwrap();
    assert!(
        keys.iter().all(|k| k.revoked_at.is_some()),
        "disabling revokes live keys"
    );
}

#[tokio::test]
async fn admin_role_is_granted_by_login_and_never_silently_removed() {
    let db = gpudev_testkit::test_db().await;
    let client = db.connect().await;
    let name = Username::parse("root-ish").unwrap();
    let arn = "arn:aws:sts::123456789012:assumed-role/Admins/root-ish";

    let first = users::upsert_aws_login(&client, &name, arn, true)
        .await
        .unwrap();
    let second = users::upsert_aws_login(&client, &name, arn, false)
        .await
        .unwrap();

    assert_eq!(first.role, Role::Admin);
    assert_eq!(second.role, Role::Admin);
    let demoted = users::set_role(&client, "root-ish", Role::User)
        .await
        .unwrap();
    assert_eq!(demoted.role, Role::User);
}

#[tokio::test]
async fn creating_a_taken_username_is_a_conflict_and_unknown_users_are_not_found() {
    let db = gpudev_testkit::test_db().await;
    let client = db.connect().await;
    user(&client, "alice").await;

    let dup = users::create(&client, &Username::parse("alice").unwrap(), Role::User).await;

    assert!(matches!(dup, Err(StoreError::Conflict(_))), "{dup:?}");
    assert!(matches!(
        users::set_active(&client, "nobody", false).await,
        Err(StoreError::NotFound(_))
    ));
    assert!(
        users::find_by_name(&client, "nobody")
            .await
            .unwrap()
            .is_none()
    );
}

#[tokio::test]
async fn a_name_that_is_no_valid_username_finds_nobody_without_a_query_error() {
    let db = gpudev_testkit::test_db().await;
    let client = db.connect().await;
    user(&client, "alice").await;

    // schemathesis found `?user=` with a NUL answered 500: PostgreSQL refuses NUL in text.
    for name in ["ali\0ce", "\0", "alice bob", ""] {
        assert!(
            users::find_by_name(&client, name).await.unwrap().is_none(),
            "{name:?}"
        );
    }
    assert!(
        users::find_by_name(&client, "alice")
            .await
            .unwrap()
            .is_some()
    );
}

#[tokio::test]
async fn text_postgres_cannot_store_is_told_apart_from_faults() {
    let db = gpudev_testkit::test_db().await;
    let client = db.connect().await;

    let nul = client
        .query_one("SELECT $1::text", &[&"a\0b"])
        .await
        .unwrap_err();
    let other = client.query_one("SELECT 1/0", &[]).await.unwrap_err();

    assert!(StoreError::from(nul).is_unstorable_text());
    assert!(!StoreError::from(other).is_unstorable_text());
}
