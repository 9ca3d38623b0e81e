//! Memory and CPU of a server's process tree, from /proc: a sampler thread keeps the peak
//! resident set size (summed over the tree) per phase; CPU time is read at phase edges.

use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

/// USER_HZ: /proc reports CPU times in 1/100 s on Linux.
const TICKS_PER_SEC: f64 = 100.0;
const SAMPLE_EVERY: Duration = Duration::from_millis(200);

/// `(pid, ppid, CPU ticks of it and its reaped children)` of every process.
fn processes() -> Vec<(u32, u32, u64)> {
    let mut out = Vec::new();
    let Ok(dir) = fs::read_dir("/proc") else { return out };
    for entry in dir.flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else { continue };
        if let Some((ppid, ticks)) = stat(pid) {
            out.push((pid, ppid, ticks));
        }
    }
    out
}

fn stat(pid: u32) -> Option<(u32, u64)> {
    let text = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may hold spaces and parentheses: fields start after the last ')'.
    let rest = &text[text.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split(' ').collect();
    // rest[0] is field 3 (state): ppid is field 4, utime 14, stime 15, and cutime 16,
    // cstime 17: the CPU of exited children it has reaped (PostgreSQL backends of closed
    // connections, for the postmaster), which would otherwise vanish from the sum.
    let ppid = fields.get(1)?.parse().ok()?;
    let ticks = (11..=14).map(|i| fields.get(i)?.parse::<u64>().ok()).sum::<Option<u64>>()?;
    Some((ppid, ticks))
}

/// The tree rooted at `root` (without `root` itself when `exclude_root`), with CPU ticks.
fn tree(root: u32, exclude_root: bool) -> Vec<(u32, u64)> {
    let procs = processes();
    let mut children: HashMap<u32, Vec<(u32, u64)>> = HashMap::new();
    let mut root_ticks = None;
    for &(pid, ppid, ticks) in &procs {
        children.entry(ppid).or_default().push((pid, ticks));
        if pid == root {
            root_ticks = Some(ticks);
        }
    }
    let Some(root_ticks) = root_ticks else { return Vec::new() };
    let mut out = Vec::new();
    if !exclude_root {
        out.push((root, root_ticks));
    }
    let mut stack = vec![root];
    while let Some(pid) = stack.pop() {
        for &(child, ticks) in children.get(&pid).map(Vec::as_slice).unwrap_or_default() {
            out.push((child, ticks));
            stack.push(child);
        }
    }
    out
}

fn rss_bytes(pid: u32) -> u64 {
    let Ok(text) = fs::read_to_string(format!("/proc/{pid}/status")) else { return 0 };
    text.lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

/// CPU seconds used so far by the tree, exited and reaped descendants included.
pub fn tree_cpu_secs(root: u32, exclude_root: bool) -> f64 {
    tree(root, exclude_root).iter().map(|&(_, t)| t).sum::<u64>() as f64 / TICKS_PER_SEC
}

pub fn self_cpu_secs() -> f64 {
    stat(std::process::id()).map_or(0.0, |(_, t)| t as f64 / TICKS_PER_SEC)
}

pub fn tree_rss_bytes(root: u32, exclude_root: bool) -> u64 {
    tree(root, exclude_root).iter().map(|&(pid, _)| rss_bytes(pid)).sum()
}

/// Samples the tree's RSS until dropped; the peak is kept per phase.
pub struct RssSampler {
    phase: Arc<Mutex<String>>,
    peaks: Arc<Mutex<BTreeMap<String, u64>>>,
    total_peak: Arc<Mutex<u64>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl RssSampler {
    /// `total_root`: a wider tree (e.g. a launcher with helper processes) whose peak is
    /// kept as well, as one figure.
    pub fn start(root: Option<u32>, exclude_root: bool, total_root: Option<u32>) -> RssSampler {
        let phase = Arc::new(Mutex::new("setup".to_owned()));
        let peaks = Arc::new(Mutex::new(BTreeMap::new()));
        let total_peak = Arc::new(Mutex::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = root.map(|root| {
            let (phase, peaks, stop, total_peak) = (phase.clone(), peaks.clone(), stop.clone(), total_peak.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    if let Some(total_root) = total_root {
                        let total = tree_rss_bytes(total_root, false);
                        let mut peak = total_peak.lock().unwrap();
                        *peak = (*peak).max(total);
                    }
                    let rss = tree_rss_bytes(root, exclude_root);
                    let name = phase.lock().unwrap().clone();
                    let mut peaks = peaks.lock().unwrap();
                    let peak = peaks.entry(name).or_insert(0);
                    *peak = (*peak).max(rss);
                    drop(peaks);
                    std::thread::sleep(SAMPLE_EVERY);
                }
            })
        });
        RssSampler { phase, peaks, total_peak, stop, thread }
    }

    pub fn set_phase(&self, name: &str) {
        *self.phase.lock().unwrap() = name.to_owned();
    }

    /// Peak RSS per phase, and of the wider tree, in MB.
    pub fn finish(mut self) -> (BTreeMap<String, f64>, f64) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        let total = *self.total_peak.lock().unwrap() as f64 / 1e6;
        (self.peaks.lock().unwrap().iter().map(|(k, &v)| (k.clone(), v as f64 / 1e6)).collect(), total)
    }
}

pub fn loadavg() -> String {
    fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}
