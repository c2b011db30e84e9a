//! Domain answers as response messages: schedules, a payee's accrual, a
//! statement page.

use crate::convert::StatementQuery;
use crate::domain::accrual::{AccrualState, ExclusionReason, Facts, Plan, WindowOutcome};
use crate::domain::declarations::DfeRecord;
use crate::domain::schedule::{self, Schedule, ScheduleBook, Window};
use crate::domain::statement::StatementEntry;
use chrono::NaiveDate;
use std::collections::HashMap;
use steplab_platform::date;
use steplab_proto::steplab::payments::v1 as pb;

pub fn schedule(book: &ScheduleBook, s: &Schedule) -> pb::Schedule {
    pb::Schedule {
        schedule_id: s.id.clone(),
        cohort: s.cohort,
        variant: s.variant.as_str().to_owned(),
        description: s.description.clone(),
        windows: s.windows.iter().map(milestone_window).collect(),
        per_participant_price_pence: book.listed_price_pence(s),
        output_share_percent: i32::try_from(book.output_share_percent()).unwrap_or_default(),
    }
}

fn milestone_window(w: &Window) -> pb::MilestoneWindow {
    pb::MilestoneWindow {
        window_id: w.id.clone(),
        milestone: w.milestone.clone(),
        start_date: Some(date::to_proto(w.start)),
        end_date: Some(date::to_proto(w.end)),
        share_percent: i32::try_from(w.share_percent).unwrap_or_default(),
    }
}

fn state(state: AccrualState) -> pb::AccrualState {
    match state {
        AccrualState::Accruing => pb::AccrualState::Accruing,
        AccrualState::Suspended => pb::AccrualState::Suspended,
        AccrualState::Ended => pb::AccrualState::Ended,
    }
}

pub fn reason(reason: ExclusionReason) -> pb::ExclusionReason {
    match reason {
        ExclusionReason::IneligibleMentor => pb::ExclusionReason::IneligibleMentor,
        ExclusionReason::AlreadyPaidAllMilestones => pb::ExclusionReason::AlreadyPaidAllMilestones,
        ExclusionReason::Withdrawn => pb::ExclusionReason::Withdrawn,
        ExclusionReason::Deferred => pb::ExclusionReason::Deferred,
        ExclusionReason::OutOfArea => pb::ExclusionReason::OutOfArea,
        ExclusionReason::NoEngagement => pb::ExclusionReason::NoEngagement,
    }
}

/// GetAccrual's answer on `as_of` from the payee's facts and earnings.
pub fn accrual(
    participant_id: &str,
    plan: &Plan<'_>,
    facts: &Facts,
    earned: &[WindowOutcome<'_>],
    declared: &[DfeRecord],
    as_of: NaiveDate,
) -> pb::GetAccrualResponse {
    let schedule = plan.schedule;
    let since = facts.returns_by(as_of).last().copied();
    use crate::domain::accrual::Outcome;
    let milestones: Vec<pb::EarnedMilestone> = earned
        .iter()
        .filter_map(|o| match &o.outcome {
            Outcome::Earned { milestone, amount_pence, earned_on } => {
                let declaration = declared.iter().find(|d| &d.declaration_type == milestone);
                Some(pb::EarnedMilestone {
                    milestone: milestone.clone(),
                    window: o.window.id.clone(),
                    window_start: Some(date::to_proto(o.window.start)),
                    window_end: Some(date::to_proto(o.window.end)),
                    amount_pence: *amount_pence,
                    earned_on: Some(date::to_proto(*earned_on)),
                    dfe_declared: declaration.is_some_and(|d| d.active),
                    dfe_declaration_id: declaration.and_then(|d| d.dfe_declaration_id.clone()).unwrap_or_default(),
                    dfe_state: declaration.and_then(|d| d.dfe_state.clone()).unwrap_or_default(),
                })
            }
            Outcome::Excluded { .. } => None,
        })
        .collect();
    pb::GetAccrualResponse {
        participant_id: participant_id.to_owned(),
        as_of: Some(date::to_proto(as_of)),
        state: state(facts.state_on(as_of)) as i32,
        suspension: facts.suspension_on(as_of).map(|s| pb::Suspension {
            suspension_id: s.id.clone(),
            start_date: Some(date::to_proto(s.from)),
            until: Some(date::to_proto(s.until)),
        }),
        total_pence: milestones.iter().map(|m| m.amount_pence).sum(),
        milestones,
        schedule: schedule.id.clone(),
        cohort: schedule.cohort,
        delivery_partner_id: facts.placement_on(as_of).delivery_partner_id.clone(),
        funding_eligible: facts.funding_eligible,
        area_covered: facts.covered_on(as_of),
        current_schedule: since.map_or_else(|| schedule.id.clone(), |r| schedule::schedule_for_return(&schedule.id, r)),
        current_schedule_since: since.map(date::to_proto),
        windows: plan.windows.iter().copied().map(milestone_window).collect(),
    }
}

/// One page of a statement from its stored entries and the DfE's answers
/// to their declarations, by participant and declaration type.
pub fn statement_page(
    query: &StatementQuery,
    entries: Vec<StatementEntry>,
    declared: &HashMap<(String, String), DfeRecord>,
    total_pence: i64,
    next_page_token: String,
) -> pb::GetStatementResponse {
    let mut lines = Vec::new();
    let mut exclusions = Vec::new();
    for entry in entries {
        match entry {
            StatementEntry::Line { participant_id, delivery_partner_id, milestone, amount_pence } => {
                let declaration = declared.get(&(participant_id.clone(), milestone.clone()));
                lines.push(pb::StatementLine {
                    dfe_state: declaration.and_then(|d| d.dfe_state.clone()).unwrap_or_default(),
                    dfe_declaration_id: declaration.and_then(|d| d.dfe_declaration_id.clone()).unwrap_or_default(),
                    participant_id,
                    delivery_partner_id,
                    milestone,
                    amount_pence,
                })
            }
            StatementEntry::Excluded { participant_id, reason: why, detail } => {
                exclusions.push(pb::Exclusion { participant_id, reason: reason(why) as i32, detail })
            }
        }
    }
    pb::GetStatementResponse {
        window: query.window_id.clone(),
        delivery_partner_id: query.delivery_partner_id.clone().map(String::from).unwrap_or_default(),
        lines,
        exclusions,
        total_pence,
        next_page_token,
    }
}
