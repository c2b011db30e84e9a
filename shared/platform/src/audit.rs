//! The audit log (issue 9): every call of a mutating RPC whatever its
//! outcome, and every refused call of any RPC, recorded in the service's own
//! database with actor, role, RPC, participant, outcome and time.
//!
//! Two writers, so that nothing is lost and nothing is recorded twice:
//!
//! * an accepted change commits its entry in the same transaction as the
//!   change ([`crate::uow::write_transaction`] adds it to the first write
//!   transaction of a mutating call that succeeds);
//! * everything else (refusals, errors, mutations that wrote nothing such as
//!   a replay) is recorded by [`crate::observability::Observed`] after the
//!   service answered and before the answer leaves.
//!
//! Calls shed for load (`RESOURCE_EXHAUSTED`: the global concurrency cap or
//! a caller's rate limit) are not recorded: a write per shed call would
//! defeat the shedding. Nothing secret is stored: never a token, a request
//! body or an error message (messages can echo names); the `reason` is a
//! rule's ErrorInfo reason or the names of the malformed fields.
//!
//! A caller nobody can name cannot grow the log (issue 14):
//!
//! * `rpc` is one of the service's own RPC names, or [`UNKNOWN_RPC`] for any
//!   other path (see [`crate::observability`]): never the caller's text.
//! * Refusals for a missing or bad token (`UNAUTHENTICATED`) come at any
//!   rate and are not rate limited (there is no caller to limit), so only
//!   the first [`UNAUTHENTICATED_ROWS_PER_WINDOW`] of each
//!   [`SUMMARY_WINDOW`] get a row of their own (an operator can still follow
//!   one misconfigured client by its request id). The rest are only counted,
//!   per RPC, in memory ([`Unauthenticated`]); at the end of the window one
//!   summary row per RPC records the count in `calls`, with request id
//!   [`SUMMARY_REQUEST_ID`], and when the service stops the open window is
//!   written the same way. So a flood of any rate writes at most
//!   `UNAUTHENTICATED_ROWS_PER_WINDOW` + one row per RPC name (plus
//!   `unknown`) a minute, and the `steplab_audit_summarised_calls_total`
//!   metric counts the calls folded into summaries as they happen.
//! * Rows older than `STEPLAB_AUDIT_RETENTION_DAYS` (default
//!   [`crate::config::DEFAULT_RETENTION_DAYS`]; 0 keeps them forever) are deleted by a
//!   background task ([`prune`]), [`PRUNE_BATCH`] rows per write transaction
//!   with a pause between, so pruning never holds the write lock for long.

use crate::call::{self, CallContext, Refusal};
use crate::db::{Database, DbConn, DbError};
use crate::error::{FieldViolation, FieldViolations, ServiceError};
use crate::identity::{Caller, Role};
use crate::paging;
use chrono::NaiveDateTime;
use diesel::prelude::*;
use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;
use steplab_proto::steplab::common::v1 as pb;
use tonic::Code;

diesel::table! {
    audit_log (id) {
        id -> BigInt,
        recorded_at -> Timestamp,
        request_id -> Text,
        actor_sub -> Nullable<Text>,
        actor_role -> Nullable<Text>,
        rpc -> Text,
        participant_id -> Nullable<Text>,
        outcome -> Text,
        reason -> Nullable<Text>,
        calls -> BigInt,
    }
}

pub use crate::call::UNKNOWN_RPC;

/// The request id of a summary row of unauthenticated refusals.
pub const SUMMARY_REQUEST_ID: &str = "summary";

/// One command of a batch, as its audit entry names it (see
/// [`NewEntry::for_command`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandCall<'a> {
    /// The RPC the command stands for (one of the service's own names, or
    /// [`UNKNOWN_RPC`]).
    pub rpc: &'static str,
    /// As the request gave it; kept only when it can be an id.
    pub participant_id: &'a str,
    /// The command's own request id, when the batch carried one.
    pub request_id: Option<&'a str>,
    pub refusal: Option<Refusal>,
}

/// Unauthenticated refusals recorded one row each per window, per service.
pub const UNAUTHENTICATED_ROWS_PER_WINDOW: u32 = 20;

/// How often the counted unauthenticated refusals are written as summaries.
pub const SUMMARY_WINDOW: Duration = Duration::from_secs(60);

/// Rows deleted per transaction by [`prune`].
pub const PRUNE_BATCH: i64 = 1_000;

