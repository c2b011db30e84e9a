//! Reads: GetAccrual, GetStatement (with its page tokens) and ListSchedules.

use crate::convert::{DEFAULT_STATEMENT_PAGE, MAX_STATEMENT_PAGE};
use crate::domain::schedule;
use chrono::NaiveDate;
use steplab_platform::ids::{DeliveryPartnerId, ParticipantId, excerpt as truncate};
use steplab_platform::{FieldViolation, FieldViolations, date, paging};
use steplab_proto::steplab::payments::v1 as pb;

/// A validated GetAccrual.
#[derive(Debug, Clone)]
pub struct AccrualQuery {
    pub participant_id: ParticipantId,
    pub as_of: Option<NaiveDate>,
}

pub fn accrual_query(req: &pb::GetAccrualRequest) -> Result<AccrualQuery, FieldViolations> {
    let mut v = FieldViolations::default();
    let participant_id = v.check(ParticipantId::parse("participant_id", &req.participant_id));
    let as_of = v.check(date::optional("as_of", req.as_of.as_ref()));
    v.finish(|| Some(AccrualQuery { participant_id: participant_id?, as_of: as_of? }))
}

/// A validated GetStatement.
#[derive(Debug, Clone)]
pub struct StatementQuery {
    pub window_id: String,
    pub delivery_partner_id: Option<DeliveryPartnerId>,
    pub page_size: i64,
    pub after: Option<String>,
}

/// Binds a page token to its window and delivery partner, so a token from
/// another statement is refused rather than silently skipping payees.
fn statement_binding(window_id: &str, delivery_partner_id: Option<&str>) -> String {
    format!("{:016x}", schedule::fnv1a64(&format!("{window_id}|{}", delivery_partner_id.unwrap_or(""))))
}

pub fn statement_token(window_id: &str, delivery_partner_id: Option<&str>, last_participant: &str) -> String {
    paging::encode_token(&format!("{last_participant}.{}", statement_binding(window_id, delivery_partner_id)))
}

pub fn statement_query(req: &pb::GetStatementRequest) -> Result<StatementQuery, FieldViolations> {
    let mut v = FieldViolations::default();
    let window_id = v.check(if schedule::parse_window_id(&req.window).is_some() {
        Ok(req.window.clone())
    } else if req.window.is_empty() {
        Err(FieldViolation::new(
            "window",
            "is required: <schedule>/<cohort>/<milestone>, e.g. ecf-standard-september/2025/started",
        ))
    } else {
        Err(FieldViolation::new(
            "window",
            format!(
                "`{}` is not <schedule>/<cohort>/<milestone>, e.g. ecf-standard-september/2025/started",
                truncate(&req.window)
            ),
        ))
    });
    let delivery_partner_id =
        v.check(DeliveryPartnerId::parse_optional("delivery_partner_id", &req.delivery_partner_id));
    let page_size = v.check(match i64::from(req.page_size) {
        0 => Ok(DEFAULT_STATEMENT_PAGE),
        n if n < 0 => Err(FieldViolation::new(
            "page_size",
            format!("{n} is negative: use 0 for {DEFAULT_STATEMENT_PAGE}, at most {MAX_STATEMENT_PAGE}"),
        )),
        n => Ok(n.min(MAX_STATEMENT_PAGE)),
    });
    let after = v.check(paging::decode_token(&req.page_token).and_then(|key| match key {
        None => Ok(None),
        Some(key) => {
            let expected = statement_binding(&req.window, delivery_partner_id.clone().flatten().as_deref());
            match key.rsplit_once('.') {
                Some((last, binding)) if binding == expected && !last.is_empty() => Ok(Some(last.to_owned())),
                _ => Err(FieldViolation::new(
                    "page_token",
                    "is not from a previous call with the same window and delivery_partner_id",
                )),
            }
        }
    }));
    v.finish(|| {
        Some(StatementQuery {
            window_id: window_id?,
            delivery_partner_id: delivery_partner_id?,
            page_size: page_size?,
            after: after?,
        })
    })
}

/// A validated ListSchedules: the cohort, or `None` for every cohort.
pub fn schedules_query(req: &pb::ListSchedulesRequest) -> Result<Option<i32>, FieldViolations> {
    let mut v = FieldViolations::default();
    let cohort = v.check(match req.cohort {
        0 => Ok(None),
        c if c > 0 => Ok(Some(c)),
        c => Err(FieldViolation::new(
            "cohort",
            format!("{c} is negative: use a year such as 2025, or 0 for every cohort"),
        )),
    });
    if req.page_size < 0 {
        v.push(FieldViolation::new("page_size", format!("{} is negative: use 0 for all", req.page_size)));
    }
    // Every schedule comes in one page, so no token is ever issued.
    if !req.page_token.is_empty() {
        v.push(FieldViolation::new("page_token", "is not from a previous call with the same cohort: leave it empty"));
    }
    v.finish(|| cohort)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::convert::fixtures::fields;

    #[test]
    fn f6_statement_windows_page_sizes_and_tokens_are_validated() {
        let req = pb::GetStatementRequest {
            window: "ecf-standard-september/2025".into(),
            delivery_partner_id: "dp".into(),
            page_size: -1,
            page_token: "forged".into(),
        };
        assert_eq!(
            fields(statement_query(&req).expect_err("bad")),
            ["window", "delivery_partner_id", "page_size", "page_token"]
        );
        let good = pb::GetStatementRequest {
            window: "ecf-standard-september/2025/started".into(),
            delivery_partner_id: String::new(),
            page_size: 5000,
            page_token: statement_token("ecf-standard-september/2025/started", None, "p-1"),
        };
        let q = statement_query(&good).expect("valid");
        assert_eq!(q.page_size, MAX_STATEMENT_PAGE);
        assert_eq!(q.after.as_deref(), Some("p-1"));
        let other_window = pb::GetStatementRequest { window: "ecf-standard-september/2025/retained-1".into(), ..good };
        assert_eq!(fields(statement_query(&other_window).expect_err("foreign token")), ["page_token"]);
    }

    #[test]
    fn f1_list_schedules_refuses_negatives_and_tokens_it_never_issued() {
        let req = pb::ListSchedulesRequest { cohort: -1, page_size: -1, page_token: "x".into() };
        assert_eq!(fields(schedules_query(&req).expect_err("bad")), ["cohort", "page_size", "page_token"]);
        assert_eq!(schedules_query(&pb::ListSchedulesRequest::default()), Ok(None));
    }
}
