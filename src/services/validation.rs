//! Field rules for what mutations take in: accounts (username, email,
//! password, bio, image), articles (title, description, body, tags) and
//! comments. Each check appends to a list, so a client learns about every
//! wrong field at once.

use crate::error::{FieldError, UserErrorCode};

pub const USERNAME_MAX: usize = 40;
pub const EMAIL_MAX: usize = 254;
pub const PASSWORD_MIN: usize = 8;
pub const PASSWORD_MAX: usize = 128;
pub const BIO_MAX: usize = 1000;
pub const IMAGE_MAX: usize = 2048;

pub type Errors = Vec<FieldError>;

fn too_long(path: &'static str, max: usize) -> FieldError {
    FieldError::new(
        path,
        UserErrorCode::TooLong,
        format!("{path} must be at most {max} characters"),
    )
}

pub fn username(value: &str, errors: &mut Errors) {
    if value.is_empty() {
        errors.push(FieldError::new(
            "username",
            UserErrorCode::Blank,
            "username can't be blank",
        ));
    } else if value.chars().count() > USERNAME_MAX {
        errors.push(too_long("username", USERNAME_MAX));
    } else if !value
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    {
        errors.push(FieldError::new(
            "username",
            UserErrorCode::Invalid,
            "username may contain only letters, digits, `_` and `-`",
        ));
    }
}

/// Expects an already trimmed email.
pub fn email(value: &str, errors: &mut Errors) {
    if value.is_empty() {
        errors.push(FieldError::new(
            "email",
            UserErrorCode::Blank,
            "email can't be blank",
        ));
    } else if value.chars().count() > EMAIL_MAX {
        errors.push(too_long("email", EMAIL_MAX));
    } else if !is_email(value) {
        errors.push(FieldError::new(
            "email",
            UserErrorCode::Invalid,
            "email is not a valid address",
        ));
    }
}

/// A deliverable-looking address: RFC 5321 syntax via `email_address`, and
/// a domain with a dot (no `user@localhost` accounts).
fn is_email(value: &str) -> bool {
    value
        .parse::<email_address::EmailAddress>()
        .is_ok_and(|parsed| {
            let domain = parsed.domain();
            domain.contains('.') && !domain.starts_with('[') && !value.contains(char::is_whitespace)
        })
}

pub fn password(path: &'static str, value: &str, errors: &mut Errors) {
    let len = value.chars().count();
    if len < PASSWORD_MIN {
        errors.push(FieldError::new(
            path,
            UserErrorCode::TooShort,
            format!("{path} must be at least {PASSWORD_MIN} characters"),
        ));
    } else if len > PASSWORD_MAX {
        errors.push(too_long(path, PASSWORD_MAX));
    }
}

pub fn bio(value: &str, errors: &mut Errors) {
    if value.chars().count() > BIO_MAX {
        errors.push(too_long("bio", BIO_MAX));
    }
}

pub fn image(value: &str, errors: &mut Errors) {
    if value.chars().count() > IMAGE_MAX {
        errors.push(too_long("image", IMAGE_MAX));
    } else if !url::Url::parse(value).is_ok_and(|u| matches!(u.scheme(), "http" | "https")) {
        errors.push(FieldError::new(
            "image",
            UserErrorCode::Invalid,
            "image must be an http or https URL",
        ));
    }
}

pub const TITLE_MAX: usize = 200;
pub const DESCRIPTION_MAX: usize = 1000;
pub const BODY_MAX: usize = 100_000;
pub const COMMENT_MAX: usize = 10_000;
pub const TAGS_MAX: usize = 10;
pub const TAG_MAX: usize = 32;

/// Required text: not blank, at most `max` characters.
pub fn required_text(path: &'static str, value: &str, max: usize, errors: &mut Errors) {
    if value.trim().is_empty() {
        errors.push(FieldError::new(
            path,
            UserErrorCode::Blank,
            format!("{path} can't be blank"),
        ));
    } else if value.chars().count() > max {
        errors.push(too_long(path, max));
    }
}

/// Optional text: at most `max` characters.
pub fn text(path: &'static str, value: &str, max: usize, errors: &mut Errors) {
    if value.chars().count() > max {
        errors.push(too_long(path, max));
    }
}

