//! Relay connections: argument checks, opaque keyset cursors, page info.

use async_graphql::{
    OutputType,
    connection::{Connection, ConnectionNameType, Edge, EdgeNameType, EmptyFields},
};
use base64::{Engine as _, engine::general_purpose::URL_SAFE_NO_PAD};
use chrono::DateTime;
use uuid::Uuid;

use crate::{
    config::Pagination,
    db::models::page::{Keyset, Page, PageRequest},
    error::AppError,
};

/// Relay's `first`/`after`/`last`/`before`, checked.
#[derive(Debug, Clone, Copy)]
pub struct PageArgs {
    pub request: PageRequest,
}

fn decode_cursor(name: &str, cursor: &str) -> Result<Keyset, AppError> {
    let bad = || AppError::BadUserInput(format!("`{name}` is not a valid cursor"));
    let raw = URL_SAFE_NO_PAD
        .decode(cursor.as_bytes())
        .map_err(|_| bad())?;
    let text = String::from_utf8(raw).map_err(|_| bad())?;
    let (micros, id) = text.split_once(':').ok_or_else(bad)?;
    let micros: i64 = micros.parse().map_err(|_| bad())?;
    Ok(Keyset {
        created_at: DateTime::from_timestamp_micros(micros).ok_or_else(bad)?,
        id: Uuid::parse_str(id).map_err(|_| bad())?,
    })
}

/// An opaque cursor for a position in a `(created_at, id)` list.
pub fn encode_cursor(keyset: &Keyset) -> String {
    // One per row of every page: no formatting machinery.
    let mut micros = itoa::Buffer::new();
    let mut raw = Vec::with_capacity(20 + 1 + 36);
    raw.extend_from_slice(
        micros
            .format(keyset.created_at.timestamp_micros())
            .as_bytes(),
    );
    raw.push(b':');
    raw.extend_from_slice(
        keyset
            .id
            .hyphenated()
            .encode_lower(&mut uuid::Uuid::encode_buffer())
            .as_bytes(),
    );
    URL_SAFE_NO_PAD.encode(raw)
}

impl PageArgs {
    pub fn new(
        pages: &Pagination,
        first: Option<i32>,
        after: Option<String>,
        last: Option<i32>,
        before: Option<String>,
    ) -> Result<Self, AppError> {
        let size = |name: &str, n: i32| {
            if n < 0 {
                Err(AppError::BadUserInput(format!(
                    "`{name}` must not be negative"
                )))
            } else if n > pages.max_page_size {
                Err(AppError::BadUserInput(format!(
                    "`{name}` must be at most {}; page through larger lists with cursors",
                    pages.max_page_size
                )))
            } else {
                Ok(i64::from(n))
            }
        };
        let (limit, from_end) = match (first, last) {
            (Some(_), Some(_)) => {
                return Err(AppError::BadUserInput(
                    "pass either `first` or `last`, not both".into(),
                ));
            }
            (Some(n), None) => (size("first", n)?, false),
            (None, Some(n)) => (size("last", n)?, true),
            (None, None) => (i64::from(pages.default_page_size), false),
        };
        Ok(Self {
            request: PageRequest {
                limit,
                from_end,
                after: after
                    .as_deref()
                    .map(|c| decode_cursor("after", c))
                    .transpose()?,
                before: before
                    .as_deref()
                    .map(|c| decode_cursor("before", c))
                    .transpose()?,
            },
        })
    }

    /// `(hasPreviousPage, hasNextPage)` for a fetched page. Moving forward,
    /// earlier items exist whenever an `after` cursor was given (the item
    /// it names, at least); moving backward, the same holds for `before`.
    pub fn page_info<T>(&self, page: &Page<T>) -> (bool, bool) {
        let r = &self.request;
        if r.from_end {
            (page.has_more, r.before.is_some())
        } else {
            (r.after.is_some(), page.has_more)
        }
    }

    /// A connection of `page`'s rows mapped to nodes, each with its keyset.
    pub fn connection<R, N, F, C, E>(
        &self,
        page: Page<R>,
        fields: F,
        node: impl Fn(R) -> (Keyset, N),
    ) -> Connection<String, N, F, EmptyFields, C, E>
    where
        N: OutputType,
        F: async_graphql::ObjectType,
        C: ConnectionNameType,
        E: EdgeNameType,
    {
        let (has_previous, has_next) = self.page_info(&page);
        let mut connection = Connection::with_additional_fields(has_previous, has_next, fields);
        connection.edges.extend(page.rows.into_iter().map(|row| {
            let (keyset, node) = node(row);
            Edge::with_additional_fields(encode_cursor(&keyset), node, EmptyFields)
        }));
        connection
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_garbage_is_refused() {
        let keyset = Keyset {
            created_at: DateTime::from_timestamp_micros(1_700_000_000_123_456).unwrap(),
            id: Uuid::new_v4(),
        };
        assert_eq!(
            decode_cursor("after", &encode_cursor(&keyset)).unwrap(),
            keyset
        );
        for bad in [
            "",
            "!!!",
            "bm90IGEgY3Vyc29y",
            &URL_SAFE_NO_PAD.encode("12:not-a-uuid"),
        ] {
            assert!(decode_cursor("after", bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn page_sizes_are_bounded_never_clamped() {
        let pages = crate::config::Config::defaults().pagination;
        assert_eq!(
            PageArgs::new(&pages, None, None, None, None)
                .unwrap()
                .request
                .limit,
            20
        );
        assert_eq!(
            PageArgs::new(&pages, Some(100), None, None, None)
                .unwrap()
                .request
                .limit,
            100
        );
        assert!(PageArgs::new(&pages, Some(101), None, None, None).is_err());
        assert!(PageArgs::new(&pages, None, None, Some(-1), None).is_err());
        assert!(PageArgs::new(&pages, Some(1), None, Some(1), None).is_err());
        assert!(
            PageArgs::new(&pages, None, None, Some(5), None)
                .unwrap()
                .request
                .from_end
        );
    }
}
