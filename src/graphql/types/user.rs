use async_graphql::{Context, ID, Object};

use super::global_id;
use crate::{db::models::user::User as UserRow, graphql::ContextExt};

/// A Conduit account.
pub struct User {
    row: UserRow,
    /// Reached through the owner's own view (`Viewer.user`, the payload of
    /// the owner's mutation), where private fields show even before the
    /// request carries a token, e.g. right after `signInUser`.
    own_view: bool,
}

impl User {
    /// The account as seen by anyone.
    pub fn public(row: UserRow) -> Self {
        Self {
            row,
            own_view: false,
        }
    }

    /// The account as seen by its owner.
    pub fn own(row: UserRow) -> Self {
        Self {
            row,
            own_view: true,
        }
    }
}

#[Object]
impl User {
    /// Opaque global id.
    async fn id(&self) -> ID {
        global_id::encode("User", self.row.id)
    }

    async fn username(&self) -> &str {
        &self.row.username
    }

    /// The account's email, visible only to its owner; `null` for everyone else.
    async fn email(&self, ctx: &Context<'_>) -> Option<&str> {
        let owner = self.own_view || ctx.viewer().is_some_and(|v| v.user_id == self.row.id);
        owner.then_some(self.row.email.as_str())
    }

    async fn bio(&self) -> Option<&str> {
        self.row.bio.as_deref()
    }

    /// URL of the avatar.
    async fn image(&self) -> Option<&str> {
        self.row.image.as_deref()
    }
}
