//! OAuth 2.0 client credentials with `private_key_jwt` against the real binary: assertions signed
//! here with RS384 (a committed test-only key) and ES384 (a P-384 key made by rcgen per run).

mod common;

use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine;
use common::{send, Gateway};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{json, Value};

const ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

fn key_path(name: &str) -> String {
    format!("{}/tests/data/keys/{name}", env!("CARGO_MANIFEST_DIR"))
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_secs()
}

/// A client's signing key and how it signs.
struct Signer {
    client: &'static str,
    algorithm: Algorithm,
    kid: &'static str,
    key: EncodingKey,
}

impl Signer {
    fn rsa(client: &'static str, file: &str) -> Signer {
        let pem = std::fs::read(key_path(file)).expect("test key");
        Signer {
            client,
            algorithm: Algorithm::RS384,
            kid: "test-rsa-1",
            key: EncodingKey::from_rsa_pem(&pem).expect("rsa key"),
        }
    }

    fn sign(&self, claims: &Value) -> String {
        let mut header = Header::new(self.algorithm);
        header.kid = Some(self.kid.to_string());
        jsonwebtoken::encode(&header, claims, &self.key).expect("sign")
    }

    /// The claim set SMART Backend Services asks for, with a fresh jti.
    fn claims(&self, audience: &str) -> Value {
        json!({
            "iss": self.client,
            "sub": self.client,
            "aud": audience,
            "exp": now() + 240,
            "iat": now(),
            "jti": uuid::Uuid::new_v4().to_string(),
        })
    }
}

/// A P-384 key pair: the signer, and its public half as an inline JWK Set.
fn es384(client: &'static str) -> (Signer, String) {
    let pair = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P384_SHA384).expect("p-384");
    let raw = pair.public_key_raw(); // 0x04 || x || y
    assert_eq!(raw.len(), 97);
    let b64 = |b: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b);
    let jwks = json!({"keys": [{"kty": "EC", "crv": "P-384", "kid": "test-ec-1", "alg": "ES384",
                                "use": "sig", "x": b64(&raw[1..49]), "y": b64(&raw[49..])}]});
    let signer = Signer {
        client,
        algorithm: Algorithm::ES384,
        kid: "test-ec-1",
        key: EncodingKey::from_ec_pem(pair.serialize_pem().as_bytes()).expect("ec key"),
    };
    (signer, jwks.to_string())
}

/// The demo configuration plus two private_key_jwt clients: `lab-rs` (RS384, JWKS file, every
/// scope) and `lab-es` (ES384, inline JWKS, read-only ServiceRequest plus Task).
fn start(es_jwks: &str) -> Gateway {
    start_with_env(es_jwks, &[])
}

/// As [`start`], with extra environment settings (another database, a public base URL).
fn start_with_env(es_jwks: &str, env: &[(&str, &str)]) -> Gateway {
    let extra = format!(
        "\n[[clients]]\nid = \"lab-rs\"\njwks = {:?}\n\n[[clients]]\nid = \"lab-es\"\njwks = '{es_jwks}'\nscopes = [\"system/ServiceRequest.*\", \"system/Task.read\"]\n",
        key_path("rs384-test.jwks.json")
    );
    // Inserted before the VCS section so the new tables stay clients.
    Gateway::start_with(
        |config| {
            let at = config.find("[[vcs]]").expect("vcs section");
            let mut edited = config.clone();
            edited.insert_str(at, &extra);
            edited
        },
        env,
    )
}

fn token_request(gateway: &Gateway, assertion: &str, scope: Option<&str>) -> (u16, Value) {
    let mut form = vec![
        ("grant_type", "client_credentials"),
        ("client_assertion_type", ASSERTION_TYPE),
        ("client_assertion", assertion),
    ];
    if let Some(scope) = scope {
        form.push(("scope", scope));
    }
    let body = form
        .iter()
        .map(|(k, v)| format!("{k}={}", url_encode(v)))
        .collect::<Vec<_>>()
        .join("&");
    send(
        gateway
            .http
            .post(gateway.url("/oauth2/token"))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body),
    )
}

