//! `page_size` / `page_token` handling shared by every list RPC (AIP-158; the
//! convention is written down in docs/api.md, "Pagination").
//!
//! A page token names the key of the last row returned (keyset pagination, so
//! pages stay stable while new rows arrive), but a caller can neither read nor
//! make one: the key is masked and the token carries an HMAC-SHA256 over the
//! RPC, the request's filter (every field but `page_size` and `page_token`),
//! the caller's `sub` and the key. A token replayed with another filter, by
//! another caller, on another RPC, or edited, is refused.
//!
//! The MAC key is derived ([`derive_key_from`], called where the service loads
//! its auth settings) from `STEPLAB_PAGE_TOKEN_SECRET_FILE` when set, else from
//! the deployment's HS256 auth secret, so tokens survive restarts and are good
//! on every replica; a deployment with neither (an identity provider only) has
//! a key random per process: a token is then good only on the process that
//! issued it and until it restarts (the caller starts the list again, as after
//! any refused token), and the service warns of it at start-up.

use crate::error::FieldViolation;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use std::sync::OnceLock;

pub const DEFAULT_PAGE_SIZE: i64 = 50;
pub const MAX_PAGE_SIZE: i64 = 1000;

/// 0 means the default; above the maximum is lowered to it (AIP-158: coerce,
/// do not refuse); negative is a field violation.
pub fn page_size(requested: i32) -> Result<i64, FieldViolation> {
    match i64::from(requested) {
        0 => Ok(DEFAULT_PAGE_SIZE),
        n if n < 0 => Err(FieldViolation::new(
            "page_size",
            format!("{n} is negative: give 0 for the default {DEFAULT_PAGE_SIZE}, at most {MAX_PAGE_SIZE}"),
        )),
        n => Ok(n.min(MAX_PAGE_SIZE)),
    }
}

/// A list request: what its page token is bound to.
pub trait PagedRequest: prost::Message + Clone {
    /// The RPC's full name, `package.Service/Method`.
    const RPC: &'static str;
    /// The request with `page_size` and `page_token` cleared: its filter.
    fn without_paging(&self) -> Self;
}

macro_rules! paged_requests {
    ($($ty:ty => $rpc:literal),* $(,)?) => {$(
        impl PagedRequest for $ty {
            const RPC: &'static str = $rpc;
            fn without_paging(&self) -> Self {
                let mut filter = self.clone();
                filter.page_size = 0;
                filter.page_token.clear();
                filter
            }
        }
    )*};
}

use steplab_proto::steplab::content::v1 as content;
use steplab_proto::steplab::dfe::v1 as dfe;
use steplab_proto::steplab::participant::v1 as participant;
use steplab_proto::steplab::payments::v1 as payments;
paged_requests! {
    participant::ListParticipantsRequest => "steplab.participant.v1.ParticipantService/ListParticipants",
    participant::ListRequestsRequest => "steplab.participant.v1.ParticipantService/ListRequests",
    participant::ListNotificationsRequest => "steplab.participant.v1.ParticipantService/ListNotifications",
    participant::GetParticipantHistoryRequest => "steplab.participant.v1.ParticipantService/GetParticipantHistory",
    participant::GetSyncStatusRequest => "steplab.participant.v1.ParticipantService/GetSyncStatus",
    participant::CheckConsistencyRequest => "steplab.participant.v1.ParticipantService/CheckConsistency",
    content::ListReleasesRequest => "steplab.content.v1.ContentReleaseService/ListReleases",
    payments::GetStatementRequest => "steplab.payments.v1.PaymentsService/GetStatement",
    payments::ListSchedulesRequest => "steplab.payments.v1.PaymentsService/ListSchedules",
    dfe::ListDfeCallsRequest => "steplab.dfe.v1.DfeGatewayService/ListDfeCalls",
    dfe::ListUnreportableRequest => "steplab.dfe.v1.DfeGatewayService/ListUnreportable",
}

/// The refusal of a token that is not this request's: the message says what to do.
const FOREIGN_TOKEN: &str = "does not belong to this request: start again without page_token";

