//! What the receivers' `ApplyCommands` share (content release, payments and
//! the DfE gateway; issue 18):
//! a batch of encoded commands, each decoded as the RPC it names, read and
//! run by that RPC's own code, in order, in one write transaction. A command
//! refused (or undecodable) keeps none of its writes and gets the code,
//! message and ErrorInfo reason its unary RPC would have answered, while the
//! others keep theirs (see [`apply_batch`]: savepoints only once a command
//! is refused); a fault of the service (the database unreachable or full, a
//! lost race, an internal error) fails the whole call, so nothing is applied
//! and the relay retries the batch. Each command leaves the audit entry its
//! unary RPC would have left (see [`crate::uow`]), and the batch none of its
//! own.

use crate::audit::{CommandCall, NewEntry};
use crate::call;
use crate::db::{Database, DbConn, DbError};
use crate::error::{FieldViolation, FieldViolations, ServiceError};
use diesel::Connection;
use prost::Message;
pub use steplab_proto::steplab::common::v1::EncodedCommand;
use steplab_proto::steplab::common::v1::{CommandAck, CommandResult};
use steplab_proto::steplab::{content::v1 as content, dfe::v1 as dfe, payments::v1 as payments};
use tonic_types::StatusExt;

/// The most commands one batch takes: enough to keep the relay's pipe
/// full, few enough that one transaction holds the write lock briefly.
pub const MAX_BATCH_COMMANDS: usize = 1000;

/// Checks a batch's size: 1 to [`MAX_BATCH_COMMANDS`] commands.
pub fn read_list(count: usize) -> Result<(), FieldViolations> {
    let mut v = FieldViolations::default();
    match count {
        0 => v.push(FieldViolation::new("commands", "is empty: send at least one command")),
        n if n > MAX_BATCH_COMMANDS => v.push(FieldViolation::new(
            "commands",
            format!("has {n} commands: at most {MAX_BATCH_COMMANDS} are applied in one batch"),
        )),
        _ => {}
    }
    v.finish(|| Some(()))
}

/// A command request that can travel in a batch: what its result and audit
/// entry name before it is read.
pub trait BatchedRequest: Message + Default {
    fn idempotency_key(&self) -> &str;
    fn participant_id(&self) -> &str;
}

/// Implements [`BatchedRequest`] for requests with both fields (here, as
/// Rust's orphan rule asks).
macro_rules! batched_requests {
    ($($request:ty),* $(,)?) => {$(
        impl BatchedRequest for $request {
            fn idempotency_key(&self) -> &str {
                &self.idempotency_key
            }
            fn participant_id(&self) -> &str {
                &self.participant_id
            }
        }
    )*};
}

batched_requests!(
    content::EnrolLearnerRequest,
    content::PlaceHoldRequest,
    content::LiftHoldRequest,
    content::RevokeAccessRequest,
    content::RestoreAccessRequest,
    content::SetReleaseStartRequest,
    content::SetParticipantScopeRequest,
    payments::EnrolPayeeRequest,
    payments::SuspendAccrualRequest,
    payments::ResumeAccrualRequest,
    payments::EndAccrualRequest,
    payments::ReopenAccrualRequest,
    payments::SetAreaCoveredRequest,
    payments::SetParticipantScopeRequest,
    payments::RecordDeclarationStateRequest,
    dfe::TrackParticipantRequest,
    dfe::ReportStatusChangeRequest,
    dfe::DeclareMilestoneRequest,
    dfe::VoidMilestoneRequest,
);

/// One command of a batch as read: the RPC it stands for, what its result
/// and audit entry name, and the prepared command or why it cannot run.
pub struct Decoded<P> {
    /// One of the service's command RPCs, or [`call::UNKNOWN_RPC`].
    pub rpc: &'static str,
    pub idempotency_key: String,
    pub participant_id: String,
    /// The command's own request id, else the call's.
    pub request_id: Option<String>,
    pub prepared: Result<P, ServiceError>,
}

/// Decodes `encoded` as `M` (the request of `rpc`) and prepares it with
/// that RPC's own code.
pub fn decode<M, P, E>(
    encoded: &EncodedCommand,
    rpc: &'static str,
    prepare: impl FnOnce(&M) -> Result<P, E>,
) -> Decoded<P>
where
    M: BatchedRequest,
    E: Into<ServiceError>,
{
    let request_id = Some(encoded.request_id.clone()).filter(|id| !id.is_empty());
    match M::decode(encoded.request.as_slice()) {
        Ok(request) => Decoded {
            rpc,
            idempotency_key: request.idempotency_key().to_owned(),
            participant_id: request.participant_id().to_owned(),
            request_id,
            prepared: prepare(&request).map_err(Into::into),
        },
        Err(e) => Decoded {
            rpc,
            idempotency_key: String::new(),
            participant_id: String::new(),
            request_id,
            prepared: Err(FieldViolation::new("request", format!("is not an encoded {rpc}Request: {e}")).into()),
        },
    }
}

