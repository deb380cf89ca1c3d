//! Carrying out each right in the vault. Each function reads what it needs
//! and returns the effects (write operations, audit entries, outbox events
//! and the outcome) for the task's finishing batch, which commits them with
//! the task's completion in one transaction: nothing is done twice.

use super::stored::{self, Kept, Outcome, Request, Sealed};
use crate::audit_action::AuditAction;
use crate::error::Internal;
use crate::{App, AppError};
use custodian_policy::render::Format;
use custodian_policy::render::access::{Held, access_statement};
use custodian_policy::requests::RequestKind;
use custodian_policy::terms::{FieldType, LegalBasis};
use custodian_policy::values;
use custodian_vault::audit::AuditDraft;
use custodian_vault::crypto::{DataKey, new_id};
use custodian_vault::store::requests::{KeptData, RequestOp};
use custodian_vault::store::{
    ConsentAction, ConsentEvent, OutboxEvent, Provenance, StoredField, SubjectRecord, WriteOp,
};
use serde_json::{Value, json};
use std::collections::BTreeSet;
use uuid::Uuid;

/// What a task's work leaves to commit.
#[derive(Default)]
pub struct Effects {
    pub ops: Vec<WriteOp>,
    pub audit: Vec<AuditDraft>,
    pub outbox: Vec<OutboxEvent>,
    pub outcome: Outcome,
}

fn audit(
    action: AuditAction,
    subject: Option<Uuid>,
    decision: &str,
    reason: Option<String>,
    at: i64,
) -> AuditDraft {
    AuditDraft {
        at,
        actor: "task:vault".into(),
        action: action.into(),
        purpose: None,
        subject,
        decision: decision.into(),
        reason,
    }
}

/// Carries out `r` in the vault.
pub async fn carry_out(app: &App, r: &Request, at: i64) -> Result<Effects, AppError> {
    let sealed = stored::open(app, &r.record)?;
    let subject = match r.record.subject {
        Some(id) => app.store.subject(id).await?,
        None => None,
    };
    // A subject erased since the request came in holds nothing more.
    let live = subject.filter(|s| s.erased_at.is_none() && s.wrapped_key.is_some());
    let mut effects = match (r.kind, live) {
        (RequestKind::Access, s) => access(app, r, s.as_ref(), at).await?,
        (RequestKind::Portability, s) => portability(app, r, s.as_ref(), at)?,
        (_, None) => Effects::default(),
        (RequestKind::Erasure, Some(s)) => erasure(app, &s, at).await?,
        (RequestKind::Rectification, Some(s)) => rectification(app, &s, &sealed, at).await?,
        (RequestKind::Restriction, Some(s)) => restriction(app, &s, true, at).await?,
        (RequestKind::LiftRestriction, Some(s)) => {
            // Art. 18(3): the person is told before the restriction is lifted.
            let mail = crate::mail::OutgoingMail {
                to: sealed.email.clone(),
                subject: "The restriction on your data is being lifted".into(),
                text: format!(
                    "{} is lifting the restriction on the processing of your personal data that you asked for. You may object or ask again.\n",
                    app.policy.document.controller.legal_name
                ),
            };
            app.mailer
                .send(mail)
                .await
                .map_err(|e| AppError::MailUnavailable(e.code()))?;
            restriction(app, &s, false, at).await?
        }
        (RequestKind::Objection, Some(s)) => objection(app, r, &s, at)?,
        (RequestKind::MarketingOptOut, Some(s)) => opt_out(app, r, &s, at)?,
        (RequestKind::SaleOptOut, Some(s)) => sale_opt_out(app, r, &s, at),
    };
    effects.audit.push(audit(
        AuditAction::RequestDone(r.kind),
        r.record.subject,
        "done",
        Some(format!("request={}", r.record.id)),
        at,
    ));
    Ok(effects)
}

/// A subject's sealed fields, opened.
fn opened(app: &App, s: &SubjectRecord) -> Result<(DataKey, Vec<(StoredField, String)>), AppError> {
    let wrapped = s.wrapped_key.as_ref().ok_or(AppError::Erased)?;
    let key = app.data_key(&s.id, wrapped)?;
    let mut out = Vec::with_capacity(s.fields.len());
    for f in &s.fields {
        let plain = key
            .open(&s.id, &f.name, &f.sealed)
            .map_err(|_| AppError::Internal(Internal::DecryptFailed))?;
        let text =
            String::from_utf8(plain).map_err(|_| AppError::Internal(Internal::DecryptFailed))?;
        out.push((f.clone(), text));
    }
    Ok((key, out))
}

