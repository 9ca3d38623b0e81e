//! Inline previews of artifact files, from the first [`PREVIEW_BYTES`] of the file only:
//! text and JSON as text (JSON pretty-printed when the whole file is there and parses), CSV
//! and TSV as a table, images through an `<img>` of the file's own URL. Everything reaches
//! the page through askama's escaping; nothing from a file is ever markup.

/// How much of a file a preview reads.
pub const PREVIEW_BYTES: u64 = 64 * 1024;
/// Rows of a CSV preview below its header.
const CSV_ROWS: usize = 200;
/// Columns of a CSV preview.
const CSV_COLUMNS: usize = 50;

/// Raster and vector images a browser shows in `<img>` (where an SVG's scripts never run).
const IMAGE_EXTENSIONS: &[&str] = &["png", "jpg", "jpeg", "gif", "webp", "avif", "bmp", "ico", "svg"];

/// How a file is previewed, decided by its name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Image,
    Table {
        delimiter: char,
    },
    Json,
    /// Anything else: shown as text when its first bytes are UTF-8 text.
    Text,
}

impl Kind {
    pub fn of(file_name: &str) -> Kind {
        let extension = file_name.rsplit_once('.').map(|(_, e)| e.to_ascii_lowercase()).unwrap_or_default();
        match extension.as_str() {
            e if IMAGE_EXTENSIONS.contains(&e) => Kind::Image,
            "csv" => Kind::Table { delimiter: ',' },
            "tsv" => Kind::Table { delimiter: '\t' },
            "json" => Kind::Json,
            _ => Kind::Text,
        }
    }
}

/// What the page shows for a file.
#[derive(Debug, Clone, PartialEq)]
pub enum Preview {
    Image {
        src: String,
        alt: String,
    },
    Text {
        text: String,
    },
    Table {
        header: Vec<String>,
        rows: Vec<Vec<String>>,
        more_rows: bool,
    },
    Empty,
    /// Not text (NUL bytes, or not UTF-8): download it instead.
    Binary,
}

/// The preview of a non-image file from its first bytes; `truncated` says the file goes on.
pub fn of_bytes(kind: Kind, head: &[u8], truncated: bool) -> Preview {
    if head.is_empty() {
        return Preview::Empty;
    }
    let Some(text) = decode(head, truncated) else {
        return Preview::Binary;
    };
    match kind {
        Kind::Table { delimiter } => table(text, delimiter, !truncated),
        Kind::Json if !truncated => match serde_json::from_str::<serde_json::Value>(text) {
            Ok(value) => Preview::Text { text: serde_json::to_string_pretty(&value).unwrap_or_else(|_| text.into()) },
            Err(_) => Preview::Text { text: text.to_owned() },
        },
        Kind::Json | Kind::Text | Kind::Image => Preview::Text { text: text.to_owned() },
    }
}

/// The bytes as UTF-8 text, or `None` for binary data. A character cut in half by the end
/// of a truncated read is dropped.
fn decode(head: &[u8], truncated: bool) -> Option<&str> {
    if head.contains(&0) {
        return None;
    }
    match std::str::from_utf8(head) {
        Ok(text) => Some(text),
        // The error is an incomplete sequence at the very end: the read stopped inside it.
        Err(e) if truncated && e.error_len().is_none() => std::str::from_utf8(&head[..e.valid_up_to()]).ok(),
        Err(_) => None,
    }
}

/// The first record as the header and up to [`CSV_ROWS`] more, each cut or padded to the
/// header's width (at most [`CSV_COLUMNS`]). When the file goes on, its last, possibly
/// partial, record is left out.
fn table(text: &str, delimiter: char, complete: bool) -> Preview {
    let (mut records, more) = parse_delimited(text, delimiter, complete, CSV_ROWS + 1);
    if records.is_empty() {
        return Preview::Text { text: text.to_owned() };
    }
    let mut header = records.remove(0);
    header.truncate(CSV_COLUMNS);
    let width = header.len();
    for row in &mut records {
        row.resize(width, String::new());
    }
    Preview::Table { header, rows: records, more_rows: more || !complete }
}

