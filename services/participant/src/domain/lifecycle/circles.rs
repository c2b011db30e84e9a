//! A mentor's circle of ECTs, and what happens to the mentor when one of
//! them leaves (W6) or is given another mentor for good (M2).

use super::withdrawal::withdraw_one;
use super::{Decision, NewNotification, NotificationKind, Withdrawal};
use crate::domain::events::WithdrawalReason;
use crate::domain::view::ParticipantRecord;
use crate::domain::{ParticipantKind, TrainingStatus};
use chrono::NaiveDate;

/// A mentor and the other ECTs they mentor, for the D9 and W6 cascades.
#[derive(Debug, Clone)]
pub struct MentorCircle {
    pub mentor: ParticipantRecord,
    /// ECTs other than the one acted on whose mentor is this mentor.
    pub other_ects: Vec<ParticipantRecord>,
    /// W6: a DPL approved keeping this mentor.
    pub keep_approved: bool,
}

/// W6 (and M2): a mentor left with no ECT in training is withdrawn, unless
/// a DPL approved keeping them.
pub fn mentor_left_without_ect(
    circle: &MentorCircle,
    ect_id: &str,
    date: NaiveDate,
    today: NaiveDate,
) -> Option<Decision> {
    let mentor = &circle.mentor;
    if mentor.kind != ParticipantKind::Mentor || circle.keep_approved {
        return None;
    }
    let timeline = mentor.timeline();
    if timeline.status_on(date) == TrainingStatus::Withdrawn || timeline.status_on(today) == TrainingStatus::Withdrawn {
        return None;
    }
    // M5: an ECT under cover still counts as the mentor of record's.
    let has_other = circle.other_ects.iter().filter(|e| e.id != ect_id).any(|e| {
        e.as_of(today).is_some_and(|v| {
            v.status != TrainingStatus::Withdrawn && v.mentor_of_record.as_deref() == Some(mentor.id.as_str())
        })
    });
    if has_other {
        return None;
    }
    let mut d = Decision::default();
    let request = Withdrawal {
        reason: WithdrawalReason::MentorNoLongerBeingMentor,
        withdrawal_date: date.max(mentor.registered_on),
        note: String::new(),
    };
    withdraw_one(&mut d, mentor, &timeline, request, Some(ect_id));
    Some(d)
}

/// M2: a mentor left with no ECT of record in training after a
/// replacement is not withdrawn: the ECF Lead is told, to give them another
/// ECT or withdraw them (W1) if they stepped down.
pub fn mentor_without_ect(circle: &MentorCircle, ect_id: &str, today: NaiveDate) -> Option<NewNotification> {
    let mentor = circle.mentor.as_of(today)?;
    if mentor.kind != ParticipantKind::Mentor || mentor.status == TrainingStatus::Withdrawn {
        return None;
    }
    let has_other = circle.other_ects.iter().filter(|e| e.id != ect_id).any(|e| {
        e.as_of(today).is_some_and(|v| {
            v.status != TrainingStatus::Withdrawn && v.mentor_of_record.as_deref() == Some(mentor.id.as_str())
        })
    });
    (!has_other).then(|| NewNotification {
        kind: NotificationKind::MentorWithoutEct,
        delivery_partner_id: mentor.delivery_partner_id.clone(),
        school_id: mentor.school_id.clone(),
        message: format!(
            "mentor {} has no ECT since {today} (M2): assign them another ECT, or withdraw them if they stepped down",
            mentor.id
        ),
    })
}

#[cfg(test)]
mod tests {
    use crate::domain::lifecycle::tests::*;
    use crate::domain::lifecycle::*;

    #[test]
    fn m2_a_replaced_mentor_left_with_no_ect_is_not_withdrawn_but_the_ecf_lead_is_told() {
        let (e, m) = pair();
        let told = mentor_without_ect(&circle(&m, vec![]), "ect", d(TODAY)).expect("notified");
        assert_eq!(told.kind, NotificationKind::MentorWithoutEct);
        assert!(told.message.contains("withdraw them if they stepped down"), "{}", told.message);
        // Still mentoring another ECT of record: nothing to say.
        let _ = e;
        let other = mentored_by("other", "m");
        assert_eq!(mentor_without_ect(&circle(&m, vec![other]), "ect", d(TODAY)), None);
    }

    #[test]
    fn w6_withdrawing_an_ect_under_interim_cover_withdraws_the_mentor_of_record() {
        let (mut e, m) = pair();
        let cover = NewEvent {
            participant_id: "ect".into(),
            effective_date: d("2026-10-01"),
            kind: EventKind::MentorAssigned {
                mentor_id: "ic".into(),
                interim: true,
                replaced_mentor_id: Some("m".into()),
            },
            caused_by: None,
        };
        record(&mut e, &[cover]);
        assert_eq!(e.as_of(d(TODAY)).expect("v").mentor_of_record.as_deref(), Some("m"));
        let decision = mentor_left_without_ect(&circle(&m, vec![e.clone()]), "ect", d(TODAY), d(TODAY));
        assert!(decision.is_some_and(|d| d.events.iter().any(|e| e.participant_id == "m")));
    }
}
