//! Envelope encryption, blind indexes and pseudonyms.
//!
//! - A key-encryption key (KEK) lives in the key file, never in the database.
//! - Each subject has a random 256-bit data key, stored only wrapped by the KEK
//!   (AES-256-GCM, the subject id as associated data). Destroying the wrapped
//!   key erases the subject everywhere, backups included (crypto-shredding).
//! - Each field is sealed with AES-256-GCM under the subject's data key, a
//!   fresh random nonce, and the subject id and field name as associated data,
//!   so a sealed value cannot be moved to another subject or field.
//! - Lookups (email, phone) go through HMAC-SHA256 blind indexes under a
//!   separate key; recipients that must not identify people get HMAC pseudonyms
//!   under a key derived per recipient.
//! - Nonces and keys come from the thread-local CSPRNG (ChaCha, seeded from the
//!   OS and reseeded periodically), not from a system call each time.

use rand::RngCore;
use ring::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use ring::hmac;
use uuid::Uuid;
use zeroize::Zeroize;

pub const KEY_LEN: usize = 32;
const TAG_LEN: usize = 16;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CryptoError {
    #[error(
        "a sealed value failed authentication (wrong key, subject or field, or the data was altered)"
    )]
    Authentication,
    #[error("a sealed value is too short to be valid")]
    Truncated,
    #[error("no key-encryption key with id {0} is in the key file")]
    UnknownKek(u32),
    #[error("a key was rejected by the cipher")]
    Key,
}

/// Random bytes from the thread-local CSPRNG.
pub fn random_bytes<const N: usize>() -> [u8; N] {
    let mut out = [0u8; N];
    rand::rng().fill_bytes(&mut out);
    out
}

/// A new time-ordered id (UUID v7), so that new rows land at the end of the
/// primary-key index instead of splitting pages at random.
pub fn new_id() -> Uuid {
    let now = time::OffsetDateTime::now_utc();
    let millis = u64::try_from(now.unix_timestamp_nanos() / 1_000_000).unwrap_or(0);
    uuid::Builder::from_unix_timestamp_millis(millis, &random_bytes::<10>()).into_uuid()
}

/// JSON with object keys sorted at every level and no insignificant space:
/// the exact bytes a signature over a JSON document (a consent receipt)
/// covers, whoever serialised it.
pub fn canonical_json(value: &serde_json::Value) -> String {
    match value {
        serde_json::Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            let parts: Vec<String> = keys
                .into_iter()
                .map(|k| {
                    format!(
                        "{}:{}",
                        serde_json::Value::String(k.clone()),
                        map.get(k).map_or_else(String::new, canonical_json)
                    )
                })
                .collect();
            format!("{{{}}}", parts.join(","))
        }
        serde_json::Value::Array(items) => format!(
            "[{}]",
            items
                .iter()
                .map(canonical_json)
                .collect::<Vec<_>>()
                .join(",")
        ),
        other => other.to_string(),
    }
}

/// Verifies an Ed25519 signature (a consent receipt's).
pub fn verify_ed25519(public_key: &[u8], message: &[u8], signature: &[u8]) -> bool {
    ring::signature::UnparsedPublicKey::new(&ring::signature::ED25519, public_key)
        .verify(message, signature)
        .is_ok()
}

/// SHA-256, for API key hashes (tokens are random, so no slow hash is needed).
/// SHA-256 over data that arrives in pieces (a streamed list).
pub struct Sha256Stream(ring::digest::Context);

impl Default for Sha256Stream {
    fn default() -> Self {
        Sha256Stream(ring::digest::Context::new(&ring::digest::SHA256))
    }
}

impl Sha256Stream {
    pub fn update(&mut self, data: &[u8]) {
        self.0.update(data);
    }

    pub fn finish(self) -> [u8; 32] {
        let digest = self.0.finish();
        let mut out = [0u8; 32];
        out.copy_from_slice(digest.as_ref());
        out
    }
}

