//! Generates the list of embedded SP profile files so that new files in
//! `profiles/sp/` are picked up without editing code.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::{env, fs};

fn main() {
    let manifest = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").unwrap_or_default());
    let profiles = manifest.join("../../profiles");
    // Watching the parent folder catches `sp/` being created later, and any
    // file added, changed or removed below it.
    println!("cargo:rerun-if-changed={}", profiles.display());
    println!("cargo:rerun-if-changed=build.rs");
    let mut files = Vec::new();
    collect(&profiles.join("sp"), &mut files);
    files.sort();
    let mut out = String::from("/// Embedded `profiles/sp/**/*.json`: (file name, contents).\n");
    out.push_str("pub(crate) static SP_FILES: &[(&str, &str)] = &[\n");
    for f in &files {
        let abs = f.canonicalize().unwrap_or_else(|_| f.clone());
        let name = f.strip_prefix(&profiles).unwrap_or(f).display().to_string();
        let _ = writeln!(
            out,
            "    ({name:?}, include_str!({:?})),",
            abs.display().to_string()
        );
    }
    out.push_str("];\n");
    let dest = PathBuf::from(env::var_os("OUT_DIR").unwrap_or_default()).join("sp_profiles.rs");
    if let Err(e) = fs::write(&dest, out) {
        println!("cargo:warning=cannot write {}: {e}", dest.display());
    }
}

fn collect(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(rd) = fs::read_dir(dir) else { return };
    for entry in rd.flatten() {
        let p = entry.path();
        if p.is_dir() {
            println!("cargo:rerun-if-changed={}", p.display());
            collect(&p, out);
        } else if p.extension().is_some_and(|e| e == "json") {
            out.push(p);
        }
    }
}
