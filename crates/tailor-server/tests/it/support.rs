//! A router over a real store (SQLite in a scratch directory, or for the scenarios run on both
//! backends a PostgreSQL database of its own: see `tailor_postgres::testing`), with a fixed
//! clock and fixed tokens, called through `tower::ServiceExt::oneshot`; and the synthetic
//! fixtures.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, Method, Request, StatusCode, header};
use jiff::Timestamp;
use serde_json::Value;
use tailor_core::release::{Epsilon, ReleaseConfig};
use tailor_core::{IndexKey, Policy, Sha256Digest};
use tailor_engine::{Clock, Engine, Limits};
pub(crate) use tailor_postgres::on_both_backends;
pub(crate) use tailor_postgres::testing::Backend;
use tailor_postgres::testing::Storage;
use tailor_server::{AppState, Tokens, router};
use tailor_store::{SqliteStore, Store};
use tower::ServiceExt as _;

pub(crate) const ADMIN: &str = "admin-token-for-tests-0001";
pub(crate) const SERVING: &str = "serving-token-for-tests-0002";
pub(crate) const COMPLIANCE: &str = "compliance-token-for-tests-0003";

/// The instant every test runs at.
pub(crate) const NOW: &str = "2026-03-01T12:00:00Z";

/// A directory under the system's temporary directory, removed when dropped.
#[derive(Debug)]
pub(crate) struct Scratch {
    path: PathBuf,
}

impl Scratch {
    pub(crate) fn new(test: &str) -> Self {
        Self::under(&std::env::temp_dir(), test)
    }

    /// A directory in memory (`/dev/shm`) where there is one, for tests that write a lot and
    /// whose subject is not durability.
    pub(crate) fn in_memory(test: &str) -> Self {
        let shm = Path::new("/dev/shm");
        if shm.is_dir() {
            Self::under(shm, test)
        } else {
            Self::new(test)
        }
    }

