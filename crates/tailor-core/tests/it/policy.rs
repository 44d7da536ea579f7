//! Policy files: the shipped policy, the rule that is not configurable, and eligibility
//! decisions across contexts, regimes and consent histories.

use jiff::Timestamp;
use tailor_core::policy::DEFAULT_POLICY;
use tailor_core::{
    AccountFacts, AccountNo, AccountRegion, Basis, ConsentEvent, ConsentSource, ConsentState,
    ContactDigests, ContactFacts, Context, Ineligible, KeyedDigest, Policy, Purpose,
};

fn t(second: i64) -> Timestamp {
    Timestamp::from_second(second).unwrap()
}

#[test]
fn the_shipped_policy_is_valid() {
    let policy = Policy::parse(DEFAULT_POLICY).unwrap();
    assert_eq!(policy, Policy::shipped());
    let rule = policy.rule(Purpose::MARKETING_TARGETED).unwrap();
    assert_eq!(rule.contexts, [Context::Profile]);
    assert!(rule.require_verified);
    use tailor_core::policy::Regime;
    for (region, regime) in [
        ("FR", Regime::OptIn),
        ("DE", Regime::OptIn),
        ("GB", Regime::OptIn),
        ("CH", Regime::OptIn),
        ("NO", Regime::OptIn),
        ("US", Regime::OptOut),
        ("US-CA", Regime::OptOut),
        ("BR", Regime::OptOut),
    ] {
        assert_eq!(
            rule.regime(&AccountRegion::parse(region).unwrap()),
            regime,
            "{region}"
        );
    }
    assert!(policy.version().to_hex().starts_with("sha256:"));
}

/// A marketing purpose section with `contexts` on line 3.
fn marketing_with(contexts: &str) -> String {
    format!(
        "[purposes.\"marketing.advertising.third_party.targeted\"]\n\
         description = \"x\"\n\
         contexts = [{contexts}]\n\
         [purposes.\"marketing.advertising.third_party.targeted\".consent]\n\
         default = \"opt_in\"\n"
    )
}

#[test]
fn security_and_address_book_contexts_are_refused_for_marketing_with_the_line() {
    for context in ["mfa", "recovery", "reauth", "login_alert", "address_book"] {
        let text = marketing_with(&format!("\"profile\", \"{context}\""));
        let err = Policy::parse(&text).unwrap_err();
        assert_eq!(err.problems.len(), 1, "{err}");
        assert_eq!(err.problems[0].line, 3, "{err}");
        assert!(err.to_string().contains(&format!("`{context}`")), "{err}");
        assert!(err.to_string().contains("not configurable"), "{err}");
    }
    // A security purpose may use them.
    let security = "[purposes.\"essential.service.security\"]\ncontexts = [\"mfa\"]\n\
                    [purposes.\"essential.service.security\".consent]\ndefault = \"not_required\"\n";
    assert!(Policy::parse(security).is_ok());
    // Listed on a later line of a multi-line array: that line is named.
    let text = marketing_with("\n  \"profile\",\n  \"mfa\",\n");
    let err = Policy::parse(&text).unwrap_err();
    assert_eq!(err.problems[0].line, 5, "{err}");
}

