//! Delivery partners and schools.

use super::schema::{delivery_partners, schools};
use crate::domain::records::{DeliveryPartner, School};
use chrono::NaiveDateTime;
use diesel::prelude::*;
use steplab_platform::db::DbConn;
use steplab_platform::error::ServiceError;

#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable, Insertable)]
#[diesel(table_name = delivery_partners)]
struct DeliveryPartnerRow {
    id: String,
    name: String,
    created_at: NaiveDateTime,
}

#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable, Insertable)]
#[diesel(table_name = schools)]
struct SchoolRow {
    id: String,
    urn: String,
    name: String,
    delivery_partner_id: String,
    area_covered: bool,
    created_at: NaiveDateTime,
}

pub fn insert_delivery_partner(conn: &mut DbConn, partner: &DeliveryPartner) -> Result<(), ServiceError> {
    let row = DeliveryPartnerRow { id: partner.id.clone(), name: partner.name.clone(), created_at: partner.created_at };
    diesel::insert_into(delivery_partners::table).values(&row).execute(conn)?;
    Ok(())
}

pub fn find_delivery_partner(conn: &mut DbConn, id: &str) -> Result<Option<DeliveryPartner>, ServiceError> {
    let row: Option<DeliveryPartnerRow> =
        delivery_partners::table.find(id).select(DeliveryPartnerRow::as_select()).first(conn).optional()?;
    Ok(row.map(|r| DeliveryPartner { id: r.id, name: r.name, created_at: r.created_at }))
}

pub fn insert_school(conn: &mut DbConn, school: &School) -> Result<(), ServiceError> {
    let existing: Option<String> =
        schools::table.filter(schools::urn.eq(&school.urn)).select(schools::id).first(conn).optional()?;
    if let Some(id) = existing {
        return Err(ServiceError::AlreadyExists(format!("a school with URN {} already exists: {id}", school.urn)));
    }
    let row = SchoolRow {
        id: school.id.clone(),
        urn: school.urn.clone(),
        name: school.name.clone(),
        delivery_partner_id: school.delivery_partner_id.clone(),
        area_covered: school.area_covered,
        created_at: school.created_at,
    };
    diesel::insert_into(schools::table).values(&row).execute(conn)?;
    Ok(())
}

pub fn find_school(conn: &mut DbConn, id: &str) -> Result<Option<School>, ServiceError> {
    let row: Option<SchoolRow> = schools::table.find(id).select(SchoolRow::as_select()).first(conn).optional()?;
    Ok(row.map(|r| School {
        id: r.id,
        urn: r.urn,
        name: r.name,
        delivery_partner_id: r.delivery_partner_id,
        area_covered: r.area_covered,
        created_at: r.created_at,
    }))
}
