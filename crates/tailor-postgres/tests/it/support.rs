//! A PostgreSQL server for the tests, and fresh databases on it.
//!
//! Each database is named `tailor_t_<random hex>` and dropped (with `FORCE`, closing the
//! store's connections) when its [`Databases`] guard goes, pass or panic.

use std::io::Write;
use std::sync::Mutex;

use tailor_postgres::{PostgresOptions, PostgresStore};
use tokio_postgres::{Client, Config, NoTls};

/// The server's connection string when `TAILOR_TEST_POSTGRES` is unset.
const DEFAULT_SERVER: &str = "postgres://postgres@127.0.0.1:5432/postgres";

/// The test server.
pub(crate) struct Server {
    config: Config,
}

impl Server {
    /// The server to test against, or `None` (after saying so) when it cannot be reached and
    /// this is not CI. Under `CI=true` an unreachable server fails the test.
    pub(crate) async fn find() -> Option<Self> {
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
    pub(crate) fn url(&self, name: &str) -> String {
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
    pub(crate) async fn client(&self, name: &str) -> Client {
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
pub(crate) struct Databases<'s> {
    server: &'s Server,
    names: Mutex<Vec<String>>,
}

impl<'s> Databases<'s> {
    pub(crate) fn new(server: &'s Server) -> Self {
        Self {
            server,
            names: Mutex::new(Vec::new()),
        }
    }

    /// Creates an empty database and returns its name.
    pub(crate) async fn create(&self) -> String {
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
    pub(crate) async fn store(&self) -> PostgresStore {
        let name = self.create().await;
        PostgresStore::connect(&self.server.url(&name), PostgresOptions::default())
            .await
            .unwrap()
    }
}

impl Drop for Databases<'_> {
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
