use crate::{admin, stderr};

#[tokio::test]
async fn an_unknown_user_or_key_is_a_clear_message_and_exit_1() {
    let db = gpudev_testkit::test_db().await;

    let no_user = admin(&db.url(), &["keys", "create", "--user", "ghost"]).await;
    let no_key = admin(&db.url(), &["keys", "revoke", "424242"]).await;
    let no_user_disable = admin(&db.url(), &["users", "disable", "ghost"]).await;

    for (out, needle) in [
        (&no_user, "user \"ghost\" not found"),
        (&no_key, "API key 424242 not found"),
        (&no_user_disable, "user \"ghost\" not found"),
    ] {
        assert_eq!(out.status.code(), Some(1), "{out:?}");
        assert!(stderr(out).contains(needle), "{}", stderr(out));
        assert_eq!(stderr(out).trim().lines().count(), 1, "{}", stderr(out));
    }
}

#[tokio::test]
async fn bad_arguments_are_a_usage_error_with_exit_2() {
    let db = gpudev_testkit::test_db().await;

    for args in [
        &["keys", "frobnicate"][..],
        &["keys", "create"],
        &["keys", "create", "--user", "a", "--ttl-hours", "0"],
        &["keys", "revoke", "not-a-number"],
        &[],
    ] {
        let out = admin(&db.url(), args).await;
        assert_eq!(out.status.code(), Some(2), "{args:?}: {out:?}");
        assert!(stderr(&out).contains("--help"), "{}", stderr(&out));
    }
}

#[tokio::test]
async fn a_bad_database_url_names_the_variable_in_one_line() {
    let out = admin("postgres://h/db?nonsense_option=1", &["users", "list"]).await;

    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(err.contains("DATABASE_URL"), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");
}

#[tokio::test]
async fn an_unreachable_database_is_one_line_naming_where_and_the_variable() {
    // Port 1 on loopback: nothing listens there.
    let out = admin(
        "postgres://gpudev:pw-not-shown@127.0.0.1:1/gpudev",
        &["users", "list"],
    )
    .await;

    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(err.contains("127.0.0.1:1/gpudev"), "{err}");
    assert!(err.contains("DATABASE_URL"), "{err}");
    assert!(
        !err.contains("pw-not-shown"),
        "the password is never printed: {err}"
    );
    assert_eq!(err.trim().lines().count(), 1, "{err}");
}

#[tokio::test]
async fn no_database_settings_at_all_is_a_clear_error() {
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_gpudev-admin"))
        .args(["users", "list"])
        .env_remove("DATABASE_URL")
        .env_remove("POSTGRES_HOST")
        .output()
        .await
        .unwrap();

    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("DATABASE_URL"), "{}", stderr(&out));
}
