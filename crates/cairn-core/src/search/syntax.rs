//! The shape shared by every MLflow filter: `<identifier> <comparator> <value>` clauses joined
//! by `AND`, and `<identifier> [ASC|DESC]` order_by clauses. This layer knows nothing about
//! entity types; each grammar (runs, experiments, registry) interprets the raw clauses and
//! applies MLflow's rules for its own keys, values and comparators.

use super::lexer::{Tok, Token, lex};
use super::{FilterError, NumOp, StrCond, StrOp};

/// One dot-separated part of an identifier: `tags`, `` `mlflow.runName` ``, `"my key"`.
#[derive(Debug, Clone)]
pub(super) struct Segment {
    /// The text without its quotes.
    pub content: String,
    /// Byte range in the source, quotes included.
    pub start: usize,
    pub end: usize,
}

/// An identifier such as `metrics.acc`, `tags.mlflow.parentRunId` or `` tag.`a.b` ``.
#[derive(Debug, Clone)]
pub(super) struct Ident<'a> {
    segments: Vec<Segment>,
    src: &'a str,
}

impl<'a> Ident<'a> {
    /// Splits the identifier as MLflow does: no dot means an attribute key with no entity
    /// type; otherwise the first segment is the entity type and the rest is the key. A key made
    /// of one quoted segment loses its quotes; a longer key (`mlflow.parentRunId`) is kept as
    /// written.
    pub fn split(&self) -> (Option<&str>, String) {
        match self.segments.as_slice() {
            [only] => (None, only.content.clone()),
            [entity, key] => (Some(entity.content.as_str()), key.content.clone()),
            [entity, first, .., last] => {
                (Some(entity.content.as_str()), self.src.get(first.start..last.end).unwrap_or_default().to_owned())
            }
            [] => (None, String::new()),
        }
    }
}

/// The right-hand side of a comparison, before any grammar has judged it.
#[derive(Debug, Clone)]
pub(super) enum Value<'a> {
    /// `'x'`, `"x"` or `` `x` `` (the last is rejected as a value, as MLflow does).
    Quoted {
        quote: char,
        content: String,
        raw: &'a str,
    },
    Number {
        raw: &'a str,
    },
    /// An unquoted word such as `abc` or `NaN`.
    Word {
        raw: &'a str,
    },
    /// A parenthesised list; its items, or why they are not a list of strings.
    List {
        raw: &'a str,
        items: Result<Vec<String>, FilterError>,
    },
}

impl Value<'_> {
    /// The value as the user typed it, for error messages.
    pub fn raw(&self) -> &str {
        match self {
            Value::Quoted { raw, .. } | Value::Number { raw } | Value::Word { raw } | Value::List { raw, .. } => raw,
        }
    }
}

/// One `<identifier> <comparator> <value>` clause. `op` is upper-cased (`LIKE`, `NOT IN`, `=`).
#[derive(Debug, Clone)]
pub(super) struct Comparison<'a> {
    pub ident: Ident<'a>,
    pub op: String,
    pub value: Value<'a>,
}

/// Splits a filter into its comparisons. Empty or blank input gives none. Stray `AND`s are
/// ignored, as MLflow's sqlparse-based parser ignores them.
pub(super) fn parse_comparisons(src: &str) -> Result<Vec<Comparison<'_>>, FilterError> {
    let tokens = lex(src)?;
    let mut parser = Parser { src, tokens: &tokens, pos: 0 };
    let mut comparisons = Vec::new();
    loop {
        while parser.peek_word("AND") {
            parser.pos += 1;
        }
        if parser.at_end() {
            return Ok(comparisons);
        }
        let clause_start = parser.pos;
        comparisons.push(parser.comparison(clause_start)?);
        if !parser.at_end() && !parser.peek_word("AND") {
            return Err(parser.invalid_clause(parser.pos));
        }
    }
}

