//! Records of processing: what GDPR article 30(1) asks a controller to write down about the
//! processing Tailor does under one policy.
//!
//! [`ProcessingRecord::of`] fills the record from two sources only: what the policy file says
//! (its purposes, their contexts, verification and consent regimes by region) and what Tailor
//! guarantees by construction, each guarantee naming the code or the test that enforces it
//! (a [`Citation`], checked by this module's tests to exist). The record carries the policy's
//! version, so a record belongs to exactly one policy file. What neither source can know (the
//! controller's name and contact details) is listed as left for the controller to complete.
//!
//! This module must never state a guarantee the code does not enforce, and never do IO:
//! [`ProcessingRecord::to_markdown`] is a pure function and JSON goes through `serde`.

use std::fmt;

use serde::{Serialize, Serializer};

use crate::contact::Context;
use crate::policy::{Policy, PolicyVersion, PurposeRule, Regime};
use crate::purpose::Purpose;
use crate::release::ReleaseConfig;

/// An article 30(1) record of the processing Tailor does under one policy.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ProcessingRecord {
    /// The SHA-256 of the policy file the record was made from (`sha256:...` in JSON).
    #[serde(serialize_with = "version_hex")]
    pub policy_version: PolicyVersion,
    /// Who decides what (art. 30(1)(a)).
    pub roles: Vec<Item>,
    /// One entry per purpose of the policy (art. 30(1)(b)), in key order.
    pub purposes: Vec<PurposeRecord>,
    /// Categories of data subjects (art. 30(1)(c)).
    pub data_subjects: Vec<Item>,
    /// Categories of personal data (art. 30(1)(c)).
    pub personal_data: Vec<Item>,
    /// Categories of recipients (art. 30(1)(d)).
    pub recipients: Vec<Item>,
    /// Transfers to third countries or international organisations (art. 30(1)(e)).
    pub transfers: Vec<Item>,
    /// Time limits for erasure (art. 30(1)(f)).
    pub retention: Vec<Item>,
    /// Technical security measures (art. 30(1)(g), art. 32(1)).
    pub safeguards: Vec<Item>,
    /// What the policy file cannot say and the controller must add.
    pub to_complete: Vec<&'static str>,
}

/// One statement of the record.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Item {
    /// A stable name for programs reading the JSON (`advertisers`, `keyed_digests`, ...).
    pub key: &'static str,
    pub text: String,
    /// Where the code enforces the statement; empty only for descriptions that promise
    /// nothing (who the controller is, who the account holders are).
    pub enforced_by: Vec<Citation>,
}

/// A place in the repository: a file and a name that occurs in it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Citation {
    /// Relative to the repository's root.
    pub path: &'static str,
    /// An item of that file (a function, a type, a test).
    pub item: &'static str,
}

/// One purpose of the policy.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct PurposeRecord {
    /// The fideslang data-use key.
    pub purpose: &'static str,
    /// The policy's plain-language description.
    pub description: String,
    /// Whether it is a `marketing.*` purpose.
    pub marketing: bool,
    /// Whether Tailor matches advertisers' lists for it; otherwise it only reports
    /// eligibility to the platform.
    pub audience_matching: bool,
    /// The collection contexts whose contact points may serve it.
    pub contexts: Vec<&'static str>,
    /// Whether only verified contact points may serve it.
    pub require_verified: bool,
    /// The legal basis by region, as the policy's consent regimes imply it.
    pub legal_bases: Vec<LegalBasis>,
    /// What the code adds to the policy's rules for this purpose.
    pub conditions: Vec<Item>,
}

/// The legal basis a consent regime implies, and the regions under it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct LegalBasis {
    /// `opt_in`, `opt_out` or `not_required`, as in the policy file.
    pub regime: &'static str,
    /// The basis in words: `consent`, `legitimate interest, with the right to object`, ...
    pub basis: &'static str,
    /// The GDPR articles it rests on, or what the controller must name.
    pub gdpr: &'static str,
    /// What it takes for a contact point to be eligible under it.
    pub eligible: &'static str,
    /// The regions the policy lists for this regime (`CC` or `CC-SUB`), sorted.
    pub regions: Vec<String>,
    /// Whether it is the policy's default: every region not listed under another regime.
    pub every_other_region: bool,
}

fn version_hex<S: Serializer>(version: &PolicyVersion, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(&version.to_hex())
}

const fn cite(path: &'static str, item: &'static str) -> Citation {
    Citation { path, item }
}

