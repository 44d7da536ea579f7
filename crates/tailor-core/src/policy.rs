//! Policy as code: a versioned TOML file deciding which contact points of which accounts are
//! eligible for which purpose.
//!
//! Per purpose, a policy lists the eligible collection contexts, whether the contact point
//! must be verified, and the consent regime by region (opt-in, opt-out, or not required). Its
//! version is the SHA-256 of its bytes. One rule is not configurable: a security or
//! address-book context is never eligible for a `marketing.*` purpose. [`Policy::parse`]
//! refuses a file that says otherwise, naming the line, and [`Policy::marketing`] — the only
//! way to obtain a [`MarketingEligible`], the matcher's input — cannot produce one for such a
//! contact point whatever the file says.

use std::collections::BTreeMap;
use std::fmt;

use jiff::Timestamp;
use serde::Deserialize;
use sha2::{Digest as _, Sha256};
use toml::Spanned;

use crate::account::{AccountNo, AccountRegion};
use crate::consent::{ConsentEvent, Standing, standing};
use crate::contact::{Context, MarketingContext};
use crate::keyed::ContactDigests;
use crate::purpose::Purpose;

/// The policy Tailor ships with.
pub const DEFAULT_POLICY: &str = include_str!("../policy/default.toml");

/// A policy's version: the SHA-256 of its bytes.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PolicyVersion(pub [u8; 32]);

impl PolicyVersion {
    /// `sha256:` and the lowercase hex digest.
    pub fn to_hex(&self) -> String {
        format!("sha256:{}", hex::encode(self.0))
    }
}

impl fmt::Debug for PolicyVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl fmt::Display for PolicyVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

/// How consent is needed for a purpose in a region.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Regime {
    /// Eligible only with a `granted` consent.
    OptIn,
    /// Eligible unless withdrawn, objected, or opted out.
    OptOut,
    /// Consent does not apply (security, legal obligations). Never valid for marketing.
    NotRequired,
}

impl Regime {
    fn parse(text: &str) -> Option<Self> {
        match text {
            "opt_in" => Some(Self::OptIn),
            "opt_out" => Some(Self::OptOut),
            "not_required" => Some(Self::NotRequired),
            _ => None,
        }
    }

    pub const fn as_str(self) -> &'static str {
        match self {
            Self::OptIn => "opt_in",
            Self::OptOut => "opt_out",
            Self::NotRequired => "not_required",
        }
    }
}

/// The rules for one purpose.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PurposeRule {
    pub description: String,
    pub contexts: Vec<Context>,
    pub require_verified: bool,
    pub default_regime: Regime,
    /// Region (`CC` or `CC-SUB`) → regime; a subdivision's entry wins over its country's.
    pub regimes: BTreeMap<String, Regime>,
}

impl PurposeRule {
    /// The regime for an account's region.
    pub fn regime(&self, region: &AccountRegion) -> Regime {
        self.regimes
            .get(region.as_str())
            .or_else(|| self.regimes.get(region.country()))
            .copied()
            .unwrap_or(self.default_regime)
    }
}

/// A parsed, checked policy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Policy {
    version: PolicyVersion,
    purposes: BTreeMap<Purpose, PurposeRule>,
    /// The text it was parsed from (what other processes load to apply the same policy).
    source: std::sync::Arc<str>,
}

/// One problem in a policy file, with its 1-based line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PolicyProblem {
    pub line: usize,
    pub message: String,
}

impl fmt::Display for PolicyProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}: {}", self.line, self.message)
    }
}

/// Every problem found in a policy file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PolicyError {
    pub problems: Vec<PolicyProblem>,
}

impl fmt::Display for PolicyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, problem) in self.problems.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{problem}")?;
        }
        Ok(())
    }
}