/// A command naming an RPC that is none of `known`.
pub fn unknown<P>(encoded: &EncodedCommand, known: &[&str]) -> Decoded<P> {
    let named = if encoded.rpc.is_empty() { "nothing".to_owned() } else { format!("{:?}", encoded.rpc) };
    let message = format!("names {named}: a batch carries only {}", known.join(", "));
    Decoded {
        rpc: call::UNKNOWN_RPC,
        idempotency_key: String::new(),
        participant_id: String::new(),
        request_id: Some(encoded.request_id.clone()).filter(|id| !id.is_empty()),
        prepared: Err(FieldViolation::new("rpc", message).into()),
    }
}

/// Reads one encoded command with the service's own RPCs: each arm names
/// the RPC, its request type and how that RPC prepares it.
///
/// ```ignore
/// steplab_platform::decode_command!(encoded;
///     "PlaceHold" => pb::PlaceHoldRequest => |r| self.prepare_place_hold(r),
/// )
/// ```
#[macro_export]
macro_rules! decode_command {
    ($encoded:expr; $($rpc:literal => $request:ty => $prepare:expr),+ $(,)?) => {{
        let encoded: &$crate::batch::EncodedCommand = $encoded;
        match encoded.rpc.as_str() {
            $($rpc => $crate::batch::decode::<$request, _, _>(encoded, $rpc, $prepare),)+
            _ => $crate::batch::unknown(encoded, &[$($rpc),+]),
        }
    }};
}

/// A batch once applied: one result per command, and the audit entry of
/// each, to commit with it.
struct Applied {
    results: Vec<CommandResult>,
    entries: Vec<NewEntry>,
}

/// Applies a batch on `db` in one write transaction: the commands that
/// `decode` reads, in order, each run by `run`; answers one result per
/// command, and leaves each command's audit entry (see
/// [`Database::write_commands`]).
///
/// A savepoint per command, so that a refusal undoes that command's writes
/// only, cost two statements per command, on PostgreSQL two round trips and
/// a sixth of a deferral's statements across the receivers (issue 18). Yet
/// the relay's commands are almost never refused. So the batch is first run
/// whole, without them; should a command be refused, that attempt is rolled
/// back entirely and the batch is decoded again and run with a savepoint per
/// command, as before. Both attempts answer the same: a command's outcome
/// depends only on the commands before it, and the first attempt keeps
/// nothing.
pub async fn apply_batch<P, R>(
    db: &Database,
    decode: impl Fn() -> Vec<Decoded<P>>,
    run: R,
) -> Result<Vec<CommandResult>, ServiceError>
where
    P: Send + 'static,
    R: FnMut(&mut DbConn, P) -> Result<CommandAck, ServiceError> + Clone + Send + 'static,
{
    let (commands, whole_run) = (decode(), run.clone());
    let whole = db
        .write_commands(move |conn| {
            let applied = apply(conn, commands, Apart::NotUnlessRefused, whole_run)?;
            Ok((applied.results, applied.entries))
        })
        .await;
    match whole {
        Ok(results) => Ok(results),
        Err(Stop::Fault(error)) => Err(error),
        Err(Stop::Refused) => {
            tracing::debug!("a command of the batch was refused: applying it again, each command in a savepoint");
            let commands = decode();
            db.write_commands(move |conn| {
                let applied = apply(conn, commands, Apart::EachInASavepoint, run).map_err(|stop| match stop {
                    Stop::Fault(error) => error,
                    Stop::Refused => ServiceError::Internal("a refusal stopped a batch run in savepoints".into()),
                })?;
                Ok((applied.results, applied.entries))
            })
            .await
        }
    }
}

/// How a batch keeps its commands' writes apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Apart {
    /// Not at all: the first refusal stops the batch ([`Stop::Refused`]).
    NotUnlessRefused,
    /// Each command in its own savepoint.
    EachInASavepoint,
}

/// Why [`apply`] stopped before the end of its batch; as the error of the
/// first attempt's unit of work, it rolls that attempt back.
#[derive(Debug)]
enum Stop {
    /// A fault of the service: the batch fails.
    Fault(ServiceError),
    /// A command was refused in a batch run without savepoints: its writes
    /// cannot be undone alone, so the attempt is rolled back.
    Refused,
}

impl From<DbError> for Stop {
    fn from(error: DbError) -> Self {
        Stop::Fault(error.into())
    }
}