/// Splits an order_by clause into its identifier and direction (`true` for ascending, the
/// default), following MLflow's `_parse_order_by_string`.
pub(super) fn parse_order_by_clause(src: &str) -> Result<(Ident<'_>, bool), FilterError> {
    let unparsable = || FilterError::new(format!("Invalid order_by clause '{src}'. Could not be parsed."));
    let tokens = lex(src).map_err(|_| unparsable())?;
    let mut parser = Parser { src, tokens: &tokens, pos: 0 };
    let ident = parser.ident().ok_or_else(unparsable)?;
    let ascending = match parser.tokens.get(parser.pos) {
        None => return Ok((ident, true)),
        Some(Token { kind: Tok::Word, start, end, .. }) => {
            let word = src.get(*start..*end).unwrap_or_default();
            if word.eq_ignore_ascii_case("ASC") {
                true
            } else if word.eq_ignore_ascii_case("DESC") {
                false
            } else if parser.pos + 1 == tokens.len() {
                return Err(FilterError::new(format!("Invalid ordering key in order_by clause '{src}'.")));
            } else {
                return Err(unparsable());
            }
        }
        Some(_) => return Err(unparsable()),
    };
    if parser.pos + 1 != tokens.len() {
        return Err(unparsable());
    }
    Ok((ident, ascending))
}

struct Parser<'s, 't> {
    src: &'s str,
    tokens: &'t [Token],
    pos: usize,
}

impl<'s> Parser<'s, '_> {
    fn at_end(&self) -> bool {
        self.pos >= self.tokens.len()
    }

    fn text(&self, token: &Token) -> &'s str {
        self.src.get(token.start..token.end).unwrap_or_default()
    }

    fn word_at(&self, pos: usize) -> Option<&'s str> {
        match self.tokens.get(pos) {
            Some(t @ Token { kind: Tok::Word, .. }) => Some(self.text(t)),
            _ => None,
        }
    }

    /// Whether token `pos` is the word `keyword`, in any case.
    fn word_is(&self, pos: usize, keyword: &str) -> bool {
        self.word_at(pos).is_some_and(|w| w.eq_ignore_ascii_case(keyword))
    }

    fn peek_word(&self, keyword: &str) -> bool {
        self.word_is(self.pos, keyword)
    }

    /// "Invalid clause(s) in filter string: '<text>'", quoting from token `from` up to the next
    /// `AND` (or the end).
    fn invalid_clause(&self, from: usize) -> FilterError {
        let Some(first) = self.tokens.get(from) else {
            return FilterError::new("Invalid clause(s) in filter string: unexpected end of filter");
        };
        let stop = (from + 1..self.tokens.len())
            .find(|&i| self.word_is(i, "AND"))
            .and_then(|i| self.tokens.get(i - 1))
            .or_else(|| self.tokens.last())
            .map_or(first.end, |t| t.end);
        let text = self.src.get(first.start..stop.max(first.end)).unwrap_or_default().trim();
        let mut message = format!("Invalid clause(s) in filter string: '{text}'");
        if self.word_is(from, "OR") {
            message.push_str(". OR is not supported; combine conditions with AND");
        }
        FilterError::new(message)
    }

    /// The error for a clause that stops making sense at token `at`: quotes the clause from its
    /// start up to the point of failure (or the next `AND`).
    fn broken_clause(&self, clause_start: usize, at: usize) -> FilterError {
        if at >= self.tokens.len() || self.word_is(at, "AND") {
            // Missing comparator or value: quote what there is.
            let last = at.checked_sub(1).and_then(|i| self.tokens.get(i));
            let (Some(first), Some(last)) = (self.tokens.get(clause_start), last) else {
                return self.invalid_clause(clause_start);
            };
            let text = self.src.get(first.start..last.end).unwrap_or_default().trim();
            return FilterError::new(format!("Invalid clause(s) in filter string: '{text}'"));
        }
        self.invalid_clause(clause_start)
    }

    /// `segment ('.' segment)*` with no whitespace around the dots.
    fn ident(&mut self) -> Option<Ident<'s>> {
        let mut segments = vec![self.segment(self.pos, false)?];
        self.pos += 1;
        while let (Some(Token { kind: Tok::Dot, space_before: false, .. }), Some(seg)) =
            (self.tokens.get(self.pos), self.segment(self.pos + 1, true))
        {
            segments.push(seg);
            self.pos += 2;
        }
        Some(Ident { segments, src: self.src })
    }

    fn segment(&self, pos: usize, glued: bool) -> Option<Segment> {
        let token = self.tokens.get(pos)?;
        if glued && token.space_before {
            return None;
        }
        let content = match &token.kind {
            Tok::Word => self.text(token).to_owned(),
            Tok::Quoted { content, .. } => content.clone(),
            _ => return None,
        };
        Some(Segment { content, start: token.start, end: token.end })
    }

    fn comparison(&mut self, clause_start: usize) -> Result<Comparison<'s>, FilterError> {
        let ident = self.ident().ok_or_else(|| self.invalid_clause(clause_start))?;
        let op = self.comparator().ok_or_else(|| self.broken_clause(clause_start, self.pos))?;
        let value = self.value().ok_or_else(|| self.broken_clause(clause_start, self.pos))?;
        Ok(Comparison { ident, op, value })
    }

    /// `=`-like operators, or `LIKE`, `ILIKE`, `RLIKE`, `IN`, optionally preceded by `NOT`.
    fn comparator(&mut self) -> Option<String> {
        const WORDS: [&str; 4] = ["LIKE", "ILIKE", "RLIKE", "IN"];
        let is_op_word = |w: &str| WORDS.iter().any(|k| w.eq_ignore_ascii_case(k));
        let token = self.tokens.get(self.pos)?;
        if token.kind == Tok::Op {
            self.pos += 1;
            return Some(self.text(token).to_owned());
        }
        let word = self.word_at(self.pos)?;
        if is_op_word(word) {
            self.pos += 1;
            return Some(word.to_ascii_uppercase());
        }
        if word.eq_ignore_ascii_case("NOT") {
            let next = self.word_at(self.pos + 1).filter(|w| is_op_word(w))?;
            self.pos += 2;
            return Some(format!("NOT {}", next.to_ascii_uppercase()));
        }
        None
    }

    fn value(&mut self) -> Option<Value<'s>> {
        let token = self.tokens.get(self.pos)?;
        let raw = self.text(token);
        let value = match &token.kind {
            Tok::Quoted { quote, content } => Value::Quoted { quote: *quote, content: content.clone(), raw },
            Tok::Number => Value::Number { raw },
            Tok::Word if !raw.eq_ignore_ascii_case("AND") => Value::Word { raw },
            Tok::LParen => return self.list(),
            _ => return None,
        };
        self.pos += 1;
        Some(value)
    }

    /// A parenthesised list, as MLflow reads it with `ast.literal_eval`: one or more quoted
    /// strings separated by commas, a trailing comma allowed.
    fn list(&mut self) -> Option<Value<'s>> {
        let open = self.pos;
        let mut depth = 0usize;
        let mut close = None;
        for (i, token) in self.tokens.iter().enumerate().skip(open) {
            match token.kind {
                Tok::LParen => depth += 1,
                Tok::RParen => {
                    depth = depth.saturating_sub(1);
                    if depth == 0 {
                        close = Some(i);
                        break;
                    }
                }
                _ => {}
            }
        }
        let close = close?;
        let (first, last) = (self.tokens.get(open)?, self.tokens.get(close)?);
        let raw = self.src.get(first.start..last.end).unwrap_or_default();
        let inner = self.tokens.get(open + 1..close).unwrap_or_default();
        self.pos = close + 1;
        Some(Value::List { raw, items: list_items(inner, raw) })
    }
}

