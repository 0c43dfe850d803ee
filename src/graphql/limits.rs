//! Static limits, checked before anything executes: document size in
//! tokens, aliases, root fields, directives, depth, and cost. Going over
//! one is `QUERY_TOO_COMPLEX`, with the rule, the measured value and the
//! limit in `extensions`.
//!
//! Cost is async-graphql's complexity with one change that matters: a list
//! field costs its page size times its children (see [`page_cost`]), so
//! `articles(first: 100) { comments { author } }` is priced as the 10,000
//! rows it can touch, not as three fields.

use std::{
    num::NonZeroUsize,
    sync::{Arc, Mutex},
};

use async_graphql::{
    ServerError, ServerResult, ValidationResult, Variables,
    extensions::{Extension, ExtensionContext, ExtensionFactory, NextParseQuery, NextValidation},
    parser::types::{ExecutableDocument, OperationType, Selection, SelectionSet},
};

use super::{
    connection::{DEFAULT_PAGE, MAX_PAGE},
    loaders::Loaders,
};
use crate::error::AppError;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueryLimits {
    pub max_tokens: usize,
    pub max_aliases: usize,
    pub max_root_fields: usize,
    pub max_directives: usize,
    pub max_depth: usize,
    pub max_cost: usize,
}

/// The cost of a paginated field: the page it asks for times what each
/// item costs. An out-of-range size is priced at the maximum page; the
/// resolver refuses it anyway.
pub fn page_cost(first: Option<i32>, last: Option<i32>, child_complexity: usize) -> usize {
    let size = first.or(last).unwrap_or(DEFAULT_PAGE).clamp(1, MAX_PAGE) as usize;
    size.saturating_mul(child_complexity.max(1))
}

/// The cost of a list of known length.
pub fn list_cost(len: usize, child_complexity: usize) -> usize {
    len.max(1).saturating_mul(child_complexity.max(1))
}

fn too_complex(rule: &'static str, measured: usize, limit: usize) -> ServerError {
    AppError::QueryTooComplex {
        rule,
        measured,
        limit,
    }
    .into_server_error()
}

/// Documents that passed the limits, by text: clients send the same few
/// documents over and over, and parsing is a large share of a small
/// request's work. Bounded, and only short documents are kept.
const CACHED_DOCUMENTS: usize = 512;
const MAX_CACHED_BYTES: usize = 16 * 1024;

/// The schema's one extension: the limits, with a cache of parsed
/// documents, then the rate-limit charge for what passed. One extension,
/// because async-graphql runs every field through each extension's chain.
pub struct CheckedDocuments {
    limits: QueryLimits,
    cache: Arc<Mutex<lru::LruCache<String, ExecutableDocument>>>,
}

impl CheckedDocuments {
    pub fn new(limits: QueryLimits) -> Self {
        Self {
            limits,
            cache: Arc::new(Mutex::new(lru::LruCache::new(
                NonZeroUsize::new(CACHED_DOCUMENTS).expect("non-zero"),
            ))),
        }
    }
}

impl ExtensionFactory for CheckedDocuments {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(Self {
            limits: self.limits,
            cache: self.cache.clone(),
        })
    }
}

#[async_graphql::async_trait::async_trait]
impl Extension for CheckedDocuments {
    async fn parse_query(
        &self,
        ctx: &ExtensionContext<'_>,
        query: &str,
        variables: &Variables,
        next: NextParseQuery<'_>,
    ) -> ServerResult<ExecutableDocument> {
        let cached = self
            .cache
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(query)
            .cloned();
        let document = match cached {
            Some(document) => document,
            None => {
                let document = self.limits.check(ctx, query, variables, next).await?;
                if query.len() <= MAX_CACHED_BYTES {
                    self.cache
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .put(query.to_owned(), document.clone());
                }
                document
            }
        };
        if has_mutation(&document)
            && let Some(loaders) = ctx.data_opt::<Loaders>()
        {
            // Mutations run in turn and change what later ones read: no
            // answer is cached across them.
            loaders.enable_all_cache(false);
        }
        Ok(document)
    }

    async fn validation(
        &self,
        ctx: &ExtensionContext<'_>,
        next: NextValidation<'_>,
    ) -> Result<ValidationResult, Vec<ServerError>> {
        let result = next.run(ctx).await?;
        let limits = &self.limits;
        if result.depth > limits.max_depth {
            return Err(vec![too_complex("depth", result.depth, limits.max_depth)]);
        }
        if result.complexity > limits.max_cost {
            return Err(vec![too_complex(
                "cost",
                result.complexity,
                limits.max_cost,
            )]);
        }
        super::rate_limit::charge(ctx, result.complexity)
            .await
            .map_err(|e| vec![e])?;
        Ok(result)
    }
}

