//! The MLflow artifact proxy (`/api/2.0/mlflow-artifacts/...`) on both stores: every test
//! body below runs once on the local store (`artifacts::local::*`) and once on a real
//! S3-compatible server (`artifacts::s3::*`, s3s-fs).

use std::time::{Duration, Instant};

use cairn_storage::Storage;
use cairn_tests::{StorageKind, TestApp, UserRole, spawn_app_on, spawn_app_on_with, spawn_app_with_storage};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const BASE: &str = "/api/2.0/mlflow-artifacts/artifacts";
const RUN: &str = "1/0123456789abcdef0123456789abcdef/artifacts";

/// Runs each named `async fn(StorageKind)` as a test on each backend.
macro_rules! on_both_backends {
    ($($name:ident),+ $(,)?) => {
        mod local {
            $(#[tokio::test] async fn $name() { super::$name(cairn_tests::StorageKind::Local).await })+
        }
        mod s3 {
            $(#[tokio::test] async fn $name() { super::$name(cairn_tests::StorageKind::S3).await })+
        }
    };
}

on_both_backends!(
    upload_then_download_is_byte_exact_with_type_and_length,
    fifty_megabytes_stream_both_ways,
    listing_is_relative_with_sizes_and_dirs,
    listing_a_missing_dir_or_a_file_is_empty,
    nested_dirs_list_level_by_level,
    delete_removes_a_file_or_a_whole_tree,
    traversal_and_absolute_paths_are_rejected,
    unknown_files_and_dirs_are_404,
    byte_ranges_are_served,
    names_with_odd_characters_round_trip,
    viewers_read_but_cannot_write,
    requests_without_credentials_are_401,
    multipart_endpoints_answer_400,
    an_interrupted_upload_leaves_nothing_visible,
    a_stalled_upload_is_cut_off_and_leaves_nothing,
    an_upload_declared_over_the_limit_is_refused_up_front,
    logged_model_paths_work_like_run_paths,
);

/// The app and an admin token.
struct Fixture {
    app: TestApp,
    token: String,
}

impl Fixture {
    async fn new(kind: StorageKind) -> Fixture {
        Fixture::with_timeout(kind, Duration::from_secs(60)).await
    }

    /// With `request_timeout` set to `timeout`.
    async fn with_timeout(kind: StorageKind, timeout: Duration) -> Fixture {
        let app = spawn_app_on_with(kind, |c| c.request_timeout = timeout).await;
        let token = app.admin_token().await;
        Fixture { app, token }
    }

    fn url(&self, path: &str) -> String {
        self.app.at(&format!("{BASE}/{path}"))
    }

    async fn put(&self, path: &str, body: impl Into<reqwest::Body>) -> reqwest::Response {
        self.app.client.put(self.url(path)).bearer_auth(&self.token).body(body).send().await.expect("PUT")
    }

    async fn put_ok(&self, path: &str, body: impl Into<reqwest::Body>) {
        let response = self.put(path, body).await;
        assert_eq!(response.status(), 200, "PUT {path}");
        assert_eq!(response.json::<Value>().await.expect("json"), json!({}));
    }

    async fn get(&self, path: &str) -> reqwest::Response {
        self.app.client.get(self.url(path)).bearer_auth(&self.token).send().await.expect("GET")
    }

    async fn delete(&self, path: &str) -> reqwest::Response {
        self.app.client.delete(self.url(path)).bearer_auth(&self.token).send().await.expect("DELETE")
    }

    /// The listing of `dir`, which must answer 200.
    async fn list(&self, dir: &str) -> Value {
        let response = self
            .app
            .client
            .get(self.app.at(BASE))
            .query(&[("path", dir)])
            .bearer_auth(&self.token)
            .send()
            .await
            .expect("list");
        assert_eq!(response.status(), 200, "list {dir}");
        response.json().await.expect("json")
    }
}

/// Status and MLflow error code of an error response.
async fn error_of(response: reqwest::Response) -> (u16, String) {
    let status = response.status().as_u16();
    let body: Value = response.json().await.expect("an MLflow error body");
    (status, body["error_code"].as_str().unwrap_or_default().to_owned())
}

/// `len` bytes that do not repeat with any period a bug could hide behind.
fn pattern(len: usize) -> Vec<u8> {
    let mut state = 0x2545_f491_4f6c_dd1d_u64;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect()
}

async fn upload_then_download_is_byte_exact_with_type_and_length(kind: StorageKind) {
    let f = Fixture::new(kind).await;
    let cases = [
        ("metrics.json", b"{\"a\": 1}".to_vec(), "application/json"),
        ("model.pkl", pattern(123_457), "application/octet-stream"),
        ("notes.txt", b"hello".to_vec(), "text/plain"),
        ("empty.bin", Vec::new(), "application/octet-stream"),
    ];
    for (name, body, content_type) in cases {
        let path = format!("{RUN}/{name}");
        f.put_ok(&path, body.clone()).await;
        let response = f.get(&path).await;
        assert_eq!(response.status(), 200, "{name}");
        let headers = response.headers().clone();
        assert_eq!(headers["content-type"], content_type, "{name}");
        assert_eq!(headers["content-length"], body.len().to_string().as_str(), "{name}");
        assert_eq!(headers["x-content-type-options"], "nosniff");
        assert!(headers["content-disposition"].to_str().expect("ascii").starts_with("attachment;"));
        assert!(response.bytes().await.expect("body") == body, "{name} round-trips");
    }
    // Uploading again replaces.
    f.put_ok(&format!("{RUN}/notes.txt"), "bye").await;
    assert_eq!(f.get(&format!("{RUN}/notes.txt")).await.text().await.expect("text"), "bye");
}

async fn fifty_megabytes_stream_both_ways(kind: StorageKind) {
    let f = Fixture::new(kind).await;
    let body = pattern(50 * 1024 * 1024);
    let started = Instant::now();
    f.put_ok(&format!("{RUN}/big.bin"), body.clone()).await;
    let upload = started.elapsed();

    let started = Instant::now();
    let response = f.get(&format!("{RUN}/big.bin")).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.content_length(), Some(body.len() as u64));
    let downloaded = response.bytes().await.expect("body");
    let download = started.elapsed();
    assert!(downloaded == body, "50 MB round-trip");

    // The same body streamed in chunks, without a Content-Length.
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> = body.chunks(1 << 20).map(|c| Ok(c.to_vec())).collect();
    let started = Instant::now();
    f.put_ok(&format!("{RUN}/streamed.bin"), reqwest::Body::wrap_stream(futures::stream::iter(chunks))).await;
    let chunked = started.elapsed();
    let downloaded = f.get(&format!("{RUN}/streamed.bin")).await.bytes().await.expect("body");
    assert!(downloaded == body, "chunked 50 MB round-trip");
    eprintln!("{kind:?}: 50 MiB upload {upload:.2?}, download {download:.2?}, chunked upload {chunked:.2?}");
    let listing = f.list(RUN).await;
    assert_eq!(listing["files"][0], json!({"path": "big.bin", "is_dir": false, "file_size": 52_428_800}));
}

async fn listing_is_relative_with_sizes_and_dirs(kind: StorageKind) {
    let f = Fixture::new(kind).await;
    f.put_ok(&format!("{RUN}/hello.txt"), vec![b'h'; 1200]).await;
    f.put_ok(&format!("{RUN}/sub/inner.txt"), "x").await;
    f.put_ok(&format!("{RUN}/a.json"), "{}").await;
    let expected = json!({"files": [
        {"path": "a.json", "is_dir": false, "file_size": 2},
        {"path": "hello.txt", "is_dir": false, "file_size": 1200},
        {"path": "sub", "is_dir": true},
    ]});
    assert_eq!(f.list(RUN).await, expected);
    assert_eq!(f.list(&format!("{RUN}/")).await, expected, "a trailing slash names the same dir");
    assert_eq!(f.list("1").await, json!({"files": [{"path": "0123456789abcdef0123456789abcdef", "is_dir": true}]}));
}

async fn listing_a_missing_dir_or_a_file_is_empty(kind: StorageKind) {
    let f = Fixture::new(kind).await;
    f.put_ok(&format!("{RUN}/file.txt"), "x").await;
    for dir in ["9/nothing/here", &format!("{RUN}/file.txt"), &format!("{RUN}/fi")] {
        assert_eq!(f.list(dir).await, json!({}), "{dir}");
    }
}

async fn nested_dirs_list_level_by_level(kind: StorageKind) {
    let f = Fixture::new(kind).await;
    for path in ["model/MLmodel", "model/data/weights.bin", "model/data/deep/er/x", "model-card.md"] {
        f.put_ok(&format!("{RUN}/{path}"), path.as_bytes().to_vec()).await;
    }
    assert_eq!(
        f.list(RUN).await,
        json!({"files": [
            {"path": "model", "is_dir": true},
            {"path": "model-card.md", "is_dir": false, "file_size": 13},
        ]})
    );
    assert_eq!(
        f.list(&format!("{RUN}/model")).await,
        json!({"files": [
            {"path": "MLmodel", "is_dir": false, "file_size": 13},
            {"path": "data", "is_dir": true},
        ]})
    );
    assert_eq!(f.list(&format!("{RUN}/model/data/deep")).await, json!({"files": [{"path": "er", "is_dir": true}]}));
    let mlmodel = f.get(&format!("{RUN}/model/MLmodel")).await;
    assert_eq!(mlmodel.headers()["content-type"], "text/plain; charset=utf-8");
}

async fn delete_removes_a_file_or_a_whole_tree(kind: StorageKind) {
    let f = Fixture::new(kind).await;
    for path in ["keep.txt", "sub/a", "sub/deep/b", "sub-other"] {
        f.put_ok(&format!("{RUN}/{path}"), "x").await;
    }
    let response = f.delete(&format!("{RUN}/sub")).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.json::<Value>().await.expect("json"), json!({}));
    assert_eq!(
        f.list(RUN).await,
        json!({"files": [
            {"path": "keep.txt", "is_dir": false, "file_size": 1},
            {"path": "sub-other", "is_dir": false, "file_size": 1},
        ]}),
        "the tree went, its neighbour with a longer name stayed"
    );
    assert_eq!(f.delete(&format!("{RUN}/keep.txt")).await.status(), 200);
    assert_eq!(f.get(&format!("{RUN}/keep.txt")).await.status(), 404);
    assert_eq!(f.delete(&format!("{RUN}/never-was")).await.status(), 200, "deleting nothing succeeds");
    assert_eq!(f.delete(&format!("{RUN}/sub-other")).await.status(), 200);
    assert_eq!(f.list(RUN).await, json!({}));

    // Uploads and deletes are audited with the path and what they moved.
    let rows = cairn_db::audit::recent(&f.app.db.pool, 100).await.expect("audit rows");
    let row = |action: &str, target: &str| {
        rows.iter()
            .find(|r| r.action == action && r.target == format!("artifact:{RUN}/{target}"))
            .unwrap_or_else(|| panic!("no {action} of {target} in the audit log"))
    };
    let upload = row("artifact.upload", "sub/deep/b");
    assert_eq!((upload.actor_name.as_str(), upload.outcome.as_str()), ("admin", "success"));
    assert!(upload.details.contains("\"bytes\":1"), "{}", upload.details);
    assert!(row("artifact.delete", "sub").details.contains("\"objects\":2"));
}

