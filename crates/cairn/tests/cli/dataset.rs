use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Output, Stdio};

use crate::{BIN, Server, stderr, stdout};

const PASSWORD: &str = "dataset-test-admin-pw";

/// `cairn dataset ARGS` as a client of `server`.
fn dataset(server: &Server, token: &str, args: &[&str]) -> Output {
    Command::new(BIN)
        .arg("dataset")
        .args(args)
        .env("CAIRN_URL", &server.url)
        .env("CAIRN_TOKEN", token)
        .stdin(Stdio::null())
        .output()
        .expect("run cairn dataset")
}

fn succeeded(output: &Output) -> String {
    assert!(output.status.success(), "stdout: {}\nstderr: {}", stdout(output), stderr(output));
    stdout(output).trim().to_owned()
}

async fn token(server: &Server) -> String {
    let response = reqwest::Client::new()
        .post(format!("{}/api/v1/tokens", server.url))
        .basic_auth("admin", Some(PASSWORD))
        .json(&serde_json::json!({"name": "cli"}))
        .send()
        .await
        .expect("token request");
    assert_eq!(response.status(), 201);
    let body: serde_json::Value = response.json().await.expect("json");
    body["token"].as_str().expect("token").to_owned()
}

fn write_tree(dir: &Path, files: &BTreeMap<String, Vec<u8>>) {
    for (path, content) in files {
        let full = dir.join(path);
        std::fs::create_dir_all(full.parent().expect("parent")).expect("mkdir");
        std::fs::write(full, content).expect("write");
    }
}

fn read_tree(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut found = BTreeMap::new();
    let mut pending = vec![dir.to_owned()];
    while let Some(current) = pending.pop() {
        for entry in std::fs::read_dir(current).expect("read dir") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                pending.push(path);
            } else {
                let relative = path.strip_prefix(dir).expect("under dir").to_string_lossy().into_owned();
                found.insert(relative, std::fs::read(&path).expect("read"));
            }
        }
    }
    found
}

/// The blobs in the server's local store.
fn stored_blobs(data_dir: &Path) -> Vec<std::path::PathBuf> {
    let root = data_dir.join("artifacts/datasets/blobs/sha256");
    let Ok(prefixes) = std::fs::read_dir(root) else { return Vec::new() };
    prefixes
        .flat_map(|p| std::fs::read_dir(p.expect("entry").path()).expect("read"))
        .map(|e| e.expect("entry").path())
        .collect()
}

#[tokio::test]
async fn push_and_pull_round_trip_dedupe_resume_and_catch_corruption() {
    let home = tempfile::tempdir().expect("tempdir");
    let data_dir = home.path().join("data");
    let server = Server::start(&data_dir, &[("CAIRN_ADMIN_PASSWORD", PASSWORD)]);
    let token = token(&server).await;

    // 300 small files (every tenth a copy of another) and one of 101 MB.
    let mut files: BTreeMap<String, Vec<u8>> = (0..300)
        .map(|i| (format!("shard-{}/item-{i:03}.txt", i % 7), format!("content {}", i - i % 10 * (i % 2)).into_bytes()))
        .collect();
    files.insert("table.csv".into(), b"id,score\n1,0.5\n2,0.25\n".to_vec());
    let big: Vec<u8> = (0..101 * 1024 * 1024u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
    files.insert("big/weights.bin".into(), big);
    let distinct = files.values().collect::<std::collections::BTreeSet<_>>().len();
    assert!(distinct < files.len(), "the tree has duplicate contents");
    let source = home.path().join("source");
    write_tree(&source, &files);
    let source_arg = source.to_str().expect("utf-8");

    assert_eq!(succeeded(&dataset(&server, &token, &["push", "corpus", source_arg, "-m", "first"])), "corpus@1");
    assert_eq!(stored_blobs(&data_dir).len(), distinct, "each distinct content stored once");

    // Unchanged: no new version, nothing uploaded.
    let again = dataset(&server, &token, &["push", "corpus", source_arg]);
    assert_eq!(succeeded(&again), "corpus@1");
    assert!(stderr(&again).contains("nothing changed"), "{}", stderr(&again));

    // One file changed, one added: two new blobs, version 2.
    let mut v2 = files.clone();
    v2.insert("table.csv".into(), b"id,score\n1,0.5\n2,0.25\n3,1.0\n".to_vec());
    v2.insert("extra/new.txt".into(), b"new".to_vec());
    write_tree(&source, &v2);
    assert_eq!(succeeded(&dataset(&server, &token, &["push", "corpus", source_arg])), "corpus@2");
    assert_eq!(stored_blobs(&data_dir).len(), distinct + 2);

    // Pull version 1 exactly, then again (nothing to download).
    let out = home.path().join("out");
    let out_arg = out.to_str().expect("utf-8");
    succeeded(&dataset(&server, &token, &["pull", "corpus@1", out_arg]));
    assert!(read_tree(&out) == files, "version 1 pulled byte for byte");
    let resumed = dataset(&server, &token, &["pull", "corpus@1", out_arg]);
    succeeded(&resumed);
    assert!(stderr(&resumed).contains("0 downloaded"), "{}", stderr(&resumed));
    succeeded(&dataset(&server, &token, &["pull", "corpus", home.path().join("latest").to_str().expect("utf-8")]));
    assert!(read_tree(&home.path().join("latest")) == v2, "the latest version by default");

    let listed = succeeded(&dataset(&server, &token, &["list"]));
    assert!(listed.contains("corpus") && listed.contains(" 2 "), "{listed}");
    let shown = succeeded(&dataset(&server, &token, &["show", "corpus@2"]));
    assert!(shown.contains("table.csv: 3 rows; id: integer, score: float"), "{shown}");
    let json: serde_json::Value =
        serde_json::from_str(&succeeded(&dataset(&server, &token, &["show", "corpus", "--json"]))).expect("json");
    assert_eq!(json["versions"][0]["message"], "");
    assert_eq!(json["versions"][1]["message"], "first");

    // A stored blob altered behind Cairn's back: the pull names the file and writes nothing for it.
    let extra_sha = hex_sha256(b"new");
    let blob = stored_blobs(&data_dir).into_iter().find(|p| p.ends_with(&extra_sha)).expect("blob of extra/new.txt");
    std::fs::write(&blob, b"bad").expect("corrupt the blob");
    let fresh = home.path().join("fresh");
    let corrupt = dataset(&server, &token, &["pull", "corpus@2", fresh.to_str().expect("utf-8")]);
    assert!(!corrupt.status.success());
    assert!(stderr(&corrupt).contains("extra/new.txt") && stderr(&corrupt).contains("corrupt"), "{}", stderr(&corrupt));
    assert!(!fresh.join("extra/new.txt").exists(), "a corrupt file is not written");
    assert!(fresh.join("table.csv").exists(), "the other files are");

    let refused = dataset(&server, "not-a-token", &["list"]);
    assert!(!refused.status.success());
    assert!(stderr(&refused).contains("HTTP 401"), "{}", stderr(&refused));
    let bad_ref = dataset(&server, &token, &["pull", "corpus@x", out_arg]);
    assert!(!bad_ref.status.success());
    assert!(stderr(&bad_ref).contains("invalid dataset version"), "{}", stderr(&bad_ref));
    server.stop();
}

fn hex_sha256(content: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(content))
}
