//! Test support, behind the `testing` feature: a PostgreSQL server to test against, fresh
//! databases on it, and [`Backend`], a fresh store of either backend so that one scenario
//! runs on SQLite and on PostgreSQL ([`on_both_backends!`](crate::on_both_backends)).
//!
//! Only tests turn the feature on (as a dev-dependency); the product must never use it. The
//! server comes from `TAILOR_TEST_POSTGRES` (default
//! `postgres://postgres@127.0.0.1:5432/postgres`), whose user may create databases. When it
//! cannot be reached a test says so loudly and skips, except under `CI=true`, where it fails.
//! Each database is named `tailor_t_<random hex>` and dropped (with `FORCE`, closing the
//! store's connections) when its [`Databases`] guard goes, pass or panic.

// A failed unwrap here is a failed test, with its location.
#![allow(clippy::unwrap_used)]

use std::fmt;
use std::io::Write;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use tailor_store::{SqliteStore, Store};
use tokio_postgres::{Client, Config, NoTls};

use crate::{PostgresOptions, PostgresStore};

/// The server's connection string when `TAILOR_TEST_POSTGRES` is unset.
const DEFAULT_SERVER: &str = "postgres://postgres@127.0.0.1:5432/postgres";

/// The test server.
#[derive(Clone)]
pub struct Server {
    config: Config,
}

impl fmt::Debug for Server {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The place only: the connection string may hold a password.
        f.debug_struct("Server")
            .field("place", &self.place())
            .finish()
    }
}

impl Server {
    /// The server to test against, or `None` (after saying so) when it cannot be reached and
    /// this is not CI. Under `CI=true` an unreachable server fails the test.
    pub async fn find() -> Option<Self> {
        let url = std::env::var("TAILOR_TEST_POSTGRES").unwrap_or_else(|_| DEFAULT_SERVER.into());
        let config: Config = url
            .parse()
            .expect("TAILOR_TEST_POSTGRES is a connection string");
        let server = Self { config };
        match server.admin().await {
            Ok(_) => Some(server),
            Err(e) => {
                let place = server.place();
                if std::env::var("CI").is_ok_and(|v| v == "true") {
                    panic!("no PostgreSQL at {place} ({e}); CI needs one (see .ci/run)");
                }
                // Written past the test harness's capture, so that a skip is never silent.
                let _ = writeln!(
                    std::io::stderr(),
                    "\n=== skipped: no PostgreSQL at {place} ({e}); set TAILOR_TEST_POSTGRES ===\n"
                );
                None
            }
        }
    }

    /// Host and port, for messages (never the password).
    fn place(&self) -> String {
        let host = match self.config.get_hosts().first() {
            Some(tokio_postgres::config::Host::Tcp(host)) => host.clone(),
            #[cfg(unix)]
            Some(tokio_postgres::config::Host::Unix(path)) => path.display().to_string(),
            None => "localhost".into(),
        };
        let port = self.config.get_ports().first().copied().unwrap_or(5432);
        format!("{host}:{port}")
    }

    /// A connection to the server's own database.
    async fn admin(&self) -> Result<Client, tokio_postgres::Error> {
        connect(&self.config).await
    }

    /// A connection string for database `name` on this server.
    pub fn url(&self, name: &str) -> String {
        let mut parts = vec![format!("dbname={name}")];
        if let Some(tokio_postgres::config::Host::Tcp(host)) = self.config.get_hosts().first() {
            parts.push(format!("host={host}"));
        }
        if let Some(port) = self.config.get_ports().first() {
            parts.push(format!("port={port}"));
        }
        if let Some(user) = self.config.get_user() {
            parts.push(format!("user={user}"));
        }
        if let Some(password) = self.config.get_password() {
            parts.push(format!("password='{}'", String::from_utf8_lossy(password)));
        }
        parts.join(" ")
    }

    /// A connection to database `name`.
    pub async fn client(&self, name: &str) -> Client {
        let mut config = self.config.clone();
        config.dbname(name);
        connect(&config).await.unwrap()
    }
}

async fn connect(config: &Config) -> Result<Client, tokio_postgres::Error> {
    let (client, connection) = config.connect(NoTls).await?;
    tokio::spawn(connection);
    Ok(client)
}