// The places cited more than once.
const POLICY_RS: &str = "crates/tailor-core/src/policy.rs";
const CONTACT_RS: &str = "crates/tailor-core/src/contact.rs";
const RELEASE_RS: &str = "crates/tailor-core/src/release/mod.rs";
const ADVERTISING_RS: &str = "crates/tailor-engine/src/advertising.rs";
const ENGINE_LIB_RS: &str = "crates/tailor-engine/src/lib.rs";
const SERVING_RS: &str = "crates/tailor-engine/src/serving.rs";
const VIEW_RS: &str = "crates/tailor-engine/src/view.rs";
const PRIVACY_UPLOADS: &str = "crates/tailor-cli/tests/it/privacy_uploads.rs";
const UNMATCHED_TEST: &str = "rows_that_match_nothing_leave_no_trace_in_the_data_directory";
const MEMBERSHIPS_RS: &str = "crates/tailor-store/src/sqlite/memberships.rs";

fn item(key: &'static str, text: impl Into<String>, enforced_by: &[Citation]) -> Item {
    Item {
        key,
        text: text.into(),
        enforced_by: enforced_by.to_vec(),
    }
}

impl ProcessingRecord {
    /// The record of the processing Tailor does under `policy`.
    ///
    /// `max_membership_days` is the longest time to live an audience may set, which is also
    /// its default: the engine's `advertising::MAX_TTL_DAYS`, passed in because the core
    /// cannot depend on the engine.
    pub fn of(policy: &Policy, max_membership_days: u32) -> Self {
        // Audience matching serves exactly one purpose (the engine's `INDEXED_PURPOSE`):
        // without it in the policy nothing is ever matched, and advertisers and ad serving
        // receive nothing about anyone.
        let matching = policy.rule(Purpose::MARKETING_TARGETED).is_some();
        let release = ReleaseConfig::default();

        let mut roles = vec![item(
            "controller",
            "The platform that runs Tailor beside its account system is the controller of the \
             personal data in this record: its account holders' contact points, their consent \
             history and, where audience matching is on, their audience memberships. Tailor runs \
             on the platform's own machines, with its data in the platform's own data directory.",
            &[],
        )];
        if matching {
            roles.push(item(
                "advertisers",
                "Each advertiser remains the controller of the customer list it uploads. The \
                 platform uses an upload only to match it against the accounts eligible under \
                 this policy, and keeps of it only the accounts it matched, as members of that \
                 advertiser's audience.",
                &[cite(PRIVACY_UPLOADS, UNMATCHED_TEST)],
            ));
        }

        let purposes = policy
            .purposes()
            .map(|(purpose, rule)| purpose_record(purpose, rule))
            .collect();

        let mut data_subjects = vec![item(
            "account_holders",
            "Platform account holders: the accounts the platform's account system streams in, \
             each with the region that selects its consent regime.",
            &[],
        )];
        if matching {
            data_subjects.push(item(
                "advertisers_customers",
                "Advertisers' customers whose email addresses or phone numbers are in an uploaded \
                 list. Their identifiers are matched only against the contact points eligible \
                 under this policy; a row that matches no eligible account is never stored in \
                 any form, not even as a keyed digest (only the job's counters remain). A \
                 customer who matches is an account holder, recorded from then on as an \
                 audience member.",
                &[cite(PRIVACY_UPLOADS, UNMATCHED_TEST)],
            ));
        }

        let mut personal_data = vec![
            item(
                "account",
                "The account's identifier in the platform and its region (`CC` or `CC-SUB`).",
                &[cite("crates/tailor-core/src/account.rs", "AccountRegion")],
            ),
            item(
                "contact_points",
                "Email addresses and phone numbers, only as keyed digests (HMAC-SHA-256 under the \
                 platform secret of the SHA-256 of each matching form), with their kind, the \
                 context they were collected in and whether they are verified; never the value \
                 and never an unkeyed hash. Contact points removed by the account system are \
                 kept as history and are never eligible.",
                &[
                    cite("crates/tailor-core/src/keyed.rs", "ContactDigests"),
                    cite(POLICY_RS, "Ineligible::Removed"),
                    cite(PRIVACY_UPLOADS, UNMATCHED_TEST),
                ],
            ),
            item(
                "consent_history",
                "Consent history per purpose: the state (granted, withdrawn, objected), the source \
                 (settings, tcf, gpc, ccpa_opt_out, google_consent), the time and the notice \
                 version shown.",
                &[cite(
                    "crates/tailor-core/src/consent.rs",
                    "pub struct ConsentEvent",
                )],
            ),
        ];
        if matching {
            personal_data.push(item(
                "memberships",
                "Audience memberships, each with its basis: the keyed digest of the contact point \
                 that matched and its context, the consent event granting it (none under an opt-out regime without a grant), \
                 the policy version, the upload job, when it was granted and when it expires; and \
                 a history row for every grant and every end, with its reason.",
                &[
                    cite("crates/tailor-store/src/audience.rs", "pub struct Grant"),
                    cite("crates/tailor-store/src/audience.rs", "pub enum RevokeReason"),
                    cite(MEMBERSHIPS_RS, "history row"),
                ],
            ));
        }

        let mut recipients = vec![item(
            "platform",
            "The platform's account system and operators (admin token): per account, each \
             contact point's kind, context and eligibility for every purpose of this policy with \
             its basis or the reason it is not eligible, the consent standing per purpose, and \
             what an erasure deleted; never a contact value.",
            &[
                cite(VIEW_RS, "pub struct AccountView"),
                cite(VIEW_RS, "pub struct ErasureReport"),
            ],
        )];
        if matching {
            recipients.push(item(
                "ad_serving",
                "Ad serving (serving token): which targetable audiences an account is in, \
                 re-checked at answer time (membership unexpired, contact point still eligible, \
                 audience targetable); no count.",
                &[cite(SERVING_RS, "fn answer")],
            ));
            recipients.push(item(
                "advertisers",
                format!(
                    "Advertisers (an API key each; budgets per legal entity): audience sizes only \
                     as released by one mechanism (discrete Laplace noise of ε = {} per answer, a \
                     minimum size of {} applied to the noisy value, rounding to two significant \
                     digits, a budget of ε = {} per legal entity per {} days; these are the \
                     defaults of `tailor serve`, see docs/privacy.md), and the row counters of \
                     their own files. Never an exact count, a match count or any per-person \
                     result.",
                    release.epsilon, release.min_size, release.budget, release.period_days,
                ),
                &[
                    cite(RELEASE_RS, "pub fn release"),
                    cite(
                        "crates/tailor-server/tests/it/openapi.rs",
                        "no_advertiser_visible_number_bypasses_the_release_mechanism",
                    ),
                ],
            ));
        }

        let transfers = vec![item(
            "none",
            "None by Tailor itself: it opens no outbound connection and sends personal data to no \
             one. Its only outputs are the answers to the callers of its API and of its operator \
             commands; what the platform does with them is for the platform's own record.",
            &[cite(
                "crates/tailor-server/src/routes.rs",
                "pub const ROUTES",
            )],
        )];

        let mut retention = Vec::new();
        if matching {
            retention.push(item(
                "memberships",
                format!(
                    "A membership ends when its audience's time to live passes: set per audience, \
                     1 to {max_membership_days} days, {max_membership_days} by default. Expired \
                     memberships are ended every minute, and serving answers skip them in the \
                     meantime."
                ),
                &[
                    cite(ADVERTISING_RS, "MAX_TTL_DAYS"),
                    cite(ENGINE_LIB_RS, "async fn sweeper"),
                    cite(SERVING_RS, "m.expires_at > now"),
                ],
            ));
            retention.push(item(
                "membership_history",
                "The history of every grant and end, with its basis, is kept until the account is \
                 erased, so that who was affected by which use has an exact answer.",
                &[cite(MEMBERSHIPS_RS, "DELETE FROM membership_events")],
            ));
            retention.push(item(
                "uploads",
                "Uploaded lists are not kept: rows that match nothing are dropped in memory; \
                 matched pairs (account, keyed digest) are staged until their job is applied, or \
                 for at most 24 hours in an upload session that is never committed.",
                &[
                    cite(ADVERTISING_RS, "SESSION_TTL"),
                    cite(PRIVACY_UPLOADS, UNMATCHED_TEST),
                ],
            ));
        }
        retention.push(item(
            "consent_history",
            "Consent history is append-only: nothing is overwritten, and the standing at any past \
             instant is recomputed from it. It is kept until the account is erased.",
            &[cite("crates/tailor-core/src/consent.rs", "pub fn standing")],
        ));
        retention.push(item(
            "contact_points",
            "A contact point is kept while the account system lists it; a removed one is kept as \
             history, never eligible, until the account is erased.",
            &[cite(POLICY_RS, "Ineligible::Removed")],
        ));
        retention.push(item(
            "erasure",
            "Erasing an account deletes its contact points (live and history), its consent \
             events, its memberships with their history, its staged matches and the account \
             itself, and ends its memberships in serving answers; only the counts of what was \
             deleted are kept.",
            &[
                cite(
                    "crates/tailor-store/src/sqlite/write.rs",
                    "fn erase_account",
                ),
                cite(MEMBERSHIPS_RS, "fn erase_account"),
            ],
        ));

        let mut safeguards = vec![
            item(
                "keyed_digests",
                "No raw contact value and no unkeyed hash is stored: identifiers are kept as \
                 HMAC-SHA-256, under the platform secret (at least 32 bytes), of their SHA-256. \
                 Without the key the stored digests match nothing, not even a list of known \
                 SHA-256 digests.",
                &[
                    cite("crates/tailor-core/src/keyed.rs", "pub struct IndexKey"),
                    cite(PRIVACY_UPLOADS, UNMATCHED_TEST),
                ],
            ),
            item(
                "security_contexts",
                "Contact points collected to secure an account (mfa, recovery, reauth, \
                 login_alert) or learned from another user's address book are never matchable, \
                 whatever the policy says: a policy listing them for a marketing purpose is \
                 refused, and the matcher accepts only a `MarketingEligible`, made only by \
                 `Policy::marketing` from a `MarketingContext`, a type with no variant for those \
                 contexts (compile-fail tests keep it so).",
                &[
                    cite(CONTACT_RS, "pub enum MarketingContext"),
                    cite(POLICY_RS, "pub fn marketing"),
                    cite(
                        "crates/tailor-core/src/index.rs",
                        "eligible: &MarketingEligible",
                    ),
                    cite(
                        "crates/tailor-core/tests/compile_fail/no_security_marketing_context.rs",
                        "MarketingContext",
                    ),
                ],
            ),
        ];
        if matching {
            safeguards.push(item(
                "differential_privacy",
                format!(
                    "Every number an advertiser sees about an audience goes through one release \
                     function: with the defaults, everything a legal entity sees in {} days is \
                     ε = {}-differentially private with respect to any one person.",
                    release.period_days, release.budget,
                ),
                &[
                    cite(RELEASE_RS, "pub fn release"),
                    cite(
                        "crates/tailor-core/src/release/budget.rs",
                        "pub fn budget_admits",
                    ),
                ],
            ));
            safeguards.push(item(
                "consent_at_match_time",
                "Matching uses the consent valid at match time: the index of eligible contact \
                 points equals the store under the policy after every write, and a withdrawal, \
                 objection, GPC or CCPA opt-out signal ends the account's memberships before the \
                 call recording it returns.",
                &[
                    cite(
                        "crates/tailor-engine/tests/it/consistency.rs",
                        "the_index_always_equals_the_store_under_the_policy",
                    ),
                    cite(SERVING_RS, "fn no_longer_eligible"),
                ],
            ));
        }
        safeguards.extend([
            item(
                "data_directory",
                "The data directory is created 0700 and its database files 0600, whatever the \
                 umask; a generated secret key file is 0600.",
                &[
                    cite("crates/tailor-store/src/sqlite/schema.rs", "0o700"),
                    cite("crates/tailor-store/src/sqlite/schema.rs", "0o600"),
                    cite("crates/tailor-engine/src/secret.rs", "pub fn write_private"),
                ],
            ),
            item(
                "tokens",
                "The admin, serving and compliance tokens and advertisers' API keys are stored \
                 only as their SHA-256 and shown once; presented tokens are compared in constant \
                 time.",
                &[
                    cite("crates/tailor-server/src/tokens.rs", "ct_eq"),
                    cite(ADVERTISING_RS, "key_sha256"),
                ],
            ),
            item(
                "no_identifiers_in_logs",
                "No identifier reaches logs or errors: identifier types print `<redacted>` as \
                 Debug and have no Display, and refusals carry static messages.",
                &[cite(
                    "crates/tailor-core/src/identifier/digest.rs",
                    "<redacted>",
                )],
            ),
        ]);

        Self {
            policy_version: policy.version(),
            roles,
            purposes,
            data_subjects,
            personal_data,
            recipients,
            transfers,
            retention,
            safeguards,
            to_complete: vec![
                "The name and contact details of the controller and, where applicable, of the \
                 joint controller, the controller's representative and the data protection \
                 officer (art. 30(1)(a)): a policy file does not hold them.",
                "The organisational measures around Tailor (who holds the admin token and the \
                 platform secret, backups of the data directory and the secret key, access to \
                 the machines) (art. 30(1)(g)).",
            ],
        }
    }

