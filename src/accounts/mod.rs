//! The rules of the people who sign in to the web inbox: which passwords are acceptable, how they
//! are hashed (Argon2id) and checked, one-time codes (TOTP, RFC 6238), and the tokens of a
//! session (the cookie's, kept only as a digest, and the form token against CSRF).
//!
//! No HTTP here: the inbox routes (`api::inbox`) and `sp-gateway users` both call these.

use std::sync::OnceLock;

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use base64::Engine;
use chrono::{DateTime, Utc};
use rand::RngCore;
use sha2::{Digest, Sha256};
use totp_rs::{Algorithm, Secret, TOTP};

/// Shortest password accepted, in characters.
pub const MIN_PASSWORD_CHARS: usize = 12;
/// Longest password accepted, in characters (hashing cost stays bounded).
pub const MAX_PASSWORD_CHARS: usize = 256;
/// A session unused for this long is over.
pub const IDLE_TIMEOUT: chrono::Duration = chrono::Duration::minutes(30);
/// The issuer an authenticator app shows beside the code.
pub const TOTP_ISSUER: &str = "sp-gateway";

/// The bundled common-password list (see `common-passwords.md` for its source and licence).
const COMMON_PASSWORDS: &str = include_str!("common-passwords.txt");

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PasswordRefused {
    #[error("a password needs at least {MIN_PASSWORD_CHARS} characters")]
    TooShort,
    #[error("a password may have at most {MAX_PASSWORD_CHARS} characters")]
    TooLong,
    #[error("this password is on a list of commonly used passwords: choose another")]
    Common,
}

#[derive(Debug, thiserror::Error)]
pub enum AccountError {
    #[error("cannot hash the password: {0}")]
    Hash(String),
    #[error("the stored TOTP secret cannot be used: {0}")]
    Totp(String),
}

fn common_passwords() -> &'static std::collections::HashSet<String> {
    static LIST: OnceLock<std::collections::HashSet<String>> = OnceLock::new();
    LIST.get_or_init(|| {
        COMMON_PASSWORDS
            .lines()
            .map(|l| l.trim().to_lowercase())
            .filter(|l| !l.is_empty())
            .collect()
    })
}

/// Whether a new password may be used: long enough, not absurdly long, not a common one
/// (compared without regard to case).
pub fn check_password(password: &str) -> Result<(), PasswordRefused> {
    let chars = password.chars().count();
    if chars < MIN_PASSWORD_CHARS {
        return Err(PasswordRefused::TooShort);
    }
    if chars > MAX_PASSWORD_CHARS {
        return Err(PasswordRefused::TooLong);
    }
    if common_passwords().contains(&password.to_lowercase()) {
        return Err(PasswordRefused::Common);
    }
    Ok(())
}

/// Argon2id (the crate's defaults: 19 MiB, 2 passes, 1 lane, OWASP's minimum) with a random
/// salt, as a PHC string.
pub fn hash_password(password: &str) -> Result<String, AccountError> {
    let mut salt = [0u8; 16];
    rand::rngs::OsRng.fill_bytes(&mut salt);
    let salt = SaltString::encode_b64(&salt).map_err(|e| AccountError::Hash(e.to_string()))?;
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|hash| hash.to_string())
        .map_err(|e| AccountError::Hash(e.to_string()))
}

/// Whether `password` matches the stored hash (`false` for a hash that does not parse).
pub fn verify_password(stored_hash: &str, password: &str) -> bool {
    PasswordHash::new(stored_hash).is_ok_and(|hash| {
        Argon2::default()
            .verify_password(password.as_bytes(), &hash)
            .is_ok()
    })
}

/// Spends the time of one password check, for a sign-in with an unknown email address, so the
/// answer's timing does not tell which addresses have accounts.
pub fn verify_nothing(password: &str) {
    static DUMMY: OnceLock<Option<String>> = OnceLock::new();
    let dummy = DUMMY.get_or_init(|| {
        let mut random = [0u8; 24];
        rand::rngs::OsRng.fill_bytes(&mut random);
        hash_password(&hex(&random)).ok()
    });
    if let Some(hash) = dummy {
        let _ = verify_password(hash, password);
    }
}

/// A new TOTP secret: 20 random bytes (160 bits, RFC 4226's recommendation), base32.
pub fn new_totp_secret() -> String {
    let mut bytes = vec![0u8; 20];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    match Secret::Raw(bytes).to_encoded() {
        Secret::Encoded(text) => text,
        Secret::Raw(_) => String::new(),
    }
}

fn totp(secret: &str, account: &str) -> Result<TOTP, AccountError> {
    let bytes = Secret::Encoded(secret.to_string())
        .to_bytes()
        .map_err(|e| AccountError::Totp(format!("{e:?}")))?;
    // Six digits every 30 s with SHA-1: what every authenticator app reads from the URI; one
    // step of skew either side allows for clocks a little apart.
    TOTP::new(
        Algorithm::SHA1,
        6,
        1,
        30,
        bytes,
        Some(TOTP_ISSUER.to_string()),
        account.to_string(),
    )
    .map_err(|e| AccountError::Totp(e.to_string()))
}

