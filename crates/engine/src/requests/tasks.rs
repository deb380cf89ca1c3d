//! The task runner: claims due tasks with a lease, carries each out, and
//! commits its effects with its completion in one transaction. A node that
//! dies mid-task leaves a lease that runs out; another node (or this one,
//! restarted) claims the task again. A transient failure is retried with
//! backoff; one that keeps failing, or a permanent one, is shown as failed
//! with its reason. The mechanism is general: connectors and retention add
//! systems and kinds of work.

use super::stored::{Outcome, Request};
use super::{systems, work};
use crate::audit_action::AuditAction;
use crate::collect::micros;
use crate::datasets::Identities;
use crate::error::written;
use crate::{App, AppError};
use custodian_policy::requests::{RequestEvent, RequestKind, RequestState};
use custodian_vault::store::requests::{RequestOp, TaskOutcome, TaskRecord};
use custodian_vault::store::{Batch, WriteOp};
use std::time::Duration;
use time::OffsetDateTime;

/// The system name of the vault's own task.
pub const VAULT: &str = "vault";

/// Claims beyond this many attempts are given up as failed.
const MAX_ATTEMPTS: i64 = 8;

/// Thirty days: long enough for a person who is away, short enough not to
/// keep the address of someone who never came back.
pub const DEFAULT_UNVERIFIED_EXPIRY: Duration = Duration::from_secs(30 * 24 * 60 * 60);

/// How the runner behaves; the defaults suit production, tests shorten them.
#[derive(Debug, Clone, Copy)]
pub struct RunnerSettings {
    /// How long a claimed task is this node's before another may take it.
    pub lease: Duration,
    /// Tasks claimed at once.
    pub batch: i64,
    /// The longest sleep between looks at the store (other nodes queue
    /// work this node is not woken for).
    pub idle: Duration,
    /// How long a request may wait for the person's verification before it
    /// expires (see [`super::unverified`]).
    pub unverified_expiry: Duration,
}

impl Default for RunnerSettings {
    fn default() -> Self {
        RunnerSettings {
            lease: Duration::from_secs(30),
            batch: 32,
            idle: Duration::from_secs(1),
            unverified_expiry: DEFAULT_UNVERIFIED_EXPIRY,
        }
    }
}

fn backoff(attempts: i64) -> i64 {
    // 1 s, 2 s, 4 s, ... at most 5 minutes.
    let seconds = 1i64 << attempts.clamp(0, 8);
    seconds.min(300) * 1_000_000
}

/// Claims and carries out the tasks due now; returns how many it ran.
pub async fn run_due(
    app: &App,
    settings: &RunnerSettings,
    now: OffsetDateTime,
) -> Result<usize, AppError> {
    let at = micros(now);
    let lease_until = at + i64::try_from(settings.lease.as_micros()).unwrap_or(i64::MAX / 2);
    let claim = Batch {
        ops: vec![WriteOp::Request(RequestOp::ClaimTasks {
            owner: app.node.to_string(),
            now: at,
            lease_until,
            limit: settings.batch,
        })],
        audit: vec![],
        outbox: vec![],
    };
    let claimed = written(app.store.write(claim).await)?.claimed;
    let count = claimed.len();
    // The tasks of one claim run at once: their finishing batches meet in
    // the store's group commit, one transaction for many erasures.
    let mut running = tokio::task::JoinSet::new();
    for task in claimed {
        let app = app.clone();
        running.spawn(async move { run_one(&app, task, now).await });
    }
    while let Some(done) = running.join_next().await {
        if done.is_err() {
            tracing::error!(
                "a task stopped abnormally; its lease will run out and it will run again"
            );
        }
    }
    Ok(count)
}

