//! Deferrals (D1..D12): deferring, moving the return date, recording the
//! return, and the returns that happen by themselves (D7).

use super::{Call, Registry, load};
use crate::convert;
use crate::domain::events::Actor;
use crate::domain::lifecycle;
use crate::domain::policy;
use crate::store;
use steplab_platform::Caller;
use steplab_platform::error::ServiceError;
use steplab_proto::steplab::participant::v1 as pb;

impl Registry {
    pub async fn defer(
        &self,
        caller: Caller,
        req: pb::DeferParticipantRequest,
    ) -> Result<pb::DeferParticipantResponse, ServiceError> {
        let command = convert::defer(&req)?;
        let deferral = command.deferral;
        self.act(
            Call {
                caller,
                rpc: "DeferParticipant",
                request: &req,
                request_id: &req.idempotency_key,
                validate_only: req.validate_only,
            },
            command.participant_id,
            |c, p| policy::may_manage_lifecycle(c, p, "defer participants"),
            move |conn, ect, today| {
                let approved = store::approved_latest_return(conn, &ect.id)?;
                Ok((lifecycle::defer_within(ect, deferral, approved, convert::new_id, today)?, vec![]))
            },
            |participant, cascaded| pb::DeferParticipantResponse {
                effects: None,
                participant: Some(participant),
                cascaded_participant_ids: cascaded,
            },
        )
        .await
    }

    pub async fn change_return_date(
        &self,
        caller: Caller,
        req: pb::ChangeReturnDateRequest,
    ) -> Result<pb::ChangeReturnDateResponse, ServiceError> {
        let change = convert::change_return_date(&req)?;
        let expected_return = change.date;
        self.act(
            Call {
                caller,
                rpc: "ChangeReturnDate",
                request: &req,
                request_id: &req.idempotency_key,
                validate_only: req.validate_only,
            },
            change.participant_id,
            |c, p| policy::may_manage_lifecycle(c, p, "change return dates"),
            move |conn, p, today| {
                let approved = store::approved_latest_return(conn, &p.id)?;
                Ok((lifecycle::change_return_date_within(p, expected_return, approved, today)?, vec![]))
            },
            |participant, cascaded| pb::ChangeReturnDateResponse {
                effects: None,
                participant: Some(participant),
                cascaded_participant_ids: cascaded,
            },
        )
        .await
    }

    pub async fn record_return(
        &self,
        caller: Caller,
        req: pb::RecordReturnRequest,
    ) -> Result<pb::RecordReturnResponse, ServiceError> {
        let change = convert::record_return(&req)?;
        let returned_on = change.date;
        self.act(
            Call {
                caller,
                rpc: "RecordReturn",
                request: &req,
                request_id: &req.idempotency_key,
                validate_only: req.validate_only,
            },
            change.participant_id,
            |c, p| policy::may_manage_lifecycle(c, p, "record returns"),
            move |_, p, today| Ok((lifecycle::record_return(p, returned_on.unwrap_or(today), today)?, vec![])),
            |participant, cascaded| pb::RecordReturnResponse {
                effects: None,
                participant: Some(participant),
                cascaded_participant_ids: cascaded,
            },
        )
        .await
    }

    /// D7, D12: records every return that has happened by itself and is not
    /// yet in a history, dated its return date, so the history and the
    /// reporting feed show it without anyone calling an RPC. Run at start-up
    /// and periodically: a durable catch-up, not a timer a restart could
    /// miss. One transaction per participant; one that loses a race is
    /// picked up by the next sweep. Answers how many returns were recorded.
    pub async fn record_due_returns(&self) -> Result<usize, ServiceError> {
        let ids = self.db.read(store::ever_deferred).await?;
        let system = Actor { sub: "steplab-participant".into(), role: "service".into() };
        let mut recorded = 0;
        for id in ids {
            let (today, now, system) = (self.clock.today(), self.clock.now(), system.clone());
            let outcome = self
                .db
                .write(move |conn| {
                    let p = load(conn, &id)?;
                    let due = lifecycle::due_returns(&p, today);
                    if !due.is_empty() {
                        store::append_events(conn, &[&p], &due, &system, now, today)?;
                    }
                    Ok::<_, ServiceError>(due.len())
                })
                .await;
            match outcome {
                Ok(n) => recorded += n,
                Err(ServiceError::Aborted(_)) => {}
                Err(e) => return Err(e),
            }
        }
        if recorded > 0 {
            self.feed.notify_waiters();
        }
        Ok(recorded)
    }
}
