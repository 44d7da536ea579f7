//! The data-use report of a person (`GET /v1/compliance/accounts/{account_id}/data-use`): two
//! advertisers upload lists with a person in them, one renews and then removes them, one
//! audience is deleted, a contact point is removed, the person withdraws consent and grants
//! it again; the report lists every membership with its advertiser, times, end, contact kind
//! and context, consent record, policy version and job, and holds no contact value, no hash
//! of one and no other person's data.

use axum::body::Body;
use axum::http::{Method, StatusCode};
use jiff::{SignedDuration, Timestamp};
use serde_json::{Value, json};
use tailor_core::Sha256Digest;

use crate::support::{
    ADMIN, App, Backend, COMPLIANCE, MARKETING, NOW, SERVING, key, on_both_backends, sha256_hex,
};

/// Pat, FR (opt-in), with a grant: a profile email and a profile phone (both eligible) and
/// an MFA phone (never).
const PAT: &str = r#"{"account_id":"u-pat","region":"FR","contacts":[{"kind":"email","value":"Pat.Sample@Example.net","context":"profile","verified":true},{"kind":"phone","value":"+33 6 12 34 56 78","context":"profile","verified":true},{"kind":"phone","value":"+33 6 98 76 54 32","context":"mfa","verified":true}],"consents":[{"purpose":"marketing.advertising.third_party.targeted","state":"granted","source":"settings","at":"2026-01-05T10:00:00Z","notice_version":"n-2026-01"}]}"#;

/// Pat without the profile phone (the MFA phone stays).
const PAT_WITHOUT_PHONE: &str = r#"{"account_id":"u-pat","region":"FR","contacts":[{"kind":"email","value":"Pat.Sample@Example.net","context":"profile","verified":true},{"kind":"phone","value":"+33 6 98 76 54 32","context":"mfa","verified":true}]}"#;

/// Quinn, US-CA (opt-out): a profile email.
const QUINN: &str = r#"{"account_id":"u-quinn","region":"US-CA","contacts":[{"kind":"email","value":"quinn.sample@example.net","context":"profile","verified":true}]}"#;

const PAT_EMAIL: &str = "pat.sample@example.net";
const PAT_PHONE: &str = "+33612345678";
const PAT_MFA_PHONE: &str = "+33698765432";
const QUINN_EMAIL: &str = "quinn.sample@example.net";

/// Every form of a person's data that must not appear in a report: the values as given and
/// normalized, their SHA-256 (both phone conventions) and their keyed digests, in hex.
fn forbidden(values: &[&str]) -> Vec<String> {
    let mut out = Vec::new();
    for value in values {
        let mut forms = vec![(*value).to_owned()];
        if let Some(digits) = value.strip_prefix('+') {
            forms.push(digits.to_owned());
        }
        for form in forms {
            let sha = Sha256Digest::of(form.as_bytes());
            out.push(sha256_hex(&form));
            out.push(hex::encode(key().digest(&sha).0));
            out.push(form);
        }
    }
    out.extend(
        [
            "Pat.Sample@Example.net",
            "+33 6 12 34 56 78",
            "+33 6 98 76 54 32",
        ]
        .map(str::to_owned),
    );
    out
}

async fn report(app: &App, account_id: &str, token: &str) -> crate::support::Reply {
    app.call(
        Method::GET,
        &format!("/v1/compliance/accounts/{account_id}/data-use"),
        Some(token),
        Body::empty(),
    )
    .await
}

async fn data_use(app: &App, account_id: &str) -> Value {
    let reply = report(app, account_id, COMPLIANCE).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    reply.json()
}

async fn upload(app: &App, key: &str, audience_id: &str, op: &str, csv: &str) -> String {
    let job = app
        .upload(key, audience_id, op, "text/csv", csv.to_owned())
        .await;
    app.settle().await;
    job["job_id"].as_str().unwrap().to_owned()
}

