//! Checkpoints on a thread of their own. A checkpoint copies committed pages
//! from the WAL into the database file; run by the writer after a commit (the
//! SQLite default), it stalls every request of the next group while it runs,
//! and a large one (many pages at once) showed as a 25 ms p99 on consent
//! writes. Here the writer only nudges this thread after each commit, and
//! this thread checkpoints at most once per `EVERY`, PASSIVE: it never blocks
//! the writer or a reader, and copies what they leave it.

use rusqlite::Connection;
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::time::Duration;

/// Commits gathered into one checkpoint.
const EVERY: Duration = Duration::from_millis(500);

/// WAL pages after which the writer checkpoints itself all the same: only if
/// this thread falls far behind (about 80 MB of WAL).
pub(super) const WRITER_BACKSTOP_PAGES: i64 = 20_000;

/// Starts the thread; the writer keeps the sender and nudges it after each
/// commit. When the writer stops (the store is dropped), the thread makes a
/// last checkpoint and ends.
pub(super) fn start(conn: Connection) -> std::io::Result<SyncSender<()>> {
    let (nudge, nudged) = sync_channel(1);
    std::thread::Builder::new()
        .name("custodian-sqlite-checkpointer".into())
        .spawn(move || run(&conn, &nudged))?;
    Ok(nudge)
}

fn run(conn: &Connection, nudged: &Receiver<()>) {
    while nudged.recv().is_ok() {
        std::thread::sleep(EVERY);
        // A nudge sent while sleeping is covered by this checkpoint.
        let _ = nudged.try_recv();
        checkpoint(conn);
    }
    checkpoint(conn);
}

fn checkpoint(conn: &Connection) {
    if let Err(e) = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(())) {
        tracing::warn!(error = %e, "WAL checkpoint failed; the writer's backstop will take over");
    }
}

#[cfg(test)]
mod tests {
    use crate::audit::AuditDraft;
    use crate::store::{Batch, now_micros};

    /// Commits reach the database file without the writer checkpointing:
    /// its own threshold (`WRITER_BACKSTOP_PAGES`) is far above these writes.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn commits_are_checkpointed_by_the_thread() {
        let dir =
            std::env::temp_dir().join(format!("custodian-checkpoint-{}", crate::crypto::new_id()));
        let path = dir.join("custodian.db");
        let store = super::super::SqliteStore::open(
            &path,
            true,
            crate::audit::AuditKey::new(&crate::crypto::Secret::from_bytes([3; 32])),
        )
        .unwrap();
        let before = std::fs::metadata(&path).unwrap().len();
        for i in 0..200 {
            let draft = AuditDraft {
                at: now_micros(),
                actor: "key:test".into(),
                action: "test".into(),
                purpose: None,
                subject: None,
                decision: "recorded".into(),
                reason: Some(format!("entry {i} {}", "x".repeat(200))),
            };
            store
                .write(Batch::audit_only(draft))
                .await
                .unwrap()
                .unwrap();
        }
        // Liveness, not timing: a generous deadline for one checkpoint.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        while std::fs::metadata(&path).unwrap().len() <= before {
            assert!(
                std::time::Instant::now() < deadline,
                "nothing was checkpointed into {}",
                path.display()
            );
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        drop(store);
        let _ = std::fs::remove_dir_all(dir);
    }
}
