//! W1-W8: withdraw a participant, with the mentor cascade (W6) and the
//! school notifications (W7, W8).

use super::{
    Command, Decision, MentorCircle, NewNotification, NotificationKind, has_programme, mentor_left_without_ect,
    not_yet_registered,
};
use crate::domain::events::{EventKind, WithdrawalReason};
use crate::domain::view::{ParticipantRecord, Timeline};
use crate::domain::{ParticipantKind, RuleViolation, TrainingStatus};
use chrono::NaiveDate;

/// A validated withdrawal request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Withdrawal {
    pub reason: WithdrawalReason,
    pub withdrawal_date: NaiveDate,
    pub note: String,
}

/// Who else is at the participant's school, for W7 and W8.
#[derive(Debug, Clone, Default)]
pub struct SchoolCircle {
    pub school_id: String,
    pub delivery_partner_id: String,
    /// Everyone else registered at the school.
    pub others: Vec<ParticipantRecord>,
}

/// W1-W8: withdraw a participant. Any pause or deferral ends on the date
/// (W4); access is revoked and accrual ends (W5); an ECT's only-ECT mentor
/// follows (W6); the DPL hears of a school left with nobody in training (W7)
/// and of a school losing its last induction coordinator (W8).
pub fn withdraw(
    p: &ParticipantRecord,
    request: Withdrawal,
    mentor: Option<&MentorCircle>,
    school: &SchoolCircle,
    today: NaiveDate,
) -> Result<Decision, RuleViolation> {
    if request.withdrawal_date > today {
        return Err(RuleViolation::new(
            "WITHDRAWAL_DATE_IN_FUTURE",
            format!(
                "a withdrawal removes all Steplab access from its date, so it cannot be scheduled ahead: withdraw on or after the day the participant leaves (today is {today})"
            ),
        ).with("participant_id", &p.id).with("withdrawal_date", request.withdrawal_date).with("today", today));
    }
    if request.reason == WithdrawalReason::MentorNoLongerBeingMentor && p.kind != ParticipantKind::Mentor {
        return Err(RuleViolation::new(
            "REASON_FOR_MENTORS_ONLY",
            format!(
                "`mentor-no-longer-being-mentor` applies to mentors only and this participant is {}: choose another reason",
                p.kind.describe()
            ),
        ).with("participant_id", &p.id).with("kind", p.kind.as_str().to_uppercase()));
    }
    if request.withdrawal_date < p.registered_on {
        return Err(not_yet_registered(p, request.withdrawal_date));
    }
    let timeline = p.timeline();
    for date in [request.withdrawal_date, today] {
        if timeline.status_on(date) == TrainingStatus::Withdrawn {
            return Err(RuleViolation::new(
                "ALREADY_WITHDRAWN",
                format!("the participant is already withdrawn on {date}"),
            )
            .with("participant_id", &p.id)
            .with("status", TrainingStatus::Withdrawn.name())
            .with("date", date));
        }
    }
    if timeline.withdrawals.iter().any(|w| w.date > request.withdrawal_date) {
        return Err(RuleViolation::new(
            "WITHDRAWN_LATER",
            "the participant has a later withdrawal on record: a reinstated participant cannot be withdrawn again before their reinstatement",
        ).with("participant_id", &p.id).with("withdrawal_date", request.withdrawal_date));
    }
    let mut d = Decision::default();
    withdraw_one(&mut d, p, &timeline, request.clone(), None);
    let mut withdrawn_now = vec![p.id.clone()];
    if p.kind == ParticipantKind::Ect
        && let Some(circle) = mentor
        && let Some(cascade) = mentor_left_without_ect(circle, &p.id, request.withdrawal_date, today)
    {
        withdrawn_now.push(circle.mentor.id.clone());
        d.merge(cascade);
    }
    let in_training = |other: &ParticipantRecord| {
        !withdrawn_now.contains(&other.id)
            && has_programme(other.kind)
            && other
                .as_of(today)
                .is_some_and(|v| v.status != TrainingStatus::Withdrawn && v.school_id == school.school_id)
    };
    if has_programme(p.kind) && !school.others.iter().any(in_training) {
        d.notifications.push(NewNotification {
            kind: NotificationKind::SchoolWithoutParticipants,
            delivery_partner_id: school.delivery_partner_id.clone(),
            school_id: school.school_id.clone(),
            message: format!(
                "school {} has no participants in training since {} (W7)",
                school.school_id, request.withdrawal_date
            ),
        });
    }
    let other_ic = |other: &ParticipantRecord| {
        other.kind == ParticipantKind::InductionCoordinator
            && other
                .as_of(today)
                .is_some_and(|v| v.status != TrainingStatus::Withdrawn && v.school_id == school.school_id)
    };
    if p.kind == ParticipantKind::InductionCoordinator && !school.others.iter().any(other_ic) {
        d.notifications.push(NewNotification {
            kind: NotificationKind::InductionCoordinatorNeeded,
            delivery_partner_id: school.delivery_partner_id.clone(),
            school_id: school.school_id.clone(),
            message: format!(
                "school {} has no induction coordinator since {}: register a replacement (W8)",
                school.school_id, request.withdrawal_date
            ),
        });
    }
    Ok(d)
}

