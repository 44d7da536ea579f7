//! The compact encodings of the advertiser-side tables, shared by every backend: a staged
//! part's matched pairs as one binary value, rejection counters as one line of text, and a
//! released size as text.
//!
//! Matched pairs are packed as 36-byte records (the account number as 4 big-endian bytes,
//! then the 32-byte keyed digest), sorted and without duplicates, so that a part of half a
//! million matches is one 18 MB value written in one go rather than half a million rows.
//! Rejection counters are `code=n` items joined by `;`, the codes percent-escaped (`%`, `;`
//! and `=`), so any code round-trips. A released size is `below_threshold` or the approximate
//! size in decimal. A value that does not decode is `Corrupt`, and the message never quotes
//! it. Backends store these values as they are, so that their tables hold the same bytes.

use std::collections::BTreeMap;

use tailor_core::release::ReleasedSize;
use tailor_core::{AccountNo, KeyedDigest};

use crate::StoreError;

/// The length of one packed (account, digest) pair.
const PAIR: usize = 4 + 32;

/// Packs matched pairs, sorting them and dropping duplicates.
pub fn pack_matches(mut pairs: Vec<(AccountNo, KeyedDigest)>) -> Vec<u8> {
    pairs.sort_unstable();
    pairs.dedup();
    let mut packed = Vec::with_capacity(pairs.len() * PAIR);
    for (account, digest) in pairs {
        packed.extend_from_slice(&account.0.to_be_bytes());
        packed.extend_from_slice(&digest.0);
    }
    packed
}

/// Appends the pairs packed in `bytes` to `out`.
pub fn unpack_matches(
    bytes: &[u8],
    out: &mut Vec<(AccountNo, KeyedDigest)>,
) -> Result<(), StoreError> {
    if !bytes.len().is_multiple_of(PAIR) {
        return Err(StoreError::Corrupt(
            "session_parts.matched is not a whole number of pairs".into(),
        ));
    }
    out.reserve(bytes.len() / PAIR);
    for record in bytes.chunks_exact(PAIR) {
        let (account, digest) = record.split_at(4);
        let account = <[u8; 4]>::try_from(account)
            .map_err(|_| StoreError::Corrupt("session_parts.matched is malformed".into()))?;
        let digest = <[u8; 32]>::try_from(digest)
            .map_err(|_| StoreError::Corrupt("session_parts.matched is malformed".into()))?;
        out.push((AccountNo(u32::from_be_bytes(account)), KeyedDigest(digest)));
    }
    Ok(())
}

/// Whether packed pairs hold any pair of `account` (they are sorted by account).
pub fn holds_account(bytes: &[u8], account: AccountNo) -> bool {
    let wanted = account.0.to_be_bytes();
    let records = bytes.len() / PAIR;
    // Binary search over the records' account numbers.
    let (mut low, mut high) = (0, records);
    while low < high {
        let mid = low + (high - low) / 2;
        let at = &bytes[mid * PAIR..mid * PAIR + 4];
        match at.cmp(&wanted[..]) {
            std::cmp::Ordering::Less => low = mid + 1,
            std::cmp::Ordering::Greater => high = mid,
            std::cmp::Ordering::Equal => return true,
        }
    }
    false
}

/// Packed pairs without those of `account`.
pub fn without_account(bytes: &[u8], account: AccountNo) -> Vec<u8> {
    let wanted = account.0.to_be_bytes();
    bytes
        .chunks_exact(PAIR)
        .filter(|record| record[..4] != wanted[..])
        .flatten()
        .copied()
        .collect()
}

/// Encodes rejection counters as `code=n;code=n`.
pub fn encode_rejected(rejected: &BTreeMap<String, u64>) -> String {
    let mut text = String::new();
    for (code, n) in rejected {
        if !text.is_empty() {
            text.push(';');
        }
        for c in code.chars() {
            match c {
                '%' => text.push_str("%25"),
                ';' => text.push_str("%3B"),
                '=' => text.push_str("%3D"),
                c => text.push(c),
            }
        }
        text.push('=');
        text.push_str(&n.to_string());
    }
    text
}

