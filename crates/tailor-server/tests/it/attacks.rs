//! Attacks on released audience sizes, played through the router the way an advertiser would
//! play them: the membership game (is this phone number a user's?) and the linkage game (are
//! this email and this phone the same person's?) of Venkatadri et al. (IEEE S&P 2018), the
//! equality side channel (does the answer stay the same when one matching row is added?), and
//! what a spent budget still allows.
//!
//! Every game runs the same attacker code against the default release settings and against
//! `dangerous_noise_free`: the attacker must lose in the first world and win in the second, so
//! that a game that cannot be won at all proves nothing. With noise the bound is the one
//! differential privacy gives for the entity's whole budget, e^B / (1 + e^B), plus 0.05 for
//! sampling error. `TAILOR_ATTACK_EPSILON` and `TAILOR_ATTACK_BUDGET` (decimals such as "0.05")
//! replace the default ε and budget when set, to measure other settings.
//!
//! The server's secret and clock are fixed, coin flips and lists come from seeded generators,
//! and the noise is seeded by the question (entity, audience number, canonical query, epoch),
//! so every run gives the same figures: the tests cannot flake. The figures are quoted in
//! docs/privacy.md.
//!
//! Only synthetic people are used, and failure messages carry counts and trial numbers, never
//! an identifier.

use std::sync::OnceLock;
use std::time::Instant;

use serde_json::Value;
use tailor_core::release::{Epsilon, ReleaseConfig};

use crate::support::{Advertiser, App, sha256_hex};

/// Accounts `0..KNOWN` are the users the attacker already knows (its own customers).
const KNOWN: u64 = 300;
/// Accounts `KNOWN..KNOWN + SECRET` are the people the attacker asks about.
const SECRET: u64 = 100;
/// Junk rows are phones of nobody: `+1 (3000000000 + k)` for `k` below this.
const NOBODY: u64 = 1_000_000_000;
/// The χ² critical value at 0.01 with one degree of freedom.
const CHI_SQUARE_CRITICAL: f64 = 6.635;

/// The E.164 phone of account `n`, `+1 (2000000000 + n)` as `cargo xtask gen-accounts` writes
/// them.
fn phone(n: u64) -> String {
    format!("+1{}", 2_000_000_000 + n)
}

fn email(n: u64) -> String {
    format!("user{n}@example.com")
}

/// A US-CA account (opt-out) whose verified profile phone and email are both eligible.
fn account(n: u64) -> String {
    serde_json::json!({
        "account_id": format!("atk-{n}"),
        "region": "US-CA",
        "contacts": [
            {"kind": "phone", "value": phone(n), "context": "profile", "verified": true},
            {"kind": "email", "value": email(n), "context": "profile", "verified": true},
        ],
    })
    .to_string()
}

/// A server releasing sizes as `config` says, with the known and the secret accounts imported.
async fn platform(test: &str, config: ReleaseConfig) -> App {
    let app = App::with_release(test, config).await;
    let body: String = (0..KNOWN + SECRET).map(|n| account(n) + "\n").collect();
    let summary = app.import(&body).await;
    assert_eq!(summary["accounts"], KNOWN + SECRET);
    app
}

/// The default release settings, with ε and the budget taken from the environment when set.
fn noisy() -> ReleaseConfig {
    overridden(ReleaseConfig::default())
}

/// The same without noise: threshold and rounding only.
fn noise_free() -> ReleaseConfig {
    overridden(ReleaseConfig::dangerous_noise_free(
        ReleaseConfig::default().min_size,
    ))
}

fn overridden(mut config: ReleaseConfig) -> ReleaseConfig {
    let read = |name: &str| {
        std::env::var(name)
            .ok()
            .map(|text| Epsilon::parse(&text).unwrap_or_else(|e| panic!("{name}: {e}")))
    };
    if let Some(epsilon) = read("TAILOR_ATTACK_EPSILON") {
        config.epsilon = epsilon;
    }
    if let Some(budget) = read("TAILOR_ATTACK_BUDGET") {
        config.budget = budget;
    }
    config
}

/// How many new questions one legal entity gets answered: budget / ε.
fn questions_per_entity(config: &ReleaseConfig) -> usize {
    usize::try_from(config.budget.micros() / config.epsilon.micros()).unwrap()
}