/// Sends one request as written, bypassing URL normalisation (which would resolve `..`
/// and `%2e%2e` before sending), and returns the status and the MLflow error code.
async fn raw_request(f: &Fixture, method: &str, target: &str) -> (u16, String) {
    let mut stream = tokio::net::TcpStream::connect(f.app.addr).await.expect("connect");
    let request = format!(
        "{method} {target} HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {}\r\n\
         Content-Length: 1\r\nConnection: close\r\n\r\nx",
        f.app.addr, f.token
    );
    stream.write_all(request.as_bytes()).await.expect("write");
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await.expect("read");
    let text = String::from_utf8_lossy(&response);
    let status = text.get(9..12).and_then(|s| s.parse().ok()).unwrap_or(0);
    let body = text.split_once("\r\n\r\n").map_or("", |(_, body)| body);
    let code = serde_json::from_str::<Value>(body).ok().and_then(|v| v["error_code"].as_str().map(str::to_owned));
    (status, code.unwrap_or_else(|| format!("(no MLflow error in {body:?})")))
}

async fn traversal_and_absolute_paths_are_rejected(kind: StorageKind) {
    let f = Fixture::new(kind).await;
    let attempts = [
        ("PUT", format!("{BASE}/1/../../../etc/passwd")),
        ("PUT", format!("{BASE}/1/%2e%2e/%2E%2E/x")),
        ("PUT", format!("{BASE}/1/..%2f..%2fx")),
        ("PUT", format!("{BASE}/%2Fetc%2Fpasswd")),
        ("PUT", format!("{BASE}/1/..%5c..%5cx")),
        ("PUT", format!("{BASE}/1/a%00b")),
        ("PUT", format!("{BASE}/1//x")),
        ("GET", format!("{BASE}/1/../x")),
        ("GET", format!("{BASE}/1/%2e%2e/%2e%2e/x")),
        ("DELETE", format!("{BASE}/1/..")),
        ("DELETE", format!("{BASE}/..%2F..")),
        ("GET", format!("{BASE}?path=../x")),
        ("GET", format!("{BASE}?path=1/%2e%2e/%2e%2e")),
        ("GET", format!("{BASE}?path=%2Fetc")),
        ("GET", format!("{BASE}?path=C:%2FWindows")),
    ];
    for (method, target) in &attempts {
        let (status, code) = raw_request(&f, method, target).await;
        assert_eq!((status, code.as_str()), (400, "INVALID_PARAMETER_VALUE"), "{method} {target}");
    }
    // The leading `/` of `artifacts//etc/passwd` makes the path absolute.
    let (status, _) = raw_request(&f, "PUT", &format!("{BASE}//etc/passwd")).await;
    assert!(status == 400 || status == 404, "PUT {BASE}//etc/passwd: {status}");
    assert_eq!(f.list("").await, json!({}), "nothing was written anywhere");
}

