//! The direction of imports (docs/ARCHITECTURE.md): the HTTP edge (`api`) and the wiring (`app`)
//! depend on the rest, never the other way round; `config` depends on nothing but `domain`;
//! `lifecycle` borrows nothing from `intake`; `auth` knows no HTTP server. And no file of the API grows past a size one can
//! read: a new resource gets a file of its own.

use std::path::{Path, PathBuf};

fn sources(path: &Path) -> Vec<PathBuf> {
    if path.is_file() {
        return vec![path.to_path_buf()];
    }
    let mut files = Vec::new();
    for entry in std::fs::read_dir(path).expect("source folder") {
        files.extend(sources(&entry.expect("entry").path()));
    }
    files.retain(|f| f.extension().is_some_and(|e| e == "rs"));
    files
}

fn src(relative: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("src")
        .join(relative)
}

/// Every `crate::…` use in the module at `relative` that names one of `forbidden`.
fn offending(relative: &str, forbidden: &[&str]) -> Vec<String> {
    let mut found = Vec::new();
    for file in sources(&src(relative)) {
        let text = std::fs::read_to_string(&file).expect("source");
        for (n, line) in text.lines().enumerate() {
            for module in forbidden {
                let path = format!("crate::{module}");
                let named = line.match_indices(&path).any(|(at, _)| {
                    !line[at + path.len()..].starts_with(|c: char| c.is_alphanumeric() || c == '_')
                });
                if named {
                    found.push(format!("{}:{}: {}", file.display(), n + 1, line.trim()));
                }
            }
        }
    }
    found
}

#[test]
fn nothing_below_the_edge_imports_it() {
    let mut wrong = Vec::new();
    for module in [
        "auth",
        "store",
        "config.rs",
        "translate",
        "intake",
        "lifecycle.rs",
        "onward.rs",
        "subscriptions.rs",
        "delivery",
        "directory",
        "fhir",
        "domain.rs",
    ] {
        wrong.extend(offending(module, &["api", "app"]));
    }
    wrong.extend(offending(
        "config.rs",
        &[
            "auth",
            "store",
            "intake",
            "lifecycle",
            "translate",
            "delivery",
        ],
    ));
    wrong.extend(offending("lifecycle.rs", &["intake"]));
    assert!(
        wrong.is_empty(),
        "imports against the direction:\n{}",
        wrong.join("\n")
    );
}

/// `auth` says who a token or certificate is; reading them off HTTP requests is the API's.
#[test]
fn auth_knows_no_http_server() {
    let http: Vec<String> = sources(&src("auth"))
        .into_iter()
        .filter(|file| {
            let text = std::fs::read_to_string(file).expect("source");
            text.contains("actix_web") || text.contains("actix_tls")
        })
        .map(|file| file.display().to_string())
        .collect();
    assert!(
        http.is_empty(),
        "HTTP server types in auth: {}",
        http.join(", ")
    );
}

#[test]
fn no_api_file_is_over_800_lines() {
    let long: Vec<String> = sources(&src("api"))
        .into_iter()
        .filter_map(|file| {
            let lines = std::fs::read_to_string(&file)
                .expect("source")
                .lines()
                .count();
            (lines > 800).then(|| format!("{}: {lines} lines", file.display()))
        })
        .collect();
    assert!(
        long.is_empty(),
        "split these by resource:\n{}",
        long.join("\n")
    );
}