pub fn sha256(data: &[u8]) -> [u8; 32] {
    let digest = ring::digest::digest(&ring::digest::SHA256, data);
    let mut out = [0u8; 32];
    out.copy_from_slice(digest.as_ref());
    out
}

/// A 256-bit secret that is wiped from memory when dropped.
#[derive(Clone)]
pub struct Secret([u8; KEY_LEN]);

impl Drop for Secret {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}

impl Secret {
    pub fn random() -> Secret {
        Secret(random_bytes())
    }

    pub fn from_bytes(bytes: [u8; KEY_LEN]) -> Secret {
        Secret(bytes)
    }

    pub fn as_bytes(&self) -> &[u8; KEY_LEN] {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(..)")
    }
}

fn aead_key(secret: &Secret) -> Result<LessSafeKey, CryptoError> {
    UnboundKey::new(&AES_256_GCM, secret.as_bytes())
        .map(LessSafeKey::new)
        .map_err(|_| CryptoError::Key)
}

/// `nonce || ciphertext || tag`.
fn seal(key: &LessSafeKey, aad: &[u8], plaintext: &[u8]) -> Vec<u8> {
    let nonce_bytes: [u8; NONCE_LEN] = random_bytes();
    let mut out = Vec::with_capacity(NONCE_LEN + plaintext.len() + TAG_LEN);
    out.extend_from_slice(&nonce_bytes);
    out.extend_from_slice(plaintext);
    let nonce = Nonce::assume_unique_for_key(nonce_bytes);
    let (_, body) = out.split_at_mut(NONCE_LEN);
    match key.seal_in_place_separate_tag(nonce, Aad::from(aad), body) {
        Ok(tag) => out.extend_from_slice(tag.as_ref()),
        // Only fails for inputs beyond GCM's 64 GiB limit.
        Err(_) => out.clear(),
    }
    out
}

fn open(key: &LessSafeKey, aad: &[u8], sealed: &[u8]) -> Result<Vec<u8>, CryptoError> {
    if sealed.len() < NONCE_LEN + TAG_LEN {
        return Err(CryptoError::Truncated);
    }
    let (nonce_bytes, body) = sealed.split_at(NONCE_LEN);
    let nonce =
        Nonce::try_assume_unique_for_key(nonce_bytes).map_err(|_| CryptoError::Truncated)?;
    let mut buffer = body.to_vec();
    let plain = key
        .open_in_place(nonce, Aad::from(aad), &mut buffer)
        .map_err(|_| CryptoError::Authentication)?;
    let len = plain.len();
    buffer.truncate(len);
    Ok(buffer)
}

fn field_aad(subject: &Uuid, field: &str) -> Vec<u8> {
    let mut aad = Vec::with_capacity(16 + field.len());
    aad.extend_from_slice(subject.as_bytes());
    aad.extend_from_slice(field.as_bytes());
    aad
}

/// One subject's data key, unwrapped.
pub struct DataKey {
    key: LessSafeKey,
}

impl DataKey {
    fn from_secret(secret: &Secret) -> Result<DataKey, CryptoError> {
        Ok(DataKey {
            key: aead_key(secret)?,
        })
    }

    pub fn seal(&self, subject: &Uuid, field: &str, plaintext: &[u8]) -> Vec<u8> {
        seal(&self.key, &field_aad(subject, field), plaintext)
    }

    pub fn open(&self, subject: &Uuid, field: &str, sealed: &[u8]) -> Result<Vec<u8>, CryptoError> {
        open(&self.key, &field_aad(subject, field), sealed)
    }
}

/// A key-encryption key with its id (the id travels with each wrapped key, so
/// rotation can re-wrap data keys without re-encrypting any data).
pub struct Kek {
    pub id: u32,
    key: LessSafeKey,
}

impl Kek {
    pub fn new(id: u32, secret: &Secret) -> Result<Kek, CryptoError> {
        Ok(Kek {
            id,
            key: aead_key(secret)?,
        })
    }
}

