//! The participant service's use cases: each validates, checks permission,
//! and runs the domain decision and its storage in one unit of work. Public
//! mutating calls with a `request_id` store their answer in the same
//! transaction, so a repeat returns it and changes nothing.

use crate::convert;
use crate::domain::events::Actor;
use crate::domain::policy::{self, Place};
use crate::domain::registry::{self, SchoolRef};
use crate::domain::view::ParticipantRecord;
use crate::domain::{ParticipantView, RuleViolation};
use crate::error::ServiceError;
use crate::store::{self, DeliveryPartnerRow, ListFilter, SchoolRow};
use chrono::NaiveDate;
use steplab_platform::db::{Database, DbConn};
use steplab_platform::idempotency::{self, IdempotencyKey, Replay};
use steplab_platform::{Caller, Clock, FieldViolations, date};
use steplab_proto::steplab::participant::v1 as pb;

#[derive(Clone)]
pub struct Registry {
    db: Database,
    clock: Clock,
}

fn actor(caller: &Caller) -> Actor {
    Actor {
        sub: caller.sub.clone(),
        role: caller.role().as_str().to_owned(),
    }
}

fn place(view: &ParticipantView) -> Place<'_> {
    Place {
        school_id: &view.school_id,
        delivery_partner_id: &view.delivery_partner_id,
    }
}

fn school_place(row: &SchoolRow) -> Place<'_> {
    Place {
        school_id: &row.id,
        delivery_partner_id: &row.delivery_partner_id,
    }
}

fn idempotency_key(
    caller: &Caller,
    request_id: &str,
) -> Result<Option<IdempotencyKey>, ServiceError> {
    IdempotencyKey::parse("request_id", &caller.sub, request_id)
        .map_err(|v| ServiceError::InvalidArgument(v.into()))
}

fn load(conn: &mut DbConn, id: &str) -> Result<ParticipantRecord, ServiceError> {
    store::load_participant(conn, id)?
        .ok_or_else(|| ServiceError::NotFound(format!("participant {id} does not exist")))
}

/// The participant now: today, or their registration date while that is
/// still ahead (never the case for a registration, kept total for safety).
fn current(record: &ParticipantRecord, today: NaiveDate) -> Result<ParticipantView, ServiceError> {
    record
        .as_of(today.max(record.registered_on))
        .ok_or_else(|| {
            ServiceError::Internal(format!("participant {} has no current view", record.id))
        })
}

impl Registry {
    pub fn new(db: Database, clock: Clock) -> Self {
        Self { db, clock }
    }

    /// Runs a mutation in one write transaction, honouring `request_id`.
    async fn mutate<Req, Resp>(
        &self,
        key: Option<IdempotencyKey>,
        rpc: &'static str,
        request: &Req,
        f: impl FnOnce(&mut DbConn) -> Result<Resp, ServiceError> + Send + 'static,
    ) -> Result<Resp, ServiceError>
    where
        Req: prost::Message,
        Resp: prost::Message + Default + Send + 'static,
    {
        let request_bytes = request.encode_to_vec();
        let now = self.clock.now();
        self.db
            .write(move |conn| {
                if let Some(key) = &key {
                    match idempotency::lookup(conn, key, rpc, &request_bytes)? {
                        Replay::New => {}
                        Replay::Answered(bytes) => {
                            return Resp::decode(bytes.as_slice())
                                .map_err(|e| ServiceError::Internal(format!("stored answer unreadable: {e}")));
                        }
                        Replay::Conflict => {
                            return Err(RuleViolation::new(
                                "REQUEST_ID_REUSED",
                                "this request_id was already used for a different request: use a new request_id for a new request",
                            )
                            .into());
                        }
                    }
                }
                let response = f(conn)?;
                if let Some(key) = &key {
                    idempotency::record(conn, key, rpc, &request_bytes, &response.encode_to_vec(), now)?;
                }
                Ok(response)
            })
            .await
    }

