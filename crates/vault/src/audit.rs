//! The audit chain: every entry carries the hash of the one before it, so an
//! altered, deleted, inserted or reordered entry breaks the chain at that
//! point. A head record (last sequence number and hash) also catches entries
//! cut from the end.
//!
//! The hash is an HMAC-SHA256 under the audit key from the key file, which
//! never enters the database: one who can write the database but lacks the
//! key cannot recompute the hashes after changing an entry. Entries written
//! before the chain was keyed (schema 4 and earlier) keep their plain
//! SHA-256; the first keyed entry's MAC covers the last unkeyed hash, so a
//! rewrite of that older part breaks the chain at the first keyed entry.

use ring::digest::{self, SHA256};
use ring::hmac;
use serde::Serialize;
use uuid::Uuid;

pub const GENESIS: [u8; 32] = [0; 32];

/// What a use case asks to be recorded; never personal data, only ids,
/// purposes, actions and outcomes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AuditDraft {
    /// Unix microseconds.
    pub at: i64,
    pub actor: String,
    pub action: String,
    pub purpose: Option<String>,
    pub subject: Option<Uuid>,
    pub decision: String,
    pub reason: Option<String>,
}

/// An entry as stored, with its place in the chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AuditEntry {
    pub seq: i64,
    #[serde(flatten)]
    pub draft: AuditDraft,
    #[serde(with = "hex32")]
    pub prev_hash: [u8; 32],
    #[serde(with = "hex32")]
    pub hash: [u8; 32],
}

mod hex32 {
    use serde::Serializer;
    pub fn serialize<S: Serializer>(bytes: &[u8; 32], s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&super::hex(bytes))
    }
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The 32 bytes written as 64 hex digits, if `text` is exactly that.
pub fn parse_hex32(text: &str) -> Option<[u8; 32]> {
    if text.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(text.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

/// The key that MACs the chain.
#[derive(Clone)]
pub struct AuditKey(hmac::Key);

impl AuditKey {
    pub fn new(secret: &crate::crypto::Secret) -> AuditKey {
        AuditKey(hmac::Key::new(hmac::HMAC_SHA256, secret.as_bytes()))
    }
}

impl std::fmt::Debug for AuditKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AuditKey(..)")
    }
}

/// How an entry's hash is computed: keyed (from the keyed sequence number
/// on) or, for entries older than the keying, plain.
enum Ctx {
    Plain(digest::Context),
    Keyed(hmac::Context),
}

impl Ctx {
    fn update(&mut self, bytes: &[u8]) {
        match self {
            Ctx::Plain(c) => c.update(bytes),
            Ctx::Keyed(c) => c.update(bytes),
        }
    }

    fn finish(self) -> [u8; 32] {
        let mut out = [0u8; 32];
        match self {
            Ctx::Plain(c) => out.copy_from_slice(c.finish().as_ref()),
            Ctx::Keyed(c) => out.copy_from_slice(c.sign().as_ref()),
        }
        out
    }
}

fn put(ctx: &mut Ctx, bytes: &[u8]) {
    ctx.update(&(bytes.len() as u64).to_be_bytes());
    ctx.update(bytes);
}

fn put_opt(ctx: &mut Ctx, bytes: Option<&[u8]>) {
    match bytes {
        Some(b) => {
            ctx.update(&[1]);
            put(ctx, b);
        }
        None => ctx.update(&[0]),
    }
}

/// The MAC (with a key) or, for entries from before the chain was keyed,
/// the SHA-256 over the sequence number, the previous hash and every field,
/// each length-prefixed so that no two entries encode alike.
pub fn entry_hash(key: Option<&AuditKey>, seq: i64, prev: &[u8; 32], d: &AuditDraft) -> [u8; 32] {
    let mut ctx = match key {
        Some(k) => Ctx::Keyed(hmac::Context::with_key(&k.0)),
        None => Ctx::Plain(digest::Context::new(&SHA256)),
    };
    ctx.update(match key {
        Some(_) => b"custodian-audit-v2",
        None => b"custodian-audit-v1",
    });
    ctx.update(&seq.to_be_bytes());
    ctx.update(prev);
    ctx.update(&d.at.to_be_bytes());
    put(&mut ctx, d.actor.as_bytes());
    put(&mut ctx, d.action.as_bytes());
    put_opt(&mut ctx, d.purpose.as_deref().map(str::as_bytes));
    put_opt(
        &mut ctx,
        d.subject.as_ref().map(|s| s.as_bytes().as_slice()),
    );
    put(&mut ctx, d.decision.as_bytes());
    put_opt(&mut ctx, d.reason.as_deref().map(str::as_bytes));
    ctx.finish()
}

