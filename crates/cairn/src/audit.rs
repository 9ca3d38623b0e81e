//! `cairn audit verify` and `cairn audit anchor`: the audit chain checked in the database
//! (every row, every stored anchor) or offline in an export file, and chain heads stored
//! as anchors. The hash arithmetic is [`cairn_db::audit::chain`]'s, shared with the server.

use std::io::BufRead;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, bail};
use cairn_db::Db;
use cairn_db::audit::chain::{Anchor, AnchorCheck, Walk};
use cairn_db::audit::export::Decoded;
use cairn_db::audit::{self as audit_db};
use clap::Subcommand;

use crate::admin::{cli_actor, with_db};
use crate::config::DataArgs;

#[derive(Subcommand)]
pub enum AuditCommand {
    /// Check the audit log's hash chain and report the first broken row; with --file,
    /// check an export (`/api/v1/audit/export?format=jsonl`) offline instead. Exit status:
    /// 0 all checks passed, 2 a row or anchor shows tampering, 3 an anchor could not be
    /// checked (its row is not in the export).
    Verify {
        /// A JSON Lines export to check without the database
        #[arg(long)]
        file: Option<PathBuf>,
        /// With --file: the export is unfiltered, so it must start at row 1 and any gap in
        /// the ids is a deleted row (without it, gaps are taken for filtered-out rows)
        #[arg(long, requires = "file")]
        complete: bool,
        /// A chain head printed by `cairn audit anchor` (ID:HASH) that the chain must still
        /// contain; repeatable. Without --file, every stored anchor is checked too.
        #[arg(long = "anchor", value_name = "ID:HASH")]
        anchors: Vec<Anchor>,
        #[command(flatten)]
        data: DataArgs,
    },
    /// Store the current chain head as an anchor and print it (ID:HASH): keep the line
    /// outside Cairn and check it later with `cairn audit verify --anchor`
    Anchor {
        #[command(flatten)]
        data: DataArgs,
    },
}

/// Exit status of a check that found tampering.
const TAMPERED: u8 = 2;
/// Exit status of a check that could not be done (an anchor's row is not in the export).
const UNCHECKED: u8 = 3;

pub async fn audit(cmd: AuditCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        AuditCommand::Verify { file: Some(file), complete, anchors, data: _ } => {
            tokio::task::spawn_blocking(move || verify_file(&file, complete, &anchors)).await?
        }
        AuditCommand::Verify { file: None, complete: _, anchors, data } => {
            with_db(&data, |db| async move { verify_database(&db, &anchors).await }).await
        }
        AuditCommand::Anchor { data } => {
            with_db(&data, |db| async move {
                let actor = cli_actor();
                let mut tx = db.pool.begin().await?;
                let Some(row) = audit_db::anchors::take_in(&mut tx, &actor.name).await? else {
                    bail!("the audit log is empty: there is no chain head to anchor yet");
                };
                let anchor = row.anchor();
                let details = serde_json::json!({"anchor": row.id, "hash": hex::encode(anchor.hash)});
                audit_db::append_in(&mut tx, actor.event("audit.anchor", format!("audit:{}", anchor.id), details))
                    .await?;
                tx.commit().await?;
                println!("{anchor}");
                eprintln!(
                    "anchor #{} stored: the chain head is row {}. Keep the line above outside Cairn; \
                 `cairn audit verify --anchor {anchor}` checks that the chain still contains it.",
                    row.id, anchor.id
                );
                Ok(ExitCode::SUCCESS)
            })
            .await
        }
    }
}

