//! Webhook endpoints and their deliveries (see the webhooks migration).

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use uuid::Uuid;

use super::{
    job::JobKind,
    page::{Page, PageRequest},
};
use crate::{
    db::schema::{follows, users, webhook_deliveries, webhook_endpoints},
    paginate,
};

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = webhook_endpoints, check_for_backend(diesel::pg::Pg))]
pub struct Endpoint {
    pub id: Uuid,
    pub user_id: Uuid,
    pub url: String,
    pub event_types: Vec<String>,
    pub secret: String,
    pub previous_secret: Option<String>,
    pub previous_secret_expires_at: Option<DateTime<Utc>>,
    pub failing_since: Option<DateTime<Utc>>,
    pub disabled_at: Option<DateTime<Utc>>,
    pub disabled_reason: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Insertable)]
#[diesel(table_name = webhook_endpoints)]
pub struct NewEndpoint<'a> {
    pub id: Uuid,
    pub user_id: Uuid,
    pub url: &'a str,
    pub event_types: &'a [String],
    pub secret: &'a str,
}

/// An edit; `None` keeps a field. Re-enabling clears the disabled state.
#[derive(Debug, Default, AsChangeset)]
#[diesel(table_name = webhook_endpoints)]
pub struct EndpointChanges<'a> {
    pub url: Option<&'a str>,
    pub event_types: Option<&'a [String]>,
    pub disabled_at: Option<Option<DateTime<Utc>>>,
    pub disabled_reason: Option<Option<&'a str>>,
    pub failing_since: Option<Option<DateTime<Utc>>>,
}

pub async fn insert(conn: &mut AsyncPgConnection, new: &NewEndpoint<'_>) -> QueryResult<Endpoint> {
    diesel::insert_into(webhook_endpoints::table)
        .values(new)
        .returning(Endpoint::as_returning())
        .get_result(conn)
        .await
}

pub async fn count_of_user(conn: &mut AsyncPgConnection, user_id: Uuid) -> QueryResult<i64> {
    webhook_endpoints::table
        .filter(webhook_endpoints::user_id.eq(user_id))
        .count()
        .get_result(conn)
        .await
}

/// The endpoint `id` if `user_id` owns it.
pub async fn find_owned(
    conn: &mut AsyncPgConnection,
    id: Uuid,
    user_id: Uuid,
) -> QueryResult<Option<Endpoint>> {
    webhook_endpoints::table
        .filter(webhook_endpoints::id.eq(id))
        .filter(webhook_endpoints::user_id.eq(user_id))
        .select(Endpoint::as_select())
        .first(conn)
        .await
        .optional()
}

/// One page of a user's endpoints, newest first.
pub async fn list_of_user(
    conn: &mut AsyncPgConnection,
    user_id: Uuid,
    page: &PageRequest,
) -> QueryResult<Page<Endpoint>> {
    let query = webhook_endpoints::table
        .filter(webhook_endpoints::user_id.eq(user_id))
        .select(Endpoint::as_select())
        .into_boxed();
    let rows = paginate!(
        query,
        page,
        webhook_endpoints::created_at,
        webhook_endpoints::id
    )
    .load(conn)
    .await?;
    Ok(page.finish(rows))
}

/// Applies `changes` to `user_id`'s endpoint `id`.
pub async fn update_owned(
    conn: &mut AsyncPgConnection,
    id: Uuid,
    user_id: Uuid,
    changes: &EndpointChanges<'_>,
) -> QueryResult<Option<Endpoint>> {
    diesel::update(webhook_endpoints::table)
        .filter(webhook_endpoints::id.eq(id))
        .filter(webhook_endpoints::user_id.eq(user_id))
        .set(changes)
        .returning(Endpoint::as_returning())
        .get_result(conn)
        .await
        .optional()
}

pub async fn delete_owned(
    conn: &mut AsyncPgConnection,
    id: Uuid,
    user_id: Uuid,
) -> QueryResult<bool> {
    diesel::delete(webhook_endpoints::table)
        .filter(webhook_endpoints::id.eq(id))
        .filter(webhook_endpoints::user_id.eq(user_id))
        .execute(conn)
        .await
        .map(|n| n == 1)
}

/// A new secret for `user_id`'s endpoint `id`; the current one keeps
/// signing until `previous_expires_at`.
pub async fn rotate_secret(
    conn: &mut AsyncPgConnection,
    id: Uuid,
    user_id: Uuid,
    secret: &str,
    previous_expires_at: DateTime<Utc>,
) -> QueryResult<Option<Endpoint>> {
    diesel::update(webhook_endpoints::table)
        .filter(webhook_endpoints::id.eq(id))
        .filter(webhook_endpoints::user_id.eq(user_id))
        .set((
            webhook_endpoints::previous_secret.eq(webhook_endpoints::secret.nullable()),
            webhook_endpoints::previous_secret_expires_at.eq(previous_expires_at),
            webhook_endpoints::secret.eq(secret),
        ))
        .returning(Endpoint::as_returning())
        .get_result(conn)
        .await
        .optional()
}