fn category_of(app: &App, field: &str) -> Option<String> {
    let c = &app.policy.compiled;
    let fix = c.field(field)?;
    let info = c.fields.get(fix.get())?;
    c.categories.get(info.category.get()).map(|t| t.id.clone())
}

fn provenance_json(p: &Provenance) -> Value {
    json!({
        "source": p.channel, "agent": p.agent, "collected_at": crate::read::rfc3339(p.collected_at),
        "purpose": p.purpose, "policy_version": p.policy_version,
    })
}

/// Art. 15: everything held, decrypted, with provenance, history, the
/// consent ledger and the disclosures made; and the statement of Art.
/// 15(1)-(2) for what is held. JSON and a readable HTML page.
async fn access(
    app: &App,
    r: &Request,
    s: Option<&SubjectRecord>,
    at: i64,
) -> Result<Effects, AppError> {
    let mut data = Vec::new();
    let mut history = Vec::new();
    let mut consents = Vec::new();
    let mut disclosures = Vec::new();
    let mut relationships = Vec::new();
    let mut held = Held {
        categories: Vec::new(),
        purposes: Vec::new(),
        sources: Vec::new(),
    };
    let mut rows = Vec::new();
    if let Some(s) = s {
        let (key, fields) = opened(app, s)?;
        for (f, value) in &fields {
            let category = category_of(app, &f.name);
            data.push(json!({"field": f.name, "category": category, "value": value, "provenance": provenance_json(&f.provenance)}));
            rows.push(vec![
                f.name.clone(),
                category.clone().unwrap_or_default(),
                value.clone(),
                f.provenance.channel.clone(),
                crate::read::rfc3339(f.provenance.collected_at),
                f.provenance.purpose.clone(),
            ]);
            held.categories.extend(category);
            held.purposes.push(f.provenance.purpose.clone());
            held.sources.push(f.provenance.channel.clone());
        }
        for h in app.store.field_history(s.id).await? {
            let plain = key
                .open(&s.id, &h.field.name, &h.field.sealed)
                .map_err(|_| AppError::Internal(Internal::DecryptFailed))?;
            history.push(json!({
                "field": h.field.name, "value": String::from_utf8_lossy(&plain),
                "replaced_at": crate::read::rfc3339(h.replaced_at), "provenance": provenance_json(&h.field.provenance),
            }));
        }
        for rel in &s.state.relationships {
            relationships.push(json!({
                "kind": rel.kind, "status": rel.status, "started_at": crate::read::rfc3339(rel.started_at),
                "ended_at": rel.ended_at.map(crate::read::rfc3339),
            }));
        }
        for e in app
            .store
            .consent_events(&custodian_vault::store::Holder::Subject(s.id))
            .await?
        {
            if let Some(p) = &e.purpose {
                held.purposes.push(p.clone());
            }
            consents.push(json!({
                "at": crate::read::rfc3339(e.at), "purpose": e.purpose, "channel": e.channel,
                "action": e.action.as_str(), "method": e.method, "policy_version": e.policy_version,
            }));
        }
        for d in app.store.disclosures_of(s.id).await? {
            disclosures.push(json!({
                "at": crate::read::rfc3339(d.at), "recipient": d.recipient, "purpose": d.purpose, "decision": d.decision,
            }));
        }
    }
    held.categories.sort();
    held.categories.dedup();
    held.purposes.sort();
    held.purposes.dedup();
    held.sources.sort();
    held.sources.dedup();
    let mut statement = access_statement(&app.policy.document, &held);
    if rows.is_empty() {
        statement.para("We hold no personal data about you in this system.");
    } else {
        statement.heading("The data we hold about you");
        statement.table(
            &[
                "Field",
                "Category",
                "Value",
                "Source",
                "Collected",
                "Purpose",
            ],
            rows,
        );
    }
    let report = json!({
        "request": r.record.id,
        "controller": app.policy.document.controller.legal_name,
        "generated_at": crate::read::rfc3339(at),
        "found": s.is_some(),
        "subject": s.map(|s| s.id),
        "data": data,
        "history": history,
        "relationships": relationships,
        "consents": consents,
        "disclosures": disclosures,
        "statement": statement.write(Format::Markdown),
    });
    let json_bytes = serde_json::to_vec_pretty(&report)
        .map_err(|_| AppError::Internal(Internal::WriteFailed))?;
    let html = statement.write(Format::Html);
    let key = stored::request_key(app, &r.record)?;
    Ok(Effects {
        ops: vec![
            put_report(&key, r.record.id, "json", &json_bytes),
            put_report(&key, r.record.id, "html", html.as_bytes()),
        ],
        outcome: Outcome {
            found: s.is_some(),
            reports: vec!["json".into(), "html".into()],
            ..Outcome::default()
        },
        ..Effects::default()
    })
}

