//! Corrections of the context a contact point was collected in.
//!
//! The live contact point takes the corrected context at once (so the index, rebuilt from the
//! store, agrees), and the correction is kept with both digests of the contact point and the
//! time it is effective from, so that grants made before it can be replayed under the context
//! that was true. Each correction is logged. Nothing here stores a contact value.

use jiff::Timestamp;
use tailor_core::{AccountNo, ContactDigests, ContactKind, Context};
use tailor_store::log::{AccountKey, Commitment, LogEvent, LoggedContact};
use tailor_store::{
    AccountChange, Correction, CorrectionRefused, NewCorrection, StoreError, to_stored_precision,
};

use crate::accounts::load_account;
use crate::log::{Journal, account_key};
use crate::rows::{self, dense_no, micros, parsed, timestamp};
use crate::transaction::{Tx, execute, query};

/// Applies a correction; see [`tailor_store::Store::correct_contact`].
pub(crate) async fn correct(
    tx: &Tx<'_>,
    journal: &mut Journal,
    correction: NewCorrection,
    now: Timestamp,
) -> Result<Result<AccountChange, CorrectionRefused>, StoreError> {
    let now = to_stored_precision(now);
    let effective_since = to_stored_precision(correction.effective_since);
    let Some(before) = load_account(tx, &correction.account_id).await? else {
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
    execute(
        tx,
        "UPDATE contact_points SET context = $1 WHERE account_no = $2 AND contact_no = $3",
        &[
            &correction.context.as_str(),
            &no,
            &i64::from(contact.contact_no),
        ],
    )
    .await?;
    let other = contact.digests.iter().nth(1).map(|d| d.0.to_vec());
    execute(
        tx,
        "INSERT INTO contact_corrections (account_no, kind, digest, other_digest, \
         from_context, to_context, effective_since, at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        &[
            &no,
            &contact.kind.as_str(),
            &contact.digests.primary().as_bytes().as_slice(),
            &other,
            &contact.context.as_str(),
            &correction.context.as_str(),
            &micros(effective_since),
            &micros(now),
        ],
    )
    .await?;
    let key = account_key(tx, before.no.0).await?;
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
pub(crate) async fn all(tx: &Tx<'_>) -> Result<Vec<Correction>, StoreError> {
    let found = query(
        tx,
        "SELECT account_no, kind, digest, other_digest, from_context, to_context, \
         effective_since, at FROM contact_corrections ORDER BY correction_no",
        &[],
    )
    .await?;
    found
        .iter()
        .map(|row| {
            let primary = rows::digest(row, 2, "contact_corrections.digest")?
                .ok_or_else(|| StoreError::Corrupt("contact_corrections.digest is null".into()))?;
            let other = rows::digest(row, 3, "contact_corrections.other_digest")?;
            Ok(Correction {
                account: dense_no(rows::get(row, 0, "contact_corrections.account_no")?)?,
                kind: parsed(row, 1, "contact_corrections.kind", ContactKind::parse)?,
                digests: ContactDigests::new(primary, other),
                from: parsed(row, 4, "contact_corrections.from_context", Context::parse)?,
                to: parsed(row, 5, "contact_corrections.to_context", Context::parse)?,
                effective_since: timestamp(row, 6, "contact_corrections.effective_since")?,
                at: timestamp(row, 7, "contact_corrections.at")?,
            })
        })
        .collect()
}

/// The commitments of accounts that still have a key, in the order asked.
pub(crate) async fn commitments(
    tx: &Tx<'_>,
    accounts: &[AccountNo],
) -> Result<Vec<(AccountNo, Commitment)>, StoreError> {
    let numbers = crate::rows::account_numbers(accounts);
    let found = query(
        tx,
        "SELECT account_no, key FROM account_keys WHERE account_no = ANY($1)",
        &[&numbers],
    )
    .await?;
    let mut keys = std::collections::HashMap::with_capacity(found.len());
    for row in &found {
        let no: i64 = rows::get(row, 0, "account_keys.account_no")?;
        keys.insert(no, AccountKey(rows::bytes32(row, 1, "account_keys.key")?));
    }
    Ok(accounts
        .iter()
        .filter_map(|&a| keys.get(&i64::from(a.0)).map(|k| (a, k.account())))
        .collect())
}
