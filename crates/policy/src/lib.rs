//! Custodian's policy language and the pure core that stands on it.
//!
//! A policy file (TOML) declares the controller, the data categories, the
//! purposes with their legal bases, the recipients, transfers, retention,
//! marketing channels and cookies. [`load`] parses and validates it, reporting
//! every fault with its line and column; [`decision::decide`] answers, for one
//! subject and one request, which fields may be read; `render` turns the same
//! file into the published notice, the cookie policy and the record of
//! processing; `diff` classes the changes between two versions.

pub mod compiled;
pub mod consent;
pub mod datasets;
pub mod datasets_retention;
pub mod datasets_rights;
pub mod datasets_schema;
pub mod day;
pub mod decision;
pub mod diagnostic;
pub mod diff;
pub mod disclosure;
pub mod drp;
pub mod located;
pub mod model;
pub mod period;
pub mod render;
pub mod requests;
mod requests_clock;
pub mod retention;
pub mod rules;
pub mod terms;
pub mod validate;
pub mod values;

pub use compiled::CompiledPolicy;
pub use diagnostic::{Diagnostic, PolicyErrors};
pub use model::Policy;

/// The reference customer's policy, shipped so that `custodian serve` runs
/// with no configuration.
pub const REFERENCE_POLICY: &str = include_str!("../../../policies/i-image-it.toml");
pub const REFERENCE_POLICY_FILE: &str = "policies/i-image-it.toml";

/// A policy that parsed and validated, with its decision tables.
#[derive(Debug, Clone)]
pub struct LoadedPolicy {
    pub document: Policy,
    pub compiled: CompiledPolicy,
}

/// Parses only: syntax, shape, unknown keys and types.
pub fn parse(file: &str, source: &str) -> Result<Policy, PolicyErrors> {
    toml::from_str::<Policy>(source).map_err(|e| PolicyErrors {
        file: file.to_string(),
        source: source.to_string(),
        diagnostics: vec![parse_diagnostic(&e)],
    })
}

/// Parses and validates; every fault found is reported.
pub fn load(file: &str, source: &str) -> Result<LoadedPolicy, PolicyErrors> {
    let document = parse(file, source)?;
    let diagnostics = validate::validate(&document);
    let fail = |diagnostics| PolicyErrors {
        file: file.to_string(),
        source: source.to_string(),
        diagnostics,
    };
    if !diagnostics.is_empty() {
        return Err(fail(diagnostics));
    }
    let compiled = CompiledPolicy::new(&document)
        .map_err(|e| fail(vec![Diagnostic::new(0..0, e.to_string(), "fix the policy")]))?;
    Ok(LoadedPolicy { document, compiled })
}

/// The reference policy, loaded.
pub fn reference() -> Result<LoadedPolicy, PolicyErrors> {
    load(REFERENCE_POLICY_FILE, REFERENCE_POLICY)
}

fn parse_diagnostic(error: &toml::de::Error) -> Diagnostic {
    let span = error.span().unwrap_or(0..0);
    let message = error.message().trim().replace('\n', " ");
    // toml's messages read "unknown field `x`, expected one of ..." or
    // "invalid type: ..., expected ...": split what is wrong from what is right.
    match message.split_once(", expected ") {
        Some((wrong, right)) => {
            Diagnostic::new(span, wrong.to_string(), format!("expected {right}"))
        }
        None => Diagnostic::new(span, message, "see the policy reference in the README"),
    }
}
