//! Embeds the third-party front-end libraries that `web/package.json` pins (installed by
//! `npm ci --prefix web` into `web/node_modules`, which is not committed) into the binary:
//! the files are copied into `OUT_DIR` and included by `src/ui/static_files.rs`. Nothing
//! is fetched here and nothing is loaded from a CDN at run time.

use std::path::{Path, PathBuf};
use std::{env, fs};

/// (package, file inside the package, name in OUT_DIR).
const FILES: &[(&str, &str, &str)] =
    &[("uplot", "dist/uPlot.iife.min.js", "uPlot.iife.min.js"), ("uplot", "dist/uPlot.min.css", "uPlot.min.css")];

fn main() {
    let manifest = PathBuf::from(env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));
    let out = PathBuf::from(env::var("OUT_DIR").expect("cargo sets OUT_DIR"));
    // crates/cairn-server -> the workspace root.
    let web = manifest.ancestors().nth(2).unwrap_or(&manifest).join("web");
    let modules = web.join("node_modules");
    println!("cargo::rerun-if-changed={}", web.join("package-lock.json").display());
    println!("cargo::rerun-if-changed={}", modules.display());
    let lock = fs::read_to_string(web.join("package-lock.json")).unwrap_or_default();
    let mut missing = Vec::new();
    for (package, file, name) in FILES {
        let src = modules.join(package).join(file);
        println!("cargo::rerun-if-changed={}", src.display());
        if let Some(problem) = problem_with(&modules, package, &lock, &src) {
            missing.push(problem);
            continue;
        }
        if let Err(e) = fs::copy(&src, out.join(name)) {
            missing.push(format!("cannot copy {}: {e}", src.display()));
        }
    }
    if !missing.is_empty() {
        println!(
            "cargo::error=the dashboard's front-end libraries are missing or stale ({}). Install the versions pinned in \
             web/package-lock.json with `npm ci --prefix web` (scripts/test and scripts/start do it), then build again.",
            missing.join("; ")
        );
    }
}

/// Why the installed package cannot be used: absent, or another version than the lockfile's.
fn problem_with(modules: &Path, package: &str, lock: &str, src: &Path) -> Option<String> {
    if !src.is_file() {
        return Some(format!("{} not found", src.display()));
    }
    let installed = fs::read_to_string(modules.join(package).join("package.json")).ok().and_then(|m| version_in(&m));
    let locked = lock.split(&format!("\"node_modules/{package}\"")).nth(1).and_then(version_in);
    match (installed, locked) {
        (Some(i), Some(l)) if i != l => Some(format!("{package} {i} is installed but the lockfile pins {l}")),
        _ => None,
    }
}

/// The first `"version": "..."` value in a JSON text.
fn version_in(json: &str) -> Option<String> {
    let rest = json.split("\"version\"").nth(1)?;
    let start = rest.find('"')? + 1;
    let end = rest[start..].find('"')? + start;
    Some(rest[start..end].to_owned())
}
