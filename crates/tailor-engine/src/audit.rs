//! The accountability log seen from the engine: the checkpoint signing key, signed
//! checkpoints, proofs, and the verification `tailor log verify` runs.
//!
//! The store appends entries in the transactions of the changes they record; this module
//! signs checkpoints (C2SP signed notes over the tree's size and root, Ed25519) and checks
//! that the stored entries, the roots recorded beside them and every signed checkpoint agree.
//! The signing key is `log.key` in the data directory (generated 0600 on first start); its
//! verifier key is written beside it as `log.pub` for auditors. Nothing here may read or
//! return an account id or a contact value: entries hold only commitments.

use std::path::Path;

use tailor_log::{Checkpoint, Frontier, Hash, SigningKey, VerifierKey};
use tailor_store::Store;
use tailor_store::log::{LogEntry, StoredCheckpoint};

use crate::EngineError;
use crate::secret::{random_bytes, write_private};

/// The signing key's file in the data directory.
pub const LOG_KEY_FILE: &str = "log.key";
/// Its verifier key, for auditors.
pub const LOG_PUB_FILE: &str = "log.pub";

/// Entries read at a time when the whole log is walked.
const BATCH: u64 = 4096;

/// Loads the checkpoint signing key from the data directory, generating it (and `log.pub`)
/// on first use. The key's name is the log's origin: `tailor-log-` and 8 random hex digits.
pub fn load_log_key(data_dir: &Path) -> Result<SigningKey, EngineError> {
    let path = data_dir.join(LOG_KEY_FILE);
    match std::fs::read_to_string(&path) {
        Ok(text) => SigningKey::from_private_text(text.trim()).map_err(|_| {
            EngineError::BadSecret("log.key in the data directory is not a valid key")
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let name = format!("tailor-log-{}", hex::encode(*random_bytes::<4>()?));
            let key = SigningKey::from_seed(&name, *random_bytes::<32>()?)
                .map_err(|_| EngineError::BadSecret("generated log key refused"))?;
            write_private(&path, key.to_private_text().as_bytes())?;
            let public = data_dir.join(LOG_PUB_FILE);
            std::fs::write(&public, format!("{}\n", key.verifier().to_text())).map_err(
                |source| EngineError::Io {
                    what: "writing log.pub",
                    source,
                },
            )?;
            Ok(key)
        }
        Err(source) => Err(EngineError::Io {
            what: "reading log.key",
            source,
        }),
    }
}

/// Reads the verifier key an auditor checks checkpoints with (`log.pub`).
pub fn load_verifier(path: &Path) -> Result<VerifierKey, EngineError> {
    let text = std::fs::read_to_string(path).map_err(|source| EngineError::Io {
        what: "reading the log's verifier key",
        source,
    })?;
    VerifierKey::parse(text.trim())
        .map_err(|_| EngineError::BadSecret("the log's verifier key is not valid"))
}

/// Signs a checkpoint of the log as it is now, stores it, and returns the signed note; the
/// checkpoint of the current size is reused when there is one.
pub async fn checkpoint(
    store: &dyn Store,
    key: &SigningKey,
    now: jiff::Timestamp,
) -> Result<String, EngineError> {
    let size = store.log_size().await?;
    if let Some(existing) = store
        .checkpoints()
        .await?
        .into_iter()
        .find(|c| c.size == size)
    {
        return Ok(existing.note);
    }
    let root = root_at(store, size).await?;
    let checkpoint = Checkpoint::new(key.name(), size, root)
        .map_err(|_| EngineError::BadSecret("the log key's name is not a valid origin"))?;
    let note = key.sign(&checkpoint);
    store
        .add_checkpoint(StoredCheckpoint {
            size,
            note: note.clone(),
            at: now,
        })
        .await?;
    Ok(note)
}

/// The tree's root over the first `size` entries, as recorded beside entry `size - 1`.
async fn root_at(store: &dyn Store, size: u64) -> Result<Hash, EngineError> {
    if size == 0 {
        return Ok(tailor_log::EMPTY_ROOT);
    }
    let last = store.log_entries(size - 1, size).await?;
    last.first()
        .map(|entry| entry.root)
        .ok_or(EngineError::Store(tailor_store::StoreError::Corrupt(
            "a log entry is missing".into(),
        )))
}

/// The leaf hashes of the first `size` entries (for proofs).
async fn leaves(store: &dyn Store, size: u64) -> Result<Vec<Hash>, EngineError> {
    let mut leaves = Vec::with_capacity(usize::try_from(size).unwrap_or(0));
    let mut start = 0;
    while start < size {
        let end = (start + BATCH).min(size);
        let entries = store.log_entries(start, end).await?;
        if entries.len() as u64 != end - start {
            return Err(EngineError::Store(tailor_store::StoreError::Corrupt(
                "a log entry is missing".into(),
            )));
        }
        leaves.extend(entries.iter().map(|e| tailor_log::leaf_hash(&e.data)));
        start = end;
    }
    Ok(leaves)
}

/// Why a proof cannot be given.
#[derive(Debug, thiserror::Error)]
pub enum ProofRefused {
    #[error("the log holds only {0} entries")]
    BeyondLog(u64),
    #[error("{0}")]
    Invalid(tailor_log::ProofError),
}

/// The inclusion proof of entry `index` in the tree of the first `size` entries.
pub async fn inclusion_proof(
    store: &dyn Store,
    index: u64,
    size: u64,
) -> Result<Result<Vec<Hash>, ProofRefused>, EngineError> {
    let held = store.log_size().await?;
    if size > held {
        return Ok(Err(ProofRefused::BeyondLog(held)));
    }
    let leaves = leaves(store, size).await?;
    Ok(tailor_log::inclusion_proof(&leaves, index, size).map_err(ProofRefused::Invalid))
}

/// The consistency proof between the trees of the first `old_size` and `new_size` entries.
pub async fn consistency_proof(
    store: &dyn Store,
    old_size: u64,
    new_size: u64,
) -> Result<Result<Vec<Hash>, ProofRefused>, EngineError> {
    let held = store.log_size().await?;
    if new_size > held {
        return Ok(Err(ProofRefused::BeyondLog(held)));
    }
    let leaves = leaves(store, new_size).await?;
    Ok(tailor_log::consistency_proof(&leaves, old_size, new_size).map_err(ProofRefused::Invalid))
}

/// Where a problem is.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Position {
    /// Entry `n` (from 0).
    Entry(u64),
    /// The stored checkpoint of this size.
    Checkpoint(u64),
    /// A checkpoint given to the verification (`--checkpoint FILE`), of this size.
    Given(u64),
}

