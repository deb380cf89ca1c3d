//! Campaign lists: millions of addresses checked in one request. The list is
//! joined against every known address of the channel, decided once up front,
//! and the suppression list: per address the work is then one or two keyed
//! hashes and probes in memory, never a database query. Lines are decided in
//! batches that can run on every core at once; the answer keeps the list's
//! order.

use super::consent::suppression_kind;
use super::marketing::{self, Scope, Target, address_label};
use super::read::state_for;
use super::{App, AppError, Principal};
use crate::audit_action::AuditAction;
use custodian_policy::terms::FieldType;
use custodian_policy::values;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use time::OffsetDateTime;

/// Everything a batch of lines needs to be decided away from the request.
pub struct Campaign {
    app: App,
    principal: Arc<Principal>,
    scope: Scope,
    at: OffsetDateTime,
    /// None for post, whose lists hold subject ids only.
    index: Option<Index>,
    lines_in: AtomicU64,
    lines_allowed: AtomicU64,
}

struct Index {
    kind: FieldType,
    /// Lookup field name to (blind-index hash to allowed).
    known: Vec<(String, Decided)>,
    suppressed: HashSet<[u8; 32], KeyedHashes>,
    suppression_kind: String,
    /// For live calls: the numbers on the TPS lists (by `tps_hash`).
    tps: HashSet<[u8; 32], KeyedHashes>,
}

const PAGE: i64 = 5_000;

/// Blind-index hash of a known address to whether it may be contacted.
type Decided = HashMap<[u8; 32], bool, KeyedHashes>;

/// The keys of these maps are HMAC outputs, already uniformly random: their
/// first eight bytes are a hash as good as any, and cost nothing to compute.
#[derive(Default, Clone, Copy)]
pub struct KeyedHashes;

pub struct FirstBytes(u64);

impl std::hash::Hasher for FirstBytes {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for (i, b) in bytes.iter().take(8).enumerate() {
            self.0 ^= u64::from(*b) << (8 * i);
        }
    }
}

impl std::hash::BuildHasher for KeyedHashes {
    type Hasher = FirstBytes;
    fn build_hasher(&self) -> FirstBytes {
        FirstBytes(0)
    }
}

impl Campaign {
    /// Decides every known address of the channel and loads the suppression
    /// list, before anything is streamed back, so a failure is a clean error.
    pub async fn prepare(
        app: &App,
        principal: Arc<Principal>,
        scope: Scope,
        at: OffsetDateTime,
    ) -> Result<Campaign, AppError> {
        let index = match marketing::address_kind(scope.channel) {
            Some(kind) => Some(index(app, &principal, &scope, kind, at).await?),
            None => None,
        };
        Ok(Campaign {
            app: app.clone(),
            principal,
            scope,
            at,
            index,
            lines_in: AtomicU64::new(0),
            lines_allowed: AtomicU64::new(0),
        })
    }

    /// Appends the one audit entry of a campaign check: the key, the
    /// channel, the lines in and allowed, and the SHA-256 of the list as
    /// received (after its header line). `complete` is false when the list
    /// was cut off (a failure or the client going away).
    pub async fn record(&self, list_sha256: [u8; 32], complete: bool) -> Result<(), AppError> {
        let entry = custodian_vault::audit::AuditDraft {
            at: super::collect::micros(self.at),
            actor: self.principal.actor(),
            action: AuditAction::MarketingCampaignCheck.into(),
            purpose: None,
            subject: None,
            decision: if complete { "checked" } else { "incomplete" }.into(),
            reason: Some(format!(
                "channel={} lines_in={} lines_allowed={} list_sha256={}",
                self.scope.channel.as_str(),
                self.lines_in.load(Ordering::Relaxed),
                self.lines_allowed.load(Ordering::Relaxed),
                custodian_vault::audit::hex(&list_sha256),
            )),
        };
        super::error::written(
            self.app
                .store
                .write(custodian_vault::store::Batch::audit_only(entry))
                .await,
        )?;
        Ok(())
    }

    /// (lines in, lines allowed) so far.
    pub fn counts(&self) -> (u64, u64) {
        (
            self.lines_in.load(Ordering::Relaxed),
            self.lines_allowed.load(Ordering::Relaxed),
        )
    }

