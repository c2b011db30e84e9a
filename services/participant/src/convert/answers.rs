//! Domain -> responses: what a caller is shown of a participant, their
//! history, the records around them and the commands sent on their behalf.

use crate::domain::events::{DeferralReason, Event, EventKind, WithdrawalReason};
use crate::domain::lifecycle::NotificationKind;
use crate::domain::records::{ApprovalRequest, DeliveryPartner, Notification, School};
use crate::domain::requests::{RequestKind, RequestStatus};
use crate::domain::{ParticipantKind, ParticipantView, TrainingStatus};
use chrono::NaiveDateTime;
use steplab_platform::date;
use steplab_platform::outbox::OutboxRow;
use steplab_proto::steplab::common::v1 as common;
use steplab_proto::steplab::participant::v1 as pb;

pub fn timestamp(t: NaiveDateTime) -> prost_types::Timestamp {
    let utc = t.and_utc();
    prost_types::Timestamp { seconds: utc.timestamp(), nanos: utc.timestamp_subsec_nanos() as i32 }
}

pub fn delivery_partner(partner: DeliveryPartner) -> pb::DeliveryPartner {
    pb::DeliveryPartner {
        delivery_partner_id: partner.id,
        name: partner.name,
        create_time: Some(timestamp(partner.created_at)),
    }
}

pub fn school(school: School) -> pb::School {
    pb::School {
        school_id: school.id,
        urn: school.urn,
        name: school.name,
        delivery_partner_id: school.delivery_partner_id,
        area_covered: school.area_covered,
        create_time: Some(timestamp(school.created_at)),
    }
}

pub(super) fn kind_to_proto(kind: ParticipantKind) -> common::ParticipantKind {
    match kind {
        ParticipantKind::Ect => common::ParticipantKind::Ect,
        ParticipantKind::Mentor => common::ParticipantKind::Mentor,
        ParticipantKind::InductionCoordinator => common::ParticipantKind::InductionCoordinator,
    }
}

pub(super) fn status_to_proto(status: TrainingStatus) -> common::TrainingStatus {
    match status {
        TrainingStatus::Active => common::TrainingStatus::Active,
        TrainingStatus::Paused => common::TrainingStatus::Paused,
        TrainingStatus::Deferred => common::TrainingStatus::Deferred,
        TrainingStatus::Withdrawn => common::TrainingStatus::Withdrawn,
    }
}

pub fn participant(view: ParticipantView) -> pb::Participant {
    let funding_eligible = view.funding_eligible();
    let (mentor_id, mentor_interim) = view.mentor.clone().unwrap_or_default();
    pb::Participant {
        // Filled from the participants table by the service (X1).
        dfe_participant_id: String::new(),
        participant_id: view.id,
        kind: kind_to_proto(view.kind) as i32,
        status: status_to_proto(view.status) as i32,
        school_id: view.school_id,
        delivery_partner_id: view.delivery_partner_id,
        full_name: view.full_name,
        trn: view.trn.unwrap_or_default(),
        registered_on: Some(date::to_proto(view.registered_on)),
        release_start: view.enrolment.map(|e| date::to_proto(e.release_start)),
        schedule: view.schedule.map(|(s, _)| s.schedule_id().to_owned()).unwrap_or_default(),
        schedule_since: date::to_proto_opt(view.schedule.and_then(|(_, since)| since)),
        cohort: view.enrolment.map(|e| e.cohort).unwrap_or_default(),
        previous_pilot_mentor: view.previous_pilot_mentor,
        funding_eligible,
        mentor_id,
        mentor_interim,
        mentor_of_record_id: view.mentor_of_record.unwrap_or_default(),
        pause: view.pause.map(|p| pb::Pause {
            start_date: Some(date::to_proto(p.start)),
            expected_end_date: Some(date::to_proto(p.expected_end)),
            end_date: date::to_proto_opt(p.ended_on),
            note: p.note,
            alongside_ect_id: p.alongside.unwrap_or_default(),
        }),
        deferral: view.deferral.map(|d| pb::Deferral {
            reason: deferral_reason_to_proto(d.reason) as i32,
            deferral_date: Some(date::to_proto(d.from)),
            expected_return_date: Some(date::to_proto(d.returned_on.unwrap_or(d.expected_return))),
            cascaded_from_participant_id: d.cascaded_from.unwrap_or_default(),
        }),
        withdrawal: view.withdrawal.map(|w| pb::Withdrawal {
            reason: withdrawal_reason_to_proto(w.reason) as i32,
            withdrawal_date: Some(date::to_proto(w.date)),
            cascaded_from_participant_id: w.cascaded_from.unwrap_or_default(),
        }),
        as_of: Some(date::to_proto(view.as_of)),
        version: view.version,
        create_time: Some(timestamp(view.created_at)),
    }
}

