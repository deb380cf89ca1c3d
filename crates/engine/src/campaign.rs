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
use custodian_policy::terms::FieldType;
use custodian_policy::values;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use time::OffsetDateTime;

/// Everything a batch of lines needs to be decided away from the request.
pub struct Campaign {
    app: App,
    principal: Arc<Principal>,
    scope: Scope,
    at: OffsetDateTime,
    /// None for post, whose lists hold subject ids only.
    index: Option<Index>,
}

struct Index {
    kind: FieldType,
    /// Lookup field name to (blind-index hash to allowed).
    known: Vec<(String, Decided)>,
    suppressed: HashSet<[u8; 32], KeyedHashes>,
    suppression_kind: String,
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
        })
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
        for line in lines.split(|b| *b == b'\n') {
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
            }
        }
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
    Ok(Index {
        kind,
        known,
        suppressed,
        suppression_kind,
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
        for (field, decided) in &self.known {
            if let Some(allowed) = decided.get(&app.keys.blind_index(field, &key)) {
                return *allowed;
            }
        }
        unknown_allowed
    }
}
