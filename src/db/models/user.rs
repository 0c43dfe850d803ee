//! The `users` table: accounts, profile changes, and the unique names a
//! lost insert race maps to a field.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use uuid::Uuid;

use super::lower;
use crate::db::schema::users;

/// A live (not soft-deleted) account, without its password hash.
#[derive(Debug, Clone, Queryable, Selectable, Identifiable)]
#[diesel(table_name = users, check_for_backend(diesel::pg::Pg))]
pub struct User {
    pub id: Uuid,
    pub username: String,
    pub email: String,
    pub bio: Option<String>,
    pub image: Option<String>,
    /// Live followers, kept exact by triggers on `follows`.
    pub followers_count: i32,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Insertable)]
#[diesel(table_name = users)]
pub struct NewUser<'a> {
    pub username: &'a str,
    pub email: &'a str,
    pub password_hash: &'a str,
}

/// Changes to a profile. `None` leaves a column alone; for nullable columns
/// `Some(None)` clears it.
#[derive(Debug, Default, AsChangeset)]
#[diesel(table_name = users)]
pub struct UserChanges<'a> {
    pub username: Option<&'a str>,
    pub email: Option<&'a str>,
    pub bio: Option<Option<&'a str>>,
    pub image: Option<Option<&'a str>>,
    pub password_hash: Option<&'a str>,
}

impl UserChanges<'_> {
    pub fn is_empty(&self) -> bool {
        self.username.is_none()
            && self.email.is_none()
            && self.bio.is_none()
            && self.image.is_none()
            && self.password_hash.is_none()
    }
}

/// Which of a username and an email live accounts already use.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Taken {
    pub username: bool,
    pub email: bool,
}

/// Names of the unique indexes, for mapping a lost insert race to a field.
pub const USERNAME_KEY: &str = "users_username_key";
pub const EMAIL_KEY: &str = "users_email_key";

pub async fn find(conn: &mut AsyncPgConnection, id: Uuid) -> QueryResult<Option<User>> {
    users::table
        .filter(users::id.eq(id))
        .filter(users::deleted_at.is_null())
        .select(User::as_select())
        .first(conn)
        .await
        .optional()
}

pub async fn find_many(conn: &mut AsyncPgConnection, ids: &[Uuid]) -> QueryResult<Vec<User>> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    users::table
        .filter(users::id.eq_any(ids))
        .filter(users::deleted_at.is_null())
        .select(User::as_select())
        .load(conn)
        .await
}

pub async fn find_by_username(
    conn: &mut AsyncPgConnection,
    username: &str,
) -> QueryResult<Option<User>> {
    users::table
        .filter(lower(users::username).eq(lower(username)))
        .filter(users::deleted_at.is_null())
        .select(User::as_select())
        .first(conn)
        .await
        .optional()
}

/// The account with this email (any letter case) and its password hash.
pub async fn find_with_password_by_email(
    conn: &mut AsyncPgConnection,
    email: &str,
) -> QueryResult<Option<(User, String)>> {
    users::table
        .filter(lower(users::email).eq(lower(email)))
        .filter(users::deleted_at.is_null())
        .select((User::as_select(), users::password_hash))
        .first(conn)
        .await
        .optional()
}

pub async fn password_hash(conn: &mut AsyncPgConnection, id: Uuid) -> QueryResult<Option<String>> {
    users::table
        .filter(users::id.eq(id))
        .filter(users::deleted_at.is_null())
        .select(users::password_hash)
        .first(conn)
        .await
        .optional()
}

/// Whether other live accounts use `username` or `email`, ignoring case.
pub async fn taken(
    conn: &mut AsyncPgConnection,
    username: &str,
    email: &str,
    except: Option<Uuid>,
) -> QueryResult<Taken> {
    let mut query = users::table
        .filter(
            lower(users::username)
                .eq(lower(username))
                .or(lower(users::email).eq(lower(email))),
        )
        .filter(users::deleted_at.is_null())
        .select((users::username, users::email))
        .into_boxed();
    if let Some(id) = except {
        query = query.filter(users::id.ne(id));
    }
    let rows: Vec<(String, String)> = query.load(conn).await?;
    Ok(rows.iter().fold(Taken::default(), |acc, (u, e)| Taken {
        username: acc.username || u.to_lowercase() == username.to_lowercase(),
        email: acc.email || e.to_lowercase() == email.to_lowercase(),
    }))
}

pub async fn insert(conn: &mut AsyncPgConnection, new: &NewUser<'_>) -> QueryResult<User> {
    diesel::insert_into(users::table)
        .values(new)
        .returning(User::as_returning())
        .get_result(conn)
        .await
}

pub async fn update(
    conn: &mut AsyncPgConnection,
    id: Uuid,
    changes: &UserChanges<'_>,
) -> QueryResult<User> {
    diesel::update(users::table)
        .filter(users::id.eq(id))
        .filter(users::deleted_at.is_null())
        .set(changes)
        .returning(User::as_returning())
        .get_result(conn)
        .await
}
