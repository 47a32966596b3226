//! Webhook delivery benchmark: `cargo bench --bench delivery_load`.
//!
//! Cargo builds the package in release mode and hands this program the `sp-gateway` binary it
//! built (`CARGO_BIN_EXE_sp-gateway`). The program starts a webhook receiver on `127.0.0.1:0`
//! inside this process (`benches/common/receiver.rs`: blocking, one thread per connection,
//! answering `204` at once and timestamping each receipt), then starts the gateway with the demo
//! configuration (`src/demo.toml`) edited so that every organisation's `webhook_url` points at
//! that receiver, `[delivery] allow_private_targets = true`, the delivery `concurrency` under test
//! and a fresh SQLite database in a temporary directory. Referrals are the contained
//! ServiceRequest from `fixtures/`, each with a GP reference (identifier and `If-None-Exist`) no
//! other request uses (`benches/common/referral.rs`), sent with the same minimal HTTP/1.1 client
//! as `benches/intake_load.rs` (`benches/common`).
//!
//! Phases:
//! - 1, throughput over a backlog: N referrals are created with the delivery worker switched off,
//!   then the gateway is restarted on the same database with the worker on, and deliveries/s are
//!   measured from the first to the last receipt (once per concurrency setting).
//! - 1b, throughput while referrals keep arriving: N referrals sent as fast as the gateway takes
//!   them with the worker on; intake/s and deliveries/s side by side.
//! - 2, latency at a steady rate: an open loop at `SP_BENCH_RATE` referrals/s; for each referral,
//!   the time from its `201` answer (whole answer read) to its receipt at the receiver.
//!
//! Checks: every `201` referral (the id in its `Location`) must be received exactly once by
//! referral id with a valid Standard Webhooks signature; a second receipt with the same
//! `webhook-id` (a retry) is reported, two different messages for one referral are an error.
//! At the end the gateway is killed and the outbox must hold every message as `delivered`.
//! Any failure makes the program exit non-zero with a message.
//!
//! Settings (environment): `SP_BENCH_REFERRALS` (N per throughput phase, default 5000),
//! `SP_BENCH_CONNECTIONS` (client connections sending referrals, default 8),
//! `SP_BENCH_CONCURRENCY` (delivery concurrency settings for phase 1, default `16,32`; the last
//! one is used for 1b and 2), `SP_BENCH_RATE` (phase 2 referrals/s, default 200),
//! `SP_BENCH_SECS` (phase 2 seconds, default 15), `RUST_LOG` (gateway log level, default `info`).

mod common;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use common::receiver::{inspect, receiver_config, start_receiver, Inbox};
use common::referral::{create, join_all, Created, CONTAINED};
use common::{
    clock_ticks_per_second, count_rows, cpu_use, env_counts, env_number, load_average,
    machine_description, percentile, signed_ms, Conn, CpuSample, CpuUse, Gateway, Result,
};

/// Threads serving the open loop: the most requests in flight at once.
const OPEN_LOOP_WORKERS: usize = 16;

fn main() -> ExitCode {
    // `cargo bench` passes `--bench`; `cargo test --all-targets` runs benches without it.
    if !std::env::args().any(|arg| arg == "--bench") {
        println!(
            "delivery_load: run it with `cargo bench --bench delivery_load`; nothing to do here."
        );
        return ExitCode::SUCCESS;
    }
    match run() {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => {
            eprintln!("delivery_load: FAILED (see above)");
            ExitCode::FAILURE
        }
        Err(message) => {
            eprintln!("delivery_load: error: {message}");
            ExitCode::FAILURE
        }
    }
}

struct Settings {
    referrals: u64,
    connections: usize,
    concurrency: Vec<usize>,
    rate: u64,
    secs: u64,
}

impl Settings {
    fn from_env() -> Result<Settings> {
        let concurrency = env_counts("SP_BENCH_CONCURRENCY", "16,32")?;
        let settings = Settings {
            referrals: env_number("SP_BENCH_REFERRALS", 5000)?,
            connections: env_number("SP_BENCH_CONNECTIONS", 8)?,
            concurrency,
            rate: env_number("SP_BENCH_RATE", 200)?,
            secs: env_number("SP_BENCH_SECS", 15)?,
        };
        if !(1..=200_000).contains(&settings.referrals) {
            return Err("SP_BENCH_REFERRALS must be 1..=200000".into());
        }
        if !(1..=256).contains(&settings.connections) {
            return Err("SP_BENCH_CONNECTIONS must be 1..=256".into());
        }
        if !(1..=5_000).contains(&settings.rate) {
            return Err("SP_BENCH_RATE must be 1..=5000".into());
        }
        if !(1..=300).contains(&settings.secs) {
            return Err("SP_BENCH_SECS must be 1..=300".into());
        }
        Ok(settings)
    }
}