fn url_encode(value: &str) -> String {
    value
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn audience(gateway: &Gateway) -> String {
    gateway.url("/oauth2/token")
}

fn assert_oauth_error(result: (u16, Value), status: u16, error: &str) {
    let (got, body) = result;
    assert_eq!(got, status, "{body}");
    assert_eq!(body["error"], error, "{body}");
    assert!(body["error_description"].is_string(), "{body}");
}

#[test]
fn good_assertions_get_tokens_and_tokens_carry_scopes() {
    let (es, es_jwks) = es384("lab-es");
    let gateway = start(&es_jwks);
    let rs = Signer::rsa("lab-rs", "rs384-test-key.pem");

    // SMART discovery names the endpoint the assertions' aud must be.
    let (status, smart) = send(
        gateway
            .http
            .get(gateway.url("/fhir/.well-known/smart-configuration")),
    );
    assert_eq!(status, 200, "{smart}");
    assert_eq!(smart["token_endpoint"], audience(&gateway).as_str());
    assert_eq!(
        smart["token_endpoint_auth_methods_supported"][0],
        "private_key_jwt"
    );

    // RS384, no scope asked: every scope.
    let (status, body) = token_request(&gateway, &rs.sign(&rs.claims(&audience(&gateway))), None);
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["token_type"], "bearer");
    assert!(body["expires_in"].as_u64().is_some_and(|s| s <= 300));
    let token = body["access_token"].as_str().expect("token").to_string();
    assert!(body["scope"]
        .as_str()
        .is_some_and(|s| s.contains("system/ServiceRequest.write")));
    let (status, referral) = send(
        gateway
            .http
            .post(gateway.url("/fhir/ServiceRequest"))
            .bearer_auth(&token)
            .header("content-type", common::FHIR_JSON)
            .body(common::contained_referral("JWT-REF-1").to_string()),
    );
    assert_eq!(status, 201, "{referral}");

    // ES384, read-only asked: the token reads but cannot write.
    let claims = es.claims(&audience(&gateway));
    let (status, body) = token_request(
        &gateway,
        &es.sign(&claims),
        Some("system/ServiceRequest.read system/Observation.read"),
    );
    assert_eq!(status, 200, "{body}");
    // Observation is not among lab-es's scopes: only the intersection is granted.
    assert_eq!(body["scope"], "system/ServiceRequest.read");
    let read_only = body["access_token"].as_str().expect("token").to_string();
    let (status, body) = send(
        gateway
            .http
            .get(gateway.url("/fhir/ServiceRequest?identifier=JWT-REF-1"))
            .bearer_auth(&read_only),
    );
    assert_eq!(status, 200, "{body}");
    let (status, body) = send(
        gateway
            .http
            .post(gateway.url("/fhir/ServiceRequest"))
            .bearer_auth(&read_only)
            .header("content-type", common::FHIR_JSON)
            .body(common::contained_referral("JWT-REF-2").to_string()),
    );
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["resourceType"], "OperationOutcome");
    assert_eq!(body["issue"][0]["code"], "forbidden", "{body}");
    let (status, _) = send(
        gateway
            .http
            .get(gateway.url("/fhir/Observation?patient=x"))
            .bearer_auth(&read_only),
    );
    assert_eq!(status, 403);

    // Wildcards are accepted; asking only for what the client may not have is invalid_scope.
    let (status, body) = token_request(
        &gateway,
        &es.sign(&es.claims(&audience(&gateway))),
        Some("system/*.read"),
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["scope"], "system/ServiceRequest.read system/Task.read");
    assert_oauth_error(
        token_request(
            &gateway,
            &es.sign(&es.claims(&audience(&gateway))),
            Some("system/Subscription.write"),
        ),
        400,
        "invalid_scope",
    );

    // Static lab tokens still work with every scope; a made-up token does not.
    let (status, _) = send(gateway.get("/fhir/ServiceRequest?identifier=JWT-REF-1"));
    assert_eq!(status, 200);
    let (status, _) = send(
        gateway
            .http
            .get(gateway.url("/fhir/ServiceRequest?identifier=JWT-REF-1"))
            .bearer_auth("not-a-token-we-issued"),
    );
    assert_eq!(status, 401);
}

