//! What one request may ask for: the static limits checked before it runs
//! and the sizes of the lists it can page through.

use clap::Args;

/// Limits checked before a request runs; over one is `QUERY_TOO_COMPLEX`.
/// The defaults leave room for every Conduit page and GraphiQL's
/// introspection query.
#[derive(Debug, Clone, Copy, Args)]
pub struct Limits {
    /// Tokens in a document: names, punctuators and values.
    #[arg(
        long = "max-query-tokens",
        env = "MAX_QUERY_TOKENS",
        default_value_t = 2000
    )]
    pub max_tokens: usize,
    /// Aliases in the operation that runs.
    #[arg(
        long = "max-query-aliases",
        env = "MAX_QUERY_ALIASES",
        default_value_t = 30
    )]
    pub max_aliases: usize,
    /// Top-level fields of the operation that runs.
    #[arg(long, env = "MAX_ROOT_FIELDS", default_value_t = 20)]
    pub max_root_fields: usize,
    /// Directives in the operation that runs.
    #[arg(
        long = "max-query-directives",
        env = "MAX_QUERY_DIRECTIVES",
        default_value_t = 20
    )]
    pub max_directives: usize,
    /// Nesting of selections.
    #[arg(
        long = "max-query-depth",
        env = "MAX_QUERY_DEPTH",
        default_value_t = 15
    )]
    pub max_depth: usize,
    /// Cost of the operation that runs (a list costs its page size times
    /// its children).
    #[arg(
        long = "max-query-cost",
        env = "MAX_QUERY_COST",
        default_value_t = 10_000
    )]
    pub max_cost: usize,
    /// Operations in one JSON-array batch.
    #[arg(long, env = "MAX_BATCH_SIZE", default_value_t = 10)]
    pub max_batch_size: usize,
}

/// How long the lists a client reads may be. Asking for more is
/// `BAD_USER_INPUT`, never a silently shorter list; the cost of a query is
/// priced with these sizes.
#[derive(Debug, Clone, Copy, Args)]
pub struct Pagination {
    /// Items on a page when neither `first` nor `last` is given.
    #[arg(long, env = "DEFAULT_PAGE_SIZE", default_value_t = 20)]
    pub default_page_size: i32,
    /// Largest `first` or `last` of a connection.
    #[arg(long, env = "MAX_PAGE_SIZE", default_value_t = 100)]
    pub max_page_size: i32,
}

/// List lengths the schema's own descriptions state, so not configurable:
/// a different value would make `schema.graphql` wrong.
pub mod schema_lists {
    /// Comments in an article's plain `comments` list (the newest).
    pub const MAX_PLAIN_COMMENTS: i64 = 100;
    /// Ids in one `nodes` query.
    pub const MAX_NODES: usize = 100;
    /// Largest `first` of `tags`, and its default.
    pub const MAX_TAGS: i32 = 100;
}
