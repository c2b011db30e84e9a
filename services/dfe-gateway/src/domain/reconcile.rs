//! X7: the DfE's view compared with ours. Pure: what was read from the DfE
//! and what the gateway decided go in, every difference comes out; nothing
//! is changed on either side.

use std::collections::{BTreeMap, BTreeSet};

/// A participant as the DfE lists it (its first ECF enrolment).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TheirParticipant {
    pub dfe_participant_id: String,
    pub trn: String,
    pub training_status: String,
    pub schedule_identifier: String,
}

/// A declaration as the DfE lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TheirDeclaration {
    pub dfe_declaration_id: String,
    pub dfe_participant_id: String,
    pub declaration_type: String,
    pub state: String,
}

/// A participant as the gateway tracks them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OurParticipant {
    pub participant_id: String,
    pub dfe_participant_id: Option<String>,
    pub trn: String,
    pub training_status: String,
    pub schedule_identifier: String,
}

/// A declaration as the gateway holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OurDeclaration {
    pub participant_id: String,
    pub declaration_type: String,
    pub dfe_declaration_id: Option<String>,
    pub state: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Kind {
    Status,
    Schedule,
    DeclarationMissingAtDfe,
    DeclarationMissingHere,
    DeclarationState,
    ParticipantMissingAtDfe,
    MatchAvailable,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Difference {
    pub kind: Kind,
    pub participant_id: String,
    pub dfe_participant_id: String,
    pub declaration_type: String,
    pub dfe_declaration_id: String,
    pub ours: String,
    pub theirs: String,
    pub detail: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Report {
    pub differences: Vec<Difference>,
    pub matching_participants: usize,
    pub matching_declarations: usize,
}

/// Compares. `complete` is true when everything was read (no
/// `updated_since`): only then is a record absent from the DfE's lists
/// missing there, rather than merely unchanged since the date.
pub fn compare(
    ours: &[OurParticipant],
    our_declarations: &[OurDeclaration],
    theirs: &[TheirParticipant],
    their_declarations: &[TheirDeclaration],
    complete: bool,
) -> Report {
    let mut report = Report::default();
    let theirs_by_id: BTreeMap<&str, &TheirParticipant> =
        theirs.iter().map(|t| (t.dfe_participant_id.as_str(), t)).collect();
    let ours_by_dfe: BTreeMap<&str, &OurParticipant> =
        ours.iter().filter_map(|o| o.dfe_participant_id.as_deref().map(|d| (d, o))).collect();
    let diff = |kind, o: &OurParticipant, dfe: &str, ours: &str, theirs: &str, detail: String| Difference {
        kind,
        participant_id: o.participant_id.clone(),
        dfe_participant_id: dfe.to_owned(),
        declaration_type: String::new(),
        dfe_declaration_id: String::new(),
        ours: ours.to_owned(),
        theirs: theirs.to_owned(),
        detail,
    };
    for o in ours {
        match &o.dfe_participant_id {
            Some(dfe) => match theirs_by_id.get(dfe.as_str()) {
                None if complete => report.differences.push(diff(
                    Kind::ParticipantMissingAtDfe,
                    o,
                    dfe,
                    &o.training_status,
                    "",
                    format!("the DfE does not list participant {dfe}: check the DfE id set for {}", o.participant_id),
                )),
                None => {}
                Some(t) => {
                    let mut agrees = |kind, we: &str, ours: &str, theirs: &str| {
                        let same = ours == theirs;
                        if !same {
                            let detail = format!("we {we} {ours}, the DfE has {theirs}");
                            report.differences.push(diff(kind, o, dfe, ours, theirs, detail));
                        }
                        same
                    };
                    let status = agrees(Kind::Status, "reported", &o.training_status, &t.training_status);
                    // An empty schedule is one not decided yet: nothing to compare.
                    let schedule = o.schedule_identifier.is_empty()
                        || agrees(Kind::Schedule, "decided", &o.schedule_identifier, &t.schedule_identifier);
                    if status && schedule {
                        report.matching_participants += 1;
                    }
                }
            },
            None if !o.trn.is_empty() => {
                for t in
                    theirs.iter().filter(|t| t.trn == o.trn && !ours_by_dfe.contains_key(t.dfe_participant_id.as_str()))
                {
                    report.differences.push(diff(
                        Kind::MatchAvailable,
                        o,
                        &t.dfe_participant_id,
                        "",
                        &t.dfe_participant_id,
                        format!(
                            "the DfE lists TRN {} as {}: an admin may set it (SetDfeParticipantId) if it is this person",
                            o.trn, t.dfe_participant_id
                        ),
                    ));
                }
            }
            None => {}
        }
    }

    let their_declarations_by_id: BTreeMap<&str, &TheirDeclaration> =
        their_declarations.iter().map(|t| (t.dfe_declaration_id.as_str(), t)).collect();
    let mut ours_known: BTreeSet<&str> = BTreeSet::new();
    let dfe_of = |participant_id: &str| {
        ours.iter()
            .find(|o| o.participant_id == participant_id)
            .and_then(|o| o.dfe_participant_id.clone())
            .unwrap_or_default()
    };
    for d in our_declarations {
        let Some(id) = d.dfe_declaration_id.as_deref() else { continue };
        ours_known.insert(id);
        let difference = |kind, theirs: &str, detail: String| Difference {
            kind,
            participant_id: d.participant_id.clone(),
            dfe_participant_id: dfe_of(&d.participant_id),
            declaration_type: d.declaration_type.clone(),
            dfe_declaration_id: id.to_owned(),
            ours: d.state.clone(),
            theirs: theirs.to_owned(),
            detail,
        };
        match their_declarations_by_id.get(id) {
            None if complete => report.differences.push(difference(
                Kind::DeclarationMissingAtDfe,
                "",
                format!("the DfE does not list our {} declaration {id}", d.declaration_type),
            )),
            None => {}
            Some(t) if t.state != d.state => report.differences.push(difference(
                Kind::DeclarationState,
                &t.state,
                format!("the {} declaration is {} here, {} at the DfE", d.declaration_type, d.state, t.state),
            )),
            Some(_) => report.matching_declarations += 1,
        }
    }
    for t in their_declarations.iter().filter(|t| !ours_known.contains(t.dfe_declaration_id.as_str())) {
        let participant_id =
            ours_by_dfe.get(t.dfe_participant_id.as_str()).map(|o| o.participant_id.clone()).unwrap_or_default();
        report.differences.push(Difference {
            kind: Kind::DeclarationMissingHere,
            participant_id,
            dfe_participant_id: t.dfe_participant_id.clone(),
            declaration_type: t.declaration_type.clone(),
            dfe_declaration_id: t.dfe_declaration_id.clone(),
            ours: String::new(),
            theirs: t.state.clone(),
            detail: format!(
                "the DfE holds a {} declaration {} ({}) we did not make",
                t.declaration_type, t.dfe_declaration_id, t.state
            ),
        });
    }
    report
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ours(id: &str, dfe: Option<&str>, trn: &str, status: &str) -> OurParticipant {
        OurParticipant {
            participant_id: id.into(),
            dfe_participant_id: dfe.map(str::to_owned),
            trn: trn.into(),
            training_status: status.into(),
            schedule_identifier: "ecf-standard-september".into(),
        }
    }

    fn theirs(dfe: &str, trn: &str, status: &str) -> TheirParticipant {
        TheirParticipant {
            dfe_participant_id: dfe.into(),
            trn: trn.into(),
            training_status: status.into(),
            schedule_identifier: "ecf-standard-september".into(),
        }
    }

    #[test]
    fn x7_every_difference_is_reported_and_agreement_counted() {
        let our = [
            ours("a", Some("A"), "1000001", "active"),
            ours("b", Some("B"), "1000002", "deferred"),
            ours("c", None, "1000003", "active"),
            ours("d", Some("D"), "1000004", "active"),
        ];
        let their =
            [theirs("A", "1000001", "active"), theirs("B", "1000002", "active"), theirs("C", "1000003", "active")];
        let our_declarations = [
            OurDeclaration {
                participant_id: "a".into(),
                declaration_type: "started".into(),
                dfe_declaration_id: Some("d1".into()),
                state: "submitted".into(),
            },
            OurDeclaration {
                participant_id: "a".into(),
                declaration_type: "retained-1".into(),
                dfe_declaration_id: Some("d2".into()),
                state: "submitted".into(),
            },
        ];
        let their_declarations = [
            TheirDeclaration {
                dfe_declaration_id: "d1".into(),
                dfe_participant_id: "A".into(),
                declaration_type: "started".into(),
                state: "submitted".into(),
            },
            TheirDeclaration {
                dfe_declaration_id: "d2".into(),
                dfe_participant_id: "A".into(),
                declaration_type: "retained-1".into(),
                state: "eligible".into(),
            },
            TheirDeclaration {
                dfe_declaration_id: "d3".into(),
                dfe_participant_id: "B".into(),
                declaration_type: "started".into(),
                state: "paid".into(),
            },
        ];
        let report = compare(&our, &our_declarations, &their, &their_declarations, true);
        let kinds: Vec<(Kind, &str)> = report.differences.iter().map(|d| (d.kind, d.participant_id.as_str())).collect();
        assert_eq!(
            kinds,
            [
                (Kind::Status, "b"),
                (Kind::MatchAvailable, "c"),
                (Kind::ParticipantMissingAtDfe, "d"),
                (Kind::DeclarationState, "a"),
                (Kind::DeclarationMissingHere, "b"),
            ]
        );
        assert_eq!((report.matching_participants, report.matching_declarations), (1, 1));
        // Read since a date: absence means unchanged, not missing.
        let partial = compare(&our, &our_declarations, &their, &their_declarations, false);
        assert!(partial.differences.iter().all(|d| d.kind != Kind::ParticipantMissingAtDfe));
    }
}
