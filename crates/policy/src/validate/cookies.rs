//! The cookie banner's declarations, and the limits that keep the
//! compiled decision tables fixed-size.

use super::*;

impl Checker<'_> {
    pub(super) fn cookies(&mut self) {
        let p = self.policy;
        for cookie in p.cookies.iter().filter(|c| *c.local_storage) {
            if *cookie.category != CookieCategory::StrictlyNecessary
                || cookie.provider.as_str() != "first-party"
            {
                self.error(
                    cookie.local_storage.span(),
                    format!("cookie `{}` is kept in local storage but is not a strictly necessary first-party entry", cookie.name),
                    "only the banner's own record of the visitor's choice is kept in local storage: mark that entry, strictly necessary and first-party",
                );
            }
        }
        let optional = p
            .cookies
            .iter()
            .find(|c| *c.category != CookieCategory::StrictlyNecessary);
        match (optional, p.choice_storage()) {
            (Some(first), None) => self.error(
                first.name.span(),
                "the policy sets cookies that need consent but declares no place for the visitor's choice".into(),
                "declare the banner's record as a strictly necessary first-party cookie with `local_storage = true` and a duration (how long the choice is kept before asking again)",
            ),
            (Some(_), Some(storage)) if storage.duration.as_str() == "session" => self.error(
                storage.duration.span(),
                format!("cookie `{}` keeps the visitor's choice for the session only", storage.name),
                "give a duration such as \"6 months\": the banner asks again when it ends",
            ),
            _ => {}
        }
        let mut providers: Vec<&str> = vec!["first-party"];
        providers.extend(p.recipients.iter().map(|r| r.id.as_str()));
        let purposes: Vec<&str> = p.purposes.iter().map(|x| x.id.as_str()).collect();
        for cookie in &p.cookies {
            let what = format!("cookie `{}`", cookie.name);
            self.reference(&cookie.provider, "provider", &providers, &what);
            if cookie.duration.as_str() != "session" && Period::parse(&cookie.duration).is_none() {
                self.error(
                    cookie.duration.span(),
                    format!("{what} has an unreadable duration `{}`", *cookie.duration),
                    "write \"session\" or a number and a unit, e.g. \"2 years\"",
                );
            }
            if let Some(purpose) = &cookie.purpose {
                if !purposes.contains(&purpose.as_str()) {
                    // Reported once, as an unknown reference.
                    self.reference(purpose, "purpose", &purposes, &what);
                    continue;
                }
            }
            for fed in &cookie.feeds {
                self.data_reference(fed, &what);
            }
            if *cookie.category == CookieCategory::StrictlyNecessary {
                continue;
            }
            if let Some(own) = cookie
                .purpose
                .as_ref()
                .and_then(|id| p.purposes.iter().find(|x| x.id.as_str() == id.as_str()))
            {
                if own.independent_of_cookies {
                    self.error(
                        own.id.span(),
                        format!("purpose `{}` covers {what} but is marked independent_of_cookies", own.id),
                        "remove `independent_of_cookies`: the purpose that sets a cookie uses what it produces",
                    );
                }
                for fed in &cookie.feeds {
                    let category = fed.split_once('.').map_or(fed.as_str(), |(c, _)| c);
                    let read = own
                        .categories
                        .iter()
                        .any(|c| c.as_str() == fed.as_str() || c.as_str() == category);
                    let known = p.categories.iter().any(|c| c.id.as_str() == category);
                    if known && !read {
                        self.error(
                            fed.span(),
                            format!("{what} feeds `{}`, which its purpose `{}` does not read", **fed, own.id),
                            format!("add `{}` to the categories of purpose `{}`, or remove it from `feeds`", **fed, own.id),
                        );
                    }
                }
            }
            let consent_purpose = cookie.purpose.as_ref().and_then(|id| {
                p.purposes
                    .iter()
                    .find(|x| x.id.as_str() == id.as_str())
                    .map(|x| *x.basis == LegalBasis::Consent)
            });
            if consent_purpose != Some(true) {
                self.error(
                    cookie.category.span(),
                    format!(
                        "{what} is {} (not strictly necessary) but has no consent purpose",
                        cookie.category.label().to_lowercase()
                    ),
                    "set `purpose = \"<id>\"` to a purpose whose basis is consent (PECR reg. 6)",
                );
            }
        }
    }

    pub(super) fn limits(&mut self) {
        let p = self.policy;
        let fields = p.categories.iter().map(|c| c.fields.len()).sum::<usize>();
        let span = p.policy.version.span();
        if fields > MAX_FIELDS {
            self.error(
                span.clone(),
                format!("the policy declares {fields} fields"),
                format!("at most {MAX_FIELDS} are supported"),
            );
        }
        if p.recipients.len() > MAX_RECIPIENTS {
            self.error(
                span.clone(),
                "too many recipients".into(),
                format!("at most {MAX_RECIPIENTS}"),
            );
        }
        if p.subjects.len() > MAX_RELATIONSHIPS {
            self.error(
                span.clone(),
                "too many subject categories".into(),
                format!("at most {MAX_RELATIONSHIPS}"),
            );
        }
        if p.relationships.len() > MAX_RELATIONSHIPS {
            self.error(
                span,
                "too many relationship kinds".into(),
                format!("at most {MAX_RELATIONSHIPS}"),
            );
        }
    }
}