fn has_mutation(document: &ExecutableDocument) -> bool {
    document
        .operations
        .iter()
        .any(|(_, op)| op.node.ty == OperationType::Mutation)
}

impl QueryLimits {
    /// Checks the text, parses it and checks the document's shape.
    async fn check(
        &self,
        ctx: &ExtensionContext<'_>,
        query: &str,
        variables: &Variables,
        next: NextParseQuery<'_>,
    ) -> ServerResult<ExecutableDocument> {
        let scan = scan(query, self.max_tokens);
        if scan.tokens > self.max_tokens {
            return Err(too_complex("tokens", scan.tokens, self.max_tokens));
        }
        // Checked before parsing, so a deep document never reaches the
        // parser's own recursion limit (whose error has no code).
        if scan.nesting > self.max_depth {
            return Err(too_complex("depth", scan.nesting, self.max_depth));
        }
        let document = next.run(ctx, query, variables).await?;
        let shape = DocumentShape::of(&document);
        for (rule, measured, limit) in [
            ("aliases", shape.aliases, self.max_aliases),
            ("rootFields", shape.root_fields, self.max_root_fields),
            ("directives", shape.directives, self.max_directives),
        ] {
            if measured > limit {
                return Err(too_complex(rule, measured, limit));
            }
        }
        Ok(document)
    }
}

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

/// Counts over the document as written (fragments once each).
#[derive(Debug, Default, PartialEq, Eq)]
struct DocumentShape {
    aliases: usize,
    root_fields: usize,
    directives: usize,
}

impl DocumentShape {
    fn of(document: &ExecutableDocument) -> Self {
        let mut shape = Self::default();
        for (_, operation) in document.operations.iter() {
            shape.directives += operation.node.directives.len();
            shape.root_fields += root_fields(&operation.node.selection_set.node, document, 0);
            shape.walk(&operation.node.selection_set.node);
        }
        for fragment in document.fragments.values() {
            shape.directives += fragment.node.directives.len();
            shape.walk(&fragment.node.selection_set.node);
        }
        shape
    }

    fn walk(&mut self, set: &SelectionSet) {
        for item in &set.items {
            match &item.node {
                Selection::Field(field) => {
                    self.aliases += usize::from(field.node.alias.is_some());
                    self.directives += field.node.directives.len();
                    self.walk(&field.node.selection_set.node);
                }
                Selection::FragmentSpread(spread) => {
                    self.directives += spread.node.directives.len()
                }
                Selection::InlineFragment(inline) => {
                    self.directives += inline.node.directives.len();
                    self.walk(&inline.node.selection_set.node);
                }
            }
        }
    }
}

/// Fields at the root of an operation, through fragments (which validation
/// later checks for cycles; `hops` stops a cycle here first).
fn root_fields(set: &SelectionSet, document: &ExecutableDocument, hops: usize) -> usize {
    if hops > 8 {
        return 0;
    }
    set.items
        .iter()
        .map(|item| match &item.node {
            Selection::Field(_) => 1,
            Selection::InlineFragment(inline) => {
                root_fields(&inline.node.selection_set.node, document, hops + 1)
            }
            Selection::FragmentSpread(spread) => document
                .fragments
                .get(&spread.node.fragment_name.node)
                .map_or(0, |f| {
                    root_fields(&f.node.selection_set.node, document, hops + 1)
                }),
        })
        .sum()
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

    #[test]
    fn shape_counts_aliases_roots_and_directives() {
        let document = async_graphql::parser::parse_query(
            "query @a { x: viewer { y: user @b { username } } ...F }
             fragment F on Query { tags @c z: tags }",
        )
        .unwrap();
        assert_eq!(
            DocumentShape::of(&document),
            DocumentShape {
                aliases: 3,
                root_fields: 3,
                directives: 3
            }
        );
    }

    #[test]
    fn pages_cost_their_size() {
        assert_eq!(page_cost(None, None, 10), 200);
        assert_eq!(page_cost(Some(5), None, 10), 50);
        assert_eq!(page_cost(None, Some(100), 3), 300);
        assert_eq!(page_cost(Some(i32::MAX), None, 10), 1000);
        assert_eq!(page_cost(Some(0), None, 0), 1);
    }
}
