//! `sp-gateway directory import`: exit codes, the report of invalid services, what reaches the
//! database, and importing again (updates by id; a full feed withdraws what it dropped).

use std::path::Path;
use std::process::Command;

use sp_gateway::config::StorageConfig;
use sp_gateway::store::{self, DirectoryState};

const BIN: &str = env!("CARGO_BIN_EXE_sp-gateway");

fn fixture(rel: &str) -> String {
    format!("{}/fixtures/directory/{rel}", env!("CARGO_MANIFEST_DIR"))
}

/// Runs `directory import ARGS` with the demo configuration on the database at `db`.
fn import(db: &Path, args: &[&str]) -> (i32, String, String) {
    let out = Command::new(BIN)
        .args(["directory", "import"])
        .args(args)
        .env(
            "SP_GATEWAY_STORAGE__URL",
            format!("sqlite://{}", db.display()),
        )
        .output()
        .expect("runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn last_line(text: &str) -> &str {
    text.lines().last().unwrap_or_default()
}

/// `(id, state)` of every stored service.
fn stored(db: &Path) -> Vec<(String, DirectoryState)> {
    let config = StorageConfig {
        url: format!("sqlite://{}", db.display()),
        ..StorageConfig::default()
    };
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    runtime.block_on(async {
        let store = store::open(&config).await.expect("open");
        store
            .directory_services()
            .await
            .expect("services")
            .into_iter()
            .map(|s| (s.id, s.state))
            .collect()
    })
}

#[test]
fn invalid_services_are_named_and_nothing_is_imported_without_skip_invalid() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("gw.db");
    let (code, out, err) = import(&db, &[&fixture("")]);
    assert_eq!(code, 1, "{out}{err}");
    assert!(
        out.contains("INVALID service (no id) (") || out.contains("INVALID service 5be4e02b"),
        "{out}"
    );
    assert!(
        out.contains(r#"/name: "name" is a required property"#),
        "{out}"
    );
    assert!(out.contains("INVALID service walk-and-talk-1 ("), "{out}");
    assert!(
        out.contains(r#"/id: "walk-and-talk-1" is not a "uuid""#),
        "{out}"
    );
    assert!(last_line(&out).contains("nothing imported"), "{out}");
    assert!(stored(&db).is_empty());

    let (code, out, err) = import(&db, &["--skip-invalid", &fixture("")]);
    assert_eq!(code, 1, "something was invalid: {out}{err}");
    assert_eq!(
        last_line(&out),
        "imported 6 services (6 organisations, 7 locations), 2 skipped"
    );
    let services = stored(&db);
    assert_eq!(services.len(), 6);
    assert!(services.contains(&(
        "928fcda0-84a2-5c0b-af21-4291cf33e9fa".into(),
        DirectoryState::Inactive
    )));
}

#[test]
fn importing_again_updates_by_id_and_a_full_feed_withdraws_what_it_dropped() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("gw.db");
    let cardiff = fixture("cardiff.oruk.json");
    let page2 = fixture("herefordshire-page-2.oruk.json");
    let (code, out, err) = import(&db, &["--feed", "wales", &cardiff]);
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(
        last_line(&out),
        "imported 1 services (1 organisations, 2 locations), 0 skipped"
    );
    let once = stored(&db);
    let (code, out, _) = import(&db, &["--feed", "wales", &cardiff]);
    assert_eq!(code, 0, "{out}");
    assert_eq!(stored(&db), once, "idempotent");

    // Page 2 holds an invalid service: skipped, the two valid ones imported to another feed.
    let (code, out, _) = import(&db, &["--skip-invalid", "--feed", "hfd", &page2]);
    assert_eq!(code, 1, "{out}");
    assert_eq!(stored(&db).len(), 3);

    // The Welsh feed, full, without its one service (an empty array): withdrawn, still stored.
    let empty = dir.path().join("empty.json");
    std::fs::write(&empty, "[]").expect("write");
    let (code, out, err) = import(
        &db,
        &["--full", "--feed", "wales", empty.to_str().expect("path")],
    );
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("withdrew 1 service(s) of feed wales"), "{out}");
    let after = stored(&db);
    assert_eq!(after.len(), 3);
    assert!(after.contains(&(
        "c7522fc5-e59b-5e8c-a07a-8de70c3eee55".into(),
        DirectoryState::Withdrawn
    )));
    assert!(after.contains(&(
        "3920cc5e-105e-53c0-937d-3cb4fba9e101".into(),
        DirectoryState::Active
    )));
}

#[test]
fn unreadable_feeds_exit_2() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("gw.db");
    let garbage = dir.path().join("garbage.json");
    std::fs::write(&garbage, "{not json").expect("write");
    let missing = dir.path().join("missing.json");
    for path in [&garbage, &missing] {
        let (code, out, err) = import(
            &db,
            &[&fixture("cardiff.oruk.json"), path.to_str().expect("path")],
        );
        assert_eq!(code, 2, "{out}{err}");
        assert!(err.contains(path.to_str().expect("path")), "{err}");
    }
    assert!(stored(&db).is_empty());
}
