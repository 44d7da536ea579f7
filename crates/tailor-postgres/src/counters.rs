//! The counters table, as one write transaction changes it: row counts (so that counting is a
//! lookup, not a scan of a hundred million rows) and the last number given in each sequence
//! (so that a deleted row's number is never given again, and numbers have no gaps).
//!
//! A transaction records its changes in a [`Tally`]; the writer applies the tally just before
//! committing, so the counters move with the rows or not at all. Only one write transaction
//! runs at a time (the writer lock in `transaction`), so reading a counter once and writing it
//! back at the end is exact. The tally also carries the transaction's log journal.

use crate::log::Journal;
use crate::transaction::{Tx, execute, query, query_one};
use tailor_store::StoreError;

/// A sequence of numbers kept in the counters table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Sequence {
    Account,
    Advertiser,
    Audience,
    Session,
    Job,
    Event,
    /// The change feed's numbers (`crate::replication`).
    Change,
}

impl Sequence {
    const ALL: [Self; 7] = [
        Self::Account,
        Self::Advertiser,
        Self::Audience,
        Self::Session,
        Self::Job,
        Self::Event,
        Self::Change,
    ];

    const fn counter(self) -> &'static str {
        match self {
            Self::Account => "last_account_no",
            Self::Advertiser => "last_advertiser_no",
            Self::Audience => "last_audience_no",
            Self::Session => "last_session_no",
            Self::Job => "last_job_no",
            Self::Event => "last_event_no",
            Self::Change => "last_change_seq",
        }
    }

    const fn index(self) -> usize {
        self as usize
    }
}

/// Changes to the counters made by one transaction.
#[derive(Debug, Default)]
pub(crate) struct Tally {
    pub(crate) accounts: i64,
    pub(crate) live_contact_points: i64,
    pub(crate) consent_events: i64,
    pub(crate) erasures: i64,
    pub(crate) advertisers: i64,
    pub(crate) audiences: i64,
    pub(crate) memberships: i64,
    /// The last number of each sequence, once the transaction has read or advanced it.
    last: [Option<i64>; Sequence::ALL.len()],
    /// The log entries the transaction records.
    pub(crate) journal: Journal,
    /// What it changed, for the other processes' change feed.
    pub(crate) changes: crate::replication::Changes,
}

impl Tally {
    /// The last number ever given in `sequence` (0 for none).
    pub(crate) async fn last(
        &mut self,
        tx: &Tx<'_>,
        sequence: Sequence,
    ) -> Result<i64, StoreError> {
        if let Some(last) = self.last[sequence.index()] {
            return Ok(last);
        }
        let row = query_one(
            tx,
            "SELECT value FROM counters WHERE name = $1",
            &[&sequence.counter()],
        )
        .await?;
        let last: i64 = crate::rows::get(&row, 0, "counters.value")?;
        self.last[sequence.index()] = Some(last);
        Ok(last)
    }

    /// Records `last` as the last number given in `sequence`.
    pub(crate) fn set_last(&mut self, sequence: Sequence, last: i64) {
        self.last[sequence.index()] = Some(last);
    }

    /// Gives the next number of `sequence`.
    pub(crate) async fn next(
        &mut self,
        tx: &Tx<'_>,
        sequence: Sequence,
    ) -> Result<i64, StoreError> {
        self.reserve(tx, sequence, 1).await
    }

    /// Gives `n` consecutive numbers of `sequence` and returns the first.
    pub(crate) async fn reserve(
        &mut self,
        tx: &Tx<'_>,
        sequence: Sequence,
        n: usize,
    ) -> Result<i64, StoreError> {
        let last = self.last(tx, sequence).await?;
        let n = i64::try_from(n)
            .map_err(|_| StoreError::Database("too many numbers asked for at once".into()))?;
        let new_last = last
            .checked_add(n)
            .ok_or_else(|| StoreError::Database(format!("{} overflows", sequence.counter())))?;
        self.set_last(sequence, new_last);
        Ok(last + 1)
    }

    /// Writes the changes into the counters table.
    pub(crate) async fn apply(&self, tx: &Tx<'_>) -> Result<(), StoreError> {
        let changes = [
            ("accounts", self.accounts),
            ("live_contact_points", self.live_contact_points),
            ("consent_events", self.consent_events),
            ("erasures", self.erasures),
            ("advertisers", self.advertisers),
            ("audiences", self.audiences),
            ("memberships", self.memberships),
        ];
        for (name, delta) in changes {
            if delta != 0 {
                execute(
                    tx,
                    "UPDATE counters SET value = value + $1 WHERE name = $2",
                    &[&delta, &name],
                )
                .await?;
            }
        }
        for sequence in Sequence::ALL {
            if let Some(last) = self.last[sequence.index()] {
                execute(
                    tx,
                    "UPDATE counters SET value = $1 WHERE name = $2",
                    &[&last, &sequence.counter()],
                )
                .await?;
            }
        }
        Ok(())
    }
}

/// The row counts, by counter name (for [`tailor_store::Store::counts`]).
pub(crate) async fn counts(tx: &Tx<'_>) -> Result<tailor_store::StoreCounts, StoreError> {
    let mut counts = tailor_store::StoreCounts::default();
    for row in query(tx, "SELECT name, value FROM counters", &[]).await? {
        let name: String = crate::rows::get(&row, 0, "counters.name")?;
        let value: u64 = crate::rows::number(&row, 1, "counters.value")?;
        match name.as_str() {
            "accounts" => counts.accounts = value,
            "live_contact_points" => counts.live_contact_points = value,
            "consent_events" => counts.consent_events = value,
            "erasures" => counts.erasures = value,
            "advertisers" => counts.advertisers = value,
            "audiences" => counts.audiences = value,
            "memberships" => counts.memberships = value,
            // A sequence, not a row count.
            _ => {}
        }
    }
    Ok(counts)
}

/// A row count as SQL wants it.
pub(crate) fn count(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// A number as SQL wants it.
pub(crate) fn signed(n: u64, what: &'static str) -> Result<i64, StoreError> {
    i64::try_from(n).map_err(|_| StoreError::Database(format!("{what} is out of range")))
}