pub(super) fn withdraw_one(
    d: &mut Decision,
    p: &ParticipantRecord,
    timeline: &Timeline,
    request: Withdrawal,
    cascaded_from: Option<&str>,
) {
    let date = request.withdrawal_date;
    d.event(
        &p.id,
        date,
        EventKind::Withdrawn {
            reason: request.reason,
            withdrawal_date: date,
            note: request.note,
            cascaded_from: cascaded_from.map(str::to_owned),
        },
        cascaded_from,
    );
    if !has_programme(p.kind) {
        return;
    }
    // W4: holds and suspensions not over by the date end on it.
    for pause in timeline.pauses.iter().filter(|x| x.end() > date && x.end() > x.start) {
        d.commands.push(Command::LiftHold {
            participant_id: p.id.clone(),
            hold_id: pause.id.clone(),
            on: date.max(pause.start),
        });
    }
    for deferral in timeline.deferrals.iter().filter(|x| x.end() > date && x.end() > x.from) {
        let on = date.max(deferral.from);
        d.commands.push(Command::LiftHold { participant_id: p.id.clone(), hold_id: deferral.id.clone(), on });
        d.commands.push(Command::ResumeAccrual {
            participant_id: p.id.clone(),
            suspension_id: deferral.id.clone(),
            on,
        });
    }
    d.commands.push(Command::RevokeAccess { participant_id: p.id.clone(), on: date });
    d.commands.push(Command::EndAccrual { participant_id: p.id.clone(), on: date });
}

#[cfg(test)]
mod tests {
    use crate::domain::lifecycle::tests::*;
    use crate::domain::lifecycle::*;

    #[test]
    fn w2_a_withdrawal_dated_tomorrow_is_refused() {
        let err =
            withdraw(&ect(), left(WithdrawalReason::LeftRole, "2026-11-29"), None, &SchoolCircle::default(), d(TODAY))
                .expect_err("future");
        assert_eq!(err.reason, "WITHDRAWAL_DATE_IN_FUTURE");
    }

    #[test]
    fn w3_mentor_no_longer_being_mentor_is_a_reason_for_mentors_only() {
        let err = withdraw(
            &ect(),
            left(WithdrawalReason::MentorNoLongerBeingMentor, TODAY),
            None,
            &SchoolCircle::default(),
            d(TODAY),
        )
        .expect_err("ect");
        assert_eq!(err.reason, "REASON_FOR_MENTORS_ONLY");
    }

    #[test]
    fn w4_withdrawing_a_deferred_participant_ends_the_deferral_on_that_date() {
        let mut request = paternity();
        request.deferral_date = d("2026-10-01");
        let mut e = ect();
        let decided = defer(&e, request, ids(), d(TODAY)).expect("deferred");
        record(&mut e, &decided.events);
        let decision = withdraw(
            &e,
            left(WithdrawalReason::LeftTeachingProfession, "2026-11-01"),
            None,
            &SchoolCircle::default(),
            d(TODAY),
        )
        .expect("w");
        assert!(decision.commands.contains(&Command::LiftHold {
            participant_id: "ect".into(),
            hold_id: "id1".into(),
            on: d("2026-11-01")
        }));
        let decided = decision;
        record(&mut e, &decided.events);
        assert_eq!(status(&e, "2026-10-31"), TrainingStatus::Deferred);
        assert_eq!(status(&e, "2026-11-01"), TrainingStatus::Withdrawn);
        assert!(e.as_of(d(TODAY)).expect("v").deferral.is_none());
    }