#[test]
fn every_problem_is_reported_with_its_line() {
    let cases: &[(&str, usize, &str)] = &[
        (
            "[purposes.\"marketing.advertising.targeted\"]\ncontexts=[]\n[purposes.\"marketing.advertising.targeted\".consent]\ndefault=\"opt_in\"\n",
            1,
            "not a fideslang",
        ),
        (&marketing_with("\"profil\""), 3, "not a collection context"),
        (
            &marketing_with("\"profile\", \"profile\""),
            3,
            "listed twice",
        ),
        (
            &marketing_with("\"profile\"").replace("opt_in", "maybe"),
            5,
            "not a consent regime",
        ),
        (
            &marketing_with("\"profile\"").replace("opt_in", "not_required"),
            5,
            "consent is always required",
        ),
        (
            &format!(
                "{}opt_in = [\"FR\", \"XX\"]\n",
                marketing_with("\"profile\"")
            ),
            6,
            "not a region code",
        ),
        (
            &format!(
                "{}opt_in = [\"FR\"]\nopt_out = [\"fr\"]\n",
                marketing_with("\"profile\"")
            ),
            7,
            "listed twice",
        ),
        ("[purposes\n", 1, ""),
        (
            &format!("{}colour = \"blue\"\n", marketing_with("\"profile\"")),
            6,
            "unknown field",
        ),
    ];
    for (text, line, needle) in cases {
        let err = Policy::parse(text).unwrap_err();
        assert_eq!(err.problems[0].line, *line, "{text}\n{err}");
        assert!(err.to_string().contains(needle), "{text}\n{err}");
    }
}

#[test]
fn the_version_is_the_hash_of_the_bytes() {
    let a = Policy::parse(&marketing_with("\"profile\"")).unwrap();
    let b = Policy::parse(&format!("# a comment\n{}", marketing_with("\"profile\""))).unwrap();
    assert_ne!(a.version(), b.version());
    assert_eq!(
        a.version(),
        Policy::parse(&marketing_with("\"profile\""))
            .unwrap()
            .version()
    );
}

fn consent(state: ConsentState, source: ConsentSource, at: i64, seq: u64) -> ConsentEvent {
    ConsentEvent {
        purpose: Purpose::MARKETING_TARGETED,
        state,
        source,
        at: t(at),
        notice_version: None,
        seq,
    }
}

fn digests() -> ContactDigests {
    ContactDigests::new(KeyedDigest([7; 32]), None)
}

/// Region, consent history, contact point, expected decision.
type Case<'a> = (
    &'a AccountRegion,
    &'a [ConsentEvent],
    ContactFacts,
    Result<Basis, Ineligible>,
);

