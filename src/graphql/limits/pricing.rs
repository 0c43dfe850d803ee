//! Which fields return many rows and how their children are counted:
//! what the schema says of itself for the cost check, read by the walk
//! that resolves each field's schema entry and by the check that prices it.

use crate::config::schema_lists::MAX_PLAIN_COMMENTS;

/// How a field's children are counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Pricing {
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
pub(super) const PRICED: &[(&str, &str, Pricing)] = &[
    ("Query", "articles", Pricing::Page),
    ("Query", "nodes", Pricing::PerItem("ids")),
    ("User", "articles", Pricing::Page),
    ("User", "favoriteArticles", Pricing::Page),
    ("User", "followers", Pricing::Page),
    ("Viewer", "feed", Pricing::Page),
    ("Viewer", "webhookEndpoints", Pricing::Page),
    ("WebhookEndpoint", "deliveries", Pricing::Page),
    ("Article", "commentsConnection", Pricing::Page),
    (
        "Article",
        "comments",
        Pricing::AtMost(MAX_PLAIN_COMMENTS as usize),
    ),
];
