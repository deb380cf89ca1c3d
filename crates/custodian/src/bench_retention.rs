//! The retention part of `custodian bench`: the sweep over a store holding
//! 1,000,000 and then 10,000,000 data with the same 10,000 due in each, to
//! show that its cost follows what is due, not what is held; and data
//! erased per second. It runs in process against a fresh embedded store
//! (the sweep is background work, not an HTTP call): subjects of ten data
//! each are written straight through the store, with their expiries as the
//! engine computes them, the due ones spread evenly among the rest.

use custodian_engine::App;
use custodian_engine::retention::sweep::{self, SweepSettings};
use custodian_vault::audit::AuditKey;
use custodian_vault::crypto::{Kek, Keyring, Secret, new_id};
use custodian_vault::store::retention::RetentionOp;
use custodian_vault::store::{
    Batch, Location, Provenance, Store, StoredField, SubjectRecord, WriteOp,
};
use std::path::Path;
use std::time::{Duration, Instant};

/// Ten data per subject: seven of analytics (kept 13 months from
/// collection) and three given as feedback (a year from collection).
const FIELDS: [(&str, &str); 10] = [
    ("ip_address", "analytics-research"),
    ("referrer", "analytics-research"),
    ("landing_page", "analytics-research"),
    ("user_agent", "analytics-research"),
    ("visited_at", "analytics-research"),
    ("features_used", "analytics-research"),
    ("last_active_at", "analytics-research"),
    ("full_name", "seek-feedback"),
    ("email", "seek-feedback"),
    ("comments", "seek-feedback"),
];

/// Sweeps timed per store size; the figure is their median.
const ROUNDS: usize = 5;

pub struct SweepFigures {
    pub stored: usize,
    pub due: usize,
    pub seeded_in: Duration,
    /// The median of the sweeps' times.
    pub swept_in: Duration,
    pub erased: u64,
    pub shredded: u64,
}

/// Seeds a fresh store with `stored` data, `due` of them past their
/// retention, and times the sweep [`ROUNDS`] times (fresh due data before
/// each one after the first).
pub fn sweep_figures(dir: &Path, stored: usize, due: usize) -> Result<SweepFigures, String> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    rt.block_on(async {
        let audit = AuditKey::new(&Secret::random());
        let keys = Keyring::new(
            vec![Kek::new(1, &Secret::random()).map_err(|e| e.to_string())?],
            1,
            &Secret::random(),
            &Secret::random(),
        )
        .with_audit_key(audit.clone());
        let path = dir.join(format!("retention-{stored}.db"));
        let store = Store::open(&Location::Sqlite(path.clone()), true, audit)
            .await
            .map_err(|e| e.to_string())?;
        let policy = custodian_policy::reference().map_err(|e| e.to_string())?;
        let app = App::new(
            store,
            keys,
            policy,
            custodian_policy::REFERENCE_POLICY.to_string(),
        );
        // The server records its policy's retention when it starts; without
        // that, the first sweep would work out every subject's expiries again.
        sweep::note_policy(&app).await.map_err(|e| e.to_string())?;
        let now = time::OffsetDateTime::now_utc();
        let at = custodian_engine::collect::micros(now);
        let subjects = stored / FIELDS.len();
        let due_subjects = (due / FIELDS.len()).max(1);
        let every = (subjects / due_subjects).max(1);
        let t = Instant::now();
        seed(&app, 0, subjects, at, |n| {
            n % every == 0 && n / every < due_subjects
        })
        .await?;
        let seeded_in = t.elapsed();
        // Several sweeps, each over fresh due data (the same number, added
        // among what is held), and the median time: one sweep of a few
        // hundred milliseconds swings with the machine's other work.
        let mut times = Vec::with_capacity(ROUNDS);
        let mut erased = Vec::with_capacity(ROUNDS);
        let mut shredded = 0;
        for round in 0..ROUNDS {
            if round > 0 {
                seed(
                    &app,
                    subjects + round * due_subjects,
                    due_subjects,
                    at,
                    |_| true,
                )
                .await?;
            }
            let t = Instant::now();
            let summary = sweep::run_as(&app, "bench", &SweepSettings::default(), now, &mut |_| {})
                .await
                .map_err(|e| e.to_string())?;
            times.push(t.elapsed());
            erased.push(summary.data_erased);
            shredded = summary.subjects_shredded;
        }
        let mut sorted = times.clone();
        sorted.sort();
        let swept_in = sorted.get(sorted.len() / 2).copied().unwrap_or_default();
        println!(
            "{} sweeps of {} due among {} data: {} s; median {:.2} s",
            ROUNDS,
            due_subjects * FIELDS.len(),
            subjects * FIELDS.len(),
            times
                .iter()
                .map(|t| format!("{:.2}", t.as_secs_f64()))
                .collect::<Vec<_>>()
                .join(", "),
            swept_in.as_secs_f64()
        );
        // Every sweep must have erased all that was due; one that did not
        // is reported as the figure, so the caller's check fails on it.
        let expected = (due_subjects * FIELDS.len()) as u64;
        let erased = erased
            .iter()
            .copied()
            .find(|e| *e != expected)
            .unwrap_or(expected);
        drop(app);
        for suffix in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
        }
        Ok(SweepFigures {
            stored: subjects * FIELDS.len(),
            due: due_subjects * FIELDS.len(),
            seeded_in,
            swept_in,
            erased,
            shredded,
        })
    })
}

/// Writes `count` subjects numbered from `first`, those `is_due` says
/// collected ten years ago (due), the others yesterday, with their
/// expiries as the engine computes them.
async fn seed(
    app: &App,
    first: usize,
    count: usize,
    at: i64,
    is_due: impl Fn(usize) -> bool,
) -> Result<(), String> {
    let year: i64 = 365 * 86_400_000_000;
    let mut batch = Batch::default();
    for n in 0..count {
        let collected_at = if is_due(n) {
            at - 10 * year
        } else {
            at - year / 365
        };
        let id = new_id();
        let (key, wrapped) = app.keys.new_data_key(&id).map_err(|e| e.to_string())?;
        let label = first + n;
        let fields: Vec<StoredField> = FIELDS
            .iter()
            .map(|(name, purpose)| StoredField {
                name: (*name).to_string(),
                sealed: key.seal(&id, name, format!("{name} of {label}").as_bytes()),
                provenance: Provenance {
                    channel: "import".into(),
                    agent: None,
                    collected_at,
                    purpose: (*purpose).to_string(),
                    policy_version: "2.2".into(),
                },
            })
            .collect();
        let record = SubjectRecord {
            id,
            wrapped_key: None,
            created_at: collected_at,
            erased_at: None,
            fields,
            state: Default::default(),
        };
        // The expiries as computed when the data was collected.
        let row =
            custodian_engine::retention::assess(app.retention(), &record, &[], collected_at).row;
        batch.ops.push(WriteOp::CreateSubject {
            id,
            wrapped_key: wrapped,
            created_at: collected_at,
            fields: record.fields,
            lookups: Vec::new(),
        });
        batch
            .ops
            .push(WriteOp::Retention(RetentionOp::PutExpiry(row)));
        if batch.ops.len() >= 4_000 || n + 1 == count {
            let full = std::mem::take(&mut batch);
            app.store
                .write(full)
                .await
                .map_err(|e| e.to_string())?
                .map_err(|e| e.to_string())?;
        }
    }
    Ok(())
}