/// Decisions for the targeted-ads purpose under a policy that allows profile and signup.
#[test]
fn decisions_across_contexts_regimes_and_consent() {
    let text = "[purposes.\"marketing.advertising.third_party.targeted\"]\n\
                contexts = [\"profile\", \"signup\"]\nrequire_verified = true\n\
                [purposes.\"marketing.advertising.third_party.targeted\".consent]\n\
                default = \"opt_out\"\nopt_in = [\"FR\"]\nopt_out = [\"FR-75\"]\n";
    let policy = Policy::parse(text).unwrap();
    let us = AccountRegion::parse("US").unwrap();
    let fr = AccountRegion::parse("FR").unwrap();
    let paris = AccountRegion::parse("FR-75").unwrap();
    use ConsentSource::*;
    use ConsentState::*;
    let granted = [consent(Granted, Settings, 10, 1)];
    let withdrawn = [
        consent(Granted, Settings, 10, 1),
        consent(Withdrawn, Settings, 20, 2),
    ];
    let gpc = [consent(Granted, Gpc, 10, 1)];
    let none: [ConsentEvent; 0] = [];
    let contact = |context, verified| ContactFacts {
        context,
        verified,
        removed: false,
    };
    let cases: Vec<Case<'_>> = vec![
        (
            &us,
            &none,
            contact(Context::Profile, true),
            Ok(Basis::OptOutRegime),
        ),
        (
            &us,
            &granted,
            contact(Context::Profile, true),
            Ok(Basis::Consent { seq: 1 }),
        ),
        (
            &us,
            &withdrawn,
            contact(Context::Profile, true),
            Err(Ineligible::Withdrawn { seq: 2 }),
        ),
        (
            &us,
            &gpc,
            contact(Context::Profile, true),
            Err(Ineligible::Withdrawn { seq: 1 }),
        ),
        (
            &us,
            &none,
            contact(Context::Profile, false),
            Err(Ineligible::Unverified),
        ),
        (
            &us,
            &none,
            contact(Context::Signup, true),
            Err(Ineligible::SignupWithoutConsent),
        ),
        (
            &us,
            &granted,
            contact(Context::Signup, true),
            Ok(Basis::Consent { seq: 1 }),
        ),
        (
            &fr,
            &none,
            contact(Context::Profile, true),
            Err(Ineligible::NoConsent),
        ),
        (
            &fr,
            &granted,
            contact(Context::Profile, true),
            Ok(Basis::Consent { seq: 1 }),
        ),
        (
            &paris,
            &none,
            contact(Context::Profile, true),
            Ok(Basis::OptOutRegime),
        ),
        (
            &us,
            &granted,
            contact(Context::Mfa, true),
            Err(Ineligible::SecurityContext),
        ),
        (
            &us,
            &granted,
            contact(Context::Recovery, true),
            Err(Ineligible::SecurityContext),
        ),
        (
            &us,
            &granted,
            contact(Context::Reauth, true),
            Err(Ineligible::SecurityContext),
        ),
        (
            &us,
            &granted,
            contact(Context::LoginAlert, true),
            Err(Ineligible::SecurityContext),
        ),
        (
            &us,
            &granted,
            contact(Context::AddressBook, true),
            Err(Ineligible::AddressBook),
        ),
        (
            &us,
            &granted,
            ContactFacts {
                context: Context::Profile,
                verified: true,
                removed: true,
            },
            Err(Ineligible::Removed),
        ),
    ];
    for (region, consents, facts, expected) in cases {
        let account = AccountFacts {
            no: AccountNo(1),
            region,
            consents,
        };
        let decided = policy.decide(Purpose::MARKETING_TARGETED, &account, &facts, t(100));
        assert_eq!(decided, expected, "{region} {facts:?} {consents:?}");
        let eligible = policy.marketing(
            Purpose::MARKETING_TARGETED,
            &account,
            &facts,
            digests(),
            t(100),
        );
        assert_eq!(
            eligible.as_ref().map(|e| e.basis()).map_err(|e| *e),
            expected
        );
        if let Ok(eligible) = eligible {
            assert_eq!(eligible.context().context(), facts.context);
            assert_eq!(eligible.policy(), policy.version());
        }
    }
    // Consent at a past instant: before the withdrawal the contact point was eligible.
    let account = AccountFacts {
        no: AccountNo(1),
        region: &us,
        consents: &withdrawn,
    };
    let facts = contact(Context::Profile, true);
    assert_eq!(
        policy.decide(Purpose::MARKETING_TARGETED, &account, &facts, t(15)),
        Ok(Basis::Consent { seq: 1 })
    );
    // A purpose the policy does not list.
    let other = Purpose::parse("marketing.communications.email").unwrap();
    assert_eq!(
        policy.decide(other, &account, &facts, t(15)),
        Err(Ineligible::PurposeNotInPolicy)
    );
    // The matcher's input exists for marketing purposes only.
    let security = Purpose::parse("essential.service.security").unwrap();
    assert_eq!(
        policy
            .marketing(security, &account, &facts, digests(), t(15))
            .unwrap_err(),
        Ineligible::NotMarketing
    );
}

#[test]
fn security_purposes_use_security_contexts_without_consent() {
    let policy = Policy::shipped();
    let us = AccountRegion::parse("US").unwrap();
    let account = AccountFacts {
        no: AccountNo(1),
        region: &us,
        consents: &[],
    };
    let security = Purpose::parse("essential.service.security").unwrap();
    let mfa = ContactFacts {
        context: Context::Mfa,
        verified: true,
        removed: false,
    };
    assert_eq!(
        policy.decide(security, &account, &mfa, t(1)),
        Ok(Basis::NotRequired)
    );
    assert_eq!(
        policy.decide(Purpose::MARKETING_TARGETED, &account, &mfa, t(1)),
        Err(Ineligible::SecurityContext)
    );
}