fn put_report(key: &DataKey, id: Uuid, format: &str, bytes: &[u8]) -> WriteOp {
    WriteOp::Request(RequestOp::PutReport {
        request: id,
        format: format.into(),
        sealed: stored::seal_report(key, &id, format, bytes),
    })
}

/// Art. 20: what the person provided or was observed, for purposes resting
/// on consent or contract, as JSON and CSV in one (tar) archive.
fn portability(
    app: &App,
    r: &Request,
    s: Option<&SubjectRecord>,
    _at: i64,
) -> Result<Effects, AppError> {
    let mut items = Vec::new();
    let mut csv = String::from("field,value,source,collected_at,purpose\n");
    if let Some(s) = s {
        let (_, fields) = opened(app, s)?;
        for (f, value) in fields {
            let basis = app
                .policy
                .document
                .purposes
                .iter()
                .find(|p| p.id.as_str() == f.provenance.purpose)
                .map(|p| *p.basis);
            if !matches!(basis, Some(LegalBasis::Consent | LegalBasis::Contract)) {
                continue;
            }
            let collected = crate::read::rfc3339(f.provenance.collected_at);
            csv.push_str(
                &[
                    f.name.as_str(),
                    value.as_str(),
                    f.provenance.channel.as_str(),
                    collected.as_str(),
                    f.provenance.purpose.as_str(),
                ]
                .map(csv_cell)
                .join(","),
            );
            csv.push('\n');
            items.push(json!({"field": f.name, "value": value, "source": f.provenance.channel, "collected_at": collected, "purpose": f.provenance.purpose}));
        }
    }
    let json_bytes = serde_json::to_vec_pretty(&json!({"data": items}))
        .map_err(|_| AppError::Internal(Internal::WriteFailed))?;
    let archive = tar(&[("data.json", &json_bytes), ("data.csv", csv.as_bytes())]);
    let key = stored::request_key(app, &r.record)?;
    Ok(Effects {
        ops: vec![put_report(&key, r.record.id, "archive", &archive)],
        outcome: Outcome {
            found: s.is_some(),
            reports: vec!["archive".into()],
            ..Outcome::default()
        },
        ..Effects::default()
    })
}

/// A CSV cell, quoted when needed; a leading formula character is
/// neutralised so a spreadsheet does not run it.
pub(super) fn csv_cell(text: &str) -> String {
    let text = if text.starts_with(['=', '+', '-', '@']) {
        format!("'{text}")
    } else {
        text.to_string()
    };
    if text.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text
    }
}

/// A POSIX (ustar) archive of small files.
pub fn tar(files: &[(&str, &[u8])]) -> Vec<u8> {
    let mut out = Vec::new();
    for (name, bytes) in files {
        out.extend(tar_entry(name, bytes));
    }
    out.extend(std::iter::repeat_n(0u8, TAR_END));
    out
}

/// The two zero blocks that end a tar archive.
pub const TAR_END: usize = 1024;

/// One file of a tar archive: its header, its bytes, the padding. `name`
/// fits the header's 100 bytes (callers make it so).
pub fn tar_entry(name: &str, bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(512 + bytes.len() + 512);
    let mut header = [0u8; 512];
    let put = |header: &mut [u8; 512], at: usize, text: &[u8]| {
        for (i, b) in text.iter().enumerate() {
            if let Some(slot) = header.get_mut(at + i) {
                *slot = *b;
            }
        }
    };
    // The name field is 100 bytes; a longer name would overwrite the mode.
    let name = name.as_bytes();
    put(&mut header, 0, name.get(..100).unwrap_or(name));
    put(&mut header, 100, b"0000644\0");
    put(&mut header, 108, b"0000000\0");
    put(&mut header, 116, b"0000000\0");
    put(
        &mut header,
        124,
        format!("{:011o}\0", bytes.len()).as_bytes(),
    );
    put(&mut header, 136, b"00000000000\0");
    put(&mut header, 148, b"        ");
    put(&mut header, 156, b"0");
    put(&mut header, 257, b"ustar\x0000");
    let sum: u32 = header.iter().map(|b| u32::from(*b)).sum();
    put(&mut header, 148, format!("{sum:06o}\0 ").as_bytes());
    out.extend_from_slice(&header);
    out.extend_from_slice(bytes);
    let pad = (512 - bytes.len() % 512) % 512;
    out.extend(std::iter::repeat_n(0u8, pad));
    out
}

