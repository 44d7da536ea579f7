//! A real `tailor serve` child process on port 0, for end-to-end tests.
//!
//! Synchronization is by what the server prints, never by sleeping: its stdout is read line by
//! line on a thread, and the test waits (with a bound) for `listening on http://ADDR` and then
//! `ready: ...`. Logs (stderr) go to a file, to be scanned for personal data.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{Receiver, channel};
use std::time::{Duration, Instant};

use crate::http::{Response, request, request_typed};

/// How long any single wait on the server may take before the test fails.
const PATIENCE: Duration = Duration::from_secs(120);

pub(crate) const ADMIN: &str = "e2e-admin-token-000000000001";
pub(crate) const SERVING: &str = "e2e-serving-token-0000000002";
pub(crate) const COMPLIANCE: &str = "e2e-compliance-token-000003";

/// The tokens to give a server through its environment.
pub(crate) fn fixed_tokens() -> Vec<(&'static str, &'static str)> {
    vec![
        ("TAILOR_ADMIN_TOKEN", ADMIN),
        ("TAILOR_SERVING_TOKEN", SERVING),
        ("TAILOR_COMPLIANCE_TOKEN", COMPLIANCE),
    ]
}

/// A running `tailor serve`.
pub(crate) struct Served {
    child: Option<Child>,
    lines: Receiver<String>,
    /// Every stdout line read so far.
    pub(crate) stdout: Vec<String>,
    /// `HOST:PORT` it listens on.
    pub(crate) addr: String,
    pub(crate) log: PathBuf,
}

