//! Opaque global ids: base64url of `<Type>:<uuid>`. The schema's `ID`s
//! (`graphql::types::global_id`), the response cache's tags and the ids in
//! webhook payloads all name an object this way, so the encoding lives
//! below all three. Clients must treat the ids as opaque.

use base64::{Engine as _, engine::general_purpose::URL_SAFE_NO_PAD};
use uuid::Uuid;

/// The global id of the object of type `type_name` (as the schema names
/// it) with database id `id`.
pub fn encode(type_name: &str, id: Uuid) -> String {
    // Every article and user in a page has one: no formatting machinery.
    let mut raw = Vec::with_capacity(type_name.len() + 1 + 36);
    raw.extend_from_slice(type_name.as_bytes());
    raw.push(b':');
    raw.extend_from_slice(
        id.hyphenated()
            .encode_lower(&mut Uuid::encode_buffer())
            .as_bytes(),
    );
    URL_SAFE_NO_PAD.encode(raw)
}

/// The type name and UUID inside a global id; `None` when it is not one.
pub fn decode(id: &str) -> Option<(String, Uuid)> {
    let raw = URL_SAFE_NO_PAD.decode(id.as_bytes()).ok()?;
    let text = String::from_utf8(raw).ok()?;
    let (type_name, uuid) = text.split_once(':')?;
    let uuid = Uuid::parse_str(uuid).ok()?;
    Some((type_name.to_owned(), uuid))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_refuses_garbage() {
        let id = Uuid::new_v4();
        assert_eq!(decode(&encode("User", id)), Some(("User".to_owned(), id)));
        assert_eq!(decode("not base64!"), None);
        assert_eq!(decode(&URL_SAFE_NO_PAD.encode("User:42")), None);
        assert_eq!(decode(&URL_SAFE_NO_PAD.encode("no separator")), None);
    }
}
