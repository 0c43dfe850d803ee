//! Static limits, checked before anything executes: document size in
//! tokens, aliases, root fields, directives, depth, and cost. Going over
//! one is `QUERY_TOO_COMPLEX`, with the rule, the measured value and the
//! limit in `extensions`.
//!
//! The executor applies them to each operation before handing it to the
//! schema, and the schema has no extension: async-graphql runs every
//! resolved field and list item through each extension's hooks, which
//! once cost a page of articles a quarter of its CPU.
//!
//! Cost: a field costs 1 plus what it selects, except the fields in
//! [`PRICED`], whose children count once per row they can return: a
//! page costs its size times its children (see [`page_cost`]), so
//! `articles(first: 100) { comments { author } }` is priced as the 10,000
//! rows it can touch, not as three fields. Only the operation that runs
//! is priced.

use std::{
    collections::HashMap,
    num::NonZeroUsize,
    sync::{Arc, Mutex},
};

use async_graphql::{
    Name, OutputType, ServerError, Value, Variables,
    parser::types::{
        DocumentOperations, ExecutableDocument, Field, OperationDefinition, OperationType,
        Selection, SelectionSet,
    },
    registry::{MetaType, MetaTypeName, Registry},
};

use super::{
    connection::{DEFAULT_PAGE, MAX_PAGE},
    mutation::MutationRoot,
    query::QueryRoot,
};
use crate::{
    config::Limits,
    error::{AppError, ErrorCode},
    services::comments::PLAIN_LIST_LIMIT,
};

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

/// How a field's children are counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Pricing {
    /// 1 plus its children.
    Single,
    /// A page (`first` / `last`): its size times its children.
    Page,
    /// A list of at most this many rows.
    AtMost(usize),
    /// One row per item of this list argument.
    PerItem(&'static str),
}

/// The fields that return many rows, by parent type and name. A test
/// checks that every connection of the schema is here.
const PRICED: &[(&str, &str, Pricing)] = &[
    ("Query", "articles", Pricing::Page),
    ("Query", "nodes", Pricing::PerItem("ids")),
    ("User", "articles", Pricing::Page),
    ("User", "favoriteArticles", Pricing::Page),
    ("User", "followers", Pricing::Page),
    ("Viewer", "feed", Pricing::Page),
    ("Article", "commentsConnection", Pricing::Page),
    (
        "Article",
        "comments",
        Pricing::AtMost(PLAIN_LIST_LIMIT as usize),
    ),
];

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

/// The limits, the schema's field types they price by, and the cache of
/// documents that passed them.
pub struct DocumentLimits {
    limits: Limits,
    types: FieldTypes,
    cache: Mutex<lru::LruCache<String, Arc<ExecutableDocument>>>,
}

/// What the operation a request runs measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Measure {
    pub cost: usize,
    pub depth: usize,
    pub mutation: bool,
}

impl DocumentLimits {
    pub fn new(limits: Limits) -> Self {
        Self {
            limits,
            types: FieldTypes::of_schema(),
            cache: Mutex::new(lru::LruCache::new(
                NonZeroUsize::new(CACHED_DOCUMENTS).expect("non-zero"),
            )),
        }
    }

    /// The document `query` holds, parsed and within the limits on its
    /// text and shape; cached, so a known document skips both.
    pub fn document(&self, query: &str) -> Result<Arc<ExecutableDocument>, ServerError> {
        if let Some(document) = self
            .cache
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(query)
        {
            return Ok(document.clone());
        }
        let document = Arc::new(check(&self.limits, query)?);
        if query.len() <= MAX_CACHED_BYTES {
            self.cache
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .put(query.to_owned(), document.clone());
        }
        Ok(document)
    }