    /// The record as a Markdown document.
    pub fn to_markdown(&self) -> String {
        Markdown(self).to_string()
    }
}

fn purpose_record(purpose: Purpose, rule: &PurposeRule) -> PurposeRecord {
    let marketing = purpose.is_marketing();
    let audience_matching = purpose == Purpose::MARKETING_TARGETED;
    let mut conditions = Vec::new();
    if audience_matching {
        conditions.push(item(
            "audience_matching",
            "Tailor matches advertisers' uploaded lists against the keyed digests of the contact \
             points eligible for this purpose, and records each membership with its basis.",
            &[
                cite(ENGINE_LIB_RS, "INDEXED_PURPOSE"),
                cite(
                    "crates/tailor-core/src/index.rs",
                    "pub struct EligibleIndex",
                ),
            ],
        ));
    } else {
        conditions.push(item(
            "eligibility_report",
            "Tailor matches no list for this purpose: it only reports each account's eligibility \
             for it to the platform.",
            &[
                cite(ENGINE_LIB_RS, "INDEXED_PURPOSE"),
                cite(VIEW_RS, "pub struct PurposeView"),
            ],
        ));
    }
    if marketing {
        conditions.push(item(
            "never_security_contexts",
            "Contact points collected in a security context or learned from another user's \
             address book are never eligible, whatever a policy says.",
            &[
                cite(CONTACT_RS, "pub const fn can_ever_market"),
                cite(POLICY_RS, "Ineligible::SecurityContext"),
            ],
        ));
        if rule.contexts.contains(&Context::Signup) {
            conditions.push(item(
                "signup_needs_grant",
                "A `signup` contact point is eligible only with an explicit `granted` consent, \
                 even under an opt-out regime.",
                &[cite(POLICY_RS, "Ineligible::SignupWithoutConsent")],
            ));
        }
    }
    if rule.require_verified {
        conditions.push(item(
            "verified_only",
            "Only verified contact points are eligible.",
            &[cite(POLICY_RS, "Ineligible::Unverified")],
        ));
    }
    PurposeRecord {
        purpose: purpose.as_str(),
        description: rule.description.clone(),
        marketing,
        audience_matching,
        contexts: rule.contexts.iter().map(|c| c.as_str()).collect(),
        require_verified: rule.require_verified,
        legal_bases: legal_bases(rule),
        conditions,
    }
}

