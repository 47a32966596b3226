//! Running the gateway on PostgreSQL the way operators do: `sp-gateway migrate` before starting
//! with `migrate_on_start = false`, and a start while the database is not reachable yet.

mod common;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use common::postgres::{TestDatabase, TestSchema};
use common::*;

/// The demo configuration with its storage URL replaced by `url`.
fn config_with_storage(dir: &Path, url: &str) -> String {
    demo_config_in(dir)
        .lines()
        .map(|line| {
            if line.starts_with("url = \"sqlite://") {
                format!("url = \"{url}\"")
            } else {
                line.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Runs the gateway binary with `args` and the demo configuration on `url`, to completion.
fn run(args: &[&str], url: &str, env: &[(&str, &str)]) -> Output {
    let dir = tempfile::tempdir().expect("temp dir");
    let config = dir.path().join("gateway.toml");
    std::fs::write(&config, config_with_storage(dir.path(), url)).expect("config");
    Command::new(env!("CARGO_BIN_EXE_sp-gateway"))
        .args(args)
        .arg("--config")
        .arg(&config)
        .envs(env.iter().copied())
        .output()
        .expect("run sp-gateway")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn migrate_prepares_the_database_for_a_gateway_that_does_not_migrate() {
    let schema = TestSchema::create();
    let no_migrations = [("SP_GATEWAY_STORAGE__MIGRATE_ON_START", "false")];

    // Unmigrated and told not to migrate: the gateway refuses to start and says what to do.
    let refused = run(&["serve"], &schema.url, &no_migrations);
    assert!(!refused.status.success());
    let stderr = text(&refused.stderr);
    assert!(stderr.contains("sp-gateway migrate"), "{stderr}");

    let migrated = run(&["migrate"], &schema.url, &[]);
    assert!(migrated.status.success(), "{}", text(&migrated.stderr));
    assert!(
        text(&migrated.stdout).contains("applied 1 init"),
        "{}",
        text(&migrated.stdout)
    );
    let again = run(&["migrate"], &schema.url, &[]);
    assert!(again.status.success());
    assert!(
        text(&again.stdout).contains("up to date"),
        "{}",
        text(&again.stdout)
    );

    let gateway = Gateway::start_with(
        |config| config,
        &[
            ("SP_GATEWAY_STORAGE__URL", &schema.url),
            ("SP_GATEWAY_STORAGE__MIGRATE_ON_START", "false"),
        ],
    );
    let id = gateway.refer("REF-MIGRATED");
    let (status, _) = send(gateway.get(&format!("/fhir/ServiceRequest/{id}")));
    assert_eq!(status, 200);
}

#[test]
fn migrate_on_sqlite_reports_what_it_applied() {
    let dir = tempfile::tempdir().expect("temp dir");
    let url = format!("sqlite://{}", dir.path().join("ops.db").display());
    let first = run(&["migrate"], &url, &[]);
    assert!(first.status.success(), "{}", text(&first.stderr));
    let stdout = text(&first.stdout);
    for name in [
        "1 init",
        "2 delivery",
        "3 closed_loop",
        "4 tokens",
        "5 lean_intake",
        "6 type_search",
    ] {
        assert!(stdout.contains(&format!("applied {name}")), "{stdout}");
    }
    let again = run(&["migrate"], &url, &[]);
    assert!(text(&again.stdout).contains("up to date"));
}

#[test]
fn a_bad_database_url_is_refused_naming_the_key_without_the_password() {
    let output = run(&["serve"], "mysql://admin:s3cret@127.0.0.1/gateway", &[]);
    assert!(!output.status.success());
    let stderr = text(&output.stderr);
    assert!(stderr.contains("storage.url"), "{stderr}");
    assert!(
        !stderr.contains("s3cret"),
        "the password is not printed: {stderr}"
    );
}

/// Forwards every connection on `listener` to PostgreSQL at `target`, byte for byte.
fn forward(listener: TcpListener, target: String) {
    for client in listener.incoming() {
        let Ok(client) = client else { continue };
        let Ok(server) = TcpStream::connect(&target) else {
            continue;
        };
        let pipe = |mut from: TcpStream, mut to: TcpStream| {
            std::thread::spawn(move || {
                let mut buffer = [0u8; 16 * 1024];
                while let Ok(n) = from.read(&mut buffer) {
                    if n == 0 || to.write_all(&buffer[..n]).is_err() {
                        break;
                    }
                }
                let _ = to.shutdown(std::net::Shutdown::Both);
            });
        };
        pipe(
            client.try_clone().expect("clone"),
            server.try_clone().expect("clone"),
        );
        pipe(server, client);
    }
}

#[test]
fn the_gateway_waits_for_a_database_that_is_not_up_yet() {
    let schema = TestSchema::create();
    let target = url::Url::parse(&schema.url).expect("database url");
    let target_addr = format!(
        "{}:{}",
        target.host_str().unwrap_or("127.0.0.1"),
        target.port().unwrap_or(5432)
    );
    // A port where nothing listens yet: the database "comes up" there two seconds later.
    let port = TcpListener::bind("127.0.0.1:0")
        .expect("free port")
        .local_addr()
        .expect("addr")
        .port();
    let mut late = target.clone();
    late.set_port(Some(port)).expect("port");
    let comes_up = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_secs(2));
        let listener = TcpListener::bind(("127.0.0.1", port)).expect("bind the late port");
        std::thread::spawn(move || forward(listener, target_addr));
    });
    let started = Instant::now();
    let late_url = late.to_string();
    let gateway = Gateway::start_with(
        |config| config,
        &[
            ("SP_GATEWAY_STORAGE__URL", &late_url),
            ("SP_GATEWAY_STORAGE__START_TIMEOUT", "30s"),
        ],
    );
    comes_up.join().expect("proxy");
    assert!(
        started.elapsed() >= Duration::from_secs(2),
        "ready only once the database was"
    );
    let id = gateway.refer("REF-LATE-DATABASE");
    let (status, _) = send(gateway.get(&format!("/fhir/ServiceRequest/{id}")));
    assert_eq!(status, 200);
}

/// A database that holds a statement (here: a lock another session keeps) cannot hold the
/// request for ever: after `statement_timeout` the answer is `503`, and nothing was stored.
#[test]
fn a_stuck_database_gives_503_after_the_statement_timeout() {
    let schema = TestSchema::create();
    let gateway = Gateway::start_with(
        |config| config,
        &[
            ("SP_GATEWAY_STORAGE__URL", &schema.url),
            ("SP_GATEWAY_STORAGE__STATEMENT_TIMEOUT", "1s"),
        ],
    );
    gateway.refer("REF-BEFORE-THE-LOCK");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let mut locker: sqlx::PgConnection = runtime
        .block_on(<sqlx::PgConnection as sqlx::Connection>::connect(
            &schema.url,
        ))
        .expect("connect");
    runtime
        .block_on(sqlx::Executor::execute(
            &mut locker,
            "BEGIN; LOCK TABLE referrals IN ACCESS EXCLUSIVE MODE",
        ))
        .expect("lock");
    let started = Instant::now();
    let (status, body) = send(gateway.post_json(
        "/fhir/ServiceRequest",
        &contained_referral("REF-WHILE-LOCKED"),
    ));
    let waited = started.elapsed();
    assert_eq!(status, 503, "{body}");
    assert_outcome(&body);
    assert!(
        waited < Duration::from_secs(10),
        "answered after {waited:?}"
    );
    runtime
        .block_on(sqlx::Executor::execute(&mut locker, "ROLLBACK"))
        .expect("unlock");
    let (_, bundle) = send(gateway.get(
        "/fhir/ServiceRequest?identifier=https://fhir.emis-demo.example/Id/referral|REF-WHILE-LOCKED",
    ));
    assert_eq!(bundle["total"], 0, "nothing stored: {bundle}");
    gateway.refer("REF-AFTER-THE-LOCK");
}

/// `/readyz` on PostgreSQL: ready while the database answers; once the database is gone (dropped
/// under the running gateway, which closes its connections), `503` naming `database`, while
/// `/healthz` still answers (the process is up: an orchestrator stops sending it traffic
/// rather than restarting it).
#[test]
fn readiness_names_a_database_that_cannot_be_reached() {
    let database = TestDatabase::create();
    let url = database.url.clone();
    let gateway = Gateway::start_with(
        move |c| {
            c.lines()
                .map(|line| match line.starts_with("url = \"sqlite://") {
                    true => format!("url = \"{url}\""),
                    false => line.to_string(),
                })
                .collect::<Vec<_>>()
                .join("\n")
        },
        &[],
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    let ready = loop {
        let (status, ready) = send(gateway.http.get(gateway.url("/readyz")));
        if status == 200 || Instant::now() > deadline {
            break ready;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(ready["checks"]["database"], "ok", "{ready}");

    database.drop_now();
    let (status, ready) = send(gateway.http.get(gateway.url("/readyz")));
    assert_eq!(status, 503, "{ready}");
    assert_eq!(ready["checks"]["database"], "unreachable", "{ready}");
    assert!(
        ready["failed"]
            .as_array()
            .is_some_and(|f| f.contains(&serde_json::json!("database"))),
        "{ready}"
    );
    let (status, health) = send(gateway.http.get(gateway.url("/healthz")));
    assert_eq!(status, 200, "{health}");
}
