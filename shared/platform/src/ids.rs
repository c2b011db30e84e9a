//! Ids Steplab issues: UUIDs (v7, so they sort by creation), and how a
//! request's id fields are read.

use crate::error::FieldViolation;

/// A new id, time-ordered so lists page in creation order.
pub fn new_id() -> String {
    uuid::Uuid::now_v7().hyphenated().to_string()
}

/// A required id field: our ids are UUIDs, so anything else cannot name a
/// record. Returned in canonical (lower-case, hyphenated) form.
pub fn required(field: &str, value: &str) -> Result<String, FieldViolation> {
    if value.is_empty() {
        return Err(FieldViolation::new(field, "is required"));
    }
    uuid::Uuid::parse_str(value)
        .map(|u| u.hyphenated().to_string())
        .map_err(|_| FieldViolation::new(field, format!("`{}` is not an id issued by Steplab", excerpt(value))))
}

/// An optional id field: empty means not set.
pub fn optional(field: &str, value: &str) -> Result<Option<String>, FieldViolation> {
    if value.is_empty() { Ok(None) } else { required(field, value).map(Some) }
}

/// The start of a caller's value, safe to quote back in a message: at most
/// 40 characters, control characters shown as `?`.
pub fn excerpt(value: &str) -> String {
    value.chars().take(40).map(|c| if c.is_control() { '?' } else { c }).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_canonical_uuids_and_anything_else_is_a_violation_naming_the_field() {
        let id = new_id();
        assert_eq!(required("x", &id.to_uppercase()).expect("uuid"), id);
        let err = required("participant_id", "nope\u{0}").expect_err("not a uuid");
        assert_eq!(err.field, "participant_id");
        assert!(!err.description.contains('\u{0}'), "control characters are not echoed");
        assert_eq!(optional("x", ""), Ok(None));
        assert!(required("x", "").is_err());
    }

    #[test]
    fn an_excerpt_is_short_and_printable() {
        assert_eq!(excerpt(&"a".repeat(100)).len(), 40);
        assert_eq!(excerpt("a\tb"), "a?b");
    }
}
