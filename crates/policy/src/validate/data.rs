//! The data the policy declares: categories and what each requires,
//! relationships, and retention rules.

use super::*;

impl Checker<'_> {
    pub(super) fn categories(&mut self) {
        for category in &self.policy.categories {
            let referrer = format!("category `{}`", category.id);
            if *category.sensitivity == Sensitivity::Special && category.art9_condition.is_none() {
                self.error(
                    category.id.span(),
                    format!(
                        "special-category data `{}` has no Art. 9 condition",
                        category.id
                    ),
                    format!(
                        "add art9_condition, one of: {}",
                        Art9Condition::ALL
                            .iter()
                            .map(|c| c.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                );
            }
            if let (Some(condition), Sensitivity::Ordinary) =
                (&category.art9_condition, *category.sensitivity)
            {
                self.error(
                    condition.span(),
                    format!(
                        "category `{}` has an Art. 9 condition but is not special-category data",
                        category.id
                    ),
                    "remove art9_condition, or mark the category `sensitivity = \"special\"`",
                );
            }
            self.requirement(category);
            if category.fields.is_empty() {
                self.error(
                    category.id.span(),
                    format!("category `{}` declares no fields", category.id),
                    "list its fields, each with a name and a type",
                );
            }
            if let Some(retention) = &category.retention {
                self.retention_reference(retention, &referrer);
            } else {
                // A purpose without retention is reported on its own.
                let used_by_a_purpose = self.policy.purposes.iter().any(|p| {
                    p.categories
                        .iter()
                        .any(|c| c.split('.').next() == Some(category.id.as_str()))
                });
                if !used_by_a_purpose {
                    self.error(
                        category.id.span(),
                        format!("category `{}` has no retention rule", category.id),
                        "give it `retention = \"<rule id>\"`, or use it in a purpose that has one",
                    );
                }
            }
        }
    }

    /// Art. 13(2)(e), for data the person gives.
    pub(super) fn requirement(&mut self, category: &Category) {
        if *category.source != DataSource::Provided {
            return;
        }
        match &category.requirement {
            None => self.error(
                category.id.span(),
                format!("category `{}` does not say whether the person must provide it", category.id),
                "add `requirement = \"statutory\"`, \"contractual\", \"contract-entry\" or \"voluntary\", with `if_not_provided = \"...\"` (Art. 13(2)(e))",
            ),
            Some(r)
                if **r != Requirement::Voluntary
                    && category.if_not_provided.as_ref().is_none_or(|t| t.trim().is_empty()) =>
            {
                self.error(
                    r.span(),
                    format!("category `{}` is {} but does not say what happens if it is not provided", category.id, r.label()),
                    "add `if_not_provided = \"...\"`, e.g. \"we cannot take your order\" (Art. 13(2)(e))",
                )
            }
            Some(_) => {}
        }
    }

    pub(super) fn relationships(&mut self) {
        for relationship in &self.policy.relationships {
            let referrer = format!("relationship `{}`", relationship.id);
            self.subject_references(&relationship.subjects, &referrer);
            if relationship.ended_by.is_empty() {
                self.error(
                    relationship.id.span(),
                    format!(
                        "relationship `{}` does not say what ends it",
                        relationship.id
                    ),
                    "list the events in `ended_by`, e.g. [\"account closed\"]",
                );
            }
        }
    }

    pub(super) fn retention_rules(&mut self) {
        let relationships: Vec<&str> = self
            .policy
            .relationships
            .iter()
            .map(|r| r.id.as_str())
            .collect();
        for rule in &self.policy.retention {
            if Period::parse(&rule.duration).is_none() {
                self.error(
                    rule.duration.span(),
                    format!(
                        "retention rule `{}` has an unreadable duration `{}`",
                        rule.id, *rule.duration
                    ),
                    "write a number and a unit, e.g. \"6 years\", \"13 months\" or \"30 days\"",
                );
            }
            if let Some(every) = &rule.review_every {
                if Period::parse(every).is_none() {
                    self.error(
                        every.span(),
                        format!(
                            "retention rule `{}` has an unreadable review interval `{}`",
                            rule.id, **every
                        ),
                        "write a number and a unit, e.g. \"1 year\" or \"6 months\"",
                    );
                }
            }
            match (&*rule.from, &rule.year_end) {
                (RetentionEvent::AccountingPeriodEnd, None) => self.error(
                    rule.from.span(),
                    format!(
                        "retention rule `{}` runs from the end of an accounting period but does not say when the accounting year ends",
                        rule.id
                    ),
                    "add `year_end = \"MM-DD\"`, the last day of the accounting year (e.g. \"03-31\")",
                ),
                (RetentionEvent::AccountingPeriodEnd, Some(end))
                    if crate::retention::parse_year_end(end).is_none() =>
                {
                    self.error(
                        end.span(),
                        format!("retention rule `{}` has an unreadable year end `{}`", rule.id, **end),
                        "write the month and day as \"MM-DD\", e.g. \"03-31\"",
                    )
                }
                (RetentionEvent::AccountingPeriodEnd, Some(_)) | (_, None) => {}
                (_, Some(end)) => self.error(
                    end.span(),
                    format!(
                        "retention rule `{}` gives a year end but does not run from the end of an accounting period",
                        rule.id
                    ),
                    "remove `year_end`, or use `from = \"accounting-period-end\"`",
                ),
            }
            match (&*rule.from, &rule.relationship) {
                (RetentionEvent::RelationshipEnd, None) => self.error(
                    rule.from.span(),
                    format!("retention rule `{}` runs from a relationship's end but names no relationship", rule.id),
                    "add `relationship = \"<relationship id>\"`",
                ),
                (_, Some(r)) => {
                    let referrer = format!("retention rule `{}`", rule.id);
                    self.reference(r, "relationship", &relationships, &referrer);
                }
                _ => {}
            }
        }
    }
}