/// RFC 4180 records: fields separated by `delimiter`, records by `\n` or `\r\n`, fields in
/// double quotes may hold delimiters, newlines and doubled quotes. At most `limit` records;
/// the flag says there were more. An incomplete input's last record is dropped.
fn parse_delimited(text: &str, delimiter: char, complete: bool, limit: usize) -> (Vec<Vec<String>>, bool) {
    let mut records = Vec::new();
    let mut record = Vec::new();
    let mut field = String::new();
    let mut quoted = false;
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '"' if quoted && chars.peek() == Some(&'"') => {
                field.push('"');
                chars.next();
            }
            '"' if quoted => quoted = false,
            '"' if field.is_empty() => quoted = true,
            c if c == delimiter && !quoted => record.push(std::mem::take(&mut field)),
            '\r' if !quoted && chars.peek() == Some(&'\n') => {}
            '\n' if !quoted => {
                record.push(std::mem::take(&mut field));
                if records.len() == limit {
                    return (records, true);
                }
                records.push(std::mem::take(&mut record));
            }
            c => field.push(c),
        }
    }
    if complete && (!field.is_empty() || !record.is_empty()) {
        record.push(field);
        if records.len() == limit {
            return (records, true);
        }
        records.push(record);
    }
    (records, false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_follow_the_extension() {
        assert_eq!(Kind::of("plot.PNG"), Kind::Image);
        assert_eq!(Kind::of("logo.svg"), Kind::Image);
        assert_eq!(Kind::of("data.csv"), Kind::Table { delimiter: ',' });
        assert_eq!(Kind::of("data.tsv"), Kind::Table { delimiter: '\t' });
        assert_eq!(Kind::of("metrics.json"), Kind::Json);
        assert_eq!(Kind::of("MLmodel"), Kind::Text);
        assert_eq!(Kind::of("index.html"), Kind::Text);
    }

    #[test]
    fn csv_quotes_newlines_and_ragged_rows() {
        let text = "name,note,score\r\na,\"x, \"\"y\"\"\",1\nb,\"two\nlines\"\nc,3,4,5\n";
        let Preview::Table { header, rows, more_rows } =
            of_bytes(Kind::Table { delimiter: ',' }, text.as_bytes(), false)
        else {
            panic!("a table");
        };
        assert_eq!(header, ["name", "note", "score"]);
        assert_eq!(rows[0], ["a", "x, \"y\"", "1"]);
        assert_eq!(rows[1], ["b", "two\nlines", ""], "padded to the header");
        assert_eq!(rows[2], ["c", "3", "4"], "cut to the header");
        assert!(!more_rows);
    }

    #[test]
    fn a_truncated_csv_drops_its_partial_last_row_and_says_there_is_more() {
        let text = "a,b\n1,2\n3,4\n5,";
        let preview = of_bytes(Kind::Table { delimiter: ',' }, text.as_bytes(), true);
        let Preview::Table { rows, more_rows, .. } = preview else { panic!("a table") };
        assert_eq!(rows, [["1", "2"], ["3", "4"]]);
        assert!(more_rows);
        let long: String = std::iter::once("i\n".to_owned()).chain((0..500).map(|i| format!("{i}\n"))).collect();
        let Preview::Table { rows, more_rows, .. } = of_bytes(Kind::Table { delimiter: ',' }, long.as_bytes(), false)
        else {
            panic!("a table");
        };
        assert_eq!(rows.len(), CSV_ROWS);
        assert!(more_rows);
    }

    #[test]
    fn json_is_pretty_printed_only_when_whole() {
        let whole = of_bytes(Kind::Json, br#"{"a":[1,2]}"#, false);
        assert_eq!(whole, Preview::Text { text: "{\n  \"a\": [\n    1,\n    2\n  ]\n}".into() });
        let part = of_bytes(Kind::Json, br#"{"a":[1,"#, true);
        assert_eq!(part, Preview::Text { text: r#"{"a":[1,"#.into() });
    }

    #[test]
    fn binary_and_cut_characters() {
        assert_eq!(of_bytes(Kind::Text, b"PK\x03\x04\0\0", false), Preview::Binary);
        assert_eq!(of_bytes(Kind::Text, b"\xff\xfe", false), Preview::Binary);
        assert_eq!(of_bytes(Kind::Text, b"", false), Preview::Empty);
        // "ü" is two bytes; the read stopped after the first.
        assert_eq!(of_bytes(Kind::Text, b"gr\xc3", true), Preview::Text { text: "gr".into() });
        assert_eq!(of_bytes(Kind::Text, b"gr\xc3", false), Preview::Binary);
    }
}
