//! The dev box agent (ADR 18) as the driver sets it up: an init container copying it from
//! gpudev's image, its URL in the environment, and a token in the Secret whose hash — and only
//! that — is in the database. Checked against the API server the suite runs on (the fake or
//! the real control plane).

use gpudev_domain::AgentToken;
use gpudev_processor::config::AgentSettings;
use serde_json::Value;

use crate::common::{Ask, env};

fn with_agent(env: &crate::common::Env) -> gpudev_processor::ProcessorConfig {
    let mut config = env.config.clone();
    config.agent = Some(AgentSettings {
        image: "ghcr.io/gpudev/gpudev:0.1.0".into(),
        api_url: "https://gpudev.example.com".into(),
    });
    config
}

async fn stored_hash(env: &crate::common::Env, id: uuid::Uuid) -> String {
    env.db
        .connect()
        .await
        .query_one(
            "SELECT agent_token_hash FROM reservation_activity WHERE reservation_id = $1",
            &[&id],
        )
        .await
        .unwrap()
        .get(0)
}

fn token_of(secret: &Value) -> AgentToken {
    use base64::Engine as _;
    let raw = secret["data"]["agent-token"]
        .as_str()
        .expect("agent-token key");
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(raw)
        .unwrap();
    AgentToken::parse(std::str::from_utf8(&bytes).unwrap()).unwrap()
}

#[tokio::test]
async fn each_new_dev_box_gets_the_agent_and_a_token_stored_only_as_its_hash() {
    let env = env().await;
    env.cluster.seed_nodes("h100", 2, 8).await;
    let alice = env.user("alice").await;
    let id = env
        .submit(
            &alice,
            Ask {
                jupyter: true,
                ..Ask::gpus("h100", 2)
            },
        )
        .await;
    let p = env.processor_with(with_agent(&env)).await;
    assert!(p.try_become_leader().await.unwrap());
    p.process_once().await.unwrap();
    p.scheduler_pass().await.unwrap();

    let secrets = env.objects("secrets").await;
    assert_eq!(secrets.len(), 1);
    let token = token_of(&secrets[0]);
    let stored = stored_hash(&env, id).await;
    assert_eq!(stored, token.hash());
    assert_ne!(stored, token.expose());

    let pod = &env.objects("pods").await[0];
    let init = &pod["spec"]["initContainers"][0];
    assert_eq!(init["image"], "ghcr.io/gpudev/gpudev:0.1.0");
    assert_eq!(init["securityContext"]["runAsNonRoot"], true);
    let dev_env = pod["spec"]["containers"][0]["env"].as_array().unwrap();
    assert!(
        dev_env
            .iter()
            .any(|e| e["name"] == "GPUDEV_AGENT_URL" && e["value"] == "https://gpudev.example.com")
    );
    assert!(
        !pod.to_string().contains(token.expose()),
        "the token is in the Secret only"
    );

    // Driving again, and switching Jupyter off, keep the box's token.
    p.reconcile().await.unwrap();
    crate::lifecycle::announce(
        &env,
        id,
        "disable_jupyter",
        serde_json::json!({ "jupyter_enabled": false }),
    )
    .await;
    p.process_once().await.unwrap();
    assert!(!env.get(id).await.jupyter_enabled);
    let again = env.objects("secrets").await;
    assert_eq!(token_of(&again[0]), token);
    let stored_again = stored_hash(&env, id).await;
    assert_eq!(stored_again, token.hash());
}

#[tokio::test]
async fn without_agent_settings_boxes_run_no_agent() {
    let env = env().await;
    env.cluster.seed_nodes("h100", 1, 8).await;
    let alice = env.user("alice").await;
    env.submit(&alice, Ask::gpus("h100", 1)).await;
    let p = env.leader().await;
    p.process_once().await.unwrap();
    p.scheduler_pass().await.unwrap();
    let pod = &env.objects("pods").await[0];
    assert!(pod["spec"]["initContainers"].is_null());
    assert!(env.objects("secrets").await[0]["data"]["agent-token"].is_null());
    let rows: i64 = env
        .db
        .connect()
        .await
        .query_one("SELECT count(*) FROM reservation_activity", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(rows, 0);
}
