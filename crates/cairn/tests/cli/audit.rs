//! `cairn audit verify --file` on real exports from `/api/v1/audit/export` (complete,
//! filtered, altered, cut, with anchors), and `cairn audit anchor` with `cairn audit
//! verify` against a database whose newest rows were deleted.

use std::path::Path;
use std::process::{Command, Output, Stdio};

use cairn_tests::{TestApp, spawn_app};
use sqlx::Connection;

use crate::{BIN, stderr, stdout};

/// `cairn ARGS` against the database at `url`.
fn cairn_on(url: &str, args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .env("DATABASE_URL", url)
        .env_remove("CAIRN_DATA_DIR")
        .stdin(Stdio::null())
        .output()
        .expect("run cairn")
}

/// `cairn audit verify --file FILE EXTRA...` (no database involved).
fn verify_file(file: &Path, extra: &[&str]) -> Output {
    let path = file.to_str().expect("utf-8 path");
    let mut args = vec!["audit", "verify", "--file", path];
    args.extend_from_slice(extra);
    Command::new(BIN).args(&args).env_remove("DATABASE_URL").stdin(Stdio::null()).output().expect("run cairn")
}

async fn export(app: &TestApp, token: &str, query: &str) -> String {
    let response = app
        .client
        .get(app.at(&format!("/api/v1/audit/export?format=jsonl{query}")))
        .bearer_auth(token)
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), 200);
    response.text().await.expect("body")
}

#[tokio::test]
async fn exports_verify_offline_and_tampering_names_the_line() {
    let app = spawn_app().await;
    let token = app.admin_token().await;
    for _ in 0..4 {
        app.admin_token().await;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("export.jsonl");
    let full = export(&app, &token, "").await;
    std::fs::write(&file, &full).expect("write");

    let ok = verify_file(&file, &["--complete"]);
    assert!(ok.status.success(), "{}{}", stdout(&ok), stderr(&ok));
    let report = stdout(&ok);
    assert!(report.starts_with("ok: 6 rows checked"), "{report}");
    assert!(report.contains("starting at the genesis") && report.contains("no gaps"), "{report}");

    // A filtered export: every row checks, the skipped rows are reported as gaps.
    std::fs::write(&file, export(&app, &token, "&action=token.*&actor=admin").await).expect("write");
    let filtered = verify_file(&file, &[]);
    assert!(filtered.status.success(), "{}", stdout(&filtered));
    assert!(stdout(&filtered).contains("ok: 5 rows checked"), "{}", stdout(&filtered));

    // An altered row is named by its line.
    let lines: Vec<&str> = full.lines().collect();
    let mut altered = lines.clone();
    let forged = altered[2].replace("\"actor_name\":\"admin\"", "\"actor_name\":\"mallory\"");
    assert_ne!(forged, altered[2]);
    altered[2] = &forged;
    std::fs::write(&file, altered.join("\n")).expect("write");
    let broken = verify_file(&file, &[]);
    assert_eq!(broken.status.code(), Some(2), "{}", stdout(&broken));
    let report = stdout(&broken);
    assert!(report.contains("line 3") && report.contains("row 3") && report.contains("altered"), "{report}");

    // A deleted row: a gap, which an unfiltered export (--complete) must not have.
    let mut cut = lines.clone();
    cut.remove(3);
    std::fs::write(&file, cut.join("\n")).expect("write");
    let gap = verify_file(&file, &[]);
    assert!(gap.status.success() && stdout(&gap).contains("1 gaps"), "{}", stdout(&gap));
    let complete = verify_file(&file, &["--complete"]);
    assert_eq!(complete.status.code(), Some(2));
    assert!(stdout(&complete).contains("row 4 is missing"), "{}", stdout(&complete));

    // Anchors: the head of the export is in it; a wrong hash or a row past the end is not.
    std::fs::write(&file, &full).expect("write");
    let last: serde_json::Value = serde_json::from_str(lines[5]).expect("json");
    let head = format!("{}:{}", last["id"], last["hash"].as_str().expect("hash"));
    let present = verify_file(&file, &["--anchor", &head]);
    assert!(present.status.success(), "{}", stdout(&present));
    assert!(stdout(&present).contains(&format!("anchor {head}: present")), "{}", stdout(&present));
    let wrong = format!("6:{}", "ab".repeat(32));
    let altered = verify_file(&file, &["--anchor", &wrong]);
    assert_eq!(altered.status.code(), Some(2));
    assert!(stdout(&altered).contains("ALTERED"), "{}", stdout(&altered));
    let beyond = format!("99:{}", "ab".repeat(32));
    let unchecked = verify_file(&file, &["--anchor", &beyond]);
    assert_eq!(unchecked.status.code(), Some(3));
    assert!(stdout(&unchecked).contains("NOT CHECKED"), "{}", stdout(&unchecked));
    let malformed = verify_file(&file, &["--anchor", "12"]);
    assert!(!malformed.status.success());
    assert!(stderr(&malformed).contains("ID:HASH"), "{}", stderr(&malformed));
}

#[tokio::test]
async fn stored_anchors_reveal_a_cut_tail_that_verifies_as_a_chain() {
    let url = cairn_tests::fresh_database_url().await;
    for name in ["ann", "ben"] {
        let added = cairn_on(&url, &["user", "add", name, "--password", "long-password"]);
        assert!(added.status.success(), "{}", stderr(&added));
    }
    let anchored = cairn_on(&url, &["audit", "anchor"]);
    assert!(anchored.status.success(), "{}", stderr(&anchored));
    let anchor = stdout(&anchored).trim().to_owned();
    assert!(anchor.starts_with("2:") && anchor.len() == 2 + 64, "{anchor}");
    let added = cairn_on(&url, &["user", "add", "cat", "--password", "long-password"]);
    assert!(added.status.success());

    let ok = cairn_on(&url, &["audit", "verify", "--anchor", &anchor]);
    assert!(ok.status.success(), "{}", stdout(&ok));
    let report = stdout(&ok);
    assert!(report.starts_with("ok: 4 rows checked, chain head 4:"), "{report}");
    assert!(report.contains("stored anchor #1") && report.contains(": present"), "{report}");

    // Deleting the newest rows leaves a valid chain; the anchor is what notices.
    let mut conn = sqlx::PgConnection::connect(&url).await.expect("connect");
    sqlx::raw_sql("ALTER TABLE audit_events DISABLE TRIGGER USER; DELETE FROM audit_events WHERE id >= 2")
        .execute(&mut conn)
        .await
        .expect("cut");
    let cut = cairn_on(&url, &["audit", "verify"]);
    assert_eq!(cut.status.code(), Some(2), "{}", stdout(&cut));
    let report = stdout(&cut);
    assert!(report.starts_with("ok: 1 rows checked"), "the chain itself still verifies: {report}");
    assert!(report.contains("stored anchor #1") && report.contains("MISSING"), "{report}");
}
