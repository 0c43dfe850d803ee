//! Article mutations: create, update, delete, favorite, unfavorite.

use async_graphql::{Context, ID, InputObject, Object, SimpleObject};

use crate::{
    graphql::{
        ContextExt,
        guards::SignedIn,
        types::{
            article::Article,
            global_id,
            user_error::{UserError, refusals},
        },
    },
    services::{
        articles::{self, ArticleDraft, ArticleEdit},
        favorites,
    },
};

#[derive(Default)]
pub struct ArticleMutations;

#[derive(InputObject)]
pub struct CreateArticleInput {
    pub title: String,
    pub description: String,
    pub body: String,
    /// Tags are trimmed, lower-cased and de-duplicated; at most 10 of at
    /// most 32 characters.
    pub tag_list: Vec<String>,
    /// A unique identifier for the client performing the mutation.
    pub client_mutation_id: Option<String>,
}

#[derive(SimpleObject)]
pub struct CreateArticlePayload {
    pub article: Option<Article>,
    pub errors: Vec<UserError>,
    /// A unique identifier for the client performing the mutation.
    pub client_mutation_id: Option<String>,
}

/// Omitted fields keep their value.
#[derive(InputObject)]
pub struct UpdateArticleInput {
    /// Global id of the article.
    pub id: ID,
    pub title: Option<String>,
    pub description: Option<String>,
    pub body: Option<String>,
    pub tag_list: Option<Vec<String>>,
    /// A unique identifier for the client performing the mutation.
    pub client_mutation_id: Option<String>,
}

#[derive(SimpleObject)]
pub struct UpdateArticlePayload {
    pub article: Option<Article>,
    pub errors: Vec<UserError>,
    /// A unique identifier for the client performing the mutation.
    pub client_mutation_id: Option<String>,
}

#[derive(InputObject)]
pub struct DeleteArticleInput {
    /// Global id of the article.
    pub id: ID,
    /// A unique identifier for the client performing the mutation.
    pub client_mutation_id: Option<String>,
}

#[derive(SimpleObject)]
pub struct DeleteArticlePayload {
    /// The deleted article, as it was.
    pub article: Article,
    /// A unique identifier for the client performing the mutation.
    pub client_mutation_id: Option<String>,
}

#[derive(InputObject)]
pub struct FavoriteArticleInput {
    /// Global id of the article.
    pub id: ID,
    /// A unique identifier for the client performing the mutation.
    pub client_mutation_id: Option<String>,
}

#[derive(SimpleObject)]
pub struct FavoriteArticlePayload {
    /// The article, with its updated count.
    pub article: Option<Article>,
    /// A unique identifier for the client performing the mutation.
    pub client_mutation_id: Option<String>,
}

#[derive(InputObject)]
pub struct UnfavoriteArticleInput {
    /// Global id of the article.
    pub id: ID,
    /// A unique identifier for the client performing the mutation.
    pub client_mutation_id: Option<String>,
}

#[derive(SimpleObject)]
pub struct UnfavoriteArticlePayload {
    /// The article, with its updated count.
    pub article: Option<Article>,
    /// A unique identifier for the client performing the mutation.
    pub client_mutation_id: Option<String>,
}

#[Object]
impl ArticleMutations {
    #[graphql(guard = "SignedIn")]
    async fn create_article(
        &self,
        ctx: &Context<'_>,
        input: CreateArticleInput,
    ) -> async_graphql::Result<Option<CreateArticlePayload>> {
        let draft = ArticleDraft {
            title: input.title,
            description: input.description,
            body: input.body,
            tag_list: input.tag_list,
        };
        let outcome = articles::create(ctx.app(), ctx.signed_in(), draft).await;
        let (article, errors) = match refusals(outcome)? {
            Ok(article) => (Some(Article::from(article)), Vec::new()),
            Err(errors) => (None, errors),
        };
        Ok(Some(CreateArticlePayload {
            article,
            errors,
            client_mutation_id: input.client_mutation_id,
        }))
    }

    /// Edits one of the viewer's articles (`FORBIDDEN` for others'); a new
    /// title gives a new slug.
    #[graphql(guard = "SignedIn")]
    async fn update_article(
        &self,
        ctx: &Context<'_>,
        input: UpdateArticleInput,
    ) -> async_graphql::Result<Option<UpdateArticlePayload>> {
        let id = global_id::decode_as::<Article>(&input.id)?;
        let edit = ArticleEdit {
            title: input.title,
            description: input.description,
            body: input.body,
            tag_list: input.tag_list,
        };
        let outcome = articles::update(ctx.app(), ctx.signed_in(), id, edit).await;
        let (article, errors) = match refusals(outcome)? {
            Ok(article) => (Some(Article::from(article)), Vec::new()),
            Err(errors) => (None, errors),
        };
        Ok(Some(UpdateArticlePayload {
            article,
            errors,
            client_mutation_id: input.client_mutation_id,
        }))
    }

    /// Deletes one of the viewer's articles (`FORBIDDEN` for others'); it
    /// vanishes from every list, feed and count.
    #[graphql(guard = "SignedIn")]
    async fn delete_article(
        &self,
        ctx: &Context<'_>,
        input: DeleteArticleInput,
    ) -> async_graphql::Result<Option<DeleteArticlePayload>> {
        let id = global_id::decode_as::<Article>(&input.id)?;
        let article = articles::delete(ctx.app(), ctx.signed_in(), id).await?;
        Ok(Some(DeleteArticlePayload {
            article: Article::from(article),
            client_mutation_id: input.client_mutation_id,
        }))
    }

    /// Favorites an article; favoriting twice is harmless.
    #[graphql(guard = "SignedIn")]
    async fn favorite_article(
        &self,
        ctx: &Context<'_>,
        input: FavoriteArticleInput,
    ) -> async_graphql::Result<Option<FavoriteArticlePayload>> {
        let id = global_id::decode_as::<Article>(&input.id)?;
        let article = favorites::favorite(ctx.app(), ctx.signed_in(), id).await?;
        Ok(Some(FavoriteArticlePayload {
            article: Some(Article::from(article)),
            client_mutation_id: input.client_mutation_id,
        }))
    }

    /// Removes a favorite; unfavoriting twice is harmless.
    #[graphql(guard = "SignedIn")]
    async fn unfavorite_article(
        &self,
        ctx: &Context<'_>,
        input: UnfavoriteArticleInput,
    ) -> async_graphql::Result<Option<UnfavoriteArticlePayload>> {
        let id = global_id::decode_as::<Article>(&input.id)?;
        let article = favorites::unfavorite(ctx.app(), ctx.signed_in(), id).await?;
        Ok(Some(UnfavoriteArticlePayload {
            article: Some(Article::from(article)),
            client_mutation_id: input.client_mutation_id,
        }))
    }
}