async fn run_one(app: &App, task: TaskRecord, now: OffsetDateTime) {
    let at = micros(now);
    let result = execute(app, &task, at).await;
    // Whoever waits on this task's request on this node looks again (a
    // waiter on another node looks on its own, every 100 ms).
    app.requests_settled.notify_waiters();
    let failed = match result {
        Ok(()) => return,
        Err(AppError::LeaseLost) => {
            tracing::info!(
                task = task.id,
                "a task's lease passed to another worker; its work here was undone"
            );
            return;
        }
        Err(e) => e,
    };
    let transient = matches!(
        failed,
        AppError::Unavailable
            | AppError::KeyUnavailable(_)
            | AppError::MailUnavailable(_)
            | AppError::RequestChanged
            | AppError::Connector {
                transient: true,
                ..
            }
    );
    let error = match &failed {
        // Which system failed and why, for the request's view.
        AppError::Connector { .. } => format!("{}: {failed}", failed.code()),
        _ => failed.code().to_string(),
    };
    let outcome = if transient && task.attempts < MAX_ATTEMPTS {
        TaskOutcome::Retry {
            run_after: at + backoff(task.attempts),
            error,
        }
    } else {
        TaskOutcome::Failed { error }
    };
    tracing::warn!(task = task.id, system = %task.system, code = failed.code(), "a task failed");
    let finish = Batch {
        ops: vec![WriteOp::Request(RequestOp::FinishTask {
            id: task.id,
            owner: app.node.to_string(),
            outcome,
        })],
        audit: vec![],
        outbox: vec![],
    };
    if let Err(e) = written(app.store.write(finish).await) {
        // The lease runs out and the task is claimed again.
        tracing::warn!(
            task = task.id,
            code = e.code(),
            "a failed task could not be recorded"
        );
    }
}

/// One task: the work, the task's completion and the request's new state,
/// in one batch.
async fn execute(app: &App, task: &TaskRecord, at: i64) -> Result<(), AppError> {
    let record = app
        .store
        .request(task.request)
        .await?
        .ok_or_else(|| AppError::NotFound("the task's request is gone".into()))?;
    let mut r = Request::from_record(record)?;
    let finish = WriteOp::Request(RequestOp::FinishTask {
        id: task.id,
        owner: app.node.to_string(),
        outcome: TaskOutcome::Done,
    });
    if r.state != RequestState::InProgress {
        // Cancelled or refused meanwhile: nothing to do.
        return written(
            app.store
                .write(Batch {
                    ops: vec![finish],
                    audit: vec![],
                    outbox: vec![],
                })
                .await,
        )
        .map(drop);
    }
    // Erasure shreds the identities in the vault, rectification replaces
    // them: either way the datasets' tasks still need the old ones.
    let stash = if task.system == VAULT
        && matches!(r.kind, RequestKind::Erasure | RequestKind::Rectification)
        && !app.policy.document.datasets.is_empty()
    {
        stash_of(app, &r).await?
    } else {
        Identities::new()
    };
    let effects = if task.system == VAULT {
        work::carry_out(app, &r, at).await?
    } else {
        systems::carry_out(app, &r, &task.system, at).await?
    };
    // The request completes with the last of its tasks. Tasks of one
    // request that finish at once read the same version: one commits, the
    // others are refused (`RequestChanged`) and fold their outcome into the
    // request again, without doing their work twice.
    for _ in 0..16 {
        let written_now = finish_with(app, task, &r, &stash, &effects, at).await;
        match written_now {
            Err(AppError::RequestChanged) => {
                let record = app
                    .store
                    .request(task.request)
                    .await?
                    .ok_or_else(|| AppError::NotFound("the task's request is gone".into()))?;
                r = Request::from_record(record)?;
                if r.state != RequestState::InProgress {
                    return Err(AppError::RequestChanged);
                }
            }
            other => return other,
        }
    }
    Err(AppError::RequestChanged)
}