/// Bytes of the MAC kept in a token: 128 bits is beyond guessing.
const TAG_LEN: usize = 16;

type HmacSha256 = Hmac<Sha256>;

static KEY: OnceLock<[u8; 32]> = OnceLock::new();

/// Keys page tokens from the deployment's auth `secret` (a key of its own,
/// derived, so a page token never helps against the auth secret). Only the
/// first key set in a process counts.
pub fn derive_key_from(secret: &[u8]) {
    let mut mac = HmacSha256::new_from_slice(secret).expect("HMAC takes a key of any length");
    mac.update(b"steplab page tokens v1");
    let _ = KEY.set(mac.finalize().into_bytes().into());
}

/// This process's token key (see the module comment).
fn process_key() -> &'static [u8; 32] {
    KEY.get_or_init(rand::random)
}

/// The page tokens of one request by one caller.
#[derive(Debug, Clone)]
pub struct Pages {
    /// rpc, filter and sub, each length-prefixed so no two requests share bytes.
    binding: Vec<u8>,
}

impl Pages {
    /// The tokens of `request` as `caller_sub` sends it.
    pub fn of<R: PagedRequest>(caller_sub: &str, request: &R) -> Self {
        Self::new(R::RPC, &request.without_paging().encode_to_vec(), caller_sub)
    }

    /// The tokens of `rpc` with `filter` (any unambiguous encoding of the
    /// request's fields but page_size and page_token) for `caller_sub`.
    pub fn new(rpc: &str, filter: &[u8], caller_sub: &str) -> Self {
        let mut binding = Vec::new();
        for part in [rpc.as_bytes(), filter, caller_sub.as_bytes()] {
            binding.extend_from_slice(&(part.len() as u64).to_be_bytes());
            binding.extend_from_slice(part);
        }
        Self { binding }
    }

    /// The token naming `last_key` as the last row returned, or "" when no
    /// page follows (`None`).
    pub fn token(&self, last_key: Option<&str>) -> String {
        let Some(key) = last_key else { return String::new() };
        let mut bytes = self.tag(key.as_bytes()).to_vec();
        bytes.extend(key.as_bytes().iter().zip(self.mask(key.len())).map(|(b, m)| b ^ m));
        URL_SAFE_NO_PAD.encode(bytes)
    }

    /// The key named by `token`: `None` for the first page (empty token);
    /// a field violation on `page_token` for anything this request did not
    /// receive from a previous page.
    pub fn after(&self, token: &str) -> Result<Option<String>, FieldViolation> {
        if token.is_empty() {
            return Ok(None);
        }
        let foreign = || FieldViolation::new("page_token", FOREIGN_TOKEN);
        // No length cap of its own: the transport's message limit bounds the
        // work, and any key the server issued comes back whole.
        let bytes = URL_SAFE_NO_PAD.decode(token).map_err(|_| foreign())?;
        if bytes.len() <= TAG_LEN {
            return Err(foreign());
        }
        let (tag, masked) = bytes.split_at(TAG_LEN);
        let key: Vec<u8> = masked.iter().zip(self.mask(masked.len())).map(|(b, m)| b ^ m).collect();
        self.mac(b"tag", &key).verify_truncated_left(tag).map_err(|_| foreign())?;
        String::from_utf8(key).map(Some).map_err(|_| foreign())
    }

    fn mac(&self, purpose: &[u8], data: &[u8]) -> HmacSha256 {
        let mut mac = HmacSha256::new_from_slice(process_key()).expect("HMAC takes a key of any length");
        mac.update(purpose);
        mac.update(&self.binding);
        mac.update(data);
        mac
    }

    fn tag(&self, key: &[u8]) -> [u8; TAG_LEN] {
        let full = self.mac(b"tag", key).finalize().into_bytes();
        let mut tag = [0; TAG_LEN];
        tag.copy_from_slice(&full[..TAG_LEN]);
        tag
    }

