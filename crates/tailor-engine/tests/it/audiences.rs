//! The advertiser side end to end through the engine: a synthetic population in every
//! context, region and consent state; advertiser lists in every form; the audience holds
//! exactly the eligible accounts the lists reach, checked through the store.

use std::collections::BTreeSet;

use jiff::Timestamp;
use tailor_core::{AccountNo, E164Phone, NormalizedEmail, PhoneFormat, Policy, Region};
use tailor_engine::{Clock, Engine};
use tailor_list::UploadFormat;
use tailor_store::{Advertiser, JobOp};

use crate::support::{
    Backend, Storage, TestClock, consent, contact, engine, line, on_both_backends,
};

const START: i64 = 1_800_000_000;
const CONTEXTS: [&str; 7] = [
    "profile",
    "signup",
    "mfa",
    "recovery",
    "reauth",
    "login_alert",
    "address_book",
];
const REGIONS: [&str; 6] = ["US", "US-CA", "FR", "DE", "GB", "BR"];
/// Consent histories: none, granted, withdrawn after a grant, a GPC signal.
const CONSENTS: [&str; 4] = ["none", "granted", "withdrawn", "gpc"];

struct Person {
    id: String,
    email: String,
    phone: String,
    email_context: &'static str,
    phone_context: &'static str,
    region: &'static str,
    consent: &'static str,
    verified: bool,
}

fn population(n: usize) -> Vec<Person> {
    (0..n)
        .map(|i| Person {
            id: format!("p{i}"),
            // Every fifth person uses Gmail, with dots and a tag the lists may drop.
            email: if i % 5 == 0 {
                format!("Person.{i}+x@gmail.com")
            } else {
                format!("person{i}@example.com")
            },
            phone: format!("+1 415 555 {:04}", 1000 + i),
            email_context: CONTEXTS[i % 7],
            phone_context: CONTEXTS[(i / 7) % 7],
            region: REGIONS[i % 6],
            consent: CONSENTS[(i / 6) % 4],
            verified: i % 11 != 0,
        })
        .collect()
}

fn opt_in(region: &str) -> bool {
    matches!(region, "FR" | "DE" | "GB")
}

/// Whether the shipped policy makes a contact point of this person eligible for matching.
fn eligible(person: &Person, context: &str) -> bool {
    let consent_ok = match person.consent {
        "granted" => true,
        "none" => !opt_in(person.region),
        _ => false,
    };
    context == "profile" && person.verified && consent_ok
}

fn import_line(person: &Person) -> String {
    let consents = match person.consent {
        "none" => String::new(),
        "granted" => consent("granted", "settings", START - 100),
        "withdrawn" => [
            consent("granted", "settings", START - 200),
            consent("withdrawn", "settings", START - 100),
        ]
        .join(","),
        _ => consent("granted", "gpc", START - 100),
    };
    line(
        &person.id,
        person.region,
        &[
            contact(
                "email",
                &person.email,
                person.email_context,
                person.verified,
            ),
            contact(
                "phone",
                &person.phone,
                person.phone_context,
                person.verified,
            ),
        ]
        .join(","),
        &consents,
    )
}

fn sha_hex(text: &str) -> String {
    tailor_core::Sha256Digest::of(text.as_bytes())
        .to_hex()
        .as_str()
        .to_owned()
}

async fn setup(
    backend: Backend,
    n: usize,
) -> (
    Storage,
    Engine,
    std::sync::Arc<TestClock>,
    Vec<Person>,
    Advertiser,
) {
    let dir = backend.fresh("audiences").await;
    let clock = TestClock::at(START);
    let engine = engine(&dir, clock.clone(), Policy::shipped()).await;
    let people = population(n);
    let body: Vec<String> = people.iter().map(import_line).collect();
    let summary = engine.import(body.join("\n").as_bytes()).await.unwrap();
    assert_eq!(summary.accounts as usize, n, "{summary:?}");
    let created = engine
        .create_advertiser("Acme", Some("Acme Corp"))
        .await
        .unwrap()
        .unwrap();
    let advertiser = engine
        .authenticate(&created.api_key)
        .await
        .unwrap()
        .unwrap();
    (dir, engine, clock, people, advertiser)
}