fn list_items(inner: &[Token], raw: &str) -> Result<Vec<String>, FilterError> {
    const PREFIX: &str = "While parsing a list in the query, expected";
    if inner.is_empty() {
        return Err(FilterError::new(format!("{PREFIX} a non-empty list of string values, but got empty list")));
    }
    let ill_formed =
        || FilterError::new(format!("{PREFIX} a non-empty list of string values, but got ill-formed list."));
    let mut items = Vec::new();
    let mut expect_item = true;
    for token in inner {
        match (&token.kind, expect_item) {
            (Tok::Quoted { quote: '\'' | '"', content }, true) => {
                items.push(content.clone());
                expect_item = false;
            }
            (Tok::Comma, false) => expect_item = true,
            (Tok::Number, true) => {
                return Err(FilterError::new(format!(
                    "{PREFIX} string value, punctuation, or whitespace, but got different type \
                     in list: {raw}"
                )));
            }
            _ => return Err(ill_formed()),
        }
    }
    if items.is_empty() {
        return Err(ill_formed());
    }
    Ok(items)
}

// --- Value and comparator helpers shared by the grammars, with MLflow's messages. ---

/// A quoted string, as MLflow requires for params and tags (`entity` is `parameter` or `tag`).
pub(super) fn entity_string(value: &Value<'_>, entity: &str) -> Result<String, FilterError> {
    match value {
        Value::Quoted { .. } | Value::Word { .. } => quoted_string(value),
        Value::Number { raw } | Value::List { raw, .. } => Err(FilterError::new(format!(
            "Expected a quoted string value for {entity} (e.g. 'my-value'). Got value {raw}"
        ))),
    }
}

