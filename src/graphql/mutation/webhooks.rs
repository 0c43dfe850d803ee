//! Webhook endpoint mutations: register, change, delete, rotate a secret,
//! redeliver; only the owner reaches their endpoints.

use async_graphql::{Context, ID, InputObject, Object, SimpleObject};

use crate::{
    graphql::{
        ContextExt,
        guards::SignedIn,
        types::{
            global_id,
            user_error::{UserError, refusals},
            webhook::{WebhookDelivery, WebhookEndpoint, WebhookEventType},
        },
    },
    services::webhooks::{self, EventType},
};

#[derive(Default)]
pub struct WebhookMutations;

#[derive(InputObject)]
pub struct CreateWebhookEndpointInput {
    /// Where deliveries are posted: `https://` (plain `http://` outside
    /// production). Addresses on private networks are refused.
    pub url: String,
    /// What the endpoint is told about; at least one.
    pub event_types: Vec<WebhookEventType>,
    /// A unique identifier for the client performing the mutation.
    pub client_mutation_id: Option<String>,
}

#[derive(SimpleObject)]
pub struct CreateWebhookEndpointPayload {
    pub endpoint: Option<WebhookEndpoint>,
    /// The signing secret (`whsec_...`). Shown here once: store it.
    pub secret: Option<String>,
    pub errors: Vec<UserError>,
    /// A unique identifier for the client performing the mutation.
    pub client_mutation_id: Option<String>,
}

#[derive(InputObject)]
pub struct UpdateWebhookEndpointInput {
    /// Global id of one of the viewer's endpoints.
    pub id: ID,
    pub url: Option<String>,
    pub event_types: Option<Vec<WebhookEventType>>,
    /// `false` disables the endpoint; `true` enables it again (also one
    /// that was disabled for failing).
    pub enabled: Option<bool>,
    /// A unique identifier for the client performing the mutation.
    pub client_mutation_id: Option<String>,
}

#[derive(SimpleObject)]
pub struct UpdateWebhookEndpointPayload {
    pub endpoint: Option<WebhookEndpoint>,
    pub errors: Vec<UserError>,
    /// A unique identifier for the client performing the mutation.
    pub client_mutation_id: Option<String>,
}

#[derive(InputObject)]
pub struct DeleteWebhookEndpointInput {
    /// Global id of one of the viewer's endpoints.
    pub id: ID,
    /// A unique identifier for the client performing the mutation.
    pub client_mutation_id: Option<String>,
}

#[derive(InputObject)]
pub struct RotateWebhookEndpointSecretInput {
    /// Global id of one of the viewer's endpoints.
    pub id: ID,
    /// A unique identifier for the client performing the mutation.
    pub client_mutation_id: Option<String>,
}

#[derive(SimpleObject)]
pub struct DeleteWebhookEndpointPayload {
    pub deleted_id: Option<ID>,
    /// A unique identifier for the client performing the mutation.
    pub client_mutation_id: Option<String>,
}

#[derive(SimpleObject)]
pub struct RotateWebhookEndpointSecretPayload {
    pub endpoint: Option<WebhookEndpoint>,
    /// The new signing secret, shown here once. The previous one keeps
    /// signing beside it for 24 hours (`previousSecretExpiresAt`).
    pub secret: Option<String>,
    /// A unique identifier for the client performing the mutation.
    pub client_mutation_id: Option<String>,
}

#[derive(InputObject)]
pub struct RedeliverWebhookDeliveryInput {
    /// Global id of a finished delivery to one of the viewer's endpoints.
    pub id: ID,
    /// A unique identifier for the client performing the mutation.
    pub client_mutation_id: Option<String>,
}

#[derive(SimpleObject)]
pub struct RedeliverWebhookDeliveryPayload {
    pub delivery: Option<WebhookDelivery>,
    pub errors: Vec<UserError>,
    /// A unique identifier for the client performing the mutation.
    pub client_mutation_id: Option<String>,
}

fn event_types(types: &[WebhookEventType]) -> Vec<EventType> {
    types.iter().map(|t| EventType::from(*t)).collect()
}

