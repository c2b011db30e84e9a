//! Operations and audit: a participant's history, the reporting feed, the
//! outbox's sync status and parked commands, and the consistency check
//! against content release and payments (drift).

use super::shown::with_dfe_id;
use super::{Registry, load_in_reach, place};
use crate::convert;
use crate::domain::policy;
use crate::peers::CheckError;
use crate::store::{self, ListFilter};
use futures::{StreamExt, TryStreamExt};
use steplab_platform::db::DbConn;
use steplab_platform::error::ServiceError;
use steplab_platform::ids::ParticipantId;
use steplab_platform::outbox;
use steplab_platform::paging::Pages;
use steplab_platform::{Caller, FieldViolation, FieldViolations, date};
use steplab_proto::steplab::participant::v1 as pb;

/// Participants the consistency check reads from the peers at once (two
/// calls each, one per peer).
const PARTICIPANTS_CHECKED_AT_ONCE: usize = 8;

/// The position a page token of history or sync status names: a sequence
/// number or command id. The token's MAC held, so a key that is not a number
/// is a token of an older build.
fn sequence_key(key: Option<&str>) -> Result<Option<i64>, FieldViolation> {
    key.map(|key| {
        key.parse::<i64>()
            .map_err(|_| FieldViolation::new("page_token", "is from an older version: start again without page_token"))
    })
    .transpose()
}

impl Registry {
    pub async fn history(
        &self,
        caller: Caller,
        req: pb::GetParticipantHistoryRequest,
    ) -> Result<pb::GetParticipantHistoryResponse, ServiceError> {
        let pages = Pages::of(&caller.sub, &req);
        let mut v = FieldViolations::default();
        let id = v.check(ParticipantId::parse("participant_id", &req.participant_id));
        let size = v.check(steplab_platform::paging::page_size(req.page_size));
        let after = v.check(pages.after(&req.page_token).and_then(|key| sequence_key(key.as_deref())));
        let (id, size, after) = v.finish(|| Some((id?, size?, after?)))?;
        let today = self.clock.today();
        self.db
            .read(move |conn| {
                let (_, view_today) = load_in_reach(conn, &caller, &id, today)?;
                policy::may_read(&caller, place(&view_today))?;
                let (events, next) = store::history(conn, &id, after, size)?;
                Ok(pb::GetParticipantHistoryResponse {
                    next_page_token: pages.token(next.as_deref()),
                    events: events.into_iter().map(convert::event).collect(),
                })
            })
            .await
    }

    /// WatchEvents: every event after `cursor` (the reportable ones of D12
    /// and W10 among them), at most `limit`.
    pub async fn events_after(
        &self,
        caller: &Caller,
        cursor: i64,
        limit: i64,
    ) -> Result<Vec<pb::ParticipantEvent>, ServiceError> {
        policy::may_watch_events(caller)?;
        self.db
            .read(move |conn| Ok(store::feed_after(conn, cursor, limit)?.into_iter().map(convert::event).collect()))
            .await
    }

    pub async fn sync_status(
        &self,
        caller: Caller,
        req: pb::GetSyncStatusRequest,
    ) -> Result<pb::GetSyncStatusResponse, ServiceError> {
        let pages = Pages::of(&caller.sub, &req);
        let mut v = FieldViolations::default();
        let id = v.check(ParticipantId::parse_optional("participant_id", &req.participant_id));
        let size = v.check(steplab_platform::paging::page_size(req.page_size));
        let after = v.check(pages.after(&req.page_token).and_then(|key| sequence_key(key.as_deref())));
        let (id, size, after) = v.finish(|| Some((id?, size?, after?)))?;
        let parked_only = req.parked_only;
        let today = self.clock.today();
        self.db
            .read(move |conn| {
                let (listed, (pending, parked)) = match &id {
                    None => {
                        policy::may_operate_relay(&caller)?;
                        let listed = if parked_only { outbox::Listed::Parked } else { outbox::Listed::Undelivered };
                        (listed, outbox::undelivered_counts(conn)?)
                    }
                    Some(id) => {
                        let (_, view_today) = load_in_reach(conn, &caller, id, today)?;
                        policy::may_read(&caller, place(&view_today))?;
                        let listed = if parked_only {
                            outbox::Listed::ParticipantParked(id)
                        } else {
                            outbox::Listed::Participant(id)
                        };
                        (listed, outbox::participant_counts(conn, id)?)
                    }
                };
                let mut rows = outbox::page(conn, listed, after, size + 1)?;
                let next = steplab_platform::paging::take_page(&mut rows, size, |r| r.id.to_string());
                Ok(pb::GetSyncStatusResponse {
                    next_page_token: pages.token(next.as_deref()),
                    pending,
                    parked,
                    commands: rows.into_iter().map(convert::outbox_command).collect(),
                })
            })
            .await
    }

