//! A short-lived cache of successful password checks. The key is a SHA-256 over the user
//! name, the password and the stored hash, so a password change invalidates it and the
//! cache never holds a password.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

pub struct BasicAuthCache {
    ttl: Duration,
    entries: Mutex<HashMap<[u8; 32], Instant>>,
}

impl Default for BasicAuthCache {
    fn default() -> Self {
        BasicAuthCache { ttl: Duration::from_secs(300), entries: Mutex::new(HashMap::new()) }
    }
}

impl BasicAuthCache {
    fn key(username: &str, password: &str, stored_hash: &str) -> [u8; 32] {
        let mut h = Sha256::new();
        for part in [username, password, stored_hash] {
            h.update((part.len() as u64).to_be_bytes());
            h.update(part.as_bytes());
        }
        h.finalize().into()
    }

    pub fn contains(&self, username: &str, password: &str, stored_hash: &str) -> bool {
        let key = Self::key(username, password, stored_hash);
        let entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        entries.get(&key).is_some_and(|at| at.elapsed() < self.ttl)
    }

    pub fn insert(&self, username: &str, password: &str, stored_hash: &str) {
        let key = Self::key(username, password, stored_hash);
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        if entries.len() > 10_000 {
            entries.retain(|_, at| at.elapsed() < self.ttl);
        }
        entries.insert(key, Instant::now());
    }
}