/// The task's effects, its completion and the request's new outcome (and
/// state, for the last task) in one batch.
async fn finish_with(
    app: &App,
    task: &TaskRecord,
    r: &Request,
    stash: &Identities,
    effects: &work::Effects,
    at: i64,
) -> Result<(), AppError> {
    let mut r = r.clone();
    if !stash.is_empty() {
        let mut sealed = super::stored::open(app, &r.record)?;
        for (name, values) in stash {
            sealed
                .identities
                .entry(name.clone())
                .or_default()
                .extend(values.iter().cloned());
        }
        let key = super::stored::request_key(app, &r.record)?;
        r.record.sealed = super::stored::seal(&key, &r.record.id, &sealed)?;
    }
    let expected = r.record.version;
    r.meta.outcome = Some(merge(r.meta.outcome.take(), effects.outcome.clone()));
    let others_open = app
        .store
        .tasks_of(r.record.id)
        .await?
        .iter()
        .any(|t| t.id != task.id && t.state != "done");
    let mut ops = effects.ops.clone();
    ops.push(WriteOp::Request(RequestOp::FinishTask {
        id: task.id,
        owner: app.node.to_string(),
        outcome: TaskOutcome::Done,
    }));
    let mut audit = effects.audit.clone();
    let mut outbox = effects.outbox.clone();
    if !others_open {
        let partially = r.meta.outcome.as_ref().is_some_and(|o| !o.kept.is_empty());
        let event = if partially {
            RequestEvent::CompletePartially
        } else {
            RequestEvent::Complete
        };
        super::advance(&mut r, event)?;
        audit.push(super::entry(
            &format!("task:{}", task.system),
            AuditAction::RequestComplete,
            r.record.subject,
            r.state.as_str(),
            Some(format!("request={}", r.record.id)),
            at,
        ));
        outbox.push(super::request_event(&r, at));
    }
    ops.push(WriteOp::Request(RequestOp::Update {
        record: r.to_record(at)?,
        expected_version: expected,
    }));
    written(app.store.write(Batch { ops, audit, outbox }).await).map(drop)
}

/// The identities the datasets need, read from the live subject before the
/// vault shreds them; they are sealed into the request (under the
/// request's own key) in the batch that erases the subject.
async fn stash_of(app: &App, r: &Request) -> Result<Identities, AppError> {
    let Some(id) = r.record.subject else {
        return Ok(Identities::new());
    };
    let Some(subject) = app.store.subject(id).await? else {
        return Ok(Identities::new());
    };
    systems::of_subject(app, &subject)
}

fn merge(before: Option<Outcome>, now: Outcome) -> Outcome {
    let mut out = before.unwrap_or_default();
    out.found |= now.found;
    out.kept.extend(now.kept);
    out.recipients_told.extend(now.recipients_told);
    out.reports.extend(now.reports);
    // A task run again (after a crash or a conflict) replaces its own line.
    for s in now.systems {
        out.systems.retain(|x| x.dataset != s.dataset);
        out.by_hand.retain(|x| x.dataset != s.dataset);
        out.systems.push(s);
    }
    out.by_hand.extend(now.by_hand);
    out
}

/// Runs tasks until `stop` resolves: woken at once when work is queued on
/// this node, and at least every `settings.idle` for work queued elsewhere
/// or retries falling due. Finishes the task under way before returning.
pub async fn runner(
    app: App,
    settings: RunnerSettings,
    stop: impl std::future::Future<Output = ()>,
) {
    tokio::pin!(stop);
    // Expiry is checked at most every minute (sooner when the setting is
    // shorter, as in tests): it is a date, not a queue.
    let expiry_every = (settings.unverified_expiry / 2).min(Duration::from_secs(60));
    let mut last_expiry: Option<std::time::Instant> = None;
    loop {
        if last_expiry.is_none_or(|t| t.elapsed() >= expiry_every) {
            last_expiry = Some(std::time::Instant::now());
            let now = OffsetDateTime::now_utc();
            match super::unverified::expire_unverified(&app, settings.unverified_expiry, now).await
            {
                Ok(0) => {}
                Ok(n) => tracing::info!(expired = n, "unverified requests expired"),
                Err(e) => {
                    tracing::warn!(code = e.code(), "unverified requests could not be expired")
                }
            }
        }
        let ran = match run_due(&app, &settings, OffsetDateTime::now_utc()).await {
            Ok(n) => n,
            Err(e) => {
                tracing::warn!(code = e.code(), "the task runner could not claim work");
                0
            }
        };
        if ran > 0 {
            continue;
        }
        tokio::select! {
            () = &mut stop => return,
            () = app.tasks_queued.notified() => {}
            () = tokio::time::sleep(settings.idle) => {}
        }
    }
}