/// The recipients a subject's data was disclosed to (Art. 19).
async fn recipients_of(app: &App, subject: Uuid) -> Result<Vec<String>, AppError> {
    let mut names = BTreeSet::new();
    for d in app.store.disclosures_of(subject).await? {
        if d.decision == "allowed" || d.decision == "partial" {
            names.insert(d.recipient);
        }
    }
    Ok(names.into_iter().collect())
}

fn tell_recipients(kind: &str, subject: Uuid, recipients: &[String], at: i64) -> Vec<OutboxEvent> {
    recipients
        .iter()
        .map(|name| {
            crate::events::Event::RecipientNotify {
                recipient: name.clone(),
                subject,
                what: kind.into(),
            }
            .outbox(at)
        })
        .collect()
}

/// Art. 17: the data key is destroyed, everything but data kept on an Art.
/// 17(3) ground goes, in one transaction; addresses of a person who objected
/// to direct marketing go onto the suppression list.
async fn erasure(app: &App, s: &SubjectRecord, at: i64) -> Result<Effects, AppError> {
    let (_, fields) = opened(app, s)?;
    let doc = &app.policy.document;
    let held: BTreeSet<String> = fields
        .iter()
        .filter_map(|(f, _)| category_of(app, &f.name))
        .collect();
    let used: BTreeSet<String> = fields
        .iter()
        .map(|(f, _)| f.provenance.purpose.clone())
        .collect();
    let disclosed_for: BTreeSet<String> = app
        .store
        .disclosures_of(s.id)
        .await?
        .into_iter()
        .filter_map(|d| d.purpose)
        .collect();
    // Art. 17(3)(b): a field is kept only where a legal-obligation purpose
    // whose retention rule states the obligation uses its category, and
    // that purpose applies to this person: data was collected or disclosed
    // under it, or the person holds every category it is about (a customer
    // with orders, for accounting records). Anything else is erased.
    let applies = |p: &custodian_policy::model::Purpose| {
        used.contains(p.id.as_str())
            || disclosed_for.contains(p.id.as_str())
            || p.categories.iter().all(|c| held.contains(c.as_str()))
    };
    let statutory = |p: &custodian_policy::model::Purpose| {
        let name = p.retention.as_ref()?;
        let rule = doc
            .retention
            .iter()
            .find(|x| x.id.as_str() == name.as_str())?;
        let obligation = rule.legal_obligation.as_ref()?;
        Some(format!(
            "{obligation} (kept {} from {})",
            rule.duration.as_str(),
            rule.from.as_str()
        ))
    };
    let holds = crate::retention::holds::active_holds(app, at).await?;
    let mut kept = Vec::new();
    let mut kept_fields = Vec::new();
    let new_key = app
        .keys
        .new_data_key(&s.id)
        .map_err(|_| AppError::Internal(Internal::KeyGenerationFailed))?;
    for (f, value) in &fields {
        let Some(category) = category_of(app, &f.name) else {
            continue;
        };
        let ground = doc.purposes.iter().find_map(|p| {
            let fits = *p.basis == LegalBasis::LegalObligation
                && p.categories.iter().any(|c| c.as_str() == category)
                && applies(p);
            if fits {
                statutory(p).map(|g| (p, g))
            } else {
                None
            }
        });
        // A legal hold keeps what it covers through the erasure; the
        // answer says which hold and why, and the retention sweep erases
        // it once the hold is released.
        let held = crate::retention::holds::keeping(&holds, s.id, Some(&category), at);
        let ground = match (ground, held) {
            (Some((p, ground)), _) => Some((p.id.to_string(), ground)),
            (None, Some(h)) => Some((
                f.provenance.purpose.clone(),
                format!("legal hold {}: {}", h.id, h.reason),
            )),
            (None, None) => None,
        };
        if let Some((purpose, ground)) = ground {
            kept.push(Kept {
                field: f.name.clone(),
                purpose,
                ground,
            });
            kept_fields.push(StoredField {
                name: f.name.clone(),
                sealed: new_key.0.seal(&s.id, &f.name, value.as_bytes()),
                provenance: f.provenance.clone(),
            });
        }
    }
    let objected = s
        .state
        .preferences
        .objections
        .iter()
        .any(|o| o.purpose.is_none());
    let mut suppress = Vec::new();
    if objected {
        for (f, value) in &fields {
            let kind = app
                .policy
                .compiled
                .field(&f.name)
                .and_then(|ix| app.policy.compiled.fields.get(ix.get()))
                .map(|i| i.kind);
            if let Some(kind @ (FieldType::Email | FieldType::Phone)) = kind {
                if let Some(k) = values::lookup_key(kind, value) {
                    suppress.push(crate::marketing::suppression_hash(app, kind, &k));
                }
            }
        }
    }
    let recipients = recipients_of(app, s.id).await?;
    let keep = (!kept_fields.is_empty()).then(|| KeptData {
        wrapped_key: new_key.1.clone(),
        fields: kept_fields,
    });
    let mut outbox = tell_recipients("erasure", s.id, &recipients, at);
    outbox.push(
        crate::events::Event::SubjectErased {
            subject: s.id,
            kept: kept.len(),
        }
        .outbox(at),
    );
    Ok(Effects {
        ops: vec![WriteOp::Request(RequestOp::EraseSubject {
            subject: s.id,
            at,
            kek_id: app.keys.current_kek(),
            keep,
            suppress,
        })],
        audit: vec![audit(
            AuditAction::SubjectErase,
            Some(s.id),
            "erased",
            Some(format!("kept={}", kept.len())),
            at,
        )],
        outbox,
        outcome: Outcome {
            found: true,
            kept,
            recipients_told: recipients,
            ..Outcome::default()
        },
    })
}

