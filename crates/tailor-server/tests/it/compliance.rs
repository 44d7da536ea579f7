//! The compliance API for the accountability log, used as an auditor would: take a signed
//! checkpoint, fetch the entries and recompute its root, check an inclusion proof for every
//! entry, and check that a later checkpoint is consistent with the earlier one. The entries
//! hold no contact value, no digest of one and no account id.

use axum::body::Body;
use axum::http::{Method, StatusCode};
use base64::Engine as _;
use serde_json::json;
use tailor_core::Sha256Digest;
use tailor_log::{Frontier, Hash};

use crate::support::{ADMIN, ALICE, App, BRUNO, COMPLIANCE, MARKETING, log_key};

fn hash(text: &str) -> Hash {
    base64::engine::general_purpose::STANDARD
        .decode(text)
        .unwrap()
        .try_into()
        .unwrap()
}

async fn get(app: &App, uri: &str) -> crate::support::Reply {
    app.call(Method::GET, uri, Some(COMPLIANCE), Body::empty())
        .await
}

async fn checkpoint(app: &App) -> tailor_log::Checkpoint {
    let reply = get(app, "/v1/compliance/log/checkpoint").await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    assert!(
        reply.headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain")
    );
    log_key().verifier().verify(&reply.text()).unwrap()
}

/// The exact bytes of every entry, fetched 1,000 at a time as the API allows.
async fn entries(app: &App, size: u64) -> Vec<Vec<u8>> {
    let mut all = Vec::new();
    while (all.len() as u64) < size {
        let start = all.len();
        let reply = get(app, &format!("/v1/compliance/log/entries?start={start}")).await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
        let json = reply.json();
        for (i, entry) in json["entries"].as_array().unwrap().iter().enumerate() {
            assert_eq!(entry["index"], (start + i) as u64);
            let data = base64::engine::general_purpose::STANDARD
                .decode(entry["data"].as_str().unwrap())
                .unwrap();
            assert_eq!(entry["entry"]["index"], (start + i) as u64);
            all.push(data);
        }
    }
    all
}

#[tokio::test]
async fn an_auditor_checks_the_log_without_trusting_the_server() {
    let app = App::with_min_size("compliance-log", 1).await;
    app.import(&format!("{ALICE}\n{BRUNO}\n")).await;
    let acme = app.advertiser("Acme").await;
    let audience = app.audience(&acme.key, "Everyone").await;
    app.upload(
        &acme.key,
        &audience,
        "add",
        "text/csv",
        "email\nalice.example@example.com\nbruno.sample@example.org\n",
    )
    .await;
    app.settle().await;

    let first = checkpoint(&app).await;
    assert!(
        first.size >= 5,
        "accounts, policy, advertiser, job: {}",
        first.size
    );
    let data = entries(&app, first.size).await;
    let leaves: Vec<Hash> = data.iter().map(|d| tailor_log::leaf_hash(d)).collect();
    assert_eq!(
        tailor_log::root_of(&leaves),
        first.root,
        "the root of the entries"
    );
    for index in 0..first.size {
        let reply = get(
            &app,
            &format!(
                "/v1/compliance/log/proof/inclusion?index={index}&size={}",
                first.size
            ),
        )
        .await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
        let proof: Vec<Hash> = reply.json()["proof"]
            .as_array()
            .unwrap()
            .iter()
            .map(|h| hash(h.as_str().unwrap()))
            .collect();
        tailor_log::verify_inclusion(
            &leaves[index as usize],
            index,
            first.size,
            &proof,
            &first.root,
        )
        .unwrap_or_else(|e| panic!("entry {index}: {e}"));
    }

    // More changes: a withdrawal, an erasure. The new checkpoint extends the old one.
    let withdrawal = json!({"purpose": MARKETING, "state": "withdrawn", "source": "settings", "at": "2026-02-01T00:00:00Z"});
    let reply = app
        .call(
            Method::POST,
            "/v1/admin/accounts/u-bruno/consents",
            Some(ADMIN),
            withdrawal.to_string(),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    let reply = app
        .admin(Method::DELETE, "/v1/admin/accounts/u-alice", Body::empty())
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    let second = checkpoint(&app).await;
    assert!(second.size > first.size);
    let reply = get(
        &app,
        &format!(
            "/v1/compliance/log/proof/consistency?from={}&to={}",
            first.size, second.size
        ),
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    let proof: Vec<Hash> = reply.json()["proof"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| hash(h.as_str().unwrap()))
        .collect();
    tailor_log::verify_consistency(first.size, second.size, &first.root, &second.root, &proof)
        .unwrap();

    // Nothing personal in any entry: no account id, contact value, or SHA-256 of one.
    let data = entries(&app, second.size).await;
    let mut frontier = Frontier::new();
    for d in &data {
        frontier.push(tailor_log::leaf_hash(d));
    }
    assert_eq!(frontier.root(), second.root);
    let needles: Vec<String> = [
        "u-alice",
        "u-bruno",
        "alice.example@example.com",
        "bruno.sample@example.org",
        "+14155550101",
        "14155550101",
    ]
    .iter()
    .flat_map(|v| {
        [
            (*v).to_owned(),
            Sha256Digest::of(v.as_bytes()).to_hex().as_str().to_owned(),
        ]
    })
    .collect();
    for (index, d) in data.iter().enumerate() {
        let text = String::from_utf8_lossy(d).to_lowercase();
        for needle in &needles {
            assert!(
                !text.contains(&needle.to_lowercase()),
                "entry {index} holds a personal value or its digest"
            );
        }
    }
    let metrics = app.call(Method::GET, "/metrics", None, Body::empty()).await;
    assert!(
        metrics.text().contains("tailor_grants_forbidden_basis 0"),
        "{}",
        metrics.text()
    );
    let kinds: Vec<String> = data
        .iter()
        .map(|d| serde_json::from_slice::<serde_json::Value>(d).unwrap()["type"].to_string())
        .collect();
    for kind in [
        "account_changed",
        "policy_changed",
        "advertiser_created",
        "job_completed",
        "memberships_ended",
        "erasure",
    ] {
        assert!(
            kinds.iter().any(|k| k.contains(kind)),
            "no {kind} entry: {kinds:?}"
        );
    }
}

#[tokio::test]
async fn proofs_outside_the_log_are_refused() {
    let app = App::new("compliance-ranges").await;
    app.import(&format!("{ALICE}\n")).await;
    let size = checkpoint(&app).await.size;
    for uri in [
        format!(
            "/v1/compliance/log/proof/inclusion?index=0&size={}",
            size + 1
        ),
        format!("/v1/compliance/log/proof/inclusion?index={size}&size={size}"),
        format!(
            "/v1/compliance/log/proof/consistency?from={}&to={size}",
            size + 1
        ),
        format!(
            "/v1/compliance/log/proof/consistency?from=1&to={}",
            size + 5
        ),
        "/v1/compliance/log/entries?start=5&end=2".to_owned(),
        "/v1/compliance/log/entries?start=0&end=5000".to_owned(),
    ] {
        let reply = get(&app, &uri).await;
        assert_eq!(
            reply.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{uri}: {}",
            reply.text()
        );
        assert_eq!(reply.error_code(), "invalid_range");
    }
    let reply = get(&app, "/v1/compliance/log/proof/inclusion?index=x&size=1").await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
}