async fn members(engine: &Engine, advertiser: &Advertiser, audience_id: &str) -> BTreeSet<String> {
    let audience = engine
        .audience(advertiser, audience_id)
        .await
        .unwrap()
        .unwrap();
    let store = engine.store();
    let numbers = store
        .audience_members(
            audience_no(engine, advertiser, &audience.id).await,
            engine.now(),
        )
        .await
        .unwrap();
    let mut ids = BTreeSet::new();
    for no in numbers {
        ids.insert(account_id(engine, no).await);
    }
    ids
}

async fn audience_no(engine: &Engine, advertiser: &Advertiser, audience_id: &str) -> u32 {
    engine
        .store()
        .audience(advertiser.no, audience_id, engine.now())
        .await
        .unwrap()
        .unwrap()
        .no
}

async fn account_id(engine: &Engine, no: AccountNo) -> String {
    engine.store().accounts_by_no(&[no]).await.unwrap()[0]
        .account_id
        .clone()
}

async fn upload(
    engine: &Engine,
    advertiser: &Advertiser,
    audience_id: &str,
    op: JobOp,
    format: UploadFormat,
    body: String,
) -> tailor_engine::JobView {
    let job = engine
        .upload(
            advertiser,
            audience_id,
            op,
            format,
            Region::US,
            std::io::Cursor::new(body.into_bytes()),
        )
        .await
        .unwrap()
        .unwrap();
    engine.jobs_settled().await.unwrap();
    engine.job(advertiser, &job.job_id).await.unwrap().unwrap()
}

async fn the_audience_is_exactly_the_eligible_accounts_the_lists_reach(backend: Backend) {
    let (_dir, engine, _clock, people, advertiser) = setup(backend, 168).await;
    let audience = engine
        .create_audience(&advertiser, "All customers", "", None)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(audience.status, "empty");

    // List 1, raw CSV: every even person's email and phone, plus non-users.
    let mut csv = String::from("email,phone\n");
    for (i, p) in people.iter().enumerate().filter(|(i, _)| i % 2 == 0) {
        csv.push_str(&format!(
            "{},{}\n",
            p.email.to_uppercase(),
            if i % 4 == 0 { &p.phone } else { "" }
        ));
    }
    csv.push_str("nobody@example.net,+1 212 555 0199\nnot-an-email,\n");
    let job = upload(
        &engine,
        &advertiser,
        &audience.id,
        JobOp::Add,
        UploadFormat::Csv,
        csv,
    )
    .await;
    assert_eq!(job.state, "succeeded", "{job:?}");
    assert_eq!(job.rejected.get("email_missing_at"), Some(&1));

    // List 2, hashed CSV: odd people, emails Gmail-canonical, phones digits-only (Meta style).
    let mut hashed = String::from("email_sha256,phone_sha256\n");
    for p in people.iter().skip(1).step_by(2) {
        let email = NormalizedEmail::parse(&p.email).unwrap();
        let canonical = email.gmail_canonical().unwrap_or(email);
        let phone = E164Phone::parse(&p.phone, Region::US).unwrap();
        hashed.push_str(&format!(
            "{},{}\n",
            sha_hex(canonical.as_str()).to_uppercase(),
            sha_hex(phone.formatted(PhoneFormat::Digits))
        ));
    }
    hashed.push_str(&format!("{},\n", sha_hex("stranger@example.org")));
    upload(
        &engine,
        &advertiser,
        &audience.id,
        JobOp::Add,
        UploadFormat::Csv,
        hashed,
    )
    .await;

    // List 3, NDJSON with E.164 phone hashes of the people whose email no list carried.
    let mut ndjson = String::new();
    for (i, p) in people.iter().enumerate().filter(|(i, _)| i % 4 == 2) {
        let phone = E164Phone::parse(&p.phone, Region::US).unwrap();
        ndjson.push_str(&format!(
            "{{\"phone_sha256\":\"{}\",\"customer\":\"c{i}\"}}\n",
            sha_hex(phone.e164())
        ));
    }
    upload(
        &engine,
        &advertiser,
        &audience.id,
        JobOp::Add,
        UploadFormat::Ndjson,
        ndjson,
    )
    .await;

    // Every person's email reached the lists; every phone too (list 1, 2 or 3).
    let expected: BTreeSet<String> = people
        .iter()
        .filter(|p| eligible(p, p.email_context) || eligible(p, p.phone_context))
        .map(|p| p.id.clone())
        .collect();
    let got = members(&engine, &advertiser, &audience.id).await;
    assert_eq!(got, expected);
    assert!(!expected.is_empty());
    // Nobody is in through a security or address-book contact point alone.
    for p in &people {
        if !(eligible(p, p.email_context) || eligible(p, p.phone_context)) {
            assert!(!got.contains(&p.id), "{} got in", p.id);
        }
    }
    // The basis of every membership is a profile contact point.
    for no in engine
        .store()
        .audience_members(
            audience_no(&engine, &advertiser, &audience.id).await,
            engine.now(),
        )
        .await
        .unwrap()
    {
        for m in engine.store().memberships_of(no).await.unwrap() {
            assert_eq!(m.context, tailor_core::Context::Profile);
        }
    }
}

