//! The checks on a document's text, before it is parsed: how many tokens
//! it has, and how deeply its braces nest. Both are counted in one pass
//! that stops once past the token limit, so an oversized or deeply nested
//! document costs no more than the limit to refuse, and never reaches the
//! parser's own recursion limit (whose error has no code).

/// What a pass over the text finds before parsing.
#[derive(Debug, PartialEq, Eq)]
pub struct Scan {
    /// GraphQL tokens: names, numbers, strings, punctuators; not
    /// whitespace, commas or comments.
    pub tokens: usize,
    /// Deepest nesting of selection sets (`{`).
    pub nesting: usize,
}

/// Scans `query`, stopping once past `stop_after` tokens.
pub fn scan(query: &str, stop_after: usize) -> Scan {
    let bytes = query.as_bytes();
    let (mut i, mut tokens) = (0, 0);
    let (mut open, mut nesting) = (0usize, 0usize);
    while i < bytes.len() && tokens <= stop_after {
        match bytes[i] {
            b'{' => {
                tokens += 1;
                open += 1;
                nesting = nesting.max(open);
                i += 1;
            }
            b'}' => {
                tokens += 1;
                open = open.saturating_sub(1);
                i += 1;
            }
            b' ' | b'\t' | b'\n' | b'\r' | b',' | 0xEF | 0xBB | 0xBF => i += 1,
            b'#' => {
                while i < bytes.len() && bytes[i] != b'\n' {
                    i += 1;
                }
            }
            b'"' => {
                tokens += 1;
                if bytes[i..].starts_with(b"\"\"\"") {
                    i += 3;
                    while i < bytes.len() && !bytes[i..].starts_with(b"\"\"\"") {
                        i += if bytes[i] == b'\\' { 2 } else { 1 };
                    }
                    i += 3;
                } else {
                    i += 1;
                    while i < bytes.len() && bytes[i] != b'"' && bytes[i] != b'\n' {
                        i += if bytes[i] == b'\\' { 2 } else { 1 };
                    }
                    i += 1;
                }
            }
            b'.' if bytes[i..].starts_with(b"...") => {
                tokens += 1;
                i += 3;
            }
            c if c.is_ascii_alphanumeric() || c == b'_' || c == b'-' => {
                tokens += 1;
                while i < bytes.len()
                    && (bytes[i].is_ascii_alphanumeric()
                        || matches!(bytes[i], b'_' | b'.' | b'+' | b'-'))
                {
                    i += 1;
                }
            }
            _ => {
                tokens += 1;
                i += 1;
            }
        }
    }
    Scan { tokens, nesting }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn count_tokens(query: &str, stop_after: usize) -> usize {
        scan(query, stop_after).tokens
    }

    #[test]
    fn nesting_follows_selection_sets() {
        assert_eq!(scan("{ viewer { user { username } } }", 100).nesting, 3);
        assert_eq!(scan("{ a } { b }", 100).nesting, 1);
        assert_eq!(
            scan("{ a(x: \"{{{{\") }", 100).nesting,
            1,
            "braces in strings do not count"
        );
    }

    #[test]
    fn tokens_skip_whitespace_commas_and_comments() {
        assert_eq!(count_tokens("{ viewer { user { username } } }", 100), 9);
        assert_eq!(
            count_tokens("query Q($a: Int = 10) { a(x: \"s, t\") }", 100),
            18
        );
        assert_eq!(count_tokens("# only a comment\n", 100), 0);
        assert_eq!(count_tokens("{ a ...F }", 100), 5);
        assert_eq!(
            count_tokens(&"a ".repeat(1000), 10),
            11,
            "stops counting past the limit"
        );
    }
}
