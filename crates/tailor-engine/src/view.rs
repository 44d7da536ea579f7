//! What the engine shows about an account: contact points without their values, what each is
//! eligible for and why not, and the consent standing per purpose.

use std::collections::BTreeMap;

use jiff::Timestamp;
use serde::Serialize;
use tailor_core::{AccountFacts, ContactFacts, Policy, Standing};
use tailor_store::AccountState;

use crate::{basis_name, standings};

/// An account as the admin API shows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AccountView {
    pub account_id: String,
    pub region: String,
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub created_at: Timestamp,
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub updated_at: Timestamp,
    pub contact_points: Vec<ContactView>,
    /// The consent standing per purpose of the policy.
    pub consent: BTreeMap<&'static str, ConsentView>,
    /// The policy version the eligibility was evaluated under.
    pub policy_version: String,
}

/// A contact point, without its value.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ContactView {
    pub kind: &'static str,
    pub context: &'static str,
    pub verified: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub notice_version: Option<String>,
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub added_at: Timestamp,
    /// Per purpose of the policy: eligible or not, and why.
    pub purposes: BTreeMap<&'static str, PurposeView>,
}

/// Whether a contact point may be used for one purpose.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PurposeView {
    pub eligible: bool,
    /// When eligible: `consent`, `opt_out_regime` or `not_required`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub basis: Option<&'static str>,
    /// The consent event the decision rests on (granting or withdrawing).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub consent_seq: Option<u64>,
    /// When not eligible: the reason code.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<&'static str>,
}

/// The consent standing for one purpose.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ConsentView {
    /// `granted`, `withdrawn` (withdrawn, objected or opted out) or `none`.
    pub state: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seq: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub recorded_state: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, format = DateTime))]
    pub at: Option<Timestamp>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub notice_version: Option<String>,
}

/// What an erasure removed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ErasureReport {
    pub erased: bool,
    pub contact_points: u64,
    pub consent_events: u64,
    /// Entries removed from the eligible index.
    pub index_entries: u64,
    /// Audience memberships removed (audiences arrive in a later version).
    pub memberships: u64,
}

pub(crate) fn account_view(state: &AccountState, policy: &Policy, at: Timestamp) -> AccountView {
    let facts = AccountFacts {
        no: state.no,
        region: &state.region,
        consents: &state.consents,
    };
    let contact_points = state
        .contacts
        .iter()
        .map(|contact| {
            let contact_facts = ContactFacts {
                context: contact.context,
                verified: contact.verified,
                removed: false,
            };
            let purposes = policy
                .purposes()
                .map(|(purpose, _)| {
                    let view = match policy.decide(purpose, &facts, &contact_facts, at) {
                        Ok(basis) => PurposeView {
                            eligible: true,
                            basis: Some(basis_name(basis)),
                            consent_seq: match basis {
                                tailor_core::Basis::Consent { seq } => Some(seq),
                                _ => None,
                            },
                            reason: None,
                        },
                        Err(reason) => PurposeView {
                            eligible: false,
                            basis: None,
                            consent_seq: match reason {
                                tailor_core::Ineligible::Withdrawn { seq } => Some(seq),
                                _ => None,
                            },
                            reason: Some(reason.code()),
                        },
                    };
                    (purpose.as_str(), view)
                })
                .collect();
            ContactView {
                kind: contact.kind.as_str(),
                context: contact.context.as_str(),
                verified: contact.verified,
                notice_version: contact.notice_version.clone(),
                added_at: contact.added_at,
                purposes,
            }
        })
        .collect();
    let consent = standings(policy, state, at)
        .into_iter()
        .map(|(purpose, standing)| {
            let seq = match standing {
                Standing::Granted { seq } | Standing::Withdrawn { seq } => Some(seq),
                Standing::Silent => None,
            };
            let event = seq.and_then(|seq| state.consents.iter().find(|e| e.seq == seq));
            let view = ConsentView {
                state: match standing {
                    Standing::Granted { .. } => "granted",
                    Standing::Withdrawn { .. } => "withdrawn",
                    Standing::Silent => "none",
                },
                seq,
                source: event.map(|e| e.source.as_str()),
                recorded_state: event.map(|e| e.state.as_str()),
                at: event.map(|e| e.at),
                notice_version: event.and_then(|e| e.notice_version.clone()),
            };
            (purpose.as_str(), view)
        })
        .collect();
    AccountView {
        account_id: state.account_id.clone(),
        region: state.region.as_str().to_owned(),
        created_at: state.created_at,
        updated_at: state.updated_at,
        contact_points,
        consent,
        policy_version: policy.version().to_hex(),
    }
}