/// The best accuracy an attacker can have against an entity's whole budget B of differential
/// privacy, e^B / (1 + e^B), plus 0.05 for the sampling error of a few hundred trials.
fn accuracy_bound(config: &ReleaseConfig) -> f64 {
    let budget = config.budget.micros() as f64 / 1e6;
    budget.exp() / (1.0 + budget.exp()) + 0.05
}

/// A seeded generator (SplitMix64): the same coin flips and lists on every run.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Self {
        Self(seed)
    }

    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A number below `n` (the modulo bias is below 2^-50 for the `n` used here).
    fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }

    fn coin(&mut self) -> bool {
        self.next_u64() & 1 == 1
    }

    /// `k` distinct numbers below `n`, in random order (a partial Fisher–Yates shuffle).
    fn pick(&mut self, n: u64, k: usize) -> Vec<u64> {
        let mut all: Vec<u64> = (0..n).collect();
        for i in 0..k {
            let j = i + usize::try_from(self.below(n - i as u64)).unwrap();
            all.swap(i, j);
        }
        all.truncate(k);
        all
    }
}

/// One row of an uploaded list, hashed before it is sent.
#[derive(Clone, Copy, Debug)]
enum Row {
    /// Account `n`'s phone.
    Phone(u64),
    /// Account `n`'s email.
    Email(u64),
    /// A valid phone number of nobody.
    Nobody(u64),
}

/// A hashed CSV list: SHA-256 of the E.164 phone with `+`, of the normalized email.
fn csv(rows: &[Row]) -> String {
    // The accounts' digests are computed once: hashing in a debug build is not free.
    static DIGESTS: OnceLock<(Vec<String>, Vec<String>)> = OnceLock::new();
    let (phones, emails) = DIGESTS.get_or_init(|| {
        let all = 0..KNOWN + SECRET;
        (
            all.clone().map(|n| sha256_hex(&phone(n))).collect(),
            all.map(|n| sha256_hex(&email(n))).collect(),
        )
    });
    let at = |n: u64| usize::try_from(n).unwrap();
    let mut body = String::from("email_sha256,phone_sha256\n");
    for row in rows {
        let line = match *row {
            Row::Phone(n) => format!(",{}\n", phones[at(n)]),
            Row::Email(n) => format!("{},\n", emails[at(n)]),
            Row::Nobody(k) => format!(",{}\n", sha256_hex(&format!("+1{}", 3_000_000_000 + k))),
        };
        body.push_str(&line);
    }
    body
}

/// A released size as the attacker reads it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Answer {
    BelowThreshold,
    Approximate(u64),
    /// The entity's budget is spent: the question was refused.
    Unavailable,
}

impl Answer {
    fn of(view: &Value) -> Self {
        let size = &view["size"];
        if size["below_threshold"] == true {
            Self::BelowThreshold
        } else if let Some(n) = size["approximate"].as_u64() {
            Self::Approximate(n)
        } else if size["unavailable_until"].is_string() {
            Self::Unavailable
        } else {
            panic!("unexpected size: {size}")
        }
    }

    /// The number the attacker averages: "below threshold" counts as 0.
    fn count(self) -> f64 {
        match self {
            Self::BelowThreshold => 0.0,
            Self::Approximate(n) => n as f64,
            Self::Unavailable => panic!("a refused question has no count"),
        }
    }
}

/// Uploads `rows` to the audience as `op` (`replace`, `add` or `remove`), waits for the job,
/// and reads the size.
async fn ask(
    app: &App,
    advertiser: &Advertiser,
    audience_id: &str,
    op: &str,
    rows: &[Row],
) -> Answer {
    app.upload(&advertiser.key, audience_id, op, "text/csv", csv(rows))
        .await;
    app.settle().await;
    Answer::of(&app.audience_view(&advertiser.key, audience_id).await)
}

/// What the differencing attacker saw: the answers with and without the extra rows.
#[derive(Debug, Default)]
struct Observed {
    with: Vec<f64>,
    without: Vec<f64>,
}

impl Observed {
    fn answered(&self) -> usize {
        self.with.len() + self.without.len()
    }

    fn difference(&self) -> f64 {
        let mean = |xs: &[f64]| xs.iter().sum::<f64>() / xs.len().max(1) as f64;
        mean(&self.with) - mean(&self.without)
    }
}

