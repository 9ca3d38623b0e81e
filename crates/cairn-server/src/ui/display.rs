//! How values look on the pages: times (UTC in the markup, turned into local time by
//! `time.js`), durations, metric values, sizes, statuses and short commit ids.

use chrono::{DateTime, Utc};

/// A moment, rendered as `<time datetime="{iso}">{text}</time>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct When {
    /// RFC 3339 in UTC, for the `datetime` attribute and the script.
    pub iso: String,
    /// What readers without JavaScript see: `2026-11-03 14:05:09 UTC`.
    pub text: String,
}

impl When {
    /// From epoch milliseconds; `None` for values out of chrono's range.
    pub fn from_millis(millis: i64) -> Option<When> {
        let at = DateTime::<Utc>::from_timestamp_millis(millis)?;
        Some(When {
            iso: at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            text: at.format("%Y-%m-%d %H:%M:%S UTC").to_string(),
        })
    }
}

/// A run's duration: `1h 02m`, `4m 10s`, `12.3s`; `None` when it has not started, or ended
/// before it started.
/// A token's time to the minute, or `none` when it has none (never used, no expiry).
pub fn when(at: Option<chrono::DateTime<chrono::Utc>>, none: &str) -> String {
    at.map_or_else(|| none.to_owned(), |t| t.format("%Y-%m-%d %H:%M UTC").to_string())
}

pub fn duration(start: Option<i64>, end: Option<i64>) -> Option<String> {
    let millis = end?.checked_sub(start?)?;
    if millis < 0 {
        return None;
    }
    let seconds = millis / 1000;
    Some(match seconds {
        0..60 => format!("{:.1}s", millis as f64 / 1000.0),
        60..3600 => format!("{}m {:02}s", seconds / 60, seconds % 60),
        3600..86400 => format!("{}h {:02}m", seconds / 3600, (seconds % 3600) / 60),
        _ => format!("{}d {:02}h", seconds / 86400, (seconds % 86400) / 3600),
    })
}

/// A metric value in at most about six significant digits; the exact value goes in a title.
pub fn metric(value: f64) -> String {
    if value.is_nan() {
        return "NaN".into();
    }
    if value.is_infinite() {
        return if value > 0.0 { "∞".into() } else { "−∞".into() };
    }
    let magnitude = value.abs();
    if magnitude != 0.0 && !(1e-4..1e9).contains(&magnitude) {
        return format!("{value:.4e}");
    }
    let digits = if magnitude >= 1.0 { (6 - (magnitude.log10().floor() as i32 + 1)).max(0) } else { 6 };
    let text = format!("{value:.*}", digits as usize);
    if text.contains('.') { text.trim_end_matches('0').trim_end_matches('.').to_owned() } else { text }
}

/// The exact value, for a title attribute.
pub fn metric_exact(value: f64) -> String {
    value.to_string()
}

/// The CSS class of a run status badge.
pub fn status_class(status: &str) -> &'static str {
    match status {
        "FINISHED" => "finished",
        "RUNNING" => "running",
        "FAILED" => "failed",
        "KILLED" => "killed",
        _ => "scheduled",
    }
}

/// A status as people read it: `Finished`, `Running`...
pub fn status_label(status: &str) -> String {
    let mut chars = status.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars.flat_map(char::to_lowercase)).collect(),
        None => String::new(),
    }
}

/// The first 8 characters of a git commit id.
pub fn short_commit(commit: &str) -> String {
    commit.chars().take(8).collect()
}

/// A size in bytes as people read it: `812 B`, `1.5 KiB`, `23.4 MiB`; the exact count goes in
/// a title.
pub fn bytes(size: u64) -> String {
    const UNITS: [&str; 5] = ["KiB", "MiB", "GiB", "TiB", "PiB"];
    if size < 1024 {
        return format!("{size} B");
    }
    let mut value = size as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if value < 10.0 { format!("{value:.1} {}", UNITS[unit]) } else { format!("{value:.0} {}", UNITS[unit]) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_utc_in_the_markup() {
        let when = When::from_millis(1_700_000_000_123).unwrap();
        assert_eq!(when.iso, "2023-11-14T22:13:20.123Z");
        assert_eq!(when.text, "2023-11-14 22:13:20 UTC");
    }

    #[test]
    fn durations_pick_their_unit() {
        assert_eq!(duration(Some(0), Some(12_345)).as_deref(), Some("12.3s"));
        assert_eq!(duration(Some(0), Some(250_000)).as_deref(), Some("4m 10s"));
        assert_eq!(duration(Some(0), Some(3_720_000)).as_deref(), Some("1h 02m"));
        assert_eq!(duration(Some(0), Some(90_000_000)).as_deref(), Some("1d 01h"));
        assert_eq!(duration(Some(10), None), None);
        assert_eq!(duration(Some(10), Some(5)), None);
    }

    #[test]
    fn metrics_keep_about_six_significant_digits() {
        assert_eq!(metric(0.912_345_678), "0.912346");
        assert_eq!(metric(1234.5678), "1234.57");
        assert_eq!(metric(3.0), "3");
        assert_eq!(metric(0.0), "0");
        assert_eq!(metric(1.5e-7), "1.5000e-7");
        assert_eq!(metric(f64::NAN), "NaN");
        assert_eq!(metric(-2.5), "-2.5");
    }

    #[test]
    fn statuses_read_as_words() {
        assert_eq!(status_label("FINISHED"), "Finished");
        assert_eq!(status_class("FAILED"), "failed");
    }

    #[test]
    fn sizes_pick_their_unit() {
        assert_eq!(bytes(0), "0 B");
        assert_eq!(bytes(1023), "1023 B");
        assert_eq!(bytes(1536), "1.5 KiB");
        assert_eq!(bytes(64 * 1024), "64 KiB");
        assert_eq!(bytes(5 * 1024 * 1024 * 1024), "5.0 GiB");
        assert_eq!(bytes(u64::MAX), "16384 PiB");
    }
}