fn legal_bases(rule: &PurposeRule) -> Vec<LegalBasis> {
    [Regime::OptIn, Regime::OptOut, Regime::NotRequired]
        .into_iter()
        .filter_map(|regime| {
            let regions: Vec<String> = rule
                .regimes
                .iter()
                .filter(|&(_, &r)| r == regime)
                .map(|(region, _)| region.clone())
                .collect();
            let every_other_region = rule.default_regime == regime;
            if regions.is_empty() && !every_other_region {
                return None;
            }
            let (basis, gdpr, eligible) = match regime {
                Regime::OptIn => (
                    "consent",
                    "art. 6(1)(a), 7",
                    "only with a `granted` consent event, until it is withdrawn",
                ),
                Regime::OptOut => (
                    "legitimate interest, with the right to object",
                    "art. 6(1)(f), 21(2)-(3)",
                    "unless the person withdrew, objected, or sent a GPC or CCPA opt-out signal",
                ),
                Regime::NotRequired => (
                    "consent not required",
                    "basis to be named by the controller, such as art. 6(1)(b), (c) or (f)",
                    "without a consent event, unless a withdrawal or objection is recorded",
                ),
            };
            Some(LegalBasis {
                regime: regime.as_str(),
                basis,
                gdpr,
                eligible,
                regions,
                every_other_region,
            })
        })
        .collect()
}