/// The content of a `'...'` or `"..."` literal; an unquoted word or a backtick-quoted name is
/// refused with MLflow's message.
pub(super) fn quoted_string(value: &Value<'_>) -> Result<String, FilterError> {
    match value {
        Value::Quoted { quote: '\'' | '"', content, .. } => Ok(content.clone()),
        other => Err(FilterError::new(format!(
            "Parameter value is either not quoted or unidentified quote types used for string \
             value {}. Use either single or double quotes.",
            other.raw()
        ))),
    }
}

/// A metric value: any numeric literal.
pub(super) fn metric_number(value: &Value<'_>) -> Result<f64, FilterError> {
    let err = || FilterError::new(format!("Expected numeric value type for metric. Found {}", value.raw()));
    match value {
        Value::Number { raw } => raw.parse::<f64>().map_err(|_| err()),
        _ => Err(err()),
    }
}

/// A timestamp or version number: a numeric literal with an integral value that fits in i64.
pub(super) fn integer(value: &Value<'_>, key: &str) -> Result<i64, FilterError> {
    let Value::Number { raw } = value else {
        return Err(FilterError::new(format!(
            "Expected numeric value type for numeric attribute: {key}. Found {}",
            value.raw()
        )));
    };
    integer_literal(raw)
        .ok_or_else(|| FilterError::new(format!("Expected an integer value for numeric attribute: {key}. Found {raw}")))
}

/// `"123"`, `"-4"` or an integral float such as `"1.7e12"`, as an i64.
pub(super) fn integer_literal(raw: &str) -> Option<i64> {
    if let Ok(n) = raw.parse::<i64>() {
        return Some(n);
    }
    let f = raw.parse::<f64>().ok()?;
    // 2^63 is exactly representable; anything at or beyond it does not fit.
    let limit = 9_223_372_036_854_775_808.0_f64;
    if f.is_finite() && f.fract() == 0.0 && f >= -limit && f < limit {
        // In range and integral, so the conversion is exact.
        return Some(f as i64);
    }
    None
}

/// The entity of an experiment or registry identifier.
pub(super) enum AttrOrTag {
    Attribute,
    Tag,
}

/// Splits an experiment or registry identifier and checks its entity type and attribute key,
/// as MLflow's `SearchExperimentsUtils._get_identifier` (and the registry's copies of it) do.
/// `attributes.` is accepted as well as MLflow's `attribute.`, for symmetry with run filters.
pub(super) fn attribute_or_tag(ident: &Ident<'_>, valid_keys: &[&str]) -> Result<(AttrOrTag, String), FilterError> {
    let (prefix, key) = ident.split();
    let entity = match prefix {
        None | Some("attribute" | "attributes") => AttrOrTag::Attribute,
        Some("tag" | "tags") => AttrOrTag::Tag,
        Some(other) => {
            return Err(FilterError::new(format!(
                "Invalid entity type '{other}'. Valid entity types are ('attribute', 'tag', 'tags')"
            )));
        }
    };
    if matches!(entity, AttrOrTag::Attribute) && !valid_keys.contains(&key.as_str()) {
        return Err(FilterError::new(format!(
            "Invalid attribute key '{key}' specified. Valid keys are '{}'",
            set_repr(valid_keys)
        )));
    }
    Ok((entity, key))
}

/// A string value or a list of them, before it is paired with its comparator.
pub(super) enum StrValue {
    One(String),
    Many(Vec<String>),
}

/// Pairs an already-validated string comparator with its value: `IN` and `NOT IN` need a list,
/// every other comparator a single value.
pub(super) fn str_cond(op: &str, value: StrValue, raw: &str) -> Result<StrCond, FilterError> {
    match (op, value) {
        ("IN", StrValue::Many(items)) => Ok(StrCond::In(items)),
        ("NOT IN", StrValue::Many(items)) => Ok(StrCond::NotIn(items)),
        ("IN" | "NOT IN", StrValue::One(_)) => Err(FilterError::new(format!(
            "Comparator '{op}' expects a list of quoted string values such as ('a', 'b'). Got \
             value {raw}"
        ))),
        (_, StrValue::Many(_)) => {
            Err(FilterError::new(format!("Comparator '{op}' cannot be used with a list of values; use IN or NOT IN")))
        }
        (_, StrValue::One(value)) => match str_op(op) {
            Some(op) => Ok(StrCond::Compare { op, value }),
            None => Err(FilterError::new(format!("Invalid comparator '{op}'"))),
        },
    }
}

