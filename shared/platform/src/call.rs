//! What the platform keeps about the call being served: its request id and
//! RPC, who is calling, the participant it is about, why it was refused and
//! whether its audit entry has committed. The layer stack creates it, the
//! auth interceptor, the handler and the database layer add to it, and the
//! audit log reads it. It depends on nothing but [`crate::identity`], so
//! every other module can reach it without reaching into observability.

use crate::identity::{Caller, Role};
use std::cell::RefCell;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use tonic::Status;
use tonic_types::StatusExt;

/// The metadata key of the request id.
pub const REQUEST_ID_HEADER: &str = "x-request-id";

/// The RPC name of a path that is none of the service's own RPCs, so a
/// caller cannot make the service store or label arbitrary text.
pub const UNKNOWN_RPC: &str = "unknown";

/// What is known about the call being served, shared by the layer, the auth
/// interceptor and the handler.
#[derive(Debug)]
pub struct CallContext {
    pub request_id: String,
    pub rpc: String,
    actor: OnceLock<(String, Role)>,
    participant_id: OnceLock<String>,
    /// Why the call was refused, for its audit entry.
    refusal: Mutex<Option<Refusal>>,
    /// Set once the call's audit entry has committed.
    audited: AtomicBool,
}

/// What an audit entry may say about a refusal: never the message, which can
/// echo personal data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// A rule's ErrorInfo reason, e.g. `PAUSE_TOO_LONG`.
    Rule(String),
    /// The malformed fields, comma separated.
    Fields(String),
}

/// The longest participant id a call context keeps; longer is not an id.
const MAX_PARTICIPANT_ID: usize = 100;

impl CallContext {
    pub fn new(request_id: String, rpc: String) -> Self {
        Self {
            request_id,
            rpc,
            actor: OnceLock::new(),
            participant_id: OnceLock::new(),
            refusal: Mutex::new(None),
            audited: AtomicBool::new(false),
        }
    }

    /// Who is calling, once the auth interceptor has verified the token.
    pub fn actor(&self) -> Option<(&str, Role)> {
        self.actor.get().map(|(sub, role)| (sub.as_str(), *role))
    }

    pub fn participant_id(&self) -> Option<&str> {
        self.participant_id.get().map(String::as_str)
    }

    pub fn refusal(&self) -> Option<Refusal> {
        self.refusal.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
    }

    /// A mutating call whose audit entry is not yet committed: its next
    /// successful write transaction carries the entry.
    pub fn awaits_audit_entry(&self) -> bool {
        !is_read(&self.rpc) && !self.is_audited()
    }

    pub fn is_audited(&self) -> bool {
        self.audited.load(Ordering::Acquire)
    }

    /// Called once the transaction holding the call's audit entry committed.
    pub fn mark_audited(&self) {
        self.audited.store(true, Ordering::Release);
    }

    /// The transaction that held the call's audit entry did not commit
    /// after all (a group commit failed, see [`crate::db`]): its next write,
    /// or the call's layer, records it.
    pub(crate) fn unmark_audited(&self) {
        self.audited.store(false, Ordering::Release);
    }

    /// Records who is calling (the auth interceptor does).
    pub fn set_actor(&self, caller: &Caller) {
        let _ = self.actor.set((caller.sub.clone(), caller.role()));
    }

    /// Records the participant the call is about; the first one wins. A
    /// UUID is kept in canonical form (so an upper-case id in a request is
    /// found under the id the service issued); anything empty, long or
    /// unprintable cannot be an id and is not kept, so the audit log never
    /// stores arbitrary text from a request.
    pub fn set_participant(&self, participant_id: &str) {
        if let Some(id) = usable_participant_id(participant_id) {
            let _ = self.participant_id.set(id);
        }
    }

    /// Records why the call is refused (the layer stack does, from the answer).
    pub fn set_refusal(&self, refusal: Refusal) {
        *self.refusal.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = Some(refusal);
    }
}

