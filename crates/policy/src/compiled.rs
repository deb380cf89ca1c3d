//! The policy compiled into lookup tables for the decision: every field gets a
//! number, every purpose and recipient a set of fields, so that a decision is
//! a few bitwise operations and allocates nothing.

use crate::day::Day;
use crate::model::Policy;
use crate::rules::adequacy::{AdequacyList, TransferStatus};
use crate::terms::*;
use std::collections::HashMap;

/// A set of fields, by field index. Fixed size so it is `Copy` and never allocates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct FieldSet([u64; 4]);

impl FieldSet {
    pub const CAPACITY: usize = 256;
    pub const EMPTY: FieldSet = FieldSet([0; 4]);

    pub fn with(mut self, field: FieldIx) -> FieldSet {
        self.insert(field);
        self
    }

    pub fn insert(&mut self, field: FieldIx) {
        let i = usize::from(field.0);
        if let Some(word) = self.0.get_mut(i / 64) {
            *word |= 1 << (i % 64);
        }
    }

    pub fn contains(self, field: FieldIx) -> bool {
        let i = usize::from(field.0);
        self.0.get(i / 64).is_some_and(|w| w & (1 << (i % 64)) != 0)
    }

    pub fn union(self, other: FieldSet) -> FieldSet {
        let (a, b) = (self.0, other.0);
        FieldSet([a[0] | b[0], a[1] | b[1], a[2] | b[2], a[3] | b[3]])
    }

    pub fn intersect(self, other: FieldSet) -> FieldSet {
        let (a, b) = (self.0, other.0);
        FieldSet([a[0] & b[0], a[1] & b[1], a[2] & b[2], a[3] & b[3]])
    }

    pub fn minus(self, other: FieldSet) -> FieldSet {
        let (a, b) = (self.0, other.0);
        FieldSet([a[0] & !b[0], a[1] & !b[1], a[2] & !b[2], a[3] & !b[3]])
    }

    pub fn is_empty(self) -> bool {
        self.0 == [0; 4]
    }

    pub fn is_subset_of(self, other: FieldSet) -> bool {
        self.minus(other).is_empty()
    }

    pub fn len(self) -> usize {
        self.0.iter().map(|w| w.count_ones() as usize).sum()
    }

    /// The fields in the set, in index order; visits set bits only.
    pub fn iter(self) -> impl Iterator<Item = FieldIx> {
        self.0.into_iter().enumerate().flat_map(|(w, word)| {
            let mut bits = word;
            std::iter::from_fn(move || {
                if bits == 0 {
                    return None;
                }
                let bit = bits.trailing_zeros();
                bits &= bits - 1;
                u16::try_from(w * 64 + bit as usize).ok().map(FieldIx)
            })
        })
    }
}

impl FromIterator<FieldIx> for FieldSet {
    fn from_iter<I: IntoIterator<Item = FieldIx>>(iter: I) -> Self {
        let mut set = FieldSet::EMPTY;
        for f in iter {
            set.insert(f);
        }
        set
    }
}

macro_rules! index_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(pub u16);

        impl $name {
            pub fn get(self) -> usize {
                usize::from(self.0)
            }
        }
    };
}

index_type!(
    /// A field's number in the compiled policy.
    FieldIx
);
index_type!(PurposeIx);
index_type!(RecipientIx);
index_type!(RelationshipIx);
index_type!(CategoryIx);

#[cfg(test)]
mod field_set_tests {
    use super::*;

    #[test]
    fn iteration_visits_exactly_the_members_in_order() {
        let members = [0u16, 1, 63, 64, 127, 200, 255];
        let set: FieldSet = members.iter().map(|i| FieldIx(*i)).collect();
        let seen: Vec<u16> = set.iter().map(|f| f.0).collect();
        assert_eq!(seen, members);
        assert_eq!(set.len(), members.len());
        assert_eq!(FieldSet::EMPTY.iter().count(), 0);
    }
}

#[derive(Debug, Clone)]
pub struct FieldInfo {
    pub name: String,
    pub category: CategoryIx,
    pub kind: FieldType,
}

#[derive(Debug, Clone)]
pub struct CategoryTable {
    pub id: String,
    pub fields: FieldSet,
    pub sensitivity: Sensitivity,
    pub source: DataSource,
}

