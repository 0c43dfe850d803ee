//! The `tags` and `article_tags` tables: an article's tags and the most used.

use diesel::{prelude::*, upsert::excluded};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use uuid::Uuid;

use crate::db::schema::{article_tags, articles, tags};

/// Tag names by how many live articles use them, most used first.
pub async fn most_used(conn: &mut AsyncPgConnection, limit: i64) -> QueryResult<Vec<String>> {
    let uses = diesel::dsl::count_star();
    article_tags::table
        .inner_join(tags::table)
        .inner_join(articles::table)
        .filter(articles::deleted_at.is_null())
        .group_by(tags::name)
        .order((uses.desc(), tags::name.asc()))
        .select(tags::name)
        .limit(limit)
        .load(conn)
        .await
}

/// Replaces an article's tags with `names` (already normalised), in order.
pub async fn set_for_article(
    conn: &mut AsyncPgConnection,
    article_id: Uuid,
    names: &[String],
) -> QueryResult<()> {
    diesel::delete(article_tags::table.filter(article_tags::article_id.eq(article_id)))
        .execute(conn)
        .await?;
    if names.is_empty() {
        return Ok(());
    }
    let rows: Vec<_> = names.iter().map(|n| tags::name.eq(n)).collect();
    // Touching `name` on conflict makes RETURNING include existing tags.
    let ids: Vec<(Uuid, String)> = diesel::insert_into(tags::table)
        .values(&rows)
        .on_conflict(tags::name)
        .do_update()
        .set(tags::name.eq(excluded(tags::name)))
        .returning((tags::id, tags::name))
        .get_results(conn)
        .await?;
    let links: Vec<_> = names
        .iter()
        .enumerate()
        .filter_map(|(position, name)| {
            ids.iter().find(|(_, n)| n == name).map(|(tag_id, _)| {
                (
                    article_tags::article_id.eq(article_id),
                    article_tags::tag_id.eq(*tag_id),
                    article_tags::position.eq(position as i16),
                )
            })
        })
        .collect();
    diesel::insert_into(article_tags::table)
        .values(&links)
        .execute(conn)
        .await?;
    Ok(())
}