/// Links drafts onto the chain after `head` (seq, hash), keyed.
pub fn chain(key: &AuditKey, head: (i64, [u8; 32]), drafts: &[AuditDraft]) -> Vec<AuditEntry> {
    let (mut seq, mut prev) = head;
    drafts
        .iter()
        .map(|d| {
            seq += 1;
            let hash = entry_hash(Some(key), seq, &prev, d);
            let entry = AuditEntry {
                seq,
                draft: d.clone(),
                prev_hash: prev,
                hash,
            };
            prev = hash;
            entry
        })
        .collect()
}

/// The outcome of verifying the whole chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Verification {
    pub entries: i64,
    pub intact: bool,
    /// The first entry (by sequence number) where the chain breaks.
    pub first_broken: Option<i64>,
    pub problem: Option<String>,
}

/// Walks entries in ascending `seq` order, page by page, so a long chain never
/// sits in memory. Feed every entry to `push`, then call `finish` with the head.
pub struct Verifier {
    key: AuditKey,
    /// The first sequence number written keyed; earlier ones are plain.
    keyed_from: i64,
    expected_seq: i64,
    prev: [u8; 32],
    broken: Option<(i64, String)>,
}

impl Verifier {
    pub fn new(key: AuditKey, keyed_from: i64) -> Verifier {
        Verifier {
            key,
            keyed_from,
            expected_seq: 1,
            prev: GENESIS,
            broken: None,
        }
    }

    pub fn push(&mut self, e: &AuditEntry) {
        if self.broken.is_some() {
            return;
        }
        if e.seq != self.expected_seq {
            let problem = if e.seq > self.expected_seq {
                format!("entries {} to {} are missing", self.expected_seq, e.seq - 1)
            } else {
                format!("entry {} is out of order", e.seq)
            };
            self.broken = Some((self.expected_seq.min(e.seq), problem));
            return;
        }
        if e.prev_hash != self.prev {
            self.broken = Some((e.seq, "does not follow the entry before it (moved, inserted or the one before was deleted)".into()));
            return;
        }
        let key = (e.seq >= self.keyed_from).then_some(&self.key);
        if entry_hash(key, e.seq, &e.prev_hash, &e.draft) != e.hash {
            let problem = if e.seq == self.keyed_from && e.seq > 1 {
                "its MAC does not match: it or an entry before it (written before the chain was keyed) was altered"
            } else {
                "its content does not match its MAC (altered)"
            };
            self.broken = Some((e.seq, problem.into()));
            return;
        }
        self.prev = e.hash;
        self.expected_seq += 1;
    }

