//! disks, keys, ssh-keys, avail and status.

use crate::helpers::{SSH_KEY, SSH_KEY_2, World, write};

#[tokio::test]
async fn disks_are_created_listed_renamed_and_deleted() {
    let w = World::new().await;
    w.login().await;

    let op = w
        .run(&["disks", "create", "home", "--size", "50", "-o", "json"])
        .await
        .ok()
        .json();
    assert_eq!(op["disk_name"], "home");
    assert_eq!(op["action"], "create");
    assert!(op["operation_id"].as_str().is_some());
    let run = w.run(&["disk", "create", "scratch"]).await.ok();
    assert!(
        run.stdout.starts_with("Disk scratch requested (operation "),
        "{run:#?}"
    );

    let again = w.run(&["disks", "create", "home"]).await;
    assert_eq!(again.code, 1);
    assert_eq!(again.stderr, "error: Disk 'home' already exists\n");

    let list = w.run(&["disks", "list", "-o", "json"]).await.ok().json();
    assert_eq!(list["total"], 2);
    let table = w.run(&["disks", "list"]).await.ok().stdout;
    assert!(table.starts_with("NAME"), "{table}");
    assert!(
        table
            .lines()
            .any(|l| l.starts_with("home") && l.contains("50 GB")),
        "{table}"
    );

    // `show` prints the disk and what it held at its last snapshot (none yet, then a listing
    // recorded as the expiry job records it).
    let shown = w.run(&["disks", "show", "home"]).await.ok().stdout;
    assert!(shown.starts_with("Disk home: 50 GB"), "{shown}");
    assert!(shown.contains("no listing yet"), "{shown}");
    let db = w.sql().await;
    db.batch_execute(
        "INSERT INTO disk_snapshots (disk_id, kube_name, content_listing, listed_at) \
         SELECT disk_id, 'snap-home-1', E'project\\nproject/train.py\\n', now() \
         FROM disks WHERE disk_name = 'home'",
    )
    .await
    .unwrap();
    let shown = w.run(&["disks", "show", "home"]).await.ok().stdout;
    assert!(shown.contains("2 entries"), "{shown}");
    assert!(shown.ends_with("project\nproject/train.py\n"), "{shown}");
    let missing = w.run(&["disks", "show", "nope"]).await;
    assert_eq!(missing.stderr, "error: Disk 'nope' not found\n");

    let run = w.run(&["disks", "rename", "home", "home2"]).await.ok();
    assert_eq!(run.stdout, "Disk 'home' renamed to 'home2'\n");

    let op = w
        .run(&["disks", "delete", "home2", "-o", "json"])
        .await
        .ok()
        .json();
    assert_eq!(op["action"], "delete");
    let list = w.run(&["disks", "list", "-o", "json"]).await.ok().json();
    assert_eq!(list["total"], 1);
    let missing = w.run(&["disks", "delete", "nope", "--yes"]).await;
    assert_eq!(missing.code, 1);
    assert_eq!(missing.stderr, "error: Disk 'nope' not found\n");
}

