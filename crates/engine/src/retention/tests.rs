//! The sweep, holds and the report against a real store (SQLite in a
//! scratch folder), with the clock injected: every call is given its `now`.

use super::holds::{self, HoldRequest, HoldScope};
use super::report;
use super::sweep::{self, SweepSettings, SweepSummary};
use crate::collect::{self, CollectRequest, RelationshipRequest};
use crate::ids::SubjectId;
use crate::{App, AppError, Principal, Role};
use custodian_vault::audit::AuditKey;
use custodian_vault::crypto::{Kek, Keyring, Secret, new_id};
use custodian_vault::store::retention::RetentionOp;
use custodian_vault::store::{Batch, Location, Store, WriteOp, now_micros};
use serde_json::json;
use time::macros::datetime;
use time::{Duration, OffsetDateTime};
use uuid::Uuid;

const T0: OffsetDateTime = datetime!(2026-01-15 10:00 UTC);

async fn app_with(policy_source: &str, path: &std::path::Path, audit: &AuditKey) -> App {
    let keys = Keyring::new(
        vec![Kek::new(1, &Secret::from_bytes([1; 32])).unwrap()],
        1,
        &Secret::from_bytes([2; 32]),
        &Secret::from_bytes([4; 32]),
    )
    .with_audit_key(audit.clone());
    let store = Store::open(&Location::Sqlite(path.to_path_buf()), true, audit.clone())
        .await
        .unwrap();
    let policy = custodian_policy::load("p.toml", policy_source).unwrap();
    App::new(store, keys, policy, policy_source.to_string())
}

struct Scratch {
    path: std::path::PathBuf,
    audit: AuditKey,
}

impl Scratch {
    fn new() -> Scratch {
        let dir = std::env::temp_dir().join(format!("custodian-retention-{}", new_id()));
        Scratch {
            path: dir.join("custodian.db"),
            audit: AuditKey::new(&Secret::from_bytes([3; 32])),
        }
    }

