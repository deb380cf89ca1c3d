//! Signed messages of the Data Rights Protocol: libsodium's "combined
//! mode", `base64(signature (64 bytes) || message)`, signed with Ed25519.
//! Decoding and verifying are apart because the protocol orders them apart
//! (decode first; the key to verify with may depend on who the caller is).

use base64::Engine;
use ed25519_dalek::{Signature, VerifyingKey};

const SIGNATURE_LEN: usize = 64;

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SignedError {
    #[error("the body is not base64")]
    NotBase64,
    #[error("the body is shorter than a signature")]
    TooShort,
    #[error("the agent's verify key is not an Ed25519 public key")]
    BadKey,
    #[error("the signature does not verify with the agent's key")]
    BadSignature,
}

/// A decoded, not yet verified, message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signed {
    signature: [u8; SIGNATURE_LEN],
    message: Vec<u8>,
}

impl Signed {
    /// Decodes a body (standard base64, padded or not; surrounding
    /// whitespace ignored) into its signature and message.
    pub fn decode(body: &str) -> Result<Signed, SignedError> {
        let text = body.trim();
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(text)
            .or_else(|_| base64::engine::general_purpose::STANDARD_NO_PAD.decode(text))
            .map_err(|_| SignedError::NotBase64)?;
        let (signature, message) = bytes
            .split_first_chunk::<SIGNATURE_LEN>()
            .ok_or(SignedError::TooShort)?;
        Ok(Signed {
            signature: *signature,
            message: message.to_vec(),
        })
    }

    /// The message, if the signature verifies with `verify_key`. Strict
    /// verification: no malleable or small-order signatures and keys.
    pub fn verify(&self, verify_key: &[u8; 32]) -> Result<&[u8], SignedError> {
        self.verify_with(&VerifyKey::from_bytes(verify_key)?)
    }

    /// The same with a key already decompressed (a caller that verifies
    /// many messages of one agent keeps it: decompressing costs a field
    /// inversion each time).
    pub fn verify_with(&self, key: &VerifyKey) -> Result<&[u8], SignedError> {
        let signature = Signature::from_bytes(&self.signature);
        key.0
            .verify_strict(&self.message, &signature)
            .map_err(|_| SignedError::BadSignature)?;
        Ok(&self.message)
    }
}

/// An Ed25519 public key, decompressed once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifyKey(VerifyingKey);

impl VerifyKey {
    pub fn from_bytes(bytes: &[u8; 32]) -> Result<VerifyKey, SignedError> {
        VerifyingKey::from_bytes(bytes)
            .map(VerifyKey)
            .map_err(|_| SignedError::BadKey)
    }
}

/// A verify key as the protocol's directory gives it: base64 of the 32
/// bytes of an Ed25519 public key (hex, as older versions used, is read too).
pub fn parse_verify_key(text: &str) -> Result<[u8; 32], SignedError> {
    let text = text.trim();
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(text)
        .or_else(|_| base64::engine::general_purpose::STANDARD_NO_PAD.decode(text))
        .ok()
        .filter(|b| b.len() == 32)
        .or_else(|| hex(text))
        .ok_or(SignedError::BadKey)?;
    let key = <[u8; 32]>::try_from(bytes.as_slice()).map_err(|_| SignedError::BadKey)?;
    VerifyingKey::from_bytes(&key).map_err(|_| SignedError::BadKey)?;
    Ok(key)
}

/// `base64(signature || message)`, signed with `key`: what an agent sends.
/// For the tests and the benchmark, which play the agent.
pub fn sign(key: &ed25519_dalek::SigningKey, message: &[u8]) -> String {
    use ed25519_dalek::Signer;
    let mut combined = key.sign(message).to_bytes().to_vec();
    combined.extend_from_slice(message);
    base64::engine::general_purpose::STANDARD.encode(combined)
}