    #[test]
    fn w5_withdrawal_revokes_access_and_ends_accrual_from_its_date() {
        let decision =
            withdraw(&ect(), left(WithdrawalReason::LeftRole, "2026-11-10"), None, &SchoolCircle::default(), d(TODAY))
                .expect("w");
        assert!(
            decision.commands.contains(&Command::RevokeAccess { participant_id: "ect".into(), on: d("2026-11-10") })
        );
        assert!(decision.commands.contains(&Command::EndAccrual { participant_id: "ect".into(), on: d("2026-11-10") }));
    }

    #[test]
    fn w6_withdrawing_an_ect_withdraws_their_only_ect_mentor() {
        let (e, m) = pair();
        let decision = withdraw(
            &e,
            left(WithdrawalReason::LeftRole, TODAY),
            Some(&circle(&m, vec![])),
            &SchoolCircle::default(),
            d(TODAY),
        )
        .expect("w");
        assert_eq!(decision.cascaded("ect"), ["m"]);
        assert!(decision.events.iter().any(|ev| ev.participant_id == "m"
            && matches!(ev.kind, EventKind::Withdrawn { reason: WithdrawalReason::MentorNoLongerBeingMentor, .. })));
    }

    #[test]
    fn w6_a_mentor_with_another_ect_or_kept_by_a_dpl_stays() {
        let (e, m) = pair();
        let other = mentored_by("other", "m");
        let with_other = withdraw(
            &e,
            left(WithdrawalReason::LeftRole, TODAY),
            Some(&circle(&m, vec![other])),
            &SchoolCircle::default(),
            d(TODAY),
        )
        .expect("w");
        assert!(with_other.cascaded("ect").is_empty());
        let kept = MentorCircle { keep_approved: true, ..circle(&m, vec![]) };
        let with_keep =
            withdraw(&e, left(WithdrawalReason::LeftRole, TODAY), Some(&kept), &SchoolCircle::default(), d(TODAY))
                .expect("w");
        assert!(with_keep.cascaded("ect").is_empty());
    }

    #[test]
    fn w7_a_school_left_with_nobody_in_training_notifies_its_dpl() {
        let school = SchoolCircle {
            school_id: "s1".into(),
            delivery_partner_id: "dp1".into(),
            others: vec![person("ic", ParticipantKind::InductionCoordinator, "2026-09-01")],
        };
        let decision = withdraw(&ect(), left(WithdrawalReason::LeftRole, TODAY), None, &school, d(TODAY)).expect("w");
        assert_eq!(decision.notifications.len(), 1);
        assert_eq!(decision.notifications[0].kind, NotificationKind::SchoolWithoutParticipants);
        let busy = SchoolCircle { others: vec![person("other", ParticipantKind::Ect, "2026-09-01")], ..school };
        assert!(
            withdraw(&ect(), left(WithdrawalReason::LeftRole, TODAY), None, &busy, d(TODAY))
                .expect("w")
                .notifications
                .is_empty()
        );
    }

    #[test]
    fn w8_withdrawing_the_last_induction_coordinator_asks_for_a_replacement() {
        let ic = person("ic", ParticipantKind::InductionCoordinator, "2026-09-01");
        let school = SchoolCircle { school_id: "s1".into(), delivery_partner_id: "dp1".into(), others: vec![ect()] };
        let decision = withdraw(&ic, left(WithdrawalReason::LeftRole, TODAY), None, &school, d(TODAY)).expect("w");
        assert_eq!(
            decision.notifications.iter().map(|n| n.kind).collect::<Vec<_>>(),
            [NotificationKind::InductionCoordinatorNeeded]
        );
        assert!(decision.commands.is_empty(), "an induction coordinator has no enrolment to revoke");
    }
}
