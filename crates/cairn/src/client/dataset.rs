//! `cairn dataset push|pull|list|show`.
//!
//! Push hashes every file of a directory, asks the server which contents it lacks, uploads
//! only those (in parallel, streamed, retried on network failures), then creates the
//! version from the manifest. Running it again after an interruption uploads only what is
//! still missing. Pull downloads each file to a temporary name while hashing it, and keeps
//! it only when the hash matches the manifest; files already present with the right
//! content are skipped, so an interrupted pull resumes too.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, bail};
use cairn_core::dataset::DatasetRef;
use cairn_storage::ArtifactPath;
use clap::Subcommand;
use futures::{StreamExt, TryStreamExt, stream};
use reqwest::Method;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;

use super::progress::Progress;
use super::{Api, ClientArgs, human_bytes};

/// Attempts per upload or download before giving up on a network failure.
const ATTEMPTS: u32 = 3;

#[derive(Subcommand)]
pub enum DatasetCommand {
    /// Upload a directory as the next version of a dataset and print its reference (NAME@VERSION)
    Push {
        /// Letters, digits, '.', '_' or '-'; the dataset is created on its first push
        name: String,
        dir: PathBuf,
        /// What changed, for people
        #[arg(long, short)]
        message: Option<String>,
        /// The project a new dataset goes to (by default the token's project, or the default project)
        #[arg(long)]
        project: Option<String>,
        /// Files transferred at once
        #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..=64))]
        jobs: u16,
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Download a version (NAME for the latest, or NAME@VERSION) into a directory, checking every file's SHA-256
    Pull {
        reference: String,
        dir: PathBuf,
        #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..=64))]
        jobs: u16,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// List datasets with their latest version
    List {
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Show a dataset's versions (NAME), or one version's files and schema (NAME@VERSION)
    Show {
        reference: String,
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        client: ClientArgs,
    },
}

pub async fn run(command: DatasetCommand) -> anyhow::Result<std::process::ExitCode> {
    match command {
        DatasetCommand::Push { name, dir, message, project, jobs, json, client } => {
            let version =
                NewVersion { name: &name, message: message.as_deref().unwrap_or(""), project: project.as_deref() };
            push(&Api::new(&client)?, version, &dir, jobs.into(), json).await
        }
        DatasetCommand::Pull { reference, dir, jobs, client } => {
            pull(&Api::new(&client)?, &parse_reference(&reference)?, &dir, jobs.into()).await
        }
        DatasetCommand::List { json, client } => list(&Api::new(&client)?, json).await,
        DatasetCommand::Show { reference, json, client } => show(&Api::new(&client)?, &reference, json).await,
    }?;
    Ok(std::process::ExitCode::SUCCESS)
}

fn parse_reference(text: &str) -> anyhow::Result<DatasetRef> {
    text.parse::<DatasetRef>().map_err(|e| anyhow::anyhow!(e.0))
}

/// A file of a manifest, as the API has it.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct ManifestFile {
    path: String,
    size: u64,
    sha256: String,
}

/// A local file to push.
struct LocalFile {
    path: String,
    full: PathBuf,
    size: u64,
}

/// What a push names: the dataset, the message, and the project for a new dataset.
struct NewVersion<'a> {
    name: &'a str,
    message: &'a str,
    project: Option<&'a str>,
}

async fn push(api: &Api, version: NewVersion<'_>, dir: &Path, jobs: usize, json: bool) -> anyhow::Result<()> {
    let NewVersion { name, message, project } = version;
    cairn_core::dataset::validate_dataset_name(name).map_err(|e| anyhow::anyhow!(e.0))?;
    let dir = dir.to_owned();
    let files = tokio::task::spawn_blocking(move || walk(&dir)).await??;
    if files.is_empty() {
        bail!("the directory holds no files");
    }
    let total: u64 = files.iter().map(|f| f.size).sum();

    let hashing = Progress::new("hashing", files.len() as u64, total);
    let manifest: Vec<(ManifestFile, PathBuf)> = stream::iter(files)
        .map(|file| {
            let hashing = &hashing;
            async move {
                let full = file.full.clone();
                let (sha256, size) = hash_file(&full, |n| hashing.add_bytes(n)).await?;
                hashing.file_done();
                anyhow::Ok((ManifestFile { path: file.path, size, sha256 }, full))
            }
        })
        .buffer_unordered(jobs)
        .try_collect()
        .await?;
    hashing.finish();

    let digests: Vec<&str> = manifest.iter().map(|(f, _)| f.sha256.as_str()).collect();
    let mut missing = Vec::new();
    for chunk in digests.chunks(10_000) {
        let answer: Value =
            api.json(api.request(Method::POST, "/blobs/missing").json(&json!({"sha256": chunk}))).await?;
        missing
            .extend(answer["missing"].as_array().into_iter().flatten().filter_map(|d| d.as_str().map(str::to_owned)));
    }
    // One local file per missing content (identical files are uploaded once).
    let by_digest: HashMap<&str, (&ManifestFile, &PathBuf)> =
        manifest.iter().map(|(f, full)| (f.sha256.as_str(), (f, full))).collect();
    let uploads: Vec<(&ManifestFile, &PathBuf)> =
        missing.iter().filter_map(|d| by_digest.get(d.as_str()).copied()).collect();
    let upload_bytes = uploads.iter().map(|(f, _)| f.size).sum();
    let uploading = Arc::new(Progress::new("uploading", uploads.len() as u64, upload_bytes));
    stream::iter(uploads)
        .map(|(file, full)| {
            let uploading = &uploading;
            async move {
                upload(api, file, full, uploading).await?;
                uploading.file_done();
                anyhow::Ok(())
            }
        })
        .buffer_unordered(jobs)
        .try_collect::<()>()
        .await?;
    uploading.finish();

    let files: Vec<&ManifestFile> = manifest.iter().map(|(f, _)| f).collect();
    let created: Value = api
        .json(
            api.request(Method::POST, &format!("/datasets/{name}/versions"))
                .json(&json!({"files": files, "message": message, "project": project})),
        )
        .await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&created)?);
        return Ok(());
    }
    let reference = created["reference"].as_str().unwrap_or_default();
    if created["created"] == json!(false) {
        eprintln!("nothing changed since {reference}: no new version");
    } else {
        eprintln!(
            "{} files, {} ({} uploaded, {} already stored)",
            manifest.len(),
            human_bytes(total),
            human_bytes(upload_bytes),
            human_bytes(total - upload_bytes)
        );
    }
    println!("{reference}");
    Ok(())
}