/// The longest `participant_id` or `actor_sub` a request may filter on.
pub const MAX_FILTER_CHARS: usize = 200;

/// An entry about to be recorded.
#[derive(Debug, Clone, PartialEq, Eq, Insertable)]
#[diesel(table_name = audit_log)]
// `None` is NULL (no column has another default), so many entries go in
// one multi-row INSERT on SQLite too, which has no DEFAULT keyword.
#[diesel(treat_none_as_default_value = false)]
pub struct NewEntry {
    pub recorded_at: NaiveDateTime,
    pub request_id: String,
    pub actor_sub: Option<String>,
    pub actor_role: Option<String>,
    pub rpc: String,
    pub participant_id: Option<String>,
    pub outcome: String,
    pub reason: Option<String>,
    /// How many calls the row stands for: 1, or a summary's count.
    pub calls: i64,
}

impl NewEntry {
    /// The entry of `call` answered with `code`: the actor the auth
    /// interceptor found (none without a valid token), the participant the
    /// service noted, and the refusal's reason when it matches the code.
    pub fn for_call(call: &CallContext, code: Code, recorded_at: NaiveDateTime) -> Self {
        let actor = call.actor();
        let reason = match (code, call.refusal()) {
            (Code::FailedPrecondition, Some(Refusal::Rule(reason))) => Some(reason),
            (Code::InvalidArgument, Some(Refusal::Fields(fields))) => Some(fields),
            _ => None,
        };
        NewEntry {
            recorded_at,
            request_id: call.request_id.clone(),
            actor_sub: actor.map(|(sub, _)| sub.to_owned()),
            actor_role: actor.map(|(_, role)| role.as_str().to_owned()),
            rpc: call.rpc.clone(),
            participant_id: call.participant_id().map(str::to_owned),
            outcome: call::code_name(code).to_owned(),
            reason,
            calls: 1,
        }
    }

    /// The entry of one command of a batch (ApplyCommands), as its unary
    /// RPC would have left it: that RPC, its participant, its outcome and
    /// refusal, its own request id (else the batch call's), and the batch
    /// caller as the actor.
    pub fn for_command(
        call: Option<&CallContext>,
        command: CommandCall<'_>,
        code: Code,
        recorded_at: NaiveDateTime,
    ) -> Self {
        let actor = call.and_then(CallContext::actor);
        let reason = match (code, command.refusal) {
            (Code::FailedPrecondition, Some(Refusal::Rule(reason))) => Some(reason),
            (Code::InvalidArgument, Some(Refusal::Fields(fields))) => Some(fields),
            _ => None,
        };
        let request_id = command.request_id.map(str::to_owned).or_else(|| call.map(|c| c.request_id.clone()));
        NewEntry {
            recorded_at,
            request_id: request_id.unwrap_or_default(),
            actor_sub: actor.map(|(sub, _)| sub.to_owned()),
            actor_role: actor.map(|(_, role)| role.as_str().to_owned()),
            rpc: command.rpc.to_owned(),
            participant_id: call::usable_participant_id(command.participant_id),
            outcome: call::code_name(code).to_owned(),
            reason,
            calls: 1,
        }
    }

    /// The summary row of `calls` unauthenticated refusals of `rpc`.
    pub fn unauthenticated_summary(rpc: &str, calls: i64, recorded_at: NaiveDateTime) -> Self {
        NewEntry {
            recorded_at,
            request_id: SUMMARY_REQUEST_ID.to_owned(),
            actor_sub: None,
            actor_role: None,
            rpc: rpc.to_owned(),
            participant_id: None,
            outcome: call::code_name(Code::Unauthenticated).to_owned(),
            reason: None,
            calls,
        }
    }
}

/// The unauthenticated refusals of one service in the current window: how
/// many got a row of their own, and how many of each RPC were only counted
/// (RPC names come from a closed set, so the map stays small).
#[derive(Debug, Default)]
pub struct Unauthenticated {
    window: Mutex<Window>,
}

#[derive(Debug, Default)]
struct Window {
    written: u32,
    counted: BTreeMap<String, i64>,
}

impl Unauthenticated {
    /// Whether this refusal of `rpc` gets a row of its own; if not, it is
    /// counted for the window's summary.
    pub fn admit(&self, rpc: &str) -> bool {
        let mut window = self.window.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if window.written < UNAUTHENTICATED_ROWS_PER_WINDOW {
            window.written += 1;
            return true;
        }
        match window.counted.get_mut(rpc) {
            Some(count) => *count += 1,
            None => {
                window.counted.insert(rpc.to_owned(), 1);
            }
        }
        false
    }

