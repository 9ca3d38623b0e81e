use std::os::unix::fs::PermissionsExt;

use crate::{BIN, Server, cairn, stderr, stdout};

async fn get(url: &str, auth: Option<(&str, &str)>) -> reqwest::Response {
    let client = reqwest::Client::new();
    let request = client.get(url);
    let request = match auth {
        Some((user, password)) => request.basic_auth(user, Some(password)),
        None => request,
    };
    request.send().await.expect("request")
}

#[tokio::test]
async fn first_start_bootstraps_admin_and_a_restart_keeps_users_tokens_and_audit() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(dir.path(), &[]);
    assert_eq!(get(&format!("{}/readyz", server.url), None).await.status(), 200);

    let password_file = dir.path().join("initial-admin-password");
    let mode = std::fs::metadata(&password_file).expect("password file").permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "only the owner may read the initial password");
    let password = std::fs::read_to_string(&password_file).expect("read").trim().to_owned();

    let client = reqwest::Client::new();
    let created: serde_json::Value = client
        .post(format!("{}/api/v1/tokens", server.url))
        .basic_auth("admin", Some(&password))
        .json(&serde_json::json!({"name": "survives"}))
        .send()
        .await
        .expect("request")
        .json()
        .await
        .expect("json");
    let token = created["token"].as_str().expect("token").to_owned();
    server.stop();

    let server = Server::start(dir.path(), &[]);
    let me = client.get(format!("{}/api/v1/me", server.url)).bearer_auth(&token).send().await.expect("request");
    assert_eq!(me.status(), 200, "the token from before the restart still works");
    let audit: serde_json::Value = client
        .get(format!("{}/api/v1/audit", server.url))
        .bearer_auth(&token)
        .send()
        .await
        .expect("request")
        .json()
        .await
        .expect("json");
    let actions: Vec<&str> =
        audit["events"].as_array().expect("events").iter().filter_map(|e| e["action"].as_str()).collect();
    assert!(actions.contains(&"token.create") && actions.contains(&"user.create"), "{actions:?}");
    server.stop();
}

#[tokio::test]
async fn a_second_server_on_the_same_data_dir_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(dir.path(), &[("CAIRN_ADMIN_PASSWORD", "configured-password")]);
    let second = cairn(dir.path(), &["serve", "--listen", "127.0.0.1:0"]);
    assert!(!second.status.success());
    let err = stderr(&second);
    assert!(err.contains("already in use by another cairn process"), "{err}");
    assert_eq!(get(&format!("{}/api/v1/me", server.url), Some(("admin", "configured-password"))).await.status(), 200);
    assert!(!dir.path().join("initial-admin-password").exists(), "no generated password when one is configured");
    server.stop();
}

#[test]
fn configuration_errors_are_one_clear_line() {
    let dir = tempfile::tempdir().expect("tempdir");
    let bad_listen = cairn(dir.path(), &["serve", "--listen", "nowhere"]);
    assert!(!bad_listen.status.success());
    let err = stderr(&bad_listen);
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(err.contains("`listen`") && err.contains("127.0.0.1:8080"), "{err}");

    let config = dir.path().join("cairn.toml");
    std::fs::write(&config, "executor = \"slurm\"\n").expect("write");
    let bad_file = cairn(dir.path(), &["serve", "--config", config.to_str().expect("utf8")]);
    let err = stderr(&bad_file);
    assert!(!bad_file.status.success());
    assert!(err.contains("`executor`") && err.contains("local or kubernetes"), "{err}");

    std::fs::write(&config, "colour = \"blue\"\n").expect("write");
    let unknown = cairn(dir.path(), &["serve", "--config", config.to_str().expect("utf8")]);
    assert!(stderr(&unknown).contains("colour"), "{}", stderr(&unknown));
}

#[test]
fn missing_postgres_binaries_say_how_to_fix_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let output = std::process::Command::new(BIN)
        .args(["serve", "--listen", "127.0.0.1:0"])
        .env("CAIRN_DATA_DIR", dir.path())
        .env("CAIRN_PG_BINDIR", dir.path().join("no-such-dir"))
        .env_remove("DATABASE_URL")
        .output()
        .expect("run");
    assert!(!output.status.success());
    let err = stderr(&output);
    assert!(err.contains("CAIRN_PG_BINDIR"), "{err}");
}

#[test]
fn help_lists_every_subcommand() {
    let output = std::process::Command::new(BIN).arg("--help").output().expect("run");
    let help = stdout(&output);
    for sub in ["serve", "migrate", "user", "token", "audit", "dataset"] {
        assert!(help.contains(sub), "{sub} missing from:\n{help}");
    }
}

#[tokio::test]
async fn an_external_database_url_works_the_same() {
    let url = cairn_tests::fresh_database_url().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(dir.path(), &[("DATABASE_URL", &url), ("CAIRN_ADMIN_PASSWORD", "external-password")]);
    assert_eq!(get(&format!("{}/readyz", server.url), None).await.status(), 200);
    assert_eq!(get(&format!("{}/api/v1/me", server.url), Some(("admin", "external-password"))).await.status(), 200);
    assert!(!dir.path().join("pg").exists(), "no embedded cluster with DATABASE_URL");
    // SAFETY: kill(2) on our own child's pid.
    unsafe { libc::kill(server.child.id() as i32, libc::SIGTERM) };
    let mut server = server;
    assert!(server.child.wait().expect("wait").success());
}
