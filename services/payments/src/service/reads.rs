//! Reads: a payee's accrual, a window's statement, the schedules.

use super::{Payments, denied, payee_in_reach, plan, schedule_of};
use crate::convert;
use crate::domain::accrual;
use crate::domain::accrual::Facts;
use crate::domain::policy;
use crate::domain::schedule::{ScheduleBook, Window};
use crate::store::{self, PayeeRow};
use chrono::NaiveDate;
use steplab_platform::Caller;
use steplab_platform::db::DbConn;
use steplab_platform::error::ServiceError;
use steplab_platform::paging::{self, Pages};
use steplab_proto::steplab::payments::v1 as pb;

/// A payee's accrual on `as_of` (GetAccrual's answer), with the facts and
/// the milestone windows it was computed from.
pub(super) struct Reading {
    pub(super) accrual: pb::GetAccrualResponse,
    pub(super) facts: Facts,
    pub(super) windows: Vec<Window>,
}

/// Reads a payee's accrual on `as_of` in the caller's transaction.
pub(super) fn read_accrual(
    conn: &mut DbConn,
    book: &ScheduleBook,
    payee: &PayeeRow,
    as_of: NaiveDate,
) -> Result<Reading, ServiceError> {
    let facts = store::load_facts(conn, payee)?;
    let schedule = schedule_of(book, payee)?;
    let plan = plan(book, schedule, &facts)?;
    let earned = accrual::earned_by(&plan, &facts, as_of);
    let declared = store::declarations_of(conn, &payee.participant_id)?;
    let accrual = convert::accrual(&payee.participant_id, &plan, &facts, &earned, &declared, as_of);
    let windows = plan.windows.iter().map(|w| (*w).clone()).collect();
    Ok(Reading { accrual, facts, windows })
}

impl Payments {
    pub async fn get_accrual(
        &self,
        caller: Caller,
        req: pb::GetAccrualRequest,
    ) -> Result<pb::GetAccrualResponse, ServiceError> {
        let query = convert::accrual_query(&req)?;
        let today = self.clock.today();
        let as_of = query.as_of.unwrap_or(today);
        let book = self.book.clone();
        self.db
            .read_point(move |conn| {
                let found = store::find_payee(conn, &query.participant_id)?;
                let payee = payee_in_reach(
                    conn,
                    &caller,
                    "GetAccrual",
                    found,
                    &query.participant_id,
                    today,
                    policy::may_read_accrual,
                )?;
                Ok(read_accrual(conn, &book, &payee, as_of)?.accrual)
            })
            .await
    }

    pub async fn get_statement(
        &self,
        caller: Caller,
        req: pb::GetStatementRequest,
    ) -> Result<pb::GetStatementResponse, ServiceError> {
        let pages = Pages::of(&caller.sub, &req);
        let query = convert::statement_query(&req, &pages)?;
        policy::may_read_statement(&caller, query.delivery_partner_id.as_deref())
            .map_err(|d| denied(&caller, "GetStatement", d))?;
        if self.book.window(&query.window_id).is_none() {
            return Err(ServiceError::not_found(
                "window",
                query.window_id.clone(),
                format!("no schedule has the window {}: ListSchedules lists every window id", query.window_id),
            ));
        }
        self.db
            .read(move |conn| {
                let (rows, total) = store::snapshot(conn, |conn| {
                    let rows = store::statement_page(
                        conn,
                        &query.window_id,
                        query.delivery_partner_id.as_deref(),
                        query.after.as_deref(),
                        query.page_size + 1,
                    )?;
                    let total = store::statement_total(conn, &query.window_id, query.delivery_partner_id.as_deref())?;
                    let declared = match (rows.first(), rows.last()) {
                        (Some(first), Some(last)) => {
                            store::declarations_between(conn, first.participant_id(), last.participant_id())?
                        }
                        _ => Default::default(),
                    };
                    Ok(((rows, declared), total))
                })?;
                let (mut rows, declared) = rows;
                let next = paging::take_page(&mut rows, query.page_size, |r| r.participant_id().to_owned());
                Ok(convert::statement_page(&query, rows, &declared, total, pages.token(next.as_deref())))
            })
            .await
    }

    pub async fn list_schedules(
        &self,
        caller: Caller,
        req: pb::ListSchedulesRequest,
    ) -> Result<pb::ListSchedulesResponse, ServiceError> {
        let pages = Pages::of(&caller.sub, &req);
        let query = convert::schedules_query(&req, &pages)?;
        let limit = usize::try_from(query.page_size).unwrap_or(usize::MAX);
        let mut schedules: Vec<_> = self.book.schedules(query.cohort).skip(query.skip).take(limit + 1).collect();
        let next = paging::take_page(&mut schedules, query.page_size, |_| (query.skip + limit).to_string());
        Ok(pb::ListSchedulesResponse {
            schedules: schedules.into_iter().map(|s| convert::schedule(&self.book, s)).collect(),
            next_page_token: pages.token(next.as_deref()),
        })
    }
}