/// The Markdown rendering, as a `Display` so that writing to the `String` has no error to
/// handle.
struct Markdown<'a>(&'a ProcessingRecord);

impl fmt::Display for Markdown<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let record = self.0;
        writeln!(
            f,
            "# Record of processing activities: Tailor audience matching"
        )?;
        writeln!(f)?;
        writeln!(
            f,
            "Made by `tailor policy report` from the policy `{}`, as GDPR article 30(1) asks. \
             Any change to the policy file changes its version and this record. Each guarantee \
             names the code or the test that enforces it.",
            record.policy_version
        )?;
        section(f, "Controller and roles (art. 30(1)(a))", &record.roles)?;

        writeln!(f)?;
        writeln!(f, "## Purposes of processing (art. 30(1)(b))")?;
        for purpose in &record.purposes {
            writeln!(f)?;
            writeln!(f, "### `{}`", purpose.purpose)?;
            writeln!(f)?;
            if !purpose.description.is_empty() {
                // A description is one paragraph, whatever line breaks the file has.
                let description: Vec<&str> = purpose.description.split_whitespace().collect();
                writeln!(f, "{}", description.join(" "))?;
                writeln!(f)?;
            }
            let contexts: Vec<String> = purpose.contexts.iter().map(|c| format!("`{c}`")).collect();
            let contexts = if contexts.is_empty() {
                "none".to_owned()
            } else {
                contexts.join(", ")
            };
            writeln!(f, "- Contexts of collection: {contexts}.")?;
            writeln!(
                f,
                "- Verified contact points only: {}.",
                if purpose.require_verified {
                    "yes"
                } else {
                    "no"
                }
            )?;
            let subdivisions = purpose
                .legal_bases
                .iter()
                .flat_map(|b| &b.regions)
                .any(|r| r.contains('-'));
            if subdivisions {
                writeln!(
                    f,
                    "- Legal basis by region (a subdivision's regime wins over its country's):"
                )?;
            } else {
                writeln!(f, "- Legal basis by region:")?;
            }
            for basis in &purpose.legal_bases {
                let mut regions = basis.regions.join(", ");
                if basis.every_other_region {
                    let others_listed = purpose
                        .legal_bases
                        .iter()
                        .any(|b| b.regime != basis.regime && !b.regions.is_empty());
                    let rest = if others_listed {
                        "every other region"
                    } else {
                        "every region"
                    };
                    regions = if regions.is_empty() {
                        rest.to_owned()
                    } else {
                        format!("{regions}, and {rest}")
                    };
                }
                writeln!(
                    f,
                    "  - {} (`{}`; {}): eligible {}. Regions: {regions}.",
                    basis.basis, basis.regime, basis.gdpr, basis.eligible
                )?;
            }
            for condition in &purpose.conditions {
                write_item(f, condition)?;
            }
        }

        section(
            f,
            "Categories of data subjects (art. 30(1)(c))",
            &record.data_subjects,
        )?;
        section(
            f,
            "Categories of personal data (art. 30(1)(c))",
            &record.personal_data,
        )?;
        section(f, "Recipients (art. 30(1)(d))", &record.recipients)?;
        section(
            f,
            "Transfers to third countries (art. 30(1)(e))",
            &record.transfers,
        )?;
        section(f, "Retention (art. 30(1)(f))", &record.retention)?;
        section(
            f,
            "Security measures (art. 30(1)(g), art. 32)",
            &record.safeguards,
        )?;

        writeln!(f)?;
        writeln!(f, "## To be completed by the controller")?;
        writeln!(f)?;
        for text in &record.to_complete {
            writeln!(f, "- {text}")?;
        }
        Ok(())
    }
}

