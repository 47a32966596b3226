//! FHIR XML -> JSON for every `*.xml` in a folder (see Cargo.toml).

use std::path::Path;
use std::{env, fs, process};

fn main() {
    let args: Vec<String> = env::args().collect();
    let (Some(src), Some(dst)) = (args.get(1), args.get(2)) else {
        eprintln!("usage: xml2json SRC_DIR DST_DIR");
        process::exit(2);
    };
    if let Err(e) = run(Path::new(src), Path::new(dst)) {
        eprintln!("xml2json: {e}");
        process::exit(1);
    }
}

fn run(src: &Path, dst: &Path) -> Result<(), String> {
    // The XML reader rejects xsi:schemaLocation hints; they carry no content.
    let xsi = regex::Regex::new(r#"\s+xmlns:xsi="[^"]*"|\s+xsi:schemaLocation="[^"]*""#)
        .map_err(|e| e.to_string())?;
    let utf8 = regex::Regex::new(r#"encoding=["'](?i:utf-8)["']"#).map_err(|e| e.to_string())?;
    fs::create_dir_all(dst).map_err(|e| e.to_string())?;
    let mut names: Vec<_> = fs::read_dir(src)
        .map_err(|e| e.to_string())?
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "xml"))
        .collect();
    names.sort();
    for p in names {
        let text = fs::read_to_string(&p).map_err(|e| format!("{}: {e}", p.display()))?;
        let cleaned = xsi.replace_all(&text, "");
        // Encoding names are case-insensitive (XML 1.0 §4.3.3); the reader wants `UTF-8`.
        let cleaned = utf8.replace(&cleaned, r#"encoding="UTF-8""#);
        let stem = p.file_stem().and_then(|s| s.to_str()).unwrap_or("out");
        match fhir_model::xml_to_json(&cleaned) {
            Ok(v) => {
                let out = serde_json::to_string_pretty(&v).map_err(|e| e.to_string())?;
                fs::write(dst.join(format!("{stem}.json")), out + "\n")
                    .map_err(|e| e.to_string())?;
                println!("converted {}", p.display());
            }
            Err(e) => println!("skipped {} ({e})", p.display()),
        }
    }
    Ok(())
}
