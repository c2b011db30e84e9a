//! After every change: the payee's window outcomes recomputed and stored,
//! and the DfE declarations and voids that keep the DfE in line (X5, X6)
//! enqueued, in the change's transaction.

use super::{DFE_GATEWAY, DFE_GATEWAY_SERVICE, plan, schedule_of};
use crate::domain::accrual::{self, Facts, Plan};
use crate::domain::declarations::DfeRecord;
use crate::domain::declarations::{self, Declarant, Earned, Step};
use crate::domain::schedule::{Schedule, ScheduleBook};
use crate::store::{self, OutcomeRow, PayeeRow};
use chrono::{NaiveDate, NaiveDateTime};
use prost::Message;
use steplab_platform::Clock;
use steplab_platform::db::DbConn;
use steplab_platform::error::ServiceError;
use steplab_platform::observability;
use steplab_platform::outbox::{self, NewCommand};
use steplab_proto::steplab::dfe::v1 as dfe;

/// What a recompute needs to keep the DfE declarations in line (X5, X6):
/// "today" of the change, its time, and the request id the outbox carries on.
#[derive(Debug, Clone)]
pub(super) struct Declaring {
    pub(super) today: NaiveDate,
    pub(super) now: NaiveDateTime,
    pub(super) request_id: Option<String>,
}

impl Declaring {
    pub(super) fn new(clock: &Clock) -> Self {
        Declaring { today: clock.today(), now: clock.now(), request_id: observability::current_request_id() }
    }
}

/// Recomputes and stores what each of the payee's windows pays, and
/// enqueues the declarations and voids that keep the DfE in line (X5, X6),
/// in the caller's transaction; answers the facts it computed from.
pub(super) fn recompute(
    conn: &mut DbConn,
    book: &ScheduleBook,
    payee: &PayeeRow,
    declaring: &Declaring,
) -> Result<Facts, ServiceError> {
    recompute_all(conn, book, std::slice::from_ref(payee), declaring)?
        .pop()
        .ok_or_else(|| ServiceError::Internal(format!("no facts computed for {}", payee.participant_id)))
}

/// X5, X6: compares the milestones earned as of today (what GetAccrual
/// answers for today, by the same function) with the declarations made,
/// records and enqueues each declaration and void that is missing, in the
/// caller's transaction. Comparing again changes nothing.
fn sync_declarations(
    conn: &mut DbConn,
    payee: &PayeeRow,
    schedule: &Schedule,
    plan: &Plan<'_>,
    facts: &Facts,
    declaring: &Declaring,
) -> Result<(), ServiceError> {
    let id = payee.participant_id.as_str();
    let declarant = Declarant { kind: payee.kind()?, cohort: payee.cohort, variant: schedule.variant };
    let earned: Vec<(String, String, NaiveDate)> = accrual::earned_by(plan, facts, declaring.today)
        .into_iter()
        .filter_map(|o| match o.outcome {
            accrual::Outcome::Earned { milestone, earned_on, .. } => Some((milestone, o.window.id.clone(), earned_on)),
            accrual::Outcome::Excluded { .. } => None,
        })
        .collect();
    let declared: Vec<_> = store::declarations_of(conn, id)?.iter().map(DfeRecord::declared).collect();
    let undeclared_days: Vec<NaiveDate> = earned
        .iter()
        .filter(|(t, _, _)| declarations::to_declare(&declarant, &declared, t))
        .map(|(_, _, day)| *day)
        .collect();
    // The evidence (the engagement's kind) is read only when something is
    // to be declared: most changes declare nothing.
    let kinds = if undeclared_days.is_empty() {
        Default::default()
    } else {
        store::first_engagement_kinds(conn, id, &undeclared_days)?
    };
    let earned: Vec<Earned> = earned
        .into_iter()
        .map(|(declaration_type, window_id, earned_on)| Earned {
            qualified_by: kinds.get(&earned_on).copied().unwrap_or(crate::domain::EngagementKind::Other),
            declaration_type,
            window_id,
            earned_on,
        })
        .collect();
    for step in declarations::compare(&declarant, &earned, &declared) {
        let command_id = steplab_platform::ids::new_id();
        let (rpc, payload) = match &step {
            Step::Declare(d) => {
                store::declare(conn, id, d, declaring.now)?;
                let request = dfe::DeclareMilestoneRequest {
                    idempotency_key: command_id.clone(),
                    participant_id: id.to_owned(),
                    declaration_type: d.declaration_type.clone(),
                    declaration_date: Some(steplab_platform::date::to_proto(d.declaration_date)),
                    evidence_held: d.evidence_held.clone(),
                    milestone_id: d.window_id.clone(),
                };
                ("DeclareMilestone", request.encode_to_vec())
            }
            Step::Void { declaration_type } => {
                store::void(conn, id, declaration_type, declaring.now)?;
                let request = dfe::VoidMilestoneRequest {
                    idempotency_key: command_id.clone(),
                    participant_id: id.to_owned(),
                    declaration_type: declaration_type.clone(),
                };
                ("VoidMilestone", request.encode_to_vec())
            }
        };
        let command = NewCommand {
            command_id,
            participant_id: id.to_owned(),
            target: DFE_GATEWAY.to_owned(),
            method: format!("{DFE_GATEWAY_SERVICE}{rpc}"),
            payload,
            request_id: declaring.request_id.clone(),
        };
        outbox::enqueue(conn, &command, declaring.now)?;
    }
    Ok(())
}

/// The same for payees sorted by id, loading their facts and stored
/// outcomes a query per table for all of them (the start-up recompute).
pub(super) fn recompute_all(
    conn: &mut DbConn,
    book: &ScheduleBook,
    payees: &[PayeeRow],
    declaring: &Declaring,
) -> Result<Vec<Facts>, ServiceError> {
    let (Some(first), Some(last)) = (payees.first(), payees.last()) else {
        return Ok(Vec::new());
    };
    let all_facts = store::load_facts_of(conn, payees)?;
    let mut stored = store::stored_outcomes(conn, &first.participant_id, &last.participant_id)?;
    let mut totals = store::TotalsDelta::default();
    for (payee, facts) in payees.iter().zip(&all_facts) {
        let schedule = schedule_of(book, payee)?;
        let plan = plan(book, schedule, facts)?;
        let rows = accrual::outcomes(&plan, facts, None)
            .iter()
            .map(|o| OutcomeRow::from_outcome(&payee.participant_id, o))
            .collect();
        let before = stored.remove(&payee.participant_id).unwrap_or_default();
        store::write_outcomes(conn, &payee.participant_id, before, rows, &mut totals)?;
        sync_declarations(conn, payee, schedule, &plan, facts, declaring)?;
    }
    totals.apply(conn)?;
    Ok(all_facts)
}
