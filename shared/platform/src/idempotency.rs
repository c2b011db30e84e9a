//! Optional `request_id` on public mutating RPCs and the `command_id` of
//! service-to-service commands: the first answer is stored with the effect in
//! the same transaction, and a repeat returns it and changes nothing. Every
//! service's migrations create the `idempotency_keys` table.

use crate::db::{DbConn, KeepPreparedDsl};
use crate::error::{FieldViolation, ServiceError};
use crate::rules::{ErrorDomain, RuleViolation};
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

/// Marks the keys stored before keys were length-prefixed: the migration
/// `*_idempotency_key_form` of every service rewrote each `{sub}/{id}` to
/// `legacy:{sub}/{id}`. New keys start with a digit or `command:`, so the
/// two forms never meet.
const LEGACY_PREFIX: &str = "legacy:";

/// A validated idempotency key, namespaced by caller so that no two callers
/// share one.
///
/// The stored form is `{byte length of sub}:{sub}/{id}`: the length says
/// where the caller's part ends, so the pairs (`a/b`, `c`) and (`a`, `b/c`),
/// which the bare `{sub}/{id}` of old gave the same key, get different ones.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotencyKey {
    key: String,
    /// The same key as stored before the change, still honoured for a repeat.
    legacy: String,
    /// The request field the id came in, named when the id is reused.
    field: String,
    /// A service-to-service command's `command_id`, not a person's request id.
    command: bool,
}

impl IdempotencyKey {
    /// `None` for an empty id (the caller did not ask for idempotency).
    pub fn parse(field: &str, caller_sub: &str, id: &str) -> Result<Option<Self>, FieldViolation> {
        if id.is_empty() {
            return Ok(None);
        }
        if id.len() > 100 || !id.chars().all(|c| c.is_ascii_graphic()) {
            return Err(FieldViolation::new(field, "must be at most 100 printable ASCII characters without spaces"));
        }
        Ok(Some(IdempotencyKey {
            key: format!("{}:{caller_sub}/{id}", caller_sub.len()),
            legacy: format!("{LEGACY_PREFIX}{caller_sub}/{id}"),
            field: field.to_owned(),
            command: false,
        }))
    }

    /// The key of a service-to-service command: its `command_id` alone, so a
    /// command is applied once whichever relay replica (or token) delivers
    /// it. Its own namespace: no person's `request_id` can take it.
    pub fn command(field: &str, command_id: &str) -> Result<Self, FieldViolation> {
        match Self::parse(field, "command", command_id)? {
            Some(_) => Ok(IdempotencyKey {
                key: format!("command:{command_id}"),
                legacy: format!("{LEGACY_PREFIX}command/{command_id}"),
                field: field.to_owned(),
                command: true,
            }),
            None => Err(FieldViolation::new(field, "is required")),
        }
    }

    pub fn as_str(&self) -> &str {
        &self.key
    }
}

/// What a stored key says about this request.
#[derive(Debug, PartialEq, Eq)]
enum Replay {
    /// Not seen: apply the request.
    New,
    /// Seen with the same request: return this stored (encoded) answer.
    Answered(Vec<u8>),
    /// Seen with a different request or RPC: refuse.
    Conflict,
}

fn lookup(conn: &mut DbConn, key: &IdempotencyKey, rpc: &str, request: &[u8]) -> QueryResult<Replay> {
    // Kept prepared: every command and change looks its key up, and the
    // list is always the two forms of one key, so the text is fixed.
    let found: Vec<(String, String, Vec<u8>, Vec<u8>)> = crate::on_backend!(conn, |inner| idempotency_keys::table
        .filter(idempotency_keys::key.eq_any([key.key.as_str(), key.legacy.as_str()]))
        .select((idempotency_keys::key, idempotency_keys::rpc, idempotency_keys::request, idempotency_keys::response))
        .keep_prepared()
        .load(inner))?;
    let same = |stored_rpc: &str, stored_request: &[u8]| stored_rpc == rpc && stored_request == request;
    if let Some((_, stored_rpc, stored_request, response)) = found.iter().find(|row| row.0 == key.key) {
        return Ok(if same(stored_rpc, stored_request) {
            Replay::Answered(response.clone())
        } else {
            Replay::Conflict
        });
    }
    // A key of the old form is honoured for an exact repeat only. The
    // request holds the id, and the old key is the sub followed by the id,
    // so an identical request under it can only be this caller's. A
    // different request may be another caller's whose sub and id ran
    // together into the same old key, so it is not held against this one.
    Ok(match found.into_iter().find(|row| row.0 == key.legacy) {
        Some((_, stored_rpc, stored_request, response)) if same(&stored_rpc, &stored_request) => {
            Replay::Answered(response)
        }
        _ => Replay::New,
    })
}

