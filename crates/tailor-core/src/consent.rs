//! Consent: an append-only history of events per account and purpose, and the standing it
//! gives at any instant.
//!
//! Nothing is overwritten: the standing at a past instant is recomputed from the events
//! recorded with `at` at or before it. Events for a purpose also cover its sub-purposes (a
//! withdrawal for `marketing` withdraws `marketing.advertising.third_party.targeted`).

use jiff::Timestamp;

use crate::purpose::Purpose;

/// What an event says.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ConsentState {
    Granted,
    Withdrawn,
    Objected,
}

impl ConsentState {
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Granted => "granted",
            Self::Withdrawn => "withdrawn",
            Self::Objected => "objected",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        [Self::Granted, Self::Withdrawn, Self::Objected]
            .into_iter()
            .find(|s| s.as_str() == text)
    }
}

/// Where an event came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ConsentSource {
    /// The platform's own settings page.
    Settings,
    /// An IAB TCF consent string.
    Tcf,
    /// A Global Privacy Control signal.
    Gpc,
    /// A CCPA/CPRA "do not sell or share" opt-out.
    CcpaOptOut,
    /// Google Consent Mode.
    GoogleConsent,
}

impl ConsentSource {
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Settings => "settings",
            Self::Tcf => "tcf",
            Self::Gpc => "gpc",
            Self::CcpaOptOut => "ccpa_opt_out",
            Self::GoogleConsent => "google_consent",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        [
            Self::Settings,
            Self::Tcf,
            Self::Gpc,
            Self::CcpaOptOut,
            Self::GoogleConsent,
        ]
        .into_iter()
        .find(|s| s.as_str() == text)
    }

    /// Signals that can only ever mean "no": a GPC signal or a CCPA opt-out withdraws, whatever
    /// state it was recorded with.
    pub const fn always_withdraws(self) -> bool {
        matches!(self, Self::Gpc | Self::CcpaOptOut)
    }
}

/// One recorded consent event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConsentEvent {
    pub purpose: Purpose,
    pub state: ConsentState,
    pub source: ConsentSource,
    /// When the person made the choice (may be earlier than when it was recorded).
    pub at: Timestamp,
    /// The version of the notice shown, when known.
    pub notice_version: Option<String>,
    /// The order in which events of one account were recorded; breaks ties between equal
    /// `at`.
    pub seq: u64,
}

impl ConsentEvent {
    /// Whether the event speaks for `purpose` (the same purpose or a parent of it).
    pub fn covers(&self, purpose: Purpose) -> bool {
        let own = self.purpose.as_str();
        let asked = purpose.as_str();
        asked == own || (asked.starts_with(own) && asked.as_bytes().get(own.len()) == Some(&b'.'))
    }

    /// Whether the event withdraws: a withdrawal, an objection, or a GPC / CCPA opt-out
    /// signal.
    pub fn withdraws(&self) -> bool {
        self.state != ConsentState::Granted || self.source.always_withdraws()
    }
}

/// The consent standing of one account for one purpose at one instant.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Standing {
    /// No event speaks for the purpose yet.
    Silent,
    /// The latest event grants; it is the basis of any use.
    Granted { seq: u64 },
    /// The latest event withdraws, objects or opts out.
    Withdrawn { seq: u64 },
}

/// The standing at `at`: the latest event (by `at`, then by recording order) covering
/// `purpose` among those at or before `at`.
pub fn standing(events: &[ConsentEvent], purpose: Purpose, at: Timestamp) -> Standing {
    events
        .iter()
        .filter(|e| e.at <= at && e.covers(purpose))
        .max_by_key(|e| (e.at, e.seq))
        .map_or(Standing::Silent, |e| {
            if e.withdraws() {
                Standing::Withdrawn { seq: e.seq }
            } else {
                Standing::Granted { seq: e.seq }
            }
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(
        purpose: &str,
        state: ConsentState,
        source: ConsentSource,
        at: i64,
        seq: u64,
    ) -> ConsentEvent {
        ConsentEvent {
            purpose: Purpose::parse(purpose).unwrap(),
            state,
            source,
            at: Timestamp::from_second(at).unwrap(),
            notice_version: None,
            seq,
        }
    }

    fn t(second: i64) -> Timestamp {
        Timestamp::from_second(second).unwrap()
    }

    const TARGETED: &str = crate::purpose::MARKETING_TARGETED;

    #[test]
    fn latest_event_by_time_wins_whatever_the_recording_order() {
        use ConsentSource::Settings;
        use ConsentState::*;
        // Recorded out of order: the withdrawal at t=200 was recorded before the grant at t=100.
        let events = [
            event(TARGETED, Withdrawn, Settings, 200, 1),
            event(TARGETED, Granted, Settings, 100, 2),
        ];
        let p = Purpose::MARKETING_TARGETED;
        assert_eq!(standing(&events, p, t(50)), Standing::Silent);
        assert_eq!(standing(&events, p, t(150)), Standing::Granted { seq: 2 });
        assert_eq!(standing(&events, p, t(250)), Standing::Withdrawn { seq: 1 });
        // Equal times: the later recording wins.
        let tie = [
            event(TARGETED, Granted, Settings, 100, 1),
            event(TARGETED, Withdrawn, Settings, 100, 2),
        ];
        assert_eq!(standing(&tie, p, t(100)), Standing::Withdrawn { seq: 2 });
    }

    #[test]
    fn signals_that_always_withdraw_and_parent_purposes() {
        use ConsentState::*;
        let p = Purpose::MARKETING_TARGETED;
        let gpc = [event(TARGETED, Granted, ConsentSource::Gpc, 10, 1)];
        assert_eq!(standing(&gpc, p, t(20)), Standing::Withdrawn { seq: 1 });
        let ccpa = [event(TARGETED, Granted, ConsentSource::CcpaOptOut, 10, 1)];
        assert_eq!(standing(&ccpa, p, t(20)), Standing::Withdrawn { seq: 1 });
        let objected = [event(TARGETED, Objected, ConsentSource::Tcf, 10, 1)];
        assert_eq!(
            standing(&objected, p, t(20)),
            Standing::Withdrawn { seq: 1 }
        );
        let parent = [
            event(TARGETED, Granted, ConsentSource::Settings, 10, 1),
            event("marketing", Withdrawn, ConsentSource::Settings, 20, 2),
        ];
        assert_eq!(standing(&parent, p, t(30)), Standing::Withdrawn { seq: 2 });
        let sibling = [event(
            "marketing.communications",
            Withdrawn,
            ConsentSource::Settings,
            20,
            1,
        )];
        assert_eq!(standing(&sibling, p, t(30)), Standing::Silent);
    }
}
