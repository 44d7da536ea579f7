//! Account lines: the NDJSON format the account system sends, parsed and checked.
//!
//! One line is one account:
//!
//! ```json
//! {"account_id":"u123","region":"US-CA",
//!  "contacts":[{"kind":"email","value":"Jane.Doe@Example.com","context":"profile","verified":true}],
//!  "consents":[{"purpose":"marketing.advertising.third_party.targeted","state":"granted",
//!               "source":"settings","at":"2026-01-05T10:00:00Z"}]}
//! ```
//!
//! A line that cannot be read as an account (not JSON, no valid id or region) is refused
//! whole; a contact point or consent event that is invalid is refused alone and the rest of
//! the line is kept. Contact values are normalized and turned into keyed digests here and go
//! no further: refusals carry a reason code and a field path, never a value.

use std::collections::BTreeMap;

use jiff::{SignedDuration, Timestamp};
use serde::{Deserialize, Serialize};
use tailor_core::{
    AccountRegion, ConsentSource, ConsentState, ContactKind, Context, E164Phone, IndexKey,
    NormalizedEmail, Purpose, RejectReason,
};
use tailor_store::{AccountWrite, NewConsent, NewContact};

/// Consent events may be stamped this far ahead of the server's clock (clock skew).
const FUTURE_TOLERANCE: SignedDuration = SignedDuration::from_mins(5);

/// The longest account id accepted, in bytes.
const MAX_ACCOUNT_ID: usize = 128;

/// The longest notice version accepted, in bytes.
const MAX_NOTICE_VERSION: usize = 64;

/// Why a line, a contact point or a consent event is refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[non_exhaustive]
pub enum ImportReject {
    /// Not a JSON object of the account shape (or an unknown field).
    MalformedJson,
    /// Longer than the line limit.
    LineTooLong,
    /// The body went over the size limit: this line and everything after it were not read.
    BodyTooLarge,
    /// Not valid UTF-8.
    InvalidUtf8,
    /// Empty, too long, or holding control characters.
    InvalidAccountId,
    /// Not `CC` or `CC-SUB`.
    InvalidRegion,
    /// A contact kind other than `email` or `phone`.
    UnknownKind,
    /// A context other than the seven Tailor knows.
    UnknownContext,
    /// The value is not a valid identifier of its kind.
    InvalidIdentifier(RejectReason),
    /// The same kind, context and value twice in one line.
    DuplicateContact,
    /// Not a fideslang data-use key.
    UnknownPurpose,
    UnknownConsentState,
    UnknownConsentSource,
    /// Not an RFC 3339 time.
    InvalidTime,
    /// Later than now.
    TimeInFuture,
    /// A notice version longer than 64 bytes or with control characters.
    InvalidNoticeVersion,
    /// The account does not exist (for single-event calls).
    UnknownAccount,
    /// The account has no live contact point of that kind and value (corrections).
    UnknownContact,
}

impl ImportReject {
    /// The stable code reported in summaries.
    pub fn code(self) -> &'static str {
        match self {
            Self::MalformedJson => "malformed_json",
            Self::LineTooLong => "line_too_long",
            Self::BodyTooLarge => "body_too_large",
            Self::InvalidUtf8 => "invalid_utf8",
            Self::InvalidAccountId => "invalid_account_id",
            Self::InvalidRegion => "invalid_region",
            Self::UnknownKind => "unknown_kind",
            Self::UnknownContext => "unknown_context",
            Self::InvalidIdentifier(reason) => reason.code(),
            Self::DuplicateContact => "duplicate_contact",
            Self::UnknownPurpose => "unknown_purpose",
            Self::UnknownConsentState => "unknown_consent_state",
            Self::UnknownConsentSource => "unknown_consent_source",
            Self::InvalidTime => "invalid_time",
            Self::TimeInFuture => "time_in_future",
            Self::InvalidNoticeVersion => "invalid_notice_version",
            Self::UnknownAccount => "unknown_account",
            Self::UnknownContact => "unknown_contact",
        }
    }
}

/// A refusal with where it happened.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Refusal {
    /// 1-based line of the body (1 for single-account calls).
    pub line: u64,
    /// The JSON path of the refused part, such as `contacts[1].value`; absent for a line.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    pub reason: &'static str,
}