async fn unknown_files_and_dirs_are_404(kind: StorageKind) {
    let f = Fixture::new(kind).await;
    f.put_ok(&format!("{RUN}/dir/file"), "x").await;
    let mut paths = vec![format!("{RUN}/nope.txt"), format!("{RUN}/dir/file/below"), "9".into()];
    // A GET of a "directory" is a GET of a key that does not exist. Real S3 says so (404);
    // s3s-fs keeps objects as files and fails reading its directory (500), so that case is
    // only checked on the local store.
    if kind == StorageKind::Local {
        paths.push(format!("{RUN}/dir"));
    }
    for path in paths {
        let (status, code) = error_of(f.get(&path).await).await;
        assert_eq!((status, code.as_str()), (404, "RESOURCE_DOES_NOT_EXIST"), "{path}");
    }
}

async fn byte_ranges_are_served(kind: StorageKind) {
    let f = Fixture::new(kind).await;
    let body = pattern(1000);
    let path = format!("{RUN}/r.bin");
    f.put_ok(&path, body.clone()).await;
    let ranged =
        |range: &'static str| f.app.client.get(f.url(&path)).bearer_auth(&f.token).header("range", range).send();
    let response = ranged("bytes=100-199").await.expect("request");
    assert_eq!(response.status(), 206);
    assert_eq!(response.headers()["content-range"], "bytes 100-199/1000");
    assert_eq!(response.headers()["content-length"], "100");
    assert!(response.bytes().await.expect("body") == body[100..200]);
    let response = ranged("bytes=-10").await.expect("request");
    assert_eq!(response.headers()["content-range"], "bytes 990-999/1000");
    assert!(response.bytes().await.expect("body") == body[990..]);
    let response = ranged("bytes=2000-").await.expect("request");
    assert_eq!(response.status(), 416);
    assert_eq!(response.headers()["content-range"], "bytes */1000");
    let response = ranged("bytes=0-1,5-6").await.expect("request");
    assert_eq!(response.status(), 200, "several ranges: the whole body");
    assert_eq!(response.bytes().await.expect("body").len(), 1000);
}

