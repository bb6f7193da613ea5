//! What works without a server: settings and shell completions.

use crate::helpers::World;

#[tokio::test]
async fn config_get_set_and_unset_round_trip_through_the_xdg_file() {
    let w = World::new().await;
    let file = w.config_dir().join("gpu-dev").join("config.toml");

    w.run(&["config", "set", "github_user", "octocat"])
        .await
        .ok();
    w.run(&["config", "set", "api_url", &w.api_url]).await.ok();
    assert!(file.exists(), "written under XDG_CONFIG_HOME");
    let text = std::fs::read_to_string(&file).unwrap();
    assert!(text.contains("github_user = \"octocat\""), "{text}");

    let run = w.run(&["config", "get", "github_user"]).await.ok();
    assert_eq!(run.stdout, "octocat\n");
    let run = w.run(&["config", "get", "aws_profile"]).await.ok();
    assert_eq!(run.stdout, "", "unset keys print nothing");
    let all = w.run(&["config", "get", "-o", "json"]).await.ok().json();
    assert_eq!(all["github_user"], "octocat");
    assert_eq!(all["aws_profile"], serde_json::Value::Null);
    let listing = w.run(&["config", "get"]).await.ok().stdout;
    assert!(listing.contains("github_user = \"octocat\""), "{listing}");
    assert!(listing.contains("# aws_profile:"), "{listing}");

    for (key, value) in [
        ("output", "yaml"),
        ("api_url", "not a url"),
        ("colour", "blue"),
    ] {
        let run = w.run(&["config", "set", key, value]).await;
        assert_eq!(run.code, 2, "{key}: {run:#?}");
        assert!(run.stderr.starts_with("error: "), "{run:#?}");
    }

    w.run(&["config", "unset", "github_user"]).await.ok();
    assert_eq!(
        w.run(&["config", "get", "github_user"]).await.ok().stdout,
        ""
    );
}

#[tokio::test]
async fn the_configured_api_url_and_github_user_are_used() {
    let w = World::new().await;
    w.run(&["config", "set", "api_url", &w.api_url]).await.ok();
    w.run(&["config", "set", "github_user", "octocat"])
        .await
        .ok();
    w.run(&["config", "set", "output", "json"]).await.ok();
    // No GPU_DEV_API_URL: the setting names the server.
    let run = w.run_env(&["login"], &[], &["GPU_DEV_API_URL"]).await.ok();
    assert_eq!(run.json()["username"], "alice", "output = json applies");
    let run = w
        .run_env(
            &["reserve", "-t", "t4", "--no-wait"],
            &[],
            &["GPU_DEV_API_URL"],
        )
        .await
        .ok();
    let id = run.json()["job_id"].as_str().unwrap().to_owned();
    let job = w
        .run_env(&["show", &id], &[], &["GPU_DEV_API_URL"])
        .await
        .ok()
        .json();
    assert_eq!(job["github_user"], "octocat");
    // The environment variable wins over the setting.
    let run = w
        .run_env(
            &["status"],
            &[("GPU_DEV_API_URL", "http://127.0.0.1:1")],
            &[],
        )
        .await;
    assert_eq!(run.code, 1, "{run:#?}");
}

#[tokio::test]
async fn completions_are_printed_for_each_shell() {
    let w = World::new().await;
    let bash = w.run(&["completions", "bash"]).await.ok().stdout;
    assert!(bash.contains("complete -F _gpu__dev"), "{bash}");
    assert!(bash.contains("reserve") && bash.contains("--gpu-type"));
    let zsh = w.run(&["completions", "zsh"]).await.ok().stdout;
    assert!(zsh.starts_with("#compdef gpu-dev"));
    let fish = w.run(&["completions", "fish"]).await.ok().stdout;
    assert!(fish.contains("complete -c gpu-dev"));
}

#[tokio::test]
async fn the_readme_setup_needs_only_settings_and_a_credentials_file() {
    // As in the README with scripts/dev-up: a profile in a shared credentials file, and the API
    // and the local STS named in the settings (no GPU_DEV_API_URL, no AWS_ENDPOINT_URL_STS).
    let w = World::new().await;
    let file = w.home().join("dev").join("aws-credentials");
    crate::helpers::write(
        &file,
        &format!(
            "[gpudev-dev]\naws_access_key_id = {}\naws_secret_access_key = {}\naws_session_token = {}\n",
            w.aws.access_key_id, w.aws.secret_access_key, w.aws.session_token
        ),
    );
    for (key, value) in [
        ("api_url", w.api_url.as_str()),
        ("aws_profile", "gpudev-dev"),
        ("sts_endpoint", &w.moto.endpoint()),
    ] {
        w.run(&["config", "set", key, value]).await.ok();
    }
    let unset = [
        "GPU_DEV_API_URL",
        "AWS_ENDPOINT_URL_STS",
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "AWS_REGION",
    ];
    let set = [("AWS_SHARED_CREDENTIALS_FILE", file.to_str().unwrap())];
    let run = w.run_env(&["login"], &set, &unset).await.ok();
    assert!(run.stdout.contains("as alice"), "{run:#?}");
    let run = w
        .run_env(
            &[
                "reserve",
                "-t",
                "t4",
                "--no-wait",
                "--github-user",
                "octocat",
            ],
            &set,
            &unset,
        )
        .await
        .ok();
    assert!(run.stdout.contains(" is queued"), "{run:#?}");
}