/// The summary of an import, returned to the caller.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ImportSummary {
    /// Non-blank lines read.
    pub lines: u64,
    /// Accounts written.
    pub accounts: u64,
    /// Contact points written (live after the import).
    pub contact_points: u64,
    /// Consent events appended.
    pub consents: u64,
    /// Refusals by reason code.
    pub rejected: BTreeMap<&'static str, u64>,
    /// The first refusals, with their lines (at most [`ImportSummary::MAX_ERRORS`]).
    pub errors: Vec<Refusal>,
    /// Whether reading stopped early (the body went over its size limit).
    pub truncated: bool,
}

impl ImportSummary {
    pub const MAX_ERRORS: usize = 100;

    pub(crate) fn refuse(&mut self, line: u64, field: Option<String>, reason: ImportReject) {
        *self.rejected.entry(reason.code()).or_default() += 1;
        if self.errors.len() < Self::MAX_ERRORS {
            self.errors.push(Refusal {
                line,
                field,
                reason: reason.code(),
            });
        }
    }

    /// All refusals.
    pub fn rejected_total(&self) -> u64 {
        self.rejected.values().sum()
    }
}

#[derive(Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub(crate) struct AccountLine {
    account_id: String,
    region: String,
    /// Absent: keep the account's contact points. Present (even empty): replace them.
    contacts: Option<Vec<ContactLine>>,
    #[serde(default)]
    consents: Vec<ConsentLine>,
}

#[derive(Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
struct ContactLine {
    kind: String,
    value: String,
    context: String,
    #[serde(default)]
    verified: bool,
    #[serde(default)]
    notice_version: Option<String>,
}

/// One consent event as sent by the account system (no personal data in it).
#[derive(Debug, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ConsentLine {
    purpose: String,
    state: String,
    source: String,
    at: String,
    #[serde(default)]
    notice_version: Option<String>,
}

/// The OpenAPI schema of an account line, named `AccountLine`, for the HTTP API's document.
/// The line type itself stays private: it holds contact values.
#[cfg(feature = "openapi")]
#[derive(Debug)]
pub struct AccountLineSchema;

#[cfg(feature = "openapi")]
impl utoipa::PartialSchema for AccountLineSchema {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        <AccountLine as utoipa::PartialSchema>::schema()
    }
}

#[cfg(feature = "openapi")]
impl utoipa::ToSchema for AccountLineSchema {
    fn name() -> std::borrow::Cow<'static, str> {
        <AccountLine as utoipa::ToSchema>::name()
    }

    fn schemas(
        schemas: &mut Vec<(
            String,
            utoipa::openapi::RefOr<utoipa::openapi::schema::Schema>,
        )>,
    ) {
        <AccountLine as utoipa::ToSchema>::schemas(schemas);
    }
}

/// An account line turned into a store write.
#[derive(Debug)]
pub(crate) struct CheckedAccount {
    pub(crate) write: AccountWrite,
    /// The line had no `contacts` field: the account's contact points stay as they are.
    pub(crate) keep_contacts: bool,
}

/// Reads and checks one account line on its own, as an import does: the store write it would
/// make, or why the line is refused; refusals of its parts are in the summary.
pub fn check_line(
    bytes: &[u8],
    key: &IndexKey,
    now: Timestamp,
) -> (Result<AccountWrite, ImportReject>, ImportSummary) {
    let mut summary = ImportSummary::default();
    let checked = parse_line(bytes)
        .and_then(|line| check_account(1, line, key, now, &mut summary))
        .map(|account| account.write);
    (checked, summary)
}

/// Reads one line's JSON; serde's messages are dropped, as they may quote values.
pub(crate) fn parse_line(bytes: &[u8]) -> Result<AccountLine, ImportReject> {
    let text = std::str::from_utf8(bytes).map_err(|_| ImportReject::InvalidUtf8)?;
    serde_json::from_str(text).map_err(|_| ImportReject::MalformedJson)
}

/// Reads a single consent event's JSON.
pub fn parse_consent(bytes: &[u8]) -> Result<ConsentLine, ImportReject> {
    let text = std::str::from_utf8(bytes).map_err(|_| ImportReject::InvalidUtf8)?;
    serde_json::from_str(text).map_err(|_| ImportReject::MalformedJson)
}

