//! Single-core throughput measured in CPU time of this thread (robust on a
//! shared machine, where wall-clock benchmarks are skewed by other load).
//!
//! `cargo run --release -p sp-validator --example throughput`

use std::time::Instant;

use sp_validator::{Options, Validator, SP_PATIENT, SP_SERVICE_REQUEST};

const SERVICE_REQUEST: &[u8] = include_bytes!("../tests/data/peers/valid-servicerequest.json");
const BUNDLE: &[u8] = include_bytes!("../tests/data/bundles/referral-transaction.json");
const BY_TYPE: &[(&str, &str)] = &[
    ("ServiceRequest", SP_SERVICE_REQUEST),
    ("Patient", SP_PATIENT),
];

/// CPU nanoseconds this thread has run (Linux `schedstat`), if available.
fn cpu_ns() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    s.split_whitespace().next()?.parse().ok()
}

fn verdict(v: &Validator, bytes: &[u8], opts: &Options) -> bool {
    match serde_json::from_slice::<serde_json::Value>(bytes) {
        Ok(value) => !v.validate(&value, opts).iter().any(|i| i.is_error()),
        Err(_) => false,
    }
}

fn measure(name: &str, n: u32, mut f: impl FnMut() -> bool) {
    let (wall, cpu) = (Instant::now(), cpu_ns());
    let mut ok = 0u32;
    for _ in 0..n {
        ok += u32::from(f());
    }
    let wall = wall.elapsed().as_secs_f64();
    let cpu = match (cpu, cpu_ns()) {
        (Some(a), Some(b)) => (b - a) as f64 / 1e9,
        _ => wall,
    };
    println!(
        "{name}: {n} runs ({ok} valid), {:.2} us/run CPU ({:.0}/s), {:.2} us/run wall",
        cpu / f64::from(n) * 1e6,
        f64::from(n) / cpu,
        wall / f64::from(n) * 1e6
    );
}

fn main() {
    let t = Instant::now();
    let v = match Validator::bundled() {
        Ok(v) => v,
        Err(e) => {
            eprintln!("cannot load definitions: {e}");
            std::process::exit(1);
        }
    };
    println!(
        "Validator::bundled(): {:.1} ms",
        t.elapsed().as_secs_f64() * 1e3
    );
    let base = Options::default();
    let sp = Options {
        profiles_by_type: BY_TYPE,
        root_profiles: &[],
    };
    measure("ServiceRequest, base R4", 200_000, || {
        verdict(&v, SERVICE_REQUEST, &base)
    });
    measure("transaction Bundle, SP profiles", 20_000, || {
        verdict(&v, BUNDLE, &sp)
    });
}
