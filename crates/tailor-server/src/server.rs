//! Running `tailor serve`: open the data directory, resolve the tokens, bind, build the index
//! in the background, serve until told to stop.
//!
//! The listener is bound before the index is built, so that liveness answers at once and
//! readiness turns true when the index is complete (restart-to-ready with a large store takes
//! seconds). Admin endpoints answer 503 `not_ready` until then. A failed index build stops the
//! server with its error. SIGTERM and ctrl-c stop accepting connections and let the requests
//! in flight finish.
//!
//! The only lines written to stdout are for the operator: each token generated at first start
//! (shown once), where tokens come from, `listening on http://ADDR`, and `ready`.

use std::future::Future;
use std::io::Write as _;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use tailor_core::release::ReleaseConfig;
use tailor_core::{IndexKey, Policy};
use tailor_engine::secret::{SecretSource, load_index_key};
use tailor_engine::{Engine, Limits, SystemClock};
use tailor_store::Store;
use tokio::net::TcpListener;
use tokio::sync::Notify;

use crate::config::Config;
use crate::error::ServerError;
use crate::state::AppState;
use crate::tokens::{self, Role, TokenOrigin};

/// What is known once the index is built.
#[derive(Clone, Debug)]
pub struct ReadyInfo {
    pub index_entries: usize,
    pub policy_version: String,
    pub build_seconds: f64,
}

/// A bound server whose index is not built yet.
pub struct Server {
    listener: TcpListener,
    addr: SocketAddr,
    state: AppState,
    store: Arc<dyn Store>,
    key: IndexKey,
    policy: Policy,
    limits: Limits,
    release: ReleaseConfig,
    origins: Vec<(Role, TokenOrigin)>,
    secret_source: SecretSource,
    log_key: tailor_log::SigningKey,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("addr", &self.addr)
            .field("limits", &self.limits)
            .finish_non_exhaustive()
    }
}

impl Server {
    /// Checks the policy, opens the store, resolves the tokens and the index key, and binds.
    pub async fn bind(config: &Config) -> Result<Self, ServerError> {
        // The policy first: a bad file must refuse to start before anything is created.
        let policy = config.load_policy()?;
        let store = crate::database::open_store(&config.data_dir, config.database.as_ref()).await?;
        let (tokens, origins) = tokens::bootstrap(store.as_ref(), &config.tokens).await?;
        let (key, secret_source) = load_index_key(
            &config.data_dir,
            config.secret_key.as_deref().map(String::as_str),
        )?;
        let log_key = tailor_engine::audit::load_log_key(&config.data_dir)?;
        let listener =
            TcpListener::bind(&config.listen)
                .await
                .map_err(|source| ServerError::Bind {
                    addr: config.listen.clone(),
                    source,
                })?;
        let addr = listener.local_addr().map_err(|source| ServerError::Bind {
            addr: config.listen.clone(),
            source,
        })?;
        Ok(Self {
            listener,
            addr,
            state: AppState::starting(tokens, config.limits),
            store,
            key,
            policy,
            limits: config.limits,
            release: config.release,
            origins,
            secret_source,
            log_key,
        })
    }

    /// The address actually bound (a port 0 request gets a real port).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Where each role's token came from; generated tokens are shown once from here.
    pub fn token_origins(&self) -> &[(Role, TokenOrigin)] {
        &self.origins
    }

    /// Where the index key came from.
    pub fn secret_source(&self) -> SecretSource {
        self.secret_source
    }

