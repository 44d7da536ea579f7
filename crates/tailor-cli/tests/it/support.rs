//! Running the real `tailor` binary, in scratch directories of its own.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};

use tailor_core::Sha256Digest;

/// A runtime for the async helpers a test calls (the PostgreSQL test server's).
pub(crate) fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// A directory under the system's temporary directory, removed when dropped.
#[derive(Debug)]
pub(crate) struct Scratch {
    path: PathBuf,
}

impl Scratch {
    /// A new empty directory, named after the test so that a leftover says where it came from.
    pub(crate) fn new(test: &str) -> Self {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let path =
            std::env::temp_dir().join(format!("tailor-cli-it-{}-{n}-{test}", std::process::id()));
        // A directory left by a crashed run with the same process id would be stale.
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).expect("a scratch directory");
        Self { path }
    }

    pub(crate) fn path(&self, name: &str) -> PathBuf {
        self.path.join(name)
    }

    /// Writes a file and returns its path.
    pub(crate) fn write(&self, name: &str, contents: impl AsRef<[u8]>) -> PathBuf {
        let path = self.path(name);
        std::fs::write(&path, contents).expect("a scratch file");
        path
    }

    /// The names of the files in the directory, sorted.
    pub(crate) fn files(&self) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(&self.path)
            .expect("a readable scratch directory")
            .map(|entry| {
                let entry = entry.expect("a directory entry");
                entry.file_name().to_string_lossy().into_owned()
            })
            .collect();
        names.sort();
        names
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

/// What a run of `tailor` did.
#[derive(Debug)]
pub(crate) struct Run {
    pub(crate) code: Option<i32>,
    pub(crate) stdout: String,
    pub(crate) stderr: String,
}

impl Run {
    pub(crate) fn success(&self) -> bool {
        self.code == Some(0)
    }

    /// Panics with the run's stderr unless it succeeded.
    #[track_caller]
    pub(crate) fn assert_success(&self) -> &Self {
        assert!(self.success(), "tailor failed: {self:#?}");
        self
    }

    /// Panics unless the run failed with a one-line-or-more error on stderr.
    #[track_caller]
    pub(crate) fn assert_failure(&self) -> &Self {
        assert!(
            matches!(self.code, Some(code) if code != 0),
            "tailor should have failed: {self:#?}"
        );
        assert!(!self.stderr.trim().is_empty(), "no message: {self:#?}");
        self
    }
}

/// Runs `tailor` with `args`, feeding `stdin` to it.
pub(crate) fn tailor<I, S>(args: I, stdin: &[u8]) -> Run
where
    I: IntoIterator<Item = S>,
    S: AsRef<std::ffi::OsStr>,
{
    let mut child = Command::new(env!("CARGO_BIN_EXE_tailor"))
        .args(args)
        // A database URL in the test's own environment must not move these runs off SQLite.
        .env_remove("TAILOR_DATABASE_URL")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the tailor binary starts");
    let mut input = child.stdin.take().expect("a piped stdin");
    let stdin = stdin.to_vec();
    // Fed from a thread: a large input would otherwise fill the pipe while tailor waits for
    // us to read its output. A run that fails early closes the pipe, so a failed write is fine.
    let feeder = std::thread::spawn(move || {
        let _ = input.write_all(&stdin);
    });
    let output = child.wait_with_output().expect("tailor runs to its end");
    feeder.join().expect("the stdin feeder does not panic");
    Run {
        code: output.status.code(),
        stdout: String::from_utf8(output.stdout).expect("UTF-8 on stdout"),
        stderr: String::from_utf8(output.stderr).expect("UTF-8 on stderr"),
    }
}

/// A path as an argument.
pub(crate) fn arg(path: &Path) -> &str {
    path.to_str().expect("a UTF-8 path")
}

/// Lowercase hex SHA-256 of `text`.
pub(crate) fn sha256_hex(text: &str) -> String {
    Sha256Digest::of(text.as_bytes())
        .to_hex()
        .as_str()
        .to_owned()
}

/// The counts of the summary on stderr: `rows`, `emails`, `phones`, `rejected` and one entry
/// per reason code.
pub(crate) fn summary(stderr: &str) -> BTreeMap<String, u64> {
    let mut counts = BTreeMap::new();
    for line in stderr.lines() {
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.as_slice() {
            ["tailor", "hash:", rows, "rows", "read", ..] => {
                counts.insert("rows".to_owned(), rows.parse().expect("a count"));
            }
            ["emails", "hashed:", n] => {
                counts.insert("emails".to_owned(), n.parse().expect("a count"));
            }
            ["phones", "hashed:", n] => {
                counts.insert("phones".to_owned(), n.parse().expect("a count"));
            }
            ["rejected:", n] => {
                counts.insert("rejected".to_owned(), n.parse().expect("a count"));
            }
            [code, n, ..]
                if line.starts_with("    ")
                    && tailor_core::RejectReason::from_code(code).is_some() =>
            {
                counts.insert((*code).to_owned(), n.parse().expect("a count"));
            }
            _ => {}
        }
    }
    counts
}

/// The expected summary: rows, emails, phones, then reasons and counts.
pub(crate) fn counts(
    rows: u64,
    emails: u64,
    phones: u64,
    rejected: &[(&str, u64)],
) -> BTreeMap<String, u64> {
    let mut counts = BTreeMap::from([
        ("rows".to_owned(), rows),
        ("emails".to_owned(), emails),
        ("phones".to_owned(), phones),
        ("rejected".to_owned(), rejected.iter().map(|(_, n)| n).sum()),
    ]);
    for (code, n) in rejected {
        counts.insert((*code).to_owned(), *n);
    }
    counts
}