    /// `head` is the recorded (last seq, last hash), if any entry was ever written.
    pub fn finish(self, head: Option<(i64, [u8; 32])>) -> Verification {
        let entries = self.expected_seq - 1;
        let broken = self.broken.or_else(|| match head {
            Some((seq, hash)) if seq != entries || hash != self.prev => Some((
                entries + 1,
                format!("the chain ends at entry {entries} but the head records entry {seq}: entries were cut from the end"),
            )),
            None if entries > 0 => Some((1, "entries exist but no head was recorded".into())),
            _ => None,
        });
        Verification {
            entries,
            intact: broken.is_none(),
            first_broken: broken.as_ref().map(|b| b.0),
            problem: broken.map(|b| b.1),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn drafts(n: usize) -> Vec<AuditDraft> {
        (0..n)
            .map(|i| AuditDraft {
                at: i as i64,
                actor: "key:ck_1".into(),
                action: "read".into(),
                purpose: Some("security".into()),
                subject: Some(Uuid::from_u128(i as u128)),
                decision: "allowed".into(),
                reason: None,
            })
            .collect()
    }

    fn key() -> AuditKey {
        AuditKey::new(&crate::crypto::Secret::from_bytes([7; 32]))
    }

    fn verify(entries: &[AuditEntry], head: Option<(i64, [u8; 32])>) -> Verification {
        let mut v = Verifier::new(key(), 1);
        entries.iter().for_each(|e| v.push(e));
        v.finish(head)
    }

    #[test]
    fn an_intact_chain_verifies_and_chains_across_batches() {
        let first = chain(&key(), (0, GENESIS), &drafts(3));
        let last = first.last().unwrap();
        let second = chain(&key(), (last.seq, last.hash), &drafts(2));
        let all: Vec<_> = first.into_iter().chain(second).collect();
        let head = all.last().map(|e| (e.seq, e.hash));
        let v = verify(&all, head);
        assert!(v.intact, "{v:?}");
        assert_eq!(v.entries, 5);
        assert!(verify(&[], None).intact);
    }

    #[test]
    fn alteration_deletion_reordering_and_truncation_are_caught() {
        let all = chain(&key(), (0, GENESIS), &drafts(6));
        let head = Some((6, all[5].hash));

        let mut altered = all.clone();
        altered[2].draft.decision = "refused".into();
        assert_eq!(verify(&altered, head).first_broken, Some(3));

        let mut deleted = all.clone();
        deleted.remove(3);
        assert_eq!(verify(&deleted, head).first_broken, Some(4));

        // Swap the contents of entries 2 and 3, keeping their numbers.
        let mut reordered = all.clone();
        let (a, b) = (reordered[1].clone(), reordered[2].clone());
        reordered[1] = AuditEntry { seq: 2, ..b };
        reordered[2] = AuditEntry { seq: 3, ..a };
        assert_eq!(verify(&reordered, head).first_broken, Some(2));

        let truncated = &all[..4];
        let v = verify(truncated, head);
        assert_eq!(v.first_broken, Some(5));
        assert!(v.problem.unwrap().contains("cut from the end"));
    }

    /// One who can write the database but lacks the key rewrites an entry
    /// and recomputes every later hash the old, unkeyed way: the verifier
    /// names the rewritten entry.
    #[test]
    fn a_rewrite_without_the_key_is_named() {
        let mut all = chain(&key(), (0, GENESIS), &drafts(5));
        all[2].draft.decision = "refused".into();
        let mut prev = all[1].hash;
        for e in all.iter_mut().skip(2) {
            e.prev_hash = prev;
            e.hash = entry_hash(None, e.seq, &prev, &e.draft);
            prev = e.hash;
        }
        let head = Some((5, prev));
        let v = verify(&all, head);
        assert_eq!(v.first_broken, Some(3), "{v:?}");
        // With another key, the same.
        let other = AuditKey::new(&crate::crypto::Secret::from_bytes([9; 32]));
        let mut prev = all[1].hash;
        for e in all.iter_mut().skip(2) {
            e.prev_hash = prev;
            e.hash = entry_hash(Some(&other), e.seq, &prev, &e.draft);
            prev = e.hash;
        }
        assert_eq!(verify(&all, Some((5, prev))).first_broken, Some(3));
    }

    /// A chain begun before keying: plain entries, then keyed ones from the
    /// recorded sequence number. Intact, it verifies; a rewrite of the plain
    /// part, hashes recomputed, breaks at the first keyed entry.
    #[test]
    fn a_chain_keyed_part_way_verifies_and_guards_its_older_part() {
        let plain_drafts = drafts(3);
        let mut plain = Vec::new();
        let mut prev = GENESIS;
        for (i, d) in plain_drafts.iter().enumerate() {
            let seq = i as i64 + 1;
            let hash = entry_hash(None, seq, &prev, d);
            plain.push(AuditEntry {
                seq,
                draft: d.clone(),
                prev_hash: prev,
                hash,
            });
            prev = hash;
        }
        let keyed = chain(&key(), (3, prev), &drafts(2));
        let mut all: Vec<_> = plain.into_iter().chain(keyed).collect();
        let head = Some((5, all[4].hash));
        let mut v = Verifier::new(key(), 4);
        all.iter().for_each(|e| v.push(e));
        assert!(v.finish(head).intact);

        all[1].draft.decision = "refused".into();
        let mut prev = all[0].hash;
        for e in all.iter_mut().take(3).skip(1) {
            e.prev_hash = prev;
            e.hash = entry_hash(None, e.seq, &prev, &e.draft);
            prev = e.hash;
        }
        all[3].prev_hash = prev;
        let mut v = Verifier::new(key(), 4);
        all.iter().for_each(|e| v.push(e));
        assert_eq!(v.finish(head).first_broken, Some(4));
    }
}