impl std::fmt::Display for Position {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Entry(n) => write!(f, "entry {n}"),
            Self::Checkpoint(size) => write!(f, "checkpoint of size {size}"),
            Self::Given(size) => write!(f, "given checkpoint of size {size}"),
        }
    }
}

/// One thing found wrong.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Problem {
    pub position: Position,
    pub message: String,
}

/// What a verification found.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct Verification {
    pub entries: u64,
    pub checkpoints: u64,
    /// The root over every entry, recomputed.
    pub root: String,
    pub problems: Vec<Problem>,
}

impl Verification {
    pub fn ok(&self) -> bool {
        self.problems.is_empty()
    }

    fn problem(&mut self, position: Position, message: impl Into<String>) {
        self.problems.push(Problem {
            position,
            message: message.into(),
        });
    }
}

/// A checkpoint to check: the stored ones and, optionally, one an auditor kept.
struct Claim {
    position: Position,
    checkpoint: Checkpoint,
}

/// Checks the claims of the tree's current size against its root.
fn check_claims(
    frontier: &Frontier,
    claims: &mut std::iter::Peekable<std::vec::IntoIter<Claim>>,
    report: &mut Verification,
) {
    while let Some(claim) = claims.next_if(|c| c.checkpoint.size == frontier.size()) {
        if claim.checkpoint.root != frontier.root() {
            report.problem(
                claim.position,
                "its root is not the root of the entries up to its size: an entry before it \
                 was changed, removed, reordered or inserted",
            );
        }
    }
}

/// Recomputes the tree from the stored entries and checks each entry (readable, at its
/// place, the root recorded beside it), every stored checkpoint (signed by `verifier`, its
/// root that of the entries up to its size) and `given`, a signed note an auditor kept.
/// Stored checkpoints that all match the same entries are consistent with one another.
pub async fn verify(
    store: &dyn Store,
    verifier: &VerifierKey,
    given: Option<&str>,
) -> Result<Verification, EngineError> {
    let mut report = Verification::default();
    let mut claims = Vec::new();
    for stored in store.checkpoints().await? {
        report.checkpoints += 1;
        let position = Position::Checkpoint(stored.size);
        match verifier.verify(&stored.note) {
            Ok(checkpoint) if checkpoint.size != stored.size => report.problem(
                position,
                format!("its note is for size {}", checkpoint.size),
            ),
            Ok(checkpoint) => claims.push(Claim {
                position,
                checkpoint,
            }),
            Err(e) => report.problem(position, format!("its signature does not verify: {e}")),
        }
    }
    if let Some(note) = given {
        match verifier.verify(note) {
            Ok(checkpoint) => claims.push(Claim {
                position: Position::Given(checkpoint.size),
                checkpoint,
            }),
            Err(e) => report.problem(
                Position::Given(0),
                format!("its signature does not verify: {e}"),
            ),
        }
    }
    claims.sort_by_key(|c| c.checkpoint.size);
    let mut claims = claims.into_iter().peekable();
    let mut frontier = Frontier::new();
    // Checkpoints of the empty tree.
    check_claims(&frontier, &mut claims, &mut report);

    let size = store.log_size().await?;
    let mut expected = 0u64;
    let mut broken = false;
    let mut roots_off = false;
    while expected < size && !broken {
        let end = (expected + BATCH).min(size);
        let entries = store.log_entries(expected, end).await?;
        if entries.is_empty() {
            report.problem(Position::Entry(expected), "missing: the log ends early");
            break;
        }
        for entry in entries {
            if entry.index != expected {
                report.problem(
                    Position::Entry(expected),
                    format!("missing: the next stored entry is {}", entry.index),
                );
                broken = true;
                break;
            }
            match LogEntry::parse(&entry.data) {
                Ok(parsed) if parsed.index != entry.index => report.problem(
                    Position::Entry(entry.index),
                    format!(
                        "it says it is entry {}: entries were reordered",
                        parsed.index
                    ),
                ),
                Ok(_) => {}
                Err(_) => report.problem(Position::Entry(entry.index), "it is not a log entry"),
            }
            frontier.push(tailor_log::leaf_hash(&entry.data));
            // Once one recorded root is off, every later one is too: the first is the place.
            if !roots_off && frontier.root() != entry.root {
                roots_off = true;
                report.problem(
                    Position::Entry(entry.index),
                    "the root recorded with it is not the root of the entries up to it: it was \
                     changed, moved or inserted here",
                );
            }
            check_claims(&frontier, &mut claims, &mut report);
            expected += 1;
        }
    }
    report.entries = expected;
    for claim in claims {
        report.problem(
            claim.position,
            format!(
                "it covers {} entries, the log holds {}: entries were removed",
                claim.checkpoint.size, expected
            ),
        );
    }
    report.root = hex::encode(frontier.root());
    Ok(report)
}
