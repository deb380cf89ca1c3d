//! Custodian's vault: the crypto, the key file, the store (SQLite and
//! PostgreSQL behind one type, with group commit) and the audit chain.

pub mod audit;
pub mod crypto;
pub mod keyfile;
pub mod signed;
pub mod store;