pub(super) fn num_op(op: &str) -> Option<NumOp> {
    Some(match op {
        "=" => NumOp::Eq,
        "!=" => NumOp::Ne,
        ">" => NumOp::Gt,
        ">=" => NumOp::Ge,
        "<" => NumOp::Lt,
        "<=" => NumOp::Le,
        _ => return None,
    })
}

pub(super) fn str_op(op: &str) -> Option<StrOp> {
    Some(match op {
        "=" => StrOp::Eq,
        "!=" => StrOp::Ne,
        "LIKE" => StrOp::Like,
        "ILIKE" => StrOp::ILike,
        _ => return None,
    })
}

/// "Invalid comparator 'X' not one of '{'a', 'b'}'", as MLflow words it for runs.
pub(super) fn invalid_comparator(op: &str, valid: &[&str]) -> FilterError {
    FilterError::new(format!("Invalid comparator '{op}' not one of '{}'", set_repr(valid)))
}

/// Renders names like a Python set literal (sorted, so messages are stable).
pub(super) fn set_repr(items: &[&str]) -> String {
    let mut items = items.to_vec();
    items.sort_unstable();
    let inner: Vec<String> = items.iter().map(|s| format!("'{s}'")).collect();
    format!("{{{}}}", inner.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ops(src: &str) -> Vec<String> {
        parse_comparisons(src).unwrap().into_iter().map(|c| c.op).collect()
    }

    #[test]
    fn comparators_are_upper_cased_and_not_forms_are_joined() {
        assert_eq!(
            ops("a like 'x' and b NoT iN ('y') AND c not like 'z' and d >= 1"),
            vec!["LIKE", "NOT IN", "NOT LIKE", ">="]
        );
    }

    #[test]
    fn blank_filter_has_no_comparisons() {
        assert!(parse_comparisons("").unwrap().is_empty());
        assert!(parse_comparisons("  \t\n ").unwrap().is_empty());
    }

    #[test]
    fn stray_ands_are_ignored_like_mlflow() {
        assert_eq!(parse_comparisons("AND a = 'x' AND AND b = 'y' and").unwrap().len(), 2);
    }

    #[test]
    fn identifier_keeps_long_unquoted_keys_as_written() {
        let cmp = parse_comparisons("tags.mlflow.parentRunId = 'x'").unwrap();
        assert_eq!(cmp[0].ident.split(), (Some("tags"), "mlflow.parentRunId".to_owned()));
    }

    #[test]
    fn missing_value_quotes_the_clause() {
        let err = parse_comparisons("metrics.x > AND params.y = 'a'").unwrap_err();
        assert_eq!(err.message(), "Invalid clause(s) in filter string: 'metrics.x >'");
    }

    #[test]
    fn list_items_accept_trailing_comma_and_both_quote_styles() {
        let cmp = parse_comparisons(r#"run_id IN ('a', "b",)"#).unwrap();
        match &cmp[0].value {
            Value::List { items, raw } => {
                assert_eq!(items.as_ref().unwrap(), &vec!["a".to_owned(), "b".to_owned()]);
                assert_eq!(*raw, r#"('a', "b",)"#);
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn integer_literal_accepts_integral_floats_only() {
        assert_eq!(integer_literal("1700000000000"), Some(1_700_000_000_000));
        assert_eq!(integer_literal("1.7e12"), Some(1_700_000_000_000));
        assert_eq!(integer_literal("-3"), Some(-3));
        assert_eq!(integer_literal("1.5"), None);
        assert_eq!(integer_literal("1e30"), None);
    }

    #[test]
    fn order_by_direction_is_case_insensitive() {
        assert!(!parse_order_by_clause("metrics.acc desc").unwrap().1);
        assert!(parse_order_by_clause("metrics.acc AsC").unwrap().1);
        assert!(parse_order_by_clause("metrics.acc").unwrap().1);
    }
}
