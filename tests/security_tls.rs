//! TLS and mutual TLS with real handshakes against the real binary. Every certificate is made
//! here with rcgen: a CA for clients, another CA nobody trusts, a server certificate for 127.0.0.1.

mod common;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose,
};
use reqwest::blocking::Client;
use reqwest::{Certificate, Identity, Version};

/// A certificate and its private key, PEM.
struct Issued {
    cert: String,
    key: String,
}

impl Issued {
    fn identity(&self) -> Identity {
        Identity::from_pem(format!("{}{}", self.cert, self.key).as_bytes()).expect("identity")
    }

    fn sha256(&self) -> String {
        use sha2::Digest;
        let der =
            rustls_pki_types::CertificateDer::from_pem_slice(self.cert.as_bytes()).expect("der");
        sha2::Sha256::digest(der.as_ref())
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }
}

use rustls_pki_types::pem::PemObject;

struct Ca {
    issuer: CertifiedIssuer<'static, KeyPair>,
}

impl Ca {
    fn new(name: &str) -> Ca {
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("params");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let key = KeyPair::generate().expect("key");
        Ca {
            issuer: CertifiedIssuer::self_signed(params, key).expect("CA"),
        }
    }

    fn pem(&self) -> String {
        self.issuer.pem()
    }

    fn issue(&self, common_name: &str, sans: &[&str], purpose: ExtendedKeyUsagePurpose) -> Issued {
        let sans: Vec<String> = sans.iter().map(|s| s.to_string()).collect();
        let mut params = CertificateParams::new(sans).expect("params");
        params
            .distinguished_name
            .push(DnType::CommonName, common_name);
        params.extended_key_usages = vec![purpose];
        let key = KeyPair::generate().expect("key");
        let cert = params.signed_by(&key, &self.issuer).expect("sign");
        Issued {
            cert: cert.pem(),
            key: key.serialize_pem(),
        }
    }
}

/// Certificates for one test: the server's, clients' from the trusted CA, one from a stranger CA.
struct Pki {
    server_ca: Ca,
    server: Issued,
    client_ca: Ca,
    emis: Issued,
    tpp: Issued,
    stranger: Issued,
}

fn pki() -> Pki {
    let server_ca = Ca::new("sp-gateway test server CA");
    let server = server_ca.issue(
        "127.0.0.1",
        &["127.0.0.1", "localhost"],
        ExtendedKeyUsagePurpose::ServerAuth,
    );
    let client_ca = Ca::new("GP systems test CA");
    let emis = client_ca.issue("emis-demo", &[], ExtendedKeyUsagePurpose::ClientAuth);
    let tpp = client_ca.issue("tpp-demo", &[], ExtendedKeyUsagePurpose::ClientAuth);
    let stranger_ca = Ca::new("Nobody we trust");
    let stranger = stranger_ca.issue("emis-demo", &[], ExtendedKeyUsagePurpose::ClientAuth);
    Pki {
        server_ca,
        server,
        client_ca,
        emis,
        tpp,
        stranger,
    }
}

/// The gateway over HTTPS, killed on drop.
struct TlsGateway {
    child: Child,
    base: String,
    _dir: tempfile::TempDir,
}

impl Drop for TlsGateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn write(dir: &Path, name: &str, text: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, text).expect("write");
    path.display().to_string()
}