/// The keys a running vault holds: the KEKs (the current one wraps new data
/// keys), the blind-index key and the pseudonym key.
pub struct Keyring {
    keks: Vec<Kek>,
    current: u32,
    blind_index: hmac::Key,
    pseudonym_root: hmac::Key,
    receipt: Option<ring::signature::Ed25519KeyPair>,
    audit: Option<crate::audit::AuditKey>,
}

impl std::fmt::Debug for Keyring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Keyring(current kek {}, {} keks)",
            self.current,
            self.keks.len()
        )
    }
}

/// A data key wrapped for storage, with the KEK that wrapped it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WrappedKey {
    pub kek_id: u32,
    pub bytes: Vec<u8>,
}

impl Keyring {
    pub fn new(keks: Vec<Kek>, current: u32, blind_index: &Secret, pseudonym: &Secret) -> Keyring {
        Keyring {
            keks,
            current,
            blind_index: hmac::Key::new(hmac::HMAC_SHA256, blind_index.as_bytes()),
            pseudonym_root: hmac::Key::new(hmac::HMAC_SHA256, pseudonym.as_bytes()),
            receipt: None,
            audit: None,
        }
    }

    /// Adds the key that MACs the audit chain.
    pub fn with_audit_key(mut self, key: crate::audit::AuditKey) -> Keyring {
        self.audit = Some(key);
        self
    }

    /// The audit chain's key. Every key file has one (it is added to older
    /// files on load); a keyring built without one has none.
    pub fn audit_key(&self) -> Option<crate::audit::AuditKey> {
        self.audit.clone()
    }

    /// Adds the Ed25519 key that signs consent receipts.
    pub fn with_receipt_key(mut self, seed: &Secret) -> Result<Keyring, CryptoError> {
        let pair = ring::signature::Ed25519KeyPair::from_seed_unchecked(seed.as_bytes())
            .map_err(|_| CryptoError::Key)?;
        self.receipt = Some(pair);
        Ok(self)
    }

    /// The public half of the receipt key, if there is one.
    pub fn receipt_public_key(&self) -> Option<[u8; 32]> {
        use ring::signature::KeyPair;
        let pair = self.receipt.as_ref()?;
        <[u8; 32]>::try_from(pair.public_key().as_ref()).ok()
    }

    /// An Ed25519 signature over `message` with the receipt key.
    pub fn sign_receipt(&self, message: &[u8]) -> Option<[u8; 64]> {
        let sig = self.receipt.as_ref()?.sign(message);
        <[u8; 64]>::try_from(sig.as_ref()).ok()
    }

    /// Whether this key file holds key-encryption key `id`.
    pub fn holds_kek(&self, id: u32) -> bool {
        self.keks.iter().any(|k| k.id == id)
    }

    pub fn current_kek(&self) -> u32 {
        self.current
    }

    fn kek(&self, id: u32) -> Result<&Kek, CryptoError> {
        self.keks
            .iter()
            .find(|k| k.id == id)
            .ok_or(CryptoError::UnknownKek(id))
    }

    /// A fresh data key for a new subject, and its wrapped form for storage.
    pub fn new_data_key(&self, subject: &Uuid) -> Result<(DataKey, WrappedKey), CryptoError> {
        let secret = Secret::random();
        let kek = self.kek(self.current)?;
        let wrapped = WrappedKey {
            kek_id: kek.id,
            bytes: seal(&kek.key, subject.as_bytes(), secret.as_bytes()),
        };
        Ok((DataKey::from_secret(&secret)?, wrapped))
    }

    pub fn unwrap(&self, subject: &Uuid, wrapped: &WrappedKey) -> Result<DataKey, CryptoError> {
        let kek = self.kek(wrapped.kek_id)?;
        let mut bytes = open(&kek.key, subject.as_bytes(), &wrapped.bytes)?;
        let secret = <[u8; KEY_LEN]>::try_from(bytes.as_slice())
            .map(Secret::from_bytes)
            .map_err(|_| CryptoError::Truncated);
        bytes.zeroize();
        DataKey::from_secret(&secret?)
    }