#[Object]
impl WebhookMutations {
    /// Registers an endpoint for activity on the viewer's own things.
    #[graphql(guard = "SignedIn")]
    async fn create_webhook_endpoint(
        &self,
        ctx: &Context<'_>,
        input: CreateWebhookEndpointInput,
    ) -> async_graphql::Result<Option<CreateWebhookEndpointPayload>> {
        let types = event_types(&input.event_types);
        let outcome =
            webhooks::create_endpoint(ctx.app(), ctx.signed_in(), &input.url, &types).await;
        let (endpoint, secret, errors) = match refusals(outcome)? {
            Ok((row, secret)) => (Some(WebhookEndpoint(row)), Some(secret), Vec::new()),
            Err(errors) => (None, None, errors),
        };
        Ok(Some(CreateWebhookEndpointPayload {
            endpoint,
            secret,
            errors,
            client_mutation_id: input.client_mutation_id,
        }))
    }

    /// Changes one of the viewer's endpoints (`NOT_FOUND` for others').
    #[graphql(guard = "SignedIn")]
    async fn update_webhook_endpoint(
        &self,
        ctx: &Context<'_>,
        input: UpdateWebhookEndpointInput,
    ) -> async_graphql::Result<Option<UpdateWebhookEndpointPayload>> {
        let id = global_id::decode_as::<WebhookEndpoint>(&input.id)?;
        let types = input.event_types.as_deref().map(event_types);
        let outcome = webhooks::update_endpoint(
            ctx.app(),
            ctx.signed_in(),
            id,
            input.url.as_deref(),
            types.as_deref(),
            input.enabled,
        )
        .await;
        let (endpoint, errors) = match refusals(outcome)? {
            Ok(row) => (Some(WebhookEndpoint(row)), Vec::new()),
            Err(errors) => (None, errors),
        };
        Ok(Some(UpdateWebhookEndpointPayload {
            endpoint,
            errors,
            client_mutation_id: input.client_mutation_id,
        }))
    }

    /// Deletes one of the viewer's endpoints and its deliveries.
    #[graphql(guard = "SignedIn")]
    async fn delete_webhook_endpoint(
        &self,
        ctx: &Context<'_>,
        input: DeleteWebhookEndpointInput,
    ) -> async_graphql::Result<Option<DeleteWebhookEndpointPayload>> {
        let id = global_id::decode_as::<WebhookEndpoint>(&input.id)?;
        webhooks::delete_endpoint(ctx.app(), ctx.signed_in(), id).await?;
        Ok(Some(DeleteWebhookEndpointPayload {
            deleted_id: Some(input.id),
            client_mutation_id: input.client_mutation_id,
        }))
    }

    /// A new signing secret for one of the viewer's endpoints.
    #[graphql(guard = "SignedIn")]
    async fn rotate_webhook_endpoint_secret(
        &self,
        ctx: &Context<'_>,
        input: RotateWebhookEndpointSecretInput,
    ) -> async_graphql::Result<Option<RotateWebhookEndpointSecretPayload>> {
        let id = global_id::decode_as::<WebhookEndpoint>(&input.id)?;
        let (row, secret) = webhooks::rotate_secret(ctx.app(), ctx.signed_in(), id).await?;
        Ok(Some(RotateWebhookEndpointSecretPayload {
            endpoint: Some(WebhookEndpoint(row)),
            secret: Some(secret),
            client_mutation_id: input.client_mutation_id,
        }))
    }

    /// Sends a finished delivery again, with the same `webhookId`.
    #[graphql(guard = "SignedIn")]
    async fn redeliver_webhook_delivery(
        &self,
        ctx: &Context<'_>,
        input: RedeliverWebhookDeliveryInput,
    ) -> async_graphql::Result<Option<RedeliverWebhookDeliveryPayload>> {
        let id = global_id::decode_as::<WebhookDelivery>(&input.id)?;
        let outcome = webhooks::redeliver(ctx.app(), ctx.signed_in(), id).await;
        let (delivery, errors) = match refusals(outcome)? {
            Ok(row) => (Some(WebhookDelivery(row)), Vec::new()),
            Err(errors) => (None, errors),
        };
        Ok(Some(RedeliverWebhookDeliveryPayload {
            delivery,
            errors,
            client_mutation_id: input.client_mutation_id,
        }))
    }
}
