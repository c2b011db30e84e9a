//! What a caller is shown of a participant: W9 hides a withdrawn mentor, X1
//! adds the DfE id kept beside the history.

use super::{current, load};
use crate::convert;
use crate::domain::handover;
use crate::domain::{ParticipantKind, ParticipantView, TrainingStatus};
use crate::store;
use chrono::NaiveDate;
use std::collections::HashMap;
use steplab_platform::db::DbConn;
use steplab_platform::error::ServiceError;
use steplab_proto::steplab::participant::v1 as pb;

/// Whether each mentor is withdrawn on a date, remembered across a list page
/// (it names the same mentors again and again).
pub(super) type WithdrawnMentors = HashMap<(String, NaiveDate), bool>;

/// W9: a participant as shown: a withdrawn mentor is never an ECT's
/// current mentor (nor mentor of record) on the view's date.
pub(super) fn shown(conn: &mut DbConn, view: ParticipantView) -> Result<pb::Participant, ServiceError> {
    let participant = shown_with(conn, view, &mut HashMap::new())?;
    with_dfe_id(conn, participant)
}

/// [`shown`] without the DfE id, remembering the mentors it looked up.
pub(super) fn shown_with(
    conn: &mut DbConn,
    mut view: ParticipantView,
    withdrawn: &mut WithdrawnMentors,
) -> Result<pb::Participant, ServiceError> {
    if view.kind == ParticipantKind::Ect {
        let as_of = view.as_of;
        let named: Vec<String> =
            view.mentor.iter().map(|(id, _)| id.clone()).chain(view.mentor_of_record.clone()).collect();
        let mut unknown: Vec<String> =
            named.into_iter().filter(|id| !withdrawn.contains_key(&(id.clone(), as_of))).collect();
        unknown.sort();
        unknown.dedup();
        if !unknown.is_empty() {
            // The mentors named, all in one statement (GetParticipant stays at two).
            for (mentor, _) in store::load_participants_joined(conn, &unknown)? {
                let gone = mentor.timeline().status_on(as_of) == TrainingStatus::Withdrawn;
                withdrawn.insert((mentor.id, as_of), gone);
            }
            for id in unknown {
                withdrawn.entry((id, as_of)).or_insert(false);
            }
        }
        handover::hide_withdrawn_mentors(&mut view, |id| {
            withdrawn.get(&(id.to_owned(), as_of)).copied().unwrap_or(false)
        });
    }
    Ok(convert::participant(view))
}

/// X1: the participant message with their DfE id, kept beside the history.
pub(super) fn with_dfe_id(
    conn: &mut DbConn,
    mut participant: pb::Participant,
) -> Result<pb::Participant, ServiceError> {
    participant.dfe_participant_id = store::dfe_participant_id(conn, &participant.participant_id)?.unwrap_or_default();
    Ok(participant)
}

/// The participant after a change, with those its cascades touched.
pub(super) fn changed(
    conn: &mut DbConn,
    id: &str,
    cascaded: Vec<String>,
    today: NaiveDate,
) -> Result<(pb::Participant, Vec<String>), ServiceError> {
    let record = load(conn, id)?;
    let view = current(&record, today)?;
    Ok((shown(conn, view)?, cascaded))
}
