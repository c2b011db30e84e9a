//! Withdrawals (W1..W10) and what a DPL's approval of a reinstatement or a
//! kept mentor (W6, W9) changes.

use super::{Call, Registry, current, load, load_in_reach, mentor_circle, mentor_of_record_now};
use crate::convert;
use crate::domain::ParticipantKind;
use crate::domain::handover;
use crate::domain::lifecycle::{self, Decision, MentorCircle, SchoolCircle, Withdrawal};
use crate::domain::policy;
use crate::domain::view::ParticipantRecord;
use crate::store;
use chrono::NaiveDate;
use steplab_platform::Caller;
use steplab_platform::db::DbConn;
use steplab_platform::error::ServiceError;
use steplab_proto::steplab::participant::v1 as pb;

/// The ECT's mentor of record on `date` (M5), with their circle.
fn mentor_of(
    conn: &mut DbConn,
    ect: &ParticipantRecord,
    date: NaiveDate,
) -> Result<Option<MentorCircle>, ServiceError> {
    let Some(mentor_id) = ect.as_of(date).and_then(|v| v.mentor_of_record) else {
        return Ok(None);
    };
    let mentor = load(conn, &mentor_id)?;
    Ok(Some(mentor_circle(conn, mentor)?))
}

/// W9: an approved reinstatement; the mentor withdrawn with the ECT comes
/// back when asked, otherwise the ECF Lead hears the ECT has no mentor.
/// Answers the decision and the mentor it may touch.
pub(super) fn reinstatement(
    conn: &mut DbConn,
    p: &ParticipantRecord,
    request_id: &str,
    with_mentor: bool,
    today: NaiveDate,
) -> Result<(Decision, Option<ParticipantRecord>), ServiceError> {
    let mentor = mentor_of_record_now(conn, p, today)?;
    let mut decision = lifecycle::reinstate(p, request_id, today, None)?;
    let after = handover::after_reinstatement(p, mentor.as_ref(), with_mentor, request_id, today)?;
    decision.events.extend(after.events);
    decision.commands.extend(after.commands);
    decision.notifications.extend(after.notifications);
    Ok((decision, mentor))
}

/// W6: keeping a mentor the cascade already withdrew reinstates them;
/// otherwise the approval stops a later cascade.
pub(super) fn keeping_mentor(
    mentor: &ParticipantRecord,
    request_id: &str,
    today: NaiveDate,
) -> Result<Decision, ServiceError> {
    let cascaded = mentor.timeline().withdrawal_on(today).is_some_and(|w| w.cascaded_from.is_some());
    if cascaded { Ok(lifecycle::reinstate(mentor, request_id, today, None)?) } else { Ok(Decision::default()) }
}

impl Registry {
    pub async fn withdraw(
        &self,
        caller: Caller,
        req: pb::WithdrawParticipantRequest,
    ) -> Result<pb::WithdrawParticipantResponse, ServiceError> {
        let command = convert::withdraw(&req)?;
        let (reason, date, note) = (command.reason, command.withdrawal_date, command.note);
        let replacement_id = command.replacement_induction_coordinator_id;
        let who = caller.clone();
        self.act(
            Call {
                caller,
                rpc: "WithdrawParticipant",
                request: &req,
                request_id: &req.idempotency_key,
                validate_only: req.validate_only,
            },
            command.participant_id,
            |c, p| policy::may_manage_lifecycle(c, p, "withdraw participants"),
            move |conn, p, today| {
                let withdrawal_date = date.unwrap_or(today);
                let circle = if p.kind == ParticipantKind::Ect { mentor_of(conn, p, withdrawal_date)? } else { None };
                // W8: the replacement induction coordinator, within the caller's reach.
                let replacement = match &replacement_id {
                    Some(id) => {
                        let (replacement, _) = load_in_reach(conn, &who, id, today)?;
                        handover::check_replacement_induction_coordinator(p, &replacement, withdrawal_date, today)?;
                        Some(replacement)
                    }
                    None => None,
                };
                let now = current(p, today)?;
                let school = SchoolCircle {
                    others: store::school_members(conn, &now.school_id)?.into_iter().filter(|o| o.id != p.id).collect(),
                    school_id: now.school_id,
                    delivery_partner_id: now.delivery_partner_id,
                };
                let request = Withdrawal { reason, withdrawal_date, note };
                let mut decision = lifecycle::withdraw(p, request, circle.as_ref(), &school, today)?;
                let mut touched = circle.map(|c| vec![c.mentor]).unwrap_or_default();
                // W8, M2, M3: the covers the leaver held pass to the replacement or end.
                if p.kind != ParticipantKind::Ect {
                    let covers = handover::covers_after_withdrawal(
                        p,
                        replacement.as_ref(),
                        &school.others,
                        withdrawal_date,
                        today,
                    )?;
                    for e in &covers {
                        let known = e.participant_id == p.id || touched.iter().any(|t| t.id == e.participant_id);
                        if !known {
                            touched.push(load(conn, &e.participant_id)?);
                        }
                    }
                    decision.events.extend(covers);
                }
                Ok((decision, touched))
            },
            |participant, cascaded| pb::WithdrawParticipantResponse {
                effects: None,
                participant: Some(participant),
                cascaded_participant_ids: cascaded,
            },
        )
        .await
    }
}
