//! Page URLs. Every page state lives in the query string, so that a URL pasted to a
//! colleague shows the same page; these helpers write those query strings in one canonical
//! form (fixed parameter order, empty values left out).

/// `path?k=v&...` with the non-empty pairs, form-encoded; just `path` when none are left.
pub fn url(path: &str, pairs: &[(&str, &str)]) -> String {
    let mut query = url::form_urlencoded::Serializer::new(String::new());
    let mut any = false;
    for (key, value) in pairs.iter().filter(|(_, v)| !v.is_empty()) {
        query.append_pair(key, value);
        any = true;
    }
    if any { format!("{path}?{}", query.finish()) } else { path.to_owned() }
}

/// The decoded pairs of a raw query string, repeated keys included.
pub fn pairs(raw: Option<&str>) -> Vec<(String, String)> {
    url::form_urlencoded::parse(raw.unwrap_or_default().as_bytes()).into_owned().collect()
}

/// The last value of `key` in decoded pairs.
pub fn last<'a>(pairs: &'a [(String, String)], key: &str) -> Option<&'a str> {
    pairs.iter().rev().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
}

/// The path of a run's page.
pub fn run(run_uuid: &uuid::Uuid) -> String {
    format!("/runs/{}", run_uuid.simple())
}

/// The path of an experiment's runs table.
pub fn experiment(id: i64) -> String {
    format!("/experiments/{id}")
}

/// The path of a metric's JSON series (keys may hold slashes, which stay path separators).
pub fn metric_series(run_uuid: &uuid::Uuid, key: &str) -> String {
    let encoded: Vec<String> = key
        .split('/')
        .map(|segment| percent_encoding::utf8_percent_encode(segment, percent_encoding::NON_ALPHANUMERIC).to_string())
        .collect();
    format!("/runs/{}/metrics/{}.json", run_uuid.simple(), encoded.join("/"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_values_are_left_out_and_the_rest_encoded() {
        assert_eq!(url("/x", &[("a", ""), ("b", "c d"), ("e", "=&")]), "/x?b=c+d&e=%3D%26");
        assert_eq!(url("/x", &[("a", "")]), "/x");
    }

    #[test]
    fn metric_keys_keep_their_slashes() {
        let id = uuid::Uuid::nil();
        assert_eq!(
            metric_series(&id, "train/loss rate"),
            "/runs/00000000000000000000000000000000/metrics/train/loss%20rate.json"
        );
    }
}