async fn names_with_odd_characters_round_trip(kind: StorageKind) {
    let f = Fixture::new(kind).await;
    let names = ["with space.txt", "100%.txt", "ckpt#1", "ünï cödé ✓.txt", "a+b=c&d.txt", "[x]{y}~.txt"];
    for (i, name) in names.iter().enumerate() {
        let encoded: String = url::form_urlencoded::byte_serialize(name.as_bytes()).collect();
        let encoded = encoded.replace('+', "%20");
        f.put_ok(&format!("{RUN}/odd/{encoded}"), vec![b'x'; i]).await;
        let response = f.get(&format!("{RUN}/odd/{encoded}")).await;
        assert_eq!(response.status(), 200, "{name}");
        assert_eq!(response.bytes().await.expect("body").len(), i, "{name}");
    }
    let listing = f.list(&format!("{RUN}/odd")).await;
    let mut listed: Vec<&str> =
        listing["files"].as_array().expect("files").iter().map(|e| e["path"].as_str().expect("path")).collect();
    listed.sort_unstable();
    let mut expected = names.to_vec();
    expected.sort_unstable();
    assert_eq!(listed, expected);
}

async fn viewers_read_but_cannot_write(kind: StorageKind) {
    let f = Fixture::new(kind).await;
    // Artifact paths start with their experiment's id; only admins may touch paths of
    // experiments that do not exist, so this one (id 1) must.
    let created = f
        .app
        .client
        .post(f.app.at("/api/2.0/mlflow/experiments/create"))
        .bearer_auth(&f.token)
        .json(&serde_json::json!({"name": "artifacts"}))
        .send()
        .await
        .expect("create experiment");
    assert_eq!(created.json::<serde_json::Value>().await.expect("json")["experiment_id"], "1");
    f.put_ok(&format!("{RUN}/a.txt"), "a").await;
    f.app.add_user("vera", "vera-password-1", UserRole::Viewer).await;
    let viewer = f.app.token_for("vera", "vera-password-1").await;
    let client = &f.app.client;
    let read = client.get(f.url(&format!("{RUN}/a.txt"))).bearer_auth(&viewer).send().await.expect("GET");
    assert_eq!(read.status(), 200);
    let listed = client.get(f.app.at(BASE)).query(&[("path", RUN)]).bearer_auth(&viewer).send().await.expect("list");
    assert_eq!(listed.status(), 200);
    let put = client.put(f.url(&format!("{RUN}/b.txt"))).bearer_auth(&viewer).body("b").send().await.expect("PUT");
    assert_eq!(error_of(put).await, (403, "PERMISSION_DENIED".to_owned()));
    let delete = client.delete(f.url(&format!("{RUN}/a.txt"))).bearer_auth(&viewer).send().await.expect("DELETE");
    assert_eq!(error_of(delete).await, (403, "PERMISSION_DENIED".to_owned()));
    assert_eq!(f.list(RUN).await["files"].as_array().map(Vec::len), Some(1), "nothing changed");
    // The client's other way to authenticate: Basic.
    let basic = client
        .get(f.url(&format!("{RUN}/a.txt")))
        .basic_auth("vera", Some("vera-password-1"))
        .send()
        .await
        .expect("GET");
    assert_eq!(basic.status(), 200);
}

