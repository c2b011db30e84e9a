//! Declarations to the DfE (X5, X6): which of a payee's milestones must be
//! declared, which declarations must be voided, and the DfE's words for
//! them. Pure: the service runs [`compare`] in the transaction of every change
//! that can change what is earned, and enqueues what it answers.
//!
//! What is earned is exactly what GetAccrual lists as earned as of today
//! ([`crate::domain::accrual::earned_by`]), so the two never disagree. A
//! milestone is earned on its qualifying engagement day, which is never
//! after today (RecordEngagement refuses the future); every other fact only
//! decides whether recorded engagement qualifies. So what is earned as of
//! today changes only when a fact is recorded, never because a day passes,
//! and no periodic sweep is needed.
//!
//! Once each: a declaration is per participant and DfE declaration type.
//! A type earned and not (or no longer) declared is declared; a type
//! declared and no longer earned is voided; anything else changes nothing,
//! so comparing again after a change that changed nothing enqueues nothing.
//! A type still earned but now qualified by another day (engagement
//! backdated into an earlier window shifts milestones) keeps its
//! declaration: voiding a paid declaration is a clawback, and the
//! milestone is still met.

use crate::domain::schedule::Variant;
use crate::domain::{EngagementKind, PayeeKind};
use chrono::NaiveDate;

/// The DfE's declaration types (X5, F1).
pub use steplab_platform::dfe::DECLARATION_TYPES;

/// The DfE's declaration states (X5).
pub const DFE_STATES: [&str; 8] =
    ["submitted", "eligible", "payable", "paid", "voided", "ineligible", "awaiting-clawback", "clawed-back"];

/// The first cohort the DfE's "Post2024" declaration rules apply to
/// (`ParticipantDeclarationPost2024*DataRequest`: "from cohort 2025 onwards").
pub const FIRST_POST_2024_COHORT: i32 = 2025;

pub fn is_declaration_type(s: &str) -> bool {
    DECLARATION_TYPES.contains(&s)
}

pub fn is_dfe_state(s: &str) -> bool {
    DFE_STATES.contains(&s)
}

/// Who is declared for, as the DfE's rules depend on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Declarant {
    pub kind: PayeeKind,
    pub cohort: i32,
    pub variant: Variant,
}

impl Declarant {
    fn post_2024(&self) -> bool {
        self.cohort >= FIRST_POST_2024_COHORT
    }

    /// The DfE takes only `started` and `completed` for a mentor from cohort
    /// 2025 on (`ParticipantDeclarationPost2024MentorDataRequest`); every
    /// type for an ECT, and for a mentor of an earlier cohort.
    pub fn declarable(&self, declaration_type: &str) -> bool {
        match self.kind {
            PayeeKind::Mentor if self.post_2024() => matches!(declaration_type, "started" | "completed"),
            _ => is_declaration_type(declaration_type),
        }
    }

    /// X5: the `evidence_held` of a declaration, where the DfE's spec requires
    /// one (every type but `started`); `None` where it does not.
    ///
    /// From cohort 2025 on, the DfE accepts for an ECT's `retained-2` and
    /// `completed` and a mentor's `completed` only the 75% engagement
    /// threshold words: payments counts those milestones earned (F2), so it
    /// states the threshold met, `-reduced-induction` on a reduced schedule.
    /// Otherwise the evidence is the qualifying engagement's kind: a module
    /// is self-study, a coaching session, clinic, conference or event is a
    /// training event, anything else `other` (the words every cohort's spec
    /// accepts).
    pub fn evidence_held(&self, declaration_type: &str, qualified_by: EngagementKind) -> Option<&'static str> {
        if declaration_type == "started" {
            return None;
        }
        let threshold = match (self.kind, declaration_type) {
            (PayeeKind::Ect, "retained-2" | "completed") | (PayeeKind::Mentor, "completed") => self.post_2024(),
            _ => false,
        };
        if threshold {
            return Some(if self.variant == Variant::Reduced {
                "75-percent-engagement-met-reduced-induction"
            } else {
                "75-percent-engagement-met"
            });
        }
        Some(match qualified_by {
            EngagementKind::ModuleCompleted => "self-study-material-completed",
            EngagementKind::CoachingSession
            | EngagementKind::Clinic
            | EngagementKind::Conference
            | EngagementKind::Event
            | EngagementKind::CoachingOnCoaching => "training-event-attended",
            EngagementKind::Other => "other",
        })
    }
}

