//! Logging set-up: `tracing` to stderr, as text or JSON, filtered by `RUST_LOG`
//! (default: info for Cairn, warnings for libraries).

use tracing_subscriber::EnvFilter;

use crate::config::LogFormat;

pub fn init(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        EnvFilter::new("warn,cairn=info,cairn_server=info,cairn_db=info,cairn_storage=info,tower_http=info")
    });
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    match format {
        LogFormat::Json => builder.json().flatten_event(true).with_current_span(true).init(),
        LogFormat::Text => builder.init(),
    }
}
