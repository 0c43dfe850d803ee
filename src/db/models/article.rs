//! The `articles` table: rows, listings without the body, insert forms,
//! changesets, filters and keyset pages.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use uuid::Uuid;

use super::page::{Page, PageRequest};
use crate::{
    db::schema::{article_tags, articles, favorites, tags},
    paginate,
};

/// A live article.
#[derive(Debug, Clone, Queryable, QueryableByName, Selectable)]
#[diesel(table_name = articles, check_for_backend(diesel::pg::Pg))]
pub struct Article {
    #[diesel(embed)]
    pub listing: ArticleListing,
    pub body: String,
}

/// An article without its body, as lists fetch it: lists rarely show the
/// body, and it is most of a row's size (see `bodies`).
#[derive(Debug, Clone, Queryable, QueryableByName, Selectable)]
#[diesel(table_name = articles, check_for_backend(diesel::pg::Pg))]
pub struct ArticleListing {
    pub id: Uuid,
    pub author_id: Uuid,
    pub slug: String,
    pub title: String,
    pub description: String,
    /// Kept exact by triggers on `favorites`.
    pub favorites_count: i32,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// Tag names in the author's order, kept in step with `article_tags`
    /// by triggers.
    pub tag_list: Vec<String>,
}

impl std::ops::Deref for Article {
    type Target = ArticleListing;

    fn deref(&self) -> &ArticleListing {
        &self.listing
    }
}

#[derive(Debug, Insertable)]
#[diesel(table_name = articles)]
pub struct NewArticle<'a> {
    pub author_id: Uuid,
    pub slug: &'a str,
    pub title: &'a str,
    pub description: &'a str,
    pub body: &'a str,
}

#[derive(Debug, Default, AsChangeset)]
#[diesel(table_name = articles)]
pub struct ArticleChanges<'a> {
    pub slug: Option<&'a str>,
    pub title: Option<&'a str>,
    pub description: Option<&'a str>,
    pub body: Option<&'a str>,
}

/// Which articles a list shows; every filter given must hold.
#[derive(Debug, Default, Clone)]
pub struct ArticleFilter {
    pub tag: Option<String>,
    pub author_id: Option<Uuid>,
    pub favorited_by: Option<Uuid>,
}

pub const SLUG_KEY: &str = "articles_slug_key";

pub async fn insert(conn: &mut AsyncPgConnection, new: &NewArticle<'_>) -> QueryResult<Article> {
    diesel::insert_into(articles::table)
        .values(new)
        .returning(Article::as_returning())
        .get_result(conn)
        .await
}

pub async fn find(conn: &mut AsyncPgConnection, id: Uuid) -> QueryResult<Option<Article>> {
    articles::table
        .filter(articles::id.eq(id))
        .filter(articles::deleted_at.is_null())
        .select(Article::as_select())
        .first(conn)
        .await
        .optional()
}

pub async fn find_many(conn: &mut AsyncPgConnection, ids: &[Uuid]) -> QueryResult<Vec<Article>> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    articles::table
        .filter(articles::id.eq_any(ids))
        .filter(articles::deleted_at.is_null())
        .select(Article::as_select())
        .load(conn)
        .await
}

pub async fn find_by_slug(
    conn: &mut AsyncPgConnection,
    slug: &str,
) -> QueryResult<Option<Article>> {
    articles::table
        .filter(articles::slug.eq(slug))
        .filter(articles::deleted_at.is_null())
        .select(Article::as_select())
        .first(conn)
        .await
        .optional()
}

pub async fn update(
    conn: &mut AsyncPgConnection,
    id: Uuid,
    changes: &ArticleChanges<'_>,
) -> QueryResult<Article> {
    diesel::update(articles::table)
        .filter(articles::id.eq(id))
        .filter(articles::deleted_at.is_null())
        .set(changes)
        .returning(Article::as_returning())
        .get_result(conn)
        .await
}

/// Soft-deletes; returns the article as it was, or `None` if already gone.
pub async fn soft_delete(conn: &mut AsyncPgConnection, id: Uuid) -> QueryResult<Option<Article>> {
    diesel::update(articles::table)
        .filter(articles::id.eq(id))
        .filter(articles::deleted_at.is_null())
        .set(articles::deleted_at.eq(diesel::dsl::now))
        .returning(Article::as_returning())
        .get_result(conn)
        .await
        .optional()
}

/// The bodies of these articles (live or not: a list fetched them a
/// moment ago), by id.
pub async fn bodies(
    conn: &mut AsyncPgConnection,
    ids: &[Uuid],
) -> QueryResult<Vec<(Uuid, String)>> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    articles::table
        .filter(articles::id.eq_any(ids))
        .select((articles::id, articles::body))
        .load(conn)
        .await
}