/// Tags trimmed, inner whitespace collapsed, lower-cased, de-duplicated in
/// order, blanks dropped; too many or too long ones are refused.
pub fn tags(raw: &[String], errors: &mut Errors) -> Vec<String> {
    let mut tags: Vec<String> = Vec::new();
    for tag in raw {
        let tag = tag
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
            .to_lowercase();
        if !tag.is_empty() && !tags.contains(&tag) {
            tags.push(tag);
        }
    }
    if tags.len() > TAGS_MAX {
        errors.push(FieldError::new(
            "tagList",
            UserErrorCode::TooLong,
            format!("an article can have at most {TAGS_MAX} tags"),
        ));
    }
    if tags.iter().any(|t| t.chars().count() > TAG_MAX) {
        errors.push(FieldError::new(
            "tagList",
            UserErrorCode::TooLong,
            format!("each tag must be at most {TAG_MAX} characters"),
        ));
    }
    tags
}

#[cfg(test)]
mod tests {
    use super::*;

    fn codes(check: impl Fn(&mut Errors)) -> Vec<UserErrorCode> {
        let mut errors = Vec::new();
        check(&mut errors);
        errors.into_iter().map(|e| e.code).collect()
    }

    #[test]
    fn usernames() {
        assert!(codes(|e| username("jake_the-dog42", e)).is_empty());
        assert_eq!(codes(|e| username("", e)), [UserErrorCode::Blank]);
        assert_eq!(
            codes(|e| username(&"a".repeat(41), e)),
            [UserErrorCode::TooLong]
        );
        assert!(codes(|e| username(&"a".repeat(40), e)).is_empty());
        for bad in ["jake doe", "jake@x", "jäke", "<b>", "a/b"] {
            assert_eq!(
                codes(|e| username(bad, e)),
                [UserErrorCode::Invalid],
                "{bad}"
            );
        }
    }

    #[test]
    fn emails() {
        assert!(codes(|e| email("jake@example.com", e)).is_empty());
        assert_eq!(codes(|e| email("", e)), [UserErrorCode::Blank]);
        for bad in [
            "jake",
            "jake@",
            "@example.com",
            "jake@localhost",
            "ja ke@example.com",
        ] {
            assert_eq!(codes(|e| email(bad, e)), [UserErrorCode::Invalid], "{bad}");
        }
        let long = format!("{}@example.com", "a".repeat(250));
        assert_eq!(codes(|e| email(&long, e)), [UserErrorCode::TooLong]);
    }

    #[test]
    fn passwords_count_characters_not_bytes() {
        assert_eq!(
            codes(|e| password("password", "short", e)),
            [UserErrorCode::TooShort]
        );
        assert!(codes(|e| password("password", "ééééééé1", e)).is_empty());
        assert!(codes(|e| password("password", &"x".repeat(128), e)).is_empty());
        assert_eq!(
            codes(|e| password("password", &"x".repeat(129), e)),
            [UserErrorCode::TooLong]
        );
    }

    #[test]
    fn tags_are_normalised_and_bounded() {
        let mut errors = Vec::new();
        let raw = ["  Rust ", "rust", "", "Web   Dev", "  "].map(String::from);
        assert_eq!(tags(&raw, &mut errors), ["rust", "web dev"]);
        assert!(errors.is_empty());
        let many: Vec<String> = (0..11).map(|i| format!("t{i}")).collect();
        tags(&many, &mut errors);
        tags(&["x".repeat(33)], &mut errors);
        let codes: Vec<_> = errors.iter().map(|e| (e.path, e.code)).collect();
        assert_eq!(
            codes,
            [
                (Some("tagList"), UserErrorCode::TooLong),
                (Some("tagList"), UserErrorCode::TooLong)
            ]
        );
    }

    #[test]
    fn images_must_be_web_urls() {
        assert!(codes(|e| image("https://example.com/a.png", e)).is_empty());
        assert_eq!(
            codes(|e| image("javascript:alert(1)", e)),
            [UserErrorCode::Invalid]
        );
        assert_eq!(codes(|e| image("not a url", e)), [UserErrorCode::Invalid]);
    }
}
