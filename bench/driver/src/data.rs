//! The benchmark's data: deterministic in the run index, so that every server gets the same
//! runs and the driver knows the right answer to every search.

use std::fmt::Write;

/// A fixed epoch-millisecond base for start times and metric timestamps (13 digits).
pub const BASE_TS: i64 = 1_767_225_600_000; // 2026-01-01T00:00:00Z

pub const PARAMS: usize = 5;
pub const METRICS: usize = 5;
pub const TAGS: usize = 3;
/// Distinct values of each param (`v0`..`v9`): a param clause selects 10 % of the runs.
pub const PARAM_VALUES: u64 = 10;
pub const TAG_VALUES: u64 = 5;

fn mix(mut x: u64) -> u64 {
    // splitmix64
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

fn unit(x: u64) -> f64 {
    (mix(x) >> 11) as f64 / (1u64 << 53) as f64
}

pub struct RunData {
    pub params: [u64; PARAMS],
    pub tags: [u64; TAGS],
    pub metrics: [f64; METRICS],
}

pub fn run(i: usize) -> RunData {
    let seed = (i as u64) << 5;
    RunData {
        params: std::array::from_fn(|k| mix(seed + k as u64) % PARAM_VALUES),
        tags: std::array::from_fn(|k| mix(seed + 8 + k as u64) % TAG_VALUES),
        metrics: std::array::from_fn(|k| unit(seed + 16 + k as u64)),
    }
}

pub fn run_name(i: usize) -> String {
    format!("run-{i:06}")
}

pub fn create_run_body(experiment_id: &str, name: &str, start_time: i64) -> String {
    serde_json::json!({
        "experiment_id": experiment_id,
        "run_name": name,
        "start_time": start_time,
        "user_id": "bench",
        "tags": [],
    })
    .to_string()
}

/// The one log-batch of seeded run `i`: 5 params, 5 metrics, 3 tags.
pub fn seed_batch_body(run_id: &str, i: usize) -> String {
    let d = run(i);
    let mut s = String::with_capacity(900);
    write!(s, "{{\"run_id\":\"{run_id}\",\"metrics\":[").unwrap();
    for (k, v) in d.metrics.iter().enumerate() {
        if k > 0 {
            s.push(',');
        }
        write!(s, "{{\"key\":\"m{k}\",\"value\":{v:?},\"timestamp\":{},\"step\":0}}", BASE_TS + i as i64).unwrap();
    }
    s.push_str("],\"params\":[");
    for (k, v) in d.params.iter().enumerate() {
        if k > 0 {
            s.push(',');
        }
        write!(s, "{{\"key\":\"p{k}\",\"value\":\"v{v}\"}}").unwrap();
    }
    s.push_str("],\"tags\":[");
    for (k, v) in d.tags.iter().enumerate() {
        if k > 0 {
            s.push(',');
        }
        write!(s, "{{\"key\":\"t{k}\",\"value\":\"t{v}\"}}").unwrap();
    }
    s.push_str("]}");
    s
}

/// The search of query number `q`: a metric and a param clause, ordered by a metric.
pub fn search_filter(q: usize) -> String {
    format!("metrics.m0 > 0.5 AND params.p0 = 'v{}'", q as u64 % PARAM_VALUES)
}
pub const SEARCH_ORDER: &str = "metrics.m1 DESC";
pub const SEARCH_PAGE: usize = 100;

pub fn search_body(experiment_id: &str, q: usize) -> String {
    serde_json::json!({
        "experiment_ids": [experiment_id],
        "filter": search_filter(q),
        "run_view_type": "ACTIVE_ONLY",
        "max_results": SEARCH_PAGE,
        "order_by": [SEARCH_ORDER],
    })
    .to_string()
}

/// The run names search `q` must return, in order, over runs `0..runs`.
pub fn expected_search(runs: usize, q: usize) -> Vec<String> {
    let want = q as u64 % PARAM_VALUES;
    let mut hits: Vec<(f64, usize)> = (0..runs)
        .filter_map(|i| {
            let d = run(i);
            (d.metrics[0] > 0.5 && d.params[0] == want).then_some((d.metrics[1], i))
        })
        .collect();
    hits.sort_by(|a, b| b.0.total_cmp(&a.0));
    hits.truncate(SEARCH_PAGE);
    hits.into_iter().map(|(_, i)| run_name(i)).collect()
}

/// Points `from..to` of the long history: metric `loss`, step = index.
pub fn history_body(run_id: &str, from: usize, to: usize) -> String {
    let mut s = String::with_capacity((to - from) * 75 + 64);
    write!(s, "{{\"run_id\":\"{run_id}\",\"metrics\":[").unwrap();
    for step in from..to {
        if step > from {
            s.push(',');
        }
        let value = 1.0 / (1.0 + step as f64 / 1000.0) + unit(step as u64) * 0.01;
        write!(s, "{{\"key\":\"loss\",\"value\":{value:?},\"timestamp\":{},\"step\":{step}}}", BASE_TS + step as i64)
            .unwrap();
    }
    s.push_str("]}");
    s
}

/// A pre-encoded log-batch of `keys` x `steps` metrics whose step and timestamp fields are
/// space-padded to a fixed width, so that each request is the template with those digits
/// overwritten in place: no JSON encoding in the timed loop.
pub struct IngestTemplate {
    body: Vec<u8>,
    /// (offset of the step field, offset of the timestamp field, step within the request)
    slots: Vec<(usize, usize, u64)>,
    steps: u64,
}

const STEP_WIDTH: usize = 12;
const TS_WIDTH: usize = 13;

impl IngestTemplate {
    pub fn new(run_id: &str, keys: usize, steps: usize) -> IngestTemplate {
        let mut body = format!("{{\"run_id\":\"{run_id}\",\"metrics\":[").into_bytes();
        let mut slots = Vec::with_capacity(keys * steps);
        for k in 0..keys {
            for s in 0..steps {
                if !slots.is_empty() {
                    body.push(b',');
                }
                let value = unit((k * steps + s) as u64);
                body.extend_from_slice(format!("{{\"key\":\"k{k}\",\"value\":{value:?},\"timestamp\":").as_bytes());
                let ts_at = body.len();
                body.extend_from_slice(&[b' '; TS_WIDTH]);
                body.extend_from_slice(b",\"step\":");
                let step_at = body.len();
                body.extend_from_slice(&[b' '; STEP_WIDTH]);
                body.push(b'}');
                slots.push((step_at, ts_at, s as u64));
            }
        }
        body.extend_from_slice(b"]}");
        IngestTemplate { body, slots, steps: steps as u64 }
    }

    /// Request number `n`: steps `n*steps .. (n+1)*steps` of every key.
    pub fn request(&self, n: u64) -> Vec<u8> {
        let mut body = self.body.clone();
        for &(step_at, ts_at, s) in &self.slots {
            let step = n * self.steps + s;
            put_padded(&mut body[step_at..step_at + STEP_WIDTH], step);
            put_padded(&mut body[ts_at..ts_at + TS_WIDTH], BASE_TS as u64 + step);
        }
        body
    }
}

fn put_padded(field: &mut [u8], mut n: u64) {
    let mut digits = [0u8; 20];
    let mut len = 0;
    loop {
        digits[len] = b'0' + (n % 10) as u8;
        len += 1;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    assert!(len <= field.len(), "number too wide for its field");
    for (i, slot) in field.iter_mut().enumerate() {
        *slot = if i < len { digits[len - 1 - i] } else { b' ' };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ingest_requests_are_valid_json_with_the_right_steps() {
        let t = IngestTemplate::new("abc", 10, 100);
        let v: serde_json::Value = serde_json::from_slice(&t.request(7)).unwrap();
        let metrics = v["metrics"].as_array().unwrap();
        assert_eq!(metrics.len(), 1000);
        assert_eq!(metrics[0]["step"], 700);
        assert_eq!(metrics[0]["timestamp"], BASE_TS + 700);
        assert_eq!(metrics[999]["key"], "k9");
        assert_eq!(metrics[999]["step"], 799);
    }

    #[test]
    fn seed_and_history_bodies_are_json() {
        let v: serde_json::Value = serde_json::from_str(&seed_batch_body("r", 3)).unwrap();
        assert_eq!(v["params"].as_array().unwrap().len(), PARAMS);
        assert_eq!(v["metrics"][0]["value"].as_f64().unwrap(), run(3).metrics[0]);
        let v: serde_json::Value = serde_json::from_str(&history_body("r", 1000, 2000)).unwrap();
        assert_eq!(v["metrics"].as_array().unwrap().len(), 1000);
        assert_eq!(v["metrics"][0]["step"], 1000);
    }

    #[test]
    fn searches_select_about_five_percent() {
        let hits = (0..10_000).filter(|&i| run(i).metrics[0] > 0.5 && run(i).params[0] == 3).count();
        assert!((400..600).contains(&hits), "{hits}");
        assert_eq!(expected_search(10_000, 3).len(), 100);
    }
}