impl std::error::Error for PolicyError {}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileDoc {
    purposes: BTreeMap<String, Spanned<PurposeDoc>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PurposeDoc {
    #[serde(default)]
    description: String,
    contexts: Vec<Spanned<String>>,
    #[serde(default = "yes")]
    require_verified: bool,
    consent: ConsentDoc,
}

fn yes() -> bool {
    true
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ConsentDoc {
    default: Spanned<String>,
    #[serde(default)]
    opt_in: Vec<Spanned<String>>,
    #[serde(default)]
    opt_out: Vec<Spanned<String>>,
}

impl Policy {
    /// The shipped policy.
    pub fn shipped() -> Self {
        // The shipped file is checked by a test; failing here is a bug in the build.
        Self::parse(DEFAULT_POLICY).unwrap_or_else(|e| panic!("the shipped policy is invalid: {e}"))
    }

    /// Parses and checks a policy file, reporting every problem with its line.
    pub fn parse(text: &str) -> Result<Self, PolicyError> {
        let line_of = |offset: usize| text[..offset.min(text.len())].matches('\n').count() + 1;
        let doc: FileDoc = toml::from_str(text).map_err(|e| PolicyError {
            problems: vec![PolicyProblem {
                line: e.span().map_or(1, |s| line_of(s.start)),
                message: e.message().to_owned(),
            }],
        })?;
        let mut problems = Vec::new();
        let mut purposes = BTreeMap::new();
        for (key, doc) in doc.purposes {
            let line = line_of(doc.span().start);
            let doc = doc.into_inner();
            let Some(purpose) = Purpose::parse(&key) else {
                problems.push(PolicyProblem {
                    line,
                    message: format!("{key:?} is not a fideslang data-use key"),
                });
                continue;
            };
            let mut contexts = Vec::new();
            for name in &doc.contexts {
                let line = line_of(name.span().start);
                match Context::parse(name.get_ref()) {
                    None => problems.push(PolicyProblem {
                        line,
                        message: format!(
                            "{:?} is not a collection context (profile, signup, mfa, recovery, \
                             reauth, login_alert, address_book)",
                            name.get_ref()
                        ),
                    }),
                    Some(context) if purpose.is_marketing() && !context.can_ever_market() => {
                        let what = if context.is_security() {
                            "a security context"
                        } else {
                            "learned from other users' address books"
                        };
                        problems.push(PolicyProblem {
                            line,
                            message: format!(
                                "`{context}` is {what} and can never be eligible for {purpose}: \
                                 this rule is not configurable"
                            ),
                        });
                    }
                    Some(context) if contexts.contains(&context) => problems.push(PolicyProblem {
                        line,
                        message: format!("`{context}` is listed twice"),
                    }),
                    Some(context) => contexts.push(context),
                }
            }
            let default_line = line_of(doc.consent.default.span().start);
            let default_regime = match Regime::parse(doc.consent.default.get_ref()) {
                Some(Regime::NotRequired) if purpose.is_marketing() => {
                    problems.push(PolicyProblem {
                        line: default_line,
                        message: format!("consent is always required for {purpose}"),
                    });
                    Regime::OptIn
                }
                Some(regime) => regime,
                None => {
                    problems.push(PolicyProblem {
                        line: default_line,
                        message: format!(
                            "{:?} is not a consent regime (opt_in, opt_out, not_required)",
                            doc.consent.default.get_ref()
                        ),
                    });
                    Regime::OptIn
                }
            };
            let mut regimes = BTreeMap::new();
            for (list, regime) in [
                (&doc.consent.opt_in, Regime::OptIn),
                (&doc.consent.opt_out, Regime::OptOut),
            ] {
                for code in list {
                    let line = line_of(code.span().start);
                    match AccountRegion::parse(code.get_ref()) {
                        None => problems.push(PolicyProblem {
                            line,
                            message: format!(
                                "{:?} is not a region code (CC or CC-SUB, such as FR or US-CA)",
                                code.get_ref()
                            ),
                        }),
                        Some(region) => {
                            if regimes.insert(region.as_str().to_owned(), regime).is_some() {
                                problems.push(PolicyProblem {
                                    line,
                                    message: format!("region {region} is listed twice"),
                                });
                            }
                        }
                    }
                }
            }
            purposes.insert(
                purpose,
                PurposeRule {
                    description: doc.description,
                    contexts,
                    require_verified: doc.require_verified,
                    default_regime,
                    regimes,
                },
            );
        }
        if !problems.is_empty() {
            problems.sort_by_key(|p| p.line);
            return Err(PolicyError { problems });
        }
        Ok(Self {
            version: PolicyVersion(Sha256::digest(text.as_bytes()).into()),
            purposes,
            source: text.into(),
        })
    }

    pub fn version(&self) -> PolicyVersion {
        self.version
    }

    /// The text the policy was parsed from; parsing it again gives the same policy.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// The purposes the policy speaks for, with their rules.
    pub fn purposes(&self) -> impl Iterator<Item = (Purpose, &PurposeRule)> {
        self.purposes.iter().map(|(&p, r)| (p, r))
    }

    pub fn rule(&self, purpose: Purpose) -> Option<&PurposeRule> {
        self.purposes.get(&purpose)
    }

    /// Whether a contact point may be used for `purpose` at `at`, and on which basis.
    pub fn decide(
        &self,
        purpose: Purpose,
        account: &AccountFacts<'_>,
        contact: &ContactFacts,
        at: Timestamp,
    ) -> Result<Basis, Ineligible> {
        if purpose.is_marketing() {
            if contact.context.is_security() {
                return Err(Ineligible::SecurityContext);
            }
            if contact.context == Context::AddressBook {
                return Err(Ineligible::AddressBook);
            }
        }
        if contact.removed {
            return Err(Ineligible::Removed);
        }
        let rule = self.rule(purpose).ok_or(Ineligible::PurposeNotInPolicy)?;
        if !rule.contexts.contains(&contact.context) {
            return Err(Ineligible::ContextNotInPolicy);
        }
        if rule.require_verified && !contact.verified {
            return Err(Ineligible::Unverified);
        }
        let regime = rule.regime(account.region);
        match (standing(account.consents, purpose, at), regime) {
            (Standing::Withdrawn { seq }, _) => Err(Ineligible::Withdrawn { seq }),
            (Standing::Granted { seq }, _) => Ok(Basis::Consent { seq }),
            // Signing up is not consenting to marketing: a signup contact point needs an
            // explicit grant whatever the regime.
            (Standing::Silent, _)
                if purpose.is_marketing() && contact.context == Context::Signup =>
            {
                Err(Ineligible::SignupWithoutConsent)
            }
            (Standing::Silent, Regime::OptOut) => Ok(Basis::OptOutRegime),
            (Standing::Silent, Regime::NotRequired) if !purpose.is_marketing() => {
                Ok(Basis::NotRequired)
            }
            (Standing::Silent, _) => Err(Ineligible::NoConsent),
        }
    }

    /// The matcher's input: a contact point eligible for a marketing purpose at `at`.
    ///
    /// This is the only constructor of [`MarketingEligible`]. The context goes through
    /// [`MarketingContext`], which has no security or address-book variant, so even a decision
    /// gone wrong could not produce a matchable security contact point.
    pub fn marketing(
        &self,
        purpose: Purpose,
        account: &AccountFacts<'_>,
        contact: &ContactFacts,
        digests: ContactDigests,
        at: Timestamp,
    ) -> Result<MarketingEligible, Ineligible> {
        if !purpose.is_marketing() {
            return Err(Ineligible::NotMarketing);
        }
        let context = MarketingContext::try_from(contact.context).map_err(|_| {
            if contact.context == Context::AddressBook {
                Ineligible::AddressBook
            } else {
                Ineligible::SecurityContext
            }
        })?;
        let basis = self.decide(purpose, account, contact, at)?;
        Ok(MarketingEligible {
            account: account.no,
            purpose,
            context,
            digests,
            basis,
            policy: self.version,
        })
    }
}

/// What the policy needs to know about an account.
#[derive(Clone, Copy, Debug)]
pub struct AccountFacts<'a> {
    pub no: AccountNo,
    pub region: &'a AccountRegion,
    /// The account's whole consent history.
    pub consents: &'a [ConsentEvent],
}

/// What the policy needs to know about a contact point.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ContactFacts {
    pub context: Context,
    pub verified: bool,
    /// Removed by the account system (kept in history only).
    pub removed: bool,
}

