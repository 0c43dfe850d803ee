//! Cost: a field costs 1 plus what it selects, except the fields in
//! [`PRICED`](super::pricing::PRICED), whose children count once per row they can return: a page
//! costs its size times its children (see [`page_cost`]), so
//! `articles(first: 100) { comments { author } }` is priced as the 10,000
//! rows it can touch, not as three fields. Only the operation that runs is
//! priced, and its cost is what the rate limit charges.

use async_graphql::Value;

use super::{
    pricing::Pricing,
    visitor::{Check, Visit},
};
use crate::config::Pagination;

/// The cost of a paginated field: the page it asks for times what each
/// item costs. An out-of-range size is priced at the maximum page; the
/// resolver refuses it anyway.
pub fn page_cost(
    pages: &Pagination,
    first: Option<i32>,
    last: Option<i32>,
    child_complexity: usize,
) -> usize {
    let size = first
        .or(last)
        .unwrap_or(pages.default_page_size)
        .clamp(1, pages.max_page_size) as usize;
    size.saturating_mul(child_complexity.max(1))
}

/// The cost of a list of known length.
pub fn list_cost(len: usize, child_complexity: usize) -> usize {
    len.max(1).saturating_mul(child_complexity.max(1))
}

/// Sums costs bottom-up: each open field has the running cost of what it
/// selects.
pub(super) struct Cost<'a> {
    pages: &'a Pagination,
    open: Vec<usize>,
    total: usize,
}

impl<'a> Cost<'a> {
    pub fn new(pages: &'a Pagination) -> Self {
        Self {
            pages,
            open: Vec::with_capacity(16),
            total: 0,
        }
    }

    pub fn total(&self) -> usize {
        self.total
    }
}

impl Check for Cost<'_> {
    fn enter_field(&mut self, _: &Visit<'_>) {
        self.open.push(0);
    }

    fn leave_field(&mut self, visit: &Visit<'_>) {
        let children = self.open.pop().unwrap_or_default();
        let int = |name| match visit.arguments.get(visit.field, name)? {
            Value::Number(n) => n
                .as_i64()
                .map(|n| n.clamp(i32::MIN.into(), i32::MAX.into()) as i32),
            _ => None,
        };
        let len = |name| match visit.arguments.get(visit.field, name) {
            Some(Value::List(items)) => items.len(),
            Some(Value::Null) | None => 0,
            Some(_) => 1,
        };
        let cost = match visit.schema.map_or(Pricing::Single, |s| s.pricing) {
            Pricing::Single => children.saturating_add(1),
            Pricing::Page => page_cost(self.pages, int("first"), int("last"), children),
            Pricing::AtMost(rows) => list_cost(rows, children),
            Pricing::PerItem(argument) => list_cost(len(argument), children),
        };
        let parent = self.open.last_mut().unwrap_or(&mut self.total);
        *parent = parent.saturating_add(cost);
    }
}