#[derive(Debug, Clone)]
pub struct PurposeTable {
    pub id: String,
    pub basis: LegalBasis,
    pub marketing: bool,
    /// Every field the purpose may read.
    pub fields: FieldSet,
    /// Recipients the purpose may disclose to, as a bit per recipient index.
    pub recipients: u64,
    /// Relationships that ground a contract basis (a bit each); 0 means any.
    pub relationships: u64,
    /// Channels the purpose contacts people through (a bit per `Channel`).
    pub channels: u8,
    /// Fields only a given channel needs, per `Channel` index.
    pub channel_fields: [FieldSet; Channel::COUNT],
    pub readable_under_restriction: bool,
    /// The Art. 18(2) exception this purpose may read under, if any.
    pub restriction_ground: Option<crate::terms::RestrictionGround>,
    /// In the scope of a Global Privacy Control signal: it sets marketing
    /// cookies, or discloses to a recipient that may use the data for its
    /// own marketing (sale or sharing).
    pub gpc_scope: bool,
    /// Reads no data produced by cookies: cookie refusals do not reach it.
    pub independent_of_cookies: bool,
    /// Marks the controller's own similar products (PECR reg. 22(3)(b)).
    pub similar_products: bool,
    /// The subject categories the purpose serves (a bit per `[[subjects]]`
    /// entry); 0: not declared.
    pub subjects: u64,
}

/// Fields produced by cookies that need consent: usable only while the
/// cookies' consent purpose is not refused or withdrawn.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CookieGate {
    pub purpose: PurposeIx,
    pub fields: FieldSet,
}

impl PurposeTable {
    /// Whether the purpose may disclose to the recipient at all.
    pub fn discloses_to(&self, recipient: RecipientIx) -> bool {
        1u64.checked_shl(u32::from(recipient.0))
            .is_some_and(|bit| self.recipients & bit != 0)
    }
}

/// When a recipient may receive data, under the policy's regime.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransferRule {
    /// Domestic, or covered by a safeguard that does not lapse.
    Always,
    /// Covered by adequacy between these days, both included.
    Between(Day, Option<Day>),
    Never,
}

#[derive(Debug, Clone)]
pub struct RecipientTable {
    pub id: String,
    pub kind: RecipientKind,
    pub fields: FieldSet,
    pub form: DisclosureForm,
    pub transfer: TransferRule,
}

