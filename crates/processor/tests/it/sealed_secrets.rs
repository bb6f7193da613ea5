//! The processor opens sealed environment values with its keys and puts them into the dev box's
//! Secret; a row it cannot open fails the reservation with the reason instead of starting a dev
//! box without its environment (ADR 12).

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use gpudev_domain::ReservationStatus;
use gpudev_store::SealingKeys;
use serde_json::Value;

use crate::common::{Ask, Env, env};

const VALUE: &str = "hf_very-s3cret";

fn with_token() -> Ask {
    let mut ask = Ask::gpus("t4", 1);
    ask.env.insert("HF_TOKEN".into(), VALUE.into());
    ask
}

fn secret_value(secret: &Value, key: &str) -> String {
    let encoded = secret["data"][key].as_str().unwrap_or_default();
    String::from_utf8(BASE64.decode(encoded).unwrap()).unwrap()
}

async fn failure_of(env: &Env, id: uuid::Uuid) -> String {
    let r = env.get(id).await;
    assert_eq!(r.status, ReservationStatus::Failed);
    r.failure_reason.unwrap()
}

#[tokio::test]
async fn a_value_sealed_with_the_previous_key_reaches_the_secret_after_a_rotation() {
    let mut env = env().await;
    env.cluster.seed_nodes("t4", 1, 4).await;
    let alice = env.user("slow-alice").await;
    // Sealed with key 1 by an API that still had it as current.
    let id = env.submit(&alice, with_token()).await;
    // Key 2 is current now; key 1 stays configured.
    let key1 = env.keys.clone();
    env.config.secret_keys = Some(SealingKeys::generate("test-2").unwrap().then(&key1));

    let p = env.processor_with(env.config.clone()).await;
    assert!(p.try_become_leader().await.unwrap());
    p.process_once().await.unwrap();

    assert_eq!(env.status(id).await, ReservationStatus::Preparing);
    let secret = &env.objects("secrets").await[0];
    assert_eq!(secret_value(secret, "env.HF_TOKEN"), VALUE);
}

#[tokio::test]
async fn a_row_copied_from_another_reservation_fails_it_with_the_reason() {
    let env = env().await;
    env.cluster.seed_nodes("t4", 1, 4).await;
    let alice = env.user("slow-alice").await;
    let mallory = env.user("mallory").await;
    let victim = env.submit(&alice, with_token()).await;
    let mut other = Ask::gpus("t4", 1);
    other.env.insert("HF_TOKEN".into(), "mallory's own".into());
    let thief = env.submit(&mallory, other).await;
    // Someone with write access to the table puts alice's ciphertext on mallory's reservation.
    let db = env.db.connect().await;
    db.execute(
        "UPDATE reservation_secrets t SET key_id = v.key_id, data_key = v.data_key, \
           sealed = v.sealed \
         FROM reservation_secrets v WHERE t.reservation_id = $1 AND v.reservation_id = $2",
        &[&thief, &victim],
    )
    .await
    .unwrap();

    let p = env.leader().await;
    p.process_once().await.unwrap();

    let reason = failure_of(&env, thief).await;
    assert!(
        reason.contains("altered or copied from another reservation"),
        "{reason}"
    );
    assert!(!reason.contains(VALUE));
    assert_eq!(
        env.objects_of(thief).await,
        0,
        "no dev box for the copied row"
    );
    assert_eq!(env.status(victim).await, ReservationStatus::Preparing);
    assert_eq!(env.objects_of(victim).await, 3, "alice's dev box is made");
}

#[tokio::test]
async fn a_row_sealed_with_a_key_the_processor_lacks_fails_with_the_key_id() {
    let mut env = env().await;
    env.cluster.seed_nodes("t4", 1, 4).await;
    let alice = env.user("alice").await;
    let id = env.submit(&alice, with_token()).await;
    // The key that sealed it was removed too early.
    env.config.secret_keys = Some(SealingKeys::generate("test-2").unwrap());

    let p = env.processor_with(env.config.clone()).await;
    assert!(p.try_become_leader().await.unwrap());
    p.process_once().await.unwrap();

    let reason = failure_of(&env, id).await;
    assert!(
        reason.contains("sealed with key \"test-1\", which is not among SECRETS_ENCRYPTION_KEYS"),
        "{reason}"
    );
    assert!(
        env.objects("pods").await.is_empty(),
        "no dev box without its environment"
    );
}

#[tokio::test]
async fn a_command_reaches_the_pod_through_the_secret_never_through_the_pod_spec() {
    let env = env().await;
    env.cluster.seed_nodes("t4", 1, 4).await;
    let alice = env.user("slow-alice").await;
    let mut ask = with_token();
    ask.command = Some("python train.py --token tk_c0mmand-s3cret".into());
    let id = env.submit(&alice, ask).await;

    let p = env.leader().await;
    p.process_once().await.unwrap();

    assert_eq!(env.status(id).await, ReservationStatus::Preparing);
    let secret = &env.objects("secrets").await[0];
    assert_eq!(
        secret_value(secret, "command"),
        "python train.py --token tk_c0mmand-s3cret"
    );
    let pod = &env.objects("pods").await[0];
    assert!(!pod.to_string().contains("tk_c0mmand-s3cret"));
    let files = pod["spec"]["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["name"] == "secret")
        .map(|v| v["secret"]["items"].clone())
        .unwrap();
    assert!(
        files
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f["key"] == "command" && f["path"] == "command"),
        "{files}"
    );
    // Nothing of it is kept in the reservation row, and the API's reading of the row has none.
    assert_eq!(env.get(id).await.command, None);
}
