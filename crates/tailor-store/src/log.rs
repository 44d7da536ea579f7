//! The accountability log's entries: what happened, as the store records it in the same
//! transaction as the change itself, so that no committed change goes unlogged and no entry
//! describes a change that did not commit.
//!
//! An entry is the JSON of a [`LogEntry`]; its bytes are the leaf data of an RFC 6962 Merkle
//! tree (`tailor_log`). Entries carry no personal data and no unkeyed hash: an account appears
//! as a [`Commitment`], HMAC-SHA-256 under a key of its own kept outside the log (erasing the
//! account deletes the key, so its entries can no longer be linked to it while the log still
//! verifies), and a contact point as a commitment under the same key. Nothing here may put an
//! account id, a contact value or a digest of one into an entry.

use std::collections::BTreeMap;

use hmac::{Hmac, KeyInit, Mac};
use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use sha2::Sha256;

/// A keyed commitment to an account or one of its contact points, as lowercase hex.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Commitment(pub String);

/// The per-account key commitments are made under (32 random bytes, stored outside the log).
#[derive(Clone, PartialEq, Eq)]
pub struct AccountKey(pub [u8; 32]);

impl std::fmt::Debug for AccountKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AccountKey(<secret>)")
    }
}

impl AccountKey {
    fn commit(&self, domain: &[u8], value: &[u8]) -> Commitment {
        let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(&self.0)
            .unwrap_or_else(|_| unreachable!("HMAC takes a key of any length"));
        mac.update(domain);
        mac.update(value);
        let bytes: [u8; 32] = mac.finalize().into_bytes().into();
        Commitment(hex::encode(bytes))
    }

    /// The account's commitment.
    pub fn account(&self) -> Commitment {
        self.commit(b"tailor log account\0", b"")
    }

    /// A contact point's commitment, from its primary keyed digest.
    pub fn contact(&self, primary_digest: &[u8; 32]) -> Commitment {
        self.commit(b"tailor log contact\0", primary_digest)
    }
}

/// A contact point as the log names it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LoggedContact {
    pub contact: Commitment,
    pub kind: String,
    pub context: String,
    pub verified: bool,
}

/// A consent event as the log names it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LoggedConsent {
    pub seq: u64,
    pub purpose: String,
    pub state: String,
    pub source: String,
    pub at: Timestamp,
}

/// What one entry records.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum LogEvent {
    /// An account was created or written: contact points collected and removed, consent
    /// events appended.
    AccountChanged {
        account: Commitment,
        created: bool,
        region: String,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        collected: Vec<LoggedContact>,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        removed: Vec<LoggedContact>,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        consents: Vec<LoggedConsent>,
    },
    /// The context a contact point was collected in was corrected, from `effective_since`
    /// on (`contact` carries the corrected context).
    ContactReclassified {
        account: Commitment,
        contact: LoggedContact,
        from: String,
        effective_since: Timestamp,
    },
    /// An account was erased, with its memberships: its key is gone, so its earlier entries
    /// are no longer linkable to it.
    Erasure {
        account: Commitment,
        memberships_ended: u64,
    },
    /// A policy took effect.
    PolicyChanged { version: String },
    /// An advertiser was created.
    AdvertiserCreated {
        advertiser_id: String,
        entity: String,
    },
    /// A match job was applied. `root` is the RFC 6962 root over its grants and revocations
    /// (see [`grant_leaf`]), so that the membership history of the job can be checked against
    /// the log.
    JobCompleted {
        job_id: String,
        advertiser_id: String,
        audience_id: String,
        op: String,
        policy_version: Option<String>,
        rows_received: u64,
        rows_accepted: u64,
        rejected: BTreeMap<String, u64>,
        granted: u64,
        revoked: u64,
        root: String,
        /// The detective control: grants whose basis is a security or address-book context.
        /// Tailor makes them impossible by construction; this must stay 0.
        forbidden_basis: u64,
    },
    /// An incident's affected memberships still live were ended.
    IncidentRemediated {
        from: Timestamp,
        to: Timestamp,
        policy_version: String,
        affected_accounts: u64,
        affected_grants: u64,
        memberships_ended: u64,
    },
    /// Membership history recorded before `before` was deleted (the retention ran out).
    HistoryPruned { before: Timestamp, rows: u64 },
    /// Memberships of an audience reached their time to live.
    MembershipsExpired { audience_id: String, expired: u64 },
    /// An audience was deleted by its advertiser, ending its memberships.
    AudienceDeleted { audience_id: String, ended: u64 },
    /// Memberships of one account ended through no advertiser's action (consent withdrawn,
    /// ineligible, erased, expired).
    MembershipsEnded {
        account: Commitment,
        reason: String,
        audience_ids: Vec<String>,
    },
}