// ---------------------------------------------------------------------------------------------
// Sending referrals

/// `count` referrals over `connections` keep-alive connections, each sending its next one when
/// the answer arrives.
fn send_closed(
    addr: &str,
    prefix: &str,
    count: u64,
    connections: usize,
) -> Result<(Vec<Created>, Duration)> {
    let next = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let threads: Vec<_> = (0..connections)
        .map(|_| {
            let (addr, next, prefix) = (addr.to_string(), next.clone(), prefix.to_string());
            std::thread::spawn(move || -> Result<Vec<Created>> {
                let mut conn = Conn::open(&addr)?;
                let mut created = Vec::new();
                loop {
                    let seq = next.fetch_add(1, Ordering::Relaxed);
                    if seq >= count {
                        return Ok(created);
                    }
                    created.push(create(&mut conn, &addr, format!("{prefix}-{seq:07}"))?);
                }
            })
        })
        .collect();
    let created = join_all(threads)?;
    Ok((created, started.elapsed()))
}

/// An open loop: `rate` referrals/s for `secs`; latency counted from the scheduled send time.
fn send_open(addr: &str, prefix: &str, rate: u64, secs: u64) -> Result<(Vec<Created>, Duration)> {
    let (tickets, queue) = mpsc::channel::<(u64, Instant)>();
    let queue = Arc::new(Mutex::new(queue));
    let workers: Vec<_> = (0..OPEN_LOOP_WORKERS)
        .map(|_| {
            let (addr, queue, prefix) = (addr.to_string(), queue.clone(), prefix.to_string());
            std::thread::spawn(move || -> Result<Vec<Created>> {
                let mut conn = Conn::open(&addr)?;
                let mut created = Vec::new();
                loop {
                    let next = queue.lock().map_err(|_| "queue poisoned")?.recv();
                    let Ok((seq, scheduled)) = next else {
                        return Ok(created);
                    };
                    let mut referral = create(&mut conn, &addr, format!("{prefix}-{seq:07}"))?;
                    // Counted from the scheduled time, so that a worker late to its ticket
                    // shows in the latency.
                    referral.sent = scheduled;
                    created.push(referral);
                }
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(200));
    let interval = 1e9 / rate as f64;
    let started = Instant::now();
    for i in 0..rate * secs {
        let due = started + Duration::from_nanos((interval * i as f64) as u64);
        let now = Instant::now();
        if due > now {
            std::thread::sleep(due - now);
        }
        if tickets.send((i, due)).is_err() {
            break; // every worker stopped: join_all reports why
        }
    }
    drop(tickets);
    let created = join_all(workers)?;
    Ok((created, started.elapsed()))
}

// ---------------------------------------------------------------------------------------------
// Matching receipts to referrals

struct Matched {
    /// (referral, its receipt time), first receipt of each referral.
    pairs: Vec<(usize, Instant)>,
    first: Instant,
    last: Instant,
    /// Extra receipts of a message already received (same webhook-id): retries.
    retries: u64,
}

struct Checker {
    secrets: HashMap<String, String>,
    inbox: Arc<Inbox>,
    /// webhook-ids seen in earlier phases (a late retry of one is not an error).
    seen: HashSet<String>,
    /// Receipts taken from the inbox by earlier phases.
    consumed: u64,
}

impl Checker {
    /// Waits until every referral of `created` has been received (or `timeout`), samples the
    /// gateway's CPU at that moment, then checks.
    fn collect(
        &mut self,
        created: &[Created],
        timeout: Duration,
        pid: u32,
    ) -> Result<(Matched, CpuSample)> {
        let deadline = Instant::now() + timeout;
        let wanted = self.consumed + created.len() as u64;
        loop {
            let received = self.inbox.count.load(Ordering::Acquire);
            if received >= wanted || Instant::now() > deadline {
                break;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        let done = CpuSample::take(pid);
        // A moment for retries or duplicates that would follow.
        std::thread::sleep(Duration::from_millis(300));
        if let Some(error) = self.inbox.first_error() {
            return Err(format!("the receiver saw a broken request: {error}"));
        }
        let receipts = self.inbox.take();
        self.consumed += receipts.len() as u64;
        let index: HashMap<&str, usize> = created
            .iter()
            .enumerate()
            .map(|(i, c)| (c.reference.as_str(), i))
            .collect();
        let mut first_receipt: Vec<Option<(Instant, String)>> = vec![None; created.len()];
        let mut retries = 0;
        let mut problems = Vec::new();
        for receipt in &receipts {
            let delivered = inspect(receipt, &self.secrets)?;
            let fresh = self.seen.insert(delivered.webhook_id.clone());
            let Some(&i) = index.get(delivered.reference.as_str()) else {
                if fresh {
                    problems.push(format!(
                        "a delivery for an unknown referral (GP reference {:?})",
                        delivered.reference
                    ));
                } else {
                    retries += 1;
                }
                continue;
            };
            if delivered.referral_id != created[i].referral_id {
                problems.push(format!(
                    "{}: delivered as referral {} but created as {}",
                    delivered.reference, delivered.referral_id, created[i].referral_id
                ));
            }
            match &first_receipt[i] {
                None => first_receipt[i] = Some((delivered.at, delivered.webhook_id)),
                Some((_, id)) if *id == delivered.webhook_id => retries += 1,
                Some((_, id)) => problems.push(format!(
                    "{}: two different messages ({id}, {}) for one referral",
                    delivered.reference, delivered.webhook_id
                )),
            }
        }
        let missing = first_receipt.iter().filter(|r| r.is_none()).count();
        if missing > 0 {
            problems.push(format!(
                "{missing} of {} referrals were not received within {:?} ({} receipts)",
                created.len(),
                timeout,
                receipts.len()
            ));
        }
        if !problems.is_empty() {
            return Err(format!(
                "{} problem(s); first: {}",
                problems.len(),
                problems[0]
            ));
        }
        let pairs: Vec<(usize, Instant)> = first_receipt
            .into_iter()
            .enumerate()
            .filter_map(|(i, r)| r.map(|(at, _)| (i, at)))
            .collect();
        let first = pairs.iter().map(|p| p.1).min().ok_or("no receipts")?;
        let last = pairs.iter().map(|p| p.1).max().ok_or("no receipts")?;
        Ok((
            Matched {
                pairs,
                first,
                last,
                retries,
            },
            done,
        ))
    }
}

// ---------------------------------------------------------------------------------------------
// Reporting

fn summary(values: &mut [f64]) -> String {
    values.sort_by(f64::total_cmp);
    format!(
        "p50 {:.2} ms, p90 {:.2} ms, p99 {:.2} ms, max {:.2} ms (min {:.2} ms, n {})",
        percentile(values, 0.50),
        percentile(values, 0.90),
        percentile(values, 0.99),
        percentile(values, 1.0),
        values.first().copied().unwrap_or(f64::NAN),
        values.len()
    )
}

fn print_cpu(cpu: &CpuUse, deliveries: u64, secs: f64) {
    let fmt = |v: Option<f64>| v.map_or("n/a".into(), |v| format!("{v:.2}"));
    println!(
        "  CPU (cores): gateway {}, bench process (receiver + sender) {}, other processes {}",
        fmt(cpu.server_cores),
        fmt(cpu.generator_cores),
        fmt(cpu.other_cores())
    );
    let threads: Vec<String> = cpu
        .threads
        .iter()
        .take(6)
        .map(|(name, cores)| format!("{name} {cores:.2}"))
        .collect();
    println!("  gateway threads (cores): {}", threads.join(", "));
    if deliveries > 0 {
        if let Some(server) = cpu.server_cores {
            let per = server * secs / deliveries as f64 * 1e3;
            let writer = cpu
                .threads
                .iter()
                .find(|(name, _)| name == "sqlite-writer")
                .map_or(0.0, |(_, cores)| *cores * secs / deliveries as f64 * 1e3);
            println!(
                "  gateway CPU per referral: {per:.3} ms (of which sqlite-writer {writer:.3} ms)"
            );
        }
    }
}

// ---------------------------------------------------------------------------------------------

fn concurrency_env(concurrency: usize) -> Vec<(String, String)> {
    vec![
        (
            "SP_GATEWAY_DELIVERY__CONCURRENCY".into(),
            concurrency.to_string(),
        ),
        (
            "SP_GATEWAY_DELIVERY__ALLOW_PRIVATE_TARGETS".into(),
            "true".into(),
        ),
    ]
}

fn run() -> Result<bool> {
    let settings = Settings::from_env()?;
    let hz = clock_ticks_per_second();
    println!("delivery_load: {}", chrono::Utc::now().to_rfc3339());
    println!("machine:       {}", machine_description());
    println!("load average:  {} (at start)", load_average());
    println!("gateway:       {}", env!("CARGO_BIN_EXE_sp-gateway"));

    let inbox = Arc::new(Inbox::default());
    let receiver = start_receiver(inbox.clone())?;
    let mut secrets = HashMap::new();
    let last_concurrency = *settings.concurrency.last().ok_or("no concurrency")?;
    let mut gateway = Gateway::start_with(false, &concurrency_env(last_concurrency), |config| {
        let (config, by_path) = receiver_config(config, &receiver)?;
        secrets = by_path;
        Ok(config)
    })?;
    println!(
        "receiver:      http://{receiver}/hooks/org0..{} (204 at once, receipts timestamped in this process)",
        secrets.len() - 1
    );
    println!(
        "database:      {}; referral body {} bytes (contained ServiceRequest), {} client connections",
        gateway.db_path().display(),
        CONTAINED.len(),
        settings.connections
    );
    let mut checker = Checker {
        secrets,
        inbox: inbox.clone(),
        seen: HashSet::new(),
        consumed: 0,
    };
    let drain_timeout = Duration::from_secs(60 + settings.referrals / 50);
    let mut total_created = 0usize;
    let mut total_retries = 0u64;
    let mut rates = BTreeMap::new();

    // Phase 1: a backlog per concurrency setting.
    for (round, &concurrency) in settings.concurrency.iter().enumerate() {
        if round > 0 {
            gateway.restart(false, &concurrency_env(concurrency))?;
        }
        let (created, took) = send_closed(
            &gateway.addr,
            &format!("DLV-1-{round}"),
            settings.referrals,
            settings.connections,
        )?;
        println!(
            "\nphase 1 (backlog), concurrency {concurrency}: {} referrals created with the worker off in {:.2} s ({:.0}/s); restarting with the worker on",
            created.len(),
            took.as_secs_f64(),
            created.len() as f64 / took.as_secs_f64()
        );
        gateway.restart(true, &concurrency_env(concurrency))?;
        let before = CpuSample::take(gateway.pid());
        let ready = Instant::now();
        let (matched, after) = checker.collect(&created, drain_timeout, gateway.pid())?;
        let span = matched.last.duration_since(matched.first).as_secs_f64();
        let rate = (created.len() - 1) as f64 / span.max(1e-9);
        println!(
            "  {} deliveries, first receipt {:.0} ms after ready, first to last {:.2} s: {:.0} deliveries/s; retries {}; load average {}",
            matched.pairs.len(),
            matched.first.saturating_duration_since(ready).as_secs_f64() * 1e3,
            span,
            rate,
            matched.retries,
            load_average()
        );
        print_cpu(
            &cpu_use(&before, &after, hz),
            created.len() as u64,
            after.seconds_since(&before),
        );
        rates.insert(format!("backlog c={concurrency}"), rate);
        total_created += created.len();
        total_retries += matched.retries;
    }

    // Phase 1b: referrals arriving while deliveries go out.
    let before = CpuSample::take(gateway.pid());
    let (created, took) = send_closed(
        &gateway.addr,
        "DLV-1b",
        settings.referrals,
        settings.connections,
    )?;
    let answered_last = created.iter().map(|c| c.answered).max().ok_or("none")?;
    let (matched, after) = checker.collect(&created, drain_timeout, gateway.pid())?;
    let span = matched.last.duration_since(matched.first).as_secs_f64();
    let rate = (created.len() - 1) as f64 / span.max(1e-9);
    let mut lag: Vec<f64> = matched
        .pairs
        .iter()
        .map(|(i, at)| signed_ms(*at, created[*i].answered))
        .collect();
    println!(
        "\nphase 1b (intake and delivery together), concurrency {last_concurrency}: {} referrals in {:.2} s ({:.0}/s intake); deliveries first to last {:.2} s: {:.0}/s; last receipt {:.0} ms after the last 201; retries {}; load average {}",
        created.len(),
        took.as_secs_f64(),
        created.len() as f64 / took.as_secs_f64(),
        span,
        rate,
        signed_ms(matched.last, answered_last),
        matched.retries,
        load_average()
    );
    println!("  201 -> receipt: {}", summary(&mut lag));
    print_cpu(
        &cpu_use(&before, &after, hz),
        created.len() as u64,
        after.seconds_since(&before),
    );
    rates.insert(format!("with intake c={last_concurrency}"), rate);
    total_created += created.len();
    total_retries += matched.retries;

    // Phase 2: a steady rate, per-referral time from 201 to receipt.
    let before = CpuSample::take(gateway.pid());
    let (created, took) = send_open(&gateway.addr, "DLV-2", settings.rate, settings.secs)?;
    let (matched, after) = checker.collect(&created, drain_timeout, gateway.pid())?;
    let mut delivery: Vec<f64> = matched
        .pairs
        .iter()
        .map(|(i, at)| signed_ms(*at, created[*i].answered))
        .collect();
    let mut intake: Vec<f64> = created
        .iter()
        .map(|c| c.latency().as_secs_f64() * 1e3)
        .collect();
    let mut end_to_end: Vec<f64> = matched
        .pairs
        .iter()
        .map(|(i, at)| {
            signed_ms(*at, created[*i].answered) + created[*i].latency().as_secs_f64() * 1e3
        })
        .collect();
    println!(
        "\nphase 2 (steady), {}/s for {} s, concurrency {last_concurrency}: {} referrals in {:.2} s; retries {}; load average {}",
        settings.rate,
        settings.secs,
        created.len(),
        took.as_secs_f64(),
        matched.retries,
        load_average()
    );
    println!("  201 -> receipt:              {}", summary(&mut delivery));
    println!("  scheduled send -> 201:       {}", summary(&mut intake));
    println!(
        "  scheduled send -> receipt:   {}",
        summary(&mut end_to_end)
    );
    print_cpu(
        &cpu_use(&before, &after, hz),
        created.len() as u64,
        after.seconds_since(&before),
    );
    total_created += created.len();
    total_retries += matched.retries;

    // The outbox on disk.
    gateway.kill()?;
    let db = gateway.db_path();
    let referrals = count_rows(&db, "SELECT COUNT(*) FROM referrals")?;
    let delivered = count_rows(&db, "SELECT COUNT(*) FROM outbox WHERE state = 'delivered'")?;
    let outbox = count_rows(&db, "SELECT COUNT(*) FROM outbox")?;
    let attempts = count_rows(&db, "SELECT COUNT(*) FROM delivery_attempts")?;
    println!(
        "\noutbox (after SIGKILL): referrals {referrals}, outbox {outbox}, delivered {delivered}, delivery attempts {attempts}; 201s {total_created}; retries seen by the receiver {total_retries}"
    );
    let mut ok = true;
    let total = total_created as u64;
    if referrals != total || outbox != total || delivered != total {
        eprintln!("outbox check FAILED: every 201 referral must have one delivered message");
        ok = false;
    }
    if attempts < total {
        eprintln!("outbox check FAILED: fewer delivery attempts recorded than deliveries");
        ok = false;
    }
    let best = rates.values().copied().fold(0.0, f64::max);
    let p50 = percentile(&delivery, 0.5);
    let verdict = |met: bool| if met { "met" } else { "NOT met" };
    println!(
        "targets: >= 3000 deliveries/s: best {best:.0}/s ({}), {}; p50 201 -> receipt < 20 ms at {}/s: {p50:.2} ms, {}",
        rates
            .iter()
            .map(|(k, v)| format!("{k}: {v:.0}/s"))
            .collect::<Vec<_>>()
            .join(", "),
        verdict(best >= 3000.0),
        settings.rate,
        verdict(p50 < 20.0)
    );
    Ok(ok)
}