/// A participant id as an audit entry may keep it (see
/// [`CallContext::set_participant`]): a UUID in canonical form, `None` for
/// anything that cannot be an id.
pub fn usable_participant_id(participant_id: &str) -> Option<String> {
    let id = match uuid::Uuid::parse_str(participant_id) {
        Ok(uuid) => uuid.hyphenated().to_string(),
        Err(_) => participant_id.to_owned(),
    };
    let usable = !id.is_empty() && id.len() <= MAX_PARTICIPANT_ID && id.bytes().all(|b| b.is_ascii_graphic());
    usable.then_some(id)
}

tokio::task_local! {
    static CALL: Arc<CallContext>;
}

thread_local! {
    static BLOCKING_CALL: RefCell<Option<Arc<CallContext>>> = const { RefCell::new(None) };
}

/// The call being served on this task (or in this blocking closure), if any.
pub fn current() -> Option<Arc<CallContext>> {
    CALL.try_with(Arc::clone).ok().or_else(|| BLOCKING_CALL.with(|c| c.borrow().clone()))
}

/// The request id of the call being served, if any.
pub fn current_request_id() -> Option<String> {
    current().map(|c| c.request_id.clone())
}

/// Notes the participant the current call is about, for its log line.
pub fn note_participant(participant_id: &str) {
    if let Some(call) = current() {
        call.set_participant(participant_id);
    }
}

/// Runs blocking `f` with `call` as the current call (for closures sent to
/// the blocking pool, where the task-local is not visible).
pub fn in_call<T>(call: Option<Arc<CallContext>>, f: impl FnOnce() -> T) -> T {
    let previous = BLOCKING_CALL.with(|c| c.replace(call));
    let result = f();
    BLOCKING_CALL.with(|c| *c.borrow_mut() = previous);
    result
}

/// Reads and previews (AIP-163 dry runs of commands) change nothing; every
/// other RPC is a mutating call.
pub fn is_read(rpc: &str) -> bool {
    ["Get", "List", "Watch", "Check", "Preview"].iter().any(|prefix| rpc.starts_with(prefix))
}

/// `InvalidArgument` -> `INVALID_ARGUMENT`, as gRPC names its codes.
pub fn code_name(code: tonic::Code) -> &'static str {
    use tonic::Code;
    // Spelled out rather than derived from `Debug`: every call names its
    // code in a metric label and an audit entry, and this costs nothing.
    match code {
        Code::Ok => "OK",
        Code::Cancelled => "CANCELLED",
        Code::Unknown => "UNKNOWN",
        Code::InvalidArgument => "INVALID_ARGUMENT",
        Code::DeadlineExceeded => "DEADLINE_EXCEEDED",
        Code::NotFound => "NOT_FOUND",
        Code::AlreadyExists => "ALREADY_EXISTS",
        Code::PermissionDenied => "PERMISSION_DENIED",
        Code::ResourceExhausted => "RESOURCE_EXHAUSTED",
        Code::FailedPrecondition => "FAILED_PRECONDITION",
        Code::Aborted => "ABORTED",
        Code::OutOfRange => "OUT_OF_RANGE",
        Code::Unimplemented => "UNIMPLEMENTED",
        Code::Internal => "INTERNAL",
        Code::Unavailable => "UNAVAILABLE",
        Code::DataLoss => "DATA_LOSS",
        Code::Unauthenticated => "UNAUTHENTICATED",
    }
}

/// Scopes `future` to `call`: [`current`] finds it anywhere in the future.
pub(crate) async fn scope<F: std::future::Future>(call: Arc<CallContext>, future: F) -> F::Output {
    CALL.scope(call, future).await
}

/// Why `status` refuses the call, as its audit entry may say it: the
/// ErrorInfo reason of a rule refusal, the fields of a malformed request.
/// Read from the status the caller is answered with (see
/// [`crate::error::failed_precondition`] and [`crate::error::invalid_argument`]),
/// never from its message, which can echo personal data.
pub fn refusal_of(status: &Status) -> Option<Refusal> {
    match status.code() {
        tonic::Code::FailedPrecondition => status.get_details_error_info().map(|info| Refusal::Rule(info.reason)),
        tonic::Code::InvalidArgument => status
            .get_details_bad_request()
            .map(|bad| Refusal::Fields(field_list(bad.field_violations.iter().map(|v| v.field.as_str())))),
        _ => None,
    }
}

/// The longest field list an audit entry keeps (a request with thousands of
/// bad repeated fields must not make a huge row).
const MAX_FIELD_LIST: usize = 500;

