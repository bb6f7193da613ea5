//! Exit codes and messages: 2 for usage errors, 1 for API errors with the API's own detail,
//! never a stack trace or an HTTP dump.

use crate::helpers::{World, write};

#[tokio::test]
async fn bad_flags_and_arguments_exit_2_with_usage() {
    let w = World::new().await;
    for args in [
        vec!["reserve", "-t", "t4", "--bogus"],
        vec!["reserve"],
        vec!["reserve", "-t", "t4", "--hours", "0"],
        vec!["reserve", "-t", "t4", "--hours", "soon"],
        vec!["reserve", "-t", "t4", "--env", "NOEQUALS"],
        vec!["extend", "abcdefgh"],
        vec!["list", "--limit", "0"],
        vec!["frobnicate"],
        vec!["-o", "yaml", "list"],
        vec!["completions", "tcsh"],
    ] {
        let run = w.run(&args).await;
        assert_eq!(run.code, 2, "{args:?}: {run:#?}");
        assert!(run.stderr.starts_with("error:"), "{args:?}: {run:#?}");
        assert_eq!(run.stdout, "");
    }
    assert!(!w.credentials_path().exists(), "usage errors never log in");
}

#[tokio::test]
async fn help_and_version_exit_0() {
    let w = World::new().await;
    let run = w.run(&["--help"]).await.ok();
    for command in [
        "login",
        "reserve",
        "list",
        "show",
        "cancel",
        "extend",
        "connect",
        "avail",
        "status",
        "disks",
        "keys",
        "ssh-keys",
        "config",
        "completions",
    ] {
        assert!(run.stdout.contains(&format!("  {command} ")), "{command}");
    }
    let run = w.run(&["reserve", "--help"]).await.ok();
    assert!(
        run.stdout.starts_with("Reserve a GPU dev box."),
        "{}",
        run.stdout
    );
    for flag in [
        "--gpu-type",
        "--gpus",
        "--hours",
        "--image",
        "--disk",
        "--env",
        "--name",
        "--jupyter",
        "--github-user",
        "--distributed",
        "--no-wait",
    ] {
        assert!(run.stdout.contains(flag), "{flag}");
    }
    let run = w.run(&["--version"]).await.ok();
    assert!(run.stdout.starts_with("gpu-dev "));
}

#[tokio::test]
async fn an_unknown_job_exits_1_with_the_apis_detail() {
    let w = World::new().await;
    w.login().await;

    let run = w
        .run(&["show", "00000000-0000-4000-8000-000000000000"])
        .await;
    assert_eq!(run.code, 1, "{run:#?}");
    assert_eq!(
        run.stderr,
        "error: Job 00000000-0000-4000-8000-000000000000 not found\n"
    );
    assert_eq!(run.stdout, "");

    let run = w.run(&["cancel", "deadbeef", "-o", "json"]).await;
    assert_eq!(run.code, 1);
    assert_eq!(run.stderr, "error: Job deadbeef not found\n");
    assert_eq!(run.stdout, "", "no JSON for a failure");

    let run = w.run(&["show", "abc"]).await;
    assert_eq!(run.code, 1);
    assert!(run.stderr.contains("at least 8 characters"), "{run:#?}");
}

#[tokio::test]
async fn api_validation_errors_exit_1_with_the_detail() {
    let w = World::new().await;
    w.login().await;
    let run = w.run(&["reserve", "-t", "q100", "--no-wait"]).await;
    assert_eq!(run.code, 1, "{run:#?}");
    assert!(run.stderr.starts_with("error: "), "{run:#?}");
    assert!(
        run.stderr.contains("h100"),
        "the valid types are listed: {run:#?}"
    );
    assert_eq!(run.stderr.lines().count(), 1);
}

#[tokio::test]
async fn an_unreachable_api_exits_1_and_names_it() {
    let w = World::new().await;
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let url = format!("http://127.0.0.1:{closed}");
    let run = w
        .run_env(&["status"], &[("GPU_DEV_API_URL", &url)], &[])
        .await;
    assert_eq!(run.code, 1, "{run:#?}");
    assert!(
        run.stderr
            .starts_with(&format!("error: could not reach the gpudev API at {url}:")),
        "{run:#?}"
    );
    assert_eq!(run.stderr.lines().count(), 1);
}

#[tokio::test]
async fn something_that_is_not_the_api_is_reported_without_its_body() {
    let w = World::new().await;
    // moto answers HTML/XML errors for paths it does not know.
    let run = w
        .run_env(&["login"], &[("GPU_DEV_API_URL", &w.moto.endpoint())], &[])
        .await;
    assert_ne!(run.code, 0, "{run:#?}");
    assert!(run.stderr.starts_with("error: "), "{run:#?}");
    assert!(!run.stderr.contains('<'), "no raw body: {run:#?}");
    assert_eq!(run.stderr.lines().count(), 1, "{run:#?}");
}

#[tokio::test]
async fn a_broken_settings_file_is_a_usage_error_that_config_set_can_repair() {
    let w = World::new().await;
    let file = w.config_dir().join("gpu-dev").join("config.toml");
    write(&file, "output = [\n");
    let run = w.run(&["status"]).await;
    assert_eq!(run.code, 2, "{run:#?}");
    assert!(run.stderr.contains("config.toml is not valid"), "{run:#?}");
    w.run(&["config", "set", "output", "json"]).await.ok();
    w.login().await;
    let run = w.run(&["status"]).await.ok();
    assert!(run.json()["total_gpus"].is_i64());
}

#[tokio::test]
async fn more_gpus_than_one_node_has_need_distributed() {
    let w = World::new().await;
    w.login().await;
    let run = w
        .run(&["reserve", "-t", "t4", "-g", "8", "--no-wait"])
        .await;
    assert_eq!(run.code, 2, "{run:#?}");
    assert_eq!(
        run.stderr,
        "error: 8 t4 GPUs is more than one node has (4); add --distributed to span 2 nodes\n"
    );
    let count: i64 = w
        .sql()
        .await
        .query_one("SELECT count(*) FROM reservations", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(count, 0, "nothing was submitted");
}
