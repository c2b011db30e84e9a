//! The payments service's tables and queries. Every function takes a
//! connection and runs inside the caller's unit of work, so one RPC's
//! changes (the fact, the recomputed window outcomes and the idempotency
//! record) commit together or not at all.
//!
//! By use case: `payees` (enrolment, locks and the book's state),
//! `facts` (what the receivers record, loaded as the accrual engine's
//! facts), `outcomes` (stored window outcomes, totals and statements) and
//! `declarations` (what was declared to the DfE). Rows become domain
//! types here, so nothing above the store sees a row it has to check.

mod declarations;
mod facts;
mod outcomes;
mod payees;
pub mod schema;

pub use declarations::{DeclarationRow, declarations_between, declarations_of, declare, set_dfe_state, void};
pub use facts::{
    ClosureRow, NewEngagement, SuspensionRow, closures_of, first_engagement_kinds, insert_closure, insert_engagement,
    insert_suspension, load_facts, load_facts_of, set_coverage, set_placement, suspensions_of, update_closure,
    update_suspension,
};
pub use outcomes::{
    OutcomeRow, TotalsDelta, snapshot, statement_page, statement_total, stored_outcomes, write_outcomes,
};
pub use payees::{
    PayeeRow, book_fingerprint, find_payee, insert_payee, lock_payee, lock_payees, payee_ids_after, schedules_in_use,
    set_book_fingerprint,
};

use std::collections::HashMap;

/// Groups rows by participant id.
pub(crate) fn by_participant<T>(rows: Vec<(String, T)>) -> HashMap<String, Vec<T>> {
    let mut grouped: HashMap<String, Vec<T>> = HashMap::new();
    for (id, row) in rows {
        grouped.entry(id).or_default().push(row);
    }
    grouped
}