/// One entry: its position (from 0), when it was recorded, and what it records.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogEntry {
    pub index: u64,
    pub at: Timestamp,
    #[serde(flatten)]
    pub event: LogEvent,
}

impl LogEntry {
    /// The entry's bytes: the leaf data of the tree.
    pub fn to_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_else(|_| unreachable!("log entries serialize"))
    }

    /// An entry read back from its bytes.
    pub fn parse(bytes: &[u8]) -> Result<Self, serde_json::Error> {
        serde_json::from_slice(bytes)
    }
}

/// An entry as stored: its index, its bytes and the tree's root after it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredEntry {
    pub index: u64,
    pub data: Vec<u8>,
    pub root: [u8; 32],
}

/// A signed checkpoint as stored: the tree size it covers and the signed note.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredCheckpoint {
    pub size: u64,
    pub note: String,
    pub at: Timestamp,
}

/// The leaf of one grant or revocation in a job's root: a fixed binary layout of what the
/// membership history keeps for it (change, audience, account number, contact digest,
/// context, consent event, policy version).
pub fn grant_leaf(
    granted: bool,
    audience_no: u32,
    account_no: u32,
    contact_digest: &[u8; 32],
    context: &str,
    consent_seq: Option<u64>,
    policy_version: &[u8; 32],
) -> tailor_log::Hash {
    let mut data = Vec::with_capacity(1 + 4 + 4 + 32 + 1 + context.len() + 9 + 32);
    data.push(u8::from(granted));
    data.extend_from_slice(&audience_no.to_be_bytes());
    data.extend_from_slice(&account_no.to_be_bytes());
    data.extend_from_slice(contact_digest);
    data.push(u8::try_from(context.len()).unwrap_or(u8::MAX));
    data.extend_from_slice(context.as_bytes());
    match consent_seq {
        Some(seq) => {
            data.push(1);
            data.extend_from_slice(&seq.to_be_bytes());
        }
        None => data.push(0),
    }
    data.extend_from_slice(policy_version);
    tailor_log::leaf_hash(&data)
}

/// A contact point as the log names it, under its account's key.
pub fn logged_contact(key: &AccountKey, contact: &crate::StoredContact) -> LoggedContact {
    LoggedContact {
        contact: key.contact(contact.digests.primary().as_bytes()),
        kind: contact.kind.as_str().to_owned(),
        context: contact.context.as_str().to_owned(),
        verified: contact.verified,
    }
}

/// The entry of an account write: the contact points it collected and removed (by contact
/// number), the consent events it appended.
pub fn account_changed(key: &AccountKey, change: &crate::AccountChange) -> LogEvent {
    let after = &change.after;
    let before_contacts: &[crate::StoredContact] = change
        .before
        .as_ref()
        .map_or(&[], |b| b.contacts.as_slice());
    let known = |list: &[crate::StoredContact], no: u32| list.iter().any(|c| c.contact_no == no);
    let collected = after
        .contacts
        .iter()
        .filter(|c| !known(before_contacts, c.contact_no))
        .map(|c| logged_contact(key, c))
        .collect();
    let removed = before_contacts
        .iter()
        .filter(|c| !known(&after.contacts, c.contact_no))
        .map(|c| logged_contact(key, c))
        .collect();
    let had = change.before.as_ref().map_or(0, |b| b.consents.len());
    let consents = after.consents[had.min(after.consents.len())..]
        .iter()
        .map(|c| LoggedConsent {
            seq: c.seq,
            purpose: c.purpose.as_str().to_owned(),
            state: c.state.as_str().to_owned(),
            source: c.source.as_str().to_owned(),
            at: c.at,
        })
        .collect();
    LogEvent::AccountChanged {
        account: key.account(),
        created: change.before.is_none(),
        region: after.region.as_str().to_owned(),
        collected,
        removed,
        consents,
    }
}