/// A milestone earned as of today (GetAccrual's answer).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Earned {
    /// The milestone, which is the DfE declaration type.
    pub declaration_type: String,
    /// The window it was earned in (`<schedule>/<cohort>/<milestone>`).
    pub window_id: String,
    /// The qualifying engagement's day.
    pub earned_on: NaiveDate,
    /// The kind of the engagement recorded first on that day.
    pub qualified_by: EngagementKind,
}

/// A declaration payments made before.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Declared {
    pub declaration_type: String,
    /// False once payments voided it.
    pub active: bool,
}

/// A declaration payments made, with the DfE's latest answer, as reads
/// (GetAccrual, statements) report it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DfeRecord {
    pub declaration_type: String,
    /// False once payments voided it (X6).
    pub active: bool,
    pub dfe_declaration_id: Option<String>,
    pub dfe_state: Option<String>,
}

impl DfeRecord {
    pub fn declared(&self) -> Declared {
        Declared { declaration_type: self.declaration_type.clone(), active: self.active }
    }
}

/// A declaration to send to the DfE gateway.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Declaration {
    pub declaration_type: String,
    pub window_id: String,
    pub declaration_date: NaiveDate,
    /// Empty where the spec asks for none.
    pub evidence_held: String,
}

/// What must change between the DfE's view and payments'.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// X5: a milestone earned and not declared (or declared and voided).
    Declare(Declaration),
    /// X6: a declared milestone no longer earned.
    Void { declaration_type: String },
}

/// X5: whether an earned milestone of `declaration_type` is still to be
/// declared: the DfE takes it and no declaration of it is in force.
pub fn to_declare(declarant: &Declarant, declared: &[Declared], declaration_type: &str) -> bool {
    declarant.declarable(declaration_type)
        && !declared.iter().any(|d| d.active && d.declaration_type == declaration_type)
}