/// Why a use is allowed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Basis {
    /// The consent event with this recording number grants it.
    Consent { seq: u64 },
    /// The region's regime is opt-out and the person has not opted out.
    OptOutRegime,
    /// The purpose needs no consent (never a marketing purpose).
    NotRequired,
}

/// Why a contact point may not be used for a purpose.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ineligible {
    /// Collected to secure the account.
    SecurityContext,
    /// Learned from someone else's address book.
    AddressBook,
    /// The policy does not list the purpose.
    PurposeNotInPolicy,
    /// The policy does not list the contact point's context for the purpose.
    ContextNotInPolicy,
    /// The policy requires verified contact points.
    Unverified,
    /// Opt-in region and no consent granted.
    NoConsent,
    /// A signup contact point without an explicit grant.
    SignupWithoutConsent,
    /// The latest consent event withdraws (withdrawal, objection, GPC, CCPA opt-out).
    Withdrawn { seq: u64 },
    /// The contact point was removed.
    Removed,
    /// Asked for a matcher input for a purpose that is not marketing.
    NotMarketing,
}

impl Ineligible {
    /// A stable code for reports.
    pub const fn code(self) -> &'static str {
        match self {
            Self::SecurityContext => "security_context",
            Self::AddressBook => "address_book",
            Self::PurposeNotInPolicy => "purpose_not_in_policy",
            Self::ContextNotInPolicy => "context_not_in_policy",
            Self::Unverified => "unverified",
            Self::NoConsent => "no_consent",
            Self::SignupWithoutConsent => "signup_without_consent",
            Self::Withdrawn { .. } => "withdrawn",
            Self::Removed => "removed",
            Self::NotMarketing => "not_marketing",
        }
    }
}

/// A contact point eligible for a marketing purpose: the only thing the matcher accepts.
///
/// It can only be made by [`Policy::marketing`]; its fields are private and it has no other
/// constructor and no conversion from any contact type.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MarketingEligible {
    account: AccountNo,
    purpose: Purpose,
    context: MarketingContext,
    digests: ContactDigests,
    basis: Basis,
    policy: PolicyVersion,
}

impl MarketingEligible {
    pub fn account(&self) -> AccountNo {
        self.account
    }

    pub fn purpose(&self) -> Purpose {
        self.purpose
    }

    pub fn context(&self) -> MarketingContext {
        self.context
    }

    pub fn digests(&self) -> &ContactDigests {
        &self.digests
    }

    pub fn basis(&self) -> Basis {
        self.basis
    }

    pub fn policy(&self) -> PolicyVersion {
        self.policy
    }
}