/// The enabled endpoints of live users among `user_ids` that want `event_type`.
pub async fn wanting(
    conn: &mut AsyncPgConnection,
    user_ids: &[Uuid],
    event_type: &str,
) -> QueryResult<Vec<Endpoint>> {
    webhook_endpoints::table
        .inner_join(users::table)
        .filter(webhook_endpoints::user_id.eq_any(user_ids))
        .filter(users::deleted_at.is_null())
        .filter(webhook_endpoints::disabled_at.is_null())
        .filter(webhook_endpoints::event_types.contains(vec![event_type]))
        .select(Endpoint::as_select())
        .load(conn)
        .await
}

/// The enabled endpoints of `author_id`'s live followers that want `event_type`.
pub async fn of_followers_wanting(
    conn: &mut AsyncPgConnection,
    author_id: Uuid,
    event_type: &str,
) -> QueryResult<Vec<Endpoint>> {
    let followers = follows::table
        .filter(follows::followee_id.eq(author_id))
        .select(follows::follower_id);
    webhook_endpoints::table
        .inner_join(users::table)
        .filter(webhook_endpoints::user_id.eq_any(followers))
        .filter(users::deleted_at.is_null())
        .filter(webhook_endpoints::disabled_at.is_null())
        .filter(webhook_endpoints::event_types.contains(vec![event_type]))
        .select(Endpoint::as_select())
        .load(conn)
        .await
}

/// A failed attempt: failing since the first failure after a success.
/// Returns since when.
pub async fn mark_failing(
    conn: &mut AsyncPgConnection,
    id: Uuid,
) -> QueryResult<Option<DateTime<Utc>>> {
    diesel::update(webhook_endpoints::table.find(id))
        .set(webhook_endpoints::failing_since.eq(diesel::dsl::sql::<
            diesel::sql_types::Nullable<diesel::sql_types::Timestamptz>,
        >("coalesce(failing_since, now())")))
        .returning(webhook_endpoints::failing_since)
        .get_result(conn)
        .await
        .optional()
        .map(Option::flatten)
}

pub async fn mark_succeeding(conn: &mut AsyncPgConnection, id: Uuid) -> QueryResult<usize> {
    diesel::update(webhook_endpoints::table.find(id))
        .filter(webhook_endpoints::failing_since.is_not_null())
        .set(webhook_endpoints::failing_since.eq(None::<DateTime<Utc>>))
        .execute(conn)
        .await
}

pub async fn disable(conn: &mut AsyncPgConnection, id: Uuid, reason: &str) -> QueryResult<usize> {
    diesel::update(webhook_endpoints::table.find(id))
        .filter(webhook_endpoints::disabled_at.is_null())
        .set((
            webhook_endpoints::disabled_at.eq(diesel::dsl::now),
            webhook_endpoints::disabled_reason.eq(reason),
        ))
        .execute(conn)
        .await
}

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = webhook_deliveries, check_for_backend(diesel::pg::Pg))]
pub struct Delivery {
    pub id: Uuid,
    pub endpoint_id: Uuid,
    pub event_id: i64,
    pub event_type: String,
    pub payload: serde_json::Value,
    pub status: String,
    pub attempts: i32,
    pub response_status: Option<i32>,
    pub last_error: Option<String>,
    pub next_attempt_at: Option<DateTime<Utc>>,
    pub delivered_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
}

/// Delivery states, as stored.
pub mod status {
    pub const PENDING: &str = "pending";
    pub const SUCCEEDED: &str = "succeeded";
    pub const FAILED: &str = "failed";
}

/// What one attempt left on a delivery.
#[derive(Debug, AsChangeset)]
#[diesel(table_name = webhook_deliveries, treat_none_as_null = true)]
pub struct Attempted<'a> {
    pub status: &'a str,
    pub attempts: i32,
    pub response_status: Option<i32>,
    pub last_error: Option<&'a str>,
    pub next_attempt_at: Option<DateTime<Utc>>,
    pub delivered_at: Option<DateTime<Utc>>,
}

/// One event's deliveries to `endpoint_ids`, each with the job that sends
/// it, in one statement; deliveries already made for the same event and
/// endpoint are skipped (with no job). Returns how many were made.
pub async fn insert_deliveries(
    conn: &mut AsyncPgConnection,
    endpoint_ids: &[Uuid],
    event_id: i64,
    event_type: &str,
    payload: &serde_json::Value,
    job: &DeliveryJob<'_>,
) -> QueryResult<usize> {
    use diesel::sql_types::{Array, BigInt, Integer, Jsonb, Nullable, Text, Uuid as SqlUuid};
    if endpoint_ids.is_empty() {
        return Ok(0);
    }
    let ids: Vec<Uuid> = endpoint_ids.iter().map(|_| Uuid::now_v7()).collect();
    diesel::sql_query(
        "WITH made AS ( \
             INSERT INTO webhook_deliveries (id, endpoint_id, event_id, event_type, payload) \
             SELECT id, endpoint_id, $3, $4, $5 FROM unnest($1::uuid[], $2::uuid[]) AS n(id, endpoint_id) \
             ON CONFLICT DO NOTHING RETURNING id) \
         INSERT INTO jobs (kind, payload, max_attempts, request_id) \
         SELECT $6, jsonb_build_object('delivery_id', made.id), $7, $8 FROM made",
    )
    .bind::<Array<SqlUuid>, _>(&ids)
    .bind::<Array<SqlUuid>, _>(endpoint_ids)
    .bind::<BigInt, _>(event_id)
    .bind::<Text, _>(event_type)
    .bind::<Jsonb, _>(payload)
    .bind::<Text, _>(JobKind::DeliverWebhook)
    .bind::<Integer, _>(job.max_attempts)
    .bind::<Nullable<Text>, _>(job.request_id)
    .execute(conn)
    .await
}