    fn under(parent: &Path, test: &str) -> Self {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let path = parent.join(format!(
            "tailor-server-it-{}-{n}-{test}",
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).unwrap();
        Self { path }
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

/// The release settings of tests about audience mechanics: exact sizes (no noise, the minimum
/// size of the defaults) and a budget no test spends.
pub(crate) fn mechanics() -> ReleaseConfig {
    ReleaseConfig {
        budget: Epsilon::from_micros(1_000_000_000),
        ..ReleaseConfig::dangerous_noise_free(ReleaseConfig::default().min_size)
    }
}

/// A clock stopped at [`NOW`].
#[derive(Debug)]
struct FixedClock(Timestamp);

impl Clock for FixedClock {
    fn now(&self) -> Timestamp {
        self.0
    }
}

/// The key every test keys identifiers under.
pub(crate) fn key() -> IndexKey {
    IndexKey::from_secret(&[0x5a; 32]).unwrap()
}

/// The key every test signs log checkpoints with.
pub(crate) fn log_key() -> tailor_log::SigningKey {
    tailor_log::SigningKey::from_seed("tailor-log-test", [0x17; 32]).unwrap()
}

/// A server's router and what is behind it.
pub(crate) struct App {
    pub(crate) engine: Arc<Engine>,
    pub(crate) state: AppState,
    router: Router,
    // Last: the directory and the database go after the store is closed.
    pub(crate) dir: Scratch,
    database: Option<Storage>,
}

impl App {
    pub(crate) async fn new(test: &str) -> Self {
        Self::on(&Backend::Sqlite, test).await
    }

    /// A server over a fresh store of `backend`.
    pub(crate) async fn on(backend: &Backend, test: &str) -> Self {
        Self::open(backend, Scratch::new(test), Limits::default(), mechanics()).await
    }

    pub(crate) async fn with_limits(test: &str, limits: Limits) -> Self {
        Self::open(&Backend::Sqlite, Scratch::new(test), limits, mechanics()).await
    }

    /// A server whose audiences are targetable from exactly `min_size` members: no noise and
    /// a budget no test spends, for tests of audience mechanics rather than of privacy.
    pub(crate) async fn with_min_size(test: &str, min_size: u64) -> Self {
        Self::with_min_size_on(&Backend::Sqlite, test, min_size).await
    }

    /// [`App::with_min_size`] over a fresh store of `backend`.
    pub(crate) async fn with_min_size_on(backend: &Backend, test: &str, min_size: u64) -> Self {
        let release = ReleaseConfig {
            min_size,
            ..mechanics()
        };
        Self::open(backend, Scratch::new(test), Limits::default(), release).await
    }

    /// A server that releases sizes as `release` says, its data in memory where possible.
    pub(crate) async fn with_release(test: &str, release: ReleaseConfig) -> Self {
        Self::open(
            &Backend::Sqlite,
            Scratch::in_memory(test),
            Limits::default(),
            release,
        )
        .await
    }

    /// A server over `backend`: SQLite in `dir`'s `data`, or a database of its own.
    async fn open(backend: &Backend, dir: Scratch, limits: Limits, release: ReleaseConfig) -> Self {
        let (store, database): (Arc<dyn Store>, _) = match backend {
            Backend::Sqlite => (
                Arc::new(SqliteStore::open(&dir.path().join("data")).unwrap()),
                None,
            ),
            Backend::Postgres(_) => {
                let database = backend.fresh("server").await;
                (database.store().await, Some(database))
            }
        };
        let clock = Arc::new(FixedClock(NOW.parse().unwrap()));
        let engine = Arc::new(
            Engine::open_with(store, key(), Policy::shipped(), clock, limits, release)
                .await
                .unwrap(),
        );
        engine.sign_log_with(log_key());
        let tokens = Tokens::from_plain(ADMIN, SERVING, COMPLIANCE).unwrap();
        let state = AppState::new(Arc::clone(&engine), tokens);
        Self {
            router: router(state.clone()),
            engine,
            state,
            dir,
            database,
        }
    }

    /// Closes the store (every handle on it goes), keeping the directory (SQLite only).
    pub(crate) fn close(self) -> Scratch {
        let Self {
            engine,
            state,
            router,
            dir,
            database,
        } = self;
        drop(router);
        drop(state);
        drop(engine);
        drop(database);
        dir
    }

    /// The data directory.
    pub(crate) fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// Sends one request.
    pub(crate) async fn call(
        &self,
        method: Method,
        uri: &str,
        token: Option<&str>,
        body: impl Into<Body>,
    ) -> Reply {
        call(&self.router, method, uri, token, body).await
    }

    /// Sends one request with a `Content-Type`.
    pub(crate) async fn typed(
        &self,
        method: Method,
        uri: &str,
        token: Option<&str>,
        content_type: &str,
        body: impl Into<Body>,
    ) -> Reply {
        call_typed(&self.router, method, uri, token, Some(content_type), body).await
    }

    /// The router, for tests that send their own requests.
    pub(crate) fn router(&self) -> &Router {
        &self.router
    }

    /// Creates an advertiser through the admin API, expecting 201.
    pub(crate) async fn advertiser(&self, name: &str) -> Advertiser {
        let body = serde_json::json!({"name": name, "entity": format!("{name} Ltd")}).to_string();
        let reply = self
            .admin(Method::POST, "/v1/admin/advertisers", body)
            .await;
        assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text());
        let json = reply.json();
        Advertiser {
            id: json["advertiser_id"].as_str().unwrap().to_owned(),
            key: json["api_key"].as_str().unwrap().to_owned(),
            key_id: json["key_id"].as_str().unwrap().to_owned(),
        }
    }

    /// Creates an audience for an advertiser, expecting 201; returns its id.
    pub(crate) async fn audience(&self, key: &str, name: &str) -> String {
        let body = serde_json::json!({"name": name}).to_string();
        let reply = self
            .call(Method::POST, "/v1/audiences", Some(key), body)
            .await;
        assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text());
        reply.json()["id"].as_str().unwrap().to_owned()
    }

    /// Uploads a list in one request, expecting 202; returns the job as answered.
    pub(crate) async fn upload(
        &self,
        key: &str,
        audience_id: &str,
        op: &str,
        content_type: &str,
        body: impl Into<Body>,
    ) -> Value {
        let uri = format!("/v1/audiences/{audience_id}/uploads?op={op}");
        let reply = self
            .typed(Method::POST, &uri, Some(key), content_type, body)
            .await;
        assert_eq!(reply.status, StatusCode::ACCEPTED, "{}", reply.text());
        reply.json()
    }

    /// Waits until every queued job is applied.
    pub(crate) async fn settle(&self) {
        self.engine.jobs_settled().await.unwrap();
    }

    /// A job, expecting 200.
    pub(crate) async fn job(&self, key: &str, job_id: &str) -> Value {
        let reply = self
            .call(
                Method::GET,
                &format!("/v1/jobs/{job_id}"),
                Some(key),
                Body::empty(),
            )
            .await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
        reply.json()
    }

    /// An audience as its advertiser sees it, expecting 200.
    pub(crate) async fn audience_view(&self, key: &str, audience_id: &str) -> Value {
        let reply = self
            .call(
                Method::GET,
                &format!("/v1/audiences/{audience_id}"),
                Some(key),
                Body::empty(),
            )
            .await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
        reply.json()
    }

    /// The serving answer for an account, expecting 200.
    pub(crate) async fn serving(&self, account_id: &str) -> Vec<String> {
        let reply = self
            .call(
                Method::GET,
                &format!("/v1/serving/accounts/{account_id}/audiences"),
                Some(SERVING),
                Body::empty(),
            )
            .await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
        let mut ids: Vec<String> =
            serde_json::from_value(reply.json()["audiences"].clone()).unwrap();
        ids.sort();
        ids
    }

    /// The account ids of an audience's live members, read from the store (never from a
    /// released number).
    pub(crate) async fn members(&self, key: &str, audience_id: &str) -> Vec<String> {
        let advertiser = self.engine.authenticate(key).await.unwrap().unwrap();
        let store = self.engine.store();
        let audience = store
            .audience(advertiser.no, audience_id, self.engine.now())
            .await
            .unwrap()
            .unwrap();
        let numbers = store
            .audience_members(audience.no, self.engine.now())
            .await
            .unwrap();
        let mut ids: Vec<String> = store
            .accounts_by_no(&numbers)
            .await
            .unwrap()
            .into_iter()
            .map(|state| state.account_id)
            .collect();
        ids.sort();
        ids
    }

    /// Sends one request with the admin token.
    pub(crate) async fn admin(&self, method: Method, uri: &str, body: impl Into<Body>) -> Reply {
        self.call(method, uri, Some(ADMIN), body).await
    }

    /// Imports NDJSON lines through the API, expecting 200.
    pub(crate) async fn import(&self, body: &str) -> Value {
        let reply = self
            .admin(Method::POST, "/v1/admin/accounts", body.to_owned())
            .await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
        reply.json()
    }

    /// An account's view, expecting 200.
    pub(crate) async fn view(&self, account_id: &str) -> Value {
        let reply = self
            .admin(
                Method::GET,
                &format!("/v1/admin/accounts/{account_id}"),
                Body::empty(),
            )
            .await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
        reply.json()
    }

    /// Whether the index maps this normalized identifier (email, or phone in E.164) to some
    /// account.
    pub(crate) fn indexed(&self, normalized: &str) -> bool {
        !self
            .engine
            .lookup(&key().digest(&Sha256Digest::of(normalized.as_bytes())))
            .is_empty()
    }
}

/// An advertiser as the admin API created it.
#[derive(Clone, Debug)]
pub(crate) struct Advertiser {
    pub(crate) id: String,
    pub(crate) key: String,
    pub(crate) key_id: String,
}

/// Sends one request to `router`.
pub(crate) async fn call(
    router: &Router,
    method: Method,
    uri: &str,
    token: Option<&str>,
    body: impl Into<Body>,
) -> Reply {
    call_typed(router, method, uri, token, None, body).await
}

/// Sends one request to `router`, with a `Content-Type` if given.
pub(crate) async fn call_typed(
    router: &Router,
    method: Method,
    uri: &str,
    token: Option<&str>,
    content_type: Option<&str>,
    body: impl Into<Body>,
) -> Reply {
    let mut request = Request::builder().method(method).uri(uri);
    if let Some(token) = token {
        request = request.header(header::AUTHORIZATION, format!("Bearer {token}"));
    }
    if let Some(content_type) = content_type {
        request = request.header(header::CONTENT_TYPE, content_type);
    }
    let response = router
        .clone()
        .oneshot(request.body(body.into()).unwrap())
        .await
        .unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let body = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .unwrap();
    Reply {
        status,
        headers,
        body,
    }
}

/// A response, read whole.
#[derive(Debug)]
pub(crate) struct Reply {
    pub(crate) status: StatusCode,
    pub(crate) headers: HeaderMap,
    pub(crate) body: Bytes,
}

impl Reply {
    pub(crate) fn text(&self) -> String {
        String::from_utf8(self.body.to_vec()).unwrap()
    }