pub(crate) fn check_account_id(id: &str) -> Result<(), ImportReject> {
    let ok = !id.is_empty()
        && id.len() <= MAX_ACCOUNT_ID
        && !id.chars().any(char::is_control)
        && id.trim() == id;
    ok.then_some(()).ok_or(ImportReject::InvalidAccountId)
}

fn check_notice(notice: Option<String>) -> Result<Option<String>, ImportReject> {
    match notice {
        Some(n) if n.len() > MAX_NOTICE_VERSION || n.chars().any(char::is_control) => {
            Err(ImportReject::InvalidNoticeVersion)
        }
        other => Ok(other),
    }
}

/// Checks a line; refusals of its parts go into `summary`, a refusal of the line is returned.
pub(crate) fn check_account(
    line_no: u64,
    line: AccountLine,
    key: &IndexKey,
    now: Timestamp,
    summary: &mut ImportSummary,
) -> Result<CheckedAccount, ImportReject> {
    check_account_id(&line.account_id)?;
    let region = AccountRegion::parse(&line.region).ok_or(ImportReject::InvalidRegion)?;
    let keep_contacts = line.contacts.is_none();
    let mut contacts: Vec<NewContact> = Vec::new();
    for (i, contact) in line.contacts.into_iter().flatten().enumerate() {
        match check_contact(contact, &region, key) {
            Ok(new) => {
                let duplicate = contacts.iter().any(|c| {
                    c.kind == new.kind
                        && c.context == new.context
                        && c.digests.primary() == new.digests.primary()
                });
                if duplicate {
                    summary.refuse(
                        line_no,
                        Some(format!("contacts[{i}]")),
                        ImportReject::DuplicateContact,
                    );
                } else {
                    contacts.push(new);
                }
            }
            Err((field, reason)) => {
                summary.refuse(line_no, Some(format!("contacts[{i}].{field}")), reason);
            }
        }
    }
    let mut consents = Vec::new();
    for (i, consent) in line.consents.into_iter().enumerate() {
        match check_consent(consent, now) {
            Ok(new) => consents.push(new),
            Err((field, reason)) => {
                summary.refuse(line_no, Some(format!("consents[{i}].{field}")), reason);
            }
        }
    }
    Ok(CheckedAccount {
        write: AccountWrite {
            account_id: line.account_id,
            region,
            contacts,
            consents,
        },
        keep_contacts,
    })
}

fn check_contact(
    line: ContactLine,
    region: &AccountRegion,
    key: &IndexKey,
) -> Result<NewContact, (&'static str, ImportReject)> {
    let kind = ContactKind::parse(&line.kind).ok_or(("kind", ImportReject::UnknownKind))?;
    let context = Context::parse(&line.context).ok_or(("context", ImportReject::UnknownContext))?;
    let digests = match kind {
        ContactKind::Email => NormalizedEmail::parse(&line.value).map(|e| key.email(&e)),
        ContactKind::Phone => {
            E164Phone::parse(&line.value, region.phone_region()).map(|p| key.phone(&p))
        }
    }
    .map_err(|reason| ("value", ImportReject::InvalidIdentifier(reason)))?;
    let notice_version = check_notice(line.notice_version).map_err(|r| ("notice_version", r))?;
    Ok(NewContact {
        kind,
        context,
        verified: line.verified,
        notice_version,
        digests,
    })
}

/// Checks one consent event; the error names the field at fault.
pub fn check_consent(
    line: ConsentLine,
    now: Timestamp,
) -> Result<NewConsent, (&'static str, ImportReject)> {
    let purpose = Purpose::parse(&line.purpose).ok_or(("purpose", ImportReject::UnknownPurpose))?;
    let state =
        ConsentState::parse(&line.state).ok_or(("state", ImportReject::UnknownConsentState))?;
    let source =
        ConsentSource::parse(&line.source).ok_or(("source", ImportReject::UnknownConsentSource))?;
    let at: Timestamp = line
        .at
        .parse()
        .map_err(|_| ("at", ImportReject::InvalidTime))?;
    if at > now + FUTURE_TOLERANCE {
        return Err(("at", ImportReject::TimeInFuture));
    }
    // Within the tolerance, the sender's clock is ahead of ours: the event happened now.
    let at = at.min(now);
    let notice_version = check_notice(line.notice_version).map_err(|r| ("notice_version", r))?;
    Ok(NewConsent {
        purpose,
        state,
        source,
        at,
        notice_version,
    })
}
