//! Schema and row count of tabular files. For CSV, computed while the bytes stream past:
//! the columns are named by the header row, their types inferred from the first rows, and
//! every row is counted (quoted fields may hold commas and newlines). Parquet files carry
//! theirs in the footer (read by the server).

use serde::Serialize;

/// Rows whose values decide the column types; later rows are only counted.
const TYPED_ROWS: u64 = 10_000;
/// Longer values are kept only this far: enough to tell a number from text.
const MAX_KEPT_FIELD: usize = 256;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ColumnType {
    /// Only empty values seen.
    Empty,
    Boolean,
    Integer,
    Float,
    String,
    Decimal,
    Date,
    Time,
    Timestamp,
    Binary,
}

impl ColumnType {
    /// The narrowest type that holds both.
    fn widen(self, value: ColumnType) -> ColumnType {
        use ColumnType::*;
        match (self, value) {
            (a, b) if a == b => a,
            (Empty, b) | (b, Empty) => b,
            (Integer, Float) | (Float, Integer) => Float,
            _ => String,
        }
    }

    fn of(value: &[u8], truncated: bool) -> ColumnType {
        let text = String::from_utf8_lossy(value);
        let text = text.trim();
        if truncated {
            ColumnType::String
        } else if text.is_empty() {
            ColumnType::Empty
        } else if text.eq_ignore_ascii_case("true") || text.eq_ignore_ascii_case("false") {
            ColumnType::Boolean
        } else if text.parse::<i64>().is_ok() {
            ColumnType::Integer
        } else if text.parse::<f64>().is_ok() {
            ColumnType::Float
        } else {
            ColumnType::String
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Column {
    pub name: String,
    #[serde(rename = "type")]
    pub kind: ColumnType,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TableSchema {
    pub format: &'static str,
    pub columns: Vec<Column>,
    /// Data rows (the header excluded).
    pub rows: u64,
}

/// Feed a CSV file's bytes in any chunks with [`CsvProfiler::feed`], then [`CsvProfiler::finish`].
pub struct CsvProfiler {
    reader: csv_core::Reader,
    field: Vec<u8>,
    field_truncated: bool,
    /// Index of the field being read within its record.
    column: usize,
    header: Option<Vec<String>>,
    header_fields: Vec<String>,
    types: Vec<ColumnType>,
    rows: u64,
}

impl Default for CsvProfiler {
    fn default() -> Self {
        CsvProfiler {
            reader: csv_core::Reader::new(),
            field: Vec::new(),
            field_truncated: false,
            column: 0,
            header: None,
            header_fields: Vec::new(),
            types: Vec::new(),
            rows: 0,
        }
    }
}

impl CsvProfiler {
    pub fn feed(&mut self, mut input: &[u8]) {
        let mut out = [0u8; 4096];
        // Never call the reader with nothing to read: to it, that means the data has ended.
        while !input.is_empty() {
            let (result, read, written) = self.reader.read_field(input, &mut out);
            input = &input[read..];
            self.keep(&out[..written]);
            match result {
                csv_core::ReadFieldResult::InputEmpty | csv_core::ReadFieldResult::End => return,
                csv_core::ReadFieldResult::OutputFull => {}
                csv_core::ReadFieldResult::Field { record_end } => self.end_field(record_end),
            }
        }
    }

    pub fn finish(mut self) -> TableSchema {
        // An empty input tells the reader the data has ended: it yields a last field
        // without a trailing newline, then End.
        let mut out = [0u8; 4096];
        loop {
            let (result, _, written) = self.reader.read_field(&[], &mut out);
            self.keep(&out[..written]);
            match result {
                csv_core::ReadFieldResult::Field { record_end } => self.end_field(record_end),
                csv_core::ReadFieldResult::OutputFull => {}
                csv_core::ReadFieldResult::InputEmpty | csv_core::ReadFieldResult::End => break,
            }
        }
        let names = self.header.unwrap_or(self.header_fields);
        let columns = names
            .into_iter()
            .enumerate()
            .map(|(i, name)| Column { name, kind: self.types.get(i).copied().unwrap_or(ColumnType::Empty) })
            .collect();
        TableSchema { format: "csv", columns, rows: self.rows }
    }

    fn keep(&mut self, bytes: &[u8]) {
        let room = MAX_KEPT_FIELD.saturating_sub(self.field.len());
        self.field.extend_from_slice(&bytes[..bytes.len().min(room)]);
        self.field_truncated |= bytes.len() > room;
    }

    fn end_field(&mut self, record_end: bool) {
        if self.header.is_none() {
            self.header_fields.push(String::from_utf8_lossy(&self.field).trim().to_owned());
        } else if self.rows < TYPED_ROWS {
            let kind = ColumnType::of(&self.field, self.field_truncated);
            // Fields past the header's columns (a ragged row) have no column to type.
            if let Some(t) = self.types.get_mut(self.column) {
                *t = t.widen(kind);
            }
        }
        self.field.clear();
        self.field_truncated = false;
        self.column += 1;
        if record_end {
            if self.header.is_none() {
                let names = std::mem::take(&mut self.header_fields);
                self.types = vec![ColumnType::Empty; names.len()];
                self.header = Some(names);
            } else {
                self.rows += 1;
            }
            self.column = 0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn profile(data: &[u8], chunk: usize) -> TableSchema {
        let mut p = CsvProfiler::default();
        for part in data.chunks(chunk) {
            p.feed(part);
        }
        p.finish()
    }

    fn kinds(schema: &TableSchema) -> Vec<(&str, ColumnType)> {
        schema.columns.iter().map(|c| (c.name.as_str(), c.kind)).collect()
    }

    #[test]
    fn columns_types_and_rows_in_any_chunking() {
        let data = b"id,score,label,ok,note\n1,0.5,cat,true,\n2,3,dog,FALSE,\"a, quoted\nnote\"\n3,-1e3,\"x\",true,\n";
        for chunk in [1, 2, 7, data.len()] {
            let schema = profile(data, chunk);
            assert_eq!(schema.rows, 3, "chunk {chunk}");
            use ColumnType::*;
            assert_eq!(
                kinds(&schema),
                [("id", Integer), ("score", Float), ("label", String), ("ok", Boolean), ("note", String)],
                "chunk {chunk}"
            );
        }
    }

    #[test]
    fn a_last_row_without_newline_counts_and_empty_files_have_nothing() {
        assert_eq!(profile(b"a,b\n1,2\n3,4", 3).rows, 2);
        let empty = profile(b"", 1);
        assert_eq!((empty.rows, empty.columns.len()), (0, 0));
        let header_only = profile(b"x,y\n", 4);
        assert_eq!(kinds(&header_only), [("x", ColumnType::Empty), ("y", ColumnType::Empty)]);
    }

    #[test]
    fn long_values_are_text_and_ragged_rows_do_not_panic() {
        let long = format!("a\n{}\n", "9".repeat(10_000));
        assert_eq!(kinds(&profile(long.as_bytes(), 100)), [("a", ColumnType::String)]);
        let ragged = profile(b"a,b\n1\n1,2,3\n", 2);
        assert_eq!(ragged.rows, 2);
        assert_eq!(ragged.columns.len(), 2);
    }
}
