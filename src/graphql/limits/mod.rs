//! Static limits, checked before anything executes: document size in
//! tokens, aliases, root fields, directives, depth, and cost. Going over
//! one is `QUERY_TOO_COMPLEX`, with the rule, the measured value and the
//! limit in `extensions`.
//!
//! Two stages, one file per check:
//! - before parsing, the text ([`text`]): tokens, and the nesting of
//!   braces;
//! - per request, one walk over the operation that runs ([`visitor`]),
//!   fragments inlined, variables applied, with every check hooked into
//!   it: [`aliases`], [`root_fields`], [`directives`], [`depth`] and
//!   [`cost`].
//!
//! The executor applies them to each operation before handing it to the
//! schema, and the schema has no extension: async-graphql runs every
//! resolved field and list item through each extension's hooks, which
//! once cost a page of articles a quarter of its CPU.

mod aliases;
mod cost;
mod depth;
mod directives;
mod pricing;
mod root_fields;
mod text;
mod visitor;

pub(crate) use visitor::registry;

use async_graphql::{
    ServerError, Variables,
    parser::types::{DocumentOperations, ExecutableDocument, OperationDefinition, OperationType},
};

use self::{
    aliases::Aliases,
    cost::Cost,
    depth::Depth,
    directives::Directives,
    root_fields::RootFields,
    visitor::{SchemaFields, Walked},
};
use crate::{
    config::{Limits, Pagination},
    error::{AppError, ErrorCode},
};

fn too_complex(rule: &'static str, measured: usize, limit: usize) -> ServerError {
    AppError::QueryTooComplex {
        rule,
        measured,
        limit,
    }
    .into_server_error()
}

/// Refuses `measured` over `limit` under `rule`.
fn within(rule: &'static str, measured: usize, limit: usize) -> Result<(), ServerError> {
    if measured > limit {
        return Err(too_complex(rule, measured, limit));
    }
    Ok(())
}

/// The limits, and the schema's fields they price by.
pub struct DocumentLimits {
    limits: Limits,
    pages: Pagination,
    schema: SchemaFields,
}

/// What the operation a request runs measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Measure {
    pub cost: usize,
    pub depth: usize,
    pub mutation: bool,
}

impl DocumentLimits {
    pub fn new(limits: Limits, pages: Pagination) -> Self {
        Self {
            limits,
            pages,
            schema: SchemaFields::of_schema(),
        }
    }

    /// Parses `query` once its text is within the limits.
    pub fn parse(&self, query: &str) -> Result<ExecutableDocument, ServerError> {
        let limits = &self.limits;
        let scan = text::scan(query, limits.max_tokens);
        within("tokens", scan.tokens, limits.max_tokens)?;
        within("depth", scan.nesting, limits.max_depth)?;
        async_graphql::parser::parse_query(query).map_err(|e| {
            let mut error = ServerError::from(e);
            error
                .extensions
                .get_or_insert_with(Default::default)
                .set("code", ErrorCode::GraphQLParseFailed.as_str());
            error
        })
    }

