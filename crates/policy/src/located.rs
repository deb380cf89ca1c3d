//! A value with the place in the policy file it came from, so that every
//! semantic error can name a line and a column, and positions in a source text.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::ops::{Deref, Range};

/// A value parsed from the policy file, with its byte span in the source.
///
/// Policies built in code (tests, generators) use [`At::new`], whose span is
/// empty; errors about them then point at line 1, column 1.
#[derive(Debug, Clone)]
pub struct At<T> {
    value: T,
    span: Range<usize>,
}

impl<T> At<T> {
    pub fn new(value: T) -> Self {
        At { value, span: 0..0 }
    }

    pub fn span(&self) -> Range<usize> {
        self.span.clone()
    }

    pub fn into_inner(self) -> T {
        self.value
    }
}

/// Two located values are equal when their values are: where they were
/// written does not matter.
impl<T: PartialEq> PartialEq for At<T> {
    fn eq(&self, other: &Self) -> bool {
        self.value == other.value
    }
}

impl<T: Eq> Eq for At<T> {}

impl<T: Default> Default for At<T> {
    fn default() -> Self {
        At::new(T::default())
    }
}

impl<T> Deref for At<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.value
    }
}

impl<T: std::fmt::Display> std::fmt::Display for At<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.value.fmt(f)
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for At<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let spanned = toml::Spanned::<T>::deserialize(deserializer)?;
        let span = spanned.span();
        Ok(At {
            value: spanned.into_inner(),
            span,
        })
    }
}

impl<T: Serialize> Serialize for At<T> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.value.serialize(serializer)
    }
}

/// One-based line and column of a byte offset in `source`, counting columns in
/// characters so that a caret lines up in an editor.
pub fn line_column(source: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(source.len());
    let before = source.get(..offset).unwrap_or(source);
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let column = before.get(line_start..).map_or(0, |s| s.chars().count()) + 1;
    (line, column)
}

#[cfg(test)]
mod tests {
    use super::line_column;

    #[test]
    fn line_and_column_are_one_based() {
        let text = "a = 1\nbé = 2\n";
        assert_eq!(line_column(text, 0), (1, 1));
        assert_eq!(line_column(text, 6), (2, 1));
        // "é" is two bytes but one column.
        assert_eq!(line_column(text, 9), (2, 3));
        assert_eq!(line_column(text, 999), (3, 1));
    }
}