    async fn app(&self) -> App {
        app_with(custodian_policy::REFERENCE_POLICY, &self.path, &self.audit).await
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if let Some(dir) = self.path.parent() {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

fn admin() -> Principal {
    Principal {
        key_id: "ck_test".into(),
        role: Role::Admin,
        purposes: Vec::new(),
        recipient: None,
    }
}

async fn collect(app: &App, purpose: &str, data: serde_json::Value, at: OffsetDateTime) -> Uuid {
    let req: CollectRequest =
        serde_json::from_value(json!({"purpose": purpose, "data": data})).unwrap();
    collect::collect_new(app, &admin(), req, at)
        .await
        .unwrap()
        .id
}

async fn relationship(
    app: &App,
    subject: Uuid,
    kind: &str,
    started: OffsetDateTime,
    ended: Option<OffsetDateTime>,
    at: OffsetDateTime,
) -> Uuid {
    relationship_with(app, subject, None, kind, started, ended, at).await
}

/// Records a relationship, or updates the one with id `id`.
async fn relationship_with(
    app: &App,
    subject: Uuid,
    id: Option<Uuid>,
    kind: &str,
    started: OffsetDateTime,
    ended: Option<OffsetDateTime>,
    at: OffsetDateTime,
) -> Uuid {
    let rfc = |t: OffsetDateTime| {
        t.format(&time::format_description::well_known::Rfc3339)
            .unwrap()
    };
    let req: RelationshipRequest = serde_json::from_value(json!({
        "kind": kind,
        "status": if ended.is_some() { "ended" } else { "active" },
        "started_at": rfc(started),
        "ended_at": ended.map(rfc),
        "id": id,
    }))
    .unwrap();
    collect::put_relationship(app, &admin(), SubjectId::new(subject), req, at)
        .await
        .unwrap()
        .id
}

async fn consent(app: &App, subject: Uuid, purpose: &str, action: &str, at: OffsetDateTime) {
    let req: crate::consent::ConsentRequest = serde_json::from_value(json!({
        "subject": subject, "purpose": purpose, "channel": "email", "action": action,
        "evidence": {"wording": "Send me the newsletter"},
    }))
    .unwrap();
    crate::consent::record(app, &admin(), req, at)
        .await
        .unwrap();
}

async fn sweep_at(app: &App, at: OffsetDateTime) -> SweepSummary {
    sweep::run_as(app, "test", &SweepSettings::default(), at, &mut |_| {})
        .await
        .unwrap()
}

async fn fields_of(app: &App, id: Uuid) -> Vec<String> {
    let s = app.store.subject(id).await.unwrap().unwrap();
    s.fields.iter().map(|f| f.name.clone()).collect()
}

async fn shredded(app: &App, id: Uuid) -> bool {
    let s = app.store.subject(id).await.unwrap().unwrap();
    s.wrapped_key.is_none() && s.fields.is_empty()
}

/// `(action, subject, reason)` of every audit entry.
async fn audit(app: &App) -> Vec<(String, Option<Uuid>, Option<String>)> {
    app.store
        .audit_page(0, 100_000)
        .await
        .unwrap()
        .into_iter()
        .map(|e| (e.draft.action, e.draft.subject, e.draft.reason))
        .collect()
}

fn day(n: i64) -> Duration {
    Duration::days(n)
}

#[tokio::test]
async fn each_kind_of_clock_erases_its_data_when_it_runs_out_and_not_before() {
    let scratch = Scratch::new();
    let app = scratch.app().await;

    // Collection: feedback is kept one year from when it was given.
    let feedback = collect(&app, "seek-feedback", json!({"comments": "fine"}), T0).await;
    // Last activity: postal marketing keeps a name two years from the
    // person's last activity (here a later address change).
    let postal = collect(&app, "postal-marketing", json!({"full_name": "Ada"}), T0).await;
    let moved = T0 + day(100);
    let more: CollectRequest = serde_json::from_value(
        json!({"purpose": "postal-marketing", "data": {"postal_address": "1 Road"}}),
    )
    .unwrap();
    collect::collect_more(&app, &admin(), SubjectId::new(postal), more, moved)
        .await
        .unwrap();
    // A request closed: an enquiry is kept two years after it was answered.
    let enquiry = collect(
        &app,
        "provide-requested-services",
        json!({"enquiry": "a question"}),
        T0,
    )
    .await;
    let answered = T0 + day(10);
    relationship(&app, enquiry, "enquiry", T0, Some(answered), answered).await;
    // Consent withdrawal: 30 days after the consent is withdrawn.
    let newsletter = collect(
        &app,
        "requested-communications",
        json!({"email": "ada@example.org"}),
        T0,
    )
    .await;
    consent(&app, newsletter, "requested-communications", "grant", T0).await;
    let withdrawn = T0 + day(200);
    consent(
        &app,
        newsletter,
        "requested-communications",
        "withdraw",
        withdrawn,
    )
    .await;
    // The end of the accounting period of a transaction: an order on 15
    // January 2026 falls in the year to 31 March 2026; kept six years from then.
    let order = collect(
        &app,
        "process-orders",
        json!({"order_reference": "O-1"}),
        T0,
    )
    .await;
    relationship(&app, order, "order", T0, Some(T0), T0).await;
    // The end of a relationship: an account's data is kept while it runs.
    let account = collect(&app, "account-management", json!({"username": "ada"}), T0).await;
    let running = relationship(&app, account, "account", T0, None, T0).await;

    // In the order they fall due; each is checked a second before and after.
    let cases = [
        (
            newsletter,
            datetime!(2026-09-02 10:00 UTC),
            "marketing-consent",
        ),
        (feedback, datetime!(2027-01-15 10:00 UTC), "feedback-1y"),
        (enquiry, datetime!(2028-01-25 10:00 UTC), "enquiry-2y"),
        (
            postal,
            datetime!(2028-04-25 10:00 UTC),
            "marketing-inactive-2y",
        ),
        (order, datetime!(2032-04-01 0:00 UTC), "accounting-6y"),
    ];
    for (subject, expires, rule) in cases {
        let before = sweep_at(&app, expires - Duration::seconds(1)).await;
        assert!(!shredded(&app, subject).await, "{rule}: {before:?}");
        let after = sweep_at(&app, expires + Duration::seconds(1)).await;
        assert!(shredded(&app, subject).await, "{rule}: {after:?}");
        assert_eq!(
            after.by_rule.get(rule),
            Some(&(fields_count(rule) as u64)),
            "{rule}: {after:?}"
        );
        let entries = audit(&app).await;
        let erased: Vec<_> = entries
            .iter()
            .filter(|(a, s, _)| a == "retention.erase" && *s == Some(subject))
            .collect();
        assert_eq!(erased.len(), fields_count(rule), "{rule}: {erased:?}");
        assert!(
            erased
                .iter()
                .all(|(_, _, r)| r.as_deref().unwrap().starts_with(&format!("rule={rule} "))),
            "{erased:?}"
        );
        assert!(
            entries
                .iter()
                .any(|(a, s, _)| a == "retention.shred" && *s == Some(subject)),
            "{rule}"
        );
    }
    // The account still runs: its data has no expiry yet, however late.
    sweep_at(&app, T0 + day(365 * 50)).await;
    assert_eq!(fields_of(&app, account).await, ["username"]);
    // Once it ends, the longest ground (six years, contract obligations) runs.
    let closed = T0 + day(400);
    relationship_with(
        &app,
        account,
        Some(running),
        "account",
        T0,
        Some(closed),
        closed,
    )
    .await;
    sweep_at(&app, closed + day(365 * 6 - 10)).await;
    assert_eq!(fields_of(&app, account).await, ["username"]);
    let s = sweep_at(&app, closed + day(365 * 6 + 2)).await;
    assert_eq!(s.by_rule.get("contract-6y"), Some(&1), "{s:?}");
    assert!(shredded(&app, account).await);
}

fn fields_count(rule: &str) -> usize {
    match rule {
        "marketing-inactive-2y" => 2,
        _ => 1,
    }
}

#[tokio::test]
async fn several_purposes_on_one_datum_keep_it_for_the_longest_and_others_go_first() {
    let scratch = Scratch::new();
    let app = scratch.app().await;
    // A name and comments given as feedback (one year); the person then
    // orders, and complete-transactions keeps the name (but not the
    // comments) for the accounting period.
    let id = collect(
        &app,
        "seek-feedback",
        json!({"full_name": "Ada", "comments": "fine"}),
        T0,
    )
    .await;
    relationship(&app, id, "order", T0, Some(T0), T0).await;
    let s = sweep_at(&app, T0 + day(366)).await;
    assert_eq!(s.data_erased, 1, "{s:?}");
    assert_eq!(fields_of(&app, id).await, ["full_name"]);
    let row = app.store.expiry_of(id).await.unwrap().unwrap();
    assert_eq!(row.data.len(), 1);
    assert_eq!(row.data[0].rule, "accounting-6y");
    let s = sweep_at(&app, datetime!(2032-04-01 0:00 UTC) + Duration::seconds(1)).await;
    assert_eq!((s.data_erased, s.subjects_shredded), (1, 1), "{s:?}");
    assert!(shredded(&app, id).await);
}

#[tokio::test]
async fn a_policy_that_shortens_retention_recomputes_the_expiries_it_affects() {
    let scratch = Scratch::new();
    let app = scratch.app().await;
    let id = collect(&app, "seek-feedback", json!({"comments": "fine"}), T0).await;
    let four_months = T0 + day(122);
    // Under the policy it was collected with, feedback is kept a year.
    sweep_at(&app, four_months).await;
    assert_eq!(fields_of(&app, id).await, ["comments"]);
    let shorter = custodian_policy::REFERENCE_POLICY
        .replacen("version = \"2.2\"", "version = \"2.3\"", 1)
        .replacen(
            "id = \"feedback-1y\"\ndescription = \"One year after you give it\"\nduration = \"1 year\"",
            "id = \"feedback-1y\"\ndescription = \"Three months after you give it\"\nduration = \"3 months\"",
            1,
        );
    assert_ne!(shorter, custodian_policy::REFERENCE_POLICY);
    drop(app);
    let app = app_with(&shorter, &scratch.path, &scratch.audit).await;
    // The stored expiry (a year) is not yet due; the new policy's is.
    assert!(
        app.store
            .due_page(now_of(four_months), None, 10)
            .await
            .unwrap()
            .is_empty()
    );
    sweep::note_policy(&app).await.unwrap();
    let s = sweep_at(&app, four_months).await;
    assert_eq!(s.by_rule.get("feedback-1y"), Some(&1), "{s:?}");
    assert!(shredded(&app, id).await);
}

fn now_of(t: OffsetDateTime) -> i64 {
    crate::collect::micros(t)
}

#[tokio::test]
async fn a_hold_keeps_due_data_until_released_and_the_report_says_which_hold() {
    let scratch = Scratch::new();
    let app = scratch.app().await;
    let id = collect(&app, "seek-feedback", json!({"comments": "fine"}), T0).await;
    let hold = holds::set_hold_as(
        &app,
        "dpo",
        HoldRequest {
            scope: HoldScope::Category,
            target: "feedback".into(),
            reason: "a claim about the service".into(),
            ends_at: None,
        },
        T0,
    )
    .await
    .unwrap();
    let late = T0 + day(400);
    let s = sweep_at(&app, late).await;
    assert_eq!((s.data_erased, s.data_held), (0, 1), "{s:?}");
    assert_eq!(fields_of(&app, id).await, ["comments"]);
    // Held with no end: the row leaves the due index until the release.
    assert!(
        app.store
            .due_page(now_of(late), None, 10)
            .await
            .unwrap()
            .is_empty()
    );
    let r = report::report_as(&app, Some("30d"), late).await.unwrap();
    assert_eq!(r.holds.len(), 1);
    assert_eq!(r.held.len(), 1);
    assert_eq!((r.held[0].subject, r.held[0].hold), (id, hold.id));
    holds::release_hold_as(&app, "dpo", hold.id, late)
        .await
        .unwrap();
    let s = sweep_at(&app, late).await;
    assert_eq!((s.data_erased, s.data_held), (1, 0), "{s:?}");
    assert!(shredded(&app, id).await);
    let entries = audit(&app).await;
    for action in ["retention.hold", "retention.release"] {
        assert_eq!(
            entries.iter().filter(|(a, _, _)| a == action).count(),
            1,
            "{action}"
        );
    }
    // A released hold cannot be released again.
    assert!(matches!(
        holds::release_hold_as(&app, "dpo", hold.id, late).await,
        Err(AppError::NotFound(_))
    ));
}

#[tokio::test]
async fn a_subject_hold_with_an_end_keeps_the_data_until_then() {
    let scratch = Scratch::new();
    let app = scratch.app().await;
    let id = collect(&app, "seek-feedback", json!({"comments": "fine"}), T0).await;
    let ends = T0 + day(500);
    holds::set_hold_as(
        &app,
        "dpo",
        HoldRequest {
            scope: HoldScope::Subject,
            target: id.to_string(),
            reason: "litigation".into(),
            ends_at: Some(
                ends.format(&time::format_description::well_known::Rfc3339)
                    .unwrap(),
            ),
        },
        T0,
    )
    .await
    .unwrap();
    sweep_at(&app, T0 + day(400)).await;
    assert_eq!(fields_of(&app, id).await, ["comments"]);
    let row = app.store.expiry_of(id).await.unwrap().unwrap();
    assert_eq!(row.due_at, Some(now_of(ends)));
    let s = sweep_at(&app, ends + Duration::seconds(1)).await;
    assert_eq!(s.data_erased, 1, "{s:?}");
}

#[tokio::test]
async fn an_interrupted_sweep_is_resumed_and_nothing_is_erased_twice() {
    let scratch = Scratch::new();
    let app = scratch.app().await;
    let mut ids = Vec::new();
    for i in 0..5 {
        ids.push(
            collect(
                &app,
                "seek-feedback",
                json!({"comments": format!("c{i}")}),
                T0,
            )
            .await,
        );
    }
    let late = T0 + day(400);
    let settings = SweepSettings {
        batch: 2,
        max_batches: Some(1),
        ..SweepSettings::default()
    };
    let first = sweep::run_as(&app, "test", &settings, late, &mut |_| {})
        .await
        .unwrap();
    assert_eq!((first.data_erased, first.finished), (2, false), "{first:?}");
    // A sweep that died holding the lease: no other runs until it ends.
    let dead = Batch {
        ops: vec![WriteOp::Retention(RetentionOp::ClaimSweep {
            owner: "a node that died".into(),
            now: now_micros(),
            lease_until: now_micros() + 300_000,
        })],
        ..Batch::default()
    };
    app.store.write(dead).await.unwrap().unwrap();
    assert!(matches!(
        sweep::run_as(&app, "test", &SweepSettings::default(), late, &mut |_| {}).await,
        Err(AppError::SweepBusy)
    ));
    tokio::time::sleep(std::time::Duration::from_millis(400)).await;
    let mut batches = Vec::new();
    let rest = sweep::run_as(
        &app,
        "test",
        &SweepSettings {
            batch: 2,
            ..SweepSettings::default()
        },
        late,
        &mut |s| batches.push(s.batches),
    )
    .await
    .unwrap();
    assert_eq!((rest.data_erased, rest.finished), (3, true), "{rest:?}");
    assert_eq!(batches, [1, 2]);
    let entries = audit(&app).await;
    for id in ids {
        assert!(shredded(&app, id).await);
        assert_eq!(
            entries
                .iter()
                .filter(|(a, s, _)| a == "retention.erase" && *s == Some(id))
                .count(),
            1
        );
    }
}

#[tokio::test]
async fn a_dry_run_erases_nothing_and_the_report_lists_what_expires_when() {
    let scratch = Scratch::new();
    let app = scratch.app().await;
    let id = collect(&app, "seek-feedback", json!({"comments": "fine"}), T0).await;
    let soon = T0 + day(350);
    let r = report::report_as(&app, Some("30d"), soon).await.unwrap();
    assert_eq!(r.expiring.len(), 1, "{r:?}");
    assert_eq!(r.expiring[0].subject, id);
    assert_eq!(r.expiring[0].rule, "feedback-1y");
    assert_eq!(r.expiring[0].expires_at, "2027-01-15T10:00:00Z");
    assert!(
        r.expiring[0].why.contains("1 year"),
        "{}",
        r.expiring[0].why
    );
    assert!(
        report::report_as(&app, Some("2d"), soon)
            .await
            .unwrap()
            .expiring
            .is_empty()
    );
    assert!(matches!(
        report::report_as(&app, Some("soon"), soon).await,
        Err(AppError::Invalid(_))
    ));
    let dry = sweep::run_as(
        &app,
        "test",
        &SweepSettings {
            dry_run: true,
            ..SweepSettings::default()
        },
        T0 + day(400),
        &mut |_| {},
    )
    .await
    .unwrap();
    assert_eq!(dry.data_erased, 1);
    assert_eq!(fields_of(&app, id).await, ["comments"]);
}

#[tokio::test]
async fn reviews_are_recorded_audited_and_move_the_next_review() {
    let scratch = Scratch::new();
    let app = scratch.app().await;
    // Every rule of the reference policy was last reviewed on 1 December
    // 2026: a year later they are all due.
    let later = datetime!(2027-11-20 0:00 UTC);
    let r = report::report_as(&app, Some("30d"), later).await.unwrap();
    assert_eq!(
        r.reviews_due.len(),
        app.policy.document.retention.len(),
        "{:?}",
        r.reviews_due
    );
    let done = report::review_as(
        &app,
        "dpo",
        "feedback-1y",
        Some("still needed".into()),
        later,
    )
    .await
    .unwrap();
    assert_eq!(done.next_due.as_deref(), Some("2028-11-20"));
    let r = report::report_as(&app, Some("30d"), later).await.unwrap();
    assert!(r.reviews_due.iter().all(|v| v.rule != "feedback-1y"));
    assert!(
        audit(&app)
            .await
            .iter()
            .any(|(a, _, r)| a == "retention.review" && r.as_deref() == Some("rule=feedback-1y"))
    );
    assert!(matches!(
        report::review_as(&app, "dpo", "no-such-rule", None, later).await,
        Err(AppError::NotFound(_))
    ));
}

#[tokio::test]
async fn a_hold_set_while_an_erasure_request_is_pending_keeps_the_data_until_released() {
    let scratch = Scratch::new();
    let app = scratch.app().await;
    let id = collect(
        &app,
        "seek-feedback",
        json!({"email": "ada@example.org", "comments": "fine"}),
        T0,
    )
    .await;
    let req: crate::requests::NewRequest = serde_json::from_value(json!({
        "kind": "erasure", "email": "ada@example.org",
        "identity": {"method": "security-questions", "evidence": "answered two questions"},
    }))
    .unwrap();
    let asked = T0 + day(5);
    let request = crate::requests::submit(&app, &admin(), req, asked)
        .await
        .unwrap();
    // The request waits for its task; meanwhile a claim arrives.
    let hold = holds::set_hold_as(
        &app,
        "dpo",
        HoldRequest {
            scope: HoldScope::Subject,
            target: id.to_string(),
            reason: "claim 2026-114".into(),
            ends_at: None,
        },
        asked,
    )
    .await
    .unwrap();
    let ran = crate::requests::tasks::run_due(&app, &Default::default(), asked)
        .await
        .unwrap();
    assert_eq!(ran, 1);
    let stored = app.store.request(request.id).await.unwrap().unwrap();
    assert_eq!(stored.state, "partially-completed");
    assert!(stored.meta.contains("claim 2026-114"), "{}", stored.meta);
    assert_eq!(fields_of(&app, id).await.len(), 2);
    // The sweep keeps it while the hold lasts, and erases it once released:
    // after an erasure request no ground but a legal obligation remains.
    let s = sweep_at(&app, asked + day(1)).await;
    assert_eq!((s.data_erased, s.data_held), (0, 2), "{s:?}");
    holds::release_hold_as(&app, "dpo", hold.id, asked + day(2))
        .await
        .unwrap();
    let s = sweep_at(&app, asked + day(2)).await;
    assert_eq!((s.data_erased, s.subjects_shredded), (2, 1), "{s:?}");
    assert!(shredded(&app, id).await);
}