fn record(
    conn: &mut DbConn,
    key: &IdempotencyKey,
    rpc: &str,
    request: &[u8],
    response: &[u8],
    now: NaiveDateTime,
) -> QueryResult<()> {
    crate::on_backend!(conn, |inner| diesel::insert_into(idempotency_keys::table)
        .values((
            idempotency_keys::key.eq(key.as_str()),
            idempotency_keys::rpc.eq(rpc),
            idempotency_keys::request.eq(request),
            idempotency_keys::response.eq(response),
            idempotency_keys::created_at.eq(now),
        ))
        .keep_prepared()
        .execute(inner))
    .map(|_| ())
}

/// What [`once`] did: applied the command now, or answered a repeat with the
/// answer stored the first time (which a command acknowledgement marks as a
/// duplicate).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ran<T> {
    Applied(T),
    Replayed(T),
}

impl<T> Ran<T> {
    /// The answer, whichever way it came.
    pub fn into_inner(self) -> T {
        match self {
            Ran::Applied(answer) | Ran::Replayed(answer) => answer,
        }
    }
}

/// The one idempotent command of every service, run inside the caller's write
/// transaction: a repeat of `key` with the same request returns the stored
/// answer and changes nothing; the same key with a different request is
/// refused (`IDEMPOTENCY_KEY_REUSED`, or `IDEMPOTENCY_KEY_REUSED` for a command, in the
/// service's ErrorInfo domain `D`); otherwise `apply` runs and its answer is
/// stored in the same transaction as its effect. Without a key (the caller
/// did not ask for idempotency) `apply` simply runs.
pub fn once<D: ErrorDomain, Resp: prost::Message + Default>(
    conn: &mut DbConn,
    key: Option<&IdempotencyKey>,
    rpc: &'static str,
    request: &[u8],
    now: NaiveDateTime,
    apply: impl FnOnce(&mut DbConn) -> Result<Resp, ServiceError>,
) -> Result<Ran<Resp>, ServiceError> {
    let Some(key) = key else {
        return apply(conn).map(Ran::Applied);
    };
    match lookup(conn, key, rpc, request)? {
        Replay::New => {}
        Replay::Answered(bytes) => {
            return Resp::decode(bytes.as_slice())
                .map(Ran::Replayed)
                .map_err(|e| ServiceError::Internal(format!("stored answer unreadable: {e}")));
        }
        Replay::Conflict => return Err(reused::<D>(key, rpc).into()),
    }
    let answer = apply(conn)?;
    record(conn, key, rpc, request, &answer.encode_to_vec(), now)?;
    Ok(Ran::Applied(answer))
}

fn reused<D: ErrorDomain>(key: &IdempotencyKey, rpc: &str) -> RuleViolation<D> {
    let field = &key.field;
    RuleViolation::new(
        "IDEMPOTENCY_KEY_REUSED",
        format!("this {field} was already used for a different request: use a new {field} for a new request"),
    )
    .with("field", field)
    .with("rpc", rpc)
}

#[cfg(test)]
mod tests {
    use super::*;
    use diesel::Connection;
    use diesel::connection::SimpleConnection;

    #[test]
    fn keys_are_namespaced_by_caller_and_validated() {
        let a = IdempotencyKey::parse("idempotency_key", "alice", "r1").expect("ok").expect("some");
        let b = IdempotencyKey::parse("idempotency_key", "bob", "r1").expect("ok").expect("some");
        assert_ne!(a, b);
        assert_eq!(IdempotencyKey::parse("idempotency_key", "alice", ""), Ok(None));
        assert!(IdempotencyKey::parse("idempotency_key", "alice", "has space").is_err());
        assert!(IdempotencyKey::parse("idempotency_key", "alice", &"x".repeat(101)).is_err());
        assert!(IdempotencyKey::command("idempotency_key", "").is_err());
        assert_eq!(IdempotencyKey::command("idempotency_key", "c1").expect("key").as_str(), "command:c1");
    }

    #[test]
    fn callers_whose_sub_and_id_run_together_get_different_keys() {
        let key = |sub: &str, id: &str| IdempotencyKey::parse("idempotency_key", sub, id).expect("ok").expect("some");
        assert_ne!(key("a/b", "c"), key("a", "b/c"));
        assert_ne!(key("1:a", "b"), key("a", "b"));
        assert_eq!(key("a/b", "c").as_str(), "3:a/b/c");
        // A person whose sub is `command` cannot take a command's key.
        let command = IdempotencyKey::command("idempotency_key", "c1").expect("key");
        assert_ne!(key("command", "c1").as_str(), command.as_str());
    }

    /// An in-memory SQLite database with the services' real table, as the
    /// migrations leave it.
    fn keys_db() -> DbConn {
        let mut conn = DbConn::Sqlite(diesel::SqliteConnection::establish(":memory:").expect("in-memory sqlite"));
        conn.batch_execute(
            "CREATE TABLE idempotency_keys (key TEXT PRIMARY KEY NOT NULL, rpc TEXT NOT NULL, \
                 request BLOB NOT NULL, response BLOB NOT NULL, created_at TIMESTAMP NOT NULL)",
        )
        .expect("table");
        conn
    }

    fn now() -> NaiveDateTime {
        chrono::DateTime::from_timestamp(1_800_000_000, 0).expect("time").naive_utc()
    }