    /// The state the router serves (not ready until the index is built).
    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Serves until `shutdown` completes; `on_ready` is called once the index is built.
    pub async fn run<S, R>(self, shutdown: S, on_ready: R) -> Result<(), ServerError>
    where
        S: Future<Output = ()> + Send + 'static,
        R: FnOnce(&ReadyInfo) + Send + 'static,
    {
        let Self {
            listener,
            addr,
            state,
            store,
            key,
            policy,
            limits,
            release,
            log_key,
            ..
        } = self;
        tracing::info!(%addr, "listening");
        let failed = Arc::new(Notify::new());
        let build = tokio::spawn({
            let state = state.clone();
            let failed = Arc::clone(&failed);
            async move {
                let started = Instant::now();
                let opened =
                    Engine::open_with(store, key, policy, Arc::new(SystemClock), limits, release)
                        .await;
                let engine = match opened {
                    Ok(engine) => {
                        engine.sign_log_with(log_key);
                        Arc::new(engine)
                    }
                    Err(error) => {
                        tracing::error!(error = %error, "building the index failed");
                        failed.notify_one();
                        return Err(ServerError::Engine(error));
                    }
                };
                let info = ReadyInfo {
                    index_entries: engine.index_len(),
                    policy_version: engine.policy().version().to_hex(),
                    build_seconds: started.elapsed().as_secs_f64(),
                };
                state.metrics().set_index_build_seconds(info.build_seconds);
                state.set_ready(engine);
                tracing::info!(
                    index_entries = info.index_entries,
                    policy_version = %info.policy_version,
                    build_ms = info.build_seconds * 1000.0,
                    "index built; ready"
                );
                on_ready(&info);
                Ok(())
            }
        });
        let stop = {
            let failed = Arc::clone(&failed);
            async move {
                tokio::select! {
                    () = shutdown => tracing::info!("shutting down"),
                    () = failed.notified() => {}
                }
            }
        };
        axum::serve(listener, crate::router(state))
            .with_graceful_shutdown(stop)
            .await
            .map_err(ServerError::Serve)?;
        if build.is_finished() {
            match build.await {
                Ok(result) => result?,
                Err(_) => return Err(ServerError::IndexTask),
            }
        } else {
            // Stopped while the index was still being built: nothing to finish.
            build.abort();
        }
        tracing::info!("stopped");
        Ok(())
    }
}

/// Completes on SIGTERM or ctrl-c. The handlers are installed when this is called (not when
/// the future is first polled), so that a signal sent right after start is not lost.
pub fn shutdown_signal() -> Result<impl Future<Output = ()> + Send + 'static, ServerError> {
    #[cfg(unix)]
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .map_err(ServerError::Serve)?;
    Ok(async move {
        #[cfg(unix)]
        let terminate = async move {
            term.recv().await;
        };
        #[cfg(not(unix))]
        let terminate = std::future::pending::<()>();
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            () = terminate => {}
        }
    })
}

/// Writes one line for the operator on stdout. A closed stdout is not a reason to stop
/// serving, so a failed write is ignored.
fn say(line: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

/// `tailor serve`: runs a server with `config` until SIGTERM or ctrl-c.
pub async fn serve(config: Config) -> Result<(), ServerError> {
    crate::telemetry::init_logging();
    let server = Server::bind(&config).await?;
    let shutdown = shutdown_signal()?;
    for (role, origin) in server.token_origins() {
        match origin {
            TokenOrigin::Generated(token) => say(&format!(
                "{role} token (generated; shown only this once, keep it now): {}",
                token.as_str()
            )),
            TokenOrigin::Stored => say(&format!(
                "{role} token: set at an earlier start (stored hashed; `tailor tokens reset \
                 --role {role}` replaces it)"
            )),
            TokenOrigin::Environment => say(&format!("{role} token: from {}", role.env_var())),
        }
    }
    match server.secret_source() {
        SecretSource::Generated => tracing::warn!(
            "generated the index key in the data directory (secret.key); back it up with the \
             database: without it the stored digests cannot be matched again"
        ),
        SecretSource::File => tracing::info!("index key read from the data directory"),
        SecretSource::Environment => tracing::info!("index key read from TAILOR_SECRET_KEY"),
    }
    say(&format!("listening on http://{}", server.local_addr()));
    server
        .run(shutdown, |info| {
            say(&format!(
                "ready: {} index entries, policy {}",
                info.index_entries, info.policy_version
            ));
        })
        .await
}
