//! The `comments` table: rows, the insert form, and their queries.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use uuid::Uuid;

use super::page::{Limited, Page, PageRequest};
use crate::{db::schema::comments, paginate};

/// A live comment.
#[derive(Debug, Clone, Queryable, QueryableByName, Selectable, Identifiable)]
#[diesel(table_name = comments, check_for_backend(diesel::pg::Pg))]
pub struct Comment {
    pub id: Uuid,
    pub article_id: Uuid,
    pub author_id: Uuid,
    pub body: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Insertable)]
#[diesel(table_name = comments)]
pub struct NewComment<'a> {
    pub article_id: Uuid,
    pub author_id: Uuid,
    pub body: &'a str,
}

pub async fn insert(conn: &mut AsyncPgConnection, new: &NewComment<'_>) -> QueryResult<Comment> {
    diesel::insert_into(comments::table)
        .values(new)
        .returning(Comment::as_returning())
        .get_result(conn)
        .await
}

pub async fn find_many(conn: &mut AsyncPgConnection, ids: &[Uuid]) -> QueryResult<Vec<Comment>> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    comments::table
        .filter(comments::id.eq_any(ids))
        .filter(comments::deleted_at.is_null())
        .select(Comment::as_select())
        .load(conn)
        .await
}

pub async fn find(conn: &mut AsyncPgConnection, id: Uuid) -> QueryResult<Option<Comment>> {
    Ok(find_many(conn, &[id]).await?.pop())
}

/// Soft-deletes; returns the comment as it was, or `None` if already gone.
pub async fn soft_delete(conn: &mut AsyncPgConnection, id: Uuid) -> QueryResult<Option<Comment>> {
    diesel::update(comments::table)
        .filter(comments::id.eq(id))
        .filter(comments::deleted_at.is_null())
        .set(comments::deleted_at.eq(diesel::dsl::now))
        .returning(Comment::as_returning())
        .get_result(conn)
        .await
        .optional()
}

/// One page of an article's live comments, newest first.
pub async fn list(
    conn: &mut AsyncPgConnection,
    article_id: Uuid,
    page: &PageRequest,
) -> QueryResult<Page<Comment>> {
    let query = comments::table
        .filter(comments::article_id.eq(article_id))
        .filter(comments::deleted_at.is_null())
        .select(Comment::as_select())
        .into_boxed();
    let rows = paginate!(query, page, comments::created_at, comments::id)
        .load(conn)
        .await?;
    Ok(page.finish(rows))
}

/// The newest `per_article` live comments of each article, in one query.
pub async fn newest_of_articles(
    conn: &mut AsyncPgConnection,
    article_ids: &[Uuid],
    per_article: i64,
) -> QueryResult<Vec<Comment>> {
    match article_ids {
        [] => return Ok(Vec::new()),
        // An article's page: a plain statement, planned once per
        // connection (see `NewestOfArticles` for the general one).
        [article_id] => {
            let query = comments::table
                .filter(comments::article_id.eq(article_id))
                .filter(comments::deleted_at.is_null())
                .order((comments::created_at.desc(), comments::id.desc()))
                .select(Comment::as_select());
            return Limited::new(query, per_article).load(conn).await;
        }
        _ => {}
    }
    NewestOfArticles {
        article_ids,
        per_article,
    }
    .load(conn)
    .await
}

/// `newest_of_articles`' statement for several articles: fixed text with
/// the ids bound, so diesel keeps it prepared (`sql_query` text is parsed
/// on every call). PostgreSQL still plans it for each call: how many ids
/// it gets changes the best plan too much for a generic one.
struct NewestOfArticles<'a> {
    article_ids: &'a [Uuid],
    per_article: i64,
}

impl diesel::query_builder::QueryId for NewestOfArticles<'_> {
    type QueryId = ();
    const HAS_STATIC_QUERY_ID: bool = false;
}

impl diesel::query_builder::Query for NewestOfArticles<'_> {
    type SqlType = diesel::sql_types::Untyped;
}

impl diesel::query_builder::QueryFragment<diesel::pg::Pg> for NewestOfArticles<'_> {
    fn walk_ast<'b>(
        &'b self,
        mut out: diesel::query_builder::AstPass<'_, 'b, diesel::pg::Pg>,
    ) -> QueryResult<()> {
        use diesel::sql_types::{Array, Uuid as SqlUuid};

        out.push_sql(
            "SELECT c.id, c.article_id, c.author_id, c.body, c.created_at, c.updated_at \
             FROM unnest(",
        );
        out.push_bind_param::<Array<SqlUuid>, _>(self.article_ids)?;
        out.push_sql(
            ") AS a(id) \
             CROSS JOIN LATERAL ( \
                 SELECT * FROM comments \
                 WHERE comments.article_id = a.id AND comments.deleted_at IS NULL \
                 ORDER BY comments.created_at DESC, comments.id DESC",
        );
        super::page::push_limit(&mut out, self.per_article);
        out.push_sql(") AS c");
        Ok(())
    }
}
