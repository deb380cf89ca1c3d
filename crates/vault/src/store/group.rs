//! Group commit, as both backends do it.
//!
//! Each node has one writer (a thread on SQLite, a task on PostgreSQL) that
//! takes every batch waiting, up to [`MAX_GROUP`], applies each in a
//! savepoint of one transaction, chains their audit entries onto the head
//! read inside that transaction, writes the head once and commits: one
//! fsync for the group. What differs between the backends is only the SQL
//! and whether it is awaited; everything else is here, so a change to how
//! groups are formed, answered or chained is made once.

use super::{Batch, BatchError, Committed, StoreError};
use crate::audit::AuditEntry;
use crate::store::consent::Preferences;
use crate::store::requests::TaskRecord;
use tokio::sync::{mpsc, oneshot};

/// The most batches one group transaction takes.
pub(super) const MAX_GROUP: usize = 512;

/// A batch's outcome: store failure (outer), or the batch refused (inner).
pub(super) type Outcome = Result<Committed, BatchError>;

/// A batch waiting for the writer, and where its answer goes.
pub(super) struct Job {
    pub batch: Batch,
    pub reply: oneshot::Sender<Result<Outcome, StoreError>>,
}

/// The writer's end of the queue, and the callers' way into it.
pub(super) struct Queue;

impl Queue {
    /// Hands a batch to the writer and waits for its group to commit.
    pub async fn submit(writer: &mpsc::Sender<Job>, batch: Batch) -> Result<Outcome, StoreError> {
        let (reply, answer) = oneshot::channel();
        writer
            .send(Job { batch, reply })
            .await
            .map_err(|_| StoreError::WriterGone)?;
        answer.await.map_err(|_| StoreError::WriterGone)?
    }

    /// The group that starts with `first`: it and every batch already
    /// waiting, up to [`MAX_GROUP`]. Waiting for more would only delay the
    /// first; those that come meanwhile form the next group.
    pub fn gather(first: Job, rx: &mut mpsc::Receiver<Job>) -> Vec<Job> {
        let mut jobs = vec![first];
        while jobs.len() < MAX_GROUP {
            match rx.try_recv() {
                Ok(job) => jobs.push(job),
                Err(_) => break,
            }
        }
        jobs
    }

    /// Answers each batch of a committed group with its own outcome.
    pub fn answer(jobs: Vec<Job>, outcomes: Vec<Outcome>) {
        for (job, outcome) in jobs.into_iter().zip(outcomes) {
            // A caller that gave up waiting no longer needs the answer.
            let _ = job.reply.send(Ok(outcome));
        }
    }

    /// Answers every batch of a group that did not commit with the same error.
    pub fn fail(jobs: Vec<Job>, error: impl Fn() -> StoreError) {
        for job in jobs {
            let _ = job.reply.send(Err(error()));
        }
    }
}

/// The audit chain's head as a group moves it: each batch that commits
/// chains onto the head the one before it left.
pub(super) struct Head {
    start: (i64, [u8; 32]),
    current: (i64, [u8; 32]),
}

impl Head {
    pub fn new(start: (i64, [u8; 32])) -> Self {
        Self {
            start,
            current: start,
        }
    }

    /// Where the next batch chains on.
    pub fn current(&self) -> (i64, [u8; 32]) {
        self.current
    }

    /// A batch committed (its savepoint was released) and moved the head.
    pub fn advance(&mut self, to: (i64, [u8; 32])) {
        self.current = to;
    }

    /// The head to store when the group commits, if any batch moved it.
    pub fn moved(&self) -> Option<(i64, [u8; 32])> {
        (self.current != self.start).then_some(self.current)
    }
}

/// What a batch whose statements all succeeded answers, and the head its
/// audit entries leave.
pub(super) fn committed(
    entries: &[AuditEntry],
    head: (i64, [u8; 32]),
    preferences: Option<Preferences>,
    claimed: Vec<TaskRecord>,
) -> (Committed, (i64, [u8; 32])) {
    let new_head = entries.last().map_or(head, |e| (e.seq, e.hash));
    (
        Committed {
            audit_seqs: entries.iter().map(|e| e.seq).collect(),
            preferences,
            claimed,
        },
        new_head,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job() -> (Job, oneshot::Receiver<Result<Outcome, StoreError>>) {
        let (reply, answer) = oneshot::channel();
        (
            Job {
                batch: Batch::default(),
                reply,
            },
            answer,
        )
    }

    #[test]
    fn a_group_takes_what_waits_up_to_the_limit() {
        let (tx, mut rx) = mpsc::channel(MAX_GROUP + 10);
        let (first, _a) = job();
        let mut answers = Vec::new();
        for _ in 0..MAX_GROUP + 5 {
            let (j, a) = job();
            answers.push(a);
            assert!(tx.try_send(j).is_ok());
        }
        assert_eq!(Queue::gather(first, &mut rx).len(), MAX_GROUP);
        let Ok(next) = rx.try_recv() else {
            panic!("the rest waits for the next group");
        };
        assert_eq!(Queue::gather(next, &mut rx).len(), 6);
    }

    #[test]
    fn the_head_is_stored_only_when_a_batch_moved_it() {
        let mut head = Head::new((3, [1; 32]));
        assert_eq!(head.moved(), None);
        head.advance((5, [2; 32]));
        assert_eq!(head.current(), (5, [2; 32]));
        assert_eq!(head.moved(), Some((5, [2; 32])));
    }
}
