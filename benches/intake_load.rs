//! Load benchmark for referral intake: `cargo bench --bench intake_load`.
//!
//! Cargo builds the package in release mode for benches and hands this program the path of the
//! `sp-gateway` binary it built (`CARGO_BIN_EXE_sp-gateway`). The program starts that binary with
//! the demo configuration (`src/demo.toml`) on `127.0.0.1:0` and a fresh SQLite database in a
//! temporary directory, waits for `/fhir/metadata`, and then drives it over HTTP/1.1 keep-alive
//! connections with a deliberately small blocking client (one thread per connection, no HTTP
//! library), so that the generator takes as little as it can of the CPU it shares with the server.
//!
//! Every referral is a real one from `fixtures/`, with its GP reference (the ServiceRequest
//! identifier, and the `ifNoneExist`/`If-None-Exist` condition naming it) rewritten to a value no
//! other request uses, so every request creates a referral.
//!
//! Phases:
//! - A, throughput: a closed loop of N connections each sending the next request as soon as the
//!   previous answer arrives, for a transaction Bundle (ServiceRequest, Patient, Practitioner,
//!   PractitionerRole, GP practice Organization, performer Organization, Consent) and for a single
//!   ServiceRequest with everything contained.
//! - B, latency at a steady rate: an open loop that schedules requests at fixed intervals and
//!   measures each from its scheduled send time, so a slow answer cannot hide the ones queued
//!   behind it (no coordinated omission).
//! - C, where the time goes: the same Bundle to `POST /fhir/Bundle/$validate` (every check a
//!   create makes, nothing stored) and `GET /fhir/metadata` (HTTP and generator alone).
//!
//! Afterwards the gateway is killed with SIGKILL and the database is opened: the `referrals` and
//! `outbox` tables must hold exactly one row per 2xx answer to a create. Any non-2xx answer,
//! transport error or count mismatch makes the program exit non-zero.
//!
//! Settings (environment): `SP_BENCH_SECS` (seconds per measured phase, default 20),
//! `SP_BENCH_CONNECTIONS` (closed-loop connection counts, default `32,64,256`: with few
//! connections every client waits for the same group commit and the CPUs idle in between, many
//! GP systems at once keep them busy), `SP_BENCH_RATE`
//! (open-loop referrals per second, default 1000), `SP_BENCH_DELIVERY=on` (keep the webhook
//! delivery worker running; by default it is switched off so that intake alone is measured),
//! `RUST_LOG` (the gateway's log level, default `info` as in production; logs go to a file).

mod common;

use std::collections::BTreeMap;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use common::{
    clock_ticks_per_second, count_rows, cpu_use, env_counts, env_number, machine_description,
    truncate, Conn, CpuSample, CpuUse, Gateway, Response, Result, GP_TOKEN,
};

const BUNDLE: &str =
    include_str!("../fixtures/bundles/transaction-carer-support-carers-count.json");
const BUNDLE_REFERENCE: &str = "EMIS-REF-2026-004230";
const CONTAINED: &str = include_str!("../fixtures/referrals/valid/carer-support-carers-count.json");
const CONTAINED_REFERENCE: &str = "EMIS-REF-2026-003981";
const REFERRAL_SYSTEM: &str = "https://fhir.emis-demo.example/Id/referral";
/// Threads serving the open loop: the most requests in flight at once.
const OPEN_LOOP_WORKERS: usize = 64;

fn main() -> ExitCode {
    // `cargo bench` passes `--bench`; `cargo test --all-targets` runs benches without it.
    if !std::env::args().any(|arg| arg == "--bench") {
        println!("intake_load: run it with `cargo bench --bench intake_load`; nothing to do here.");
        return ExitCode::SUCCESS;
    }
    match run() {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => {
            eprintln!("intake_load: FAILED (see above)");
            ExitCode::FAILURE
        }
        Err(message) => {
            eprintln!("intake_load: error: {message}");
            ExitCode::FAILURE
        }
    }
}

struct Settings {
    secs: u64,
    connections: Vec<usize>,
    rate: u64,
    delivery: bool,
}