fn section(f: &mut fmt::Formatter<'_>, title: &str, items: &[Item]) -> fmt::Result {
    writeln!(f)?;
    writeln!(f, "## {title}")?;
    writeln!(f)?;
    if items.is_empty() {
        writeln!(f, "None.")?;
    }
    for item in items {
        write_item(f, item)?;
    }
    Ok(())
}

fn write_item(f: &mut fmt::Formatter<'_>, item: &Item) -> fmt::Result {
    writeln!(f, "- {}", item.text)?;
    if !item.enforced_by.is_empty() {
        let cited: Vec<String> = item
            .enforced_by
            .iter()
            .map(|c| format!("`{}` (`{}`)", c.path, c.item))
            .collect();
        writeln!(f, "  Enforced by: {}.", cited.join(", "))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::DEFAULT_POLICY;

    /// The engine's `MAX_TTL_DAYS`; the CLI's test checks the shipped record against the
    /// engine's constant itself.
    const TTL: u32 = 540;

    fn shipped() -> ProcessingRecord {
        ProcessingRecord::of(&Policy::shipped(), TTL)
    }

    fn keys(items: &[Item]) -> Vec<&'static str> {
        items.iter().map(|i| i.key).collect()
    }

    #[test]
    fn every_purpose_of_the_shipped_policy_appears_with_its_contexts_and_regimes() {
        let policy = Policy::shipped();
        let record = ProcessingRecord::of(&policy, TTL);
        assert_eq!(record.purposes.len(), policy.purposes().count());
        for (purpose, rule) in policy.purposes() {
            let entry = record
                .purposes
                .iter()
                .find(|p| p.purpose == purpose.as_str())
                .unwrap_or_else(|| panic!("{purpose} is missing"));
            assert_eq!(entry.description, rule.description);
            let contexts: Vec<&str> = rule.contexts.iter().map(|c| c.as_str()).collect();
            assert_eq!(entry.contexts, contexts);
            assert_eq!(entry.require_verified, rule.require_verified);
            assert_eq!(entry.marketing, purpose.is_marketing());
            // Every region the policy names is under its own regime, and the default covers
            // the rest.
            for (region, regime) in &rule.regimes {
                let basis = entry
                    .legal_bases
                    .iter()
                    .find(|b| b.regime == regime.as_str())
                    .unwrap_or_else(|| panic!("{purpose}: no {} basis", regime.as_str()));
                assert!(basis.regions.contains(region), "{purpose}: {region}");
            }
            let defaults: Vec<&str> = entry
                .legal_bases
                .iter()
                .filter(|b| b.every_other_region)
                .map(|b| b.regime)
                .collect();
            assert_eq!(defaults, [rule.default_regime.as_str()], "{purpose}");
        }

        let targeted = &record.purposes[record
            .purposes
            .iter()
            .position(|p| p.purpose == "marketing.advertising.third_party.targeted")
            .unwrap()];
        assert!(targeted.audience_matching);
        assert_eq!(targeted.contexts, ["profile"]);
        let opt_in = &targeted.legal_bases[0];
        assert_eq!((opt_in.regime, opt_in.basis), ("opt_in", "consent"));
        assert_eq!(opt_in.regions.len(), 32);
        assert!(opt_in.regions.iter().any(|r| r == "FR"));
        assert!(!opt_in.every_other_region);
        let opt_out = &targeted.legal_bases[1];
        assert_eq!(opt_out.regime, "opt_out");
        assert!(opt_out.basis.starts_with("legitimate interest"));
        assert!(opt_out.regions.is_empty() && opt_out.every_other_region);
        assert_eq!(targeted.legal_bases.len(), 2);
        let markdown = record.to_markdown();
        assert!(markdown.contains("opt-out signal. Regions: every other region.\n"));
        assert!(markdown.contains("is recorded. Regions: every region.\n"));

        let security = record
            .purposes
            .iter()
            .find(|p| p.purpose == "essential.service.security")
            .unwrap();
        assert!(!security.marketing && !security.audience_matching);
        assert_eq!(security.contexts.len(), 6);
        assert_eq!(security.legal_bases.len(), 1);
        assert_eq!(security.legal_bases[0].regime, "not_required");
        assert!(!keys(&security.conditions).contains(&"never_security_contexts"));
    }

    #[test]
    fn the_version_is_the_policy_s() {
        let policy = Policy::shipped();
        let record = ProcessingRecord::of(&policy, TTL);
        assert_eq!(record.policy_version, policy.version());
        let json = serde_json::to_value(&record).unwrap();
        assert_eq!(json["policy_version"], policy.version().to_hex());
        assert!(
            record
                .to_markdown()
                .contains(&format!("`{}`", policy.version()))
        );

        // Any edit is another version, and another record.
        let edited = Policy::parse(&format!("{DEFAULT_POLICY}\n# edited\n")).unwrap();
        let other = ProcessingRecord::of(&edited, TTL);
        assert_ne!(other.policy_version, record.policy_version);
        assert_ne!(other.to_markdown(), record.to_markdown());
    }

    #[test]
    fn a_policy_without_marketing_purposes_has_no_marketing_recipients() {
        let policy = Policy::parse(
            "[purposes.\"essential.service.security\"]\n\
             contexts = [\"mfa\", \"recovery\"]\n\
             consent = { default = \"not_required\" }\n",
        )
        .unwrap();
        let record = ProcessingRecord::of(&policy, TTL);
        assert_eq!(keys(&record.recipients), ["platform"]);
        assert_eq!(keys(&record.data_subjects), ["account_holders"]);
        assert_eq!(keys(&record.roles), ["controller"]);
        assert!(!keys(&record.personal_data).contains(&"memberships"));
        assert!(!keys(&record.retention).contains(&"memberships"));
        assert!(!keys(&record.safeguards).contains(&"differential_privacy"));
        // What holds whatever the policy says is still there.
        assert!(keys(&record.safeguards).contains(&"security_contexts"));
        assert!(keys(&record.retention).contains(&"erasure"));
        let markdown = record.to_markdown();
        assert!(!markdown.contains("Advertisers ("), "{markdown}");
        assert!(!markdown.contains("Ad serving"), "{markdown}");
    }

    #[test]
    fn a_marketing_purpose_other_than_matching_gives_advertisers_nothing() {
        let policy = Policy::parse(
            "[purposes.\"marketing.communications.email\"]\n\
             contexts = [\"profile\", \"signup\"]\n\
             require_verified = false\n\
             consent = { default = \"opt_in\", opt_out = [\"US\"] }\n",
        )
        .unwrap();
        let record = ProcessingRecord::of(&policy, TTL);
        assert_eq!(keys(&record.recipients), ["platform"]);
        let email = &record.purposes[0];
        assert!(email.marketing && !email.audience_matching);
        assert_eq!(
            keys(&email.conditions),
            [
                "eligibility_report",
                "never_security_contexts",
                "signup_needs_grant"
            ]
        );
        let bases: Vec<(&str, &[String], bool)> = email
            .legal_bases
            .iter()
            .map(|b| (b.regime, b.regions.as_slice(), b.every_other_region))
            .collect();
        assert_eq!(
            bases,
            [
                ("opt_in", &[][..], true),
                ("opt_out", &["US".to_owned()][..], false)
            ]
        );
    }

    #[test]
    fn a_subdivision_is_listed_under_its_own_regime() {
        let policy = Policy::parse(
            "[purposes.\"marketing.advertising.third_party.targeted\"]\n\
             contexts = [\"profile\"]\n\
             consent = { default = \"opt_out\", opt_in = [\"US-CA\", \"FR\"] }\n",
        )
        .unwrap();
        let record = ProcessingRecord::of(&policy, TTL);
        assert_eq!(record.purposes[0].legal_bases[0].regions, ["FR", "US-CA"]);
        let markdown = record.to_markdown();
        assert!(markdown.contains("a subdivision's regime wins over its country's"));
        assert!(markdown.contains("Regions: FR, US-CA.\n"), "{markdown}");
        assert!(!shipped().to_markdown().contains("subdivision"));
    }

    #[test]
    fn retention_states_the_time_to_live_it_is_given() {
        let record = ProcessingRecord::of(&Policy::shipped(), 90);
        let memberships = record
            .retention
            .iter()
            .find(|i| i.key == "memberships")
            .unwrap();
        assert!(memberships.text.contains("1 to 90 days, 90 by default"));
        assert!(
            shipped()
                .to_markdown()
                .contains("1 to 540 days, 540 by default")
        );
    }

    #[test]
    fn the_shipped_record_names_every_item_of_article_30() {
        let record = shipped();
        assert_eq!(keys(&record.roles), ["controller", "advertisers"]);
        assert_eq!(
            keys(&record.data_subjects),
            ["account_holders", "advertisers_customers"]
        );
        assert_eq!(
            keys(&record.personal_data),
            [
                "account",
                "contact_points",
                "consent_history",
                "memberships"
            ]
        );
        assert_eq!(
            keys(&record.recipients),
            ["platform", "ad_serving", "advertisers"]
        );
        assert_eq!(keys(&record.transfers), ["none"]);
        assert_eq!(
            keys(&record.safeguards),
            [
                "keyed_digests",
                "security_contexts",
                "differential_privacy",
                "consent_at_match_time",
                "data_directory",
                "tokens",
                "no_identifiers_in_logs"
            ]
        );
        let markdown = record.to_markdown();
        for heading in [
            "(art. 30(1)(a))",
            "(art. 30(1)(b))",
            "## Categories of data subjects",
            "## Categories of personal data",
            "(art. 30(1)(d))",
            "(art. 30(1)(e))",
            "(art. 30(1)(f))",
            "(art. 30(1)(g), art. 32)",
            "## To be completed by the controller",
        ] {
            assert!(markdown.contains(heading), "{heading}");
        }
        // The advertisers' numbers are the release mechanism's defaults.
        let advertisers = &record.recipients[2].text;
        let defaults = ReleaseConfig::default();
        assert!(advertisers.contains(&format!("ε = {} per answer", defaults.epsilon)));
        assert!(advertisers.contains(&format!("minimum size of {}", defaults.min_size)));
    }

    /// Every statement that promises something names where the code keeps the promise, and
    /// every place it names exists: a renamed function or moved file fails here, not in an
    /// auditor's hands.
    #[test]
    fn every_citation_names_code_that_exists() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        let mut record = shipped();
        let mut items: Vec<Item> = Vec::new();
        for purpose in record.purposes.drain(..) {
            items.extend(purpose.conditions);
        }
        // Conditions that the shipped policy does not trigger.
        let other = Policy::parse(
            "[purposes.\"marketing.communications.email\"]\n\
             contexts = [\"signup\"]\n\
             consent = { default = \"opt_in\" }\n",
        )
        .unwrap();
        for purpose in ProcessingRecord::of(&other, TTL).purposes {
            items.extend(purpose.conditions);
        }
        for section in [
            &record.personal_data,
            &record.recipients,
            &record.transfers,
            &record.retention,
            &record.safeguards,
        ] {
            for item in section {
                assert!(!item.enforced_by.is_empty(), "{} cites nothing", item.key);
            }
        }
        items.extend(
            [
                record.roles,
                record.data_subjects,
                record.personal_data,
                record.recipients,
                record.transfers,
                record.retention,
                record.safeguards,
            ]
            .into_iter()
            .flatten(),
        );
        for item in &items {
            for citation in &item.enforced_by {
                let text = std::fs::read_to_string(root.join(citation.path))
                    .unwrap_or_else(|e| panic!("{}: {}: {e}", item.key, citation.path));
                assert!(
                    text.contains(citation.item),
                    "{}: {} does not mention {}",
                    item.key,
                    citation.path,
                    citation.item
                );
            }
        }
    }

    #[test]
    fn json_has_every_section() {
        let json = serde_json::to_value(shipped()).unwrap();
        for key in [
            "policy_version",
            "roles",
            "purposes",
            "data_subjects",
            "personal_data",
            "recipients",
            "transfers",
            "retention",
            "safeguards",
            "to_complete",
        ] {
            assert!(json.get(key).is_some(), "{key}");
        }
        let purpose = &json["purposes"][1];
        assert_eq!(
            purpose["purpose"],
            "marketing.advertising.third_party.targeted"
        );
        assert_eq!(purpose["legal_bases"][0]["regime"], "opt_in");
        assert_eq!(
            json["safeguards"][0]["enforced_by"][0]["path"],
            "crates/tailor-core/src/keyed.rs"
        );
    }
}
