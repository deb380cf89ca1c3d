//! The changes between two versions of a policy, each classed material or
//! editorial. A material change (new purpose, new category, new recipient,
//! new transfer, longer retention, changed legal basis) obliges the controller
//! to tell people before it applies, and invalidates consent given to the
//! purposes it touches.

use crate::model::*;
use crate::period::Period;
use crate::rules::adequacy::{AdequacyList, TransferStatus};
use crate::terms::*;
use serde::Serialize;
use serde_json::Value;
use std::collections::BTreeSet;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Class {
    Material,
    Editorial,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Change {
    pub class: Class,
    /// The purposes whose consent a material change invalidates, if any.
    pub purposes: Vec<String>,
    pub what: String,
}

impl std::fmt::Display for Change {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let class = match self.class {
            Class::Material => "material",
            Class::Editorial => "editorial",
        };
        write!(f, "{class}: {}", self.what)
    }
}

pub fn diff(old: &Policy, new: &Policy) -> Vec<Change> {
    let mut d = Differ {
        old,
        new,
        out: Vec::new(),
    };
    d.sections();
    d.categories();
    d.purposes();
    d.recipients();
    d.storage();
    d.retention();
    d.channels();
    d.cookies();
    d.out.sort_by_key(|c| c.class);
    d.out
}

pub fn is_material(changes: &[Change]) -> bool {
    changes.iter().any(|c| c.class == Class::Material)
}

struct Differ<'a> {
    old: &'a Policy,
    new: &'a Policy,
    out: Vec<Change>,
}

fn ids<T>(items: &[T], id: impl Fn(&T) -> &str) -> BTreeSet<String> {
    items.iter().map(|x| id(x).to_string()).collect()
}

fn to_json<T: Serialize>(value: &T) -> Value {
    serde_json::to_value(value).unwrap_or(Value::Null)
}

/// The top-level keys of two JSON objects whose values differ.
fn changed_keys(old: &Value, new: &Value) -> Vec<String> {
    match (old, new) {
        (Value::Object(a), Value::Object(b)) => {
            let keys: BTreeSet<&String> = a.keys().chain(b.keys()).collect();
            keys.into_iter()
                .filter(|k| a.get(*k) != b.get(*k))
                .cloned()
                .collect()
        }
        _ if old != new => vec![String::new()],
        _ => Vec::new(),
    }
}

fn added(old: &[crate::located::At<String>], new: &[crate::located::At<String>]) -> Vec<String> {
    new.iter()
        .filter(|n| !old.iter().any(|o| o.as_str() == n.as_str()))
        .map(|n| n.to_string())
        .collect()
}