    pub async fn create_delivery_partner(
        &self,
        caller: Caller,
        req: pb::CreateDeliveryPartnerRequest,
    ) -> Result<pb::CreateDeliveryPartnerResponse, ServiceError> {
        policy::may_create_delivery_partner(&caller)?;
        let name = convert::name("name", &req.name).map_err(FieldViolations::from)?;
        let key = idempotency_key(&caller, &req.request_id)?;
        let row = DeliveryPartnerRow {
            id: convert::new_id(),
            name,
            created_at: self.clock.now(),
        };
        self.mutate(key, "CreateDeliveryPartner", &req, move |conn| {
            store::insert_delivery_partner(conn, &row)?;
            Ok(pb::CreateDeliveryPartnerResponse {
                delivery_partner: Some(convert::delivery_partner(row)),
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
        let key = idempotency_key(&caller, &req.request_id)?;
        let row = SchoolRow {
            id: convert::new_id(),
            urn: new.urn,
            name: new.name,
            delivery_partner_id: new.delivery_partner_id,
            area_covered: new.area_covered,
            created_at: self.clock.now(),
        };
        self.mutate(key, "CreateSchool", &req, move |conn| {
            if store::find_delivery_partner(conn, &row.delivery_partner_id)?.is_none() {
                return Err(ServiceError::NotFound(format!(
                    "delivery partner {} does not exist: create it first",
                    row.delivery_partner_id
                )));
            }
            store::insert_school(conn, &row)?;
            Ok(pb::CreateSchoolResponse {
                school: Some(convert::school(row)),
            })
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
        let key = idempotency_key(&caller, &req.request_id)?;
        let (today, now) = (self.clock.today(), self.clock.now());
        self.mutate(key, "RegisterParticipant", &req, move |conn| {
            let school = store::find_school(conn, &registration.school_id)?.ok_or_else(|| {
                ServiceError::NotFound(format!("school {} does not exist", registration.school_id))
            })?;
            policy::may_register(&caller, school_place(&school))?;
            let school = SchoolRef {
                id: school.id,
                delivery_partner_id: school.delivery_partner_id,
            };
            let new = registry::register(convert::new_id(), registration, &school, today)?;
            let record = store::insert_participant(conn, &new, &actor(&caller), now, today)?;
            Ok(pb::RegisterParticipantResponse {
                participant: Some(convert::participant(current(&record, today)?)),
            })
        })
        .await
    }

    pub async fn get(
        &self,
        caller: Caller,
        req: pb::GetParticipantRequest,
    ) -> Result<pb::GetParticipantResponse, ServiceError> {
        let mut v = FieldViolations::default();
        let id = v.check(convert::id("participant_id", &req.participant_id));
        let as_of = v.check(date::optional("as_of", req.as_of.as_ref()));
        let (id, as_of) = v.finish(|| Some((id?, as_of?)))?;
        let today = self.clock.today();
        self.db
            .read(move |conn| {
                let record = load(conn, &id)?;
                policy::may_read(&caller, place(&current(&record, today)?))?;
                let as_of = as_of.unwrap_or(today);
                let view = record.as_of(as_of).ok_or_else(|| {
                    RuleViolation::new(
                        "BEFORE_REGISTRATION",
                        format!(
                            "participant {id} was registered on {}: ask for a date on or after it",
                            record.registered_on
                        ),
                    )
                })?;
                Ok(pb::GetParticipantResponse {
                    participant: Some(convert::participant(view)),
                })
            })
            .await
    }

    pub async fn list(
        &self,
        caller: Caller,
        req: pb::ListParticipantsRequest,
    ) -> Result<pb::ListParticipantsResponse, ServiceError> {
        let query = convert::list(&req)?;
        let today = self.clock.today();
        self.db
            .read(move |conn| {
                let school_filter = match &query.school_id {
                    None => None,
                    Some(id) => Some(store::find_school(conn, id)?.ok_or_else(|| {
                        ServiceError::NotFound(format!("school {id} does not exist"))
                    })?),
                };
                let scope = policy::list_scope(
                    &caller,
                    school_filter
                        .as_ref()
                        .map(|s| (s.id.as_str(), s.delivery_partner_id.as_str())),
                    query.delivery_partner_id.as_deref(),
                )?;
                let filter = ListFilter {
                    scope,
                    school_id: query.school_id,
                    delivery_partner_id: query.delivery_partner_id,
                    kind: query.kind,
                    status: query.status,
                    as_of: today,
                };
                let (records, next) =
                    store::list_participants(conn, &filter, query.after, query.page_size)?;
                let participants = records
                    .iter()
                    .map(|r| current(r, today).map(convert::participant))
                    .collect::<Result<_, _>>()?;
                Ok(pb::ListParticipantsResponse {
                    participants,
                    next_page_token: next
                        .map(|k| steplab_platform::paging::encode_token(&k))
                        .unwrap_or_default(),
                })
            })
            .await
    }

    pub async fn assign_mentor(
        &self,
        caller: Caller,
        req: pb::AssignMentorRequest,
    ) -> Result<pb::AssignMentorResponse, ServiceError> {
        let change = convert::assign_mentor(&req)?;
        let key = idempotency_key(&caller, &req.request_id)?;
        let (today, now) = (self.clock.today(), self.clock.now());
        self.mutate(key, "AssignMentor", &req, move |conn| {
            let ect = load(conn, &change.ect_id)?;
            let ect_now = current(&ect, today)?;
            policy::may_assign_mentor(&caller, place(&ect_now), change.interim)?;
            let mentor = load(conn, &change.mentor_id)?;
            let previous = match &ect_now.mentor {
                Some((id, _)) => Some(load(conn, id)?),
                None => None,
            };
            let effective = change.effective_date.unwrap_or(today);
            let events = registry::assign_mentor(&ect, &mentor, change.interim, effective, today)?;
            let mut touched = vec![&ect, &mentor];
            touched.extend(previous.as_ref());
            store::append_events(conn, &touched, &events, &actor(&caller), now, today)?;
            let ect = load(conn, &ect.id)?;
            Ok(pb::AssignMentorResponse {
                ect: Some(convert::participant(current(&ect, today)?)),
            })
        })
        .await
    }

    pub async fn history(
        &self,
        caller: Caller,
        req: pb::GetParticipantHistoryRequest,
    ) -> Result<pb::GetParticipantHistoryResponse, ServiceError> {
        let id =
            convert::id("participant_id", &req.participant_id).map_err(FieldViolations::from)?;
        let today = self.clock.today();
        self.db
            .read(move |conn| {
                let record = load(conn, &id)?;
                policy::may_read(&caller, place(&current(&record, today)?))?;
                let events = store::history(conn, &id)?
                    .into_iter()
                    .map(convert::event)
                    .collect();
                Ok(pb::GetParticipantHistoryResponse { events })
            })
            .await
    }
}
