//! `cairn job template save|list` and `cairn job submit --template` against a real `cairn serve` with its local executor: a
//! template's latest or named version with changed params, followed to the end, and the
//! refusals a user can cause.

use std::process::{Command, Output, Stdio};

use crate::{BIN, Server, stderr, stdout};

const PASSWORD: &str = "job-test-admin-pw";

fn job(server: &Server, token: &str, args: &[&str]) -> Output {
    Command::new(BIN)
        .arg("job")
        .args(args)
        .env("CAIRN_URL", &server.url)
        .env("CAIRN_TOKEN", token)
        .stdin(Stdio::null())
        .output()
        .expect("run cairn job")
}

#[tokio::test]
async fn templates_saved_from_the_cli_run_their_latest_or_named_version_with_changed_params() {
    let home = tempfile::tempdir().expect("tempdir");
    let server = Server::start(home.path(), &[("CAIRN_ADMIN_PASSWORD", PASSWORD)]);
    let created: serde_json::Value = reqwest::Client::new()
        .post(format!("{}/api/v1/tokens", server.url))
        .basic_auth("admin", Some(PASSWORD))
        .json(&serde_json::json!({"name": "cli"}))
        .send()
        .await
        .expect("token request")
        .json()
        .await
        .expect("json");
    let token = created["token"].as_str().expect("token").to_owned();
    for (script, saved) in
        [("echo v1 lr={{lr}}", "train-resnet@1"), ("echo v2 lr={{lr}} layers={{layers}}", "train-resnet@2")]
    {
        let args =
            ["template", "save", "train-resnet", "--param", "lr=0.1", "--param", "layers=50", "--", "sh", "-c", script];
        let output = job(&server, &token, &args);
        assert!(output.status.success(), "{}", stderr(&output));
        assert_eq!(stdout(&output).trim(), saved);
    }
    let listed = stdout(&job(&server, &token, &["template", "list"]));
    let row = listed.lines().find(|l| l.starts_with("train-resnet")).expect("listed");
    assert!(
        row.split_whitespace().nth(1) == Some("2") && row.ends_with("sh -c echo v2 lr={{lr}} layers={{layers}}"),
        "{listed}"
    );

    // Latest version, one param changed, followed to its end: the log is the job's output.
    let output = job(&server, &token, &["submit", "--template", "train-resnet", "--param", "lr=0.01", "-f"]);
    assert!(output.status.success(), "stdout: {}\nstderr: {}", stdout(&output), stderr(&output));
    let printed = stdout(&output);
    assert!(printed.contains("stdout v2 lr=0.01 layers=50"), "{printed}");
    let id = printed.lines().next().expect("job id").trim().to_owned();
    let shown = job(&server, &token, &["show", &id, "--json"]);
    let shown: serde_json::Value = serde_json::from_slice(&shown.stdout).expect("json");
    assert_eq!(shown["spec"]["params"]["lr"], "0.01");

    let output = job(&server, &token, &["submit", "--template", "train-resnet@1", "-f"]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(stdout(&output).contains("stdout v1 lr=0.1"), "{}", stdout(&output));

    for (args, says) in [
        (vec!["submit", "--template", "nope"], "no job template named nope"),
        (vec!["submit", "--template", "train-resnet@9"], "train-resnet@9"),
        (vec!["submit", "--template", "a/b"], "not a template name"),
        (vec!["submit", "--template", "train-resnet", "--", "echo", "x"], "cannot be used with"),
        (vec!["submit", "--template", "train-resnet", "--env", "A=1"], "cannot be used with"),
        (vec!["submit"], "required"),
    ] {
        let output = job(&server, &token, &args);
        assert!(!output.status.success(), "{args:?} should fail");
        assert!(stderr(&output).contains(says), "{args:?}: {}", stderr(&output));
    }
    server.stop();
}