async fn remove_and_replace(backend: Backend) {
    let (_dir, engine, _clock, people, advertiser) = setup(backend, 60).await;
    let audience = engine
        .create_audience(&advertiser, "Reactivation", "", Some(30))
        .await
        .unwrap()
        .unwrap();
    let eligible_people: Vec<&Person> = people
        .iter()
        .filter(|p| eligible(p, p.email_context))
        .collect();
    assert!(eligible_people.len() >= 4);
    let emails = |ps: &[&Person]| {
        let mut csv = String::from("email\n");
        for p in ps {
            csv.push_str(&format!("{}\n", p.email));
        }
        csv
    };
    let (first, second) = eligible_people.split_at(eligible_people.len() / 2);
    upload(
        &engine,
        &advertiser,
        &audience.id,
        JobOp::Add,
        UploadFormat::Csv,
        emails(first),
    )
    .await;
    let ids = |ps: &[&Person]| ps.iter().map(|p| p.id.clone()).collect::<BTreeSet<_>>();
    assert_eq!(
        members(&engine, &advertiser, &audience.id).await,
        ids(first)
    );

    upload(
        &engine,
        &advertiser,
        &audience.id,
        JobOp::Remove,
        UploadFormat::Csv,
        emails(&first[..1]),
    )
    .await;
    assert_eq!(
        members(&engine, &advertiser, &audience.id).await,
        ids(&first[1..])
    );

    upload(
        &engine,
        &advertiser,
        &audience.id,
        JobOp::Replace,
        UploadFormat::Csv,
        emails(second),
    )
    .await;
    assert_eq!(
        members(&engine, &advertiser, &audience.id).await,
        ids(second)
    );
}