impl Differ<'_> {
    fn material(&mut self, purposes: Vec<String>, what: String) {
        self.out.push(Change {
            class: Class::Material,
            purposes,
            what,
        });
    }

    fn editorial(&mut self, what: String) {
        self.out.push(Change {
            class: Class::Editorial,
            purposes: Vec::new(),
            what,
        });
    }

    /// Purposes of the new policy that use `category` (or one of its fields).
    fn purposes_using_category(&self, category: &str) -> Vec<String> {
        self.new
            .purposes
            .iter()
            .filter(|p| {
                p.categories
                    .iter()
                    .any(|c| c.split('.').next() == Some(category))
            })
            .map(|p| p.id.to_string())
            .collect()
    }

    fn purposes_using_recipient(&self, recipient: &str) -> Vec<String> {
        self.new
            .purposes
            .iter()
            .filter(|p| p.recipients.iter().any(|r| r.as_str() == recipient))
            .map(|p| p.id.to_string())
            .collect()
    }

    fn sections(&mut self) {
        let pairs = [
            (
                "policy",
                to_json(&self.old.policy),
                to_json(&self.new.policy),
            ),
            (
                "controller",
                to_json(&self.old.controller),
                to_json(&self.new.controller),
            ),
            (
                "rights",
                to_json(&self.old.rights),
                to_json(&self.new.rights),
            ),
            (
                "security",
                to_json(&self.old.security),
                to_json(&self.new.security),
            ),
        ];
        for (section, old, new) in pairs {
            for key in changed_keys(&old, &new) {
                self.editorial(format!("{section}.{key} changed"));
            }
        }
        let (o, n) = (&self.old.sharing, &self.new.sharing);
        if o.never_sell && !n.never_sell {
            self.material(
                Vec::new(),
                "the promise never to sell data is withdrawn".into(),
            );
        }
        if o.no_third_party_marketing && !n.no_third_party_marketing {
            self.material(
                Vec::new(),
                "the promise not to share data for third parties' marketing is withdrawn".into(),
            );
        }
        if self.old.marketing.soft_opt_in != self.new.marketing.soft_opt_in {
            let what = format!(
                "marketing.soft_opt_in is now {}",
                self.new.marketing.soft_opt_in
            );
            if self.new.marketing.soft_opt_in {
                self.material(Vec::new(), what);
            } else {
                self.editorial(what);
            }
        }
    }

    fn categories(&mut self) {
        for new in &self.new.categories {
            let users = self.purposes_using_category(&new.id);
            match self
                .old
                .categories
                .iter()
                .find(|o| o.id.as_str() == new.id.as_str())
            {
                None => self.material(users, format!("new data category `{}`", new.id)),
                Some(old) => {
                    for field in &new.fields {
                        if !old
                            .fields
                            .iter()
                            .any(|f| f.name.as_str() == field.name.as_str())
                        {
                            self.material(
                                users.clone(),
                                format!("category `{}` has a new field `{}`", new.id, field.name),
                            );
                        }
                    }
                    if *old.sensitivity != *new.sensitivity {
                        self.material(
                            users.clone(),
                            format!("category `{}` is now {}", new.id, new.sensitivity.label()),
                        );
                    }
                    let mut rest = changed_keys(&to_json(old), &to_json(new));
                    rest.retain(|k| k != "fields" && k != "sensitivity");
                    for key in rest {
                        self.editorial(format!("category `{}`: {key} changed", new.id));
                    }
                }
            }
        }
        let new_ids = ids(&self.new.categories, |c| c.id.as_str());
        for old in &self.old.categories {
            if !new_ids.contains(old.id.as_str()) {
                self.editorial(format!("data category `{}` removed", old.id));
            }
        }
    }

    fn purposes(&mut self) {
        for new in &self.new.purposes {
            let id = new.id.to_string();
            let Some(old) = self
                .old
                .purposes
                .iter()
                .find(|o| o.id.as_str() == new.id.as_str())
            else {
                self.material(vec![id.clone()], format!("new purpose `{id}`"));
                continue;
            };
            let mut material_keys: Vec<&str> = vec!["marketing"];
            if *old.basis != *new.basis {
                material_keys.push("basis");
                self.material(
                    vec![id.clone()],
                    format!(
                        "purpose `{id}`: legal basis changed from {} to {}",
                        *old.basis, *new.basis
                    ),
                );
            }
            for (key, old_refs, new_refs, says) in [
                ("categories", &old.categories, &new.categories, "now uses"),
                (
                    "recipients",
                    &old.recipients,
                    &new.recipients,
                    "now discloses to",
                ),
                (
                    "channels",
                    &old.channels,
                    &new.channels,
                    "now contacts people by",
                ),
            ] {
                let additions = added(old_refs, new_refs);
                if !additions.is_empty() {
                    material_keys.push(key);
                }
                for a in additions {
                    self.material(vec![id.clone()], format!("purpose `{id}` {says} `{a}`"));
                }
            }
            if new.marketing && !old.marketing {
                self.material(
                    vec![id.clone()],
                    format!("purpose `{id}` is now direct marketing"),
                );
            }
            // Both widen what the purpose may do without asking anyone.
            if *new.similar_products && !*old.similar_products {
                material_keys.push("similar_products");
                self.material(
                    vec![id.clone()],
                    format!("purpose `{id}` now relies on the soft opt-in"),
                );
            }
            if new.independent_of_cookies && !old.independent_of_cookies {
                material_keys.push("independent_of_cookies");
                self.material(
                    vec![id.clone()],
                    format!("purpose `{id}` now reads data whatever cookies were refused"),
                );
            }
            let old_days = retention_days(self.old, old.retention.as_deref());
            let new_days = retention_days(self.new, new.retention.as_deref());
            if let (Some(o), Some(n)) = (old_days, new_days) {
                if n > o {
                    material_keys.push("retention");
                    self.material(
                        vec![id.clone()],
                        format!("purpose `{id}`: data is kept longer"),
                    );
                }
            }
            let mut rest = changed_keys(&to_json(old), &to_json(new));
            rest.retain(|k| !material_keys.contains(&k.as_str()));
            for key in rest {
                self.editorial(format!("purpose `{id}`: {key} changed"));
            }
        }
        let new_ids = ids(&self.new.purposes, |p| p.id.as_str());
        for old in &self.old.purposes {
            if !new_ids.contains(old.id.as_str()) {
                self.editorial(format!("purpose `{}` removed", old.id));
            }
        }
    }

    fn recipients(&mut self) {
        for new in &self.new.recipients {
            let id = new.id.to_string();
            let users = self.purposes_using_recipient(&id);
            let Some(old) = self
                .old
                .recipients
                .iter()
                .find(|o| o.id.as_str() == new.id.as_str())
            else {
                self.material(users.clone(), format!("new recipient `{id}`"));
                if is_transfer(self.new, &new.country) {
                    self.material(
                        users,
                        format!("new transfer to {} (recipient `{id}`)", *new.country),
                    );
                }
                continue;
            };
            if *old.country != *new.country && is_transfer(self.new, &new.country) {
                self.material(
                    users.clone(),
                    format!("new transfer to {} (recipient `{id}`)", *new.country),
                );
            }
            for c in added(&old.categories, &new.categories) {
                self.material(
                    users.clone(),
                    format!("recipient `{id}` may now receive `{c}`"),
                );
            }
            if *old.form != *new.form && *new.form == DisclosureForm::Identified {
                self.material(
                    users.clone(),
                    format!("recipient `{id}` now receives identified data"),
                );
            }
            if !*old.own_marketing && *new.own_marketing {
                self.material(
                    users.clone(),
                    format!("recipient `{id}` may now use data for its own marketing"),
                );
            }
            for key in changed_keys(&to_json(old), &to_json(new)) {
                self.editorial(format!("recipient `{id}`: {key} changed"));
            }
        }
        let new_ids = ids(&self.new.recipients, |r| r.id.as_str());
        for old in &self.old.recipients {
            if !new_ids.contains(old.id.as_str()) {
                self.editorial(format!("recipient `{}` removed", old.id));
            }
        }
    }

    fn storage(&mut self) {
        for new in &self.new.storage {
            let old = self
                .old
                .storage
                .iter()
                .find(|o| o.id.as_str() == new.id.as_str());
            let moved = old.is_none_or(|o| *o.country != *new.country);
            if moved && is_transfer(self.new, &new.country) {
                self.material(
                    Vec::new(),
                    format!("new transfer: storage `{}` in {}", new.id, *new.country),
                );
            } else if old.is_none_or(|o| to_json(o) != to_json(new)) {
                self.editorial(format!("storage `{}` changed", new.id));
            }
        }
    }

    fn retention(&mut self) {
        for new in &self.new.retention {
            let Some(old) = self
                .old
                .retention
                .iter()
                .find(|o| o.id.as_str() == new.id.as_str())
            else {
                continue;
            };
            let (o, n) = (Period::parse(&old.duration), Period::parse(&new.duration));
            if let (Some(o), Some(n)) = (o, n) {
                if n.approximate_days() > o.approximate_days() {
                    let users = self
                        .new
                        .purposes
                        .iter()
                        .filter(|p| {
                            p.retention.as_deref().map(String::as_str) == Some(new.id.as_str())
                        })
                        .map(|p| p.id.to_string())
                        .collect();
                    self.material(
                        users,
                        format!("retention rule `{}` is longer: {o} became {n}", new.id),
                    );
                    continue;
                }
            }
            if to_json(old) != to_json(new) {
                self.editorial(format!("retention rule `{}` changed", new.id));
            }
        }
    }

    fn channels(&mut self) {
        for new in &self.new.marketing.channels {
            let old = self
                .old
                .marketing
                .channels
                .iter()
                .find(|o| o.channel.as_str() == new.channel.as_str());
            if let Some(old) = old {
                if *old.mode == ChannelMode::OptIn && *new.mode == ChannelMode::OptOut {
                    self.material(
                        Vec::new(),
                        format!(
                            "marketing by {} no longer needs prior consent",
                            *new.channel
                        ),
                    );
                }
            }
        }
    }

    fn cookies(&mut self) {
        for new in &self.new.cookies {
            let old = self
                .old
                .cookies
                .iter()
                .find(|o| o.name.as_str() == new.name.as_str());
            match old {
                None if *new.category != CookieCategory::StrictlyNecessary => {
                    let purposes = new.purpose.iter().map(|p| p.to_string()).collect();
                    self.material(
                        purposes,
                        format!("new {} cookie `{}`", *new.category, new.name),
                    );
                }
                None => self.editorial(format!("new strictly necessary cookie `{}`", new.name)),
                Some(old) if to_json(old) != to_json(new) => {
                    self.editorial(format!("cookie `{}` changed", new.name))
                }
                Some(_) => {}
            }
        }
    }
}