    /// Depth and cost of the operation that `operation_name` picks, within
    /// the limits. `None` when the document names no such operation, which
    /// the executor reports.
    pub fn measure(
        &self,
        document: &ExecutableDocument,
        operation_name: Option<&str>,
        variables: &Variables,
    ) -> Result<Option<Measure>, ServerError> {
        let Some(operation) = operation(document, operation_name) else {
            return Ok(None);
        };
        let mut walk = Walk {
            document,
            operation,
            variables,
            types: &self.types,
            fields: 0,
            budget: self.limits.max_cost,
            fragments: Vec::new(),
        };
        let root = match operation.ty {
            OperationType::Mutation => "Mutation",
            _ => "Query",
        };
        let (cost, depth) = walk.selections(&operation.selection_set.node, Some(root), 0);
        if walk.fields > walk.budget {
            // Every field costs at least 1: the walk stopped early, and
            // what it counted is a lower bound.
            return Err(too_complex("cost", walk.fields, self.limits.max_cost));
        }
        if depth > self.limits.max_depth {
            return Err(too_complex("depth", depth, self.limits.max_depth));
        }
        if cost > self.limits.max_cost {
            return Err(too_complex("cost", cost, self.limits.max_cost));
        }
        Ok(Some(Measure {
            cost,
            depth,
            mutation: operation.ty == OperationType::Mutation,
        }))
    }
}

/// The operation a request runs, chosen as the executor chooses it.
pub fn operation<'a>(
    document: &'a ExecutableDocument,
    operation_name: Option<&str>,
) -> Option<&'a OperationDefinition> {
    let operation = match (&document.operations, operation_name) {
        (DocumentOperations::Single(op), None) => Some(op),
        (DocumentOperations::Single(_), Some(_)) => None,
        (DocumentOperations::Multiple(ops), Some(name)) => ops.get(name),
        (DocumentOperations::Multiple(ops), None) if ops.len() == 1 => ops.values().next(),
        (DocumentOperations::Multiple(_), None) => None,
    };
    operation.map(|op| &op.node)
}

/// Each object and interface field's named type and pricing.
struct FieldTypes(HashMap<String, HashMap<String, (String, Pricing)>>);

impl FieldTypes {
    fn of_schema() -> Self {
        let mut registry = Registry::default();
        QueryRoot::create_type_info(&mut registry);
        MutationRoot::create_type_info(&mut registry);
        let mut types = HashMap::new();
        for (name, ty) in &registry.types {
            let fields = match ty {
                MetaType::Object { fields, .. } | MetaType::Interface { fields, .. } => fields,
                _ => continue,
            };
            let fields = fields
                .values()
                .map(|field| {
                    let pricing = PRICED
                        .iter()
                        .find(|(t, f, _)| t == name && *f == field.name)
                        .map_or(Pricing::Single, |(_, _, pricing)| *pricing);
                    let named = MetaTypeName::concrete_typename(&field.ty).to_owned();
                    (field.name.clone(), (named, pricing))
                })
                .collect();
            types.insert(name.clone(), fields);
        }
        Self(types)
    }

    fn field(&self, parent: &str, name: &str) -> Option<&(String, Pricing)> {
        self.0.get(parent)?.get(name)
    }
}

/// One pass over an operation, fragments inlined, for its cost and depth.
struct Walk<'a> {
    document: &'a ExecutableDocument,
    operation: &'a OperationDefinition,
    variables: &'a Variables,
    types: &'a FieldTypes,
    /// Fields visited, and how many may be before the walk gives up:
    /// fragments can repeat a selection exponentially.
    fields: usize,
    budget: usize,
    /// The fragments being expanded (a cycle, which validation refuses
    /// later, is not followed).
    fragments: Vec<&'a str>,
}

impl<'a> Walk<'a> {
    /// Cost of `set` on `parent`, and the deepest field level in it
    /// (`level` is the level of the field that selected it).
    fn selections(
        &mut self,
        set: &'a SelectionSet,
        parent: Option<&'a str>,
        level: usize,
    ) -> (usize, usize) {
        let (mut cost, mut depth) = (0usize, level);
        for item in &set.items {
            if self.fields > self.budget {
                break;
            }
            let (c, d) = match &item.node {
                Selection::Field(field) => self.field(&field.node, parent, level + 1),
                Selection::InlineFragment(inline) => {
                    let on = inline.node.type_condition.as_ref();
                    let parent = on.map(|c| c.node.on.node.as_str()).or(parent);
                    self.selections(&inline.node.selection_set.node, parent, level)
                }
                Selection::FragmentSpread(spread) => {
                    let name = spread.node.fragment_name.node.as_str();
                    match self.document.fragments.get(name) {
                        Some(fragment) if !self.fragments.contains(&name) => {
                            self.fragments.push(name);
                            let on = fragment.node.type_condition.node.on.node.as_str();
                            let found =
                                self.selections(&fragment.node.selection_set.node, Some(on), level);
                            self.fragments.pop();
                            found
                        }
                        _ => (0, level),
                    }
                }
            };
            cost = cost.saturating_add(c);
            depth = depth.max(d);
        }
        (cost, depth)
    }

