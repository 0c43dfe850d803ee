//! The request's DataLoader. Built per request because some answers depend
//! on the viewer; each key type batches into one `= ANY` query, so
//! relationship fields never cost a query per parent row.

use std::collections::HashMap;

use async_graphql::dataloader::{DataLoader, HashMapCache, Loader};
use futures_util::future::BoxFuture;
use tracing::Instrument as _;
use uuid::Uuid;

use crate::{
    auth::Viewer,
    db::models::{article::Article, comment::Comment, user::User},
    services::{accounts, articles, comments, favorites, profiles},
    state::AppState,
};

/// A user by id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct UserById(pub Uuid);
/// A live article by id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ArticleById(pub Uuid);
/// A live comment by id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct CommentById(pub Uuid);
/// An article's body (lists fetch articles without it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ArticleBody(pub Uuid);
/// Whether the viewer has favorited an article.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FavoritedByViewer(pub Uuid);
/// Whether the viewer follows a user.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FollowedByViewer(pub Uuid);
/// An article's newest comments (the spec's plain list).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct NewestComments(pub Uuid);

pub struct ConduitLoader {
    state: AppState,
    viewer: Option<Viewer>,
}

/// The cache hashes with foldhash: its keys are ids the database made,
/// and SipHash was a visible share of a page's CPU.
pub type Loaders = DataLoader<Traced<ConduitLoader>, HashMapCache<foldhash::fast::RandomState>>;

/// A loader whose every batch, however it is started (the loader's own
/// batching or [`prime`]), is a span in the request's trace, named by its
/// key type (`loader UserById`).
pub struct Traced<L>(L);

impl<K, L> Loader<K> for Traced<L>
where
    K: Send + Sync + std::hash::Hash + Eq + Clone + 'static,
    L: Loader<K>,
{
    type Value = L::Value;
    type Error = L::Error;

    async fn load(&self, keys: &[K]) -> Result<HashMap<K, Self::Value>, Self::Error> {
        let key = std::any::type_name::<K>()
            .rsplit("::")
            .next()
            .unwrap_or("key");
        self.0
            .load(keys)
            .instrument(crate::telemetry::traces::loader_span(key, keys.len()))
            .await
    }
}

