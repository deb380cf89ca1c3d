//! The key file: the key-encryption keys, the blind-index key and the
//! pseudonym key, kept outside the database (mode 0600), so that a copy of the
//! database alone reveals nothing.

use crate::crypto::{KEY_LEN, Kek, Keyring, Secret};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use serde::{Deserialize, Serialize};
use std::io::Write;
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum KeyFileError {
    #[error("cannot read the key file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot write the key file {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the key file {path} is not valid: {reason}")]
    Invalid { path: PathBuf, reason: String },
    #[error(
        "the key file {path} can be read by other users (mode {mode:o}); run `chmod 600 {path}`"
    )]
    TooOpen { path: PathBuf, mode: u32 },
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct KeyFile {
    format: u32,
    current_kek: u32,
    blind_index_key: String,
    pseudonym_key: String,
    /// Ed25519 seed that signs consent receipts (added to older files on load).
    #[serde(default)]
    receipt_key: Option<String>,
    /// HMAC key of the audit chain (added to older files on load): kept
    /// here, apart from the database, so that a database writer cannot
    /// recompute the chain.
    #[serde(default)]
    audit_key: Option<String>,
    kek: Vec<KekEntry>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct KekEntry {
    id: u32,
    key: String,
    created: String,
}

const HEADER: &str = "# Custodian key file. Keep it secret, and back it up apart from the database:\n\
# without it the data cannot be read; with it and the database, it can.\n";

/// Loads the key file, or creates one with fresh keys if none exists.
/// Returns the keyring and whether the file was created.
pub fn load_or_create(path: &Path) -> Result<(Keyring, bool), KeyFileError> {
    if path.exists() {
        return load(path).map(|k| (k, false));
    }
    let now = now_rfc3339();
    let file = KeyFile {
        format: 1,
        current_kek: 1,
        blind_index_key: B64.encode(Secret::random().as_bytes()),
        pseudonym_key: B64.encode(Secret::random().as_bytes()),
        receipt_key: Some(B64.encode(Secret::random().as_bytes())),
        audit_key: Some(B64.encode(Secret::random().as_bytes())),
        kek: vec![KekEntry {
            id: 1,
            key: B64.encode(Secret::random().as_bytes()),
            created: now,
        }],
    };
    write_new(path, &file)?;
    load(path).map(|k| (k, true))
}

fn write_new(path: &Path, file: &KeyFile) -> Result<(), KeyFileError> {
    let text = toml::to_string(file).map_err(|e| KeyFileError::Invalid {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })?;
    let err = |source| KeyFileError::Write {
        path: path.to_path_buf(),
        source,
    };
    if let Some(parent) = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty() && !p.exists())
    {
        std::fs::create_dir_all(parent).map_err(err)?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(parent, std::fs::Permissions::from_mode(0o700))
                .map_err(err)?;
        }
    }
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut f = options.open(path).map_err(err)?;
    f.write_all(HEADER.as_bytes()).map_err(err)?;
    f.write_all(text.as_bytes()).map_err(err)?;
    f.sync_all().map_err(err)
}

pub fn load(path: &Path) -> Result<Keyring, KeyFileError> {
    let file = read(path)?;
    keyring(path, &file)
}

/// Adds a new key-encryption key and makes it the current one: data keys
/// made from now on are wrapped by it. The older keys stay, so that data keys
/// they wrap still open until `custodian keys rewrap` moves them over.
/// Returns the new key's id.
pub fn add_kek(path: &Path) -> Result<u32, KeyFileError> {
    let mut file = read(path)?;
    let id = file.kek.iter().map(|k| k.id).max().unwrap_or(0) + 1;
    file.kek.push(KekEntry {
        id,
        key: B64.encode(Secret::random().as_bytes()),
        created: now_rfc3339(),
    });
    file.current_kek = id;
    keyring(path, &file)?;
    replace(path, &file)?;
    Ok(id)
}

/// Removes a key-encryption key other than the current one. The caller
/// makes sure first that no data key is still wrapped by it.
pub fn remove_kek(path: &Path, id: u32) -> Result<(), KeyFileError> {
    let invalid = |reason: String| invalid_file(path, reason);
    let mut file = read(path)?;
    if id == file.current_kek {
        return Err(invalid(format!(
            "key-encryption key {id} is the current one; add another first (`custodian keys rotate`)"
        )));
    }
    let before = file.kek.len();
    file.kek.retain(|k| k.id != id);
    if file.kek.len() == before {
        return Err(invalid(format!("there is no key-encryption key {id}")));
    }
    replace(path, &file)
}

fn invalid_file(path: &Path, reason: String) -> KeyFileError {
    KeyFileError::Invalid {
        path: path.to_path_buf(),
        reason,
    }
}

fn now_rfc3339() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

/// Writes the file anew beside the old one, then renames it into place, so
/// that a crash leaves either the old file or the new one, never half.
fn replace(path: &Path, file: &KeyFile) -> Result<(), KeyFileError> {
    let tmp = path.with_extension("toml.new");
    let _ = std::fs::remove_file(&tmp);
    write_new(&tmp, file)?;
    std::fs::rename(&tmp, path).map_err(|source| KeyFileError::Write {
        path: path.to_path_buf(),
        source,
    })
}