/// One page of live articles matching `filter`, newest first.
pub async fn list(
    conn: &mut AsyncPgConnection,
    filter: &ArticleFilter,
    page: &PageRequest,
) -> QueryResult<Page<ArticleListing>> {
    let mut query = articles::table
        .filter(articles::deleted_at.is_null())
        .select(ArticleListing::as_select())
        .into_boxed();
    if let Some(tag) = &filter.tag {
        query = query.filter(
            articles::id.eq_any(
                article_tags::table
                    .inner_join(tags::table)
                    .filter(tags::name.eq(tag.clone()))
                    .select(article_tags::article_id),
            ),
        );
    }
    if let Some(author) = filter.author_id {
        query = query.filter(articles::author_id.eq(author));
    }
    if let Some(user) = filter.favorited_by {
        query = query.filter(
            articles::id.eq_any(
                favorites::table
                    .filter(favorites::user_id.eq(user))
                    .select(favorites::article_id),
            ),
        );
    }
    let rows = paginate!(query, page, articles::created_at, articles::id)
        .load(conn)
        .await?;
    Ok(page.finish(rows))
}

/// One page of the articles by the people `viewer` follows, newest first.
///
/// Each followed author contributes at most a page of their own newest
/// articles (an index-only range scan of `articles_author_recent_idx` under
/// `LATERAL`), and only those are merged: the work grows with the number
/// of people followed, not with how much they have written.
pub async fn feed(
    conn: &mut AsyncPgConnection,
    viewer: Uuid,
    page: &PageRequest,
) -> QueryResult<Page<ArticleListing>> {
    let rows = FeedQuery {
        viewer,
        after: page.after,
        before: page.before,
        from_end: page.from_end,
        limit: page.fetch_limit(),
    }
    .load::<ArticleListing>(conn)
    .await?;
    Ok(page.finish(rows))
}

/// The feed's statement. Its text is fixed for each window, direction and
/// fetch size and its values are bind parameters, so diesel keeps it
/// prepared: `sql_query` would have PostgreSQL plan it on every request,
/// which took longer than running it. The limits are numbers in the text,
/// as for every page (see `page::Limited`).
struct FeedQuery {
    viewer: Uuid,
    after: Option<super::page::Keyset>,
    before: Option<super::page::Keyset>,
    from_end: bool,
    limit: i64,
}

impl diesel::query_builder::QueryId for FeedQuery {
    type QueryId = ();
    const HAS_STATIC_QUERY_ID: bool = false;
}

impl diesel::query_builder::Query for FeedQuery {
    type SqlType = diesel::sql_types::Untyped;
}

impl diesel::query_builder::QueryFragment<diesel::pg::Pg> for FeedQuery {
    fn walk_ast<'b>(
        &'b self,
        mut out: diesel::query_builder::AstPass<'_, 'b, diesel::pg::Pg>,
    ) -> QueryResult<()> {
        use diesel::sql_types::{Timestamptz, Uuid as SqlUuid};

        let order = if self.from_end { "ASC" } else { "DESC" };
        // The inner scans read only the index (ids and times); the page's
        // full rows are fetched once the page is known.
        out.push_sql(
            "SELECT a.id, a.author_id, a.slug, a.title, a.description, \
                    a.favorites_count, a.created_at, a.updated_at, a.tag_list \
             FROM articles a \
             JOIN ( \
                 SELECT recent.id, recent.created_at \
                 FROM follows f \
                 CROSS JOIN LATERAL ( \
                     SELECT a.id, a.created_at FROM articles a \
                     WHERE a.author_id = f.followee_id AND a.deleted_at IS NULL",
        );
        for (keyset, operator) in [(&self.after, " < ("), (&self.before, " > (")] {
            if let Some(keyset) = keyset {
                out.push_sql(" AND (a.created_at, a.id)");
                out.push_sql(operator);
                out.push_bind_param::<Timestamptz, _>(&keyset.created_at)?;
                out.push_sql(", ");
                out.push_bind_param::<SqlUuid, _>(&keyset.id)?;
                out.push_sql(")");
            }
        }
        out.push_sql(" ORDER BY a.created_at ");
        out.push_sql(order);
        out.push_sql(", a.id ");
        out.push_sql(order);
        super::page::push_limit(&mut out, self.limit);
        out.push_sql(") recent WHERE f.follower_id = ");
        out.push_bind_param::<SqlUuid, _>(&self.viewer)?;
        out.push_sql(" ORDER BY recent.created_at ");
        out.push_sql(order);
        out.push_sql(", recent.id ");
        out.push_sql(order);
        super::page::push_limit(&mut out, self.limit);
        out.push_sql(") page ON page.id = a.id ORDER BY a.created_at ");
        out.push_sql(order);
        out.push_sql(", a.id ");
        out.push_sql(order);
        Ok(())
    }
}
