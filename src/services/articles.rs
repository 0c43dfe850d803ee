//! Articles: writing, editing and deleting (author only), and the lists.

use diesel_async::AsyncConnection;
use rand::Rng;
use uuid::Uuid;

use super::validation;
use crate::{
    auth::Viewer,
    db::models::{
        article::{self, Article, ArticleChanges, ArticleFilter, ArticleListing, NewArticle},
        page::{Page, PageRequest},
        tag, user,
    },
    error::{AppError, AppResult},
    state::AppState,
};

pub struct ArticleDraft {
    pub title: String,
    pub description: String,
    pub body: String,
    pub tag_list: Vec<String>,
}

/// Edits to an article; `None` keeps a field.
#[derive(Default)]
pub struct ArticleEdit {
    pub title: Option<String>,
    pub description: Option<String>,
    pub body: Option<String>,
    pub tag_list: Option<Vec<String>>,
}

/// A list's filters as a client names them.
#[derive(Default, Clone)]
pub struct ArticleQuery {
    pub tag: Option<String>,
    pub author: Option<String>,
    pub favorited_by: Option<String>,
}

const SLUG_BASE_MAX: usize = 80;
const SLUG_SUFFIX_LEN: usize = 6;

/// A URL-safe slug from the title plus a random suffix, so equal titles
/// get distinct slugs without a lookup.
fn slug_for(title: &str) -> String {
    let mut base = slug::slugify(title);
    if base.len() > SLUG_BASE_MAX {
        base.truncate(SLUG_BASE_MAX);
        base = base.trim_end_matches('-').to_owned();
    }
    if base.is_empty() {
        base = "article".to_owned();
    }
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    let mut rng = rand::rng();
    let suffix: String = (0..SLUG_SUFFIX_LEN)
        .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
        .collect();
    format!("{base}-{suffix}")
}

fn check_draft(
    title: Option<&str>,
    description: Option<&str>,
    body: Option<&str>,
    tag_list: Option<&[String]>,
) -> AppResult<Option<Vec<String>>> {
    let mut errors = Vec::new();
    if let Some(title) = title {
        validation::required_text("title", title, validation::TITLE_MAX, &mut errors);
    }
    if let Some(description) = description {
        validation::text(
            "description",
            description,
            validation::DESCRIPTION_MAX,
            &mut errors,
        );
    }
    if let Some(body) = body {
        validation::required_text("body", body, validation::BODY_MAX, &mut errors);
    }
    let tags = tag_list.map(|raw| validation::tags(raw, &mut errors));
    if errors.is_empty() {
        Ok(tags)
    } else {
        Err(AppError::Invalid(errors))
    }
}

pub async fn create(state: &AppState, viewer: &Viewer, draft: ArticleDraft) -> AppResult<Article> {
    let tags = check_draft(
        Some(&draft.title),
        Some(&draft.description),
        Some(&draft.body),
        Some(&draft.tag_list),
    )?
    .unwrap_or_default();
    let slug = slug_for(&draft.title);
    let mut conn = state.db.conn().await?;
    conn.transaction(async |conn| {
        super::tag_request(conn).await?;
        let mut created = article::insert(
            conn,
            &NewArticle {
                author_id: viewer.user_id,
                slug: &slug,
                title: draft.title.trim(),
                description: draft.description.trim(),
                body: &draft.body,
            },
        )
        .await?;
        tag::set_for_article(conn, created.id, &tags).await?;
        // What the tags' trigger wrote on the row after it was returned.
        created.listing.tag_list = tags;
        Ok(created)
    })
    .await
}

/// The live article `id`, which the viewer must have written.
async fn authored_by_viewer(
    conn: &mut diesel_async::AsyncPgConnection,
    viewer: &Viewer,
    id: Uuid,
) -> AppResult<Article> {
    let found = article::find(conn, id)
        .await?
        .ok_or(AppError::NotFound("article"))?;
    if found.author_id != viewer.user_id {
        return Err(AppError::Forbidden(
            "only the author may change this article",
        ));
    }
    Ok(found)
}

/// Applies edits; a new title gives a new slug.
pub async fn update(
    state: &AppState,
    viewer: &Viewer,
    id: Uuid,
    edit: ArticleEdit,
) -> AppResult<Article> {
    let tags = check_draft(
        edit.title.as_deref(),
        edit.description.as_deref(),
        edit.body.as_deref(),
        edit.tag_list.as_deref(),
    )?;
    let mut conn = state.db.conn().await?;
    conn.transaction(async |conn| {
        let current = authored_by_viewer(conn, viewer, id).await?;
        let title = edit.title.as_deref().map(str::trim);
        let slug = title.filter(|t| *t != current.title).map(slug_for);
        let changes = ArticleChanges {
            slug: slug.as_deref(),
            title,
            description: edit.description.as_deref().map(str::trim),
            body: edit.body.as_deref(),
        };
        let mut updated = if changes.slug.is_none()
            && changes.title.is_none()
            && changes.description.is_none()
            && changes.body.is_none()
        {
            current
        } else {
            article::update(conn, id, &changes).await?
        };
        if let Some(tags) = tags {
            tag::set_for_article(conn, id, &tags).await?;
            // What the tags' trigger wrote on the row after it was read.
            updated.listing.tag_list = tags;
        }
        Ok(updated)
    })
    .await
}