#[test]
fn bad_assertions_are_refused() {
    let (es, es_jwks) = es384("lab-es");
    let gateway = start(&es_jwks);
    let rs = Signer::rsa("lab-rs", "rs384-test-key.pem");
    let aud = audience(&gateway);

    // Expired.
    let mut claims = rs.claims(&aud);
    claims["exp"] = json!(now() - 600);
    assert_oauth_error(
        token_request(&gateway, &rs.sign(&claims), None),
        401,
        "invalid_client",
    );
    // More than five minutes ahead.
    let mut claims = rs.claims(&aud);
    claims["exp"] = json!(now() + 3600);
    assert_oauth_error(
        token_request(&gateway, &rs.sign(&claims), None),
        401,
        "invalid_client",
    );
    // Wrong audience.
    let claims = rs.claims("https://other.example/oauth2/token");
    assert_oauth_error(
        token_request(&gateway, &rs.sign(&claims), None),
        401,
        "invalid_client",
    );
    // sub is not the client.
    let mut claims = rs.claims(&aud);
    claims["sub"] = json!("lab-es");
    assert_oauth_error(
        token_request(&gateway, &rs.sign(&claims), None),
        401,
        "invalid_client",
    );
    // Wrong key: an RSA key lab-rs never registered, and lab-es's claims signed with a new P-384 key.
    let stranger = Signer::rsa("lab-rs", "rs384-other-key.pem");
    assert_oauth_error(
        token_request(&gateway, &stranger.sign(&stranger.claims(&aud)), None),
        401,
        "invalid_client",
    );
    let (other_es, _) = es384("lab-es");
    assert_oauth_error(
        token_request(&gateway, &other_es.sign(&other_es.claims(&aud)), None),
        401,
        "invalid_client",
    );
    // An unknown issuer, and a client that has no keys.
    let mut claims = es.claims(&aud);
    claims["iss"] = json!("emis-demo");
    claims["sub"] = json!("emis-demo");
    assert_oauth_error(
        token_request(&gateway, &es.sign(&claims), None),
        401,
        "invalid_client",
    );
    // Not valid yet (nbf), or issued in the future (iat), beyond the minute of clock skew.
    for claim in ["nbf", "iat"] {
        let mut claims = rs.claims(&aud);
        claims[claim] = json!(now() + 180);
        assert_oauth_error(
            token_request(&gateway, &rs.sign(&claims), None),
            401,
            "invalid_client",
        );
    }
    let mut claims = rs.claims(&aud);
    claims["nbf"] = json!(now() - 10);
    let (status, body) = token_request(&gateway, &rs.sign(&claims), None);
    assert_eq!(status, 200, "a past nbf is fine: {body}");
    // A refused request does not spend its jti: a scope the client may not have is refused,
    // and the same assertion then works with a scope it may.
    let assertion = es.sign(&es.claims(&aud));
    assert_oauth_error(
        token_request(&gateway, &assertion, Some("system/Observation.read")),
        400,
        "invalid_scope",
    );
    let (status, body) = token_request(&gateway, &assertion, None);
    assert_eq!(status, 200, "{body}");
    // Reused jti: the first use works, the replay does not.
    let assertion = es.sign(&es.claims(&aud));
    let (status, body) = token_request(&gateway, &assertion, None);
    assert_eq!(status, 200, "{body}");
    assert_oauth_error(
        token_request(&gateway, &assertion, None),
        401,
        "invalid_client",
    );
    // Not even a JWT; wrong grant type.
    assert_oauth_error(token_request(&gateway, "abc", None), 401, "invalid_client");
    let (status, body) = send(
        gateway
            .http
            .post(gateway.url("/oauth2/token"))
            .header("content-type", "application/x-www-form-urlencoded")
            .body("grant_type=password&username=a&password=b"),
    );
    assert_oauth_error((status, body), 400, "unsupported_grant_type");
}