    /// The operation that `operation_name` picks, measured, within the
    /// limits. `None` when the document names no such operation, which the
    /// executor reports.
    pub fn measure(
        &self,
        document: &ExecutableDocument,
        operation_name: Option<&str>,
        variables: &Variables,
    ) -> Result<Option<Measure>, ServerError> {
        let Some(operation) = operation(document, operation_name) else {
            return Ok(None);
        };
        let limits = &self.limits;
        let (mut aliases, mut roots, mut directives) = (
            Aliases::default(),
            RootFields::default(),
            Directives::default(),
        );
        let (mut depth, mut cost) = (Depth::default(), Cost::new(&self.pages));
        // Every field costs at least 1, so a walk past `max_cost` fields
        // is over the limit whatever the rest holds.
        let walked = visitor::walk(
            document,
            operation,
            variables,
            &self.schema,
            limits.max_cost,
            &mut [
                &mut aliases,
                &mut roots,
                &mut directives,
                &mut depth,
                &mut cost,
            ],
        );
        within("aliases", aliases.count, limits.max_aliases)?;
        within("rootFields", roots.count, limits.max_root_fields)?;
        within("directives", directives.count, limits.max_directives)?;
        within("depth", depth.deepest, limits.max_depth)?;
        if let Walked::Stopped { fields } = walked {
            return Err(too_complex("cost", fields, limits.max_cost));
        }
        within("cost", cost.total(), limits.max_cost)?;
        Ok(Some(Measure {
            cost: cost.total(),
            depth: depth.deepest,
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

#[cfg(test)]
mod tests {
    use async_graphql::{Value, registry::MetaType};

    use super::{cost::page_cost, *};
    use crate::config::{Config, schema_lists::MAX_PLAIN_COMMENTS};

    #[test]
    fn aliases_roots_and_directives_count_where_fragments_are_spread() {
        let query = "query @a { x: viewer { y: user @b { username } } ...F }
             fragment F on Query { tags @c z: tags }";
        let limits = limits(10_000);
        let document = limits.parse(query).unwrap();
        let operation = operation(&document, None).unwrap();
        let (mut aliases, mut roots, mut directives) = (
            Aliases::default(),
            RootFields::default(),
            Directives::default(),
        );
        let walked = visitor::walk(
            &document,
            operation,
            &Variables::default(),
            &limits.schema,
            100,
            &mut [&mut aliases, &mut roots, &mut directives],
        );
        assert_eq!(walked, Walked::Whole);
        assert_eq!((aliases.count, roots.count, directives.count), (3, 3, 3));
    }

    #[test]
    fn pages_cost_their_size() {
        let pages = &Config::defaults().pagination;
        assert_eq!(page_cost(pages, None, None, 10), 200);
        assert_eq!(page_cost(pages, Some(5), None, 10), 50);
        assert_eq!(page_cost(pages, None, Some(100), 3), 300);
        assert_eq!(page_cost(pages, Some(i32::MAX), None, 10), 1000);
        assert_eq!(page_cost(pages, Some(0), None, 0), 1);
    }

    fn limits(max_cost: usize) -> DocumentLimits {
        let pages = Config::defaults().pagination;
        DocumentLimits::new(
            Limits {
                max_tokens: 2000,
                max_aliases: 30,
                max_root_fields: 20,
                max_directives: 20,
                max_depth: 15,
                max_cost,
                max_batch_size: 10,
            },
            pages,
        )
    }

    fn measure(query: &str, operation: Option<&str>, variables: serde_json::Value) -> Measure {
        let limits = limits(10_000);
        let document = limits.parse(query).unwrap();
        let variables = Variables::from_json(variables);
        limits
            .measure(&document, operation, &variables)
            .unwrap()
            .expect("an operation")
    }

    #[test]
    fn every_connection_is_priced_by_its_page() {
        let schema = SchemaFields::of_schema();
        for (parent, field, pricing) in pricing::PRICED {
            assert_eq!(
                schema.field(parent, field).map(|f| f.pricing),
                Some(*pricing),
                "{parent}.{field} is in the schema"
            );
        }
        let mut connections = 0;
        for (name, ty) in &visitor::registry().types {
            let MetaType::Object { fields, .. } = ty else {
                continue;
            };
            for field in fields.values() {
                let paged = field.args.contains_key("first") && field.args.contains_key("last");
                if paged && field.ty.trim_end_matches('!').ends_with("Connection") {
                    connections += 1;
                    assert_eq!(
                        schema.field(name, &field.name).map(|f| f.pricing),
                        Some(pricing::Pricing::Page),
                        "{name}.{} is a connection priced by its page",
                        field.name
                    );
                }
            }
        }
        assert_eq!(connections, 8);
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
            Config::defaults().pagination.default_page_size as usize * 2
        );
        let plain = "{ article(slug: \"a\") { comments { body author { username } } } }";
        assert_eq!(
            measure(plain, None, serde_json::json!({})).cost,
            1 + MAX_PLAIN_COMMENTS as usize * 3
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
        let parsed = limits.parse(document).unwrap();
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
        let document = limits.parse(&query).unwrap();
        let error = limits
            .measure(&document, None, &Variables::default())
            .unwrap_err();
        let extensions = error.extensions.unwrap();
        assert_eq!(extensions.get("rule"), Some(&Value::from("cost")));
    }
}
