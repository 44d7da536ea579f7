//! Checkpoints on a thread of their own: copying the WAL back into the database file is taken
//! off the writer's path.
//!
//! SQLite's automatic checkpoint runs inside the commit that crosses its threshold, so that
//! one call (a job of half a million grants, an import batch) pays for copying everything the
//! WAL holds, about as long again as the write itself. Here the writer's WAL hook only
//! signals, after a commit that leaves at least [`THRESHOLD`] pages in the WAL, and a
//! dedicated connection runs a passive checkpoint (it never waits for readers or the writer)
//! while the writer goes on. Durability is unchanged: a commit is durable in the WAL before
//! any checkpoint.
//!
//! The WAL only starts over when a write begins with every frame checkpointed, which back to
//! back writes (a bulk import) never leave time for. So past [`LIMIT`] pages the writer waits,
//! after its commit, for the thread to finish a checkpoint: the WAL then starts over at the
//! next write, and its size stays bounded, at the cost of one wait per [`LIMIT`] pages
//! written. Should the thread be gone, the hook checkpoints in place, as SQLite would.
//!
//! The hook never reports a failure: its call comes after the commit, and an error there
//! would make a committed write look failed. The thread must stop, and its connection close,
//! before the store's other connections: [`Checkpointer`]'s drop joins it.

use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};
use std::thread::JoinHandle;

use rusqlite::hooks::Wal;
use rusqlite::wal::CheckpointMode;
use rusqlite::{Connection, MAIN_DB};

use super::SqlResult;
use crate::StoreError;

/// Pages in the WAL (of 4 KiB) from which a checkpoint is asked for: 40 MiB, rather than
/// SQLite's 1,000, because a bulk write rewrites the same index pages call after call and
/// each checkpoint writes them once.
const THRESHOLD: i32 = 10_000;

/// Pages in the WAL (512 MiB) from which the writer waits for a checkpoint. Well above what
/// one large job writes (a job of half a million grants writes about 40,000 pages), so that
/// a job pays for a checkpoint only when writes came too fast for the thread before it.
const LIMIT: i32 = 131_072;

enum Signal {
    /// Checkpoint what the WAL holds.
    Checkpoint,
    /// Checkpoint, then answer (the writer waits).
    CheckpointAndAnswer(SyncSender<()>),
    Stop,
}

/// The checkpoint thread; dropping it stops the thread and waits for it.
pub(super) struct Checkpointer {
    signals: SyncSender<Signal>,
    thread: Option<JoinHandle<()>>,
}

impl Checkpointer {
    /// Starts the thread with its own connection `conn`, and makes `writer`'s commits signal
    /// it (turning the writer's automatic checkpoints off).
    pub(super) fn start(writer: &mut Connection, conn: Connection) -> Result<Self, StoreError> {
        // One signal pending is enough: the checkpoint it causes covers every commit before.
        let (signals, receiver) = sync_channel(1);
        let thread = std::thread::Builder::new()
            .name("tailor-store-checkpoint".into())
            .spawn(move || run(&conn, &receiver))
            .map_err(|e| StoreError::Database(format!("cannot start the checkpointer: {e}")))?;
        let hook_signals = signals.clone();
        writer
            .wal_hook(Some(move |wal: &mut Wal, pages| {
                after_commit(&hook_signals, wal, pages);
                Ok(())
            }))
            .db()?;
        Ok(Self {
            signals,
            thread: Some(thread),
        })
    }
}

/// What the writer does after a commit that leaves `pages` pages in the WAL.
fn after_commit(signals: &SyncSender<Signal>, wal: &mut Wal, pages: i32) {
    if pages >= LIMIT {
        let (answer, answered) = sync_channel(1);
        // Waits for room if a signal is pending, then for the checkpoint.
        let done =
            signals.send(Signal::CheckpointAndAnswer(answer)).is_ok() && answered.recv().is_ok();
        if !done {
            checkpoint_here(wal);
        }
        return;
    }
    if pages >= THRESHOLD {
        match signals.try_send(Signal::Checkpoint) {
            // Sent, or a checkpoint is already asked for.
            Ok(()) | Err(TrySendError::Full(_)) => {}
            Err(TrySendError::Disconnected(_)) => checkpoint_here(wal),
        }
    }
}

/// The thread is gone: checkpoint on the writer, rather than let the WAL grow.
fn checkpoint_here(wal: &mut Wal) {
    // A failure leaves the WAL as it is; the next commit tries again.
    let _ = wal.checkpoint_v2(CheckpointMode::PASSIVE);
}

fn run(conn: &Connection, signals: &Receiver<Signal>) {
    loop {
        let answer = match signals.recv() {
            Ok(Signal::Checkpoint) => None,
            Ok(Signal::CheckpointAndAnswer(answer)) => Some(answer),
            Ok(Signal::Stop) | Err(_) => return,
        };
        // A failure (the file busy with another process's checkpoint, a full disk) leaves
        // the WAL as it is; the next commit past the threshold asks again.
        let _ = conn.wal_checkpoint_v2(Some(MAIN_DB), CheckpointMode::PASSIVE);
        if let Some(answer) = answer {
            // The writer may have given up waiting; nothing to do then.
            let _ = answer.send(());
        }
    }
}

impl Drop for Checkpointer {
    fn drop(&mut self) {
        // Fails only if the thread is gone already.
        let _ = self.signals.send(Signal::Stop);
        if let Some(thread) = self.thread.take() {
            // A panic on that thread has nothing left to clean up.
            let _ = thread.join();
        }
    }
}