/// Decodes what [`encode_rejected`] wrote; `column` names the column in an error.
pub fn decode_rejected(text: &str, column: &str) -> Result<BTreeMap<String, u64>, StoreError> {
    let corrupt = || StoreError::Corrupt(format!("{column} is malformed"));
    let mut rejected = BTreeMap::new();
    if text.is_empty() {
        return Ok(rejected);
    }
    for item in text.split(';') {
        let (code, n) = item.split_once('=').ok_or_else(corrupt)?;
        let n: u64 = n.parse().map_err(|_| corrupt())?;
        let mut decoded = String::with_capacity(code.len());
        let mut rest = code;
        while let Some(at) = rest.find('%') {
            decoded.push_str(&rest[..at]);
            let escape = rest.get(at..at + 3).ok_or_else(corrupt)?;
            decoded.push(match escape {
                "%25" => '%',
                "%3B" => ';',
                "%3D" => '=',
                _ => return Err(corrupt()),
            });
            rest = &rest[at + 3..];
        }
        decoded.push_str(rest);
        if rejected.insert(decoded, n).is_some() {
            return Err(corrupt());
        }
    }
    Ok(rejected)
}

/// How a released size is stored: `below_threshold`, or the approximate size in decimal. An
/// unavailable size is not a release and is refused.
pub fn encode_size(size: ReleasedSize) -> Result<String, StoreError> {
    match size {
        ReleasedSize::BelowThreshold { .. } => Ok("below_threshold".to_owned()),
        ReleasedSize::Approximate { approximate } => Ok(approximate.to_string()),
        ReleasedSize::Unavailable { .. } => {
            Err(StoreError::Conflict("an unavailable size is not a release"))
        }
    }
}

/// Decodes what [`encode_size`] wrote.
pub fn decode_size(text: &str) -> Result<ReleasedSize, StoreError> {
    if text == "below_threshold" {
        return Ok(ReleasedSize::BelowThreshold {
            below_threshold: true,
        });
    }
    text.parse()
        .map(|approximate| ReleasedSize::Approximate { approximate })
        .map_err(|_| StoreError::Corrupt("releases.size holds an unknown value".into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pair(account: u32, seed: u8) -> (AccountNo, KeyedDigest) {
        (AccountNo(account), KeyedDigest([seed; 32]))
    }

    #[test]
    fn matches_round_trip_sorted_and_deduplicated() {
        let pairs = vec![
            pair(7, 1),
            pair(3, 9),
            pair(7, 1),
            pair(u32::MAX, 0),
            pair(0, 255),
            pair(3, 2),
        ];
        let packed = pack_matches(pairs);
        assert_eq!(packed.len(), 5 * PAIR);
        let mut out = Vec::new();
        unpack_matches(&packed, &mut out).unwrap();
        assert_eq!(
            out,
            vec![
                pair(0, 255),
                pair(3, 2),
                pair(3, 9),
                pair(7, 1),
                pair(u32::MAX, 0)
            ]
        );
        for (account, expected) in [
            (0, true),
            (3, true),
            (7, true),
            (u32::MAX, true),
            (4, false),
        ] {
            assert_eq!(holds_account(&packed, AccountNo(account)), expected);
        }
        let rest = without_account(&packed, AccountNo(3));
        let mut out = Vec::new();
        unpack_matches(&rest, &mut out).unwrap();
        assert_eq!(out, vec![pair(0, 255), pair(7, 1), pair(u32::MAX, 0)]);
        assert!(!holds_account(&[], AccountNo(0)));
    }

    #[test]
    fn a_cut_blob_is_corrupt() {
        let packed = pack_matches(vec![pair(1, 1)]);
        let error = unpack_matches(&packed[..PAIR - 1], &mut Vec::new()).unwrap_err();
        assert!(matches!(error, StoreError::Corrupt(_)), "{error:?}");
    }

    #[test]
    fn rejected_round_trips_any_code() {
        let mut rejected = BTreeMap::new();
        for (code, n) in [
            ("email_invalid", 3),
            ("odd;code=with%signs", 1),
            ("%3B", 0),
            ("", u64::MAX),
        ] {
            rejected.insert(code.to_owned(), n);
        }
        let text = encode_rejected(&rejected);
        assert_eq!(decode_rejected(&text, "c").unwrap(), rejected);
        assert_eq!(encode_rejected(&BTreeMap::new()), "");
        assert_eq!(decode_rejected("", "c").unwrap(), BTreeMap::new());
        for bad in ["x", "x=", "x=1;", "x=-1", "%4=1", "%=1", "a=1;a=2"] {
            assert!(
                matches!(decode_rejected(bad, "c"), Err(StoreError::Corrupt(_))),
                "{bad}"
            );
        }
    }
}