async fn requests_without_credentials_are_401(kind: StorageKind) {
    let f = Fixture::new(kind).await;
    f.put_ok(&format!("{RUN}/a.txt"), "a").await;
    let client = &f.app.client;
    let url = f.url(&format!("{RUN}/a.txt"));
    let requests = [
        client.get(&url),
        client.put(&url).body("b"),
        client.delete(&url),
        client.get(f.app.at(BASE)).query(&[("path", RUN)]),
    ];
    for request in requests {
        let response = request.send().await.expect("request");
        assert_eq!(error_of(response).await, (401, "UNAUTHENTICATED".to_owned()));
    }
    assert_eq!(f.get(&format!("{RUN}/a.txt")).await.text().await.expect("text"), "a");
}

async fn multipart_endpoints_answer_400(kind: StorageKind) {
    let f = Fixture::new(kind).await;
    for action in ["create", "complete", "abort"] {
        let response = f
            .app
            .client
            .post(f.app.at(&format!("/api/2.0/mlflow-artifacts/mpu/{action}")))
            .bearer_auth(&f.token)
            .json(&json!({"path": "x", "num_parts": 2}))
            .send()
            .await
            .expect("request");
        assert_eq!(error_of(response).await, (400, "BAD_REQUEST".to_owned()), "{action}");
    }
}

