//! Standard Webhooks signatures: `v1,<base64 HMAC-SHA256 of "{id}.{timestamp}.{body}">`, keyed
//! with the bytes of a `whsec_<base64>` secret. Several secrets (during a rotation) give several
//! signatures, space-separated, and a receiver accepts the message if any one verifies.

use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::Sha256;

#[derive(Debug, thiserror::Error)]
pub enum SigningError {
    #[error("a signing secret is not whsec_<base64>")]
    BadSecret,
}

fn secret_bytes(secret: &str) -> Result<Vec<u8>, SigningError> {
    let encoded = secret
        .strip_prefix("whsec_")
        .ok_or(SigningError::BadSecret)?;
    base64::engine::general_purpose::STANDARD
        .decode(encoded)
        .map_err(|_| SigningError::BadSecret)
}

/// One `v1,…` signature.
pub fn sign(
    secret: &str,
    message_id: &str,
    timestamp: i64,
    body: &str,
) -> Result<String, SigningError> {
    let key = secret_bytes(secret)?;
    let mut mac = Hmac::<Sha256>::new_from_slice(&key).map_err(|_| SigningError::BadSecret)?;
    mac.update(message_id.as_bytes());
    mac.update(b".");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body.as_bytes());
    let digest = mac.finalize().into_bytes();
    Ok(format!(
        "v1,{}",
        base64::engine::general_purpose::STANDARD.encode(digest)
    ))
}

/// The `webhook-signature` header value for all current secrets.
pub fn signature_header(
    secrets: &[String],
    message_id: &str,
    timestamp: i64,
    body: &str,
) -> Result<String, SigningError> {
    let signatures = secrets
        .iter()
        .map(|secret| sign(secret, message_id, timestamp, body))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(signatures.join(" "))
}

/// A fresh `whsec_` secret of 32 random bytes.
pub fn generate_secret() -> String {
    let bytes: [u8; 32] = rand::random();
    format!(
        "whsec_{}",
        base64::engine::general_purpose::STANDARD.encode(bytes)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_the_standard_webhooks_reference_library() {
        let secret = generate_secret();
        let timestamp = chrono::Utc::now().timestamp();
        let body = r#"{"type":"referral.created"}"#;
        let ours = sign(&secret, "msg_1", timestamp, body).unwrap();
        let reference = standardwebhooks::Webhook::new(&secret).unwrap();
        assert_eq!(
            ours,
            reference.sign("msg_1", timestamp, body.as_bytes()).unwrap()
        );
    }

    #[test]
    fn rotation_sends_every_signature() {
        let (old, new) = (generate_secret(), generate_secret());
        let header = signature_header(&[new.clone(), old.clone()], "msg_1", 1, "{}").unwrap();
        let parts: Vec<&str> = header.split(' ').collect();
        assert_eq!(
            parts,
            vec![
                sign(&new, "msg_1", 1, "{}").unwrap(),
                sign(&old, "msg_1", 1, "{}").unwrap()
            ]
        );
    }

    #[test]
    fn bad_secrets_are_errors() {
        assert!(sign("nope", "m", 1, "").is_err());
        assert!(sign("whsec_***", "m", 1, "").is_err());
    }
}