/// The decision's view of a policy. Built from a validated policy.
#[derive(Debug, Clone)]
pub struct CompiledPolicy {
    pub version: String,
    pub fields: Vec<FieldInfo>,
    pub all_fields: FieldSet,
    pub categories: Vec<CategoryTable>,
    pub purposes: Vec<PurposeTable>,
    pub recipients: Vec<RecipientTable>,
    pub relationships: Vec<String>,
    /// Relationships that are steps before a contract (a bit each): they
    /// ground only the purposes that name them.
    pub pre_contract: u64,
    pub cookie_gates: Vec<CookieGate>,
    /// Relationships in which details are obtained in a sale or its
    /// negotiation (a bit each): the ground of a soft opt-in.
    pub sale: u64,
    /// `marketing.soft_opt_in`.
    pub soft_opt_in: bool,
    /// Each channel's declared mode, per `Channel` index.
    pub channel_modes: [Option<ChannelMode>; Channel::COUNT],
    /// Per relationship kind (by index), the subject categories it is held
    /// with (a bit per `[[subjects]]` entry).
    pub relationship_subjects: Vec<u64>,
    field_index: HashMap<String, FieldIx>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the policy cannot be compiled: {0}; run `custodian policy check` on it")]
pub struct CompileError(String);

impl CompiledPolicy {
    /// Compiles a policy that `validate` accepted. A policy it rejected may
    /// fail here with a short reason; it never panics.
    pub fn new(policy: &Policy) -> Result<CompiledPolicy, CompileError> {
        let mut fields = Vec::new();
        let mut field_index = HashMap::new();
        let mut categories = Vec::new();
        for (ci, category) in policy.categories.iter().enumerate() {
            let cix = CategoryIx(small(ci, "categories")?);
            let mut set = FieldSet::EMPTY;
            for field in &category.fields {
                let fix = FieldIx(small(fields.len(), "fields")?);
                if fields.len() >= FieldSet::CAPACITY {
                    return Err(CompileError("too many fields".into()));
                }
                set.insert(fix);
                field_index.insert(field.name.to_string(), fix);
                fields.push(FieldInfo {
                    name: field.name.to_string(),
                    category: cix,
                    kind: *field.kind,
                });
            }
            categories.push(CategoryTable {
                id: category.id.to_string(),
                fields: set,
                sensitivity: *category.sensitivity,
                source: *category.source,
            });
        }
        let all_fields: FieldSet = (0..fields.len())
            .filter_map(|i| u16::try_from(i).ok().map(FieldIx))
            .collect();
        let resolve = |reference: &str| -> Result<FieldSet, CompileError> {
            let (category, field) = match reference.split_once('.') {
                Some((c, f)) => (c, Some(f)),
                None => (reference, None),
            };
            let table = categories
                .iter()
                .find(|c| c.id == category)
                .ok_or_else(|| CompileError(format!("unknown category `{category}`")))?;
            match field {
                None => Ok(table.fields),
                Some(f) => field_index
                    .get(f)
                    .filter(|ix| table.fields.contains(**ix))
                    .map(|ix| FieldSet::EMPTY.with(*ix))
                    .ok_or_else(|| CompileError(format!("unknown field `{reference}`"))),
            }
        };
        let resolve_all = |refs: &[crate::located::At<String>]| -> Result<FieldSet, CompileError> {
            refs.iter()
                .try_fold(FieldSet::EMPTY, |set, r| Ok(set.union(resolve(r)?)))
        };

        let regime = *policy.policy.regime;
        let adequacy = AdequacyList::for_regime(regime)
            .ok_or_else(|| CompileError(format!("no adequacy list ships for {regime}")))?;
        let mut recipients = Vec::new();
        for r in &policy.recipients {
            let sector = r.sector.as_deref().map(String::as_str);
            let transfer = match r.safeguard.as_deref() {
                // A safeguard of the other regime protects nothing.
                Some(s) if !s.valid_under(regime) => TransferRule::Never,
                Some(s) if *s != Safeguard::Adequacy => TransferRule::Always,
                _ => match adequacy.status_for(
                    &r.country,
                    policy.policy.effective,
                    r.dpf_certified,
                    sector,
                ) {
                    TransferStatus::Domestic => TransferRule::Always,
                    _ => match adequacy.window_for(&r.country, r.dpf_certified, sector) {
                        Some((from, until)) => TransferRule::Between(from, until),
                        None => TransferRule::Never,
                    },
                },
            };
            recipients.push(RecipientTable {
                id: r.id.to_string(),
                kind: *r.kind,
                fields: resolve_all(&r.categories)?,
                form: *r.form,
                transfer,
            });
        }
        let relationships: Vec<String> = policy
            .relationships
            .iter()
            .map(|r| r.id.to_string())
            .collect();
        let bit_of = |ids: &[String], id: &str, what: &str| -> Result<u64, CompileError> {
            let i = ids
                .iter()
                .position(|x| x == id)
                .ok_or_else(|| CompileError(format!("unknown {what} `{id}`")))?;
            1u64.checked_shl(u32::try_from(i).unwrap_or(u32::MAX))
                .ok_or_else(|| CompileError(format!("too many {what}s")))
        };
        let recipient_ids: Vec<String> = recipients.iter().map(|r| r.id.clone()).collect();
        let subject_ids: Vec<String> = policy.subjects.iter().map(|x| x.id.to_string()).collect();
        let mut sale = 0u64;
        let mut relationship_subjects = Vec::new();
        for r in &policy.relationships {
            if *r.sale {
                sale |= bit_of(&relationships, &r.id, "relationship")?;
            }
            let mut bits = 0;
            for id in &r.subjects {
                bits |= bit_of(&subject_ids, id, "subject category")?;
            }
            relationship_subjects.push(bits);
        }
        let mut channel_modes = [None; Channel::COUNT];
        for decl in &policy.marketing.channels {
            if let Some(slot) =
                Channel::parse(&decl.channel).and_then(|c| channel_modes.get_mut(c.index()))
            {
                *slot = Some(*decl.mode);
            }
        }
        let mut pre_contract = 0u64;
        for r in policy.relationships.iter().filter(|r| r.pre_contract) {
            pre_contract |= bit_of(&relationships, &r.id, "relationship")?;
        }

        let mut purposes = Vec::new();
        for p in &policy.purposes {
            let mut channel_fields = [FieldSet::EMPTY; Channel::COUNT];
            let mut channels = 0u8;
            for id in &p.channels {
                let channel = Channel::parse(id)
                    .ok_or_else(|| CompileError(format!("unknown channel `{}`", **id)))?;
                channels |= 1 << channel.index();
                if let Some(decl) = policy
                    .marketing
                    .channels
                    .iter()
                    .find(|d| d.channel.as_str() == id.as_str())
                {
                    if let Some(slot) = channel_fields.get_mut(channel.index()) {
                        *slot = resolve_all(&decl.categories)?;
                    }
                }
            }
            let mut recipient_bits = 0;
            for r in &p.recipients {
                recipient_bits |= bit_of(&recipient_ids, r, "recipient")?;
            }
            let mut relationship_bits = 0;
            for r in &p.relationships {
                relationship_bits |= bit_of(&relationships, r, "relationship")?;
            }
            let marketing_cookies = policy.cookies.iter().any(|c| {
                *c.category == CookieCategory::Marketing
                    && c.purpose
                        .as_ref()
                        .is_some_and(|x| x.as_str() == p.id.as_str())
            });
            let shared = p.recipients.iter().any(|r| {
                policy
                    .recipients
                    .iter()
                    .any(|x| x.id.as_str() == r.as_str() && *x.own_marketing)
            });
            let mut subject_bits = 0;
            for id in &p.subjects {
                subject_bits |= bit_of(&subject_ids, id, "subject category")?;
            }
            purposes.push(PurposeTable {
                similar_products: *p.similar_products,
                subjects: subject_bits,
                gpc_scope: marketing_cookies || shared,
                independent_of_cookies: p.independent_of_cookies,
                id: p.id.to_string(),
                basis: *p.basis,
                marketing: p.marketing,
                fields: resolve_all(&p.categories)?,
                recipients: recipient_bits,
                relationships: relationship_bits,
                channels,
                channel_fields,
                readable_under_restriction: p.during_restriction.is_some(),
                restriction_ground: p.during_restriction,
            });
        }
        let mut cookie_gates = Vec::new();
        for c in &policy.cookies {
            let Some(purpose) = c.purpose.as_ref() else {
                continue;
            };
            if *c.category == CookieCategory::StrictlyNecessary || c.feeds.is_empty() {
                continue;
            }
            let pix = policy
                .purposes
                .iter()
                .position(|x| x.id.as_str() == purpose.as_str())
                .ok_or_else(|| CompileError(format!("unknown purpose `{}`", **purpose)))?;
            cookie_gates.push(CookieGate {
                purpose: PurposeIx(small(pix, "purposes")?),
                fields: resolve_all(&c.feeds)?,
            });
        }
        Ok(CompiledPolicy {
            cookie_gates,
            version: policy.policy.version.to_string(),
            fields,
            all_fields,
            categories,
            purposes,
            recipients,
            relationships,
            pre_contract,
            sale,
            soft_opt_in: policy.marketing.soft_opt_in,
            channel_modes,
            relationship_subjects,
            field_index,
        })
    }

