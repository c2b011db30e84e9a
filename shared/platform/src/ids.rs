//! Ids Steplab issues: UUIDs (v7, so they sort by creation), and how a
//! request's id fields are read.

use crate::error::FieldViolation;

/// A new id, time-ordered so lists page in creation order.
pub fn new_id() -> String {
    uuid::Uuid::now_v7().hyphenated().to_string()
}

/// The id of a call that came without an `x-request-id`: a v7 UUID like the
/// others, its random bits from the thread's generator rather than the
/// operating system's (one system call less on every call). Unlike
/// [`new_id`] it need not sort within a millisecond: nothing pages by it.
pub fn request_id() -> String {
    let millis = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |since| u64::try_from(since.as_millis()).unwrap_or(u64::MAX));
    uuid::Builder::from_unix_timestamp_millis(millis, &rand::random::<[u8; 10]>()).into_uuid().hyphenated().to_string()
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

/// Declares an id type for one kind of record: a value of it is always a
/// canonical UUID, so code holding one never checks it again ("parse, don't
/// validate"), and the compiler keeps a school's id out of a participant's
/// place.
macro_rules! typed_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(String);

        impl $name {
            /// A required id field of a request.
            pub fn parse(field: &str, value: &str) -> Result<Self, FieldViolation> {
                required(field, value).map(Self)
            }

            /// An optional id field of a request: empty means not set.
            pub fn parse_optional(field: &str, value: &str) -> Result<Option<Self>, FieldViolation> {
                optional(field, value).map(|id| id.map(Self))
            }

            /// A new, time-ordered id.
            pub fn generate() -> Self {
                Self(new_id())
            }

            /// An id read back from this service's own storage or from a
            /// peer service, which only ever hold ids Steplab issued.
            pub fn from_trusted(id: impl Into<String>) -> Self {
                Self(id.into())
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }

            pub fn into_string(self) -> String {
                self.0
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl std::ops::Deref for $name {
            type Target = str;
            fn deref(&self) -> &str {
                &self.0
            }
        }

        impl From<$name> for String {
            fn from(id: $name) -> String {
                id.0
            }
        }

        impl PartialEq<str> for $name {
            fn eq(&self, other: &str) -> bool {
                self.0 == other
            }
        }

        impl PartialEq<&str> for $name {
            fn eq(&self, other: &&str) -> bool {
                self.0 == *other
            }
        }
    };
}

typed_id!(
    /// An ECT, mentor or induction coordinator, as the participant service
    /// registered them (content release and payments use the same id).
    ParticipantId
);
typed_id!(
    /// A school.
    SchoolId
);
typed_id!(
    /// A delivery partner.
    DeliveryPartnerId
);
typed_id!(
    /// An approval request (a reinstatement or a long deferral) a DPL decides.
    ApprovalRequestId
);

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
    fn request_ids_are_distinct_v7_uuids_of_now() {
        let before = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock").as_millis();
        let ids: std::collections::HashSet<String> = (0..1_000).map(|_| request_id()).collect();
        assert_eq!(ids.len(), 1_000, "no two alike");
        for id in &ids {
            let uuid = uuid::Uuid::parse_str(id).expect("a uuid");
            assert_eq!(uuid.get_version_num(), 7, "{id}");
            assert_eq!(&uuid.hyphenated().to_string(), id, "canonical");
            let (secs, nanos) = uuid.get_timestamp().expect("v7 has a timestamp").to_unix();
            let millis = u128::from(secs) * 1_000 + u128::from(nanos / 1_000_000);
            assert!(millis >= before && millis <= before + 60_000, "{id} is of now");
        }
    }

    #[test]
    fn a_typed_id_holds_only_a_canonical_uuid() {
        let id = new_id();
        let parsed = ParticipantId::parse("participant_id", &id.to_uppercase()).expect("uuid");
        assert_eq!(parsed.as_str(), id);
        assert_eq!(parsed, id.as_str());
        assert!(SchoolId::parse("school_id", "school-1").is_err());
        assert_eq!(SchoolId::parse_optional("school_id", ""), Ok(None));
        assert_ne!(ParticipantId::generate(), ParticipantId::generate());
    }

    #[test]
    fn an_excerpt_is_short_and_printable() {
        assert_eq!(excerpt(&"a".repeat(100)).len(), 40);
        assert_eq!(excerpt("a\tb"), "a?b");
    }
}
