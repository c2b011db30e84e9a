//! The DfE's words that more than one service speaks: the DfE gateway maps
//! to them and payments declares in them, so both take them from here.

/// The DfE's declaration types (X5, F1), which are also the milestones a
/// payment window is for.
pub const DECLARATION_TYPES: [&str; 9] = [
    "started",
    "retained-1",
    "retained-2",
    "retained-3",
    "retained-4",
    "completed",
    "extended-1",
    "extended-2",
    "extended-3",
];
