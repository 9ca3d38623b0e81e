//! A stand-in for MLflow's scoring server, for tests of local serving that do not need
//! mlflow installed: `serving.python` (or `CAIRN_SERVING_PYTHON`) pointed at
//! [`fake_python`] runs a small Python stdlib HTTP server whatever it is asked to run.

use std::path::Path;

/// Speaks like `python -m uvicorn ... mlflow.pyfunc.scoring_server.app:app`: listens on
/// `--port`, answers `/ping`, and `/invocations` with the model directory's `answer` file;
/// `/slow` sleeps, `/crash` exits.
const FAKE_SCORING_SERVER: &str = r#"
import http.server, json, os, sys, time
port = int(sys.argv[sys.argv.index("--port") + 1])
model = os.environ["__pyfunc_model_path__"]
answer = open(os.path.join(model, "answer")).read().strip()
print("fake scoring server for", model, flush=True)
class Handler(http.server.BaseHTTPRequestHandler):
    def reply(self, status, body):
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)
    def do_GET(self):
        if self.path == "/ping":
            return self.reply(200, {})
        if self.path == "/crash":
            os._exit(3)
        if self.path == "/slow":
            time.sleep(5)
        self.reply(404, {"error": self.path})
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        self.reply(200, {"predictions": answer, "received": len(body), "query": self.path})
http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler).serve_forever()
"#;

/// A `python` for `serving.python` that runs the fake scoring server whatever it is asked.
pub fn fake_python(dir: &Path) -> std::path::PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let script = dir.join("fake_scoring_server.py");
    std::fs::write(&script, FAKE_SCORING_SERVER).expect("write the fake server");
    let python = dir.join("python");
    std::fs::write(&python, format!("#!/bin/sh\nexec python3 {} \"$@\"\n", script.display())).expect("write");
    std::fs::set_permissions(&python, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    python
}
