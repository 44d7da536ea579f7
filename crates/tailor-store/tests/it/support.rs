//! Temporary data directories for tests: unique per test, removed on drop (also when the test
//! panics), never shared between tests running in parallel.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use tailor_store::SqliteStore;

/// A directory under the system's temporary directory, removed with everything in it when
/// dropped. The directory itself is not created: the store creates it.
#[derive(Debug)]
pub(crate) struct TempDir {
    path: PathBuf,
}

impl TempDir {
    pub(crate) fn new(label: &str) -> Self {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let name = format!(
            "tailor-store-{label}-{}-{}-{nanos}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        Self {
            path: std::env::temp_dir().join(name),
        }
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// The data directory for a store: a subdirectory, so that the test can check what
    /// the store creates.
    pub(crate) fn data_dir(&self) -> PathBuf {
        self.path.join("data")
    }

    pub(crate) fn open(&self) -> SqliteStore {
        SqliteStore::open(&self.data_dir()).unwrap()
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        // Nothing to do about a failure here; a leftover directory in the temporary
        // directory is harmless.
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

/// Every regular file under `dir`, recursively.
pub(crate) fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                pending.push(path);
            } else {
                files.push(path);
            }
        }
    }
    files
}

/// Whether `needle` occurs in `haystack`.
pub(crate) fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && haystack.windows(needle.len()).any(|w| w == needle)
}
