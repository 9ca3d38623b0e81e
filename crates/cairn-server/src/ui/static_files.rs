//! Static assets, embedded in the binary at build time: our own stylesheet and small
//! scripts from `web/static`, and the pinned third-party libraries from `web/node_modules`
//! that `build.rs` copies into `OUT_DIR`.

use axum::extract::Path;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};

const CSS: &str = "text/css; charset=utf-8";
const JS: &str = "text/javascript; charset=utf-8";

const ASSETS: &[(&str, &str, &str)] = &[
    ("cairn.css", CSS, include_str!("../../../../web/static/cairn.css")),
    ("time.js", JS, include_str!("../../../../web/static/time.js")),
    ("runs.js", JS, include_str!("../../../../web/static/runs.js")),
    ("joblog.js", JS, include_str!("../../../../web/static/joblog.js")),
    ("copy.js", JS, include_str!("../../../../web/static/copy.js")),
    ("charts.js", JS, include_str!("../../../../web/static/charts.js")),
    ("vendor/uPlot.iife.min.js", JS, include_str!(concat!(env!("OUT_DIR"), "/uPlot.iife.min.js"))),
    ("vendor/uPlot.min.css", CSS, include_str!(concat!(env!("OUT_DIR"), "/uPlot.min.css"))),
];

pub async fn serve(Path(file): Path<String>) -> Response {
    match ASSETS.iter().find(|(name, _, _)| *name == file) {
        Some((_, content_type, body)) => {
            ([(header::CONTENT_TYPE, *content_type), (header::CACHE_CONTROL, "public, max-age=3600")], *body)
                .into_response()
        }
        None => (StatusCode::NOT_FOUND, "no such asset").into_response(),
    }
}