async fn consent(app: &App, body: Value) {
    let reply = app
        .admin(
            Method::POST,
            "/v1/admin/accounts/u-pat/consents",
            body.to_string(),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
}

async fn the_report_lists_every_membership_with_its_basis_and_nothing_personal(backend: Backend) {
    let app = App::with_min_size_on(&backend, "data-use", 1).await;
    app.import(&format!("{PAT}\n{QUINN}\n")).await;
    let acme = app.advertiser("Acme").await;
    let bolt = app.advertiser("Bolt").await;
    let buyers = app.audience(&acme.key, "Acme buyers").await;
    let second = app.audience(&acme.key, "Acme second").await;
    let fans = app.audience(&bolt.key, "Bolt fans").await;
    let old = app.audience(&bolt.key, "Bolt old").await;
    let email_list = format!("email\n{PAT_EMAIL}\n");

    // Acme uploads Pat and Quinn, then Pat again (a renewal), then removes Pat.
    let j1 = upload(
        &app,
        &acme.key,
        &buyers,
        "add",
        &format!("email\n{PAT_EMAIL}\n{QUINN_EMAIL}\n"),
    )
    .await;
    let j2 = upload(&app, &acme.key, &buyers, "add", &email_list).await;
    // Bolt matches Pat's profile phone, and Pat's email in an audience it then deletes.
    let j3 = upload(&app, &bolt.key, &fans, "add", "phone\n+33 6 12 34 56 78\n").await;
    let j4 = upload(&app, &bolt.key, &old, "add", &email_list).await;
    let reply = app
        .call(
            Method::DELETE,
            &format!("/v1/audiences/{old}"),
            Some(&bolt.key),
            Body::empty(),
        )
        .await;
    assert_eq!(reply.status, StatusCode::NO_CONTENT, "{}", reply.text());
    let j5 = upload(&app, &acme.key, &buyers, "remove", &email_list).await;
    // Pat removes the profile phone: Bolt's membership through it ends.
    let reply = app
        .admin(
            Method::PUT,
            "/v1/admin/accounts/u-pat",
            PAT_WITHOUT_PHONE.to_owned(),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    // Acme's second audience, then Pat withdraws (consent 2) and grants again (consent 3).
    let j6 = upload(&app, &acme.key, &second, "add", &email_list).await;
    consent(
        &app,
        json!({"purpose": MARKETING, "state": "withdrawn", "source": "settings", "at": "2026-02-01T00:00:00Z"}),
    )
    .await;
    consent(
        &app,
        json!({"purpose": MARKETING, "state": "granted", "source": "tcf", "at": "2026-02-15T00:00:00Z", "notice_version": "n-2026-02"}),
    )
    .await;
    // Bolt matches Pat again, under the new grant: the one live membership.
    let j7 = upload(&app, &bolt.key, &fans, "add", &email_list).await;
    assert_eq!(app.serving("u-pat").await, [fans.as_str()]);

    let pat = data_use(&app, "u-pat").await;
    let version = app.engine.policy().version().to_hex();
    let now: Timestamp = NOW.parse().unwrap();
    let expires = (now + SignedDuration::from_hours(540 * 24)).to_string();
    let first_grant = json!({
        "seq": 1, "purpose": MARKETING, "state": "granted", "source": "settings",
        "at": "2026-01-05T10:00:00Z", "notice_version": "n-2026-01",
    });
    let second_grant = json!({
        "seq": 3, "purpose": MARKETING, "state": "granted", "source": "tcf",
        "at": "2026-02-15T00:00:00Z", "notice_version": "n-2026-02",
    });
    let row = |advertiser: &crate::support::Advertiser,
               name: &str,
               audience: Option<(&str, &str)>,
               end: Option<&str>,
               kind: Option<&str>,
               consent: &Value,
               job: &str| {
        json!({
            "advertiser_id": advertiser.id,
            "advertiser_name": name,
            "entity": format!("{name} Ltd"),
            "audience_id": audience.map(|(id, _)| id),
            "audience_name": audience.map(|(_, name)| name),
            "granted_at": NOW,
            "ended_at": end.map(|_| NOW),
            "end_reason": end,
            "expires_at": if end.is_none() { Some(expires.as_str()) } else { None },
            "contact": {"kind": kind, "context": "profile"},
            "basis": "consent",
            "consent": consent,
            "policy_version": version,
            "job_id": job,
        })
    };
    let expected = json!({
        "account_id": "u-pat",
        "generated_at": NOW,
        "summary": {"advertisers": 2, "audiences": 4, "memberships": 6, "live": 1},
        "memberships": [
            row(&acme, "Acme", Some((&buyers, "Acme buyers")), Some("renewed"), Some("email"), &first_grant, &j1),
            row(&acme, "Acme", Some((&buyers, "Acme buyers")), Some("removed"), Some("email"), &first_grant, &j2),
            // The profile phone is gone: its kind is no longer known, its context is.
            row(&bolt, "Bolt", Some((&fans, "Bolt fans")), Some("ineligible"), None, &first_grant, &j3),
            // A deleted audience is not named, but its advertiser is.
            row(&bolt, "Bolt", None, Some("audience_deleted"), Some("email"), &first_grant, &j4),
            row(&acme, "Acme", Some((&second, "Acme second")), Some("ineligible"), Some("email"), &first_grant, &j6),
            row(&bolt, "Bolt", Some((&fans, "Bolt fans")), None, Some("email"), &second_grant, &j7),
        ],
    });
    assert_eq!(pat, expected, "{pat:#}");
    // The remove job ended a membership; it granted none.
    assert!(!pat.to_string().contains(&j5));

    // Nothing personal: no value, hash or keyed digest of Pat's or Quinn's contact points,
    // and nothing of Quinn.
    let text = pat.to_string();
    let mut never = forbidden(&[PAT_EMAIL, PAT_PHONE, PAT_MFA_PHONE, QUINN_EMAIL]);
    never.push("u-quinn".to_owned());
    for value in &never {
        assert!(!text.contains(value.as_str()), "{value} in {text}");
    }

    // Quinn's report: Acme's first upload only, under the opt-out regime, nothing of Pat.
    let quinn = data_use(&app, "u-quinn").await;
    assert_eq!(
        quinn["summary"],
        json!({"advertisers": 1, "audiences": 1, "memberships": 1, "live": 1})
    );
    let membership = &quinn["memberships"][0];
    assert_eq!(membership["job_id"], j1.as_str());
    assert_eq!(membership["audience_id"], buyers.as_str());
    assert_eq!(membership["basis"], "opt_out_regime");
    assert_eq!(membership["consent"], Value::Null);
    assert_eq!(
        membership["contact"],
        json!({"kind": "email", "context": "profile"})
    );
    let text = quinn.to_string();
    for value in forbidden(&[PAT_EMAIL, PAT_PHONE, PAT_MFA_PHONE, QUINN_EMAIL])
        .iter()
        .chain(&["u-pat".to_owned()])
    {
        assert!(!text.contains(value.as_str()), "{value} in {text}");
    }

    // Only the compliance token reads it.
    for token in [ADMIN, SERVING, acme.key.as_str()] {
        let reply = report(&app, "u-pat", token).await;
        assert_eq!(reply.status, StatusCode::FORBIDDEN, "{}", reply.text());
    }
}

async fn unknown_and_erased_accounts_are_404_and_an_account_never_matched_has_an_empty_report(
    backend: Backend,
) {
    let app = App::with_min_size_on(&backend, "data-use-unknown", 1).await;
    app.import(&format!("{PAT}\n{QUINN}\n")).await;
    let acme = app.advertiser("Acme").await;
    let buyers = app.audience(&acme.key, "Acme buyers").await;
    upload(
        &app,
        &acme.key,
        &buyers,
        "add",
        &format!("email\n{QUINN_EMAIL}\n"),
    )
    .await;

    assert_eq!(
        data_use(&app, "u-pat").await,
        json!({
            "account_id": "u-pat",
            "generated_at": NOW,
            "summary": {"advertisers": 0, "audiences": 0, "memberships": 0, "live": 0},
            "memberships": [],
        })
    );
    let reply = report(&app, "u-nobody", COMPLIANCE).await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND, "{}", reply.text());
    assert_eq!(reply.error_code(), "account_not_found");

    // An erasure takes the history with it: nothing is left to report.
    assert_eq!(data_use(&app, "u-quinn").await["summary"]["memberships"], 1);
    let reply = app
        .admin(Method::DELETE, "/v1/admin/accounts/u-quinn", Body::empty())
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    let reply = report(&app, "u-quinn", COMPLIANCE).await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND, "{}", reply.text());
    assert_eq!(reply.error_code(), "account_not_found");
}

on_both_backends!(
    the_report_lists_every_membership_with_its_basis_and_nothing_personal,
    unknown_and_erased_accounts_are_404_and_an_account_never_matched_has_an_empty_report,
);
