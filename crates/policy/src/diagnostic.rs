//! Errors in a policy file: where, what is wrong, and what would be right.

use crate::located::line_column;
use std::ops::Range;

/// One problem found in a policy, located by byte span.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    pub span: Range<usize>,
    /// What is wrong.
    pub message: String,
    /// What would be right.
    pub hint: String,
}

impl Diagnostic {
    pub fn new(span: Range<usize>, message: impl Into<String>, hint: impl Into<String>) -> Self {
        Diagnostic {
            span,
            message: message.into(),
            hint: hint.into(),
        }
    }
}

/// Every problem found in one policy file, printable as
/// `FILE:LINE:COLUMN: what is wrong; what would be right`, one per line.
#[derive(Debug, Clone)]
pub struct PolicyErrors {
    pub file: String,
    pub source: String,
    pub diagnostics: Vec<Diagnostic>,
}

impl PolicyErrors {
    pub fn lines(&self) -> Vec<String> {
        self.diagnostics
            .iter()
            .map(|d| {
                let (line, column) = line_column(&self.source, d.span.start);
                format!("{}:{line}:{column}: {}; {}", self.file, d.message, d.hint)
            })
            .collect()
    }

    /// The messages alone, for tests and for callers that print their own places.
    pub fn messages(&self) -> Vec<&str> {
        self.diagnostics
            .iter()
            .map(|d| d.message.as_str())
            .collect()
    }
}

impl std::fmt::Display for PolicyErrors {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.lines().join("\n"))
    }
}

impl std::error::Error for PolicyErrors {}