async fn an_interrupted_upload_leaves_nothing_visible(kind: StorageKind) {
    let f = Fixture::new(kind).await;
    let path = format!("{RUN}/partial/big.bin");
    // Announce 40 MiB, send 20 (several parts: a multipart upload is under way), hang up.
    let mut stream = tokio::net::TcpStream::connect(f.app.addr).await.expect("connect");
    let head = format!(
        "PUT {BASE}/{path} HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {}\r\nContent-Length: {}\r\n\r\n",
        f.app.addr,
        f.token,
        40 << 20
    );
    stream.write_all(head.as_bytes()).await.expect("write head");
    stream.write_all(&pattern(20 << 20)).await.expect("write half the body");
    stream.flush().await.expect("flush");
    drop(stream);

    // The server notices the closed connection, aborts the upload and tidies up.
    assert_becomes_empty(&f, RUN).await;
    assert_eq!(f.get(&path).await.status(), 404);
    // And the same path takes a complete upload afterwards.
    f.put_ok(&path, pattern(10 << 20)).await;
    assert_eq!(f.get(&path).await.bytes().await.expect("body").len(), 10 << 20);
}

/// Polls until the listing of `dir` is empty, as the abort of an upload may finish just
/// after its response.
async fn assert_becomes_empty(f: &Fixture, dir: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while f.list(dir).await != json!({}) {
        assert!(Instant::now() < deadline, "the failed upload left {}", f.list(dir).await);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn a_stalled_upload_is_cut_off_and_leaves_nothing(kind: StorageKind) {
    let f = Fixture::with_timeout(kind, Duration::from_secs(1)).await;
    let path = format!("{RUN}/stalled/big.bin");
    let mut stream = tokio::net::TcpStream::connect(f.app.addr).await.expect("connect");
    let head = format!(
        "PUT {BASE}/{path} HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {}\r\nContent-Length: {}\r\n\r\n",
        f.app.addr,
        f.token,
        40 << 20
    );
    stream.write_all(head.as_bytes()).await.expect("write head");
    stream.write_all(&pattern(10 << 20)).await.expect("write a quarter of the body");
    // Then nothing more: the server gives up after `request_timeout` without data.
    let started = Instant::now();
    let mut response = Vec::new();
    tokio::time::timeout(Duration::from_secs(15), stream.read_to_end(&mut response))
        .await
        .expect("the server answers a stalled upload")
        .expect("read");
    let status = String::from_utf8_lossy(&response).get(9..12).unwrap_or_default().to_owned();
    // 400 from the upload's own idle timeout; 408 where the app-wide request timeout
    // still covers uploads and fires first.
    assert!(status == "400" || status == "408", "status {status}");
    assert!(started.elapsed() < Duration::from_secs(5), "cut off after {:?}", started.elapsed());
    assert_becomes_empty(&f, RUN).await;
    assert_eq!(f.get(&path).await.status(), 404);
}

async fn an_upload_declared_over_the_limit_is_refused_up_front(kind: StorageKind) {
    let f = Fixture::new(kind).await;
    let mut stream = tokio::net::TcpStream::connect(f.app.addr).await.expect("connect");
    let too_big = cairn_server::mlflow::artifacts::MAX_UPLOAD_BYTES + 1;
    let head = format!(
        "PUT {BASE}/{RUN}/huge.bin HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {}\r\n\
         Content-Length: {too_big}\r\nConnection: close\r\n\r\n",
        f.app.addr, f.token
    );
    stream.write_all(head.as_bytes()).await.expect("write head");
    let mut response = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut response))
        .await
        .expect("answered before any body is sent")
        .expect("read");
    let text = String::from_utf8_lossy(&response);
    assert!(text.starts_with("HTTP/1.1 400"), "{text}");
    assert!(text.contains("INVALID_PARAMETER_VALUE") && text.contains("limit"), "{text}");
    assert_eq!(f.list(RUN).await, json!({}));
}

