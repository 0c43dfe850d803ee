//! Relay global IDs as the schema's `ID`s (the encoding is
//! [`crate::global_id`]'s): the type prefix lets `node(id:)` route and
//! lets every mutation refuse an id of the wrong type.

use async_graphql::{ID, OutputType};
use uuid::Uuid;

use crate::error::AppError;

/// The global id of the `T` with database id `id`.
pub fn of<T: OutputType>(id: Uuid) -> ID {
    encode(&T::type_name(), id)
}

/// The UUID inside `id`, which must name a `T`.
pub fn decode_as<T: OutputType>(id: &ID) -> Result<Uuid, AppError> {
    decode(id, &T::type_name())
}

/// Whether `type_name`, from [`decode_any`], names a `T`.
pub fn names<T: OutputType>(type_name: &str) -> bool {
    type_name == T::type_name()
}

/// The global id of the object of type `type_name` with database id `id`.
pub fn encode(type_name: &str, id: Uuid) -> ID {
    ID(crate::global_id::encode(type_name, id))
}

/// The type name and UUID inside a global id.
pub fn decode_any(id: &ID) -> Result<(String, Uuid), AppError> {
    crate::global_id::decode(&id.0)
        .ok_or_else(|| AppError::BadUserInput(format!("`{}` is not a valid id", id.0)))
}

fn decode(id: &ID, type_name: &str) -> Result<Uuid, AppError> {
    match decode_any(id) {
        Ok((kind, uuid)) if kind == type_name => Ok(uuid),
        _ => Err(AppError::BadUserInput(format!(
            "`{}` is not a valid {type_name} id",
            id.0
        ))),
    }
}

#[cfg(test)]
mod tests {
    use base64::{Engine as _, engine::general_purpose::URL_SAFE_NO_PAD};

    use super::*;

    #[test]
    fn round_trips_and_refuses_other_types_and_garbage() {
        let id = Uuid::new_v4();
        let global = encode("User", id);
        assert_eq!(decode(&global, "User").unwrap(), id);
        assert!(decode(&global, "Article").is_err());
        assert!(decode(&ID("not base64!".into()), "User").is_err());
        assert!(decode(&ID(URL_SAFE_NO_PAD.encode("User:42")), "User").is_err());
    }
}
