//! Changes an ECF Lead asks for and a DPL decides (W9 reinstatement, C2
//! release start, W6 keeping a mentor, D3 extended deferral): the effect
//! happens on approval only.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestKind {
    Reinstatement,
    ReleaseStartChange,
    KeepMentor,
    /// D3: a deferral whose return is more than 12 months after it, up to
    /// the latest return date the approval names.
    LongDeferral,
}

impl RequestKind {
    pub fn as_str(self) -> &'static str {
        match self {
            RequestKind::Reinstatement => "reinstatement",
            RequestKind::ReleaseStartChange => "release_start_change",
            RequestKind::KeepMentor => "keep_mentor",
            RequestKind::LongDeferral => "long_deferral",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [
            RequestKind::Reinstatement,
            RequestKind::ReleaseStartChange,
            RequestKind::KeepMentor,
            RequestKind::LongDeferral,
        ]
        .into_iter()
        .find(|k| k.as_str() == s)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestStatus {
    Pending,
    Approved,
    Refused,
}

impl RequestStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            RequestStatus::Pending => "pending",
            RequestStatus::Approved => "approved",
            RequestStatus::Refused => "refused",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [RequestStatus::Pending, RequestStatus::Approved, RequestStatus::Refused].into_iter().find(|k| k.as_str() == s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn w9_c2_w6_request_kinds_and_statuses_round_trip() {
        for k in [
            RequestKind::Reinstatement,
            RequestKind::ReleaseStartChange,
            RequestKind::KeepMentor,
            RequestKind::LongDeferral,
        ] {
            assert_eq!(RequestKind::parse(k.as_str()), Some(k));
        }
        for s in [RequestStatus::Pending, RequestStatus::Approved, RequestStatus::Refused] {
            assert_eq!(RequestStatus::parse(s.as_str()), Some(s));
        }
    }
}