    fn field(&mut self, field: &'a Field, parent: Option<&'a str>, level: usize) -> (usize, usize) {
        self.fields += 1;
        let known = parent.and_then(|p| self.types.field(p, field.name.node.as_str()));
        let (children, depth) = self.selections(
            &field.selection_set.node,
            known.map(|(ty, _)| ty.as_str()),
            level,
        );
        let cost = match known.map_or(Pricing::Single, |(_, pricing)| *pricing) {
            Pricing::Single => children.saturating_add(1),
            Pricing::Page => page_cost(self.int(field, "first"), self.int(field, "last"), children),
            Pricing::AtMost(rows) => list_cost(rows, children),
            Pricing::PerItem(argument) => list_cost(self.len(field, argument), children),
        };
        (cost, depth)
    }

    /// An argument's value, through variables and their defaults.
    fn argument(&self, field: &Field, name: &str) -> Option<Value> {
        let value = field.get_argument(name)?.node.clone();
        value
            .into_const_with(|variable| self.variable(&variable).ok_or(()))
            .ok()
    }

    fn variable(&self, name: &Name) -> Option<Value> {
        self.variables.get(name).cloned().or_else(|| {
            self.operation
                .variable_definitions
                .iter()
                .find(|d| d.node.name.node == *name)
                .and_then(|d| d.node.default_value.as_ref())
                .map(|v| v.node.clone())
        })
    }

    fn int(&self, field: &Field, name: &str) -> Option<i32> {
        match self.argument(field, name)? {
            Value::Number(n) => n
                .as_i64()
                .map(|n| n.clamp(i32::MIN.into(), i32::MAX.into()) as i32),
            _ => None,
        }
    }

    fn len(&self, field: &Field, name: &str) -> usize {
        match self.argument(field, name) {
            Some(Value::List(items)) => items.len(),
            Some(Value::Null) | None => 0,
            Some(_) => 1,
        }
    }
}