async fn withdrawal_ends_membership_and_serving_before_it_returns_and_a_regrant_does_not_restore_it(
    backend: Backend,
) {
    let (_dir, engine, clock, people, advertiser) = setup(backend, 60).await;
    let audience = engine
        .create_audience(&advertiser, "Tiny", "", None)
        .await
        .unwrap()
        .unwrap();
    let p = people
        .iter()
        .find(|p| eligible(p, p.email_context) && p.consent == "none")
        .unwrap();
    upload(
        &engine,
        &advertiser,
        &audience.id,
        JobOp::Add,
        UploadFormat::Csv,
        format!("email\n{}\n", p.email),
    )
    .await;
    assert_eq!(members(&engine, &advertiser, &audience.id).await.len(), 1);
    // One member is below the release threshold: not targetable, not served.
    let view = engine
        .audience(&advertiser, &audience.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(view.status, "too_small");
    assert!(!view.targetable);
    assert!(engine.serving_audiences(&p.id).await.unwrap().is_empty());

    clock.advance(10);
    let withdraw = consent("withdrawn", "settings", clock.now().as_second());
    engine
        .record_consent(&p.id, withdraw.as_bytes())
        .await
        .unwrap()
        .unwrap();
    assert!(members(&engine, &advertiser, &audience.id).await.is_empty());

    clock.advance(10);
    let grant = consent("granted", "settings", clock.now().as_second());
    engine
        .record_consent(&p.id, grant.as_bytes())
        .await
        .unwrap()
        .unwrap();
    assert!(
        members(&engine, &advertiser, &audience.id).await.is_empty(),
        "re-grant re-added"
    );
}

async fn serving_answers_follow_consent_at_once(backend: Backend) {
    use tailor_core::release::ReleaseConfig;
    let dir = backend.fresh("serving").await;
    let clock = TestClock::at(START);
    let engine = Engine::open_with(
        dir.store().await,
        crate::support::key(),
        Policy::shipped(),
        clock.clone(),
        tailor_engine::Limits::default(),
        ReleaseConfig {
            budget: tailor_core::release::Epsilon::from_micros(1_000_000_000),
            ..ReleaseConfig::dangerous_noise_free(2)
        },
    )
    .await
    .unwrap();
    let people = population(400);
    let body: Vec<String> = people.iter().map(import_line).collect();
    engine.import(body.join("\n").as_bytes()).await.unwrap();
    let created = engine
        .create_advertiser("Acme", None)
        .await
        .unwrap()
        .unwrap();
    let advertiser = engine
        .authenticate(&created.api_key)
        .await
        .unwrap()
        .unwrap();
    let audience = engine
        .create_audience(&advertiser, "Two", "", None)
        .await
        .unwrap()
        .unwrap();
    let chosen: Vec<&Person> = people
        .iter()
        .filter(|p| eligible(p, p.email_context) && p.consent == "none")
        .take(3)
        .collect();
    assert_eq!(chosen.len(), 3);
    let csv = chosen
        .iter()
        .fold(String::from("email\n"), |acc, p| acc + &p.email + "\n");
    upload(
        &engine,
        &advertiser,
        &audience.id,
        JobOp::Add,
        UploadFormat::Csv,
        csv,
    )
    .await;
    for p in &chosen {
        assert_eq!(
            engine.serving_audiences(&p.id).await.unwrap(),
            std::slice::from_ref(&audience.id)
        );
    }
    let gpc = consent("granted", "gpc", clock.now().as_second());
    engine
        .record_consent(&chosen[0].id, gpc.as_bytes())
        .await
        .unwrap()
        .unwrap();
    assert!(
        engine
            .serving_audiences(&chosen[0].id)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        engine.serving_audiences(&chosen[1].id).await.unwrap(),
        std::slice::from_ref(&audience.id)
    );
    // Erasure too.
    engine.erase(&chosen[1].id).await.unwrap().unwrap();
    assert!(
        engine
            .serving_audiences(&chosen[1].id)
            .await
            .unwrap()
            .is_empty()
    );
    // One member left. The audience's targeting decision is its latest released size's:
    // people leaving do not change it (nor what its advertiser sees) before the answer's
    // refresh time has passed and the size is asked again.
    assert_eq!(
        engine.serving_audiences(&chosen[2].id).await.unwrap(),
        std::slice::from_ref(&audience.id)
    );
    let view = engine
        .audience(&advertiser, &audience.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(view.status, "ready");
    clock.advance(3600 * i64::from(ReleaseConfig::default().refresh_hours));
    // Asked again after the refresh time: below the threshold of 2, so not served any more.
    let view = engine
        .audience(&advertiser, &audience.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(view.status, "too_small");
    assert!(
        engine
            .serving_audiences(&chosen[2].id)
            .await
            .unwrap()
            .is_empty()
    );
    let _ = Timestamp::UNIX_EPOCH;
}

on_both_backends!(
    the_audience_is_exactly_the_eligible_accounts_the_lists_reach,
    remove_and_replace,
    withdrawal_ends_membership_and_serving_before_it_returns_and_a_regrant_does_not_restore_it,
    serving_answers_follow_consent_at_once,
);
