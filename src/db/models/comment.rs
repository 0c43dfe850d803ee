use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use uuid::Uuid;

use super::page::{Page, PageRequest};
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
    if article_ids.is_empty() {
        return Ok(Vec::new());
    }
    diesel::sql_query(
        "SELECT c.id, c.article_id, c.author_id, c.body, c.created_at, c.updated_at \
         FROM unnest($1::uuid[]) AS a(id) \
         CROSS JOIN LATERAL ( \
             SELECT * FROM comments \
             WHERE comments.article_id = a.id AND comments.deleted_at IS NULL \
             ORDER BY comments.created_at DESC, comments.id DESC \
             LIMIT $2 \
         ) AS c",
    )
    .bind::<diesel::sql_types::Array<diesel::sql_types::Uuid>, _>(article_ids)
    .bind::<diesel::sql_types::BigInt, _>(per_article)
    .load(conn)
    .await
}