    pub(crate) fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text()))
    }

    /// The error code of a `{"error":{"code":...}}` body.
    pub(crate) fn error_code(&self) -> String {
        self.json()["error"]["code"].as_str().unwrap().to_owned()
    }
}

/// The marketing purpose, as views key it.
pub(crate) const MARKETING: &str = "marketing.advertising.third_party.targeted";
/// The security purpose of the shipped policy.
pub(crate) const SECURITY: &str = "essential.service.security";

/// Alice, US-CA (opt-out): a profile email (eligible) and an MFA phone (never for marketing).
pub(crate) const ALICE: &str = r#"{"account_id":"u-alice","region":"US-CA","contacts":[{"kind":"email","value":"Alice.Example@Example.com","context":"profile","verified":true},{"kind":"phone","value":"+1 415 555 0101","context":"mfa","verified":true}]}"#;

/// Bruno, FR (opt-in), with a grant: his profile email is eligible on consent.
pub(crate) const BRUNO: &str = r#"{"account_id":"u-bruno","region":"FR","contacts":[{"kind":"email","value":"bruno.sample@example.org","context":"profile","verified":true}],"consents":[{"purpose":"marketing.advertising.third_party.targeted","state":"granted","source":"settings","at":"2026-01-05T10:00:00Z","notice_version":"n-2026-01"}]}"#;

