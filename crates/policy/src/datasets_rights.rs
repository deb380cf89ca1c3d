//! The rights beyond access and erasure, as the datasets declare them:
//! which categories a portability archive carries (Art. 20), which fields
//! a rectification corrects (Art. 16), and how a restriction is marked
//! (Art. 18). Their validation, with file, line and column.

use crate::datasets::{Dataset, MarkValue, System, endpoint};
use crate::diagnostic::Diagnostic;
use crate::model::Policy;
use crate::terms::LegalBasis;
use std::collections::BTreeSet;

/// The categories Art. 20 covers: those a purpose resting on consent or
/// on a contract processes, as the vault's own archive counts them. A
/// dataset's column of another category (a score the organisation
/// derived, data kept on a legal obligation) stays out of the archive.
pub fn portable_categories(policy: &Policy) -> BTreeSet<String> {
    policy
        .purposes
        .iter()
        .filter(|p| matches!(*p.basis, LegalBasis::Consent | LegalBasis::Contract))
        .flat_map(|p| p.categories.iter().map(|c| c.to_string()))
        .collect()
}

/// Whether a dataset's category reference (`category` or
/// `category.field`) is one Art. 20 covers: the purposes name it, or name
/// its whole category. A whole category of which the purposes name one
/// field only is not covered.
pub fn is_portable(portable: &BTreeSet<String>, category: &str) -> bool {
    portable.contains(category)
        || category
            .split_once('.')
            .is_some_and(|(c, _)| portable.contains(c))
}

/// Checks the rectification and restriction declarations of `d`.
pub fn validate(policy: &Policy, d: &Dataset, out: &mut Vec<Diagnostic>) {
    let vault_fields: BTreeSet<&str> = policy
        .categories
        .iter()
        .flat_map(|c| c.fields.iter())
        .map(|f| f.name.as_str())
        .collect();
    let fields = d
        .tables
        .iter()
        .flat_map(|t| t.fields.iter().map(move |f| (t.name.as_str(), f)))
        .chain(
            d.keys
                .iter()
                .flat_map(|k| k.fields.iter().map(move |f| (k.pattern.as_str(), f))),
        );
    for (owner, f) in fields {
        let Some(from) = &f.rectify else { continue };
        if !vault_fields.contains(from.as_str()) {
            out.push(Diagnostic::new(
                from.span(),
                format!(
                    "`{owner}.{}` is rectified from `{}`, which is not a field of the vault",
                    *f.name, **from
                ),
                "name a field declared under [[categories]] whose corrections this field takes",
            ));
        }
        if f.references.is_some() {
            out.push(Diagnostic::new(
                from.span(),
                format!(
                    "`{owner}.{}` refers to another table and cannot be rectified",
                    *f.name
                ),
                "a reference is a key, not a value the person corrects; remove `rectify`",
            ));
        }
    }
    for t in &d.tables {
        let Some(mark) = &t.restrict else { continue };
        if mark.column.trim().is_empty() {
            out.push(Diagnostic::new(
                mark.column.span(),
                format!(
                    "table `{}` marks restriction in a column without a name",
                    *t.name
                ),
                "name the column, such as `restrict = { column = \"processing_restricted\" }`",
            ));
        } else if t
            .fields
            .iter()
            .any(|f| f.name.as_str() == mark.column.as_str())
        {
            out.push(Diagnostic::new(
                mark.column.span(),
                format!(
                    "table `{}` marks restriction in `{}`, a field declared as personal data",
                    *t.name, *mark.column
                ),
                "the mark would overwrite the person's data: use a column of its own",
            ));
        }
        if let Some(lifted) = &mark.lifted {
            let same = matches!(
                (&*mark.value, &**lifted),
                (MarkValue::Bool(_), MarkValue::Bool(_))
                    | (MarkValue::Int(_), MarkValue::Int(_))
                    | (MarkValue::Text(_), MarkValue::Text(_))
            );
            if !same || **lifted == *mark.value {
                out.push(Diagnostic::new(
                    lifted.span(),
                    format!(
                        "table `{}`: the lifted value must differ from the restricted one and be of its kind",
                        *t.name
                    ),
                    "write both as booleans, integers or strings, such as `value = 1, lifted = 0`",
                ));
            }
        }
    }
    if *d.system == System::Http {
        for r in &d.resources {
            match (&r.restrict, &r.lift) {
                (Some(_), None) | (None, Some(_)) => out.push(Diagnostic::new(
                    r.name.span(),
                    format!(
                        "resource `{}` declares only one of `restrict` and `lift`",
                        *r.name
                    ),
                    "a restriction that cannot be lifted (or the reverse) is half a mechanism: declare both",
                )),
                _ => {}
            }
            for e in [r.rectify.as_ref(), r.restrict.as_ref(), r.lift.as_ref()]
                .into_iter()
                .flatten()
            {
                endpoint(e, &r.identity, out);
            }
        }
    }
}

#[cfg(test)]
#[path = "datasets_rights_tests.rs"]
mod tests;