    pub fn field(&self, name: &str) -> Option<FieldIx> {
        self.field_index.get(name).copied()
    }

    pub fn field_name(&self, field: FieldIx) -> &str {
        self.fields.get(field.get()).map_or("", |f| f.name.as_str())
    }

    pub fn purpose(&self, id: &str) -> Option<PurposeIx> {
        position(self.purposes.iter().map(|p| p.id.as_str()), id).map(PurposeIx)
    }

    pub fn recipient(&self, id: &str) -> Option<RecipientIx> {
        position(self.recipients.iter().map(|r| r.id.as_str()), id).map(RecipientIx)
    }

    pub fn relationship(&self, id: &str) -> Option<RelationshipIx> {
        position(self.relationships.iter().map(String::as_str), id).map(RelationshipIx)
    }

    pub fn category(&self, id: &str) -> Option<CategoryIx> {
        position(self.categories.iter().map(|c| c.id.as_str()), id).map(CategoryIx)
    }

    /// The fields named, or the first unknown name.
    pub fn field_set<'a>(
        &self,
        names: impl IntoIterator<Item = &'a str>,
    ) -> Result<FieldSet, &'a str> {
        names.into_iter().try_fold(FieldSet::EMPTY, |set, name| {
            self.field(name).map(|f| set.with(f)).ok_or(name)
        })
    }
}

fn position<'a>(mut ids: impl Iterator<Item = &'a str>, id: &str) -> Option<u16> {
    ids.position(|x| x == id)
        .and_then(|i| u16::try_from(i).ok())
}

fn small(n: usize, what: &str) -> Result<u16, CompileError> {
    u16::try_from(n).map_err(|_| CompileError(format!("too many {what}")))
}
