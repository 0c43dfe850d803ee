//! Keyset pagination over `(created_at, id)`, newest first.

use chrono::{DateTime, Utc};
use diesel::{
    QueryResult,
    pg::Pg,
    query_builder::{AstPass, Query, QueryFragment, QueryId},
};
use uuid::Uuid;

/// A position in a list ordered by `(created_at, id)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Keyset {
    pub created_at: DateTime<Utc>,
    pub id: Uuid,
}

/// One page of a newest-first list: up to `limit` rows after `after`
/// and before `before`, taken from the newest end, or from the oldest end
/// when `from_end` (Relay's `last`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageRequest {
    pub limit: i64,
    pub from_end: bool,
    pub after: Option<Keyset>,
    pub before: Option<Keyset>,
}

/// Rows in display order (newest first) and whether more lie beyond the
/// end the page was taken from.
#[derive(Debug, Clone)]
pub struct Page<T> {
    pub rows: Vec<T>,
    pub has_more: bool,
}

impl PageRequest {
    /// Rows fetched in query order with `limit + 1` as the limit.
    pub fn finish<T>(&self, mut rows: Vec<T>) -> Page<T> {
        let has_more = rows.len() as i64 > self.limit;
        rows.truncate(self.limit.max(0) as usize);
        if self.from_end {
            rows.reverse();
        }
        Page { rows, has_more }
    }

    /// Rows a page's statement fetches: `limit + 1` (the extra row tells
    /// whether more follow), rounded up to the next of a few steps. The
    /// number is part of the statement's text (see [`Limited`]); the steps
    /// keep the statements a connection prepares to a few per query shape.
    pub fn fetch_limit(&self) -> i64 {
        let wanted = self.limit + 1;
        FETCH_STEPS
            .iter()
            .copied()
            .find(|&step| step >= wanted)
            .unwrap_or(wanted)
    }
}

/// Page sizes 1, 5, 10, 20, 50 and 100, each plus the row that tells
/// whether more follow.
const FETCH_STEPS: [i64; 6] = [2, 6, 11, 21, 51, 101];

/// A page query with its row limit written into the statement as a number
/// rather than bound as a parameter.
///
/// PostgreSQL keeps a prepared statement's generic plan only when it costs
/// no more than planning for the values at hand, and it prices a bound
/// `LIMIT $n` as a tenth of the table. Every page query would then be
/// planned again on each execution (for the home page that was about a
/// seventh of PostgreSQL's CPU per request); with the number in the text
/// it is planned once per connection (`tests/api/plans.rs`).
#[derive(Debug, Clone)]
pub struct Limited<Q> {
    query: Q,
    limit: i64,
}

impl<Q> Limited<Q> {
    pub fn new(query: Q, limit: i64) -> Self {
        Self { query, limit }
    }
}

impl<Q: Query> Query for Limited<Q> {
    type SqlType = Q::SqlType;
}

impl<Q> QueryId for Limited<Q> {
    type QueryId = ();
    const HAS_STATIC_QUERY_ID: bool = false;
}

impl<Q: QueryFragment<Pg>> QueryFragment<Pg> for Limited<Q> {
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, Pg>) -> QueryResult<()> {
        self.query.walk_ast(out.reborrow())?;
        push_limit(&mut out, self.limit);
        Ok(())
    }
}

/// ` LIMIT n`, the number in the text (an `i64` the server computed, never
/// client text).
pub fn push_limit(out: &mut AstPass<'_, '_, Pg>, limit: i64) {
    out.push_sql(" LIMIT ");
    out.push_sql(itoa::Buffer::new().format(limit));
}

/// Applies a keyset window and order to a boxed query over a table whose
/// `created_at` and `id` columns are given, e.g.
/// `paginate!(query, page, articles::created_at, articles::id)`.
///
/// The window is `(created_at, id) < (t, i)` written as
/// `created_at <= t AND (created_at < t OR id < i)`: the first half lets
/// PostgreSQL range-scan the `(created_at DESC, id DESC)` index, so deep
/// pages cost no more than the first, and the whole is plain DSL, so
/// diesel keeps the statement prepared (a `sql` literal would have it
/// parsed and planned on every request).
#[macro_export]
macro_rules! paginate {
    ($query:expr, $page:expr, $created_at:expr, $id:expr) => {{
        let page: &$crate::db::models::page::PageRequest = $page;
        let mut query = $query;
        if let Some(k) = page.after {
            query = query.filter(
                $created_at
                    .le(k.created_at)
                    .and($created_at.lt(k.created_at).or($id.lt(k.id))),
            );
        }
        if let Some(k) = page.before {
            query = query.filter(
                $created_at
                    .ge(k.created_at)
                    .and($created_at.gt(k.created_at).or($id.gt(k.id))),
            );
        }
        let query = if page.from_end {
            query.order(($created_at.asc(), $id.asc()))
        } else {
            query.order(($created_at.desc(), $id.desc()))
        };
        $crate::db::models::page::Limited::new(query, page.fetch_limit())
    }};
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(limit: i64, from_end: bool) -> PageRequest {
        PageRequest {
            limit,
            from_end,
            after: None,
            before: None,
        }
    }

    #[test]
    fn pages_fetch_one_more_row_than_they_show_from_few_steps() {
        for limit in 1..=100 {
            let fetched = request(limit, false).fetch_limit();
            assert!(fetched > limit, "{limit} fetches {fetched}");
            assert!(FETCH_STEPS.contains(&fetched), "{limit} fetches {fetched}");
        }
        assert_eq!(request(20, false).fetch_limit(), 21);
        assert_eq!(request(500, false).fetch_limit(), 501);
    }

    #[test]
    fn rows_beyond_the_page_are_dropped_whichever_end_it_starts_from() {
        let page = request(2, false).finish(vec![5, 4, 3, 2, 1]);
        assert_eq!((page.rows, page.has_more), (vec![5, 4], true));
        let page = request(2, true).finish(vec![1, 2, 3, 4, 5]);
        assert_eq!((page.rows, page.has_more), (vec![2, 1], true));
    }

    #[test]
    fn the_extra_row_means_more_and_is_dropped() {
        let page = request(2, false).finish(vec![3, 2, 1]);
        assert_eq!((page.rows, page.has_more), (vec![3, 2], true));
        let page = request(2, false).finish(vec![3, 2]);
        assert_eq!((page.rows, page.has_more), (vec![3, 2], false));
    }

    #[test]
    fn pages_from_the_end_come_back_newest_first() {
        let page = request(2, true).finish(vec![1, 2, 3]);
        assert_eq!((page.rows, page.has_more), (vec![2, 1], true));
    }
}