/// Art. 16: the corrected values replace the old, which move to the history.
async fn rectification(
    app: &App,
    s: &SubjectRecord,
    sealed: &Sealed,
    at: i64,
) -> Result<Effects, AppError> {
    let checked = crate::collect::check_any(app, &sealed.fields)?;
    let (key, fields) = opened(app, s)?;
    let mut stored_fields = Vec::new();
    let mut lookups = Vec::new();
    for c in &checked {
        // The value keeps the purpose it was collected for; a field never
        // held before is refused (a rectification corrects, it does not collect).
        let Some((old, _)) = fields.iter().find(|(f, _)| f.name == c.field) else {
            return Err(AppError::Invalid(format!(
                "`{}` is not held about this person; nothing to correct",
                c.field
            )));
        };
        let provenance = Provenance {
            channel: "rights-request".into(),
            agent: None,
            collected_at: at,
            purpose: old.provenance.purpose.clone(),
            policy_version: app.policy_version().to_string(),
        };
        stored_fields.push(StoredField {
            name: c.field.clone(),
            sealed: key.seal(&s.id, &c.field, c.value.as_bytes()),
            provenance,
        });
        if let Some(k) = values::lookup_key(c.kind, &c.value) {
            lookups.push(custodian_vault::store::Lookup {
                kind: c.field.clone(),
                hash: app.keys.blind_index(&c.field, &k),
            });
        }
    }
    let recipients = recipients_of(app, s.id).await?;
    Ok(Effects {
        ops: vec![WriteOp::PutFields {
            subject: s.id,
            fields: stored_fields,
            lookups,
            at,
        }],
        audit: vec![audit(
            AuditAction::SubjectRectify,
            Some(s.id),
            "recorded",
            Some(format!("fields={}", checked.len())),
            at,
        )],
        outbox: tell_recipients("rectification", s.id, &recipients, at),
        outcome: Outcome {
            found: true,
            recipients_told: recipients,
            ..Outcome::default()
        },
    })
}

/// Art. 18: while restricted, the decision allows storage only.
async fn restriction(
    app: &App,
    s: &SubjectRecord,
    restricted: bool,
    at: i64,
) -> Result<Effects, AppError> {
    let recipients = if restricted {
        recipients_of(app, s.id).await?
    } else {
        Vec::new()
    };
    let what = if restricted {
        "restriction"
    } else {
        "restriction-lifted"
    };
    Ok(Effects {
        ops: vec![WriteOp::Request(RequestOp::SetRestricted {
            subject: s.id,
            restricted,
        })],
        audit: vec![audit(
            if restricted {
                AuditAction::SubjectRestriction
            } else {
                AuditAction::SubjectRestrictionLifted
            },
            Some(s.id),
            "recorded",
            None,
            at,
        )],
        outbox: tell_recipients(what, s.id, &recipients, at),
        outcome: Outcome {
            found: true,
            recipients_told: recipients,
            ..Outcome::default()
        },
    })
}

