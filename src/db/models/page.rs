//! Keyset pagination over `(created_at, id)`, newest first.

use chrono::{DateTime, Utc};
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

    pub fn fetch_limit(&self) -> i64 {
        self.limit + 1
    }
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
        query.limit(page.fetch_limit())
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
