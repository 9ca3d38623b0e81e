//! Tokenizer for MLflow search filters and order_by clauses.
//!
//! MLflow hands the raw string to `sqlparse` and then inspects the token groups; this lexer
//! reproduces the handful of token shapes that matter for that grammar (words, numbers, the
//! three quote styles, dots, parentheses, commas and runs of comparison characters) and keeps
//! byte offsets so that error messages can quote the user's own text back.

use super::FilterError;

/// What a token is. Its text is `&src[start..end]`.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Tok {
    /// A bare word: letters, digits, `_`, `$`, `#` (`metrics`, `AND`, `LIKE`, `abc`).
    Word,
    /// A numeric literal: `1`, `-2.5`, `.5`, `1.`, `1e-3`.
    Number,
    /// Text in `'`, `"` or `` ` `` quotes; `content` has doubled or backslash-escaped quotes
    /// resolved (`'it''s'` and `'it\'s'` are both `it's`), everything else verbatim.
    Quoted {
        quote: char,
        content: String,
    },
    Dot,
    Comma,
    LParen,
    RParen,
    /// A run of comparison characters (`=`, `!=`, `<>`, `==`, ...), validated later.
    Op,
    /// Any other single character (`;`, `+`, `*`, an emoji, ...).
    Other,
}

#[derive(Debug, Clone, PartialEq)]
pub(super) struct Token {
    pub kind: Tok,
    /// Byte offsets into the source, always on character boundaries.
    pub start: usize,
    pub end: usize,
    /// Whether whitespace separates this token from the previous one.
    pub space_before: bool,
}

