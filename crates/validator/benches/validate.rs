//! JSON bytes -> verdict throughput, and start-up time.
//!
//! Run: `CARGO_TARGET_DIR=/work/target-validator cargo bench -p sp-validator --bench validate`

use std::hint::black_box;
use std::time::Instant;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use sp_validator::{Options, Validator, SP_PATIENT, SP_SERVICE_REQUEST};

const SERVICE_REQUEST: &[u8] = include_bytes!("../tests/data/peers/valid-servicerequest.json");
const BUNDLE: &[u8] = include_bytes!("../tests/data/bundles/referral-transaction.json");
const BY_TYPE: &[(&str, &str)] = &[
    ("ServiceRequest", SP_SERVICE_REQUEST),
    ("Patient", SP_PATIENT),
];

/// Parse and validate; `true` when there is no error.
fn verdict(v: &Validator, bytes: &[u8], opts: &Options) -> bool {
    match serde_json::from_slice::<serde_json::Value>(bytes) {
        Ok(value) => !v.validate(&value, opts).iter().any(|i| i.is_error()),
        Err(_) => false,
    }
}

fn benches(c: &mut Criterion) {
    let t = Instant::now();
    let v = match Validator::bundled() {
        Ok(v) => v,
        Err(e) => panic!("bundled definitions do not load: {e}"),
    };
    eprintln!("Validator::bundled() first call: {:?}", t.elapsed());

    let mut g = c.benchmark_group("startup");
    g.sample_size(10);
    g.bench_function("bundled", |b| {
        b.iter(|| black_box(Validator::bundled().is_ok()))
    });
    g.finish();

    let base = Options::default();
    let sp = Options {
        profiles_by_type: BY_TYPE,
        root_profiles: &[],
    };
    assert!(verdict(&v, SERVICE_REQUEST, &base));
    assert!(verdict(&v, BUNDLE, &sp));

    let mut g = c.benchmark_group("validate");
    g.throughput(Throughput::Elements(1));
    g.bench_function("servicerequest-parse-only", |b| {
        b.iter(|| serde_json::from_slice::<serde_json::Value>(black_box(SERVICE_REQUEST)).is_ok())
    });
    let parsed: serde_json::Value = serde_json::from_slice(SERVICE_REQUEST).unwrap_or_default();
    g.bench_function("servicerequest-validate-only", |b| {
        b.iter(|| v.validate(black_box(&parsed), &base).len())
    });
    g.bench_function("servicerequest-base-r4", |b| {
        b.iter(|| verdict(&v, black_box(SERVICE_REQUEST), &base))
    });
    g.bench_function("transaction-bundle-sp", |b| {
        b.iter(|| verdict(&v, black_box(BUNDLE), &sp))
    });
    g.finish();
}

criterion_group!(group, benches);
criterion_main!(group);