    /// Re-wraps a data key under the current KEK (key rotation).
    pub fn rewrap(&self, subject: &Uuid, wrapped: &WrappedKey) -> Result<WrappedKey, CryptoError> {
        let kek = self.kek(wrapped.kek_id)?;
        let mut bytes = open(&kek.key, subject.as_bytes(), &wrapped.bytes)?;
        let current = self.kek(self.current)?;
        let out = WrappedKey {
            kek_id: current.id,
            bytes: seal(&current.key, subject.as_bytes(), &bytes),
        };
        bytes.zeroize();
        Ok(out)
    }

    /// The blind index of a normalised lookup value of one kind (`email`, `phone`).
    pub fn blind_index(&self, kind: &str, normalised: &str) -> [u8; 32] {
        let mut ctx = hmac::Context::with_key(&self.blind_index);
        ctx.update(kind.as_bytes());
        ctx.update(&[0]);
        ctx.update(normalised.as_bytes());
        let tag = ctx.sign();
        let mut out = [0u8; 32];
        out.copy_from_slice(tag.as_ref());
        out
    }

    /// A stable pseudonym of `value` for one recipient: the same input gives the
    /// same pseudonym to that recipient and an unrelated one to any other.
    pub fn pseudonym(&self, recipient: &str, field: &str, value: &[u8]) -> String {
        let recipient_key = hmac::sign(&self.pseudonym_root, recipient.as_bytes());
        let key = hmac::Key::new(hmac::HMAC_SHA256, recipient_key.as_ref());
        let mut ctx = hmac::Context::with_key(&key);
        ctx.update(field.as_bytes());
        ctx.update(&[0]);
        ctx.update(value);
        let tag = ctx.sign();
        let mut out = String::from("ps_");
        for b in tag.as_ref().iter().take(16) {
            out.push_str(&format!("{b:02x}"));
        }
        out
    }
}

#[cfg(test)]
mod tests {

    #[test]
    fn canonical_json_sorts_keys_at_every_level() {
        let v = serde_json::json!({"b": 1, "a": {"d": [1, {"z": 2, "y": 1}], "c": "x"}});
        assert_eq!(
            super::canonical_json(&v),
            r#"{"a":{"c":"x","d":[1,{"y":1,"z":2}]},"b":1}"#
        );
    }
    use super::*;

    fn keyring() -> Keyring {
        Keyring::new(
            vec![Kek::new(1, &Secret::random()).unwrap()],
            1,
            &Secret::random(),
            &Secret::random(),
        )
    }

    #[test]
    fn fields_round_trip_and_are_bound_to_subject_and_field() {
        let ring = keyring();
        let subject = new_id();
        let (key, wrapped) = ring.new_data_key(&subject).unwrap();
        let sealed = key.seal(&subject, "email", b"ada@example.org");
        assert!(!sealed.windows(3).any(|w| w == b"ada"));
        assert_eq!(
            key.open(&subject, "email", &sealed).unwrap(),
            b"ada@example.org"
        );
        assert_eq!(
            key.open(&subject, "phone", &sealed),
            Err(CryptoError::Authentication)
        );
        assert_eq!(
            key.open(&new_id(), "email", &sealed),
            Err(CryptoError::Authentication)
        );
        let again = ring.unwrap(&subject, &wrapped).unwrap();
        assert_eq!(
            again.open(&subject, "email", &sealed).unwrap(),
            b"ada@example.org"
        );
        assert!(ring.unwrap(&new_id(), &wrapped).is_err());
    }

    #[test]
    fn nonces_differ_each_time() {
        let ring = keyring();
        let subject = new_id();
        let (key, _) = ring.new_data_key(&subject).unwrap();
        assert_ne!(key.seal(&subject, "f", b"x"), key.seal(&subject, "f", b"x"));
    }