/// X5, X6: the declarations and voids that bring what was declared in line
/// with what is earned; empty when they already agree.
pub fn compare(declarant: &Declarant, earned: &[Earned], declared: &[Declared]) -> Vec<Step> {
    let mut steps: Vec<Step> = earned
        .iter()
        .filter(|e| to_declare(declarant, declared, &e.declaration_type))
        .map(|e| {
            Step::Declare(Declaration {
                declaration_type: e.declaration_type.clone(),
                window_id: e.window_id.clone(),
                declaration_date: e.earned_on,
                evidence_held: declarant
                    .evidence_held(&e.declaration_type, e.qualified_by)
                    .unwrap_or_default()
                    .to_owned(),
            })
        })
        .collect();
    // Voids after declarations, in the order declared: the gateway sends
    // them in this order per participant.
    steps.extend(
        declared
            .iter()
            .filter(|d| d.active && !earned.iter().any(|e| e.declaration_type == d.declaration_type))
            .map(|d| Step::Void { declaration_type: d.declaration_type.clone() }),
    );
    steps
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::test_support::d;

    fn ect(cohort: i32) -> Declarant {
        Declarant { kind: PayeeKind::Ect, cohort, variant: Variant::Standard }
    }

    fn earned(t: &str, on: &str, kind: EngagementKind) -> Earned {
        Earned {
            declaration_type: t.into(),
            window_id: format!("ecf-standard-september/2025/{t}"),
            earned_on: d(on),
            qualified_by: kind,
        }
    }

    fn declared(t: &str, active: bool) -> Declared {
        Declared { declaration_type: t.into(), active }
    }

    #[test]
    fn x5_each_newly_earned_milestone_is_declared_with_its_qualifying_day() {
        let steps = compare(
            &ect(2025),
            &[
                earned("started", "2025-09-15", EngagementKind::ModuleCompleted),
                earned("retained-1", "2026-01-10", EngagementKind::Clinic),
            ],
            &[declared("started", true)],
        );
        assert_eq!(
            steps,
            vec![Step::Declare(Declaration {
                declaration_type: "retained-1".into(),
                window_id: "ecf-standard-september/2025/retained-1".into(),
                declaration_date: d("2026-01-10"),
                evidence_held: "training-event-attended".into(),
            })]
        );
    }

    #[test]
    fn x5_comparing_again_changes_nothing() {
        let earned = [earned("started", "2025-09-15", EngagementKind::ModuleCompleted)];
        assert!(compare(&ect(2025), &earned, &[declared("started", true)]).is_empty());
    }

    #[test]
    fn x6_a_declared_milestone_no_longer_earned_is_voided_and_declared_again_once_earned_again() {
        let steps = compare(&ect(2025), &[], &[declared("started", true), declared("retained-1", false)]);
        assert_eq!(steps, vec![Step::Void { declaration_type: "started".into() }]);
        let again = compare(
            &ect(2025),
            &[earned("started", "2025-10-01", EngagementKind::Other)],
            &[declared("started", false)],
        );
        assert!(
            matches!(&again[..], [Step::Declare(d)] if d.declaration_type == "started" && d.evidence_held.is_empty())
        );
    }

    /// What the declarations are after `steps` were applied.
    fn applied(before: &[Declared], steps: &[Step]) -> Vec<Declared> {
        let mut after = before.to_vec();
        for step in steps {
            let (t, active) = match step {
                Step::Declare(d) => (&d.declaration_type, true),
                Step::Void { declaration_type } => (declaration_type, false),
            };
            match after.iter_mut().find(|d| &d.declaration_type == t) {
                Some(d) => d.active = active,
                None => after.push(declared(t, active)),
            }
        }
        after
    }

    #[test]
    fn x5_x6_once_each_applied_steps_leave_nothing_to_do_and_match_what_is_earned() {
        let types = ["started", "retained-1", "retained-2", "completed"];
        // Every earned subset against every prior state of each type (never
        // declared, declared, voided).
        for earned_mask in 0..(1u32 << types.len()) {
            let earned: Vec<Earned> = types
                .iter()
                .enumerate()
                .filter(|(i, _)| earned_mask & (1 << i) != 0)
                .map(|(_, t)| earned(t, "2026-02-01", EngagementKind::Clinic))
                .collect();
            for prior in 0..3u32.pow(types.len() as u32) {
                let declared: Vec<Declared> = types
                    .iter()
                    .enumerate()
                    .filter_map(|(i, t)| match prior / 3u32.pow(i as u32) % 3 {
                        0 => None,
                        state => Some(declared(t, state == 1)),
                    })
                    .collect();
                let steps = compare(&ect(2025), &earned, &declared);
                let after = applied(&declared, &steps);
                assert!(compare(&ect(2025), &earned, &after).is_empty(), "{earned:?} {declared:?}");
                let mut active: Vec<&str> =
                    after.iter().filter(|d| d.active).map(|d| d.declaration_type.as_str()).collect();
                let mut wanted: Vec<&str> = earned.iter().map(|e| e.declaration_type.as_str()).collect();
                active.sort_unstable();
                wanted.sort_unstable();
                assert_eq!(active, wanted, "{declared:?}");
            }
        }
    }

    #[test]
    fn x5_evidence_held_where_the_spec_asks_for_it() {
        let post = ect(2025);
        assert_eq!(post.evidence_held("started", EngagementKind::Clinic), None);
        assert_eq!(
            post.evidence_held("retained-1", EngagementKind::ModuleCompleted),
            Some("self-study-material-completed")
        );
        assert_eq!(post.evidence_held("retained-2", EngagementKind::Clinic), Some("75-percent-engagement-met"));
        assert_eq!(post.evidence_held("completed", EngagementKind::Other), Some("75-percent-engagement-met"));
        assert_eq!(post.evidence_held("extended-1", EngagementKind::CoachingSession), Some("training-event-attended"));
        let reduced = Declarant { variant: Variant::Reduced, ..post };
        assert_eq!(
            reduced.evidence_held("completed", EngagementKind::Other),
            Some("75-percent-engagement-met-reduced-induction")
        );
        // Before cohort 2025 the kind is the evidence, also for completed.
        let pre = ect(2024);
        assert_eq!(pre.evidence_held("retained-2", EngagementKind::Conference), Some("training-event-attended"));
        assert_eq!(pre.evidence_held("completed", EngagementKind::Other), Some("other"));
    }

    #[test]
    fn x5_a_mentor_from_cohort_2025_is_declared_started_and_completed_only() {
        let mentor = Declarant { kind: PayeeKind::Mentor, cohort: 2025, variant: Variant::Standard };
        let steps = compare(
            &mentor,
            &[
                earned("started", "2025-09-15", EngagementKind::CoachingSession),
                earned("retained-1", "2026-01-10", EngagementKind::CoachingSession),
            ],
            &[],
        );
        assert_eq!(steps.len(), 1, "{steps:?}");
        assert_eq!(mentor.evidence_held("completed", EngagementKind::Other), Some("75-percent-engagement-met"));
        let earlier = Declarant { cohort: 2024, ..mentor };
        assert!(earlier.declarable("retained-1"));
    }

    #[test]
    fn x5_the_dfe_words_are_checked() {
        assert!(is_declaration_type("extended-3") && !is_declaration_type("term-1"));
        assert!(is_dfe_state("awaiting-clawback") && !is_dfe_state("accepted"));
    }
}