/// Every regular file under `dir` (symbolic links to files included), with its path
/// relative to `dir` in `/` form.
fn walk(dir: &Path) -> anyhow::Result<Vec<LocalFile>> {
    let meta = std::fs::metadata(dir).with_context(|| format!("cannot read {}", dir.display()))?;
    if !meta.is_dir() {
        bail!("{} is not a directory", dir.display());
    }
    let mut files = Vec::new();
    let mut pending = vec![dir.to_owned()];
    while let Some(current) = pending.pop() {
        for entry in std::fs::read_dir(&current).with_context(|| format!("cannot list {}", current.display()))? {
            let entry = entry?;
            let full = entry.path();
            let file_type = entry.file_type()?;
            if file_type.is_dir() {
                pending.push(full);
                continue;
            }
            // Links are followed to files only: a link to a directory could loop.
            let meta = std::fs::metadata(&full).with_context(|| format!("cannot read {}", full.display()))?;
            if !meta.is_file() {
                eprintln!("skipping {} (not a regular file)", full.display());
                continue;
            }
            let relative = full.strip_prefix(dir).expect("walked under dir");
            let parts: Option<Vec<&str>> = relative.components().map(|c| c.as_os_str().to_str()).collect();
            let path = parts.with_context(|| format!("{} is not valid UTF-8", full.display()))?.join("/");
            ArtifactPath::parse(&path).with_context(|| format!("cannot push {path:?}"))?;
            files.push(LocalFile { path, full, size: meta.len() });
        }
    }
    files.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(files)
}

/// The SHA-256 and size of a file, read in a blocking task.
async fn hash_file(path: &Path, on_read: impl Fn(u64)) -> anyhow::Result<(String, u64)> {
    use tokio::io::AsyncReadExt;
    let mut file = tokio::fs::File::open(path).await.with_context(|| format!("cannot open {}", path.display()))?;
    let mut hasher = Sha256::new();
    let mut buffer = vec![0u8; 1 << 20];
    let mut size = 0u64;
    loop {
        let n = file.read(&mut buffer).await.with_context(|| format!("cannot read {}", path.display()))?;
        if n == 0 {
            break;
        }
        hasher.update(&buffer[..n]);
        size += n as u64;
        on_read(n as u64);
    }
    Ok((hex::encode(hasher.finalize()), size))
}