fn objection_event(
    app: &App,
    r: &Request,
    subject: Uuid,
    purpose: Option<String>,
    at: i64,
) -> ConsentEvent {
    ConsentEvent {
        id: new_id(),
        at,
        subject: Some(subject),
        visitor: None,
        purpose,
        channel: None,
        action: ConsentAction::Object,
        policy_version: app.policy_version().to_string(),
        method: "rights-request".into(),
        agent: None,
        wording_hash: None,
        ip_prefix: None,
        recorded_by: format!("request:{}", r.record.id),
        expires_at: None,
    }
}

/// Art. 21(1): an objection to one legitimate-interest or public-task
/// purpose; the decision refuses it from now on.
fn objection(app: &App, r: &Request, s: &SubjectRecord, at: i64) -> Result<Effects, AppError> {
    let purpose = r.meta.purpose.clone().ok_or_else(|| {
        AppError::Corrupt(format!(
            "requests row {}, column meta: an objection without a purpose",
            r.record.id
        ))
    })?;
    Ok(Effects {
        ops: vec![WriteOp::RecordConsent(objection_event(
            app,
            r,
            s.id,
            Some(purpose),
            at,
        ))],
        outcome: Outcome {
            found: true,
            ..Outcome::default()
        },
        ..Effects::default()
    })
}

/// Art. 21(2)-(3): an objection to all direct marketing; the addresses go
/// onto the suppression list too.
fn opt_out(app: &App, r: &Request, s: &SubjectRecord, at: i64) -> Result<Effects, AppError> {
    let (_, fields) = opened(app, s)?;
    let mut ops = vec![WriteOp::RecordConsent(objection_event(
        app, r, s.id, None, at,
    ))];
    for (f, value) in &fields {
        let kind = app
            .policy
            .compiled
            .field(&f.name)
            .and_then(|ix| app.policy.compiled.fields.get(ix.get()))
            .map(|i| i.kind);
        if let Some(kind @ (FieldType::Email | FieldType::Phone)) = kind {
            if let Some(k) = values::lookup_key(kind, value) {
                let (kind_name, hash) = crate::marketing::suppression_hash(app, kind, &k);
                ops.push(WriteOp::Suppress {
                    kind: kind_name,
                    hash,
                    at,
                    reason: "objected to direct marketing (rights request)".into(),
                });
            }
        }
    }
    Ok(Effects {
        ops,
        outcome: Outcome {
            found: true,
            ..Outcome::default()
        },
        ..Effects::default()
    })
}

/// An objection to the sale or sharing of personal data (an authorized
/// agent's `sale:opt_out`): recorded with the scope of a Global Privacy
/// Control signal, which the decision applies to the purposes the policy
/// puts in it. First-party marketing the person agreed to goes on.
fn sale_opt_out(app: &App, r: &Request, s: &SubjectRecord, at: i64) -> Effects {
    let mut event = objection_event(app, r, s.id, None, at);
    event.method = custodian_policy::consent::SALE_OPT_OUT_METHOD.into();
    event.agent = r.meta.agent.as_ref().map(|a| a.id.clone());
    Effects {
        ops: vec![WriteOp::RecordConsent(event)],
        outcome: Outcome {
            found: true,
            ..Outcome::default()
        },
        ..Effects::default()
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn csv_cells_are_quoted_and_formulas_neutralised() {
        assert_eq!(super::csv_cell("a,b"), "\"a,b\"");
        assert_eq!(super::csv_cell("=1+1"), "'=1+1");
        assert_eq!(super::csv_cell("say \"hi\""), "\"say \"\"hi\"\"\"");
    }

    #[test]
    fn the_archive_is_whole_blocks_with_a_valid_checksum() {
        let t = super::tar(&[("a.txt", b"hello")]);
        assert_eq!(t.len() % 512, 0);
        assert_eq!(t.len(), 512 + 512 + 1024);
        let header = &t[..512];
        let stored = std::str::from_utf8(&header[148..154]).unwrap();
        let mut copy = header.to_vec();
        copy[148..156].copy_from_slice(b"        ");
        let sum: u32 = copy.iter().map(|b| u32::from(*b)).sum();
        assert_eq!(u32::from_str_radix(stored, 8).unwrap(), sum);
    }
}