/// The databases made by a test, dropped when this goes.
#[derive(Debug)]
pub struct Databases {
    server: Server,
    names: Mutex<Vec<String>>,
}

impl Databases {
    pub fn new(server: &Server) -> Self {
        Self {
            server: server.clone(),
            names: Mutex::new(Vec::new()),
        }
    }

    /// Creates an empty database and returns its name.
    pub async fn create(&self) -> String {
        let mut random = [0u8; 8];
        getrandom::fill(&mut random).unwrap();
        let name = format!("tailor_t_{}", hex::encode(random));
        let admin = self.server.admin().await.unwrap();
        admin
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .await
            .unwrap();
        self.names.lock().unwrap().push(name.clone());
        name
    }

    /// A store on a new database.
    pub async fn store(&self) -> PostgresStore {
        let name = self.create().await;
        PostgresStore::connect(&self.server.url(&name), PostgresOptions::default())
            .await
            .unwrap()
    }
}

impl Drop for Databases {
    fn drop(&mut self) {
        let names = std::mem::take(&mut *self.names.lock().unwrap_or_else(|e| e.into_inner()));
        if names.is_empty() {
            return;
        }
        let config = self.server.config.clone();
        // A runtime of its own on a thread of its own: this may run while the test's runtime
        // unwinds from a panic.
        let dropping = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async move {
                let Ok(admin) = connect(&config).await else {
                    return;
                };
                for name in names {
                    // A database left behind is harmless; a later run uses new names.
                    let _ = admin
                        .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                        .await;
                }
            });
        });
        let _ = dropping.join();
    }
}

/// The backend a scenario runs on.
// One value a test, moved once: boxing the server's configuration would buy nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub enum Backend {
    /// The embedded SQLite store, in a scratch directory.
    Sqlite,
    /// A PostgreSQL store, on a database of its own on this server.
    Postgres(Server),
}

impl Backend {
    /// PostgreSQL on the test server, or `None` (said loudly) when there is none outside CI.
    pub async fn postgres() -> Option<Self> {
        Server::find().await.map(Self::Postgres)
    }

    /// New, empty storage for one test: a scratch directory, or a database of its own.
    pub async fn fresh(&self, test: &str) -> Storage {
        match self {
            Self::Sqlite => Storage::Sqlite(Scratch::new(test)),
            Self::Postgres(server) => {
                let databases = Databases::new(server);
                let url = server.url(&databases.create().await);
                Storage::Postgres { url, databases }
            }
        }
    }
}

/// Where a test's store keeps its data; dropping it deletes the data.
// One value a test, moved once: boxing the guard would buy nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub enum Storage {
    /// A SQLite store's directory.
    Sqlite(Scratch),
    /// A PostgreSQL database.
    Postgres {
        /// Its connection string.
        url: String,
        /// The guard that drops it.
        databases: Databases,
    },
}

impl Storage {
    /// Opens a store on this data: the first time on an empty store, later on what earlier
    /// stores wrote (a restart).
    pub async fn store(&self) -> Arc<dyn Store> {
        match self {
            Self::Sqlite(dir) => Arc::new(SqliteStore::open(&dir.0).unwrap()),
            Self::Postgres { url, .. } => Arc::new(
                PostgresStore::connect(url, PostgresOptions::default())
                    .await
                    .unwrap(),
            ),
        }
    }
}

/// A directory under the system's temporary directory (not created here), removed when
/// dropped.
#[derive(Debug)]
pub struct Scratch(pub PathBuf);

impl Scratch {
    pub fn new(test: &str) -> Self {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let path =
            std::env::temp_dir().join(format!("tailor-it-{}-{n}-{test}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        Self(path)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Runs each named scenario, an `async fn(Backend)`, as two tests in a module of its name:
/// `<scenario>::sqlite` and `<scenario>::postgres`. The PostgreSQL one skips (loudly) where
/// [`Backend::postgres`] does.
#[macro_export]
macro_rules! on_both_backends {
    ($($scenario:ident),+ $(,)?) => {$(
        mod $scenario {
            #[tokio::test]
            async fn sqlite() {
                super::$scenario($crate::testing::Backend::Sqlite).await;
            }

            #[tokio::test]
            async fn postgres() {
                if let Some(backend) = $crate::testing::Backend::postgres().await {
                    super::$scenario(backend).await;
                }
            }
        }
    )+};
}