async fn upload(api: &Api, file: &ManifestFile, full: &Path, progress: &Arc<Progress>) -> anyhow::Result<()> {
    retrying(|| async {
        let opened = tokio::fs::File::open(full).await.with_context(|| format!("cannot open {}", full.display()))?;
        let counter = Arc::clone(progress);
        let body = tokio_util::io::ReaderStream::with_capacity(opened, 1 << 20)
            .inspect_ok(move |chunk| counter.add_bytes(chunk.len() as u64));
        let request = api
            .request(Method::PUT, &format!("/blobs/{}", file.sha256))
            .header(reqwest::header::CONTENT_LENGTH, file.size)
            .body(reqwest::Body::wrap_stream(body));
        api.send(request).await.map(drop)
    })
    .await
    .with_context(|| format!("uploading {}", file.path))
}

/// Runs `attempt` until it succeeds, fails for good, or has failed [`ATTEMPTS`] times in a
/// row with transient errors, waiting a little longer after each.
async fn retrying<T, F, Fut>(mut attempt: F) -> anyhow::Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<T>>,
{
    let mut tries = 1;
    loop {
        match attempt().await {
            Err(e) if tries < ATTEMPTS && is_transient(&e) => {
                tries += 1;
                tokio::time::sleep(std::time::Duration::from_secs(u64::from(tries))).await;
            }
            result => return result,
        }
    }
}

/// A network failure or a server error (5xx), worth retrying; a refusal is not.
fn is_transient(e: &anyhow::Error) -> bool {
    e.chain().any(|cause| cause.downcast_ref::<reqwest::Error>().is_some()) || e.to_string().contains("(HTTP 5")
}

async fn pull(api: &Api, reference: &DatasetRef, dir: &Path, jobs: usize) -> anyhow::Result<()> {
    let version_path = reference.version.map_or_else(|| "latest".to_owned(), |v| v.to_string());
    let version: Value =
        api.json(api.request(Method::GET, &format!("/datasets/{}/versions/{version_path}", reference.name))).await?;
    let files: Vec<ManifestFile> = serde_json::from_value(version["files"].clone()).context("reading the manifest")?;
    let exact = version["reference"].as_str().unwrap_or_default().to_owned();
    let total = files.iter().map(|f| f.size).sum();
    tokio::fs::create_dir_all(dir).await.with_context(|| format!("cannot create {}", dir.display()))?;
    let progress = Progress::new("downloading", files.len() as u64, total);
    let outcomes: Vec<anyhow::Result<bool>> = stream::iter(&files)
        .map(|file| {
            let progress = &progress;
            let exact = &exact;
            async move {
                let fetched = pull_file(api, exact, file, dir, progress).await;
                progress.file_done();
                fetched
            }
        })
        .buffer_unordered(jobs)
        .collect()
        .await;
    progress.finish();
    let failures: Vec<String> = outcomes.iter().filter_map(|r| r.as_ref().err().map(|e| format!("{e:#}"))).collect();
    if !failures.is_empty() {
        for failure in &failures {
            eprintln!("error: {failure}");
        }
        bail!("{} of {} files could not be pulled", failures.len(), files.len());
    }
    let fetched = outcomes.iter().filter(|r| matches!(r, Ok(true))).count();
    eprintln!(
        "{exact}: {} files, {} ({fetched} downloaded, {} already present)",
        files.len(),
        human_bytes(total),
        files.len() - fetched
    );
    Ok(())
}

/// Downloads one file unless it is already there with the right content; true when it
/// downloaded.
async fn pull_file(
    api: &Api,
    reference: &str,
    file: &ManifestFile,
    dir: &Path,
    progress: &Progress,
) -> anyhow::Result<bool> {
    // The server validated the path, but a pull must never write outside `dir`.
    let path =
        ArtifactPath::parse(&file.path).with_context(|| format!("the manifest holds a bad path {:?}", file.path))?;
    let dest = path.segments().fold(dir.to_owned(), |p, segment| p.join(segment));
    if tokio::fs::metadata(&dest).await.is_ok_and(|m| m.is_file() && m.len() == file.size)
        && hash_file(&dest, |_| {}).await.is_ok_and(|(sha, _)| sha == file.sha256)
    {
        progress.add_bytes(file.size);
        return Ok(false);
    }
    if let Some(parent) = dest.parent() {
        tokio::fs::create_dir_all(parent).await.with_context(|| format!("cannot create {}", parent.display()))?;
    }
    let partial = dest.with_file_name(format!("{}.cairn-partial", path.file_name()));
    let (name, version) = reference.split_once('@').unwrap_or((reference, "latest"));
    let encoded: Vec<String> = path
        .segments()
        .map(|s| percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string())
        .collect();
    let url = format!("/datasets/{name}/versions/{version}/files/{}", encoded.join("/"));
    let sha = match retrying(|| download(api, &url, &partial, progress)).await {
        Ok(sha) => sha,
        Err(e) => {
            let _ = tokio::fs::remove_file(&partial).await;
            return Err(e.context(format!("downloading {}", file.path)));
        }
    };
    if sha.0 != file.sha256 || sha.1 != file.size {
        let _ = tokio::fs::remove_file(&partial).await;
        bail!(
            "{}: the content received is corrupt (SHA-256 {}, {} bytes; the manifest says {}, {} bytes); the file was not written",
            file.path,
            sha.0,
            sha.1,
            file.sha256,
            file.size
        );
    }
    tokio::fs::rename(&partial, &dest).await.with_context(|| format!("cannot write {}", dest.display()))?;
    Ok(true)
}

