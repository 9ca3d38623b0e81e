//! A one-line progress report on stderr, redrawn at most five times a second, and only when
//! stderr is a terminal (logs and pipes get the final summary alone).

use std::io::{IsTerminal, Write};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use super::human_bytes;

pub struct Progress {
    verb: &'static str,
    total_files: u64,
    total_bytes: u64,
    files: AtomicU64,
    bytes: AtomicU64,
    last_draw: Mutex<Option<Instant>>,
    live: bool,
}

impl Progress {
    pub fn new(verb: &'static str, total_files: u64, total_bytes: u64) -> Progress {
        Progress {
            verb,
            total_files,
            total_bytes,
            files: AtomicU64::new(0),
            bytes: AtomicU64::new(0),
            last_draw: Mutex::new(None),
            live: std::io::stderr().is_terminal(),
        }
    }

    pub fn add_bytes(&self, n: u64) {
        self.bytes.fetch_add(n, Ordering::Relaxed);
        self.draw(false);
    }

    pub fn file_done(&self) {
        self.files.fetch_add(1, Ordering::Relaxed);
        self.draw(false);
    }

    /// Ends the line (on a terminal).
    pub fn finish(&self) {
        self.draw(true);
        if self.live {
            eprintln!();
        }
    }

    fn draw(&self, force: bool) {
        if !self.live {
            return;
        }
        let Ok(mut last) = self.last_draw.lock() else { return };
        if !force && last.is_some_and(|t| t.elapsed() < Duration::from_millis(200)) {
            return;
        }
        *last = Some(Instant::now());
        let bytes = self.bytes.load(Ordering::Relaxed);
        let percent = (bytes * 100).checked_div(self.total_bytes).unwrap_or(100);
        let line = format!(
            "\r{} {}/{} files, {} of {} ({percent}%)   ",
            self.verb,
            self.files.load(Ordering::Relaxed),
            self.total_files,
            human_bytes(bytes),
            human_bytes(self.total_bytes)
        );
        let mut err = std::io::stderr().lock();
        let _ = err.write_all(line.as_bytes());
        let _ = err.flush();
    }
}