    /// Decides a run of whole lines (each an address or a subject id, bare or
    /// as a JSON string) and appends the allowed ones to `out`, one JSON
    /// string per line, in the order given. Lines longer than `max_line` are
    /// skipped. Blocking: subject ids are looked up in the store on the
    /// current runtime, so call it from a blocking task.
    pub fn decide_lines(
        &self,
        lines: &[u8],
        max_line: usize,
        runtime: &tokio::runtime::Handle,
        out: &mut Vec<u8>,
    ) {
        let (mut seen, mut allowed) = (0u64, 0u64);
        for line in lines.split(|b| *b == b'\n') {
            if line.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            seen += 1;
            if line.len() > max_line {
                continue;
            }
            let Ok(text) = std::str::from_utf8(line) else {
                continue;
            };
            let text = text.trim().trim_matches('"');
            if text.is_empty() {
                continue;
            }
            if self.allows(text, runtime) && serde_json::to_writer(&mut *out, text).is_ok() {
                out.push(b'\n');
                allowed += 1;
            }
        }
        self.lines_in.fetch_add(seen, Ordering::Relaxed);
        self.lines_allowed.fetch_add(allowed, Ordering::Relaxed);
    }

    fn allows(&self, text: &str, runtime: &tokio::runtime::Handle) -> bool {
        // Only a 36-character line can be a subject id; most lines are addresses.
        let id = if text.len() == 36 {
            uuid::Uuid::parse_str(text).ok()
        } else {
            None
        };
        match (id, &self.index) {
            (Some(id), _) => runtime
                .block_on(marketing::check(
                    &self.app,
                    &self.principal,
                    &self.scope,
                    &Target::Subject(id),
                    self.at,
                ))
                .is_ok_and(|a| a.allowed),
            (None, Some(index)) => index.allows(&self.app, text, self.scope.unknown_allowed),
            (None, None) => false,
        }
    }
}

async fn index(
    app: &App,
    principal: &Principal,
    scope: &Scope,
    kind: FieldType,
    at: OffsetDateTime,
) -> Result<Index, AppError> {
    let mut known = Vec::new();
    for field in app.policy.compiled.fields.iter().filter(|f| f.kind == kind) {
        let mut decided = HashMap::with_hasher(KeyedHashes);
        let mut after = None;
        loop {
            let page = app.store.lookup_page(&field.name, after, PAGE).await?;
            let Some(last) = page.last() else { break };
            after = Some(last.hash);
            for entry in &page {
                // Not erased: lookup rows exist only for live subjects (see LookupState).
                let state = state_for(app, false, &entry.state).await?;
                decided.insert(
                    entry.hash,
                    marketing::decide(app, principal, scope, &state, at).allowed,
                );
            }
        }
        known.push((field.name.clone(), decided));
    }
    let suppression_kind = suppression_kind(address_label(kind));
    let mut suppressed = HashSet::with_hasher(KeyedHashes);
    let mut after = None;
    loop {
        let page = app
            .store
            .suppression_page(&suppression_kind, after, PAGE)
            .await?;
        let Some(last) = page.last() else { break };
        after = Some(*last);
        suppressed.extend(page);
    }
    let mut tps = HashSet::with_hasher(KeyedHashes);
    if scope.channel == custodian_policy::terms::Channel::Phone {
        for list in marketing::TPS_LISTS {
            let mut after = None;
            loop {
                let page = app.store.suppression_page(list, after, PAGE).await?;
                let Some(last) = page.last() else { break };
                after = Some(*last);
                tps.extend(page);
            }
        }
    }
    Ok(Index {
        kind,
        known,
        suppressed,
        suppression_kind,
        tps,
    })
}

impl Index {
    /// Whether an address (as written on the list) may be contacted.
    fn allows(&self, app: &App, address: &str, unknown_allowed: bool) -> bool {
        let Some(key) = values::lookup_key(self.kind, address) else {
            return false;
        };
        if !self.suppressed.is_empty()
            && self
                .suppressed
                .contains(&app.keys.blind_index(&self.suppression_kind, &key))
        {
            return false;
        }
        if !self.tps.is_empty() && self.tps.contains(&marketing::tps_hash(app, &key)) {
            return false;
        }
        for (field, decided) in &self.known {
            if let Some(allowed) = decided.get(&app.keys.blind_index(field, &key)) {
                return *allowed;
            }
        }
        unknown_allowed
    }
}
