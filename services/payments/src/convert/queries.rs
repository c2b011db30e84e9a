//! Reads: GetAccrual, GetStatement (with its page tokens) and ListSchedules.

use crate::domain::schedule;
use chrono::NaiveDate;
use steplab_platform::ids::{DeliveryPartnerId, ParticipantId, excerpt as truncate};
use steplab_platform::paging::Pages;
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

/// `pages` are the request's page tokens (bound to its window, delivery
/// partner and caller, so a token of another statement is refused rather than
/// silently skipping payees).
pub fn statement_query(req: &pb::GetStatementRequest, pages: &Pages) -> Result<StatementQuery, FieldViolations> {
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
    let page_size = v.check(paging::page_size(req.page_size));
    let after = v.check(pages.after(&req.page_token));
    v.finish(|| {
        Some(StatementQuery {
            window_id: window_id?,
            delivery_partner_id: delivery_partner_id?,
            page_size: page_size?,
            after: after?,
        })
    })
}

/// A validated ListSchedules.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SchedulesQuery {
    /// `None`: every cohort.
    pub cohort: Option<i32>,
    pub page_size: i64,
    /// How many schedules of this listing earlier pages returned. The book
    /// is fixed for the life of the process, and so is a token's key (see
    /// `steplab_platform::paging`), so an ordinal is a stable position.
    pub skip: usize,
}

/// `pages` are the request's page tokens (bound to its cohort and caller).
pub fn schedules_query(req: &pb::ListSchedulesRequest, pages: &Pages) -> Result<SchedulesQuery, FieldViolations> {
    let mut v = FieldViolations::default();
    let cohort = v.check(match req.cohort {
        0 => Ok(None),
        c if c > 0 => Ok(Some(c)),
        c => Err(FieldViolation::new(
            "cohort",
            format!("{c} is negative: use a year such as 2025, or 0 for every cohort"),
        )),
    });
    let page_size = v.check(paging::page_size(req.page_size));
    let skip = v.check(pages.after(&req.page_token).and_then(|key| {
        key.map_or(Ok(0), |key| {
            key.parse::<usize>().map_err(|_| {
                FieldViolation::new("page_token", "is from an older version: start again without page_token")
            })
        })
    }));
    v.finish(|| Some(SchedulesQuery { cohort: cohort?, page_size: page_size?, skip: skip? }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::convert::fixtures::fields;

    #[test]
    fn f6_statement_windows_page_sizes_and_tokens_are_validated() {
        let read = |req: &pb::GetStatementRequest| statement_query(req, &Pages::of("dpl", req));
        let req = pb::GetStatementRequest {
            window: "ecf-standard-september/2025".into(),
            delivery_partner_id: "dp".into(),
            page_size: -1,
            page_token: "forged".into(),
        };
        assert_eq!(fields(read(&req).expect_err("bad")), ["window", "delivery_partner_id", "page_size", "page_token"]);
        let mut good = pb::GetStatementRequest {
            window: "ecf-standard-september/2025/started".into(),
            delivery_partner_id: String::new(),
            page_size: 5000,
            page_token: String::new(),
        };
        good.page_token = Pages::of("dpl", &good).token(Some("p-1"));
        let q = read(&good).expect("valid");
        assert_eq!(q.page_size, paging::MAX_PAGE_SIZE);
        assert_eq!(q.after.as_deref(), Some("p-1"));
        let other_window = pb::GetStatementRequest { window: "ecf-standard-september/2025/retained-1".into(), ..good };
        assert_eq!(fields(read(&other_window).expect_err("foreign token")), ["page_token"]);
    }

    #[test]
    fn f1_list_schedules_refuses_negatives_and_tokens_it_never_issued() {
        let read = |req: &pb::ListSchedulesRequest| schedules_query(req, &Pages::of("dpl", req));
        let req = pb::ListSchedulesRequest { cohort: -1, page_size: -1, page_token: "x".into() };
        assert_eq!(fields(read(&req).expect_err("bad")), ["cohort", "page_size", "page_token"]);
        let all = SchedulesQuery { cohort: None, page_size: paging::DEFAULT_PAGE_SIZE, skip: 0 };
        assert_eq!(read(&pb::ListSchedulesRequest::default()), Ok(all));
        let mut next = pb::ListSchedulesRequest { cohort: 2025, ..Default::default() };
        next.page_token = Pages::of("dpl", &next).token(Some("3"));
        assert_eq!(read(&next).map(|q| q.skip), Ok(3));
    }
}