    /// A keystream that hides the key from the caller (the token is opaque,
    /// not a secret: the MAC, not the mask, is what refuses forgeries).
    fn mask(&self, len: usize) -> impl Iterator<Item = u8> {
        let blocks: Vec<u8> = (0..len.div_ceil(32) as u32)
            .flat_map(|block| self.mac(b"mask", &block.to_be_bytes()).finalize().into_bytes().to_vec())
            .collect();
        blocks.into_iter().take(len)
    }
}

/// A page read with one row more than `limit` (the way a list learns whether
/// another page follows): keeps `limit` rows and answers the key of the last
/// kept row when more followed, `None` on the last page (so a full last page
/// gets no token and the caller no empty extra page).
pub fn take_page<R>(rows: &mut Vec<R>, limit: i64, key: impl Fn(&R) -> String) -> Option<String> {
    let more = rows.len() as i64 > limit;
    rows.truncate(usize::try_from(limit).unwrap_or(0));
    if more { rows.last().map(key) } else { None }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn take_page_keeps_the_limit_and_names_the_last_row_only_when_more_follow() {
        let mut rows = vec![1, 2, 3];
        assert_eq!(take_page(&mut rows, 2, |r| r.to_string()), Some("2".to_owned()));
        assert_eq!(rows, [1, 2]);
        let mut last = vec![1, 2];
        assert_eq!(take_page(&mut last, 2, |r| r.to_string()), None);
        assert_eq!(last, [1, 2]);
    }

    #[test]
    fn page_size_defaults_clamps_and_refuses_negatives() {
        assert_eq!(page_size(0), Ok(DEFAULT_PAGE_SIZE));
        assert_eq!(page_size(10), Ok(10));
        assert_eq!(page_size(1000), Ok(1000));
        assert_eq!(page_size(1001), Ok(MAX_PAGE_SIZE));
        assert_eq!(page_size(i32::MAX), Ok(MAX_PAGE_SIZE));
        assert!(page_size(-1).is_err());
    }

    fn request(school: &str) -> participant::ListParticipantsRequest {
        participant::ListParticipantsRequest { school_id: school.into(), ..Default::default() }
    }

    #[test]
    fn tokens_round_trip_and_hide_the_key() {
        let pages = Pages::of("ada", &request("s-1"));
        let token = pages.token(Some("p-0001"));
        assert!(!token.contains("p-0001"));
        assert!(!String::from_utf8_lossy(&URL_SAFE_NO_PAD.decode(&token).expect("base64url")).contains("p-0001"));
        assert_eq!(pages.after(&token), Ok(Some("p-0001".into())));
        assert_eq!(pages.after(""), Ok(None));
        assert_eq!(pages.token(None), "");
    }

    #[test]
    fn page_size_and_page_token_are_not_part_of_the_binding() {
        let token = Pages::of("ada", &request("s-1")).token(Some("p-1"));
        let next = participant::ListParticipantsRequest { page_size: 7, page_token: token.clone(), ..request("s-1") };
        assert_eq!(Pages::of("ada", &next).after(&token), Ok(Some("p-1".into())));
    }

    #[test]
    fn tokens_of_another_filter_caller_or_rpc_edited_or_forged_are_refused() {
        let token = Pages::of("ada", &request("s-1")).token(Some("p-1"));
        let refused = |pages: Pages, token: &str| pages.after(token).expect_err("refused").field == "page_token";
        assert!(refused(Pages::of("ada", &request("s-2")), &token));
        assert!(refused(Pages::of("bob", &request("s-1")), &token));
        let other_rpc = participant::ListRequestsRequest::default();
        assert!(refused(Pages::of("ada", &other_rpc), &Pages::of("ada", &request("")).token(Some("p-1"))));
        let mut edited = URL_SAFE_NO_PAD.decode(&token).expect("base64url");
        let last = edited.len() - 1;
        edited[last] ^= 1;
        assert!(refused(Pages::of("ada", &request("s-1")), &URL_SAFE_NO_PAD.encode(edited)));
        for forged in ["after:p-1", "garbage", "AAAA", &"A".repeat(200_000)] {
            assert!(refused(Pages::of("ada", &request("s-1")), forged), "{forged}");
        }
    }
}