/// The attacker of both games, for one trial: as a fresh legal entity with a fresh audience,
/// asks about `base` alone and `base + extra` in turn until a question is refused.
///
/// A question without `extra` replaces the list with `base` and a fresh junk row; the next
/// adds `extra` and another fresh junk row to it. Every question is new (each upload's key set
/// differs, and each job extends the audience's history), so none gets a cached answer. Adding
/// rather than replacing keeps half of the uploads to two rows, which halves the cost of a
/// trial; `remove` would not do for the way back, since removing a row removes its person
/// even when another row of the list (the linkage game's email) still matches them.
async fn differencing(
    app: &App,
    entity: &str,
    base: &[Row],
    extra: &[Row],
    rng: &mut Rng,
) -> Observed {
    let advertiser = app.advertiser(entity).await;
    let audience_id = app.audience(&advertiser.key, "lookalike seed").await;
    let mut observed = Observed::default();
    loop {
        let question = observed.answered();
        assert!(question < 1000, "{question} questions answered: no budget");
        let with = question % 2 == 1;
        let (op, mut rows) = if with {
            ("add", extra.to_vec())
        } else {
            ("replace", base.to_vec())
        };
        rows.push(Row::Nobody(rng.below(NOBODY)));
        match ask(app, &advertiser, &audience_id, op, &rows).await {
            Answer::Unavailable => return observed,
            answer if with => observed.with.push(answer.count()),
            answer => observed.without.push(answer.count()),
        }
    }
}

/// One trial's setup: the list the attacker always uploads, the rows it adds to every other
/// question, and the secret it tries to learn, which is whether those rows add a member.
struct Trial {
    base: Vec<Row>,
    extra: Vec<Row>,
    adds_a_member: bool,
}

/// Membership: a target phone belongs to an eligible user the attacker does not know, or to
/// nobody; the attacker uploads 104 known users (104 rounds to 100, 105 to 110).
fn membership_trial(rng: &mut Rng) -> Trial {
    let member = rng.coin();
    let target = if member {
        Row::Phone(KNOWN + rng.below(SECRET))
    } else {
        Row::Nobody(rng.below(NOBODY))
    };
    Trial {
        base: rng.pick(KNOWN, 104).into_iter().map(Row::Phone).collect(),
        extra: vec![target],
        adds_a_member: member,
    }
}

/// Linkage: an email and a phone, each an eligible user's whom the attacker does not know,
/// belong to the same person or to two. The attacker uploads 103 known users and the email,
/// with and without the phone as a separate row: the same person adds nobody, two people add
/// one.
fn linkage_trial(rng: &mut Rng) -> Trial {
    let same = rng.coin();
    let holder = KNOWN + rng.below(SECRET);
    let other = if same {
        holder
    } else {
        KNOWN + (holder - KNOWN + 1 + rng.below(SECRET - 1)) % SECRET
    };
    let mut base: Vec<Row> = rng.pick(KNOWN, 103).into_iter().map(Row::Phone).collect();
    base.push(Row::Email(holder));
    Trial {
        base,
        extra: vec![Row::Phone(other)],
        adds_a_member: !same,
    }
}

/// Plays `trials` trials of a game on one platform; returns the attacker's accuracy.
async fn play(
    game: &str,
    world: &str,
    config: ReleaseConfig,
    trials: usize,
    seed: u64,
    setup: fn(&mut Rng) -> Trial,
) -> f64 {
    let started = Instant::now();
    let app = platform(&format!("{game}-{world}"), config).await;
    let mut rng = Rng::new(seed);
    let questions = questions_per_entity(&config);
    let mut won = 0usize;
    for trial in 0..trials {
        let Trial {
            base,
            extra,
            adds_a_member,
        } = setup(&mut rng);
        let entity = format!("{game} {world} {trial}");
        let observed = differencing(&app, &entity, &base, &extra, &mut rng).await;
        assert_eq!(
            observed.answered(),
            questions,
            "trial {trial}: answered questions before the first refusal"
        );
        if (observed.difference() > 0.5) == adds_a_member {
            won += 1;
        }
    }
    let accuracy = won as f64 / trials as f64;
    eprintln!(
        "{game} game, {world} (epsilon {}, budget {}): {trials} trials of {questions} \
         questions, accuracy {accuracy:.4}, bound with noise {:.4}, {:.1} s",
        config.epsilon,
        config.budget,
        accuracy_bound(&config),
        started.elapsed().as_secs_f64(),
    );
    accuracy
}

