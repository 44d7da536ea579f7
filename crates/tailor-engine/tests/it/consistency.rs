//! The index equals a recomputation from the store under the policy, after any sequence of
//! operations: contact points added and removed, consent events in any order of `at`, region
//! changes, erasures, policy swaps, time passing, and restarts (a new store on the same data),
//! on both backends; and with two engines (two processes) on one PostgreSQL database, each
//! operation through either, the other's index is the same once it has caught up.

use proptest::prelude::*;
use tailor_core::Policy;
use tailor_engine::{Engine, build_index};

use crate::support::{Backend, TestClock, consent, contact, engine, line};

const START: i64 = 1_800_000_000;

const VALUES: &[(&str, &str)] = &[
    ("email", "shared@example.com"),
    ("email", "ann@example.com"),
    ("email", "Ann.Example+x@gmail.com"),
    ("phone", "+1 415 555 0101"),
    ("phone", "(415) 555-0102"),
    ("phone", "+33 6 12 34 56 78"),
];
const CONTEXTS: &[&str] = &[
    "profile",
    "signup",
    "mfa",
    "recovery",
    "address_book",
    "login_alert",
];
const REGIONS: &[&str] = &["US", "US-CA", "FR", "GB", "BR"];
const STATES: &[&str] = &["granted", "withdrawn", "objected"];
const SOURCES: &[&str] = &["settings", "tcf", "gpc", "ccpa_opt_out", "google_consent"];

/// A policy that also allows signup contact points and makes Brazil opt-in.
const WIDER: &str = "[purposes.\"marketing.advertising.third_party.targeted\"]\n\
    contexts = [\"profile\", \"signup\"]\nrequire_verified = false\n\
    [purposes.\"marketing.advertising.third_party.targeted\".consent]\n\
    default = \"opt_out\"\nopt_in = [\"FR\", \"BR\"]\n";

#[derive(Clone, Debug)]
enum Op {
    Write {
        account: u8,
        region: usize,
        contacts: Vec<(usize, usize, bool)>,
        consents: Vec<(usize, usize, i64)>,
    },
    Consent {
        account: u8,
        state: usize,
        source: usize,
        ago: i64,
    },
    Erase(u8),
    Policy(bool),
    Advance(i64),
    Restart,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (
            0u8..4,
            0..REGIONS.len(),
            proptest::collection::vec((0..VALUES.len(), 0..CONTEXTS.len(), any::<bool>()), 0..4),
            proptest::collection::vec((0..STATES.len(), 0..SOURCES.len(), 0i64..1000), 0..3),
        )
            .prop_map(|(account, region, contacts, consents)| Op::Write { account, region, contacts, consents }),
        3 => (0u8..4, 0..STATES.len(), 0..SOURCES.len(), 0i64..1000)
            .prop_map(|(account, state, source, ago)| Op::Consent { account, state, source, ago }),
        1 => (0u8..4).prop_map(Op::Erase),
        1 => any::<bool>().prop_map(Op::Policy),
        1 => (1i64..500).prop_map(Op::Advance),
        1 => Just(Op::Restart),
    ]
}

async fn check(engine: &Engine, clock: &TestClock) {
    use tailor_engine::Clock;
    let fresh = build_index(engine.store().as_ref(), &engine.policy(), clock.now())
        .await
        .unwrap();
    assert_eq!(engine.index_entries(), fresh.entries());
}

/// Applies one operation through `engine`; `Restart` is the caller's.
async fn apply(engine: &Engine, clock: &TestClock, now: &mut i64, op: &Op) {
    match *op {
        Op::Write {
            account,
            region,
            ref contacts,
            ref consents,
        } => {
            let contacts: Vec<String> = contacts
                .iter()
                .map(|&(v, c, verified)| contact(VALUES[v].0, VALUES[v].1, CONTEXTS[c], verified))
                .collect();
            let consents: Vec<String> = consents
                .iter()
                .map(|&(s, src, ago)| consent(STATES[s], SOURCES[src], *now - ago))
                .collect();
            let body = line(
                &format!("a{account}"),
                REGIONS[region],
                &contacts.join(","),
                &consents.join(","),
            );
            engine.import(body.as_bytes()).await.unwrap();
        }
        Op::Consent {
            account,
            state,
            source,
            ago,
        } => {
            let body = consent(STATES[state], SOURCES[source], *now - ago);
            let _ = engine
                .record_consent(&format!("a{account}"), body.as_bytes())
                .await
                .unwrap();
        }
        Op::Erase(account) => {
            engine.erase(&format!("a{account}")).await.unwrap();
        }
        Op::Policy(wider) => {
            let policy = if wider {
                Policy::parse(WIDER).unwrap()
            } else {
                Policy::shipped()
            };
            engine.set_policy(policy).await.unwrap();
        }
        Op::Advance(seconds) => {
            clock.advance(seconds);
            *now += seconds;
        }
        Op::Restart => {}
    }
}

/// Two engines on one database, each operation through the one `through` names: once the
/// other has caught up, both hold the index recomputed from the store, under one policy.
async fn run_replicas(backend: Backend, ops: Vec<(bool, Op)>) {
    let dir = backend.fresh("replicas").await;
    let clock = TestClock::at(START);
    let mut engines = [
        engine(&dir, clock.clone(), Policy::shipped()).await,
        engine(&dir, clock.clone(), Policy::shipped()).await,
    ];
    let mut now = START;
    for (through, op) in ops {
        let (writer, reader) = if through { (0, 1) } else { (1, 0) };
        if let Op::Restart = op {
            let policy = (*engines[writer].policy()).clone();
            engines[writer] = engine(&dir, clock.clone(), policy).await;
        } else {
            apply(&engines[writer], &clock, &mut now, &op).await;
        }
        engines[reader].caught_up().await.unwrap();
        assert_eq!(
            engines[reader].policy().version(),
            engines[writer].policy().version(),
            "one policy in force after {op:?}"
        );
        check(&engines[writer], &clock).await;
        assert_eq!(
            engines[reader].index_entries(),
            engines[writer].index_entries(),
            "the other engine after {op:?}"
        );
    }
}

async fn run(backend: Backend, ops: Vec<Op>) {
    let dir = backend.fresh("consistency").await;
    let clock = TestClock::at(START);
    let mut engine = engine(&dir, clock.clone(), Policy::shipped()).await;
    let mut now = START;
    for op in ops {
        if let Op::Restart = op {
            let policy = (*engine.policy()).clone();
            let before = engine.index_entries();
            drop(engine);
            engine = self::engine(&dir, clock.clone(), policy).await;
            assert_eq!(engine.index_entries(), before, "restart changed the index");
        } else {
            apply(&engine, &clock, &mut now, &op).await;
        }
        check(&engine, &clock).await;
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn the_index_always_equals_the_store_under_the_policy_sqlite(ops in proptest::collection::vec(op(), 1..14)) {
        let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
        runtime.block_on(run(Backend::Sqlite, ops));
    }

    // Each case on a database of its own.
    #[test]
    fn two_engines_on_one_database_hold_the_same_index(ops in proptest::collection::vec((any::<bool>(), op()), 1..14)) {
        let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
        runtime.block_on(async {
            if let Some(backend) = Backend::postgres().await {
                run_replicas(backend, ops).await;
            }
        });
    }

    // Each case on a database of its own.
    #[test]
    fn the_index_always_equals_the_store_under_the_policy_postgres(ops in proptest::collection::vec(op(), 1..14)) {
        let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
        runtime.block_on(async {
            if let Some(backend) = Backend::postgres().await {
                run(backend, ops).await;
            }
        });
    }
}
