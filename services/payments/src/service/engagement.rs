//! RecordEngagement: providers record engagement, which earns milestones (F2).

use super::recompute::{Declaring, recompute};
use super::{Payments, denied, payee_in_reach, plan, schedule_of};
use crate::convert;
use crate::domain::PaymentsRules;
use crate::domain::commands;
use crate::domain::policy;
use crate::store::{self, NewEngagement};
use prost::Message;
use steplab_platform::Caller;
use steplab_platform::error::ServiceError;
use steplab_platform::idempotency::{self, Ran};
use steplab_proto::steplab::payments::v1 as pb;

impl Payments {
    pub async fn record_engagement(
        &self,
        caller: Caller,
        req: pb::RecordEngagementRequest,
    ) -> Result<pb::RecordEngagementResponse, ServiceError> {
        const RPC: &str = "RecordEngagement";
        policy::may_record_engagement_somewhere(&caller).map_err(|d| denied(&caller, RPC, d))?;
        let cmd = convert::engagement(&req, &caller.sub)?;
        let today = self.clock.today();
        commands::engagement_happened(cmd.occurred_on, today)?;
        // Only engagement is held back: the participant service's commands
        // must keep arriving, or its own backlog could never drain.
        self.admission.admit(RPC)?;
        let request_bytes = req.encode_to_vec();
        let declaring = Declaring { today, ..Declaring::new(&self.clock) };
        let (now, book) = (declaring.now, self.book.clone());
        self.write_then_relay(move |conn| {
            let found = store::lock_payee(conn, &cmd.participant_id)?;
            let payee =
                payee_in_reach(conn, &caller, RPC, found, &cmd.participant_id, today, policy::may_record_engagement)?;
            let ran = idempotency::once::<PaymentsRules, _>(conn, Some(&cmd.key), RPC, &request_bytes, now, |conn| {
                store::insert_engagement(
                    conn,
                    &NewEngagement {
                        participant_id: &cmd.participant_id,
                        occurred_on: cmd.occurred_on,
                        kind: cmd.kind.as_str(),
                        note: &cmd.note,
                        recorded_by: &caller.sub,
                    },
                    now,
                )?;
                let facts = recompute(conn, &book, &payee, &declaring)?;
                let schedule = schedule_of(&book, &payee)?;
                let window = plan(&book, schedule, &facts)?.window_on(cmd.occurred_on);
                let response = pb::RecordEngagementResponse {
                    duplicate: false,
                    window: window.map(|w| w.id.clone()).unwrap_or_default(),
                    qualifying: window.is_some() && facts.qualifies_on(cmd.occurred_on),
                };
                Ok(response)
            })?;
            Ok(match ran {
                Ran::Applied(answer) => answer,
                Ran::Replayed(first) => pb::RecordEngagementResponse { duplicate: true, ..first },
            })
        })
        .await
    }
}