/// Checks the text, parses it and checks the document's shape.
fn check(limits: &Limits, query: &str) -> Result<ExecutableDocument, ServerError> {
    let scan = scan(query, limits.max_tokens);
    if scan.tokens > limits.max_tokens {
        return Err(too_complex("tokens", scan.tokens, limits.max_tokens));
    }
    // Checked before parsing, so a deep document never reaches the
    // parser's own recursion limit (whose error has no code).
    if scan.nesting > limits.max_depth {
        return Err(too_complex("depth", scan.nesting, limits.max_depth));
    }
    let document = async_graphql::parser::parse_query(query).map_err(|e| {
        let mut error = ServerError::from(e);
        error
            .extensions
            .get_or_insert_with(Default::default)
            .set("code", ErrorCode::GraphQLParseFailed.as_str());
        error
    })?;
    let shape = DocumentShape::of(&document);
    for (rule, measured, limit) in [
        ("aliases", shape.aliases, limits.max_aliases),
        ("rootFields", shape.root_fields, limits.max_root_fields),
        ("directives", shape.directives, limits.max_directives),
    ] {
        if measured > limit {
            return Err(too_complex(rule, measured, limit));
        }
    }
    Ok(document)
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

    fn limits(max_cost: usize) -> DocumentLimits {
        DocumentLimits::new(Limits {
            max_tokens: 2000,
            max_aliases: 30,
            max_root_fields: 20,
            max_directives: 20,
            max_depth: 15,
            max_cost,
            max_batch_size: 10,
        })
    }

    fn measure(query: &str, operation: Option<&str>, variables: serde_json::Value) -> Measure {
        let limits = limits(10_000);
        let document = limits.document(query).unwrap();
        let variables = Variables::from_json(variables);
        limits
            .measure(&document, operation, &variables)
            .unwrap()
            .expect("an operation")
    }

    #[test]
    fn every_connection_is_priced_by_its_page() {
        let types = FieldTypes::of_schema();
        for (parent, field, pricing) in PRICED {
            assert_eq!(
                types.field(parent, field).map(|(_, p)| *p),
                Some(*pricing),
                "{parent}.{field} is in the schema"
            );
        }
        let mut registry = Registry::default();
        QueryRoot::create_type_info(&mut registry);
        MutationRoot::create_type_info(&mut registry);
        let mut connections = 0;
        for (name, ty) in &registry.types {
            let MetaType::Object { fields, .. } = ty else {
                continue;
            };
            for field in fields.values() {
                let paged = field.args.contains_key("first") && field.args.contains_key("last");
                if paged && field.ty.trim_end_matches('!').ends_with("Connection") {
                    connections += 1;
                    assert_eq!(
                        types.field(name, &field.name).map(|(_, p)| *p),
                        Some(Pricing::Page),
                        "{name}.{} is a connection priced by its page",
                        field.name
                    );
                }
            }
        }
        assert_eq!(connections, 6);
    }

    #[test]
    fn a_page_costs_its_size_times_what_each_row_selects() {
        // edges (1) + node (1) + title (1) + author (1 + username 1) = 5 a row.
        let page = "query($n: Int = 7) { articles(first: $n) { edges { node { title author { username } } } } }";
        assert_eq!(measure(page, None, serde_json::json!({ "n": 5 })).cost, 25);
        assert_eq!(
            measure(page, None, serde_json::json!({})).cost,
            35,
            "default"
        );
        let literal = "{ articles(last: 3) { nodes { slug } } }";
        assert_eq!(measure(literal, None, serde_json::json!({})).cost, 6);
        let unset = "{ articles { nodes { slug } } }";
        assert_eq!(
            measure(unset, None, serde_json::json!({})).cost,
            DEFAULT_PAGE as usize * 2
        );
        let plain = "{ article(slug: \"a\") { comments { body author { username } } } }";
        assert_eq!(
            measure(plain, None, serde_json::json!({})).cost,
            1 + PLAIN_LIST_LIMIT as usize * 3
        );
        let nodes = "query($ids: [ID!]!) { nodes(ids: $ids) { id } }";
        assert_eq!(
            measure(nodes, None, serde_json::json!({ "ids": ["a", "b", "c"] })).cost,
            3
        );
    }

    #[test]
    fn fragments_count_where_they_are_spread_and_cycles_stop() {
        let query = "{ viewer { user { ...U } } }
                     fragment U on User { username ... on User { bio } articles(first: 2) { nodes { ...A } } }
                     fragment A on Article { slug author { ...U } }";
        let measured = measure(query, None, serde_json::json!({}));
        // U inside A is not expanded again (a cycle): author costs 1, a
        // row 3 (nodes, slug, author), the page 6, U 8, viewer 10.
        assert_eq!(measured.cost, 10, "{measured:?}");
        assert_eq!(measured.depth, 5, "viewer user articles nodes slug");
    }

    #[test]
    fn only_the_operation_that_runs_is_measured() {
        let document =
            "query Small { tags } query Large { articles(first: 100) { nodes { slug } } }
                        mutation Write { signOut(input: {}) { errors { code } } }";
        let small = measure(document, Some("Small"), serde_json::json!({}));
        assert_eq!((small.cost, small.depth, small.mutation), (1, 1, false));
        assert_eq!(
            measure(document, Some("Large"), serde_json::json!({})).cost,
            200
        );
        assert!(measure(document, Some("Write"), serde_json::json!({})).mutation);
        let limits = limits(10_000);
        let parsed = limits.document(document).unwrap();
        assert_eq!(
            limits
                .measure(&parsed, None, &Variables::default())
                .unwrap(),
            None,
            "no operation chosen: the executor says so"
        );
    }

    #[test]
    fn fragment_bombs_stop_at_the_cost_limit() {
        // 2^12 copies of F12 from a document of a few hundred tokens.
        let mut query = String::from("{ viewer { user { ...F0 } } }\n");
        for i in 0..12 {
            let next = format!("...F{}", i + 1);
            query += &format!("fragment F{i} on User {{ {next} {next} }}\n");
        }
        query += "fragment F12 on User { username }";
        let limits = limits(1_000);
        let document = limits.document(&query).unwrap();
        let error = limits
            .measure(&document, None, &Variables::default())
            .unwrap_err();
        let extensions = error.extensions.unwrap();
        assert_eq!(extensions.get("rule"), Some(&Value::from("cost")));
    }
}