    /// Closes the window: its summary rows, and a fresh budget of rows.
    pub fn close_window(&self, recorded_at: NaiveDateTime) -> Vec<NewEntry> {
        let closed = std::mem::take(&mut *self.window.lock().unwrap_or_else(std::sync::PoisonError::into_inner));
        closed
            .counted
            .into_iter()
            .map(|(rpc, calls)| NewEntry::unauthenticated_summary(&rpc, calls, recorded_at))
            .collect()
    }
}

/// Whether a call answered with `code` is audited: every mutating call, and
/// every refused one, except calls shed for load.
pub fn is_audited(rpc: &str, code: Code) -> bool {
    code != Code::ResourceExhausted && (code != Code::Ok || !call::is_read(rpc))
}

/// One recorded entry.
#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable)]
#[diesel(table_name = audit_log)]
pub struct Entry {
    pub id: i64,
    pub recorded_at: NaiveDateTime,
    pub request_id: String,
    pub actor_sub: Option<String>,
    pub actor_role: Option<String>,
    pub rpc: String,
    pub participant_id: Option<String>,
    pub outcome: String,
    pub reason: Option<String>,
    pub calls: i64,
}

pub fn record(conn: &mut DbConn, entry: &NewEntry) -> Result<(), DbError> {
    diesel::insert_into(audit_log::table).values(entry).execute(conn)?;
    Ok(())
}

/// Records several entries (the summaries of a window, a batch's commands)
/// in one statement per [`ENTRIES_PER_INSERT`].
pub fn record_all(conn: &mut DbConn, entries: &[NewEntry]) -> Result<(), DbError> {
    for chunk in entries.chunks(ENTRIES_PER_INSERT) {
        crate::insert_rows!(conn, audit_log::table, chunk)?;
    }
    Ok(())
}

/// Entries per multi-row INSERT: 9 values each stays under SQLite's and
/// PostgreSQL's limits on bound parameters.
const ENTRIES_PER_INSERT: usize = 500;

/// Deletes at most `batch` entries recorded before `cutoff`; how many went.
/// Run it in a write transaction: the ids are read, then deleted.
pub fn prune_batch(conn: &mut DbConn, cutoff: NaiveDateTime, batch: i64) -> Result<usize, DbError> {
    let oldest: Vec<i64> =
        audit_log::table.select(audit_log::id).filter(audit_log::recorded_at.lt(cutoff)).limit(batch).load(conn)?;
    if oldest.is_empty() {
        return Ok(0);
    }
    Ok(diesel::delete(audit_log::table.filter(audit_log::id.eq_any(oldest))).execute(conn)?)
}

/// Deletes every entry recorded before `cutoff`, [`PRUNE_BATCH`] per write
/// transaction with `pause` between two, so writers wait at most one batch.
/// How many went.
pub async fn prune(db: &Database, cutoff: NaiveDateTime, pause: Duration) -> Result<u64, DbError> {
    let mut deleted = 0u64;
    loop {
        let gone = db.write(move |conn| prune_batch(conn, cutoff, PRUNE_BATCH)).await?;
        deleted += gone as u64;
        if (gone as i64) < PRUNE_BATCH {
            return Ok(deleted);
        }
        tokio::time::sleep(pause).await;
    }
}

/// Prunes entries older than `retention_days` now and then every
/// `every`, for as long as the task runs; `0` days keeps everything.
pub async fn keep_pruned(db: Database, retention_days: u32, every: Duration) {
    if retention_days == 0 {
        return;
    }
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let cutoff = chrono::Utc::now().naive_utc() - chrono::Duration::days(i64::from(retention_days));
        match prune(&db, cutoff, PRUNE_PAUSE).await {
            Ok(0) => {}
            Ok(deleted) => tracing::info!(deleted, retention_days, "old audit entries deleted"),
            Err(e) => tracing::warn!(error = %e, "could not delete old audit entries; will try again"),
        }
    }
}

/// The pause between two pruning batches, for writers to get their turn.
const PRUNE_PAUSE: Duration = Duration::from_millis(50);

/// Whose entries to read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Subject {
    Participant(String),
    Actor(String),
    /// Every entry, calls without a valid token included: for operators with
    /// database access and for tests, not offered over gRPC.
    Everything,
}