impl Settings {
    fn from_env() -> Result<Settings> {
        let connections = env_counts("SP_BENCH_CONNECTIONS", "32,64,256")?;
        let settings = Settings {
            secs: env_number("SP_BENCH_SECS", 20)?,
            connections,
            rate: env_number("SP_BENCH_RATE", 1000)?,
            delivery: std::env::var("SP_BENCH_DELIVERY").is_ok_and(|v| v == "on"),
        };
        if !(1..=600).contains(&settings.secs) {
            return Err("SP_BENCH_SECS must be 1..=600".into());
        }
        if !(1..=50_000).contains(&settings.rate) {
            return Err("SP_BENCH_RATE must be 1..=50000".into());
        }
        Ok(settings)
    }
}

// ---------------------------------------------------------------------------------------------
// What is sent

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// `POST /fhir`: the transaction Bundle.
    Bundle,
    /// `POST /fhir/ServiceRequest`: everything contained, with `If-None-Exist`.
    Contained,
    /// `POST /fhir/Bundle/$validate`: the transaction Bundle, checked and not stored.
    ValidateBundle,
    /// `GET /fhir/metadata`.
    Metadata,
}

impl Kind {
    fn label(self) -> &'static str {
        match self {
            Kind::Bundle => "transaction Bundle  POST /fhir",
            Kind::Contained => "contained SR  POST /fhir/ServiceRequest",
            Kind::ValidateBundle => "Bundle  POST /fhir/Bundle/$validate",
            Kind::Metadata => "GET /fhir/metadata",
        }
    }

    fn creates(self) -> bool {
        matches!(self, Kind::Bundle | Kind::Contained)
    }

    /// The whole HTTP/1.1 request, with a GP reference of its own (`seq`).
    fn request(self, addr: &str, seq: u64) -> Vec<u8> {
        let reference = format!("LOAD-{seq:010}");
        let (method, path, body, extra) = match self {
            Kind::Bundle => (
                "POST",
                "/fhir",
                BUNDLE.replace(BUNDLE_REFERENCE, &reference),
                String::new(),
            ),
            Kind::ValidateBundle => (
                "POST",
                "/fhir/Bundle/$validate",
                BUNDLE.replace(BUNDLE_REFERENCE, &reference),
                String::new(),
            ),
            Kind::Contained => (
                "POST",
                "/fhir/ServiceRequest",
                CONTAINED.replace(CONTAINED_REFERENCE, &reference),
                format!("If-None-Exist: identifier={REFERRAL_SYSTEM}|{reference}\r\n"),
            ),
            Kind::Metadata => ("GET", "/fhir/metadata", String::new(), String::new()),
        };
        let mut request = format!(
            "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {GP_TOKEN}\r\n\
             Accept: application/fhir+json\r\n{extra}"
        );
        if method == "POST" {
            request.push_str(&format!(
                "Content-Type: application/fhir+json\r\nContent-Length: {}\r\n",
                body.len()
            ));
        }
        request.push_str("\r\n");
        let mut bytes = request.into_bytes();
        bytes.extend_from_slice(body.as_bytes());
        bytes
    }

    /// A sanity check on the first successful answer of a phase.
    fn check_answer(self, body: &[u8]) -> Result<()> {
        let text = String::from_utf8_lossy(body);
        let expected = match self {
            Kind::Bundle => "\"transaction-response\"",
            Kind::Contained => "\"ServiceRequest\"",
            Kind::ValidateBundle => "\"OperationOutcome\"",
            Kind::Metadata => "\"CapabilityStatement\"",
        };
        if !text.contains(expected) || text.contains("\"severity\":\"error\"") {
            return Err(format!(
                "{}: unexpected answer: {}",
                self.label(),
                truncate(&text)
            ));
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------
// Measuring

/// What one thread saw.
#[derive(Default)]
struct Tally {
    latencies_us: Vec<u32>,
    ok: u64,
    failures: BTreeMap<String, u64>,
    first_failure: Option<String>,
    checked: bool,
}

impl Tally {
    fn record(&mut self, kind: Kind, latency: Duration, outcome: Result<Response>) {
        self.latencies_us
            .push(u32::try_from(latency.as_micros()).unwrap_or(u32::MAX));
        match outcome {
            Ok(response) if (200..300).contains(&response.status) => {
                self.ok += 1;
                if !self.checked {
                    self.checked = true;
                    if let Err(problem) = kind.check_answer(&response.body) {
                        self.fail("unexpected 2xx body".into(), problem);
                    }
                }
            }
            Ok(response) => {
                let sample = format!(
                    "HTTP {}: {}",
                    response.status,
                    truncate(&String::from_utf8_lossy(&response.body))
                );
                self.fail(format!("HTTP {}", response.status), sample);
            }
            Err(error) => self.fail("transport error".into(), error),
        }
    }

    fn fail(&mut self, key: String, sample: String) {
        *self.failures.entry(key).or_default() += 1;
        self.first_failure.get_or_insert(sample);
    }

    fn merge(&mut self, other: Tally) {
        self.latencies_us.extend(other.latencies_us);
        self.ok += other.ok;
        for (key, n) in other.failures {
            *self.failures.entry(key).or_default() += n;
        }
        if self.first_failure.is_none() {
            self.first_failure = other.first_failure;
        }
    }
}

struct PhaseResult {
    name: String,
    kind: Kind,
    load: String,
    elapsed: Duration,
    tally: Tally,
    cpu: CpuUse,
}

impl PhaseResult {
    fn rate(&self) -> f64 {
        self.tally.ok as f64 / self.elapsed.as_secs_f64()
    }

    fn percentile_ms(&self, q: f64) -> f64 {
        let sorted = &self.tally.latencies_us;
        if sorted.is_empty() {
            return f64::NAN;
        }
        let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
        f64::from(sorted[rank - 1]) / 1000.0
    }

    fn failed(&self) -> u64 {
        self.tally.failures.values().sum()
    }
}

struct Bench {
    addr: String,
    server_pid: u32,
    seq: Arc<AtomicU64>,
    created: u64,
    hz: f64,
}

impl Bench {
    /// Closed loop: `connections` threads, each sending its next request when its answer arrives.
    fn closed_loop(
        &mut self,
        name: &str,
        kind: Kind,
        connections: usize,
        duration: Duration,
    ) -> Result<PhaseResult> {
        let stop = Arc::new(AtomicBool::new(false));
        let before = CpuSample::take(self.server_pid);
        let started = Instant::now();
        let threads: Vec<_> = (0..connections)
            .map(|_| {
                let (addr, stop, seq) = (self.addr.clone(), stop.clone(), self.seq.clone());
                std::thread::spawn(move || -> Result<Tally> {
                    let mut tally = Tally::default();
                    let mut conn = Conn::open(&addr)?;
                    while !stop.load(Ordering::Relaxed) {
                        let request = kind.request(&addr, seq.fetch_add(1, Ordering::Relaxed));
                        let sent = Instant::now();
                        let outcome = conn.exchange(&request);
                        let broken = outcome.is_err();
                        tally.record(kind, sent.elapsed(), outcome);
                        if broken {
                            // A transport error is reported; the thread stops rather than spin.
                            break;
                        }
                    }
                    Ok(tally)
                })
            })
            .collect();
        std::thread::sleep(duration);
        stop.store(true, Ordering::Relaxed);
        let tally = join_all(threads)?;
        let elapsed = started.elapsed();
        let after = CpuSample::take(self.server_pid);
        self.finish(
            name,
            kind,
            format!("closed loop, {connections} conns"),
            elapsed,
            tally,
            cpu_use(&before, &after, self.hz),
        )
    }

    /// Open loop: requests scheduled every 1/rate s; latency counts from the scheduled time.
    fn open_loop(
        &mut self,
        name: &str,
        kind: Kind,
        rate: u64,
        duration: Duration,
    ) -> Result<PhaseResult> {
        let (tickets, queue) = mpsc::channel::<Instant>();
        let queue = Arc::new(Mutex::new(queue));
        let workers: Vec<_> = (0..OPEN_LOOP_WORKERS)
            .map(|_| {
                let (addr, queue, seq) = (self.addr.clone(), queue.clone(), self.seq.clone());
                std::thread::spawn(move || -> Result<Tally> {
                    let mut tally = Tally::default();
                    let mut conn = Conn::open(&addr)?;
                    loop {
                        let next = queue.lock().map_err(|_| "queue poisoned")?.recv();
                        let Ok(scheduled) = next else { break };
                        let request = kind.request(&addr, seq.fetch_add(1, Ordering::Relaxed));
                        let outcome = conn.exchange(&request);
                        let broken = outcome.is_err();
                        tally.record(kind, scheduled.elapsed(), outcome);
                        if broken {
                            conn = Conn::open(&addr)?;
                        }
                    }
                    Ok(tally)
                })
            })
            .collect();
        // Let the workers connect before the clock starts.
        std::thread::sleep(Duration::from_millis(200));
        let before = CpuSample::take(self.server_pid);
        let interval = Duration::from_secs(1).as_nanos() as f64 / rate as f64;
        let count = rate * duration.as_secs();
        let started = Instant::now();
        for i in 0..count {
            let due = started + Duration::from_nanos((interval * i as f64) as u64);
            let now = Instant::now();
            if due > now {
                std::thread::sleep(due - now);
            }
            tickets
                .send(due)
                .map_err(|_| "every open-loop worker has stopped")?;
        }
        drop(tickets);
        let tally = join_all(workers)?;
        let elapsed = started.elapsed();
        let after = CpuSample::take(self.server_pid);
        self.finish(
            name,
            kind,
            format!("open loop, {rate}/s"),
            elapsed,
            tally,
            cpu_use(&before, &after, self.hz),
        )
    }

    fn finish(
        &mut self,
        name: &str,
        kind: Kind,
        load: String,
        elapsed: Duration,
        mut tally: Tally,
        cpu: CpuUse,
    ) -> Result<PhaseResult> {
        tally.latencies_us.sort_unstable();
        if kind.creates() {
            self.created += tally.ok;
        }
        let result = PhaseResult {
            name: name.to_string(),
            kind,
            load,
            elapsed,
            tally,
            cpu,
        };
        print_row(&result);
        Ok(result)
    }
}

fn join_all(threads: Vec<std::thread::JoinHandle<Result<Tally>>>) -> Result<Tally> {
    let mut total = Tally::default();
    for thread in threads {
        let tally = thread.join().map_err(|_| "a load thread panicked")??;
        total.merge(tally);
    }
    Ok(total)
}

fn cores(value: Option<f64>) -> String {
    value.map_or("n/a".into(), |v| format!("{v:.2}"))
}

fn print_header() {
    println!(
        "{:<5} {:<42} {:<24} {:>8} {:>6} {:>9} {:>8} {:>8} {:>8} {:>8} {:>6} {:>6} {:>5}",
        "phase",
        "request",
        "load",
        "2xx",
        "non2xx",
        "2xx/s",
        "p50 ms",
        "p90 ms",
        "p99 ms",
        "max ms",
        "srvCPU",
        "genCPU",
        "busy"
    );
}

fn print_row(r: &PhaseResult) {
    println!(
        "{:<5} {:<42} {:<24} {:>8} {:>6} {:>9.0} {:>8.2} {:>8.2} {:>8.2} {:>8.2} {:>6} {:>6} {:>5}",
        r.name,
        r.kind.label(),
        r.load,
        r.tally.ok,
        r.failed(),
        r.rate(),
        r.percentile_ms(0.50),
        r.percentile_ms(0.90),
        r.percentile_ms(0.99),
        r.percentile_ms(1.0),
        cores(r.cpu.server_cores),
        cores(r.cpu.generator_cores),
        r.cpu
            .machine_busy
            .map_or("n/a".into(), |b| format!("{:.0}%", b * 100.0)),
    );
    let threads: Vec<String> = r
        .cpu
        .threads
        .iter()
        .take(5)
        .map(|(name, cores)| format!("{name} {cores:.2}"))
        .collect();
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get()) as f64;
    let other = match (
        r.cpu.machine_busy,
        r.cpu.server_cores,
        r.cpu.generator_cores,
    ) {
        (Some(busy), Some(server), Some(generator)) => {
            format!("{:.2}", (busy * cpus - server - generator).max(0.0))
        }
        _ => "n/a".into(),
    };
    println!(
        "      gateway threads (cores): {}; other processes: {other} cores",
        threads.join(", ")
    );
}

fn run() -> Result<bool> {
    let settings = Settings::from_env()?;
    let secs = Duration::from_secs(settings.secs);
    println!("intake_load: {}", chrono::Utc::now().to_rfc3339());
    println!("machine:     {}", machine_description());
    println!("gateway:     {}", env!("CARGO_BIN_EXE_sp-gateway"));
    let mut gateway = Gateway::start(settings.delivery)?;
    println!(
        "listening:   http://{} (pid {}), database {}, delivery worker {}",
        gateway.addr,
        gateway.pid(),
        gateway.db_path().display(),
        if settings.delivery { "on" } else { "off" }
    );
    println!(
        "bodies:      transaction Bundle {} bytes, contained ServiceRequest {} bytes",
        BUNDLE.len(),
        CONTAINED.len()
    );
    println!(
        "latency: closed loop from write to whole answer; open loop from the scheduled send time."
    );
    println!(
        "CPU: cores busy in the gateway (srv) and this generator (gen); busy = whole machine.\n"
    );
    let mut bench = Bench {
        addr: gateway.addr.clone(),
        server_pid: gateway.pid(),
        seq: Arc::new(AtomicU64::new(1)),
        created: 0,
        hz: clock_ticks_per_second(),
    };
    print_header();
    let first = settings.connections[0];
    let mut results =
        vec![bench.closed_loop("warm", Kind::Bundle, first, Duration::from_secs(3))?];
    for &connections in &settings.connections {
        results.push(bench.closed_loop("A", Kind::Bundle, connections, secs)?);
    }
    results.push(bench.closed_loop("A", Kind::Contained, first, secs)?);
    results.push(bench.open_loop("B", Kind::Bundle, settings.rate, secs)?);
    results.push(bench.open_loop("B", Kind::Contained, settings.rate, secs)?);
    let half = Duration::from_secs(settings.secs.div_ceil(2));
    results.push(bench.closed_loop("C", Kind::ValidateBundle, first, half)?);
    results.push(bench.closed_loop("C", Kind::Metadata, first, half)?);

    // Durability: kill without warning, then count what is on disk.
    gateway.kill()?;
    let db = gateway.db_path();
    let referrals = count_rows(&db, "SELECT COUNT(*) FROM referrals")?;
    let outbox = count_rows(&db, "SELECT COUNT(*) FROM outbox")?;
    let outbox_referrals = count_rows(&db, "SELECT COUNT(DISTINCT referral_id) FROM outbox")?;
    let db_bytes = std::fs::metadata(&db).map(|m| m.len()).unwrap_or(0);
    println!(
        "\ndurability (after SIGKILL): 2xx creates {}, referrals rows {}, outbox rows {} ({} referrals), database {:.0} MB",
        bench.created,
        referrals,
        outbox,
        outbox_referrals,
        db_bytes as f64 / 1e6
    );

    let mut ok = true;
    if referrals != bench.created || outbox != bench.created || outbox_referrals != bench.created {
        eprintln!("durability check FAILED: rows on disk differ from the 2xx answers");
        ok = false;
    }
    for result in &results {
        if result.failed() > 0 {
            ok = false;
            eprintln!(
                "{} {} ({}): {:?}; first: {}",
                result.name,
                result.kind.label(),
                result.load,
                result.tally.failures,
                result.tally.first_failure.as_deref().unwrap_or("")
            );
        }
    }

    let best = results
        .iter()
        .filter(|r| r.name == "A" && r.kind == Kind::Bundle)
        .map(PhaseResult::rate)
        .fold(0.0, f64::max);
    let steady = results
        .iter()
        .find(|r| r.name == "B" && r.kind == Kind::Bundle)
        .map(|r| r.percentile_ms(0.99))
        .unwrap_or(f64::NAN);
    let verdict = |met: bool| if met { "met" } else { "NOT met" };
    println!(
        "targets (transaction Bundle): >= 5000 referrals/s: {best:.0}/s, {}; p99 < 25 ms at {}/s: {steady:.2} ms, {}",
        verdict(best >= 5000.0),
        settings.rate,
        verdict(steady < 25.0 && settings.rate >= 1000),
    );
    Ok(ok)
}