/// Starts the demo configuration with `[server.tls]` (plus `tls_extra` lines) and `edit` applied
/// to the rest; waits until `ready` (a client the server accepts) gets the metadata.
fn start(
    pki: &Pki,
    tls_extra: &str,
    edit: impl FnOnce(String) -> String,
    ready: &Client,
) -> TlsGateway {
    let dir = tempfile::tempdir().expect("dir");
    let cert = write(dir.path(), "server.pem", &pki.server.cert);
    let key = write(dir.path(), "server-key.pem", &pki.server.key);
    let ca = write(dir.path(), "client-ca.pem", &pki.client_ca.pem());
    let tls = format!("\n[server.tls]\ncert = {cert:?}\nkey = {key:?}\n")
        + &tls_extra.replace("CLIENT_CA", &format!("{ca:?}"));
    let config = edit(common::demo_config_in(dir.path())) + &tls;
    let config_path = write(dir.path(), "gateway.toml", &config);
    let mut child = Command::new(env!("CARGO_BIN_EXE_sp-gateway"))
        .args(["serve", "--config", &config_path])
        .env(
            "RUST_LOG",
            std::env::var("RUST_LOG").unwrap_or_else(|_| "warn".into()),
        )
        .stdout(Stdio::piped())
        .spawn()
        .expect("start");
    let mut line = String::new();
    BufReader::new(child.stdout.take().expect("stdout"))
        .read_line(&mut line)
        .expect("address line");
    let base = line
        .trim()
        .strip_prefix("sp-gateway listening on ")
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
        .to_string();
    assert!(base.starts_with("https://"), "{base}");
    let gateway = TlsGateway {
        child,
        base,
        _dir: dir,
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let ok = ready
            .get(format!("{}/fhir/metadata", gateway.base))
            .send()
            .is_ok_and(|r| r.status().is_success());
        if ok {
            return gateway;
        }
        assert!(Instant::now() < deadline, "gateway did not become ready");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn client(pki: &Pki, identity: Option<&Issued>) -> Client {
    let mut builder = Client::builder()
        .use_rustls_tls()
        .tls_built_in_root_certs(false)
        .add_root_certificate(Certificate::from_pem(pki.server_ca.pem().as_bytes()).expect("ca"))
        .timeout(Duration::from_secs(20));
    if let Some(issued) = identity {
        builder = builder.identity(issued.identity());
    }
    builder.build().expect("client")
}

const REQUIRED: &str = "client_ca = CLIENT_CA\nclient_auth = \"required\"\n";
const OPTIONAL: &str = "client_ca = CLIENT_CA\nclient_auth = \"optional\"\n";

fn search(client: &Client, gateway: &TlsGateway, token: &str) -> reqwest::Result<u16> {
    client
        .get(format!(
            "{}/fhir/ServiceRequest?identifier=none",
            gateway.base
        ))
        .bearer_auth(token)
        .send()
        .map(|r| r.status().as_u16())
}

#[test]
fn https_serves_http1_and_http2() {
    let pki = pki();
    let plain = client(&pki, None);
    let gateway = start(&pki, "", |c| c, &plain);
    let response = plain
        .get(format!("{}/fhir/metadata", gateway.base))
        .send()
        .expect("https");
    assert_eq!(response.status(), 200);
    // reqwest offers h2 and http/1.1 by ALPN: the server picks h2.
    assert_eq!(response.version(), Version::HTTP_2);
    let http1 = Client::builder()
        .use_rustls_tls()
        .tls_built_in_root_certs(false)
        .add_root_certificate(Certificate::from_pem(pki.server_ca.pem().as_bytes()).expect("ca"))
        .http1_only()
        .build()
        .expect("client");
    let response = http1
        .get(format!("{}/fhir/metadata", gateway.base))
        .send()
        .expect("https");
    assert_eq!(response.version(), Version::HTTP_11);
    assert_eq!(
        search(&plain, &gateway, common::GP_TOKEN).expect("search"),
        200
    );
    // Plain HTTP on the TLS port gets no answer.
    let cleartext = gateway.base.replace("https://", "http://");
    let plain_http = Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .expect("client");
    assert!(plain_http
        .get(format!("{cleartext}/fhir/metadata"))
        .send()
        .map(|r| !r.status().is_success())
        .unwrap_or(true));
}

#[test]
fn required_client_certificates_refuse_no_certificate_and_a_foreign_ca() {
    let pki = pki();
    let emis = client(&pki, Some(&pki.emis));
    let gateway = start(&pki, REQUIRED, |c| c, &emis);

    assert_eq!(
        search(&emis, &gateway, common::GP_TOKEN).expect("right cert"),
        200
    );
    let response = emis
        .get(format!("{}/fhir/metadata", gateway.base))
        .send()
        .expect("metadata");
    assert_eq!(response.version(), Version::HTTP_2);

    let anonymous = client(&pki, None);
    assert!(
        search(&anonymous, &gateway, common::GP_TOKEN).is_err(),
        "a handshake without a client certificate must fail"
    );
    let stranger = client(&pki, Some(&pki.stranger));
    assert!(
        search(&stranger, &gateway, common::GP_TOKEN).is_err(),
        "a certificate from a CA we do not trust must fail"
    );
}

#[test]
fn a_client_bound_to_a_certificate_must_present_it() {
    let pki = pki();
    let anonymous = client(&pki, None);
    let bind = |config: String| {
        config
            .replace(
                "id = \"emis-demo\"",
                "id = \"emis-demo\"\ncert_subject = \"cn=emis-demo\"",
            )
            .replace(
                "id = \"tpp-demo\"",
                &format!("id = \"tpp-demo\"\ncert_sha256 = {:?}", pki.tpp.sha256()),
            )
    };
    let gateway = start(&pki, OPTIONAL, bind, &anonymous);
    let emis = client(&pki, Some(&pki.emis));
    let tpp = client(&pki, Some(&pki.tpp));

    // Right certificate, right token: in.
    assert_eq!(
        search(&emis, &gateway, common::GP_TOKEN).expect("emis"),
        200
    );
    assert_eq!(
        search(&tpp, &gateway, common::OTHER_GP_TOKEN).expect("tpp"),
        200
    );
    // Optional mode lets a certificate-less connection through the handshake, but a bound
    // client's token alone is refused.
    assert_eq!(
        search(&anonymous, &gateway, common::GP_TOKEN).expect("anon"),
        401
    );
    // Another (trusted) client's certificate with this client's token: refused, both ways.
    assert_eq!(search(&tpp, &gateway, common::GP_TOKEN).expect("swap"), 401);
    assert_eq!(
        search(&emis, &gateway, common::OTHER_GP_TOKEN).expect("swap"),
        401
    );
    // A foreign CA's certificate never gets past the handshake, even in optional mode.
    let stranger = client(&pki, Some(&pki.stranger));
    assert!(search(&stranger, &gateway, common::GP_TOKEN).is_err());
}

#[test]
fn bad_tls_settings_are_refused_at_start_naming_the_key() {
    let dir = tempfile::tempdir().expect("dir");
    let config = common::demo_config_in(dir.path())
        + "\n[server.tls]\ncert = \"/nonexistent/cert.pem\"\nkey = \"/nonexistent/key.pem\"\n";
    let path = write(dir.path(), "gateway.toml", &config);
    let output = Command::new(env!("CARGO_BIN_EXE_sp-gateway"))
        .args(["serve", "--config", &path])
        .output()
        .expect("run");
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("server.tls.cert"), "{stderr}");

    let config = common::demo_config_in(dir.path()).replace(
        "id = \"emis-demo\"",
        "id = \"emis-demo\"\ncert_subject = \"CN=emis-demo\"",
    );
    let path = write(dir.path(), "gateway.toml", &config);
    let output = Command::new(env!("CARGO_BIN_EXE_sp-gateway"))
        .args(["serve", "--config", &path])
        .output()
        .expect("run");
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("clients[0].cert_subject"), "{stderr}");
}
