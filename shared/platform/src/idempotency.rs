//! Optional `request_id` on public mutating RPCs and the `command_id` of
//! service-to-service commands: the first answer is stored with the effect in
//! the same transaction, and a repeat returns it and changes nothing. Every
//! service's migrations create the `idempotency_keys` table.

use crate::db::DbConn;
use crate::error::FieldViolation;
use chrono::NaiveDateTime;
use diesel::prelude::*;

diesel::table! {
    idempotency_keys (key) {
        key -> Text,
        rpc -> Text,
        request -> Binary,
        response -> Binary,
        created_at -> Timestamp,
    }
}

/// A validated idempotency key, namespaced by caller so two callers cannot
/// collide on the same id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotencyKey(String);

impl IdempotencyKey {
    /// `None` for an empty id (the caller did not ask for idempotency).
    pub fn parse(field: &str, caller_sub: &str, id: &str) -> Result<Option<Self>, FieldViolation> {
        if id.is_empty() {
            return Ok(None);
        }
        if id.len() > 100 || !id.chars().all(|c| c.is_ascii_graphic()) {
            return Err(FieldViolation::new(field, "must be at most 100 printable ASCII characters without spaces"));
        }
        Ok(Some(IdempotencyKey(format!("{caller_sub}/{id}"))))
    }

    /// The key of a service-to-service command: its `command_id` alone, so a
    /// command is applied once whichever relay replica (or token) delivers it.
    pub fn command(field: &str, command_id: &str) -> Result<Self, FieldViolation> {
        match Self::parse(field, "command", command_id)? {
            Some(key) => Ok(key),
            None => Err(FieldViolation::new(field, "is required")),
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// What a stored key says about this request.
#[derive(Debug, PartialEq, Eq)]
pub enum Replay {
    /// Not seen: apply the request.
    New,
    /// Seen with the same request: return this stored (encoded) answer.
    Answered(Vec<u8>),
    /// Seen with a different request or RPC: refuse.
    Conflict,
}

pub fn lookup(conn: &mut DbConn, key: &IdempotencyKey, rpc: &str, request: &[u8]) -> QueryResult<Replay> {
    let found: Option<(String, Vec<u8>, Vec<u8>)> = idempotency_keys::table
        .find(key.as_str())
        .select((idempotency_keys::rpc, idempotency_keys::request, idempotency_keys::response))
        .first(conn)
        .optional()?;
    Ok(match found {
        None => Replay::New,
        Some((stored_rpc, stored_request, response)) if stored_rpc == rpc && stored_request == request => {
            Replay::Answered(response)
        }
        Some(_) => Replay::Conflict,
    })
}

pub fn record(
    conn: &mut DbConn,
    key: &IdempotencyKey,
    rpc: &str,
    request: &[u8],
    response: &[u8],
    now: NaiveDateTime,
) -> QueryResult<()> {
    diesel::insert_into(idempotency_keys::table)
        .values((
            idempotency_keys::key.eq(key.as_str()),
            idempotency_keys::rpc.eq(rpc),
            idempotency_keys::request.eq(request),
            idempotency_keys::response.eq(response),
            idempotency_keys::created_at.eq(now),
        ))
        .execute(conn)
        .map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_namespaced_by_caller_and_validated() {
        let a = IdempotencyKey::parse("request_id", "alice", "r1").expect("ok").expect("some");
        let b = IdempotencyKey::parse("request_id", "bob", "r1").expect("ok").expect("some");
        assert_ne!(a, b);
        assert_eq!(IdempotencyKey::parse("request_id", "alice", ""), Ok(None));
        assert!(IdempotencyKey::parse("request_id", "alice", "has space").is_err());
        assert!(IdempotencyKey::parse("request_id", "alice", &"x".repeat(101)).is_err());
        assert!(IdempotencyKey::command("command_id", "").is_err());
        assert_eq!(IdempotencyKey::command("command_id", "c1").expect("key").as_str(), "command/c1");
    }
}