    #[test]
    fn tampering_and_truncation_are_caught() {
        let ring = keyring();
        let subject = new_id();
        let (key, _) = ring.new_data_key(&subject).unwrap();
        let mut sealed = key.seal(&subject, "f", b"value");
        sealed[14] ^= 1;
        assert_eq!(
            key.open(&subject, "f", &sealed),
            Err(CryptoError::Authentication)
        );
        assert_eq!(
            key.open(&subject, "f", &sealed[..10]),
            Err(CryptoError::Truncated)
        );
    }

    #[test]
    fn rotation_rewraps_without_touching_data() {
        let old = Secret::random();
        let new = Secret::random();
        let (bi, ps) = (Secret::random(), Secret::random());
        let before = Keyring::new(vec![Kek::new(1, &old).unwrap()], 1, &bi, &ps);
        let subject = new_id();
        let (key, wrapped) = before.new_data_key(&subject).unwrap();
        let sealed = key.seal(&subject, "f", b"v");
        let after = Keyring::new(
            vec![Kek::new(1, &old).unwrap(), Kek::new(2, &new).unwrap()],
            2,
            &bi,
            &ps,
        );
        let rewrapped = after.rewrap(&subject, &wrapped).unwrap();
        assert_eq!(rewrapped.kek_id, 2);
        let only_new = Keyring::new(vec![Kek::new(2, &new).unwrap()], 2, &bi, &ps);
        let key = only_new.unwrap(&subject, &rewrapped).unwrap();
        assert_eq!(key.open(&subject, "f", &sealed).unwrap(), b"v");
        assert_eq!(
            only_new.unwrap(&subject, &wrapped).err(),
            Some(CryptoError::UnknownKek(1))
        );
    }

    #[test]
    fn blind_indexes_and_pseudonyms_are_keyed() {
        let a = keyring();
        let b = keyring();
        assert_eq!(
            a.blind_index("email", "x@y.z"),
            a.blind_index("email", "x@y.z")
        );
        assert_ne!(
            a.blind_index("email", "x@y.z"),
            a.blind_index("phone", "x@y.z")
        );
        assert_ne!(
            a.blind_index("email", "x@y.z"),
            b.blind_index("email", "x@y.z")
        );
        let p = a.pseudonym("analytics", "ip", b"1.2.3.0");
        assert_eq!(p, a.pseudonym("analytics", "ip", b"1.2.3.0"));
        assert_ne!(p, a.pseudonym("search", "ip", b"1.2.3.0"));
        assert!(p.starts_with("ps_") && p.len() == 35);
    }

    #[test]
    fn receipts_sign_and_verify_with_the_rfc_8032_vector() {
        // RFC 8032 test 1: the empty message.
        let seed: [u8; 32] = [
            0x9d, 0x61, 0xb1, 0x9d, 0xef, 0xfd, 0x5a, 0x60, 0xba, 0x84, 0x4a, 0xf4, 0x92, 0xec,
            0x2c, 0xc4, 0x44, 0x49, 0xc5, 0x69, 0x7b, 0x32, 0x69, 0x19, 0x70, 0x3b, 0xac, 0x03,
            0x1c, 0xae, 0x7f, 0x60,
        ];
        let ring = keyring()
            .with_receipt_key(&Secret::from_bytes(seed))
            .unwrap();
        let public = ring.receipt_public_key().unwrap();
        assert_eq!(
            crate::audit::hex(&public),
            "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a"
        );
        let sig = ring.sign_receipt(b"").unwrap();
        assert!(crate::audit::hex(&sig).starts_with("e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b"));
        assert!(verify_ed25519(&public, b"", &sig));
        assert!(!verify_ed25519(&public, b"x", &sig));
    }

    #[test]
    fn ids_are_time_ordered_v7() {
        let first = new_id();
        std::thread::sleep(std::time::Duration::from_millis(2));
        let second = new_id();
        assert_eq!(first.get_version_num(), 7);
        assert!(first < second);
    }
}
