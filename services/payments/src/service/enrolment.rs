//! EnrolPayee: the participant service registers a payee on a schedule.

use super::recompute::recompute;
use super::{Acked, Payments, Prepared, acked, denied};
use crate::convert;
use crate::domain::policy;
use crate::domain::schedule::Variant;
use crate::domain::{PayeeKind, PaymentsRules};
use crate::store::{self, PayeeRow};
use prost::Message;
use steplab_platform::error::ServiceError;
use steplab_platform::idempotency;
use steplab_platform::{Caller, FieldViolation, FieldViolations};
use steplab_proto::steplab::payments::v1 as pb;

impl Payments {
    pub async fn enrol_payee(
        &self,
        caller: Caller,
        req: pb::EnrolPayeeRequest,
    ) -> Result<pb::EnrolPayeeResponse, ServiceError> {
        policy::may_send_commands(&caller).map_err(|d| denied(&caller, "EnrolPayee", d))?;
        let command = self.prepare_enrol_payee(&req)?;
        self.run(command).await
    }

    pub(super) fn prepare_enrol_payee(
        &self,
        req: &pb::EnrolPayeeRequest,
    ) -> Result<Prepared<pb::EnrolPayeeResponse>, ServiceError> {
        const RPC: &str = "EnrolPayee";
        let cmd = convert::enrol(req)?;
        let schedule = self.book.schedule(&cmd.schedule_id, cmd.cohort).ok_or_else(|| {
            ServiceError::not_found(
                "schedule",
                cmd.schedule_id.clone(),
                format!(
                    "there is no schedule {} for cohort {}: ListSchedules lists the schedules of each cohort",
                    cmd.schedule_id, cmd.cohort
                ),
            )
        })?;
        if schedule.variant == Variant::Replacement && cmd.kind != PayeeKind::Mentor {
            return Err(FieldViolations::from(FieldViolation::new(
                "schedule",
                format!(
                    "{} is a replacement schedule, for mentors only: enrol an ECT on a standard, extended or reduced schedule",
                    cmd.schedule_id
                ),
            ))
            .into());
        }
        let request_bytes = req.encode_to_vec();
        let book = self.book.clone();
        let idempotency_key = req.idempotency_key.clone();
        Ok(Prepared::new(RPC, cmd.participant_id.to_string(), move |conn, declaring| {
            let now = declaring.now;
            let ran = idempotency::once::<PaymentsRules, _>(conn, Some(&cmd.key), RPC, &request_bytes, now, |conn| {
                let row = PayeeRow {
                    participant_id: cmd.participant_id.to_string(),
                    participant_kind: cmd.kind.as_str().to_owned(),
                    schedule_id: cmd.schedule_id.clone(),
                    cohort: cmd.cohort,
                    funding_eligible: cmd.funding_eligible,
                    school_id: cmd.school_id.to_string(),
                    delivery_partner_id: cmd.delivery_partner_id.to_string(),
                    version: 1,
                    created_at: now,
                };
                match store::lock_payee(conn, &cmd.participant_id)? {
                    // Compared with the enrolment as made, not later moves.
                    Some(existing) if PayeeRow { version: 1, created_at: now, ..existing.clone() } == row => {}
                    Some(existing) => {
                        return Err(ServiceError::AlreadyExists(format!(
                            "participant {} is already enrolled on {}/{} ({}, delivery partner {}, funding eligible {}): a move is SetParticipantScope, a new schedule needs an operator",
                            existing.participant_id,
                            existing.schedule_id,
                            existing.cohort,
                            existing.participant_kind,
                            existing.delivery_partner_id,
                            existing.funding_eligible
                        )));
                    }
                    None => {
                        store::insert_payee(conn, &row)?;
                        recompute(conn, &book, &row, declaring)?;
                    }
                }
                let response = pb::EnrolPayeeResponse::acked(convert::ack(&idempotency_key, false));
                Ok(response)
            })?;
            Ok(acked(ran))
        }))
    }
}
