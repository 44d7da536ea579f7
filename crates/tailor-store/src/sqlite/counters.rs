//! The counters table, as one write transaction changes it: row counts (so that counting is a
//! lookup, not a scan of a hundred million rows) and the last number given in each sequence
//! (so that a deleted row's number is never given again).
//!
//! A transaction records its changes in a [`Tally`]; the writer applies the tally just before
//! committing, so the counters move with the rows or not at all. Nothing here may read or
//! write anything but the counters table. The tally also carries the transaction's log
//! journal, which the writer appends (see `log`) in the same transaction.

use rusqlite::Connection;

use super::SqlResult;
use crate::StoreError;

/// A sequence of numbers kept in the counters table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Sequence {
    Account,
    Advertiser,
    Audience,
    Session,
    Job,
    Event,
}

impl Sequence {
    const ALL: [Self; 6] = [
        Self::Account,
        Self::Advertiser,
        Self::Audience,
        Self::Session,
        Self::Job,
        Self::Event,
    ];

    const fn counter(self) -> &'static str {
        match self {
            Self::Account => "last_account_no",
            Self::Advertiser => "last_advertiser_no",
            Self::Audience => "last_audience_no",
            Self::Session => "last_session_no",
            Self::Job => "last_job_no",
            Self::Event => "last_event_no",
        }
    }

    const fn index(self) -> usize {
        self as usize
    }
}

/// Changes to the counters made by one transaction.
#[derive(Debug, Default)]
pub(super) struct Tally {
    pub(super) accounts: i64,
    pub(super) live_contact_points: i64,
    pub(super) consent_events: i64,
    pub(super) erasures: i64,
    pub(super) advertisers: i64,
    pub(super) audiences: i64,
    pub(super) memberships: i64,
    /// The last number of each sequence, once the transaction has read or advanced it.
    last: [Option<i64>; Sequence::ALL.len()],
    /// The log entries the transaction records.
    pub(super) journal: super::log::Journal,
}

impl Tally {
    /// The last number ever given in `sequence` (0 for none).
    pub(super) fn last(
        &mut self,
        conn: &Connection,
        sequence: Sequence,
    ) -> Result<i64, StoreError> {
        if let Some(last) = self.last[sequence.index()] {
            return Ok(last);
        }
        let last = conn
            .prepare_cached("SELECT value FROM counters WHERE name = ?1")
            .db()?
            .query_row([sequence.counter()], |row| row.get(0))
            .db()?;
        self.last[sequence.index()] = Some(last);
        Ok(last)
    }

    /// Records `last` as the last number given in `sequence`.
    pub(super) fn set_last(&mut self, sequence: Sequence, last: i64) {
        self.last[sequence.index()] = Some(last);
    }

    /// Gives the next number of `sequence`.
    pub(super) fn next(
        &mut self,
        conn: &Connection,
        sequence: Sequence,
    ) -> Result<i64, StoreError> {
        let next = self.reserve(conn, sequence, 1)?;
        Ok(next)
    }

    /// Gives `n` consecutive numbers of `sequence` and returns the first.
    pub(super) fn reserve(
        &mut self,
        conn: &Connection,
        sequence: Sequence,
        n: usize,
    ) -> Result<i64, StoreError> {
        let last = self.last(conn, sequence)?;
        let n = i64::try_from(n)
            .map_err(|_| StoreError::Database("too many numbers asked for at once".into()))?;
        let new_last = last
            .checked_add(n)
            .ok_or_else(|| StoreError::Database(format!("{} overflows", sequence.counter())))?;
        self.set_last(sequence, new_last);
        Ok(last + 1)
    }

    /// Writes the changes into the counters table.
    pub(super) fn apply(&self, conn: &Connection) -> Result<(), StoreError> {
        let changes = [
            ("accounts", self.accounts),
            ("live_contact_points", self.live_contact_points),
            ("consent_events", self.consent_events),
            ("erasures", self.erasures),
            ("advertisers", self.advertisers),
            ("audiences", self.audiences),
            ("memberships", self.memberships),
        ];
        let mut add = conn
            .prepare_cached("UPDATE counters SET value = value + ?1 WHERE name = ?2")
            .db()?;
        for (name, delta) in changes {
            if delta != 0 {
                add.execute((delta, name)).db()?;
            }
        }
        let mut set = conn
            .prepare_cached("UPDATE counters SET value = ?1 WHERE name = ?2")
            .db()?;
        for sequence in Sequence::ALL {
            if let Some(last) = self.last[sequence.index()] {
                set.execute((last, sequence.counter())).db()?;
            }
        }
        Ok(())
    }
}

/// A row count as SQL wants it.
pub(super) fn count(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}