/// Soft-deletes the viewer's article and returns it as it was.
pub async fn delete(state: &AppState, viewer: &Viewer, id: Uuid) -> AppResult<Article> {
    let mut conn = state.db.conn().await?;
    conn.transaction(async |conn| {
        authored_by_viewer(conn, viewer, id).await?;
        article::soft_delete(conn, id)
            .await?
            .ok_or(AppError::NotFound("article"))
    })
    .await
}

pub async fn find_by_slug(state: &AppState, slug: &str) -> AppResult<Option<Article>> {
    let mut conn = state.db.conn().await?;
    Ok(article::find_by_slug(&mut conn, slug).await?)
}

pub async fn find_many(state: &AppState, ids: &[Uuid]) -> AppResult<Vec<Article>> {
    let mut conn = state.db.conn().await?;
    Ok(article::find_many(&mut conn, ids).await?)
}

/// A page of live articles, newest first. An unknown author or favoriter
/// simply matches nothing.
pub async fn list(
    state: &AppState,
    query: &ArticleQuery,
    page: &PageRequest,
) -> AppResult<Page<ArticleListing>> {
    let mut conn = state.db.conn().await?;
    let mut filter = ArticleFilter {
        tag: query.tag.as_deref().map(|t| t.trim().to_lowercase()),
        ..Default::default()
    };
    for (username, slot) in [
        (&query.author, &mut filter.author_id),
        (&query.favorited_by, &mut filter.favorited_by),
    ] {
        if let Some(username) = username {
            match user::find_by_username(&mut conn, username).await? {
                Some(found) => *slot = Some(found.id),
                None => {
                    return Ok(Page {
                        rows: Vec::new(),
                        has_more: false,
                    });
                }
            }
        }
    }
    Ok(article::list(&mut conn, &filter, page).await?)
}

/// Articles of a user known by id (profile pages).
pub async fn by_author(
    state: &AppState,
    author_id: Uuid,
    page: &PageRequest,
) -> AppResult<Page<ArticleListing>> {
    let filter = ArticleFilter {
        author_id: Some(author_id),
        ..Default::default()
    };
    let mut conn = state.db.conn().await?;
    Ok(article::list(&mut conn, &filter, page).await?)
}

pub async fn favorited_by(
    state: &AppState,
    user_id: Uuid,
    page: &PageRequest,
) -> AppResult<Page<ArticleListing>> {
    let filter = ArticleFilter {
        favorited_by: Some(user_id),
        ..Default::default()
    };
    let mut conn = state.db.conn().await?;
    Ok(article::list(&mut conn, &filter, page).await?)
}

/// Articles by the people the viewer follows, newest first.
pub async fn feed(
    state: &AppState,
    user_id: Uuid,
    page: &PageRequest,
) -> AppResult<Page<ArticleListing>> {
    let mut conn = state.db.conn().await?;
    Ok(article::feed(&mut conn, user_id, page).await?)
}

/// The bodies of articles a list fetched without them.
pub async fn bodies_of(
    state: &AppState,
    article_ids: &[Uuid],
) -> AppResult<foldhash::HashMap<Uuid, String>> {
    let mut conn = state.db.conn().await?;
    Ok(article::bodies(&mut conn, article_ids)
        .await?
        .into_iter()
        .collect())
}

pub async fn most_used_tags(state: &AppState, limit: i64) -> AppResult<Vec<String>> {
    let mut conn = state.db.conn().await?;
    Ok(tag::most_used(&mut conn, limit).await?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slugs_are_url_safe_and_distinct_for_equal_titles() {
        let a = slug_for("How to train your Dragon?!");
        let b = slug_for("How to train your Dragon?!");
        assert!(a.starts_with("how-to-train-your-dragon-"), "{a}");
        assert_ne!(a, b);
        assert_eq!(
            slug_for("Ünïcödé Ärtîclé").split('-').next(),
            Some("unicode")
        );
        assert!(slug_for("🦀").starts_with("crab-"));
        assert!(slug_for("?! …").starts_with("article-"));
        let long = slug_for(&"word ".repeat(100));
        assert!(long.len() <= SLUG_BASE_MAX + 1 + SLUG_SUFFIX_LEN);
        for s in [a, long] {
            assert!(
                s.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            );
            assert!(!s.contains("--") && !s.starts_with('-') && !s.ends_with('-'));
        }
    }
}