/// Runs `commands` in order in the caller's transaction, kept `apart` as
/// asked, with `run`. A refusal is that command's result (with savepoints)
/// or stops the batch (without); a fault of the service is the batch's
/// error (the caller's transaction then rolls back everything).
fn apply<P>(
    conn: &mut DbConn,
    commands: Vec<Decoded<P>>,
    apart: Apart,
    mut run: impl FnMut(&mut DbConn, P) -> Result<CommandAck, ServiceError>,
) -> Result<Applied, Stop> {
    let call = call::current();
    let recorded_at = chrono::Utc::now().naive_utc();
    let mut applied = Applied { results: Vec::with_capacity(commands.len()), entries: Vec::new() };
    for command in commands {
        let Decoded { rpc, idempotency_key, participant_id, request_id, prepared } = command;
        let answer = match prepared {
            // Refused before it ran (undecodable, invalid): it wrote
            // nothing, so it is answered alone either way.
            Err(refusal) => Err(refusal),
            Ok(prepared) if apart == Apart::NotUnlessRefused => match run(conn, prepared) {
                Err(refusal) if !is_fault(&refusal) => return Err(Stop::Refused),
                ran => ran,
            },
            // A savepoint: a refusal undoes this command's writes only.
            Ok(prepared) => conn.transaction::<_, ServiceError, _>(|conn| run(conn, prepared)),
        };
        let (result, code, refusal) = match answer {
            Ok(ack) => (CommandResult { idempotency_key, ack: Some(ack), ..Default::default() }, tonic::Code::Ok, None),
            Err(error) if is_fault(&error) => return Err(Stop::Fault(error)),
            Err(refusal) => {
                let status = tonic::Status::from(refusal);
                let reason = status.get_details_error_info().map(|info| info.reason).unwrap_or_default();
                let result = CommandResult {
                    idempotency_key,
                    code: status.code() as i32,
                    message: status.message().to_owned(),
                    reason,
                    ack: None,
                };
                (result, status.code(), call::refusal_of(&status))
            }
        };
        let entry = NewEntry::for_command(
            call.as_deref(),
            CommandCall { rpc, participant_id: &participant_id, request_id: request_id.as_deref(), refusal },
            code,
            recorded_at,
        );
        applied.entries.push(entry);
        applied.results.push(result);
    }
    Ok(applied)
}

/// A fault of the service, not a refusal of the command: the unary RPC
/// would have answered it as worth retrying (or as our bug), so the whole
/// batch fails and is retried rather than a command being answered with it.
fn is_fault(error: &ServiceError) -> bool {
    match error {
        ServiceError::InvalidArgument(_)
        | ServiceError::PermissionDenied(_)
        | ServiceError::NotFound(_)
        | ServiceError::Missing(_)
        | ServiceError::AlreadyExists(_)
        | ServiceError::Rule { .. } => false,
        ServiceError::Aborted(_)
        | ServiceError::Unavailable(_)
        | ServiceError::PeerUnavailable(_)
        | ServiceError::StorageFull(_)
        | ServiceError::DeliveryBacklog { .. }
        | ServiceError::Internal(_) => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(v: FieldViolations) -> Vec<String> {
        v.0.into_iter().map(|v| v.field).collect()
    }

    #[test]
    fn a_batch_holds_between_one_and_a_thousand_commands() {
        assert_eq!(fields(read_list(0).expect_err("empty")), ["commands"]);
        assert_eq!(fields(read_list(MAX_BATCH_COMMANDS + 1).expect_err("too many")), ["commands"]);
        assert_eq!(read_list(MAX_BATCH_COMMANDS), Ok(()));
        assert_eq!(read_list(1), Ok(()));
    }

    #[test]
    fn an_unknown_rpc_and_undecodable_bytes_are_invalid_arguments_of_that_command() {
        let encoded = EncodedCommand { rpc: "DropTables".into(), request: vec![], request_id: "r-1".into() };
        let unknown: Decoded<()> = unknown(&encoded, &["PlaceHold", "LiftHold"]);
        assert_eq!(unknown.rpc, call::UNKNOWN_RPC);
        assert_eq!(unknown.request_id.as_deref(), Some("r-1"));
        let Err(ServiceError::InvalidArgument(v)) = unknown.prepared else { panic!("not invalid") };
        assert_eq!(v.0[0].field, "rpc");
        assert!(v.0[0].description.contains("PlaceHold, LiftHold"), "{}", v.0[0].description);

        let garbage =
            EncodedCommand { rpc: "PlaceHold".into(), request: vec![0xff, 0xff, 0xff], request_id: "".into() };
        let read = decode::<content::PlaceHoldRequest, (), ServiceError>(&garbage, "PlaceHold", |_| Ok(()));
        assert_eq!((read.rpc, read.idempotency_key.as_str(), read.request_id), ("PlaceHold", "", None));
        assert!(matches!(read.prepared, Err(ServiceError::InvalidArgument(v)) if v.0[0].field == "request"));
    }

    #[test]
    fn faults_fail_the_batch_and_refusals_answer_the_command() {
        assert!(is_fault(&ServiceError::Unavailable("down".into())));
        assert!(is_fault(&ServiceError::Aborted("race".into())));
        assert!(!is_fault(&ServiceError::NotFound("gone".into())));
        assert!(!is_fault(&ServiceError::AlreadyExists("there".into())));
    }
}