/// `spawn` runs each batch; the executor passes one that keeps the
/// request's tracing span, so batch log lines carry the request id.
///
/// Answers are cached for the request, so a list can prefetch what its
/// rows will ask for (see `types::article::prefetch`) in one batch per
/// relationship, whatever the timing of the rows' own lookups.
pub fn for_request<S, R>(state: &AppState, viewer: Option<Viewer>, spawn: S) -> Loaders
where
    S: Fn(BoxFuture<'static, ()>) -> R + Send + Sync + 'static,
{
    let loaders = DataLoader::with_cache(
        Traced(ConduitLoader {
            state: state.clone(),
            viewer,
        }),
        spawn,
        HashMapCache::new(),
    );
    loaders.enable_all_cache(true);
    loaders
}

/// Loads `keys` in one batch now and caches the answers, so the rows'
/// own lookups find them. Skips the loader's batching window (a timer
/// per batch), which a list that knows all its keys has no use for.
pub async fn prime<K>(
    loaders: &Loaders,
    keys: impl IntoIterator<Item = K>,
) -> Result<(), async_graphql::Error>
where
    K: Send + Sync + std::hash::Hash + Eq + Clone + 'static,
    Traced<ConduitLoader>: Loader<K, Error = async_graphql::Error>,
{
    let keys: Vec<K> = keys
        .into_iter()
        .collect::<foldhash::HashSet<K>>()
        .into_iter()
        .collect();
    if keys.is_empty() {
        return Ok(());
    }
    let values = loaders.loader().load(&keys).await?;
    loaders.feed_many(values).await;
    Ok(())
}

/// Forgets everything `loaders` cached.
pub fn clear_all(loaders: &Loaders) {
    loaders.clear::<UserById>();
    loaders.clear::<ArticleById>();
    loaders.clear::<CommentById>();
    loaders.clear::<ArticleBody>();
    loaders.clear::<FavoritedByViewer>();
    loaders.clear::<FollowedByViewer>();
    loaders.clear::<NewestComments>();
}

type LoadResult<K, V> = Result<HashMap<K, V>, async_graphql::Error>;

fn ids<K: Copy>(keys: &[K], id: impl Fn(K) -> Uuid) -> Vec<Uuid> {
    keys.iter().map(|k| id(*k)).collect()
}

/// Every key gets an answer: `answer(id)` for each.
fn for_every_key<K, V>(
    keys: &[K],
    id: impl Fn(K) -> Uuid,
    mut answer: impl FnMut(Uuid) -> V,
) -> HashMap<K, V>
where
    K: Copy + Eq + std::hash::Hash,
{
    keys.iter().map(|k| (*k, answer(id(*k)))).collect()
}

impl Loader<UserById> for ConduitLoader {
    type Value = std::sync::Arc<User>;
    type Error = async_graphql::Error;

    async fn load(&self, keys: &[UserById]) -> LoadResult<UserById, std::sync::Arc<User>> {
        let users = accounts::find_many(&self.state, &ids(keys, |k| k.0)).await?;
        Ok(users
            .into_iter()
            .map(|u| (UserById(u.id), std::sync::Arc::new(u)))
            .collect())
    }
}

impl Loader<ArticleById> for ConduitLoader {
    type Value = Article;
    type Error = async_graphql::Error;

    async fn load(&self, keys: &[ArticleById]) -> LoadResult<ArticleById, Article> {
        let found = articles::find_many(&self.state, &ids(keys, |k| k.0)).await?;
        Ok(found.into_iter().map(|a| (ArticleById(a.id), a)).collect())
    }
}

impl Loader<CommentById> for ConduitLoader {
    type Value = Comment;
    type Error = async_graphql::Error;

    async fn load(&self, keys: &[CommentById]) -> LoadResult<CommentById, Comment> {
        let found = comments::find_many(&self.state, &ids(keys, |k| k.0)).await?;
        Ok(found.into_iter().map(|c| (CommentById(c.id), c)).collect())
    }
}

impl Loader<ArticleBody> for ConduitLoader {
    type Value = String;
    type Error = async_graphql::Error;

    async fn load(&self, keys: &[ArticleBody]) -> LoadResult<ArticleBody, String> {
        let bodies = articles::bodies_of(&self.state, &ids(keys, |k| k.0)).await?;
        Ok(bodies
            .into_iter()
            .map(|(id, body)| (ArticleBody(id), body))
            .collect())
    }
}

impl Loader<NewestComments> for ConduitLoader {
    type Value = Vec<Comment>;
    type Error = async_graphql::Error;

    async fn load(&self, keys: &[NewestComments]) -> LoadResult<NewestComments, Vec<Comment>> {
        let mut newest = comments::newest_of_articles(&self.state, &ids(keys, |k| k.0)).await?;
        Ok(for_every_key(
            keys,
            |k| k.0,
            |id| newest.remove(&id).unwrap_or_default(),
        ))
    }
}

impl Loader<FavoritedByViewer> for ConduitLoader {
    type Value = bool;
    type Error = async_graphql::Error;

    async fn load(&self, keys: &[FavoritedByViewer]) -> LoadResult<FavoritedByViewer, bool> {
        let Some(viewer) = &self.viewer else {
            return Ok(for_every_key(keys, |k| k.0, |_| false));
        };
        let favorited =
            favorites::favorited_among(&self.state, viewer, &ids(keys, |k| k.0)).await?;
        Ok(for_every_key(keys, |k| k.0, |id| favorited.contains(&id)))
    }
}

impl Loader<FollowedByViewer> for ConduitLoader {
    type Value = bool;
    type Error = async_graphql::Error;

    async fn load(&self, keys: &[FollowedByViewer]) -> LoadResult<FollowedByViewer, bool> {
        let Some(viewer) = &self.viewer else {
            return Ok(for_every_key(keys, |k| k.0, |_| false));
        };
        let followed = profiles::followed_among(&self.state, viewer, &ids(keys, |k| k.0)).await?;
        Ok(for_every_key(keys, |k| k.0, |id| followed.contains(&id)))
    }
}