fn is_word_start(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

fn is_word_char(c: char) -> bool {
    c.is_alphanumeric() || matches!(c, '_' | '$' | '#')
}

fn is_op_char(c: char) -> bool {
    matches!(c, '<' | '>' | '=' | '!' | '~')
}

/// Splits `src` into tokens. Fails only on an unterminated quoted string.
pub(super) fn lex(src: &str) -> Result<Vec<Token>, FilterError> {
    let chars: Vec<(usize, char)> = src.char_indices().collect();
    let n = chars.len();
    let offset = |i: usize| chars.get(i).map_or(src.len(), |&(o, _)| o);
    let ch = |i: usize| chars.get(i).map(|&(_, c)| c);

    let mut tokens: Vec<Token> = Vec::new();
    let mut i = 0;
    let mut space_before = false;
    while let Some(c) = ch(i) {
        if c.is_whitespace() {
            space_before = true;
            i += 1;
            continue;
        }
        let prev = if space_before { None } else { tokens.last().map(|t| &t.kind) };
        let glued_to_name = matches!(prev, Some(Tok::Word | Tok::Quoted { .. }));
        let after_dot = matches!(prev, Some(Tok::Dot));
        let start = i;
        let kind = match c {
            '\'' | '"' | '`' => {
                let (content, next) = lex_quoted(&chars, i, c).ok_or_else(|| {
                    FilterError::new(format!(
                        "Invalid filter '{src}'. Could not be parsed: unterminated {c} quote \
                         starting at character {}.",
                        i + 1
                    ))
                })?;
                i = next;
                Tok::Quoted { quote: c, content }
            }
            '(' => {
                i += 1;
                Tok::LParen
            }
            ')' => {
                i += 1;
                Tok::RParen
            }
            ',' => {
                i += 1;
                Tok::Comma
            }
            // `metrics.x`: a dot glued to a name separates key segments; `.5` is a number.
            '.' if glued_to_name || !ch(i + 1).is_some_and(|d| d.is_ascii_digit()) => {
                i += 1;
                Tok::Dot
            }
            c if is_op_char(c) => {
                while ch(i).is_some_and(is_op_char) {
                    i += 1;
                }
                Tok::Op
            }
            // After `metrics.` a key segment may start with a digit (`metrics.1st`).
            c if after_dot && is_word_char(c) => {
                while ch(i).is_some_and(is_word_char) {
                    i += 1;
                }
                Tok::Word
            }
            '.' | '-' | '0'..='9' if number_end(&chars, i).is_some() => {
                let end = number_end(&chars, i).unwrap_or(i + 1);
                if ch(end).is_some_and(is_word_char) {
                    // `1abc`: like sqlparse, not a number but a name.
                    i = end;
                    while ch(i).is_some_and(is_word_char) {
                        i += 1;
                    }
                    Tok::Word
                } else {
                    i = end;
                    Tok::Number
                }
            }
            c if is_word_start(c) => {
                while ch(i).is_some_and(is_word_char) {
                    i += 1;
                }
                Tok::Word
            }
            _ => {
                i += 1;
                Tok::Other
            }
        };
        tokens.push(Token { kind, start: offset(start), end: offset(i), space_before });
        space_before = false;
    }
    debug_assert!(i <= n);
    Ok(tokens)
}

/// Reads a quoted string whose opening quote is at `open`; returns the content and the index
/// just past the closing quote, or `None` when the string never closes.
fn lex_quoted(chars: &[(usize, char)], open: usize, quote: char) -> Option<(String, usize)> {
    let ch = |i: usize| chars.get(i).map(|&(_, c)| c);
    let mut content = String::new();
    let mut j = open + 1;
    loop {
        let c = ch(j)?;
        if c == quote {
            if ch(j + 1) == Some(quote) {
                content.push(quote);
                j += 2;
                continue;
            }
            return Some((content, j + 1));
        }
        if c == '\\' && quote != '`' {
            match ch(j + 1) {
                Some(next) if next == quote => {
                    content.push(quote);
                    j += 2;
                    continue;
                }
                // Kept verbatim: a LIKE pattern may use `\\` and `\%` as escapes.
                Some('\\') => {
                    content.push_str("\\\\");
                    j += 2;
                    continue;
                }
                _ => {}
            }
        }
        content.push(c);
        j += 1;
    }
}

/// If a numeric literal starts at `i` (`-?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?`), the index just
/// past it.
fn number_end(chars: &[(usize, char)], i: usize) -> Option<usize> {
    let digit = |k: usize| chars.get(k).is_some_and(|&(_, c)| c.is_ascii_digit());
    let is = |k: usize, want: char| chars.get(k).is_some_and(|&(_, c)| c == want);
    let mut j = i;
    if is(j, '-') {
        j += 1;
    }
    let int_start = j;
    while digit(j) {
        j += 1;
    }
    let int_digits = j - int_start;
    if is(j, '.') && (int_digits > 0 || digit(j + 1)) {
        j += 1;
        while digit(j) {
            j += 1;
        }
    } else if int_digits == 0 {
        return None;
    }
    if is(j, 'e') || is(j, 'E') {
        let mut k = j + 1;
        if is(k, '+') || is(k, '-') {
            k += 1;
        }
        if digit(k) {
            while digit(k) {
                k += 1;
            }
            j = k;
        }
    }
    Some(j)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds(src: &str) -> Vec<(Tok, String)> {
        lex(src).unwrap().into_iter().map(|t| (t.kind, src[t.start..t.end].to_owned())).collect()
    }

    #[test]
    fn dotted_identifier_splits_into_words_and_dots() {
        let toks = kinds("tags.mlflow.parentRunId");
        assert_eq!(
            toks.iter().map(|(k, _)| k.clone()).collect::<Vec<_>>(),
            vec![Tok::Word, Tok::Dot, Tok::Word, Tok::Dot, Tok::Word]
        );
    }

    #[test]
    fn numbers_cover_negative_fraction_and_exponent_forms() {
        for src in ["1", "-1", "0.5", ".5", "-.5", "1.", "1e5", "1.5E-3", "2e+4"] {
            let toks = kinds(src);
            assert_eq!(toks, vec![(Tok::Number, src.to_owned())], "{src}");
        }
    }

    #[test]
    fn digit_after_glued_dot_is_a_key_segment() {
        let toks = kinds("metrics.5");
        assert_eq!(toks[2], (Tok::Word, "5".to_owned()));
    }

    #[test]
    fn number_followed_by_letters_is_a_word() {
        assert_eq!(kinds("1abc"), vec![(Tok::Word, "1abc".to_owned())]);
    }

    #[test]
    fn doubled_and_escaped_quotes_are_resolved() {
        let toks = kinds(r"'it''s' 'it\'s' `a``b`");
        let contents: Vec<String> = toks
            .into_iter()
            .map(|(k, _)| match k {
                Tok::Quoted { content, .. } => content,
                other => panic!("unexpected {other:?}"),
            })
            .collect();
        assert_eq!(contents, vec!["it's", "it's", "a`b"]);
    }

    #[test]
    fn unterminated_quote_is_an_error() {
        let err = lex("params.x = 'abc").unwrap_err();
        assert!(err.message().contains("unterminated ' quote"), "{err}");
    }

    #[test]
    fn comparison_characters_form_one_token() {
        let toks = kinds("a<>b");
        assert_eq!(toks[1], (Tok::Op, "<>".to_owned()));
    }
}