/// The `otpauth://` URI an authenticator app takes (as text or a QR code).
pub fn totp_uri(secret: &str, account: &str) -> Result<String, AccountError> {
    Ok(totp(secret, account)?.get_url())
}

/// Whether `code` is the one-time code for `secret` at `now` (or one step either side).
pub fn totp_matches(secret: &str, code: &str, now: DateTime<Utc>) -> bool {
    let code: String = code.chars().filter(|c| !c.is_whitespace()).collect();
    let Ok(seconds) = u64::try_from(now.timestamp()) else {
        return false;
    };
    code.len() == 6
        && code.chars().all(|c| c.is_ascii_digit())
        && totp(secret, "").is_ok_and(|t| t.check(&code, seconds))
}

/// The code for `secret` at `now` (what an authenticator app shows; for tests and tools).
pub fn totp_code(secret: &str, now: DateTime<Utc>) -> Result<String, AccountError> {
    let seconds = u64::try_from(now.timestamp()).unwrap_or(0);
    Ok(totp(secret, "")?.generate(seconds))
}

/// A session's cookie token (sent to the browser once) and its digest (what the store keeps).
pub struct SessionToken {
    pub token: String,
    pub digest: String,
}

impl SessionToken {
    pub fn generate() -> SessionToken {
        let token = random_token();
        let digest = token_digest(&token);
        SessionToken { token, digest }
    }
}

/// 32 random bytes, base64url without padding: a session's cookie or form (CSRF) token.
pub fn random_token() -> String {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// SHA-256 of a cookie token, hex: how the store finds its session.
pub fn token_digest(token: &str) -> String {
    hex(&Sha256::digest(token.as_bytes()))
}

/// Whether a form's token is the session's, in constant time.
pub fn csrf_matches(expected: &str, given: &str) -> bool {
    use subtle::ConstantTimeEq;
    expected.as_bytes().ct_eq(given.as_bytes()).into()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_long_and_uncommon() {
        assert_eq!(check_password("short"), Err(PasswordRefused::TooShort));
        assert_eq!(
            check_password("elevenchars"),
            Err(PasswordRefused::TooShort)
        );
        // On the bundled list, in any case.
        assert_eq!(check_password("qwerty123456"), Err(PasswordRefused::Common));
        assert_eq!(check_password("QWERTY123456"), Err(PasswordRefused::Common));
        assert_eq!(
            check_password(&"x".repeat(MAX_PASSWORD_CHARS + 1)),
            Err(PasswordRefused::TooLong)
        );
        assert_eq!(check_password("correct horse battery"), Ok(()));
        // Characters, not bytes: twelve Welsh letters with accents pass.
        assert_eq!(check_password("ŵŷâêîôûŵŷâêî"), Ok(()));
    }

    #[test]
    fn hashes_are_argon2id_and_verify() {
        let hash = hash_password("correct horse battery").unwrap();
        assert!(hash.starts_with("$argon2id$v=19$"), "{hash}");
        assert!(verify_password(&hash, "correct horse battery"));
        assert!(!verify_password(&hash, "correct horse batterY"));
        assert!(!verify_password("not a hash", "correct horse battery"));
        assert_ne!(hash, hash_password("correct horse battery").unwrap());
    }

    #[test]
    fn totp_codes_follow_rfc_6238() {
        let secret = new_totp_secret();
        assert_eq!(secret.len(), 32, "160 bits in base32");
        let uri = totp_uri(&secret, "ann@carers.example").unwrap();
        assert!(
            uri.starts_with("otpauth://totp/sp-gateway:ann%40carers.example?"),
            "{uri}"
        );
        assert!(uri.contains(&format!("secret={secret}")), "{uri}");
        let now = Utc::now();
        let code = totp_code(&secret, now).unwrap();
        assert!(totp_matches(&secret, &code, now));
        assert!(totp_matches(
            &secret,
            &code,
            now + chrono::Duration::seconds(30)
        ));
        assert!(!totp_matches(
            &secret,
            &code,
            now + chrono::Duration::minutes(5)
        ));
        assert!(!totp_matches(&secret, "12345", now));
        assert!(!totp_matches(&secret, "abcdef", now));
        // RFC 6238 appendix B, SHA-1, T = 59 s: 94287082, of which six digits are 287082.
        let rfc = "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ";
        let at = DateTime::from_timestamp(59, 0).unwrap();
        assert_eq!(totp_code(rfc, at).unwrap(), "287082");
    }

    #[test]
    fn session_tokens_are_kept_as_digests() {
        let token = SessionToken::generate();
        assert_eq!(token.digest, token_digest(&token.token));
        assert_eq!(token.digest.len(), 64);
        assert_ne!(token.token, SessionToken::generate().token);
        assert!(csrf_matches("abc", "abc"));
        assert!(!csrf_matches("abc", "abd"));
        assert!(!csrf_matches("abc", ""));
    }
}
