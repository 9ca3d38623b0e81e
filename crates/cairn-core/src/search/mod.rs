//! MLflow's search grammar: `filter` strings and `order_by` clauses of `runs/search`,
//! `experiments/search`, `registered-models/search` and `model-versions/search`, parsed into
//! typed ASTs for the SQL layer.
//!
//! The rules follow MLflow 3.x `mlflow/utils/search_utils.py` (`SearchUtils`,
//! `SearchExperimentsUtils`, `SearchModelUtils`, `SearchModelVersionUtils`) plus the checks
//! MLflow's SQLAlchemy stores add on top (comparator subsets, duplicate order_by fields), and
//! the error messages are MLflow's where MLflow has one. A filter is a conjunction: clauses are
//! joined with `AND` (any case); `OR` and parentheses are rejected. Blank filters parse to an
//! empty filter, which matches everything.
//!
//! String values keep SQL `LIKE` semantics (`%`, `_`): patterns are returned as written, to be
//! passed as bind parameters. Every value in the AST is data, never SQL text; the only strings
//! meant for SQL are the operator spellings from [`NumOp::as_sql`] and [`StrOp::as_sql`].

mod experiments;
mod lexer;
mod registry;
mod runs;
mod syntax;

pub use experiments::{
    ExperimentClause, ExperimentFilter, ExperimentOrderKey, ExperimentTimeAttr, parse_experiment_filter,
    parse_experiment_order_by,
};
pub use registry::{
    ModelVersionClause, ModelVersionFilter, ModelVersionOrderKey, RegisteredModelClause, RegisteredModelFilter,
    RegisteredModelOrderKey, parse_model_version_filter, parse_model_version_order_by, parse_registered_model_filter,
    parse_registered_model_order_by,
};
pub use runs::{DatasetField, RunAttr, RunClause, RunFilter, RunOrderKey, parse_run_filter, parse_run_order_by};

/// A filter or order_by clause that MLflow would reject; the message says why, in MLflow's
/// words where it has some. The MLflow API answers it with 400 `INVALID_PARAMETER_VALUE`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct FilterError {
    message: String,
}

impl FilterError {
    pub(crate) fn new(message: impl Into<String>) -> Self {
        Self { message: message.into() }
    }

    pub fn message(&self) -> &str {
        &self.message
    }
}

/// A numeric comparison (metrics, timestamps, version numbers).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum NumOp {
    Eq,
    Ne,
    Gt,
    Ge,
    Lt,
    Le,
}

impl NumOp {
    /// The SQL operator: `=`, `<>`, `>`, `>=`, `<`, `<=`.
    pub fn as_sql(self) -> &'static str {
        match self {
            NumOp::Eq => "=",
            NumOp::Ne => "<>",
            NumOp::Gt => ">",
            NumOp::Ge => ">=",
            NumOp::Lt => "<",
            NumOp::Le => "<=",
        }
    }
}

/// A comparison of a string with one value. `Like` is case-sensitive, `ILike` is not; both take
/// SQL `LIKE` patterns.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StrOp {
    Eq,
    Ne,
    Like,
    ILike,
}

impl StrOp {
    /// The SQL operator: `=`, `<>`, `LIKE`, `ILIKE`.
    pub fn as_sql(self) -> &'static str {
        match self {
            StrOp::Eq => "=",
            StrOp::Ne => "<>",
            StrOp::Like => "LIKE",
            StrOp::ILike => "ILIKE",
        }
    }
}

/// A condition on a string column that may also test membership in a list (`run_id IN
/// ('a', 'b')`). Lists are never empty.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum StrCond {
    Compare { op: StrOp, value: String },
    In(Vec<String>),
    NotIn(Vec<String>),
}

/// One order_by clause: a key and a direction (ascending unless `DESC` was given).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct OrderBy<K> {
    pub key: K,
    pub ascending: bool,
}

