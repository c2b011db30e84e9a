//! RecordDeclarationState: the DfE gateway reports the DfE's answer to a
//! declaration payments made (X5).

use super::recompute::Declaring;
use super::{Acked, Payments, Prepared, acked, denied, not_enrolled};
use crate::convert;
use crate::domain::PaymentsRules;
use crate::domain::commands;
use crate::domain::policy;
use crate::store;
use prost::Message;
use steplab_platform::error::ServiceError;
use steplab_platform::idempotency;
use steplab_platform::{Caller, FieldViolations};
use steplab_proto::steplab::payments::v1 as pb;

impl Payments {
    /// X5: the DfE's answer to a declaration payments made, reported by the
    /// DfE gateway: stored with the declaration (the latest answer wins).
    pub async fn record_declaration_state(
        &self,
        caller: Caller,
        req: pb::RecordDeclarationStateRequest,
    ) -> Result<pb::RecordDeclarationStateResponse, ServiceError> {
        policy::may_record_declaration_state(&caller).map_err(|d| denied(&caller, "RecordDeclarationState", d))?;
        let command = self.prepare_record_declaration_state(&req)?;
        let declaring = Declaring::new(&self.clock);
        // Nothing for the relay to send: the DfE's own answer is only stored.
        self.db.write(move |conn| (command.run)(conn, &declaring)).await
    }

    pub(super) fn prepare_record_declaration_state(
        &self,
        req: &pb::RecordDeclarationStateRequest,
    ) -> Result<Prepared<pb::RecordDeclarationStateResponse>, FieldViolations> {
        const RPC: &str = "RecordDeclarationState";
        let cmd = convert::declaration_state(req)?;
        let request_bytes = req.encode_to_vec();
        let idempotency_key = req.idempotency_key.clone();
        Ok(Prepared::new(RPC, cmd.participant_id.to_string(), move |conn, declaring| {
            let now = declaring.now;
            store::lock_payee(conn, &cmd.participant_id)?.ok_or_else(|| not_enrolled(&cmd.participant_id))?;
            let ran = idempotency::once::<PaymentsRules, _>(conn, Some(&cmd.key), RPC, &request_bytes, now, |conn| {
                let known = store::set_dfe_state(
                    conn,
                    &cmd.participant_id,
                    &cmd.declaration_type,
                    &cmd.dfe_declaration_id,
                    &cmd.state,
                    now,
                )?;
                commands::declaration_made(known, &cmd.declaration_type, &cmd.participant_id)?;
                let response = pb::RecordDeclarationStateResponse::acked(convert::ack(&idempotency_key, false));
                Ok(response)
            })?;
            Ok(acked(ran))
        }))
    }
}
