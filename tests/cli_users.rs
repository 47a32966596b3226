//! `sp-gateway users` as an operator runs it: passwords on standard input, accounts in the
//! configured database, refusals with exit 1 and a reason.

mod common;

use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};

use common::demo_config_in;

fn users(config: &Path, args: &[&str], stdin: &str) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_sp-gateway"))
        .arg("users")
        .args(args)
        .arg("--config")
        .arg(config)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run sp-gateway users");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(stdin.as_bytes())
        .expect("write the password");
    child.wait_with_output().expect("output")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn accounts_are_added_listed_disabled_and_reset() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("gateway.toml");
    std::fs::write(&config, demo_config_in(dir.path())).unwrap();
    let add = |args: &[&str], password: &str| {
        let mut all = vec!["add"];
        all.extend_from_slice(args);
        users(&config, &all, &format!("{password}\n"))
    };

    let out = add(
        &["--org", "carers-count", "--email", "Ann@Carers.example"],
        "a long walk by the Wye",
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout).trim(), "added ann@carers.example");

    // With --totp: the URI for an authenticator app.
    let out = add(
        &[
            "--org",
            "valley-knit-natter",
            "--email",
            "bea@knit.example",
            "--role",
            "manager",
            "--totp",
        ],
        "purl one, knit two, repeat",
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    let uri = stdout.lines().nth(1).expect("the otpauth URI");
    assert!(
        uri.starts_with("otpauth://totp/sp-gateway:bea%40knit.example?secret="),
        "{uri}"
    );

    let out = add(
        &["--role", "operator", "--email", "ops@gateway.example"],
        "the quiet night shift",
    );
    assert!(out.status.success(), "{}", text(&out.stderr));

    // Refusals: exit 1, with the reason.
    let refused = [
        (
            add(
                &["--org", "carers-count", "--email", "cai@carers.example"],
                "too short",
            ),
            "at least 12 characters",
        ),
        (
            add(
                &["--org", "carers-count", "--email", "cai@carers.example"],
                "Qwerty123456",
            ),
            "commonly used",
        ),
        (
            add(
                &["--org", "carers-count", "--email", "ANN@carers.example"],
                "another long phrase",
            ),
            "already an account",
        ),
        (
            add(
                &["--org", "nowhere", "--email", "cai@carers.example"],
                "another long phrase",
            ),
            "no organisation \"nowhere\"",
        ),
        (
            add(&["--email", "cai@carers.example"], "another long phrase"),
            "--org is needed",
        ),
        (
            add(
                &[
                    "--org",
                    "carers-count",
                    "--role",
                    "operator",
                    "--email",
                    "x@y.example",
                ],
                "another long phrase",
            ),
            "belongs to no organisation",
        ),
        (
            add(
                &["--org", "carers-count", "--email", "not-an-address"],
                "another long phrase",
            ),
            "not an email address",
        ),
    ];
    for (out, reason) in refused {
        assert_eq!(out.status.code(), Some(1), "{reason}");
        assert!(
            text(&out.stderr).contains(reason),
            "{reason}: {}",
            text(&out.stderr)
        );
    }

    let out = users(&config, &["list"], "");
    assert!(out.status.success());
    assert_eq!(
        text(&out.stdout),
        "ann@carers.example\tstaff\tcarers-count\tpassword\tenabled\n\
         bea@knit.example\tmanager\tvalley-knit-natter\ttotp\tenabled\n\
         ops@gateway.example\toperator\t-\tpassword\tenabled\n"
    );

    // The database holds Argon2id hashes, never the password.
    let db = rusqlite::Connection::open(dir.path().join("gateway.db")).unwrap();
    let hash: String = db
        .query_row(
            "SELECT password_hash FROM accounts WHERE email = 'ann@carers.example'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert!(hash.starts_with("$argon2id$v=19$"), "{hash}");
    assert!(!hash.contains("Wye"));

    let out = users(&config, &["disable", "--email", "ann@carers.example"], "");
    assert!(out.status.success(), "{}", text(&out.stderr));
    let out = users(&config, &["list"], "");
    assert!(
        text(&out.stdout).contains("ann@carers.example\tstaff\tcarers-count\tpassword\tdisabled")
    );
    let out = users(&config, &["disable", "--email", "nobody@x.example"], "");
    assert_eq!(out.status.code(), Some(1));

    let out = users(
        &config,
        &["reset-password", "--email", "ann@carers.example"],
        "a different long phrase\n",
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let new_hash: String = db
        .query_row(
            "SELECT password_hash FROM accounts WHERE email = 'ann@carers.example'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_ne!(hash, new_hash);
    let out = users(
        &config,
        &["reset-password", "--email", "ann@carers.example"],
        "password\n",
    );
    assert_eq!(out.status.code(), Some(1));
}