fn hex(text: &str) -> Option<Vec<u8>> {
    if text.len() != 64 || !text.is_ascii() {
        return None;
    }
    (0..32)
        .map(|i| {
            text.get(i * 2..i * 2 + 2)
                .and_then(|pair| u8::from_str_radix(pair, 16).ok())
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The protocol's test vector (RFC 8032 test 1's key pair).
    const VERIFY_KEY: &str = "11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=";
    const BODY: &str = "zKVpUD3asnZMFkNYlsf0RoeuBzBYwFdb3reVPcsXcgQ5ew/Bjs9uhIH7HaG6ioQC48vTlO0GzlNuXM/owpeGC3siYWdlbnQtaWQiOiAiVEVTVF9BR0VOVCIsICJidXNpbmVzcy1pZCI6ICJURVNUX0NCIiwgImlzc3VlZC1hdCI6ICIyMDI1LTAxLTAxVDAwOjAwOjAwLjAwMCswMDowMCIsICJleHBpcmVzLWF0IjogIjIwMjUtMDEtMDFUMDA6MTU6MDAuMDAwKzAwOjAwIiwgImRycC52ZXJzaW9uIjogIjEuMCJ9";
    const MESSAGE: &str = r#"{"agent-id": "TEST_AGENT", "business-id": "TEST_CB", "issued-at": "2025-01-01T00:00:00.000+00:00", "expires-at": "2025-01-01T00:15:00.000+00:00", "drp.version": "1.0"}"#;

    #[test]
    fn the_protocols_test_vector_verifies_to_its_message() {
        let key = parse_verify_key(VERIFY_KEY).unwrap();
        // RFC 8032 test 1's public key.
        assert_eq!(
            key,
            *b"\xd7\x5a\x98\x01\x82\xb1\x0a\xb7\xd5\x4b\xfe\xd3\xc9\x64\x07\x3a\x0e\xe1\x72\xf3\xda\xa6\x23\x25\xaf\x02\x1a\x68\xf7\x07\x51\x1a"
        );
        let signed = Signed::decode(BODY).unwrap();
        assert_eq!(signed.verify(&key).unwrap(), MESSAGE.as_bytes());
        // The key may also be given in hex, as before protocol 0.9.1.
        assert_eq!(
            parse_verify_key("d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a"),
            Ok(key)
        );
    }

    #[test]
    fn the_same_message_signed_by_the_rfc_8032_secret_key_matches_the_vector() {
        let secret: [u8; 32] = [
            0x9d, 0x61, 0xb1, 0x9d, 0xef, 0xfd, 0x5a, 0x60, 0xba, 0x84, 0x4a, 0xf4, 0x92, 0xec,
            0x2c, 0xc4, 0x44, 0x49, 0xc5, 0x69, 0x7b, 0x32, 0x69, 0x19, 0x70, 0x3b, 0xac, 0x03,
            0x1c, 0xae, 0x7f, 0x60,
        ];
        let signing = ed25519_dalek::SigningKey::from_bytes(&secret);
        assert_eq!(sign(&signing, MESSAGE.as_bytes()), BODY);
    }

    #[test]
    fn any_change_is_refused_in_order() {
        let key = parse_verify_key(VERIFY_KEY).unwrap();
        assert_eq!(Signed::decode("not base64!"), Err(SignedError::NotBase64));
        assert_eq!(Signed::decode("AAAA"), Err(SignedError::TooShort));
        let mut bytes = base64::engine::general_purpose::STANDARD
            .decode(BODY)
            .unwrap();
        // One byte of the message changed.
        if let Some(b) = bytes.last_mut() {
            *b ^= 1;
        }
        let changed = base64::engine::general_purpose::STANDARD.encode(&bytes);
        assert_eq!(
            Signed::decode(&changed).unwrap().verify(&key),
            Err(SignedError::BadSignature)
        );
        // Another key.
        let other = [7u8; 32];
        let other = ed25519_dalek::SigningKey::from_bytes(&other).verifying_key();
        assert_eq!(
            Signed::decode(BODY).unwrap().verify(other.as_bytes()),
            Err(SignedError::BadSignature)
        );
        assert_eq!(parse_verify_key("AAAA"), Err(SignedError::BadKey));
    }
}