#[tokio::test]
async fn the_membership_game_is_lost_with_noise() {
    let config = noisy();
    let accuracy = play("membership", "noisy", config, 400, 1, membership_trial).await;
    assert!(accuracy <= accuracy_bound(&config), "accuracy {accuracy}");
}

#[tokio::test]
async fn the_membership_game_is_won_without_noise() {
    let accuracy = play(
        "membership",
        "noise-free",
        noise_free(),
        100,
        2,
        membership_trial,
    )
    .await;
    assert!(accuracy >= 0.95, "accuracy {accuracy}");
}

#[tokio::test]
async fn the_linkage_game_is_lost_with_noise() {
    let config = noisy();
    let accuracy = play("linkage", "noisy", config, 400, 3, linkage_trial).await;
    assert!(accuracy <= accuracy_bound(&config), "accuracy {accuracy}");
}

#[tokio::test]
async fn the_linkage_game_is_won_without_noise() {
    let accuracy = play("linkage", "noise-free", noise_free(), 100, 4, linkage_trial).await;
    assert!(accuracy >= 0.95, "accuracy {accuracy}");
}

/// Pearson's χ² of a 2×2 table `[[a, b], [c, d]]`, without continuity correction; 0 when a
/// row or a column is empty (such a table shows no dependence).
fn chi_square(a: u64, b: u64, c: u64, d: u64) -> f64 {
    let [a, b, c, d] = [a, b, c, d].map(|x| x as f64);
    let margins = (a + b) * (c + d) * (a + c) * (b + d);
    if margins == 0.0 {
        return 0.0;
    }
    (a + b + c + d) * (a * d - b * c).powi(2) / margins
}

/// The equality side channel: samples alternate between adding one matching row and one junk
/// row to a list of 100 to 199 known users, and count how often the answer stays the same.
/// Returns the χ² of (arm × identical).
async fn equality(world: &str, config: ReleaseConfig, per_arm: usize, seed: u64) -> f64 {
    let started = Instant::now();
    let app = platform(&format!("equality-{world}"), config).await;
    let mut rng = Rng::new(seed);
    // Two questions a sample; a fresh entity when the budget is spent.
    let per_entity = questions_per_entity(&config) / 2;
    assert!(per_entity > 0, "the budget allows fewer than two questions");
    let mut asker = None;
    // identical[arm], changed[arm]; arm 0 adds a matching row, arm 1 a junk row.
    let mut identical = [0u64; 2];
    let mut changed = [0u64; 2];
    for sample in 0..2 * per_arm {
        if sample % per_entity == 0 {
            let advertiser = app
                .advertiser(&format!("equality {world} {}", sample / per_entity))
                .await;
            let audience_id = app.audience(&advertiser.key, "seed list").await;
            asker = Some((advertiser, audience_id));
        }
        let (advertiser, audience_id) = asker.as_ref().unwrap();
        let arm = sample % 2;
        let n = 100 + usize::try_from(rng.below(100)).unwrap();
        let users = rng.pick(KNOWN, n + 1);
        let mut base: Vec<Row> = users[..n].iter().copied().map(Row::Phone).collect();
        // A junk row of this sample's own, so that no two base lists are the same question.
        base.push(Row::Nobody(NOBODY / 2 + sample as u64));
        let before = ask(&app, advertiser, audience_id, "replace", &base).await;
        // One more row, added to the list.
        let added = if arm == 0 {
            Row::Phone(users[n])
        } else {
            Row::Nobody(rng.below(NOBODY / 2))
        };
        let after = ask(&app, advertiser, audience_id, "add", &[added]).await;
        assert!(
            before != Answer::Unavailable && after != Answer::Unavailable,
            "sample {sample}: refused"
        );
        if before == after {
            identical[arm] += 1;
        } else {
            changed[arm] += 1;
        }
    }
    let chi2 = chi_square(identical[0], changed[0], identical[1], changed[1]);
    eprintln!(
        "equality side channel, {world} (epsilon {}, budget {}): {per_arm} samples per arm, \
         answer unchanged after a matching row {}/{per_arm}, after a junk row {}/{per_arm}, \
         chi-square {chi2:.3} (critical value {CHI_SQUARE_CRITICAL} at 0.01), {:.1} s",
        config.epsilon,
        config.budget,
        identical[0],
        identical[1],
        started.elapsed().as_secs_f64(),
    );
    chi2
}