fn deferral_reason_to_proto(reason: DeferralReason) -> common::DeferralReason {
    match reason {
        DeferralReason::Bereavement => common::DeferralReason::Bereavement,
        DeferralReason::LongTermSickness => common::DeferralReason::LongTermSickness,
        DeferralReason::ParentalLeave => common::DeferralReason::ParentalLeave,
        DeferralReason::CareerBreak => common::DeferralReason::CareerBreak,
        DeferralReason::Other => common::DeferralReason::Other,
    }
}

fn withdrawal_reason_to_proto(reason: WithdrawalReason) -> common::WithdrawalReason {
    match reason {
        WithdrawalReason::LeftTeachingProfession => common::WithdrawalReason::LeftTeachingProfession,
        WithdrawalReason::MovedSchool => common::WithdrawalReason::MovedSchool,
        WithdrawalReason::MentorNoLongerBeingMentor => common::WithdrawalReason::MentorNoLongerBeingMentor,
        WithdrawalReason::SwitchedToSchoolLed => common::WithdrawalReason::SwitchedToSchoolLed,
        WithdrawalReason::NotEligible => common::WithdrawalReason::NotEligible,
        WithdrawalReason::LeftRole => common::WithdrawalReason::LeftRole,
        WithdrawalReason::Other => common::WithdrawalReason::Other,
    }
}

pub fn approval_request(request: ApprovalRequest) -> pb::ApprovalRequest {
    let kind = match request.change.kind() {
        RequestKind::Reinstatement => pb::RequestKind::Reinstatement,
        RequestKind::ReleaseStartChange => pb::RequestKind::ReleaseStartChange,
        RequestKind::KeepMentor => pb::RequestKind::KeepMentor,
        RequestKind::LongDeferral => pb::RequestKind::LongDeferral,
    };
    let status = match request.status {
        RequestStatus::Pending => pb::RequestStatus::Pending,
        RequestStatus::Approved => pb::RequestStatus::Approved,
        RequestStatus::Refused => pb::RequestStatus::Refused,
    };
    let (decided_by, decision_note, decide_time) = match request.decision {
        Some(d) => (d.decided_by, d.note, Some(timestamp(d.decided_at))),
        None => (String::new(), String::new(), None),
    };
    pb::ApprovalRequest {
        approval_request_id: request.id,
        kind: kind as i32,
        status: status as i32,
        participant_id: request.participant_id,
        delivery_partner_id: request.delivery_partner_id,
        release_start: date::to_proto_opt(request.change.release_start()),
        note: request.note,
        requested_by: request.requested_by,
        create_time: Some(timestamp(request.created_at)),
        decided_by,
        decision_note,
        decide_time,
        latest_return_date: date::to_proto_opt(request.change.latest_return()),
        with_mentor: request.change.with_mentor(),
    }
}

pub fn notification(notification: Notification) -> pb::Notification {
    let kind = match notification.kind {
        NotificationKind::SchoolWithoutParticipants => pb::NotificationKind::SchoolWithoutParticipants,
        NotificationKind::InductionCoordinatorNeeded => pb::NotificationKind::InductionCoordinatorNeeded,
        NotificationKind::MentorWithoutEct => pb::NotificationKind::MentorWithoutEct,
        NotificationKind::EctWithoutMentor => pb::NotificationKind::EctWithoutMentor,
    };
    pb::Notification {
        notification_id: notification.id,
        kind: kind as i32,
        delivery_partner_id: notification.delivery_partner_id,
        school_id: notification.school_id,
        message: notification.message,
        create_time: Some(timestamp(notification.created_at)),
    }
}

pub fn outbox_command(row: OutboxRow) -> pb::OutboxCommand {
    let state = if row.delivered_at.is_some() {
        pb::CommandState::Delivered
    } else if row.parked_at.is_some() {
        pb::CommandState::Parked
    } else {
        pb::CommandState::Pending
    };
    pb::OutboxCommand {
        rpc: row.rpc().to_owned(),
        command_id: row.command_id,
        participant_id: row.participant_id,
        target: row.target,
        state: state as i32,
        attempts: row.attempts,
        last_error: row.last_error.unwrap_or_default(),
        create_time: Some(timestamp(row.created_at)),
        deliver_time: row.delivered_at.map(timestamp),
    }
}