/// Uploads take as long as their data keeps coming: the request timeout bounds the wait
/// for the next piece, not the whole upload.
async fn a_slow_upload_outlives_the_request_timeout(kind: StorageKind) {
    let f = Fixture::with_timeout(kind, Duration::from_secs(1)).await;
    let piece = pattern(3 << 20);
    let pieces = futures::stream::unfold(0, {
        let piece = piece.clone();
        move |sent| {
            let piece = piece.clone();
            async move {
                if sent == 5 {
                    return None;
                }
                tokio::time::sleep(Duration::from_millis(500)).await;
                Some((Ok::<_, std::io::Error>(piece), sent + 1))
            }
        }
    });
    let started = Instant::now();
    f.put_ok(&format!("{RUN}/slow.bin"), reqwest::Body::wrap_stream(pieces)).await;
    assert!(started.elapsed() > Duration::from_secs(2), "the upload took longer than the timeout");
    let stored = f.get(&format!("{RUN}/slow.bin")).await.bytes().await.expect("body");
    assert!(stored == piece.repeat(5));
}

#[tokio::test]
async fn a_slow_upload_outlives_the_request_timeout_locally() {
    a_slow_upload_outlives_the_request_timeout(StorageKind::Local).await;
}

#[tokio::test]
async fn a_slow_upload_outlives_the_request_timeout_on_s3() {
    a_slow_upload_outlives_the_request_timeout(StorageKind::S3).await;
}

async fn logged_model_paths_work_like_run_paths(kind: StorageKind) {
    let f = Fixture::new(kind).await;
    let model = "1/models/m-0123456789abcdef0123456789abcdef/artifacts";
    f.put_ok(&format!("{model}/MLmodel"), "flavors: {}\n").await;
    f.put_ok(&format!("{RUN}/x"), "x").await;
    assert_eq!(
        f.list("1").await,
        json!({"files": [
            {"path": "0123456789abcdef0123456789abcdef", "is_dir": true},
            {"path": "models", "is_dir": true},
        ]})
    );
    assert_eq!(f.list(model).await, json!({"files": [{"path": "MLmodel", "is_dir": false, "file_size": 12}]}));
    // Stored under mlflow-artifacts/, so other data can share the store.
    let key = cairn_storage::ArtifactPath::parse(&format!("mlflow-artifacts/{model}/MLmodel")).expect("path");
    let stored = f.app.storage.get_stream(&key, None).await.expect("stored under mlflow-artifacts/");
    assert_eq!(stored.size, 12);
}

#[tokio::test]
async fn readiness_is_ok_on_s3() {
    let app = spawn_app_on(StorageKind::S3).await;
    let ready = app.client.get(app.at("/readyz")).send().await.expect("request");
    assert_eq!(ready.status(), 200);
    let body: Value = ready.json().await.expect("json");
    assert_eq!(body["storage"]["status"], "ok");
}

#[tokio::test]
async fn readiness_reports_an_unreachable_s3_server() {
    let storage = Storage::s3(&cairn_tests::s3::unreachable_s3_config()).expect("storage");
    let app = spawn_app_with_storage(storage, |_| {}).await;
    let started = Instant::now();
    let ready = app.client.get(app.at("/readyz")).send().await.expect("request");
    assert_eq!(ready.status(), 503);
    assert!(started.elapsed() < Duration::from_secs(5), "answered in {:?}", started.elapsed());
    let body: Value = ready.json().await.expect("json");
    assert_eq!(body["storage"]["status"], "error");
    assert_eq!(body["database"]["status"], "ok");
}
