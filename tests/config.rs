//! Configuration as operators meet it: the binary refuses a bad file naming the key, and the
//! environment overrides any key.

mod common;

use std::process::Command;

use common::*;

fn serve_with_config(text: &str) -> std::process::Output {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.toml");
    std::fs::write(&path, text).unwrap();
    Command::new(env!("CARGO_BIN_EXE_sp-gateway"))
        .args(["serve", "--config"])
        .arg(&path)
        .output()
        .unwrap()
}

/// `text` without the line starting with `start`.
fn without_line(text: &str, start: &str) -> String {
    let lines: Vec<&str> = text.lines().filter(|l| !l.starts_with(start)).collect();
    assert_ne!(lines.len(), text.lines().count(), "no line {start}");
    lines.join("\n")
}

#[test]
fn a_bad_config_is_refused_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let good = demo_config_in(dir.path());
    let cases = [
        (
            good.replace("listen = \"127.0.0.1:0\"", "listen = \"here\""),
            "server.listen",
        ),
        (
            good.replace("max_body_bytes = 1048576", "max_body_bytes = \"big\""),
            "server.max_body_bytes",
        ),
        (
            good.replacen("token = \"demo-gp-token\"", "token = \"short\"", 1),
            "clients[0].token",
        ),
        (
            good.replacen("webhook_secret = \"whsec_", "webhook_secret = \"nope_", 1),
            "vcs[0].webhook_secret",
        ),
        (
            good.replacen(
                "notification_secret = \"whsec_",
                "notification_secret = \"nope_",
                1,
            ),
            "clients[0].notification_secret",
        ),
        (
            good.replacen(
                "webhook_url = \"http://127.0.0.1:9000/hooks\"",
                "webhook_url = \"ftp://x\"",
                1,
            ),
            "vcs[0].webhook_url",
        ),
        (format!("{good}\n[surprise]\nkey = 1\n"), "surprise"),
        // A webhook URL and its secret go together.
        (
            without_line(&good, "webhook_secret = \"whsec_exWe"),
            "vcs[0].webhook_secret",
        ),
        (
            without_line(&good, "webhook_url = \"http://127.0.0.1:9000/hooks\""),
            "vcs[0].webhook_url",
        ),
    ];
    for (text, key) in cases {
        let output = serve_with_config(&text);
        assert!(!output.status.success(), "{key}: should have been refused");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains(key), "{key} not named in: {stderr}");
    }
    let missing = Command::new(env!("CARGO_BIN_EXE_sp-gateway"))
        .args(["serve", "--config", "/nonexistent/gateway.toml"])
        .output()
        .unwrap();
    assert!(!missing.status.success());
}

#[test]
fn environment_overrides_a_key() {
    let gateway = Gateway::start_with(|c| c, &[("SP_GATEWAY_SERVER__MAX_BODY_BYTES", "100")]);
    let (status, body) =
        send(gateway.post_json("/fhir/ServiceRequest", &contained_referral("REF-ENV")));
    assert_eq!(status, 413, "{body}");
}

/// A webhook URL the delivery policy refuses whatever DNS says (plain http, or an address in a
/// special-purpose range, with the organisation's guard on) could never deliver: refused at start,
/// naming the key. `[delivery] allow_private_targets` is the default each organisation may
/// override.
#[test]
fn a_webhook_that_can_never_deliver_is_refused_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let good = demo_config_in(dir.path());
    let guarded = |url: &str| {
        good.replacen(
            "webhook_url = \"http://127.0.0.1:9000/hooks\"",
            &format!("webhook_url = \"{url}\"\nallow_private_targets = false"),
            1,
        )
    };
    for url in [
        "https://127.0.0.1/hooks",
        "https://169.254.169.254/latest/meta-data",
        "https://10.0.0.1/hooks",
        "https://[::ffff:192.168.0.1]/hooks",
        "https://[fd00::1]/hooks",
        "http://crm.example.org/hooks",
    ] {
        let output = serve_with_config(&guarded(url));
        assert_eq!(output.status.code(), Some(2), "{url}: should be refused");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains("vcs[0].webhook_url"), "{url}: {stderr}");
    }
    // The global switch off is every organisation's default: the demo's second one is named.
    let all_guarded = good
        .replace(
            "allow_private_targets = true",
            "allow_private_targets = false",
        )
        .replacen(
            "webhook_url = \"http://127.0.0.1:9000/hooks\"",
            "webhook_url = \"https://crm.example.org/hooks\"",
            1,
        );
    let output = serve_with_config(&all_guarded);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("vcs[1].webhook_url"), "{stderr}");
}

/// `serve` without `--config` runs the demo, whose tokens are public: it says so loudly, and it
/// will not serve them on an address other hosts can reach.
#[test]
fn the_demo_warns_and_stays_on_loopback() {
    let public = Command::new(env!("CARGO_BIN_EXE_sp-gateway"))
        .arg("serve")
        .env("SP_GATEWAY_SERVER__LISTEN", "0.0.0.0:0")
        .output()
        .unwrap();
    assert_eq!(public.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&public.stderr);
    assert!(
        stderr.contains("clients[0].token") && stderr.contains("loopback"),
        "{stderr}"
    );

    let gateway = Gateway::start_capturing_logs(|c| c, "info");
    assert_eq!(send(gateway.get("/fhir/metadata")).0, 200);
    let logs = gateway.logs();
    assert!(logs.contains("DEMO TOKENS IN USE"), "{logs}");
    assert!(logs.contains("allow_private_targets is on"), "{logs}");
}