pub fn event(event: Event) -> pb::ParticipantEvent {
    let summary = event.kind.summary();
    let mut out = pb::ParticipantEvent {
        event_id: format!("{}-{}", event.participant_id, event.sequence),
        participant_id: event.participant_id,
        sequence: event.sequence,
        effective_date: Some(date::to_proto(event.effective_date)),
        record_time: Some(timestamp(event.recorded_at)),
        actor: event.actor.sub,
        actor_role: event.actor.role,
        summary,
        caused_by_participant_id: event.caused_by.unwrap_or_default(),
        cursor: event.cursor,
        ..Default::default()
    };
    let (event_type, school, related) = match event.kind {
        EventKind::Registered { school_id, .. } => (pb::EventType::Registered, school_id, String::new()),
        EventKind::MentorAssigned { mentor_id, .. } => (pb::EventType::MentorAssigned, String::new(), mentor_id),
        EventKind::TemporaryMentorAssigned { mentor_id, until, .. } => {
            out.end_date = Some(date::to_proto(until));
            (pb::EventType::TemporaryMentorAssigned, String::new(), mentor_id)
        }
        EventKind::MentorCoverEnded { mentor_id } => (pb::EventType::MentorCoverEnded, String::new(), mentor_id),
        EventKind::MenteeAssigned { ect_id } => (pb::EventType::MenteeAssigned, String::new(), ect_id),
        EventKind::MenteeUnassigned { ect_id } => (pb::EventType::MenteeUnassigned, String::new(), ect_id),
        EventKind::SchoolMoved { school_id, .. } => (pb::EventType::SchoolMoved, school_id, String::new()),
        EventKind::Paused { start, expected_end, note, .. } => {
            out.start_date = Some(date::to_proto(start));
            out.end_date = Some(date::to_proto(expected_end));
            out.note = note;
            (pb::EventType::Paused, String::new(), String::new())
        }
        EventKind::PausedAlongside { start, expected_end, note, ect_id, .. } => {
            out.start_date = Some(date::to_proto(start));
            out.end_date = Some(date::to_proto(expected_end));
            out.note = note;
            (pb::EventType::PausedAlongside, String::new(), ect_id)
        }
        EventKind::MentoringEnded { mentor_id } => {
            (pb::EventType::MentoringEnded, String::new(), mentor_id.unwrap_or_default())
        }
        EventKind::PauseExtended { expected_end, .. } => {
            out.end_date = Some(date::to_proto(expected_end));
            (pb::EventType::PauseExtended, String::new(), String::new())
        }
        EventKind::PauseEnded { end, .. } => {
            out.end_date = Some(date::to_proto(end));
            (pb::EventType::PauseEnded, String::new(), String::new())
        }
        EventKind::Deferred { reason, deferral_date, expected_return, note, .. } => {
            out.deferral_reason = deferral_reason_to_proto(reason) as i32;
            out.start_date = Some(date::to_proto(deferral_date));
            out.end_date = Some(date::to_proto(expected_return));
            out.note = note;
            (pb::EventType::Deferred, String::new(), String::new())
        }
        EventKind::ReturnDateChanged { expected_return, .. } => {
            out.end_date = Some(date::to_proto(expected_return));
            (pb::EventType::ReturnDateChanged, String::new(), String::new())
        }
        EventKind::Returned { return_date, .. } => {
            out.end_date = Some(date::to_proto(return_date));
            (pb::EventType::Returned, String::new(), String::new())
        }
        EventKind::Withdrawn { reason, withdrawal_date, note, .. } => {
            out.withdrawal_reason = withdrawal_reason_to_proto(reason) as i32;
            out.start_date = Some(date::to_proto(withdrawal_date));
            out.note = note;
            (pb::EventType::Withdrawn, String::new(), String::new())
        }
        EventKind::Reinstated { reinstated_on, .. } => {
            out.start_date = Some(date::to_proto(reinstated_on));
            (pb::EventType::Reinstated, String::new(), String::new())
        }
        EventKind::ReleaseStartChanged { release_start, .. } => {
            out.start_date = Some(date::to_proto(release_start));
            (pb::EventType::ReleaseStartChanged, String::new(), String::new())
        }
    };
    out.event_type = event_type as i32;
    out.school_id = school;
    out.related_participant_id = related;
    out
}