    #[derive(Debug, Clone, PartialEq)]
    enum Test {}
    impl ErrorDomain for Test {
        const DOMAIN: &'static str = "steplab.test.v1";
    }

    #[test]
    fn once_applies_a_new_command_replays_a_repeat_and_refuses_a_reused_key() {
        let mut conn = keys_db();
        let key = IdempotencyKey::command("idempotency_key", "c1").expect("key");
        let mut applied = 0;
        let mut run = |conn: &mut DbConn, request: &[u8]| {
            once::<Test, String>(conn, Some(&key), "PlaceHold", request, now(), |_| {
                applied += 1;
                Ok("held".to_owned())
            })
        };
        assert_eq!(run(&mut conn, b"hold").expect("first"), Ran::Applied("held".to_owned()));
        assert_eq!(run(&mut conn, b"hold").expect("repeat"), Ran::Replayed("held".to_owned()));
        match run(&mut conn, b"another hold") {
            Err(ServiceError::Rule { domain, reason, .. }) => {
                assert_eq!((domain, reason), ("steplab.test.v1", "IDEMPOTENCY_KEY_REUSED"))
            }
            other => panic!("a reused command_id must be refused, got {other:?}"),
        }
        assert_eq!(applied, 1, "only the first command is applied");
        let request = IdempotencyKey::parse("idempotency_key", "lead", "r1").expect("ok").expect("some");
        once::<Test, String>(&mut conn, Some(&request), "PauseParticipant", b"a", now(), |_| Ok(String::new()))
            .expect("first");
        match once::<Test, String>(&mut conn, Some(&request), "PauseParticipant", b"b", now(), |_| Ok(String::new())) {
            Err(ServiceError::Rule { reason, message, metadata, .. }) => {
                assert_eq!(reason, "IDEMPOTENCY_KEY_REUSED");
                assert!(message.contains("idempotency_key"), "{message}");
                assert_eq!(metadata.get("field").map(String::as_str), Some("idempotency_key"));
                assert_eq!(metadata.get("rpc").map(String::as_str), Some("PauseParticipant"));
            }
            other => panic!("a reused request_id must be refused, got {other:?}"),
        }
    }

    #[test]
    fn once_without_a_key_always_applies() {
        let mut conn = keys_db();
        for _ in 0..2 {
            let ran = once::<Test, String>(&mut conn, None, "PauseParticipant", b"a", now(), |_| Ok("done".into()));
            assert_eq!(ran.expect("applied"), Ran::Applied("done".to_owned()));
        }
    }

    #[test]
    fn a_colliding_pair_does_not_replay_the_other_callers_answer() {
        let mut conn = keys_db();
        let first = IdempotencyKey::parse("idempotency_key", "lead/x", "r1").expect("ok").expect("some");
        let second = IdempotencyKey::parse("idempotency_key", "lead", "x/r1").expect("ok").expect("some");
        record(&mut conn, &first, "PauseParticipant", b"same", b"first's answer", now()).expect("record");
        assert_eq!(
            lookup(&mut conn, &first, "PauseParticipant", b"same"),
            Ok(Replay::Answered(b"first's answer".to_vec()))
        );
        assert_eq!(lookup(&mut conn, &second, "PauseParticipant", b"same"), Ok(Replay::New));
        record(&mut conn, &second, "PauseParticipant", b"same", b"second's answer", now()).expect("own row");
    }

    #[test]
    fn a_key_stored_before_the_change_is_honoured_for_an_exact_repeat_only() {
        let mut conn = keys_db();
        conn.batch_execute(
                "INSERT INTO idempotency_keys VALUES ('alice/r1', 'PauseParticipant', x'01', x'0a', '2026-11-28 10:00:00'); \
                 INSERT INTO idempotency_keys VALUES ('command/c1', 'PlaceHold', x'02', x'0b', '2026-11-28 10:00:00');",
            )
            .expect("old rows");
        conn.batch_execute(include_str!("../migrations/idempotency_key_form/up.sql")).expect("migration");
        let alice = IdempotencyKey::parse("idempotency_key", "alice", "r1").expect("ok").expect("some");
        assert_eq!(lookup(&mut conn, &alice, "PauseParticipant", &[1]), Ok(Replay::Answered(vec![0x0a])));
        // Under the old form this might be another caller's row: not held against this one.
        assert_eq!(lookup(&mut conn, &alice, "PauseParticipant", &[9]), Ok(Replay::New));
        let command = IdempotencyKey::command("idempotency_key", "c1").expect("key");
        assert_eq!(lookup(&mut conn, &command, "PlaceHold", &[2]), Ok(Replay::Answered(vec![0x0b])));
        // Once recorded in the new form, the new row decides.
        record(&mut conn, &alice, "PauseParticipant", &[9], &[0x0c], now()).expect("record");
        assert_eq!(lookup(&mut conn, &alice, "PauseParticipant", &[9]), Ok(Replay::Answered(vec![0x0c])));
        assert_eq!(lookup(&mut conn, &alice, "PauseParticipant", &[1]), Ok(Replay::Conflict));
    }
}