/// The job (a [`JobKind::DeliverWebhook`]) each new delivery gets.
#[derive(Debug, Clone, Copy)]
pub struct DeliveryJob<'a> {
    pub max_attempts: i32,
    pub request_id: Option<&'a str>,
}

/// Undelivered deliveries per endpoint among `endpoint_ids`.
pub async fn pending_counts(
    conn: &mut AsyncPgConnection,
    endpoint_ids: &[Uuid],
) -> QueryResult<Vec<(Uuid, i64)>> {
    webhook_deliveries::table
        .filter(webhook_deliveries::endpoint_id.eq_any(endpoint_ids))
        .filter(webhook_deliveries::status.eq(status::PENDING))
        .group_by(webhook_deliveries::endpoint_id)
        .select((webhook_deliveries::endpoint_id, diesel::dsl::count_star()))
        .load(conn)
        .await
}

/// A delivery and its endpoint.
pub async fn find_delivery(
    conn: &mut AsyncPgConnection,
    id: Uuid,
) -> QueryResult<Option<(Delivery, Endpoint)>> {
    webhook_deliveries::table
        .inner_join(webhook_endpoints::table)
        .filter(webhook_deliveries::id.eq(id))
        .select((Delivery::as_select(), Endpoint::as_select()))
        .first(conn)
        .await
        .optional()
}

/// The delivery `id` if it went to an endpoint `user_id` owns.
pub async fn find_owned_delivery(
    conn: &mut AsyncPgConnection,
    id: Uuid,
    user_id: Uuid,
) -> QueryResult<Option<Delivery>> {
    webhook_deliveries::table
        .inner_join(webhook_endpoints::table)
        .filter(webhook_deliveries::id.eq(id))
        .filter(webhook_endpoints::user_id.eq(user_id))
        .select(Delivery::as_select())
        .first(conn)
        .await
        .optional()
}

pub async fn record_attempt(
    conn: &mut AsyncPgConnection,
    id: Uuid,
    attempted: &Attempted<'_>,
) -> QueryResult<usize> {
    diesel::update(webhook_deliveries::table.find(id))
        .set(attempted)
        .execute(conn)
        .await
}

/// Puts a finished delivery back to pending, its attempts from zero.
pub async fn reset_for_redelivery(
    conn: &mut AsyncPgConnection,
    id: Uuid,
) -> QueryResult<Option<Delivery>> {
    diesel::update(webhook_deliveries::table.find(id))
        .filter(webhook_deliveries::status.ne(status::PENDING))
        .set((
            webhook_deliveries::status.eq(status::PENDING),
            webhook_deliveries::attempts.eq(0),
            webhook_deliveries::next_attempt_at.eq(Some(Utc::now())),
        ))
        .returning(Delivery::as_returning())
        .get_result(conn)
        .await
        .optional()
}

/// One page of an endpoint's deliveries, newest first.
pub async fn list_of_endpoint(
    conn: &mut AsyncPgConnection,
    endpoint_id: Uuid,
    page: &PageRequest,
) -> QueryResult<Page<Delivery>> {
    let query = webhook_deliveries::table
        .filter(webhook_deliveries::endpoint_id.eq(endpoint_id))
        .select(Delivery::as_select())
        .into_boxed();
    let rows = paginate!(
        query,
        page,
        webhook_deliveries::created_at,
        webhook_deliveries::id
    )
    .load(conn)
    .await?;
    Ok(page.finish(rows))
}

/// Finished deliveries created before `before`, up to `limit`: removed.
pub async fn purge_finished_before(
    conn: &mut AsyncPgConnection,
    before: DateTime<Utc>,
    limit: i64,
) -> QueryResult<usize> {
    diesel::sql_query(
        "DELETE FROM webhook_deliveries WHERE id IN ( \
             SELECT id FROM webhook_deliveries \
             WHERE status <> 'pending' AND created_at < $1 LIMIT $2)",
    )
    .bind::<diesel::sql_types::Timestamptz, _>(before)
    .bind::<diesel::sql_types::BigInt, _>(limit)
    .execute(conn)
    .await
}
