//! `page_size` / `page_token` handling shared by every list RPC. A page token
//! is the opaque key of the last row returned, so pages stay stable while new
//! rows arrive.

use crate::error::FieldViolation;

pub const DEFAULT_PAGE_SIZE: i64 = 50;
pub const MAX_PAGE_SIZE: i64 = 500;

/// 0 means the default; negative or above the cap is a field violation.
pub fn page_size(requested: i32) -> Result<i64, FieldViolation> {
    match i64::from(requested) {
        0 => Ok(DEFAULT_PAGE_SIZE),
        n if (1..=MAX_PAGE_SIZE).contains(&n) => Ok(n),
        n => Err(FieldViolation::new(
            "page_size",
            format!("{n} is outside 0..{MAX_PAGE_SIZE} (0 means {DEFAULT_PAGE_SIZE})"),
        )),
    }
}

const TOKEN_PREFIX: &str = "after:";

pub fn encode_token(last_key: &str) -> String {
    format!("{TOKEN_PREFIX}{last_key}")
}

/// An empty token is the first page; anything not made by [`encode_token`] is refused.
pub fn decode_token(token: &str) -> Result<Option<String>, FieldViolation> {
    if token.is_empty() {
        return Ok(None);
    }
    match token.strip_prefix(TOKEN_PREFIX) {
        Some(key) if !key.is_empty() && key.len() <= 100 => Ok(Some(key.to_owned())),
        _ => Err(FieldViolation::new("page_token", "is not a token from a previous response")),
    }
}

/// A page read with one row more than `limit` (the way a list learns whether
/// another page follows): keeps `limit` rows and answers the key of the last
/// kept row when more followed, `None` on the last page.
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
    fn page_size_defaults_caps_and_refuses_negatives() {
        assert_eq!(page_size(0), Ok(DEFAULT_PAGE_SIZE));
        assert_eq!(page_size(10), Ok(10));
        assert!(page_size(-1).is_err());
        assert!(page_size(501).is_err());
    }

    #[test]
    fn tokens_round_trip_and_forgeries_are_refused() {
        assert_eq!(decode_token(&encode_token("abc")), Ok(Some("abc".into())));
        assert_eq!(decode_token(""), Ok(None));
        assert!(decode_token("garbage").is_err());
    }
}