/// Parses a request's list of order_by clauses with one of the `parse_*_order_by` functions,
/// skipping blank entries (a query string may carry `order_by=`), and rejects a key given twice
/// with MLflow's message, as its stores do for runs and registered models.
///
/// ```
/// use cairn_core::search::{parse_order_by_list, parse_run_order_by};
/// let order = parse_order_by_list(&["metrics.acc DESC", "start_time"], parse_run_order_by)?;
/// assert_eq!(order.len(), 2);
/// # Ok::<(), cairn_core::search::FilterError>(())
/// ```
pub fn parse_order_by_list<K, S>(
    clauses: &[S],
    parse: impl Fn(&str) -> Result<OrderBy<K>, FilterError>,
) -> Result<Vec<OrderBy<K>>, FilterError>
where
    K: PartialEq,
    S: AsRef<str>,
{
    let mut parsed: Vec<OrderBy<K>> = Vec::with_capacity(clauses.len());
    for clause in clauses.iter().map(AsRef::as_ref).filter(|c| !c.trim().is_empty()) {
        let order = parse(clause)?;
        if parsed.iter().any(|o| o.key == order.key) {
            let listed: Vec<String> = clauses.iter().map(|c| format!("'{}'", c.as_ref())).collect();
            return Err(FilterError::new(format!("`order_by` contains duplicate fields: [{}]", listed.join(", "))));
        }
        parsed.push(order);
    }
    Ok(parsed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn order_by_list_skips_blank_entries() {
        let order = parse_order_by_list(&["", "  ", "params.model ASC"], parse_run_order_by).unwrap();
        assert_eq!(order, vec![OrderBy { key: RunOrderKey::Param("model".into()), ascending: true }]);
    }

    #[test]
    fn order_by_list_rejects_duplicate_keys() {
        let err = parse_order_by_list(&["metrics.acc DESC", "metric.acc"], parse_run_order_by).unwrap_err();
        assert_eq!(err.message(), "`order_by` contains duplicate fields: ['metrics.acc DESC', 'metric.acc']");
    }

    #[test]
    fn order_by_list_treats_attribute_aliases_as_the_same_key() {
        let err = parse_order_by_list(&["start_time", "created DESC"], parse_run_order_by).unwrap_err();
        assert!(err.message().contains("duplicate fields"), "{err}");
    }

    #[test]
    fn order_by_list_reports_the_first_invalid_clause() {
        let err = parse_order_by_list(&["metrics.acc", "bogus.x"], parse_run_order_by).unwrap_err();
        assert!(err.message().starts_with("Invalid entity type 'bogus'"), "{err}");
    }

    #[test]
    fn sql_operator_spellings() {
        assert_eq!(NumOp::Ne.as_sql(), "<>");
        assert_eq!(NumOp::Ge.as_sql(), ">=");
        assert_eq!(StrOp::ILike.as_sql(), "ILIKE");
        assert_eq!(StrOp::Ne.as_sql(), "<>");
    }

    /// A small deterministic generator: tests stay reproducible without a `rand` dependency.
    struct XorShift(u64);

    impl XorShift {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }

        fn below(&mut self, n: usize) -> usize {
            usize::try_from(self.next() % (n as u64)).unwrap_or(0)
        }
    }

    /// Runs every entry point on `input`; any of them panicking fails the test.
    fn feed_all(input: &str) {
        let _ = parse_run_filter(input);
        let _ = parse_run_order_by(input);
        let _ = parse_experiment_filter(input);
        let _ = parse_experiment_order_by(input);
        let _ = parse_registered_model_filter(input);
        let _ = parse_registered_model_order_by(input);
        let _ = parse_model_version_filter(input);
        let _ = parse_model_version_order_by(input);
        let _ = parse_order_by_list(&[input, input], parse_run_order_by);
    }

    #[test]
    fn no_input_makes_any_parser_panic() {
        const PIECES: &[&str] = &[
            "metrics",
            "params",
            "tags",
            "tag",
            "attributes",
            "attr",
            "run",
            "dataset",
            "datasets",
            "name",
            "run_id",
            "start_time",
            "version_number",
            "creation_time",
            "x",
            "acc",
            ".",
            "..",
            "`",
            "``",
            "'",
            "''",
            "\"",
            "\\",
            "\\'",
            "(",
            ")",
            "()",
            ",",
            "=",
            "!=",
            "<>",
            "==",
            ">",
            ">=",
            "<",
            "<=",
            "~",
            "!",
            "LIKE",
            "ilike",
            "IN",
            "NOT",
            "not in",
            "AND",
            "and",
            "OR",
            "IS",
            "NULL",
            "ASC",
            "desc",
            "-",
            "-1",
            "1.5",
            ".5",
            "1e5",
            "1e",
            "1e+",
            "-.",
            "0x1F",
            "NaN",
            "inf",
            " ",
            "  ",
            "\t",
            "\n",
            ";",
            "%",
            "_",
            "*",
            "é",
            "中文",
            "🦀",
            "\u{0}",
            "\u{200b}",
            "\u{feff}",
            "ß",
            "İ",
            "'a'",
            "\"b\"",
            "`c.d`",
            "('a','b')",
            "('a',",
            "(1,2)",
            "$",
            "#",
            "@",
            "/",
            "tags.`mlflow.runName`",
            "metrics.acc > 0.5",
        ];
        let mut rng = XorShift(0x9E37_79B9_7F4A_7C15);
        for _ in 0..20_000 {
            let len = 1 + rng.below(10);
            let mut input = String::new();
            for _ in 0..len {
                input.push_str(PIECES[rng.below(PIECES.len())]);
                if rng.below(3) == 0 {
                    input.push(' ');
                }
            }
            feed_all(&input);
        }
        // Random characters, including multi-byte ones, with no structure at all.
        let alphabet: Vec<char> = "ab.`'\"()=<>!, -1e%_é🦀\\\u{0}AND".chars().collect();
        for _ in 0..20_000 {
            let len = rng.below(24);
            let input: String = (0..len).map(|_| alphabet[rng.below(alphabet.len())]).collect();
            feed_all(&input);
        }
        for input in [
            "",
            " ",
            "'",
            "\"",
            "`",
            "('",
            "(",
            ")",
            "metrics.",
            ".metrics",
            "metrics.x >",
            "metrics.x > 'unterminated",
            "attributes.run_id IN (",
            "attributes.run_id IN ((",
            "attributes.run_id IN ())",
            "tags.`open",
            "🦀.🦀 = '🦀'",
            "-",
            "-.",
            "1e",
        ] {
            feed_all(input);
        }
    }
}