#[tokio::test]
async fn the_equality_side_channel_is_closed_with_noise() {
    let chi2 = equality("noisy", noisy(), 300, 5).await;
    assert!(chi2 <= CHI_SQUARE_CRITICAL, "chi-square {chi2}");
}

#[tokio::test]
async fn the_equality_side_channel_is_open_without_noise() {
    let chi2 = equality("noise-free", noise_free(), 150, 6).await;
    assert!(chi2 > CHI_SQUARE_CRITICAL, "chi-square {chi2}");
}

#[test]
fn chi_square_matches_a_worked_example() {
    // 270 of 300 against 300 of 300: (600 · (270·0 − 30·300)²) / (300 · 300 · 570 · 30).
    let chi2 = chi_square(270, 30, 300, 0);
    assert!((chi2 - 31.578_947).abs() < 1e-4, "{chi2}");
    assert_eq!(chi_square(10, 0, 20, 0), 0.0);
}

#[tokio::test]
async fn a_spent_budget_still_answers_repeated_questions_and_keeps_targeting() {
    // A member of the audience that is kept, and of no other.
    const MEMBER: &str = "atk-200";
    let config = noisy();
    let app = platform("attacks-spent", config).await;
    let advertiser = app.advertiser("Spender").await;

    // Every account: far above the threshold whatever the noise.
    let everyone: Vec<Row> = (0..KNOWN + SECRET).map(Row::Phone).collect();
    let kept = app.audience(&advertiser.key, "everyone").await;
    let first = ask(&app, &advertiser, &kept, "replace", &everyone).await;
    assert!(matches!(first, Answer::Approximate(_)), "{first:?}");
    assert_eq!(
        app.audience_view(&advertiser.key, &kept).await["targetable"],
        true
    );
    assert_eq!(app.serving(MEMBER).await, [kept.as_str()]);

    // The rest of the budget goes on other questions, about accounts 0 to 103 only.
    let other = app.audience(&advertiser.key, "other").await;
    let mut answered: usize = 1;
    loop {
        let rows: Vec<Row> = (0..104)
            .map(Row::Phone)
            .chain((0..answered as u64).map(Row::Nobody))
            .collect();
        if ask(&app, &advertiser, &other, "replace", &rows).await == Answer::Unavailable {
            break;
        }
        answered += 1;
        assert!(answered < 1000, "no budget");
    }
    assert_eq!(answered, questions_per_entity(&config));

    // Reading again is free, and the audience stays targetable.
    let view = app.audience_view(&advertiser.key, &kept).await;
    assert_eq!(Answer::of(&view), first);
    assert_eq!(view["targetable"], true);
    assert_eq!(view["status"], "ready");
    assert_eq!(app.serving(MEMBER).await, [kept.as_str()]);

    // The same list again, in another order and with a row repeated, is the same question:
    // its cached answer, for free.
    let mut again = everyone.clone();
    again.reverse();
    again.push(everyone[0]);
    assert_eq!(
        ask(&app, &advertiser, &kept, "replace", &again).await,
        first
    );
    let view = app.audience_view(&advertiser.key, &kept).await;
    assert_eq!(view["targetable"], true);
    assert_eq!(app.serving(MEMBER).await, [kept.as_str()]);
    assert_eq!(
        app.serving(&format!("atk-{}", KNOWN + SECRET - 1)).await,
        [kept.as_str()]
    );

    // A new question is refused, and its audience is not targeted on an unanswered question.
    let fewer = &everyone[1..];
    assert_eq!(
        ask(&app, &advertiser, &kept, "replace", fewer).await,
        Answer::Unavailable
    );
    let view = app.audience_view(&advertiser.key, &kept).await;
    assert_eq!(view["targetable"], false);
    assert_eq!(view["status"], "unavailable");
    assert!(app.serving(MEMBER).await.is_empty());
}
