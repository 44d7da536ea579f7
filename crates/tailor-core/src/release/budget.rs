//! The privacy budget: how much ε a legal entity may spend in a rolling window.
//!
//! Differential privacy composes: k releases of ε each about the same people are together
//! kε-private, however they are spread across audiences. So every release is charged to the
//! legal entity that asked, and a release that would take the entity's spending within the
//! window past its budget is refused until enough earlier charges have aged out. This file only
//! decides; it must never read a clock (the time is passed in) nor record a charge.

use jiff::Timestamp;

use super::{Epsilon, ReleaseConfig};

/// Whether one more release of `config.epsilon` fits in the entity's rolling window.
///
/// `charges` are the entity's earlier charges (time, ε) in any order; those older than the
/// window are ignored. A charge counts from its time until its time plus the period, exclusive:
/// at that instant it has aged out. Charges dated after `now` count in full.
///
/// `Ok(())` if the ε spent in the window plus `config.epsilon` is at most `config.budget`;
/// otherwise `Err(until)`, the earliest instant at which enough of the window's charges have
/// aged out for the release to fit. A release whose ε alone exceeds the budget never fits; it
/// is refused with `now` plus the period, so that callers always have a date to show.
pub fn budget_admits(
    charges: &[(Timestamp, Epsilon)],
    now: Timestamp,
    config: &ReleaseConfig,
) -> Result<(), Timestamp> {
    let period = config.period();
    // Saturating: the end of time is a fine answer for a window that would pass it.
    let ages_out = |at: Timestamp| at.checked_add(period).unwrap_or(Timestamp::MAX);
    let Some(room) = config.budget.micros().checked_sub(config.epsilon.micros()) else {
        return Err(ages_out(now));
    };
    let room = u128::from(room);
    let mut live: Vec<(Timestamp, u128)> = charges
        .iter()
        .map(|&(at, epsilon)| (ages_out(at), u128::from(epsilon.micros())))
        .filter(|&(out, _)| out > now)
        .collect();
    // In u128: even 2^64 charges of the largest ε cannot overflow the sum.
    let mut spent: u128 = live.iter().map(|&(_, epsilon)| epsilon).sum();
    if spent <= room {
        return Ok(());
    }
    live.sort_unstable_by_key(|&(out, _)| out);
    for (out, epsilon) in live {
        spent -= epsilon;
        if spent <= room {
            return Err(out);
        }
    }
    // Not reached: once every charge has aged out nothing is spent, and the loop returned.
    Err(ages_out(now))
}
