//! Delivery partners, schools and registration (R1..R4, X1), and reading
//! participants back.

use super::apply::enqueue;
use super::shown::{WithdrawnMentors, shown_with, with_dfe_id};
use super::{
    Registry, actor, current, idempotency_key, load, load_in_reach_with_dfe_id, place, school_in_reach, school_place,
};
use crate::convert;
use crate::domain::lifecycle;
use crate::domain::policy;
use crate::domain::preconditions;
use crate::domain::records::{DeliveryPartner, School};
use crate::domain::registry::{self, SchoolRef};
use crate::domain::view::ParticipantRecord;
use crate::store::{self, ListFilter};
use chrono::{NaiveDate, NaiveDateTime};
use steplab_platform::db::DbConn;
use steplab_platform::error::ServiceError;
use steplab_platform::ids::ParticipantId;
use steplab_platform::paging::Pages;
use steplab_platform::{Caller, FieldViolation, FieldViolations, observability};
use steplab_proto::steplab::participant::v1 as pb;

/// ALREADY_EXISTS for a TRN already registered: the holder is named only to
/// a caller whose scope covers them, so a TRN reveals nothing about another
/// delivery partner's participants beyond being taken.
fn trn_taken(
    conn: &mut DbConn,
    caller: &Caller,
    new: &registry::NewParticipant,
    trn: &str,
    holder: &str,
    today: NaiveDate,
) -> Result<ServiceError, ServiceError> {
    let what = new.kind.describe();
    let record = load(conn, holder)?;
    Ok(ServiceError::AlreadyExists(if policy::reaches(caller, place(&current(&record, today)?)) {
        format!("{what} with TRN {trn} is already registered as participant {holder}")
    } else {
        format!("{what} with TRN {trn} is already registered")
    }))
}

/// X1: stores the DfE id of an ECT or mentor and tells the gateway, which
/// then sends the calls that waited for it.
fn set_dfe_id(
    conn: &mut DbConn,
    record: &ParticipantRecord,
    dfe_id: &str,
    now: NaiveDateTime,
) -> Result<(), ServiceError> {
    let Some(track) = crate::domain::dfe::track(record, Some(dfe_id.to_owned())) else {
        return Err(FieldViolations::from(FieldViolation::new(
            "dfe_participant_id",
            "induction coordinators are not reported to the DfE: leave it empty",
        ))
        .into());
    };
    store::set_dfe_participant_id(conn, &record.id, dfe_id)?;
    store::enqueue_for_dfe(conn, vec![track], now)
}

impl Registry {
    pub async fn create_delivery_partner(
        &self,
        caller: Caller,
        req: pb::CreateDeliveryPartnerRequest,
    ) -> Result<pb::CreateDeliveryPartnerResponse, ServiceError> {
        policy::may_create_delivery_partner(&caller)?;
        let name = convert::name("name", &req.name).map_err(FieldViolations::from)?;
        let key = idempotency_key(&caller, &req.idempotency_key)?;
        let partner = DeliveryPartner { id: convert::new_id(), name, created_at: self.clock.now() };
        self.mutate(key, req.validate_only, "CreateDeliveryPartner", &req, move |conn| {
            store::insert_delivery_partner(conn, &partner)?;
            Ok(pb::CreateDeliveryPartnerResponse {
                effects: None,
                delivery_partner: Some(convert::delivery_partner(partner)),
            })
        })
        .await
    }

    pub async fn create_school(
        &self,
        caller: Caller,
        req: pb::CreateSchoolRequest,
    ) -> Result<pb::CreateSchoolResponse, ServiceError> {
        policy::may_create_school(&caller)?;
        let new = convert::create_school(&req)?;
        let key = idempotency_key(&caller, &req.idempotency_key)?;
        let school = School {
            id: convert::new_id(),
            urn: new.urn,
            name: new.name,
            delivery_partner_id: new.delivery_partner_id.into_string(),
            area_covered: new.area_covered,
            created_at: self.clock.now(),
        };
        self.mutate(key, req.validate_only, "CreateSchool", &req, move |conn| {
            if store::find_delivery_partner(conn, &school.delivery_partner_id)?.is_none() {
                let id = &school.delivery_partner_id;
                return Err(ServiceError::not_found(
                    "delivery_partner",
                    id.as_str(),
                    format!("delivery partner {id} does not exist: create it first"),
                ));
            }
            store::insert_school(conn, &school)?;
            Ok(pb::CreateSchoolResponse { effects: None, school: Some(convert::school(school)) })
        })
        .await
    }

