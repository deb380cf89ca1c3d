//! Typed identifiers for what a path segment names.
//!
//! Each is parsed once, where the text comes in, and only a well-formed one
//! can exist afterwards: a subject id cannot be passed where a request id is
//! meant, and a malformed segment never reaches a use case or the store. A
//! segment that does not parse answers the same "not found" as a well-formed
//! id that names nothing, so its shape tells a prober nothing more.

use crate::AppError;
use std::fmt;
use std::str::FromStr;
use uuid::Uuid;

macro_rules! uuid_id {
    ($(#[$doc:meta])* $name:ident, $missing:expr) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(Uuid);

        impl $name {
            pub fn new(id: Uuid) -> Self {
                Self(id)
            }

            pub fn uuid(self) -> Uuid {
                self.0
            }

            /// The answer for a segment that names no such thing.
            pub fn missing() -> AppError {
                $missing
            }
        }

        impl FromStr for $name {
            type Err = AppError;

            fn from_str(text: &str) -> Result<Self, AppError> {
                Uuid::parse_str(text).map(Self).map_err(|_| Self::missing())
            }
        }

        impl From<$name> for Uuid {
            fn from(id: $name) -> Uuid {
                id.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }
    };
}

uuid_id!(
    /// A data subject in the vault.
    SubjectId,
    AppError::SubjectNotFound
);
uuid_id!(
    /// A data-subject request in the register.
    RequestId,
    AppError::NotFound("no request with this id".into())
);
uuid_id!(
    /// One event of the consent ledger (a receipt names it).
    ConsentEventId,
    AppError::NotFound("no consent event with this id".into())
);
uuid_id!(
    /// A legal hold.
    HoldId,
    AppError::NotFound("no legal hold in force with this id".into())
);

/// An API key's public id, `ck_` and 1 to 64 letters, digits, `-` or `_`
/// (the part before the secret of `ck_<id>_<secret>`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct KeyId(String);

impl KeyId {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for KeyId {
    type Err = AppError;

    fn from_str(text: &str) -> Result<Self, AppError> {
        let well_formed = text.strip_prefix("ck_").is_some_and(|rest| {
            (1..=64).contains(&rest.len())
                && rest
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        });
        if well_formed {
            Ok(Self(text.to_string()))
        } else {
            Err(AppError::NotFound("no key with this id".into()))
        }
    }
}

impl fmt::Display for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A browser's visitor id as the banner makes it: 16 to 64 letters, digits,
/// `-` or `_`. Anything else names no visitor.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct VisitorId(String);

impl VisitorId {
    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn is_well_formed(text: &str) -> bool {
        (16..=64).contains(&text.len())
            && text
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    }
}

impl FromStr for VisitorId {
    type Err = AppError;

    fn from_str(text: &str) -> Result<Self, AppError> {
        if Self::is_well_formed(text) {
            Ok(Self(text.to_string()))
        } else {
            Err(AppError::NotFound("no visitor with this id".into()))
        }
    }
}

impl fmt::Display for VisitorId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_malformed_segment_is_not_found_of_its_own_kind() {
        assert!(matches!(
            "not-a-uuid".parse::<SubjectId>(),
            Err(AppError::SubjectNotFound)
        ));
        let Err(AppError::NotFound(why)) = "x".parse::<RequestId>() else {
            panic!("a malformed request id must be not found");
        };
        assert_eq!(why, "no request with this id");
        let id = Uuid::from_u128(7);
        assert_eq!(
            id.to_string().parse::<SubjectId>().map(Uuid::from).ok(),
            Some(id)
        );
    }

    #[test]
    fn key_and_visitor_ids_keep_to_their_alphabet() {
        assert!("ck_abc-DEF_1".parse::<KeyId>().is_ok());
        for bad in [
            "",
            "ck_",
            "abc",
            "ck_a b",
            "ck_é",
            &format!("ck_{}", "a".repeat(65)),
        ] {
            assert!(bad.parse::<KeyId>().is_err(), "{bad:?}");
        }
        assert!("0123456789abcdef".parse::<VisitorId>().is_ok());
        for bad in ["short", "0123456789abcde/", &"a".repeat(65)] {
            assert!(bad.parse::<VisitorId>().is_err(), "{bad:?}");
        }
    }
}