/// The whole chain in the database, then each stored anchor and each given one.
async fn verify_database(db: &Db, given: &[Anchor]) -> anyhow::Result<ExitCode> {
    let result = audit_db::verify(&db.pool).await?;
    let mut status = 0u8;
    match &result.first_break {
        None => {
            let head = result
                .head_hash
                .as_deref()
                .map_or_else(|| "(empty)".into(), |h| format!("{}:{h}", result.rows_checked));
            println!("ok: {} rows checked, chain head {head}", result.rows_checked);
        }
        Some(broken) => {
            println!("BROKEN: {broken} ({} rows before it verified)", result.rows_checked);
            status = TAMPERED;
        }
    }
    for (row, check) in audit_db::anchors::check_all(&db.pool).await? {
        let name = format!(
            "stored anchor #{} ({}, taken {} by {})",
            row.id,
            row.anchor(),
            row.created_at.format("%Y-%m-%d %H:%M UTC"),
            row.created_by
        );
        if !report_anchor(&name, &row.anchor(), &check, "no such row: the chain was cut") {
            status = TAMPERED;
        }
    }
    for anchor in given {
        let check = audit_db::anchors::check(&db.pool, anchor).await?;
        if !report_anchor(&format!("anchor {anchor}"), anchor, &check, "no such row: the chain was cut") {
            status = TAMPERED;
        }
    }
    Ok(ExitCode::from(status))
}

/// Prints one anchor's check; true when the chain contains it.
fn report_anchor(name: &str, anchor: &Anchor, check: &AnchorCheck, absent: &str) -> bool {
    match check {
        AnchorCheck::Present => {
            println!("{name}: present");
            true
        }
        AnchorCheck::Altered { found } => {
            println!(
                "{name}: ALTERED: row {} now has hash {}: the chain was rewritten at or before that row",
                anchor.id,
                hex::encode(found)
            );
            false
        }
        AnchorCheck::Absent => {
            println!("{name}: MISSING: {absent}");
            false
        }
    }
}

/// Checks a JSON Lines export line by line (streaming): each row's hash, the link between
/// rows with consecutive ids, the first row's link to the genesis when it is row 1, and
/// the given anchors. A filtered export skips rows; the links across a skip cannot be
/// checked from the file, and the report says how many there were.
fn verify_file(path: &std::path::Path, complete: bool, anchors: &[Anchor]) -> anyhow::Result<ExitCode> {
    let file = std::fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let mut walk = if complete { Walk::complete() } else { Walk::partial() };
    let mut found: Vec<Option<AnchorCheck>> = vec![None; anchors.len()];
    let mut first_id = None;
    for (index, line) in std::io::BufReader::new(file).lines().enumerate() {
        let line = line.with_context(|| format!("cannot read {}", path.display()))?;
        if line.trim().is_empty() {
            continue;
        }
        let number = index + 1;
        let row = match Decoded::parse(&line) {
            Ok(row) => row,
            Err(e) => {
                println!("BROKEN: line {number}: {e} ({} rows before it verified)", walk.rows_checked);
                return Ok(ExitCode::from(TAMPERED));
            }
        };
        if let Err(broken) = walk.check(&row.fields(), &row.hash) {
            println!("BROKEN: line {number}: {broken} ({} rows before it verified)", walk.rows_checked);
            return Ok(ExitCode::from(TAMPERED));
        }
        first_id.get_or_insert(row.record.id);
        for (anchor, slot) in anchors.iter().zip(found.iter_mut()) {
            if anchor.id == row.record.id {
                *slot = Some(AnchorCheck::of(anchor, Some(&row.hash)));
            }
        }
    }
    match (first_id, walk.head()) {
        (Some(first), Some((last, _))) => {
            let gaps = if walk.gaps == 0 {
                "no gaps: the rows form one unbroken stretch of the chain".to_owned()
            } else {
                format!(
                    "{} gaps where the export skips rows (a filtered export: the links across them cannot be checked from the file)",
                    walk.gaps
                )
            };
            let start = if first == 1 { ", starting at the genesis" } else { "" };
            println!(
                "ok: {} rows checked in {} (rows {first} to {last}{start}), {} links checked; {gaps}",
                walk.rows_checked,
                path.display(),
                walk.links_checked
            );
        }
        _ => println!("ok: {} holds no rows", path.display()),
    }
    let mut status = 0u8;
    for (anchor, check) in anchors.iter().zip(found) {
        match check {
            Some(check) => {
                if !report_anchor(&format!("anchor {anchor}"), anchor, &check, "") {
                    status = TAMPERED;
                }
            }
            None => {
                println!("anchor {anchor}: NOT CHECKED: row {} is not in this export", anchor.id);
                if status == 0 {
                    status = UNCHECKED;
                }
            }
        }
    }
    Ok(ExitCode::from(status))
}