    pub async fn register(
        &self,
        caller: Caller,
        req: pb::RegisterParticipantRequest,
    ) -> Result<pb::RegisterParticipantResponse, ServiceError> {
        policy::may_register_somewhere(&caller)?;
        let registration = convert::register(&req)?;
        let dfe_id = convert::optional_dfe_participant_id("dfe_participant_id", &req.dfe_participant_id)
            .map_err(FieldViolations::from)?;
        let key = idempotency_key(&caller, &req.idempotency_key)?;
        let (today, now) = (self.clock.today(), self.clock.now());
        self.mutate(key, req.validate_only, "RegisterParticipant", &req, move |conn| {
            let school = school_in_reach(conn, &caller, &registration.school_id)?;
            policy::may_register(&caller, school_place(&school))?;
            let school = SchoolRef {
                id: school.id,
                delivery_partner_id: school.delivery_partner_id,
                area_covered: school.area_covered,
            };
            let new = registry::register(convert::new_id(), registration, &school, today)?;
            if let Some(trn) = &new.trn
                && let Some(holder) = store::trn_holder(conn, trn, new.kind)?
            {
                return Err(trn_taken(conn, &caller, &new, trn, &holder, today)?);
            }
            let record = store::insert_participant(conn, &new, &actor(&caller), now, today)?;
            observability::note_participant(&record.id);
            // C1: content release and payments enrol the participant.
            enqueue(conn, lifecycle::enrol(&record)?.commands, now)?;
            // X1: the DfE id given at registration, and the gateway told of it.
            if let Some(dfe_id) = &dfe_id {
                set_dfe_id(conn, &record, dfe_id, now)?;
            }
            let mut participant = convert::participant(current(&record, today)?);
            // X1: a new participant's DfE id is the one just given, if any.
            participant.dfe_participant_id = dfe_id.unwrap_or_default();
            Ok(pb::RegisterParticipantResponse { effects: None, participant: Some(participant) })
        })
        .await
    }

    /// X1: an admin records an ECT's or mentor's DfE participant id.
    pub async fn set_dfe_participant_id(
        &self,
        caller: Caller,
        req: pb::SetDfeParticipantIdRequest,
    ) -> Result<pb::SetDfeParticipantIdResponse, ServiceError> {
        policy::may_set_dfe_participant_id(&caller)?;
        let id = ParticipantId::parse("participant_id", &req.participant_id).map_err(FieldViolations::from)?;
        let dfe_id = convert::dfe_participant_id("dfe_participant_id", &req.dfe_participant_id)
            .map_err(FieldViolations::from)?;
        let (today, now) = (self.clock.today(), self.clock.now());
        self.mutate(None, req.validate_only, "SetDfeParticipantId", &req, move |conn| {
            let record = load(conn, &id)?;
            preconditions::reported_to_dfe(&record)?;
            store::lock_participants(conn, std::slice::from_ref(&record.id))?;
            set_dfe_id(conn, &record, &dfe_id, now)?;
            let participant = convert::participant(current(&record, today)?);
            Ok(pb::SetDfeParticipantIdResponse { effects: None, participant: Some(with_dfe_id(conn, participant)?) })
        })
        .await
    }

    pub async fn get(
        &self,
        caller: Caller,
        req: pb::GetParticipantRequest,
    ) -> Result<pb::GetParticipantResponse, ServiceError> {
        let query = convert::get(&req)?;
        let today = self.clock.today();
        self.db
            .read_point(move |conn| {
                // At most two statements: the participant with history and
                // DfE id, then an ECT's named mentors (W9).
                let (record, view_today, dfe_id) =
                    load_in_reach_with_dfe_id(conn, &caller, &query.participant_id, today)?;
                policy::may_read(&caller, place(&view_today))?;
                let view = preconditions::view_on(&record, query.as_of.unwrap_or(today))?;
                let mut participant = shown_with(conn, view, &mut WithdrawnMentors::new())?;
                participant.dfe_participant_id = dfe_id.unwrap_or_default();
                Ok(pb::GetParticipantResponse { participant: Some(participant) })
            })
            .await
    }

    pub async fn list(
        &self,
        caller: Caller,
        req: pb::ListParticipantsRequest,
    ) -> Result<pb::ListParticipantsResponse, ServiceError> {
        let pages = Pages::of(&caller.sub, &req);
        let query = convert::list(&req, &pages)?;
        let today = self.clock.today();
        self.db
            .read(move |conn| {
                let school_filter = match &query.school_id {
                    None => None,
                    Some(id) => Some(school_in_reach(conn, &caller, id)?),
                };
                let scope = policy::list_scope(
                    &caller,
                    school_filter.as_ref().map(|s| (s.id.as_str(), s.delivery_partner_id.as_str())),
                    query.delivery_partner_id.as_deref(),
                )?;
                let filter = ListFilter {
                    scope,
                    school_id: query.school_id.map(String::from),
                    delivery_partner_id: query.delivery_partner_id.map(String::from),
                    kind: query.kind,
                    status: query.status,
                    as_of: today,
                };
                let (records, next) = store::list_participants(conn, &filter, query.after, query.page_size)?;
                let mut withdrawn = WithdrawnMentors::new();
                // X1: the page's DfE ids in one read.
                let ids: Vec<String> = records.iter().map(|r| r.id.clone()).collect();
                let dfe_ids = store::dfe_participant_ids(conn, &ids)?;
                let participants = records
                    .iter()
                    .map(|r| {
                        let mut shown = shown_with(conn, current(r, today)?, &mut withdrawn)?;
                        shown.dfe_participant_id = dfe_ids.get(&r.id).cloned().unwrap_or_default();
                        Ok(shown)
                    })
                    .collect::<Result<_, ServiceError>>()?;
                Ok(pb::ListParticipantsResponse { participants, next_page_token: pages.token(next.as_deref()) })
            })
            .await
    }
}