fn retention_days(policy: &Policy, rule: Option<&String>) -> Option<u64> {
    let rule = policy
        .retention
        .iter()
        .find(|r| Some(r.id.as_str()) == rule.map(String::as_str))?;
    Period::parse(&rule.duration).map(Period::approximate_days)
}

/// Whether sending data to `country` leaves the regime's own territory.
fn is_transfer(policy: &Policy, country: &str) -> bool {
    AdequacyList::for_regime(*policy.policy.regime).is_none_or(|list| {
        list.status(country, policy.policy.effective, false) != TransferStatus::Domestic
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{REFERENCE_POLICY, parse};

    fn changes(from: &str, to: &str) -> Vec<Change> {
        assert!(REFERENCE_POLICY.contains(from));
        let old = parse("old", REFERENCE_POLICY).unwrap();
        let new = parse("new", &REFERENCE_POLICY.replacen(from, to, 1)).unwrap();
        diff(&old, &new)
    }

    #[test]
    fn identical_policies_have_no_changes() {
        assert!(changes("version = \"2.0\"", "version = \"2.0\"").is_empty());
    }

    #[test]
    fn wording_is_editorial() {
        let c = changes(
            "Completing any transaction that you do with us.",
            "Completing your transactions.",
        );
        assert_eq!(c.len(), 1, "{c:?}");
        assert_eq!(c[0].class, Class::Editorial);
        assert!(!is_material(&c));
    }

    #[test]
    fn a_new_purpose_is_material_for_that_purpose() {
        let c = changes("id = \"business-transfer\"", "id = \"business-sale\"");
        let new = c
            .iter()
            .find(|c| c.what == "new purpose `business-sale`")
            .unwrap();
        assert_eq!(new.class, Class::Material);
        assert_eq!(new.purposes, vec!["business-sale".to_string()]);
    }

    #[test]
    fn a_changed_basis_is_material() {
        let c = changes(
            "interest = \"Learning what our customers think of our services so that we can improve them.\"\n",
            "",
        );
        assert!(!is_material(&c));
        let c = changes(
            "basis = \"contract\"\ncategories = [\"name\", \"email\", \"postal-address\", \"orders\"]",
            "basis = \"consent\"\ncategories = [\"name\", \"email\", \"postal-address\", \"orders\"]",
        );
        assert!(
            c.iter().any(|c| c.class == Class::Material
                && c.what
                    .contains("legal basis changed from contract to consent")),
            "{c:?}"
        );
    }

    #[test]
    fn longer_retention_is_material_and_shorter_is_not() {
        let c = changes("duration = \"13 months\"", "duration = \"26 months\"");
        assert!(is_material(&c));
        assert!(
            c.iter()
                .any(|c| c.purposes.contains(&"analytics-research".to_string()))
        );
        let c = changes("duration = \"13 months\"", "duration = \"6 months\"");
        assert!(!is_material(&c), "{c:?}");
    }

    #[test]
    fn new_recipient_category_and_transfer_are_material() {
        let c = changes(
            "id = \"business-acquirer\"\nname = \"A buyer of our business\"\nkind = \"acquirer\"\ndescription = \"Only in a sale or reorganisation of some or all of our business and assets.\"\ncountry = \"GB\"",
            "id = \"business-acquirer\"\nname = \"A buyer of our business\"\nkind = \"acquirer\"\ndescription = \"Only in a sale or reorganisation of some or all of our business and assets.\"\ncountry = \"US\"",
        );
        assert!(
            c.iter().any(|c| c.what.starts_with("new transfer to US")),
            "{c:?}"
        );
        let c = changes(
            "{ name = \"comments\", type = \"text\", description = \"your comments and survey answers\" },",
            "{ name = \"comments\", type = \"text\", description = \"your comments and survey answers\" },\n  { name = \"rating\", type = \"integer\" },",
        );
        assert!(
            c.iter()
                .any(|c| c.class == Class::Material && c.what.contains("new field `rating`")),
            "{c:?}"
        );
    }

    #[test]
    fn relying_on_the_soft_opt_in_or_ignoring_cookie_refusals_is_material() {
        let c = changes(
            "# Server logs, not cookies: a cookie refusal does not reach it.\nindependent_of_cookies = true",
            "",
        );
        assert!(!is_material(&c), "{c:?}");
        let c = changes(
            "lia = \"LIA-2026-03\" # example",
            "lia = \"LIA-2026-03\" # example\nindependent_of_cookies = true",
        );
        assert!(
            c.iter().any(|c| c.class == Class::Material
                && c.what
                    .contains("now reads data whatever cookies were refused")),
            "{c:?}"
        );
    }
}
