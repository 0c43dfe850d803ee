//! Opaque Relay global IDs: base64url of `<Type>:<uuid>`. Clients must treat
//! them as opaque; the type prefix lets `node(id:)` route and lets every
//! mutation refuse an id of the wrong type.

use async_graphql::{ID, OutputType};
use base64::{Engine as _, engine::general_purpose::URL_SAFE_NO_PAD};
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

/// The global id of the object of type `type_name` with database id `id`
/// (for payloads built outside the schema, such as webhooks').
pub fn encode(type_name: &str, id: Uuid) -> ID {
    // Every article and user in a page has one: no formatting machinery.
    let mut raw = Vec::with_capacity(type_name.len() + 1 + 36);
    raw.extend_from_slice(type_name.as_bytes());
    raw.push(b':');
    raw.extend_from_slice(
        id.hyphenated()
            .encode_lower(&mut Uuid::encode_buffer())
            .as_bytes(),
    );
    ID(URL_SAFE_NO_PAD.encode(raw))
}

/// The type name and UUID inside a global id.
pub fn decode_any(id: &ID) -> Result<(String, Uuid), AppError> {
    let malformed = || AppError::BadUserInput(format!("`{}` is not a valid id", id.0));
    let raw = URL_SAFE_NO_PAD
        .decode(id.0.as_bytes())
        .map_err(|_| malformed())?;
    let text = String::from_utf8(raw).map_err(|_| malformed())?;
    let (kind, uuid) = text.split_once(':').ok_or_else(malformed)?;
    let uuid = Uuid::parse_str(uuid).map_err(|_| malformed())?;
    Ok((kind.to_owned(), uuid))
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