impl Served {
    /// Starts `tailor serve` on `data_dir`, port 0, with `env` (and no token, key or database
    /// URL from the test's own environment), and waits until it is ready.
    pub(crate) fn start(data_dir: &Path, log: &Path, env: &[(&str, &str)], extra: &[&str]) -> Self {
        let mut command = Command::new(env!("CARGO_BIN_EXE_tailor"));
        command
            .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(data_dir)
            .args(extra)
            .env_remove("TAILOR_ADMIN_TOKEN")
            .env_remove("TAILOR_SERVING_TOKEN")
            .env_remove("TAILOR_COMPLIANCE_TOKEN")
            .env_remove("TAILOR_SECRET_KEY")
            .env_remove("TAILOR_DATABASE_URL")
            .env("RUST_LOG", "info")
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(log).expect("a log file"));
        let mut child = command.spawn().expect("tailor serve starts");
        let stdout = child.stdout.take().expect("a piped stdout");
        let (sender, lines) = channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if sender.send(line).is_err() {
                    break;
                }
            }
        });
        let mut served = Self {
            child: Some(child),
            lines,
            stdout: Vec::new(),
            addr: String::new(),
            log: log.to_owned(),
        };
        let listening = served.wait_for("listening on http://");
        served.addr = listening["listening on http://".len()..].to_owned();
        served.wait_for("ready: ");
        served
    }

    /// Reads stdout lines until one starts with `prefix`, and returns it.
    pub(crate) fn wait_for(&mut self, prefix: &str) -> String {
        loop {
            match self.lines.recv_timeout(PATIENCE) {
                Ok(line) => {
                    self.stdout.push(line.clone());
                    if line.starts_with(prefix) {
                        return line;
                    }
                }
                Err(e) => panic!(
                    "tailor serve printed no {prefix:?} ({e}); stdout so far: {:#?}; log:\n{}",
                    self.stdout,
                    std::fs::read_to_string(&self.log).unwrap_or_default()
                ),
            }
        }
    }

    pub(crate) fn call(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: &[u8],
    ) -> Response {
        request(&self.addr, method, path, token, body)
    }

    /// Sends one request with a `Content-Type`.
    pub(crate) fn typed(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        content_type: &str,
        body: &[u8],
    ) -> Response {
        request_typed(&self.addr, method, path, token, Some(content_type), body)
    }

    /// The serving lookup: the audiences an account is served with (a JSON array).
    pub(crate) fn audiences(&self, account: &str) -> serde_json::Value {
        let path = format!("/v1/serving/accounts/{account}/audiences");
        let reply = self.call("GET", &path, Some(SERVING), b"");
        assert_eq!(reply.status, 200, "{account}: {}", reply.text());
        reply.json()["audiences"].clone()
    }

    pub(crate) fn admin(&self, method: &str, path: &str, body: &[u8]) -> Response {
        self.call(method, path, Some(ADMIN), body)
    }

    /// Creates an advertiser through the admin API; returns its id and API key.
    pub(crate) fn create_advertiser(&self, name: &str) -> (String, String) {
        let body = serde_json::json!({"name": name}).to_string();
        let created = self.admin("POST", "/v1/admin/advertisers", body.as_bytes());
        assert_eq!(created.status, 201, "{}", created.text());
        let created = created.json();
        let field = |name: &str| created[name].as_str().unwrap().to_owned();
        (field("advertiser_id"), field("api_key"))
    }

    /// Creates an audience as the advertiser with `key`; returns its id.
    pub(crate) fn create_audience(&self, key: &str, name: &str) -> String {
        let body = serde_json::json!({"name": name}).to_string();
        let created = self.call("POST", "/v1/audiences", Some(key), body.as_bytes());
        assert_eq!(created.status, 201, "{}", created.text());
        created.json()["id"].as_str().unwrap().to_owned()
    }

    /// Uploads a CSV list to an audience with `op`; returns the job id of the 202.
    pub(crate) fn upload_csv(&self, key: &str, audience_id: &str, op: &str, csv: &[u8]) -> String {
        let path = format!("/v1/audiences/{audience_id}/uploads?op={op}");
        let reply = self.typed("POST", &path, Some(key), "text/csv", csv);
        assert_eq!(reply.status, 202, "{}", reply.text());
        reply.json()["job_id"].as_str().unwrap().to_owned()
    }

    /// Polls `GET /v1/jobs/{job_id}` until the job is neither queued nor running, and returns
    /// it. The loop is bounded by [`PATIENCE`], not paced: each poll is a full request.
    pub(crate) fn wait_for_job(&self, key: &str, job_id: &str) -> serde_json::Value {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let reply = self.call("GET", &format!("/v1/jobs/{job_id}"), Some(key), b"");
            assert_eq!(reply.status, 200, "{}", reply.text());
            let job = reply.json();
            if job["state"] != "queued" && job["state"] != "running" {
                return job;
            }
            assert!(Instant::now() < deadline, "the job never finished: {job:#}");
        }
    }

    /// Polls `GET /v1/audiences/{audience_id}` until it is no longer `processing` (no job of
    /// it is queued or running, including jobs whose id the test never saw), and returns it.
    pub(crate) fn wait_for_audience(&self, key: &str, audience_id: &str) -> serde_json::Value {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let path = format!("/v1/audiences/{audience_id}");
            let reply = self.call("GET", &path, Some(key), b"");
            assert_eq!(reply.status, 200, "{}", reply.text());
            let audience = reply.json();
            if audience["status"] != "processing" {
                return audience;
            }
            assert!(
                Instant::now() < deadline,
                "the audience stayed processing: {audience:#}"
            );
        }
    }

    /// Sends SIGTERM and waits (with a bound) for the process to exit.
    pub(crate) fn stop(mut self) -> ExitStatus {
        let child = self.child.take().expect("a running child");
        let pid = child.id().to_string();
        let killed = Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .expect("kill runs");
        assert!(killed.success(), "kill -TERM {pid} failed");
        wait_bounded(child)
    }

    /// Kills the process with SIGKILL (`kill -9`), as a crash would, and waits until it is
    /// gone: from then on its data directory is unlocked and its files are as the crash left
    /// them.
    pub(crate) fn kill(mut self) -> ExitStatus {
        let child = self.child.take().expect("a running child");
        let pid = child.id().to_string();
        let killed = Command::new("kill")
            .args(["-9", &pid])
            .status()
            .expect("kill runs");
        assert!(killed.success(), "kill -9 {pid} failed");
        wait_bounded(child)
    }
}

/// Waits for a child to exit, at most [`PATIENCE`]; kills it and fails past that.
fn wait_bounded(mut child: Child) -> ExitStatus {
    let pid = child.id().to_string();
    let (sender, receiver) = channel();
    std::thread::spawn(move || {
        let _ = sender.send(child.wait());
    });
    match receiver.recv_timeout(PATIENCE) {
        Ok(status) => status.expect("waiting for tailor serve"),
        Err(_) => {
            let _ = Command::new("kill").args(["-KILL", &pid]).status();
            panic!("tailor serve did not stop after a signal");
        }
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        // A test that failed half-way must not leave a server behind.
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
