//! X7: the DfE's participants and declarations read back and compared with
//! what the gateway decided, for the operator. Changes nothing.

use super::{Gateway, denied};
use crate::domain::RuleViolation;
use crate::domain::mapping;
use crate::domain::policy;
use crate::store;
use chrono::NaiveDate;
use steplab_platform::error::ServiceError;
use steplab_platform::{Caller, date};
use steplab_proto::steplab::dfe::v1 as pb;

impl Gateway {
    /// X7: the DfE's participants and declarations read back and compared
    /// with what the gateway decided (admin). Changes nothing.
    pub async fn reconcile(
        &self,
        caller: Caller,
        req: pb::ReconcileRequest,
    ) -> Result<pb::ReconcileResponse, ServiceError> {
        use crate::domain::reconcile::{self as rec, Kind};
        policy::may_administer(&caller).map_err(|d| denied(&caller, "Reconcile", d))?;
        let since: Option<NaiveDate> = date::optional("updated_since", req.updated_since.as_ref())?;
        let Some(dfe) = &self.dfe else {
            return Err(RuleViolation::new(
                "DFE_NOT_CONFIGURED",
                "the DfE sync is off: set STEPLAB_DFE_API_URL and STEPLAB_DFE_TOKEN_FILE to reconcile with the DfE",
            )
            .with("setting", "STEPLAB_DFE_API_URL")
            .into());
        };
        let since_text = since.map(mapping::declaration_date_time);
        let unavailable =
            |e: String| ServiceError::PeerUnavailable(format!("the DfE cannot be read now, retry later: {e}"));
        let participants =
            dfe.read_all("/api/v3/participants/ecf", since_text.as_deref()).await.map_err(unavailable)?;
        let declarations =
            dfe.read_all("/api/v3/participant-declarations", since_text.as_deref()).await.map_err(unavailable)?;
        let text = |v: &serde_json::Value| v.as_str().unwrap_or_default().to_owned();
        let theirs: Vec<rec::TheirParticipant> = participants
            .iter()
            .map(|p| {
                let attributes = &p["attributes"];
                let enrolment = &attributes["ecf_enrolments"][0];
                rec::TheirParticipant {
                    dfe_participant_id: text(&p["id"]),
                    trn: text(&attributes["teacher_reference_number"]),
                    training_status: text(&enrolment["training_status"]),
                    schedule_identifier: text(&enrolment["schedule_identifier"]),
                }
            })
            .collect();
        let their_declarations: Vec<rec::TheirDeclaration> = declarations
            .iter()
            .map(|d| rec::TheirDeclaration {
                dfe_declaration_id: text(&d["id"]),
                dfe_participant_id: text(&d["attributes"]["participant_id"]),
                declaration_type: text(&d["attributes"]["declaration_type"]),
                state: text(&d["attributes"]["state"]),
            })
            .collect();
        let (ours, our_declarations) = self
            .db
            .read(|conn| Ok::<_, ServiceError>((store::all_tracked(conn)?, store::all_declarations(conn)?)))
            .await?;
        let ours: Vec<rec::OurParticipant> = ours
            .into_iter()
            .map(|t| rec::OurParticipant {
                participant_id: t.participant_id,
                dfe_participant_id: t.dfe_participant_id,
                trn: t.trn,
                training_status: t.training_status,
                schedule_identifier: t.schedule_identifier,
            })
            .collect();
        let our_declarations: Vec<rec::OurDeclaration> = our_declarations
            .into_iter()
            .map(|d| rec::OurDeclaration {
                participant_id: d.participant_id,
                declaration_type: d.declaration_type,
                dfe_declaration_id: d.dfe_declaration_id,
                state: d.state,
            })
            .collect();
        let report = rec::compare(&ours, &our_declarations, &theirs, &their_declarations, since.is_none());
        let kind = |k: Kind| {
            (match k {
                Kind::Status => pb::DifferenceKind::Status,
                Kind::Schedule => pb::DifferenceKind::Schedule,
                Kind::DeclarationMissingAtDfe => pb::DifferenceKind::DeclarationMissingAtDfe,
                Kind::DeclarationMissingHere => pb::DifferenceKind::DeclarationMissingHere,
                Kind::DeclarationState => pb::DifferenceKind::DeclarationState,
                Kind::ParticipantMissingAtDfe => pb::DifferenceKind::ParticipantMissingAtDfe,
                Kind::MatchAvailable => pb::DifferenceKind::MatchAvailable,
            }) as i32
        };
        let count = |n: usize| i32::try_from(n).unwrap_or(i32::MAX);
        Ok(pb::ReconcileResponse {
            differences: report
                .differences
                .into_iter()
                .map(|d| pb::Difference {
                    kind: kind(d.kind),
                    participant_id: d.participant_id,
                    dfe_participant_id: d.dfe_participant_id,
                    declaration_type: d.declaration_type,
                    dfe_declaration_id: d.dfe_declaration_id,
                    ours: d.ours,
                    theirs: d.theirs,
                    detail: d.detail,
                })
                .collect(),
            matching_participants: count(report.matching_participants),
            matching_declarations: count(report.matching_declarations),
            dfe_participants_read: count(theirs.len()),
            dfe_declarations_read: count(their_declarations.len()),
        })
    }
}
