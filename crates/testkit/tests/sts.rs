//! The STS emulator: strict mode, minted role credentials, IAM user keys.

use gpudev_testkit::sts;

#[tokio::test]
async fn minted_credentials_identify_as_the_assumed_role_session() {
    let moto = sts().await;

    let creds = moto.mint("gpudev-user", "alice").await;
    let arn = moto
        .caller_identity(
            &creds.access_key_id,
            &creds.secret_access_key,
            Some(&creds.session_token),
        )
        .await;

    let expected = "arn:aws:sts::123456789012:assumed-role/gpudev-user/alice";
    assert_eq!(creds.arn, expected);
    assert_eq!(arn.as_deref(), Ok(expected));
}

#[tokio::test]
async fn the_same_role_can_be_minted_for_several_sessions() {
    let moto = sts().await;

    let alice = moto.mint("gpudev-user", "alice").await;
    let bob = moto.mint("gpudev-user", "bob").await;

    assert_ne!(alice.access_key_id, bob.access_key_id);
    assert!(bob.arn.ends_with("assumed-role/gpudev-user/bob"));
}

#[tokio::test]
async fn garbage_keys_are_rejected_with_403() {
    let moto = sts().await;

    let rejection = moto
        .caller_identity("AKIAGARBAGEGARBAGE00", "not-a-secret", None)
        .await
        .unwrap_err();

    assert_eq!(rejection.status, 403);
    assert_eq!(rejection.code, "InvalidClientTokenId");
}

#[tokio::test]
async fn a_wrong_secret_is_rejected_with_403() {
    let moto = sts().await;
    let creds = moto.mint("gpudev-user", "mallory").await;

    let rejection = moto
        .caller_identity(&creds.access_key_id, "wrong", Some(&creds.session_token))
        .await
        .unwrap_err();

    assert_eq!(rejection.status, 403);
    assert_eq!(rejection.code, "SignatureDoesNotMatch");
}

#[tokio::test]
async fn iam_user_keys_identify_as_the_user() {
    let moto = sts().await;

    let key = moto.iam_user_credentials("bob").await;
    let arn = moto
        .caller_identity(&key.access_key_id, &key.secret_access_key, None)
        .await;

    assert_eq!(key.arn, "arn:aws:iam::123456789012:user/bob");
    assert_eq!(arn.as_deref(), Ok("arn:aws:iam::123456789012:user/bob"));
}

#[tokio::test]
async fn endpoint_is_loopback_http() {
    let moto = sts().await;

    assert_eq!(moto.endpoint(), format!("http://127.0.0.1:{}", moto.port()));
}
