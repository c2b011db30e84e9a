//! The participant service's holds on release: PlaceHold (a pause or a
//! deferral, or new dates for one) and LiftHold (an earlier end).

use super::{ContentRelease, Effect, Prepared, Received, load, permit};
use crate::convert;
use crate::domain::holds::{self, Placement};
use crate::domain::policy;
use crate::store;
use steplab_platform::error::ServiceError;
use steplab_platform::{Caller, FieldViolations};
use steplab_proto::steplab::common::v1::CommandAck;
use steplab_proto::steplab::content::v1 as pb;

impl ContentRelease {
    pub async fn place_hold(&self, caller: Caller, req: pb::PlaceHoldRequest) -> Result<CommandAck, ServiceError> {
        permit(&caller, "PlaceHold", policy::may_send_commands(&caller))?;
        let command = self.prepare_place_hold(&req)?;
        self.command(command).await
    }

    pub(super) fn prepare_place_hold(&self, req: &pb::PlaceHoldRequest) -> Result<Prepared, FieldViolations> {
        let cmd = convert::place_hold(req)?;
        let now = self.clock.now();
        let (envelope, hold) = (cmd.envelope, cmd.hold);
        let participant_id = envelope.participant_id.clone();
        let received = Received::new("PlaceHold", envelope.key, &req.idempotency_key, req, &participant_id);
        Ok(Prepared::new(received, move |conn, _| {
            let learner = load(conn, &participant_id)?;
            match holds::place(&learner.holds, &hold)? {
                Placement::NewDates => store::update_hold_dates(conn, &participant_id, &hold, now)?,
                Placement::New => store::insert_hold(conn, &participant_id, &hold, now)?,
            }
            Ok(Effect::known(learner, |learner| learner.with_hold(hold)))
        }))
    }

    pub async fn lift_hold(&self, caller: Caller, req: pb::LiftHoldRequest) -> Result<CommandAck, ServiceError> {
        permit(&caller, "LiftHold", policy::may_send_commands(&caller))?;
        let command = self.prepare_lift_hold(&req)?;
        self.command(command).await
    }

    pub(super) fn prepare_lift_hold(&self, req: &pb::LiftHoldRequest) -> Result<Prepared, FieldViolations> {
        let cmd = convert::lift_hold(req)?;
        let now = self.clock.now();
        let (envelope, hold_id, on) = (cmd.envelope, cmd.hold_id, cmd.on);
        let participant_id = envelope.participant_id.clone();
        let received = Received::new("LiftHold", envelope.key, &req.idempotency_key, req, &participant_id);
        Ok(Prepared::new(received, move |conn, _| {
            let learner = load(conn, &participant_id)?;
            let Some(lifted) = holds::lift(&participant_id, learner.holds.clone(), &hold_id, on)? else {
                return Ok(Effect::Unchanged);
            };
            store::update_hold_dates(conn, &participant_id, &lifted, now)?;
            Ok(Effect::known(learner, |learner| learner.with_hold(lifted)))
        }))
    }
}