#[test]
fn bad_security_keys_are_refused_at_start_naming_the_key() {
    let dir = tempfile::tempdir().expect("dir");
    let cases = [
        ("jwks = '{\"keys\": []}'", "clients[0].jwks"),
        ("jwks = \"/nonexistent/jwks.json\"", "clients[0].jwks"),
        (
            "scopes = [\"system/Condition.read\"]",
            "clients[0].scopes[0]",
        ),
        ("cert_sha256 = \"abcd\"", "clients[0].cert_sha256"),
    ];
    for (line, key) in cases {
        let config = common::demo_config_in(dir.path())
            .replace("id = \"emis-demo\"", &format!("id = \"emis-demo\"\n{line}"));
        let path = dir.path().join("gateway.toml");
        std::fs::write(&path, config).expect("write");
        let output = std::process::Command::new(env!("CARGO_BIN_EXE_sp-gateway"))
            .arg("serve")
            .arg("--config")
            .arg(&path)
            .output()
            .expect("run");
        assert_eq!(output.status.code(), Some(2), "{line}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains(key), "{line}: {stderr}");
    }
}

/// Behind a load balancer a token issued by one replica is used at another, and an assertion
/// replayed at another replica is still a replay: both live in the shared database.
#[test]
fn replicas_share_issued_tokens_and_used_assertions() {
    let schema = common::postgres::TestSchema::create();
    // Every replica has the public address the assertions are made out to.
    let env = [
        ("SP_GATEWAY_STORAGE__URL", schema.url.as_str()),
        ("SP_GATEWAY_SERVER__BASE_URL", "https://sp.example.org"),
    ];
    let (_, es_jwks) = es384("lab-es");
    let first = start_with_env(&es_jwks, &env);
    let second = start_with_env(&es_jwks, &env);
    let rs = Signer::rsa("lab-rs", "rs384-test-key.pem");
    let assertion = rs.sign(&rs.claims("https://sp.example.org/oauth2/token"));

    let (status, body) = token_request(&first, &assertion, Some("system/ServiceRequest.read"));
    assert_eq!(status, 200, "{body}");
    let token = body["access_token"].as_str().expect("token").to_string();
    for gateway in [&first, &second] {
        let (status, body) = send(
            gateway
                .http
                .get(gateway.url("/fhir/ServiceRequest?_count=1"))
                .bearer_auth(&token),
        );
        assert_eq!(status, 200, "the token works on every replica: {body}");
    }
    // Read-only: the scope travels with the token to the other replica.
    let (status, _) = send(
        second
            .http
            .post(second.url("/fhir/ServiceRequest"))
            .bearer_auth(&token)
            .header("content-type", common::FHIR_JSON)
            .body(common::contained_referral("JWT-REPLICA").to_string()),
    );
    assert_eq!(status, 403);
    assert_oauth_error(
        token_request(&second, &assertion, None),
        401,
        "invalid_client",
    );
}

/// Issued tokens are stored: a gateway restarted on its SQLite file still accepts them.
#[test]
fn issued_tokens_survive_a_restart() {
    let (_, es_jwks) = es384("lab-es");
    let gateway = start(&es_jwks);
    let rs = Signer::rsa("lab-rs", "rs384-test-key.pem");
    let (status, body) = token_request(&gateway, &rs.sign(&rs.claims(&audience(&gateway))), None);
    assert_eq!(status, 200, "{body}");
    let token = body["access_token"].as_str().expect("token").to_string();
    let gateway = gateway.restart();
    let (status, body) = send(
        gateway
            .http
            .get(gateway.url("/fhir/ServiceRequest?_count=1"))
            .bearer_auth(&token),
    );
    assert_eq!(status, 200, "{body}");
}
