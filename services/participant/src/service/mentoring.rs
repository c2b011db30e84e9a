//! Mentoring (M1..M5) and moving school (S1): who mentors an ECT, covers and
//! their end, and what a move hands over.

use super::apply::apply;
use super::shown::{changed, shown};
use super::{
    Registry, current, idempotency_key, load, load_in_reach, mentor_circle, place, school_in_reach, school_place,
};
use crate::convert;
use crate::domain::events::NewEvent;
use crate::domain::handover;
use crate::domain::lifecycle::{self, Decision, Destination};
use crate::domain::policy;
use crate::domain::registry::{self, Assignment};
use crate::domain::view::ParticipantRecord;
use steplab_platform::Caller;
use steplab_platform::db::DbConn;
use steplab_platform::error::ServiceError;
use steplab_proto::steplab::participant::v1 as pb;

/// Adds to `touched` every participant `events` name that it lacks, read in
/// this unit of work so their events can be version-checked.
fn touch_all(conn: &mut DbConn, touched: &mut Vec<ParticipantRecord>, events: &[NewEvent]) -> Result<(), ServiceError> {
    for e in events {
        if !touched.iter().any(|t| t.id == e.participant_id) {
            touched.push(load(conn, &e.participant_id)?);
        }
    }
    Ok(())
}

impl Registry {
    pub async fn assign_mentor(
        &self,
        caller: Caller,
        req: pb::AssignMentorRequest,
    ) -> Result<pb::AssignMentorResponse, ServiceError> {
        let change = convert::assign_mentor(&req)?;
        let key = idempotency_key(&caller, &req.idempotency_key)?;
        let (today, now) = (self.clock.today(), self.clock.now());
        self.mutate(key, req.validate_only, "AssignMentor", &req, move |conn| {
            let (ect, ect_now) = load_in_reach(conn, &caller, &change.ect_id, today)?;
            let interim = change.assignment == Assignment::InterimCover;
            policy::may_assign_mentor(&caller, place(&ect_now), interim)?;
            // The mentor too: otherwise the rule that refuses them (not a
            // mentor, another school) would describe another partner's participant.
            let (mentor, _) = load_in_reach(conn, &caller, &change.mentor_id, today)?;
            let effective = change.effective_date.unwrap_or(today);
            let events = registry::assign_mentor(&ect, &mentor, change.assignment, effective, today)?;
            let mut touched = vec![ect.clone(), mentor];
            touch_all(conn, &mut touched, &events)?;
            let mut decision = Decision { events, ..Decision::default() };
            // M2: a mentor replaced for good is never withdrawn by it; left
            // with no ECT, the ECF Lead hears of them.
            if change.assignment == Assignment::OfRecord
                && let Some(previous) = ect_now.mentor_of_record.as_ref().filter(|p| *p != change.mentor_id.as_str())
            {
                let previous = load(conn, previous)?;
                let circle = mentor_circle(conn, previous)?;
                decision.notifications.extend(lifecycle::mentor_without_ect(&circle, &ect.id, today));
            }
            apply(conn, &caller, &touched, decision, now, today)?;
            let ect = load(conn, &ect.id)?;
            Ok(pb::AssignMentorResponse { effects: None, ect: Some(shown(conn, current(&ect, today)?)?) })
        })
        .await
    }

    pub async fn end_mentor_cover(
        &self,
        caller: Caller,
        req: pb::EndMentorCoverRequest,
    ) -> Result<pb::EndMentorCoverResponse, ServiceError> {
        let change = convert::end_mentor_cover(&req)?;
        let key = idempotency_key(&caller, &req.idempotency_key)?;
        let (today, now) = (self.clock.today(), self.clock.now());
        self.mutate(key, req.validate_only, "EndMentorCover", &req, move |conn| {
            let (ect, ect_now) = load_in_reach(conn, &caller, &change.participant_id, today)?;
            policy::may_assign_mentor(&caller, place(&ect_now), true)?;
            let events = registry::end_mentor_cover(&ect, change.date.unwrap_or(today), today)?;
            let mut touched = vec![ect.clone()];
            touch_all(conn, &mut touched, &events)?;
            apply(conn, &caller, &touched, Decision { events, ..Decision::default() }, now, today)?;
            let ect = load(conn, &ect.id)?;
            Ok(pb::EndMentorCoverResponse { effects: None, ect: Some(shown(conn, current(&ect, today)?)?) })
        })
        .await
    }

    pub async fn move_school(
        &self,
        caller: Caller,
        req: pb::MoveSchoolRequest,
    ) -> Result<pb::MoveSchoolResponse, ServiceError> {
        let command = convert::move_school(&req)?;
        let key = idempotency_key(&caller, &req.idempotency_key)?;
        let (today, now) = (self.clock.today(), self.clock.now());
        self.mutate(key, req.validate_only, "MoveSchool", &req, move |conn| {
            let (p, p_now) = load_in_reach(conn, &caller, &command.participant_id, today)?;
            policy::may_manage_lifecycle(&caller, place(&p_now), "move participants between schools")?;
            let school = school_in_reach(conn, &caller, &command.school_id)?;
            policy::may_manage_lifecycle(&caller, school_place(&school), "move participants into that school")?;
            let to = Destination {
                school_id: school.id,
                delivery_partner_id: school.delivery_partner_id,
                area_covered: school.area_covered,
            };
            let moved_on = command.moved_on.unwrap_or(today);
            let mut decision = lifecycle::move_school(&p, &to, moved_on, today)?;
            // S1: a moved ECT's mentoring ends on the move date unless kept;
            // a mentor left with no ECT is the ECF Lead's to place (M2).
            let (ended, left) = handover::mentoring_after_move(&p, moved_on, command.keep_mentor, today)?;
            let mut touched = vec![p.clone()];
            touch_all(conn, &mut touched, &ended)?;
            decision.events.extend(ended);
            if let Some(mentor_id) = left {
                let mentor = load(conn, &mentor_id)?;
                let circle = mentor_circle(conn, mentor)?;
                decision.notifications.extend(lifecycle::mentor_without_ect(&circle, &p.id, today));
            }
            apply(conn, &caller, &touched, decision, now, today)?;
            let (participant, _) = changed(conn, &command.participant_id, vec![], today)?;
            Ok(pb::MoveSchoolResponse { effects: None, participant: Some(participant) })
        })
        .await
    }
}
