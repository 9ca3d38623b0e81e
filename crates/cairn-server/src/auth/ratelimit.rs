//! Rate limiting of failed logins, in memory: per client address and user name (stops
//! guessing one account) and per client address alone (stops spraying many accounts).

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

pub struct LoginLimiter {
    window: Duration,
    max_per_account: usize,
    max_per_client: usize,
    failures: Mutex<HashMap<String, VecDeque<Instant>>>,
}

impl Default for LoginLimiter {
    fn default() -> Self {
        Self::new(Duration::from_secs(300), 5, 30)
    }
}

impl LoginLimiter {
    pub fn new(window: Duration, max_per_account: usize, max_per_client: usize) -> Self {
        LoginLimiter { window, max_per_account, max_per_client, failures: Mutex::new(HashMap::new()) }
    }

    /// How long the caller must wait, if it is over a limit.
    pub fn blocked_for(&self, account_key: &str, client_key: &str) -> Option<Duration> {
        let now = Instant::now();
        let mut map = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        [(account_key, self.max_per_account), (client_key, self.max_per_client)]
            .into_iter()
            .filter_map(|(key, max)| {
                let times = map.get_mut(key)?;
                while times.front().is_some_and(|t| now.duration_since(*t) > self.window) {
                    times.pop_front();
                }
                (times.len() >= max).then(|| self.window.saturating_sub(now.duration_since(times[0])))
            })
            .max()
    }

    pub fn record_failure(&self, account_key: &str, client_key: &str) {
        let now = Instant::now();
        let mut map = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        for key in [account_key, client_key] {
            map.entry(key.to_owned()).or_default().push_back(now);
        }
        // Bound memory under a flood of distinct keys.
        if map.len() > 100_000 {
            map.retain(|_, times| times.back().is_some_and(|t| now.duration_since(*t) <= self.window));
        }
    }

    pub fn clear(&self, account_key: &str) {
        self.failures.lock().unwrap_or_else(|p| p.into_inner()).remove(account_key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_after_limit_per_account_and_per_client() {
        let limiter = LoginLimiter::new(Duration::from_secs(60), 3, 5);
        for _ in 0..3 {
            assert!(limiter.blocked_for("ip|bob", "ip").is_none());
            limiter.record_failure("ip|bob", "ip");
        }
        assert!(limiter.blocked_for("ip|bob", "ip").is_some());
        assert!(limiter.blocked_for("ip|alice", "ip").is_none(), "other account still allowed");
        limiter.record_failure("ip|alice", "ip");
        limiter.record_failure("ip|carol", "ip");
        assert!(limiter.blocked_for("ip|dave", "ip").is_some(), "client over its own limit");
        assert!(limiter.blocked_for("other|dave", "other").is_none());
        limiter.clear("ip|bob");
    }
}