#[tokio::test]
async fn keys_are_listed_rotated_and_revoked() {
    let w = World::new().await;
    w.login().await;
    let first = w.credentials();

    let list = w.run(&["keys", "list", "-o", "json"]).await.ok().json();
    assert_eq!(list["total"], 1);
    assert_eq!(list["keys"][0]["current"], true);
    assert_eq!(list["keys"][0]["key_id"], first["key_id"]);
    let table = w.run(&["keys", "list"]).await.ok().stdout;
    assert!(table.lines().nth(1).unwrap().starts_with('*'), "{table}");
    assert!(!table.contains(first["api_key"].as_str().unwrap()));

    let rotated = w.run(&["keys", "rotate", "-o", "json"]).await.ok();
    let out = rotated.json();
    assert!(out.get("api_key").is_none(), "keys are never printed");
    let second = w.credentials();
    assert_eq!(second["key_id"], out["key_id"]);
    assert_ne!(second["api_key"], first["api_key"]);
    assert!(!rotated.stdout.contains(second["api_key"].as_str().unwrap()));
    w.run(&["status"]).await.ok();

    // Revoking another key leaves this machine logged in.
    let old_id = first["key_id"].as_i64().unwrap().to_string();
    let run = w.run(&["keys", "revoke", &old_id]).await.ok();
    assert_eq!(
        run.stdout,
        format!(
            "Key {old_id} ({}…) is revoked.\n",
            first["key_prefix"].as_str().unwrap()
        )
    );
    assert!(w.credentials_path().exists());

    // Revoking its own key logs this machine out; the next command logs in again.
    let own = second["key_id"].as_i64().unwrap().to_string();
    let run = w.run(&["keys", "revoke", &own]).await.ok();
    assert!(run.stdout.contains("you are logged out here"), "{run:#?}");
    assert!(!w.credentials_path().exists());
    let run = w.run(&["keys", "list", "-o", "json"]).await.ok();
    assert!(
        run.stderr.starts_with("Not logged in; logged in as alice"),
        "{run:#?}"
    );
    let keys = run.json();
    let statuses: Vec<&str> = keys["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["status"].as_str().unwrap())
        .collect();
    assert_eq!(statuses, ["active", "revoked", "revoked"]);
}

#[tokio::test]
async fn ssh_keys_add_uploads_every_ssh_pub_by_default_and_merges_with_what_is_registered() {
    let w = World::new().await;
    w.login().await;
    let ssh = w.home().join(".ssh");
    write(&ssh.join("id_ed25519.pub"), &format!("{SSH_KEY}\n"));
    write(
        &ssh.join("id_ed25519"),
        "-----BEGIN OPENSSH PRIVATE KEY-----\nnot for upload\n",
    );

    let run = w.run(&["ssh-keys", "add"]).await.ok();
    assert!(
        run.stdout.starts_with("1 key(s) added; 1 registered:"),
        "{run:#?}"
    );
    assert!(run.stdout.contains("ssh-ed25519 SHA256:"));
    assert!(run.stdout.contains("alice@laptop"));

    // Adding the same key again changes nothing; another file adds to the set.
    let extra = w.home().join("bob.pub");
    write(&extra, &format!("# bob's key\n\n{SSH_KEY_2}\n"));
    let run = w
        .run(&["ssh-keys", "add", extra.to_str().unwrap(), "-o", "json"])
        .await
        .ok();
    assert_eq!(run.json()["total"], 2);
    let run = w.run(&["ssh-keys", "add"]).await.ok();
    assert!(
        run.stdout.starts_with("0 key(s) added; 2 registered:"),
        "{run:#?}"
    );

    let table = w.run(&["ssh-keys", "list"]).await.ok().stdout;
    assert_eq!(table.lines().count(), 3, "{table}");
    assert!(table.contains("bob@desk"));

    let bad = w.home().join("bad.pub");
    write(&bad, "ssh-ed25519 not-base64 x\n");
    let run = w.run(&["ssh-keys", "add", bad.to_str().unwrap()]).await;
    assert_eq!(run.code, 1, "{run:#?}");
    assert!(run.stderr.starts_with("error: keys[2]:"), "{run:#?}");

    let empty = World::new().await;
    let run = empty.run(&["ssh-keys", "add"]).await;
    assert_eq!(run.code, 2, "{run:#?}");
    assert!(run.stderr.contains("no public keys in"), "{run:#?}");
}

#[tokio::test]
async fn avail_and_status_show_capacity_per_gpu_type() {
    let w = World::new().await;
    w.login().await;
    w.reserve_no_wait(&["-g", "2"]).await;

    let avail = w.run(&["avail", "-o", "json"]).await.ok().json();
    assert_eq!(avail["availability"]["t4"]["queued"], 2);
    let table = w.run(&["avail"]).await.ok().stdout;
    assert!(table.starts_with("GPU TYPE"), "{table}");
    assert!(table.lines().any(|l| l.starts_with("t4 ")), "{table}");
    // Nothing has seen the nodes yet: the figures' age says so; CPU types count slots.
    let row = |name: &str| {
        table
            .lines()
            .find(|l| l.starts_with(&format!("{name} ")))
            .unwrap_or_default()
            .to_owned()
    };
    assert!(
        row("t4").contains(" gpus ") && row("t4").ends_with("unknown"),
        "{table}"
    );
    assert!(row("cpu-x86").contains("cpu slots"), "{table}");
    assert_eq!(avail["availability"]["cpu-x86"]["unit"], "cpu_slots");

    let status = w.run(&["status", "-o", "json"]).await.ok().json();
    assert_eq!(status["queued_reservations"], 1);
    assert_eq!(status["queued_gpus"], 2);
    let text = w.run(&["status"]).await.ok().stdout;
    assert!(
        text.contains("Reservations:  0 active, 0 preparing, 1 queued"),
        "{text}"
    );
    assert!(
        text.contains("CPU slots:     0 total, 0 free, 0 in use, 0 queued"),
        "{text}"
    );
    assert!(text.contains("Figures as of: unknown"), "{text}");
    assert!(text.lines().any(|l| l.starts_with("t4 ")), "{text}");
}

#[tokio::test]
async fn console_prints_a_one_time_sign_in_link_to_this_server() {
    let w = World::new().await;
    w.login().await;
    let out = w.run(&["console", "-o", "json"]).await.ok().json();
    let url = out["url"].as_str().unwrap().to_owned();
    assert!(url.contains("/ui/signin/"), "{url}");
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let page = http.get(&url).send().await.unwrap();
    assert_eq!(page.status(), 200);
    assert!(page.text().await.unwrap().contains("Sign in as"));
    let text = w.run(&["console"]).await.ok().stdout;
    assert!(text.contains("it works once"), "{text}");
}