    pub async fn retry_parked(
        &self,
        caller: Caller,
        req: pb::RetryParkedCommandsRequest,
    ) -> Result<pb::RetryParkedCommandsResponse, ServiceError> {
        policy::may_operate_relay(&caller)?;
        let mut v = FieldViolations::default();
        let participant_id = v.check(ParticipantId::parse_optional("participant_id", &req.participant_id));
        let command_id = v.check(convert::optional_id("command_id", &req.command_id));
        let (participant_id, command_id) = v.finish(|| Some((participant_id?, command_id?)))?;
        let now = self.clock.now();
        let retry = move |conn: &mut DbConn| {
            let n = outbox::retry_parked(conn, command_id.as_deref(), participant_id.as_deref(), now)?;
            Ok::<_, ServiceError>(n as i64)
        };
        if req.validate_only {
            // AIP-163: how many would be queued again, queuing none.
            let retried = self.db.dry_run(retry).await?;
            return Ok(pb::RetryParkedCommandsResponse { retried });
        }
        let retried = self.db.write(retry).await?;
        tracing::info!(target: "audit", actor = %caller.sub, retried, "parked commands queued again");
        self.relay.notify_one();
        Ok(pb::RetryParkedCommandsResponse { retried })
    }

    pub async fn check_consistency(
        &self,
        caller: Caller,
        req: pb::CheckConsistencyRequest,
    ) -> Result<pb::CheckConsistencyResponse, CheckError> {
        policy::may_operate_relay(&caller).map_err(ServiceError::from)?;
        let mut v = FieldViolations::default();
        let as_of = v.check(date::optional("as_of", req.as_of.as_ref()));
        let pages = Pages::of(&caller.sub, &req);
        let size = v.check(steplab_platform::paging::page_size(req.page_size));
        let after = v.check(pages.after(&req.page_token));
        let (as_of, size, after) = v.finish(|| Some((as_of?, size?, after?))).map_err(ServiceError::from)?;
        let peers =
            self.peers.clone().ok_or_else(|| ServiceError::Internal("this process has no peers configured".into()))?;
        let as_of = as_of.unwrap_or_else(|| self.clock.today());
        let (page, next) = self
            .db
            .read(move |conn| {
                let filter = ListFilter {
                    scope: policy::ListScope::Everything,
                    school_id: None,
                    delivery_partner_id: None,
                    kind: None,
                    status: None,
                    as_of,
                };
                let (records, next) = store::list_participants(conn, &filter, after, size)?;
                let mut page = Vec::new();
                for record in records {
                    let Some(view) = record.as_of(as_of) else { continue };
                    let pending =
                        outbox::for_participant(conn, &record.id)?.iter().filter(|r| r.delivered_at.is_none()).count()
                            as i64;
                    page.push((with_dfe_id(conn, convert::participant(view))?, pending));
                }
                Ok::<_, ServiceError>((page, next))
            })
            .await?;
        let day = date::to_proto(as_of);
        // A few participants at a time, whatever the page size: a page of 500
        // must not open 1,000 calls at once on the peers. The first failure
        // stops the check (no further calls are started).
        // Each check owns its participant: a stream borrowing the page is not
        // `Send` for the generated service trait.
        let participants: Vec<pb::Participant> = page.iter().map(|(participant, _)| participant.clone()).collect();
        let results: Vec<Vec<String>> = futures::stream::iter(participants)
            .map(|participant| {
                let peers = peers.clone();
                async move {
                    let id = &participant.participant_id;
                    let (release, accrual) = futures::join!(peers.release(id, day), peers.accrual(id, day));
                    Ok::<_, CheckError>(crate::drift::differences(crate::drift::Views {
                        participant: &participant,
                        release: release?.as_ref(),
                        accrual: accrual?.as_ref(),
                    }))
                }
            })
            .buffered(PARTICIPANTS_CHECKED_AT_ONCE)
            .try_collect()
            .await?;
        let mut answer = pb::CheckConsistencyResponse {
            checked_count: page.len() as i64,
            next_page_token: pages.token(next.as_deref()),
            ..Default::default()
        };
        for ((participant, pending), differences) in page.into_iter().zip(results) {
            if differences.is_empty() {
                continue;
            }
            let drift = pb::ParticipantDrift {
                participant_id: participant.participant_id,
                differences,
                pending_commands: pending,
            };
            if pending > 0 { answer.in_flight.push(drift) } else { answer.drifted.push(drift) }
        }
        Ok(answer)
    }
}