/// One page of entries, oldest first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Query {
    pub subject: Subject,
    /// The id of the last entry of the previous page.
    pub after: Option<i64>,
    pub limit: i64,
}

/// A `ListAuditEntriesRequest` of any service: each service has its own
/// request message (one request/response pair per RPC), all of this shape.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListRequest {
    /// The RPC's full name, which its page tokens are bound to.
    pub rpc: &'static str,
    pub participant_id: String,
    pub actor_sub: String,
    pub page_size: i32,
    pub page_token: String,
}

/// One page of a `ListAuditEntriesResponse`.
#[derive(Debug, Clone, PartialEq)]
pub struct ListPage {
    pub entries: Vec<pb::AuditEntry>,
    pub next_page_token: String,
}

/// The audit list request and response of one service.
macro_rules! audit_list_messages {
    ($($module:ident => $rpc:literal),*) => {$(
        impl From<$module::ListAuditEntriesRequest> for ListRequest {
            fn from(r: $module::ListAuditEntriesRequest) -> Self {
                ListRequest { rpc: $rpc, participant_id: r.participant_id, actor_sub: r.actor_sub, page_size: r.page_size, page_token: r.page_token }
            }
        }
        impl From<ListPage> for $module::ListAuditEntriesResponse {
            fn from(page: ListPage) -> Self {
                $module::ListAuditEntriesResponse { entries: page.entries, next_page_token: page.next_page_token }
            }
        }
    )*};
}
use steplab_proto::steplab::content::v1 as content;
use steplab_proto::steplab::participant::v1 as participant;
use steplab_proto::steplab::payments::v1 as payments;
audit_list_messages!(
    participant => "steplab.participant.v1.ParticipantService/ListAuditEntries",
    content => "steplab.content.v1.ContentReleaseService/ListAuditEntries",
    payments => "steplab.payments.v1.PaymentsService/ListAuditEntries"
);

impl ListRequest {
    /// The page tokens of this request by `caller_sub`: bound to the RPC and
    /// both filters.
    pub fn pages(&self, caller_sub: &str) -> paging::Pages {
        let mut filter = Vec::new();
        for value in [&self.participant_id, &self.actor_sub] {
            filter.extend_from_slice(&(value.len() as u64).to_be_bytes());
            filter.extend_from_slice(value.as_bytes());
        }
        paging::Pages::new(self.rpc, &filter, caller_sub)
    }
}

/// Reads a `ListAuditEntriesRequest`, reporting every malformed field;
/// `pages` are the request's page tokens.
pub fn query(request: &ListRequest, pages: &paging::Pages) -> Result<Query, FieldViolations> {
    let mut violations = FieldViolations::default();
    let participant = violations.check(filter("participant_id", &request.participant_id));
    let actor = violations.check(filter("actor_sub", &request.actor_sub));
    let subject = match (participant, actor) {
        (Some(Some(id)), Some(None)) => Some(Subject::Participant(id)),
        (Some(None), Some(Some(sub))) => Some(Subject::Actor(sub)),
        (Some(None), Some(None)) => {
            violations.push(FieldViolation::new("participant_id", "give participant_id or actor_sub"));
            None
        }
        (Some(Some(_)), Some(Some(_))) => {
            violations.push(FieldViolation::new("actor_sub", "give participant_id or actor_sub, not both"));
            None
        }
        // A violation is already recorded.
        _ => None,
    };
    let limit = violations.check(paging::page_size(request.page_size));
    // The key is ours (the token's MAC held): a key that is not an id is a
    // token of an older build.
    let after =
        violations.check(pages.after(&request.page_token).and_then(|key| match key {
            None => Ok(None),
            Some(key) => key.parse::<i64>().map(Some).map_err(|_| {
                FieldViolation::new("page_token", "is from an older version: start again without page_token")
            }),
        }));
    violations.finish(|| Some(Query { subject: subject?, after: after?, limit: limit? }))
}

/// An optional filter value: empty means not given; at most
/// [`MAX_FILTER_CHARS`], no control characters.
fn filter(field: &str, value: &str) -> Result<Option<String>, FieldViolation> {
    if value.is_empty() {
        return Ok(None);
    }
    if value.chars().count() > MAX_FILTER_CHARS {
        return Err(FieldViolation::new(field, format!("is longer than {MAX_FILTER_CHARS} characters")));
    }
    if value.chars().any(char::is_control) {
        return Err(FieldViolation::new(field, "contains control characters"));
    }
    Ok(Some(value.to_owned()))
}