/// The malformed fields, comma separated, each once, cut short with `...`.
fn field_list<'a>(fields: impl IntoIterator<Item = &'a str>) -> String {
    let mut list = String::new();
    for field in fields {
        if list.split(',').any(|seen| seen == field) {
            continue;
        }
        if list.len() + field.len() + 1 > MAX_FIELD_LIST {
            list.push_str(",...");
            break;
        }
        if !list.is_empty() {
            list.push(',');
        }
        list.push_str(field);
    }
    list
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::{FieldViolation, FieldViolations, failed_precondition, invalid_argument};

    #[test]
    fn reads_are_told_from_mutations() {
        assert!(is_read("GetParticipant") && is_read("ListRequests") && is_read("WatchEvents"));
        assert!(is_read("PreviewCommands"), "a preview changes nothing, so it is not audited as a change");
        assert!(!is_read("PauseParticipant") && !is_read("RetryParkedCommands") && !is_read("RecordReturn"));
    }

    #[test]
    fn only_something_that_can_be_an_id_is_kept_as_the_participant() {
        let call = CallContext::new("r".into(), "Pause".into());
        call.set_participant("");
        call.set_participant(&"x".repeat(MAX_PARTICIPANT_ID + 1));
        call.set_participant("Ada Lovelace");
        assert_eq!(call.participant_id(), None);
        call.set_participant("0199C1A2-7B3C-7D4E-8F90-A1B2C3D4E5F6");
        assert_eq!(call.participant_id(), Some("0199c1a2-7b3c-7d4e-8f90-a1b2c3d4e5f6"));
    }

    #[test]
    fn a_mutating_call_awaits_its_audit_entry_until_marked() {
        let read = CallContext::new("r".into(), "GetParticipant".into());
        assert!(!read.awaits_audit_entry());
        let write = CallContext::new("r".into(), "PauseParticipant".into());
        assert!(write.awaits_audit_entry());
        write.mark_audited();
        assert!(!write.awaits_audit_entry() && write.is_audited());
    }

    #[test]
    fn the_call_context_reaches_blocking_closures() {
        let call = Arc::new(CallContext::new("r-1".into(), "Pause".into()));
        assert_eq!(current_request_id(), None);
        let seen = in_call(Some(call), || {
            note_participant("p-1");
            current().map(|c| (c.request_id.clone(), c.participant_id().map(str::to_owned)))
        });
        assert_eq!(seen, Some(("r-1".to_owned(), Some("p-1".to_owned()))));
        assert_eq!(current_request_id(), None);
    }

    fn fields(violations: &FieldViolations) -> impl Iterator<Item = &str> {
        violations.0.iter().map(|v| v.field.as_str())
    }

    #[test]
    fn the_audited_field_list_names_each_field_once_and_stays_short() {
        let mut v = FieldViolations::default();
        v.push(FieldViolation::new("start_date", "a"));
        v.push(FieldViolation::new("note", "b"));
        v.push(FieldViolation::new("start_date", "c"));
        assert_eq!(field_list(fields(&v)), "start_date,note");
        let mut many = FieldViolations::default();
        for i in 0..1000 {
            many.push(FieldViolation::new(format!("modules[{i}]"), "bad"));
        }
        let list = field_list(fields(&many));
        assert!(list.len() <= MAX_FIELD_LIST + 4 && list.ends_with(",..."), "{list}");
    }

    #[test]
    fn the_refusal_is_read_from_the_answers_details_never_its_message() {
        let rule = failed_precondition("steplab.participant.v1", "PAUSE_TOO_LONG", "Ada's pause is too long");
        assert_eq!(refusal_of(&rule), Some(Refusal::Rule("PAUSE_TOO_LONG".into())));
        let mut v = FieldViolations::default();
        v.push(FieldViolation::new("registered_on", "2026-02-30 is not a date"));
        v.push(FieldViolation::new("full_name", "is required"));
        assert_eq!(refusal_of(&invalid_argument(&v)), Some(Refusal::Fields("registered_on,full_name".into())));
        assert_eq!(refusal_of(&Status::failed_precondition("no details")), None);
        assert_eq!(refusal_of(&Status::aborted("retry")), None);
    }
}