/// Streams a file into `to`, returning the SHA-256 and size of what arrived.
async fn download(api: &Api, url: &str, to: &Path, progress: &Progress) -> anyhow::Result<(String, u64)> {
    let response = api.send(api.request(Method::GET, url)).await?;
    let mut out = tokio::fs::File::create(to).await.with_context(|| format!("cannot create {}", to.display()))?;
    let mut hasher = Sha256::new();
    let mut size = 0u64;
    let mut body = response.bytes_stream();
    while let Some(chunk) = body.try_next().await? {
        hasher.update(&chunk);
        size += chunk.len() as u64;
        progress.add_bytes(chunk.len() as u64);
        out.write_all(&chunk).await.with_context(|| format!("cannot write {}", to.display()))?;
    }
    out.flush().await?;
    out.sync_all().await?;
    Ok((hex::encode(hasher.finalize()), size))
}

async fn list(api: &Api, json: bool) -> anyhow::Result<()> {
    let answer: Value = api.json(api.request(Method::GET, "/datasets")).await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&answer)?);
        return Ok(());
    }
    let datasets = answer["datasets"].as_array().cloned().unwrap_or_default();
    if datasets.is_empty() {
        eprintln!("no datasets yet: push one with `cairn dataset push NAME DIR`");
        return Ok(());
    }
    println!("{:<32} {:>7} {:>8} {:>10}  UPDATED", "NAME", "LATEST", "FILES", "SIZE");
    for d in datasets {
        println!(
            "{:<32} {:>7} {:>8} {:>10}  {}",
            d["name"].as_str().unwrap_or_default(),
            d["latest_version"].as_i64().map_or("-".into(), |v| v.to_string()),
            d["file_count"].as_i64().unwrap_or(0),
            human_bytes(d["total_bytes"].as_u64().unwrap_or(0)),
            d["updated_at"].as_str().unwrap_or("")
        );
    }
    Ok(())
}

async fn show(api: &Api, reference: &str, json: bool) -> anyhow::Result<()> {
    let reference = parse_reference(reference)?;
    let path = match reference.version {
        Some(v) => format!("/datasets/{}/versions/{v}", reference.name),
        None => format!("/datasets/{}", reference.name),
    };
    let answer: Value = api.json(api.request(Method::GET, &path)).await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&answer)?);
        return Ok(());
    }
    if reference.version.is_none() {
        println!("{:>7} {:>8} {:>10}  {:<24} {:<12} MESSAGE", "VERSION", "FILES", "SIZE", "CREATED", "BY");
        for v in answer["versions"].as_array().into_iter().flatten() {
            println!(
                "{:>7} {:>8} {:>10}  {:<24} {:<12} {}",
                v["version"].as_i64().unwrap_or(0),
                v["file_count"].as_i64().unwrap_or(0),
                human_bytes(v["total_bytes"].as_u64().unwrap_or(0)),
                v["created_at"].as_str().unwrap_or(""),
                v["created_by"].as_str().unwrap_or("-"),
                v["message"].as_str().unwrap_or("")
            );
        }
        return Ok(());
    }
    println!(
        "{}  digest {}",
        answer["reference"].as_str().unwrap_or_default(),
        answer["digest"].as_str().unwrap_or_default()
    );
    for f in answer["files"].as_array().into_iter().flatten() {
        println!(
            "{:>10}  {}  {}",
            human_bytes(f["size"].as_u64().unwrap_or(0)),
            &f["sha256"].as_str().unwrap_or_default().get(..12).unwrap_or(""),
            f["path"].as_str().unwrap_or("")
        );
    }
    if let Some(Value::Object(files)) = answer["schema"].get("files") {
        for (path, schema) in files {
            let columns: Vec<String> = schema["columns"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|c| format!("{}: {}", c["name"].as_str().unwrap_or(""), c["type"].as_str().unwrap_or("")))
                .collect();
            println!("{path}: {} rows; {}", schema["rows"], columns.join(", "));
        }
    }
    Ok(())
}