/// One page of entries and whether more follow.
pub fn list(conn: &mut DbConn, query: &Query) -> Result<(Vec<Entry>, bool), DbError> {
    let mut select = audit_log::table.select(Entry::as_select()).order(audit_log::id.asc()).into_boxed();
    select = match &query.subject {
        Subject::Participant(id) => select.filter(audit_log::participant_id.eq(id.clone())),
        Subject::Actor(sub) => select.filter(audit_log::actor_sub.eq(sub.clone())),
        Subject::Everything => select,
    };
    if let Some(after) = query.after {
        select = select.filter(audit_log::id.gt(after));
    }
    let mut entries = select.limit(query.limit + 1).load(conn)?;
    let more = entries.len() as i64 > query.limit;
    entries.truncate(usize::try_from(query.limit).unwrap_or(0));
    Ok((entries, more))
}

/// `ListAuditEntries`, the same on every service: admins only.
pub async fn list_entries(
    db: &Database,
    caller: &Caller,
    request: impl Into<ListRequest>,
) -> Result<ListPage, ServiceError> {
    let request = request.into();
    // A refused read of a participant's audit is itself in that participant's audit.
    call::note_participant(&request.participant_id);
    if caller.role() != Role::Admin {
        return Err(crate::rules::Denied::role_not_allowed(caller, "only an admin may read the audit log").into());
    }
    let pages = request.pages(&caller.sub);
    let query = query(&request, &pages)?;
    let (entries, more) = db.read(move |conn| list(conn, &query)).await?;
    let last = entries.last().filter(|_| more).map(|last| last.id.to_string());
    let next_page_token = pages.token(last.as_deref());
    Ok(ListPage { entries: entries.into_iter().map(entry).collect(), next_page_token })
}