/// Reads and parses the key file, refusing one that others can read; a file
/// from before receipts gets a signing key added.
fn read(path: &Path) -> Result<KeyFile, KeyFileError> {
    let invalid = |reason: String| invalid_file(path, reason);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let meta = std::fs::metadata(path).map_err(|source| KeyFileError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            return Err(KeyFileError::TooOpen {
                path: path.to_path_buf(),
                mode,
            });
        }
    }
    let text = std::fs::read_to_string(path).map_err(|source| KeyFileError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let mut file: KeyFile = toml::from_str(&text).map_err(|e| invalid(e.message().to_string()))?;
    let mut added = false;
    if file.receipt_key.is_none() {
        // A key file from before receipts: add a signing key, keeping the rest.
        file.receipt_key = Some(B64.encode(Secret::random().as_bytes()));
        added = true;
    }
    if file.audit_key.is_none() {
        // A key file from before the keyed audit chain: add its key.
        file.audit_key = Some(B64.encode(Secret::random().as_bytes()));
        added = true;
    }
    if added {
        replace(path, &file)?;
    }
    Ok(file)
}

fn keyring(path: &Path, file: &KeyFile) -> Result<Keyring, KeyFileError> {
    let invalid = |reason: String| invalid_file(path, reason);
    if file.format != 1 {
        return Err(invalid(format!(
            "format {} is not known; this build reads format 1",
            file.format
        )));
    }
    let secret = |name: &str, text: &str| -> Result<Secret, KeyFileError> {
        let bytes = B64
            .decode(text)
            .map_err(|_| invalid(format!("{name} is not base64")))?;
        <[u8; KEY_LEN]>::try_from(bytes.as_slice())
            .map(Secret::from_bytes)
            .map_err(|_| invalid(format!("{name} is not {KEY_LEN} bytes")))
    };
    let mut keks = Vec::new();
    for entry in &file.kek {
        let key = secret(&format!("kek {}", entry.id), &entry.key)?;
        keks.push(Kek::new(entry.id, &key).map_err(|e| invalid(e.to_string()))?);
    }
    if !file.kek.iter().any(|k| k.id == file.current_kek) {
        return Err(invalid(format!(
            "current_kek {} is not among the keys",
            file.current_kek
        )));
    }
    let receipt = secret(
        "receipt_key",
        file.receipt_key.as_deref().unwrap_or_default(),
    )?;
    let audit = secret("audit_key", file.audit_key.as_deref().unwrap_or_default())?;
    Keyring::new(
        keks,
        file.current_kek,
        &secret("blind_index_key", &file.blind_index_key)?,
        &secret("pseudonym_key", &file.pseudonym_key)?,
    )
    .with_receipt_key(&receipt)
    .map(|k| k.with_audit_key(crate::audit::AuditKey::new(&audit)))
    .map_err(|e| invalid(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The ids of the key-encryption keys in the file, and the current one.
    fn kek_ids(path: &Path) -> Result<(Vec<u32>, u32), KeyFileError> {
        let file = read(path)?;
        Ok((file.kek.iter().map(|k| k.id).collect(), file.current_kek))
    }

    #[test]
    fn created_once_with_mode_0600_then_loaded() {
        let dir =
            std::env::temp_dir().join(format!("custodian-keyfile-{}", crate::crypto::new_id()));
        let path = dir.join("keys.toml");
        let (ring, created) = load_or_create(&path).unwrap();
        assert!(created);
        let subject = crate::crypto::new_id();
        let (_, wrapped) = ring.new_data_key(&subject).unwrap();
        let (again, created) = load_or_create(&path).unwrap();
        assert!(!created);
        assert!(again.unwrap(&subject, &wrapped).is_ok());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600);
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
            assert!(matches!(load(&path), Err(KeyFileError::TooOpen { .. })));
        }
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_rotation_adds_a_current_kek_and_keeps_the_old_until_retired() {
        let dir =
            std::env::temp_dir().join(format!("custodian-keyfile-{}", crate::crypto::new_id()));
        let path = dir.join("keys.toml");
        let (ring, _) = load_or_create(&path).unwrap();
        let subject = crate::crypto::new_id();
        let (_, old) = ring.new_data_key(&subject).unwrap();
        assert_eq!(add_kek(&path).unwrap(), 2);
        assert_eq!(kek_ids(&path).unwrap(), (vec![1, 2], 2));
        let ring = load(&path).unwrap();
        assert_eq!(ring.current_kek(), 2);
        // Keys wrapped by the old KEK still open, and move to the new one.
        let moved = ring.rewrap(&subject, &old).unwrap();
        assert_eq!(moved.kek_id, 2);
        assert!(ring.unwrap(&subject, &old).is_ok());
        // The current key cannot be retired; an unknown one is named.
        assert!(remove_kek(&path, 2).is_err());
        assert!(
            remove_kek(&path, 9)
                .unwrap_err()
                .to_string()
                .contains("no key-encryption key 9")
        );
        remove_kek(&path, 1).unwrap();
        let ring = load(&path).unwrap();
        assert!(ring.unwrap(&subject, &moved).is_ok());
        assert!(ring.unwrap(&subject, &old).is_err());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600);
        }
        std::fs::remove_dir_all(dir).unwrap();
    }
}
