//! Pauses (P1..P8): a participant's, or a mentor's alongside their ECT.

use super::{Call, Registry, load_all, load_in_reach, place};
use crate::convert;
use crate::domain::policy;
use crate::domain::{handover, lifecycle, mentoring};
use steplab_platform::Caller;
use steplab_platform::error::ServiceError;
use steplab_proto::steplab::participant::v1 as pb;

impl Registry {
    pub async fn pause(
        &self,
        caller: Caller,
        req: pb::PauseParticipantRequest,
    ) -> Result<pb::PauseParticipantResponse, ServiceError> {
        let p = convert::pause(&req)?;
        let pause_id = convert::new_id();
        let who = caller.clone();
        self.act(
            Call {
                caller,
                rpc: "PauseParticipant",
                request: &req,
                request_id: &req.idempotency_key,
                validate_only: req.validate_only,
            },
            p.participant_id,
            policy::may_manage_pause,
            move |conn, participant, today| {
                let Some(ect_id) = p.alongside_ect_id else {
                    return Ok((
                        lifecycle::pause(participant, pause_id, p.start, p.expected_end, p.note, today)?,
                        vec![],
                    ));
                };
                // P1: a mentor alongside their ECT; the caller must reach the ECT too.
                let (ect, ect_now) = load_in_reach(conn, &who, &ect_id, today)?;
                policy::may_manage_pause(&who, place(&ect_now))?;
                let ever_mentored = mentoring::ever_mentored(participant);
                let others = load_all(conn, ever_mentored.iter().filter(|id| **id != ect.id))?;
                let request =
                    handover::MentorPause { pause_id, start: p.start, expected_end: p.expected_end, note: p.note };
                Ok((handover::pause_alongside(participant, &ect, &others, request, today)?, vec![]))
            },
            |participant, _| pb::PauseParticipantResponse { effects: None, participant: Some(participant) },
        )
        .await
    }

    pub async fn extend_pause(
        &self,
        caller: Caller,
        req: pb::ExtendPauseRequest,
    ) -> Result<pb::ExtendPauseResponse, ServiceError> {
        let change = convert::extend_pause(&req)?;
        let end = change.date;
        self.act(
            Call {
                caller,
                rpc: "ExtendPause",
                request: &req,
                request_id: &req.idempotency_key,
                validate_only: req.validate_only,
            },
            change.participant_id,
            policy::may_manage_pause,
            move |conn, p, today| {
                // P1: a mentor's pause stays within their ECT's.
                let Some(ect_id) = handover::open_pause_alongside(p, today) else {
                    return Ok((lifecycle::extend_pause(p, end, today)?, vec![]));
                };
                let ect = super::load(conn, &ect_id)?;
                let ever_mentored = mentoring::ever_mentored(p);
                let others = load_all(conn, ever_mentored.iter().filter(|id| **id != ect_id))?;
                Ok((handover::extend_pause_alongside(p, &ect, &others, end, today)?, vec![]))
            },
            |participant, _| pb::ExtendPauseResponse { effects: None, participant: Some(participant) },
        )
        .await
    }

    pub async fn end_pause(
        &self,
        caller: Caller,
        req: pb::EndPauseRequest,
    ) -> Result<pb::EndPauseResponse, ServiceError> {
        let change = convert::end_pause(&req)?;
        let end = change.date;
        self.act(
            Call {
                caller,
                rpc: "EndPause",
                request: &req,
                request_id: &req.idempotency_key,
                validate_only: req.validate_only,
            },
            change.participant_id,
            policy::may_manage_pause,
            move |_, ect, today| Ok((lifecycle::end_pause(ect, end.unwrap_or(today), today)?, vec![])),
            |participant, _| pb::EndPauseResponse { effects: None, participant: Some(participant) },
        )
        .await
    }
}