fn entry(e: Entry) -> pb::AuditEntry {
    pb::AuditEntry {
        id: e.id,
        record_time: Some(std::time::SystemTime::from(e.recorded_at.and_utc()).into()),
        request_id: e.request_id,
        actor_sub: e.actor_sub.unwrap_or_default(),
        actor_role: e.actor_role.unwrap_or_default(),
        rpc: e.rpc,
        participant_id: e.participant_id.unwrap_or_default(),
        outcome: e.outcome,
        reason: e.reason.unwrap_or_default(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::{failed_precondition, invalid_argument};
    use std::sync::Arc;

    fn request(participant_id: &str, actor_sub: &str) -> ListRequest {
        ListRequest {
            rpc: "steplab.participant.v1.ParticipantService/ListAuditEntries",
            participant_id: participant_id.into(),
            actor_sub: actor_sub.into(),
            ..Default::default()
        }
    }

    fn fields(err: FieldViolations) -> Vec<String> {
        err.0.into_iter().map(|v| v.field).collect()
    }

    fn read(request: &ListRequest) -> Result<Query, FieldViolations> {
        query(request, &request.pages("admin"))
    }

    #[test]
    fn exactly_one_of_participant_and_actor_is_given() {
        let by_participant = read(&request("p-1", "")).expect("valid");
        assert_eq!(by_participant.subject, Subject::Participant("p-1".into()));
        assert_eq!((by_participant.after, by_participant.limit), (None, paging::DEFAULT_PAGE_SIZE));
        assert_eq!(read(&request("", "ada")).expect("valid").subject, Subject::Actor("ada".into()));
        assert_eq!(fields(read(&request("", "")).expect_err("neither")), ["participant_id"]);
        assert_eq!(fields(read(&request("p-1", "ada")).expect_err("both")), ["actor_sub"]);
    }

    #[test]
    fn over_long_or_control_filters_bad_pages_and_forged_tokens_are_field_violations() {
        let long = "x".repeat(MAX_FILTER_CHARS + 1);
        assert_eq!(fields(read(&request(&long, "")).expect_err("long")), ["participant_id"]);
        assert_eq!(fields(read(&request("", "a\nb")).expect_err("control")), ["actor_sub"]);
        assert!(read(&request(&"x".repeat(MAX_FILTER_CHARS), "")).is_ok());
        let mut bad = request("p-1", "");
        bad.page_size = -1;
        bad.page_token = "after:41".into();
        assert_eq!(fields(read(&bad).expect_err("bad page")), ["page_size", "page_token"]);
        let mut next = request("p-1", "");
        next.page_token = next.pages("admin").token(Some("42"));
        assert_eq!(read(&next).expect("valid").after, Some(42));
        let mut other_participant = request("p-2", "");
        other_participant.page_token = next.page_token.clone();
        assert_eq!(fields(read(&other_participant).expect_err("other filter")), ["page_token"]);
    }

    /// What the layer stack does with the status a call is answered with.
    fn answered(call: &CallContext, status: tonic::Status) -> tonic::Status {
        if let Some(refusal) = call::refusal_of(&status) {
            call.set_refusal(refusal);
        }
        status
    }

    fn recorded(call: &Arc<CallContext>, code: Code) -> NewEntry {
        NewEntry::for_call(call, code, chrono::DateTime::UNIX_EPOCH.naive_utc())
    }

    #[test]
    fn a_rule_refusal_records_its_reason_and_a_malformed_request_its_fields() {
        let call = Arc::new(CallContext::new("r-1".into(), "PauseParticipant".into()));
        let status = answered(
            &call,
            failed_precondition("steplab.participant.v1", "PAUSE_TOO_LONG", "Ada's pause is too long: defer her"),
        );
        let entry = recorded(&call, status.code());
        assert_eq!(entry.outcome, "FAILED_PRECONDITION");
        assert_eq!(entry.reason.as_deref(), Some("PAUSE_TOO_LONG"));
        assert_eq!((entry.actor_sub, entry.participant_id), (None, None));

        let call = Arc::new(CallContext::new("r-2".into(), "RegisterParticipant".into()));
        let mut violations = FieldViolations::default();
        violations.push(FieldViolation::new("registered_on", "2026-02-30 is not a date"));
        violations.push(FieldViolation::new("full_name", "is required"));
        let status = answered(&call, invalid_argument(&violations));
        let entry = recorded(&call, status.code());
        assert_eq!(entry.reason.as_deref(), Some("registered_on,full_name"));
        assert!(!format!("{entry:?}").contains("not a date"), "never the message");
    }

    #[test]
    fn a_reason_is_kept_only_for_the_code_it_explains() {
        let call = Arc::new(CallContext::new("r-3".into(), "PauseParticipant".into()));
        answered(&call, failed_precondition("d", "PAUSE_TOO_LONG", "m"));
        assert_eq!(recorded(&call, Code::Aborted).reason, None);
        assert_eq!(recorded(&call, Code::InvalidArgument).reason, None);
        assert_eq!(recorded(&call, Code::PermissionDenied).reason, None);
    }

    #[test]
    fn past_the_windows_budget_unauthenticated_refusals_are_counted_per_rpc_into_summaries() {
        let tally = Unauthenticated::default();
        let now = chrono::DateTime::UNIX_EPOCH.naive_utc();
        for _ in 0..UNAUTHENTICATED_ROWS_PER_WINDOW {
            assert!(tally.admit("GetParticipant"));
        }
        assert!(!tally.admit(UNKNOWN_RPC));
        assert!(!tally.admit("GetParticipant"));
        assert!(!tally.admit(UNKNOWN_RPC));
        let summaries = tally.close_window(now);
        let counted: Vec<_> = summaries.iter().map(|e| (e.rpc.as_str(), e.calls)).collect();
        assert_eq!(counted, [("GetParticipant", 1), (UNKNOWN_RPC, 2)]);
        assert!(summaries.iter().all(|e| e.request_id == SUMMARY_REQUEST_ID
            && e.outcome == "UNAUTHENTICATED"
            && e.actor_sub.is_none()
            && e.participant_id.is_none()));
        // A new window has a new budget and nothing counted.
        assert!(tally.admit("GetParticipant"));
        assert_eq!(tally.close_window(now), []);
    }

    #[test]
    fn mutations_and_refusals_are_audited_but_not_allowed_reads_or_shed_calls() {
        assert!(is_audited("PauseParticipant", Code::Ok));
        assert!(is_audited("PauseParticipant", Code::FailedPrecondition));
        assert!(is_audited("GetParticipant", Code::PermissionDenied));
        assert!(is_audited("ListAuditEntries", Code::PermissionDenied));
        assert!(!is_audited("GetParticipant", Code::Ok));
        assert!(!is_audited("PauseParticipant", Code::ResourceExhausted));
    }
}
