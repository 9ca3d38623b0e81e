//! The schema of a version's tabular files: columns, types and row counts of CSV files
//! (streamed through a parser) and Parquet files (from the footer alone). A file whose
//! content the previous version already profiled keeps that profile; a Parquet file that
//! cannot be read gets its error recorded instead, and the version is still created.

use std::collections::{BTreeMap, HashMap};

use cairn_core::tabular::{Column, ColumnType, CsvProfiler, TableSchema};
use cairn_db::datasets::{FileRow, VersionRow};
use cairn_storage::{BlobDigest, ByteRange, Storage};
use futures::TryStreamExt;
use parquet::basic::{LogicalType, Type as PhysicalType};
use serde_json::{Value, json};

use super::{Result, invalid};

/// Tabular files profiled per version (the first ones by path); others get no schema.
const MAX_PROFILED_FILES: usize = 50;
/// Larger Parquet footers are not read (a footer is usually kilobytes).
const MAX_PARQUET_FOOTER: u64 = 64 * 1024 * 1024;

#[derive(Clone, Copy)]
enum Format {
    Csv,
    Parquet,
}

fn format_of(path: &str) -> Option<Format> {
    let lower = path.to_ascii_lowercase();
    if lower.ends_with(".csv") {
        Some(Format::Csv)
    } else if lower.ends_with(".parquet") || lower.ends_with(".pq") {
        Some(Format::Parquet)
    } else {
        None
    }
}

/// `{"files": {path: {sha256, format, columns, rows}}}`.
pub async fn profile(storage: &Storage, files: &[FileRow], previous: Option<&VersionRow>) -> Result<Value> {
    let mut known: HashMap<&str, &Value> = HashMap::new();
    if let Some(Value::Object(profiles)) = previous.and_then(|v| v.schema.0.get("files")) {
        for profile in profiles.values() {
            if let Some(sha) = profile.get("sha256").and_then(Value::as_str) {
                known.insert(sha, profile);
            }
        }
    }
    let mut profiles = BTreeMap::new();
    let tabular = files.iter().filter_map(|f| format_of(&f.path).map(|format| (f, format))).take(MAX_PROFILED_FILES);
    for (file, format) in tabular {
        let profile = match known.get(file.sha256.as_str()) {
            Some(p) => (*p).clone(),
            None => {
                let digest = BlobDigest::parse(&file.sha256).map_err(|e| invalid(e.to_string()))?;
                let mut profile = match format {
                    Format::Csv => json!(profile_csv(storage, &digest).await?),
                    Format::Parquet => match parquet_schema(storage, &digest, file.size).await? {
                        Ok(schema) => json!(schema),
                        Err(reason) => json!({"format": "parquet", "error": reason}),
                    },
                };
                profile["sha256"] = json!(file.sha256);
                profile
            }
        };
        profiles.insert(file.path.clone(), profile);
    }
    Ok(json!({ "files": profiles }))
}

async fn profile_csv(storage: &Storage, digest: &BlobDigest) -> Result<TableSchema> {
    let mut stream = storage.get_blob(digest).await?.stream;
    let mut profiler = CsvProfiler::default();
    while let Some(chunk) = stream.try_next().await? {
        profiler.feed(&chunk);
    }
    Ok(profiler.finish())
}

/// The schema in a Parquet file's footer, or why it could not be read.
async fn parquet_schema(
    storage: &Storage,
    digest: &BlobDigest,
    size: i64,
) -> Result<std::result::Result<TableSchema, String>> {
    let size = u64::try_from(size).unwrap_or(0);
    if size < 12 {
        return Ok(Err("too short to be a Parquet file".into()));
    }
    let tail = storage.read_blob_range(digest, ByteRange::Suffix(8)).await?;
    if tail.len() != 8 || &tail[4..] != b"PAR1" {
        return Ok(Err("not a Parquet file (no PAR1 footer)".into()));
    }
    let footer_len = u64::from(u32::from_le_bytes([tail[0], tail[1], tail[2], tail[3]]));
    if footer_len > MAX_PARQUET_FOOTER || footer_len + 12 > size {
        return Ok(Err(format!("implausible footer length {footer_len}")));
    }
    let footer = storage.read_blob_range(digest, ByteRange::Suffix(footer_len + 8)).await?;
    let metadata = match parquet::file::metadata::ParquetMetaDataReader::decode_metadata(&footer[..footer.len() - 8]) {
        Ok(m) => m,
        Err(e) => return Ok(Err(format!("unreadable footer: {e}"))),
    };
    let file = metadata.file_metadata();
    let columns = file
        .schema_descr()
        .columns()
        .iter()
        .map(|c| Column { name: c.path().string(), kind: column_type(c.logical_type_ref(), c.physical_type()) })
        .collect();
    Ok(Ok(TableSchema { format: "parquet", columns, rows: u64::try_from(file.num_rows()).unwrap_or(0) }))
}

fn column_type(logical: Option<&LogicalType>, physical: PhysicalType) -> ColumnType {
    match logical {
        Some(LogicalType::String | LogicalType::Enum | LogicalType::Json | LogicalType::Uuid) => ColumnType::String,
        Some(LogicalType::Integer { .. }) => ColumnType::Integer,
        Some(LogicalType::Decimal { .. }) => ColumnType::Decimal,
        Some(LogicalType::Date) => ColumnType::Date,
        Some(LogicalType::Time { .. }) => ColumnType::Time,
        Some(LogicalType::Timestamp { .. }) => ColumnType::Timestamp,
        Some(LogicalType::Float16) => ColumnType::Float,
        _ => match physical {
            PhysicalType::BOOLEAN => ColumnType::Boolean,
            PhysicalType::INT32 | PhysicalType::INT64 => ColumnType::Integer,
            PhysicalType::INT96 => ColumnType::Timestamp,
            PhysicalType::FLOAT | PhysicalType::DOUBLE => ColumnType::Float,
            PhysicalType::BYTE_ARRAY | PhysicalType::FIXED_LEN_BYTE_ARRAY => ColumnType::Binary,
        },
    }
}
