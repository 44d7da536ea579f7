//! Corrections of the context a contact point was collected in.
//!
//! The live contact point takes the corrected context at once (so the index, rebuilt from the
//! store, agrees), and the correction is kept with both digests of the contact point and the
//! time it is effective from, so that grants made before it can be replayed under the context
//! that was true. Each correction is logged. Nothing here stores a contact value.

use jiff::Timestamp;
use rusqlite::Connection;
use tailor_core::{ContactDigests, ContactKind, Context, KeyedDigest};

use super::SqlResult;
use super::log::{Journal, account_key};
use super::rows::{self, load_account, micros, parsed, timestamp, to_stored_precision};
use crate::log::{LogEvent, LoggedContact};
use crate::{AccountChange, Correction, CorrectionRefused, NewCorrection, StoreError};

/// Applies a correction; see [`crate::Store::correct_contact`].
pub(super) fn correct(
    conn: &Connection,
    journal: &mut Journal,
    correction: NewCorrection,
    now: Timestamp,
) -> Result<Result<AccountChange, CorrectionRefused>, StoreError> {
    let now = to_stored_precision(now);
    let effective_since = to_stored_precision(correction.effective_since);
    let Some(before) = load_account(conn, &correction.account_id)? else {
        return Ok(Err(CorrectionRefused::NoAccount));
    };
    let Some(contact) = before
        .contacts
        .iter()
        .find(|c| c.kind == correction.kind && c.digests.iter().any(|d| d == correction.digest))
        .cloned()
    else {
        return Ok(Err(CorrectionRefused::NoContact));
    };
    let no = i64::from(before.no.0);
    conn.prepare_cached(
        "UPDATE contact_points SET context = ?1 WHERE account_no = ?2 AND contact_no = ?3",
    )
    .db()?
    .execute((correction.context.as_str(), no, contact.contact_no))
    .db()?;
    let other = contact.digests.iter().nth(1);
    conn.prepare_cached(
        "INSERT INTO contact_corrections (account_no, kind, digest, other_digest, \
         from_context, to_context, effective_since, at) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    )
    .db()?
    .execute((
        no,
        contact.kind.as_str(),
        contact.digests.primary().as_bytes().as_slice(),
        other.map(|d| d.0.to_vec()),
        contact.context.as_str(),
        correction.context.as_str(),
        micros(effective_since),
        micros(now),
    ))
    .db()?;
    let key = account_key(conn, before.no.0)?;
    journal.record(
        now,
        LogEvent::ContactReclassified {
            account: key.account(),
            contact: LoggedContact {
                contact: key.contact(contact.digests.primary().as_bytes()),
                kind: contact.kind.as_str().to_owned(),
                context: correction.context.as_str().to_owned(),
                verified: contact.verified,
            },
            from: contact.context.as_str().to_owned(),
            effective_since,
        },
    );
    let mut after = before.clone();
    for c in &mut after.contacts {
        if c.contact_no == contact.contact_no {
            c.context = correction.context;
        }
    }
    Ok(Ok(AccountChange {
        before: Some(before),
        after,
    }))
}

/// Every correction, oldest first.
pub(super) fn all(conn: &Connection) -> Result<Vec<Correction>, StoreError> {
    let mut statement = conn
        .prepare_cached(
            "SELECT account_no, kind, digest, other_digest, from_context, to_context, \
             effective_since, at FROM contact_corrections ORDER BY correction_no",
        )
        .db()?;
    let mut found = statement.query([]).db()?;
    let mut corrections = Vec::new();
    while let Some(row) = found.next().db()? {
        let primary = rows::digest(row, 2, "contact_corrections.digest")?
            .ok_or_else(|| StoreError::Corrupt("contact_corrections.digest is null".into()))?;
        let other: Option<KeyedDigest> = rows::digest(row, 3, "contact_corrections.other_digest")?;
        corrections.push(Correction {
            account: rows::dense_no(row.get(0).db()?)?,
            kind: parsed(row, 1, "contact_corrections.kind", ContactKind::parse)?,
            digests: ContactDigests::new(primary, other),
            from: parsed(row, 4, "contact_corrections.from_context", Context::parse)?,
            to: parsed(row, 5, "contact_corrections.to_context", Context::parse)?,
            effective_since: timestamp(row, 6, "contact_corrections.effective_since")?,
            at: timestamp(row, 7, "contact_corrections.at")?,
        });
    }
    Ok(corrections)
}

/// The commitments of accounts that still have a key.
pub(super) fn commitments(
    conn: &Connection,
    accounts: &[tailor_core::AccountNo],
) -> Result<Vec<(tailor_core::AccountNo, crate::log::Commitment)>, StoreError> {
    let mut statement = conn
        .prepare_cached("SELECT key FROM account_keys WHERE account_no = ?1")
        .db()?;
    let mut out = Vec::new();
    for &account in accounts {
        let mut found = statement.query([account.0]).db()?;
        if let Some(row) = found.next().db()? {
            let key: Vec<u8> = row.get(0).db()?;
            let key = <[u8; 32]>::try_from(key.as_slice())
                .map_err(|_| StoreError::Corrupt("account_keys.key is not 32 bytes".into()))?;
            out.push((account, crate::log::AccountKey(key).account()));
        }
    }
    Ok(out)
}