/// Chloe, GB (opt-in) without consent: nothing eligible for marketing.
pub(crate) const CHLOE: &str = r#"{"account_id":"u-chloe","region":"GB","contacts":[{"kind":"email","value":"chloe.sample@example.com","context":"profile","verified":true},{"kind":"phone","value":"+44 20 7946 0102","context":"recovery","verified":true}]}"#;

/// Dora, US (opt-out): a verified profile phone (eligible) and a signup email that is not
/// verified (not eligible).
pub(crate) const DORA: &str = r#"{"account_id":"u-dora","region":"US","contacts":[{"kind":"phone","value":"+1 415 555 0104","context":"profile","verified":true},{"kind":"email","value":"dora.sample@example.com","context":"signup","verified":false}]}"#;

/// Emil, DE (opt-in), with a grant: a Gmail address given for his profile (eligible), and an
/// address-book phone (learned from someone else's contacts: never eligible).
pub(crate) const EMIL: &str = r#"{"account_id":"u-emil","region":"DE","contacts":[{"kind":"email","value":"Emil.Sample+news@gmail.com","context":"profile","verified":true},{"kind":"phone","value":"+49 30 901820","context":"address_book","verified":true}],"consents":[{"purpose":"marketing.advertising.third_party.targeted","state":"granted","source":"settings","at":"2026-01-05T10:00:00Z"}]}"#;

/// Five accounts: Alice, Bruno, Dora and Emil have a contact point eligible for matching;
/// Chloe has none.
pub(crate) fn population() -> String {
    format!("{ALICE}\n{BRUNO}\n{CHLOE}\n{DORA}\n{EMIL}\n")
}

/// The SHA-256 of a normalized identifier, in lowercase hex.
pub(crate) fn sha256_hex(normalized: &str) -> String {
    Sha256Digest::of(normalized.as_bytes())
        .to_hex()
        .as_str()
        .to_owned()
}

/// The three good accounts, as one NDJSON body.
pub(crate) fn good_accounts() -> String {
    format!("{ALICE}\n{BRUNO}\n{CHLOE}\n")
}

/// A view's contact point of a given context.
pub(crate) fn contact<'a>(view: &'a Value, context: &str) -> &'a Value {
    view["contact_points"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["context"] == context)
        .unwrap_or_else(|| panic!("no {context} contact point in {view:#}"))
}
