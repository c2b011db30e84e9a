//! F6: what a window's statement lists for one payee, as stored when the
//! payee's outcomes were last computed.

use crate::domain::accrual::ExclusionReason;

/// A payee's entry in a window's statement: a line that pays, or an
/// exclusion that says why the payee is paid nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StatementEntry {
    Line { participant_id: String, delivery_partner_id: String, milestone: String, amount_pence: i64 },
    Excluded { participant_id: String, reason: ExclusionReason, detail: String },
}

impl StatementEntry {
    pub fn participant_id(&self) -> &str {
        match self {
            StatementEntry::Line { participant_id, .. } | StatementEntry::Excluded { participant_id, .. } => {
                participant_id
            }
        }
    }
}
