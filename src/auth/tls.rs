//! HTTPS with rustls: the server configuration from PEM files, optional or required client
//! certificates checked against `client_ca`, and what a presented certificate says (subject,
//! fingerprint). The HTTP server hands it to requests (`api::extract::on_connect`).

use std::path::Path;
use std::sync::Arc;

use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use sha2::{Digest, Sha256};
use x509_parser::prelude::{FromDer, X509Certificate, X509Name};

use crate::config::{ClientAuth, TlsConfig};

/// A TLS setting that cannot be used; `key` names the configuration key at fault.
#[derive(Debug, thiserror::Error)]
#[error("{key}: {reason}")]
pub struct TlsError {
    pub key: &'static str,
    pub reason: String,
}

fn error(key: &'static str, reason: impl std::fmt::Display) -> TlsError {
    TlsError {
        key,
        reason: reason.to_string(),
    }
}

fn read_certificates(
    path: &Path,
    key: &'static str,
) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| error(key, format!("{}: {e}", path.display())))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| error(key, format!("{}: {e}", path.display())))?;
    if certs.is_empty() {
        return Err(error(
            key,
            format!("{}: no PEM certificate", path.display()),
        ));
    }
    Ok(certs)
}

/// The rustls server configuration for `[server.tls]`. ALPN (`h2`, `http/1.1`) is added by
/// actix-web when it binds, so HTTP/2 is offered without setting it here.
pub fn server_config(tls: &TlsConfig) -> Result<ServerConfig, TlsError> {
    let chain = read_certificates(&tls.cert, "server.tls.cert")?;
    let private_key = PrivateKeyDer::from_pem_file(&tls.key)
        .map_err(|e| error("server.tls.key", format!("{}: {e}", tls.key.display())))?;
    // Explicit provider: the process may link more than one, and rustls refuses to guess.
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| error("server.tls", e))?;
    let builder = match &tls.client_ca {
        None => builder.with_no_client_auth(),
        Some(ca) => {
            let mut roots = RootCertStore::empty();
            for cert in read_certificates(ca, "server.tls.client_ca")? {
                roots
                    .add(cert)
                    .map_err(|e| error("server.tls.client_ca", e))?;
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider);
            let verifier = match tls.client_auth.unwrap_or(ClientAuth::Required) {
                // Optional: clients without a certificate get through the handshake; clients
                // bound to a certificate are still refused at the HTTP layer.
                ClientAuth::Optional => verifier.allow_unauthenticated(),
                ClientAuth::Required => verifier,
            };
            let verifier = verifier
                .build()
                .map_err(|e| error("server.tls.client_ca", e))?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    builder
        .with_single_cert(chain, private_key)
        .map_err(|e| error("server.tls.key", e))
}

/// The certificate a client presented in the TLS handshake (already verified against
/// `client_ca` by rustls).
#[derive(Debug, Clone)]
pub struct ClientCertificate {
    /// The subject in RFC 4514 form (`CN=emis-demo,O=EMIS`); `None` if it cannot be parsed.
    pub subject: Option<String>,
    /// Lower-case hex SHA-256 of the certificate's DER.
    pub sha256: String,
}

impl ClientCertificate {
    pub fn from_der(der: &[u8]) -> Self {
        let subject = X509Certificate::from_der(der)
            .ok()
            .map(|(_, cert)| rfc4514(cert.subject()));
        ClientCertificate {
            subject,
            sha256: hex(&Sha256::digest(der)),
        }
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// RFC 4514: RDNs last-to-first, separated by `,`; multi-valued RDNs joined by `+`.
fn rfc4514(name: &X509Name) -> String {
    let rdns: Vec<String> = name
        .iter()
        .map(|rdn| {
            rdn.iter()
                .map(|atv| {
                    let oid = atv.attr_type().to_id_string();
                    let value = match atv.as_str() {
                        Ok(text) => escape(text),
                        // Non-string values: RFC 4514's `#` hex form of the value bytes.
                        Err(_) => format!("#{}", hex(atv.attr_value().data)),
                    };
                    format!("{}={value}", short_name(&oid))
                })
                .collect::<Vec<_>>()
                .join("+")
        })
        .collect();
    rdns.into_iter().rev().collect::<Vec<_>>().join(",")
}

fn short_name(oid: &str) -> String {
    match oid {
        "2.5.4.3" => "CN",
        "2.5.4.7" => "L",
        "2.5.4.8" => "ST",
        "2.5.4.10" => "O",
        "2.5.4.11" => "OU",
        "2.5.4.6" => "C",
        "2.5.4.9" => "STREET",
        "0.9.2342.19200300.100.1.25" => "DC",
        "0.9.2342.19200300.100.1.1" => "UID",
        other => return other.to_string(),
    }
    .to_string()
}

fn escape(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    let last = value.chars().count().saturating_sub(1);
    for (i, c) in value.chars().enumerate() {
        let special = matches!(c, ',' | '+' | '"' | '\\' | '<' | '>' | ';' | '=')
            || (i == 0 && matches!(c, '#' | ' '))
            || (i == last && c == ' ');
        if special {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// A configured subject in the form we compute: attribute names upper-case, no spaces around
/// separators (`cn=emis-demo, O=EMIS` → `CN=emis-demo,O=EMIS`).
pub fn normalize_subject(subject: &str) -> String {
    split_unescaped(subject, ',')
        .into_iter()
        .map(|rdn| {
            split_unescaped(rdn, '+')
                .into_iter()
                .map(|atv| match atv.split_once('=') {
                    Some((name, value)) => {
                        format!("{}={}", name.trim().to_ascii_uppercase(), value.trim())
                    }
                    None => atv.trim().to_string(),
                })
                .collect::<Vec<_>>()
                .join("+")
        })
        .collect::<Vec<_>>()
        .join(",")
}

/// A configured fingerprint in the form we compute: lower-case hex, colons removed.
pub fn normalize_fingerprint(fingerprint: &str) -> String {
    fingerprint.replace(':', "").trim().to_ascii_lowercase()
}

fn split_unescaped(text: &str, separator: char) -> Vec<&str> {
    let mut parts = Vec::new();
    let mut start = 0;
    let mut escaped = false;
    for (i, c) in text.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' => escaped = true,
            c if c == separator => {
                parts.push(&text[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&text[start..]);
    parts
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn configured_subjects_are_normalized() {
        assert_eq!(
            normalize_subject("cn=emis-demo, O=EMIS Health\\, Leeds"),
            "CN=emis-demo,O=EMIS Health\\, Leeds"
        );
        assert_eq!(normalize_fingerprint("AB:cd"), "abcd");
    }

    #[test]
    fn presented_subjects_are_rfc_4514_last_rdn_first() {
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        // rcgen starts with a CN; start empty so the encoding order is exactly O, then CN.
        params.distinguished_name = rcgen::DistinguishedName::new();
        params
            .distinguished_name
            .push(rcgen::DnType::OrganizationName, "EMIS Health, Leeds");
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "emis-demo");
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        let presented = ClientCertificate::from_der(cert.der());
        assert_eq!(
            presented.subject.as_deref(),
            Some("CN=emis-demo,O=EMIS Health\\, Leeds")
        );
        assert_eq!(
            presented.subject,
            Some(normalize_subject("cn=emis-demo, o=EMIS Health\\, Leeds"))
        );
        assert_eq!(presented.sha256.len(), 64);
    }
}
