//! End-to-end load on SQLite and PostgreSQL, one and two replicas:
//! `cargo bench --bench replicas_load`.
//!
//! A referral counts when it has been POSTed, durably committed (`201`) and its webhook received:
//! what a GP's referral needs to reach the organisation. Three set-ups, one after the other:
//! 1. SQLite, one gateway (a fresh database file in a temporary directory);
//! 2. PostgreSQL, one gateway;
//! 3. PostgreSQL, two gateways ("replicas") on the same database, requests spread round-robin
//!    across them as a load balancer would (each client connection keeps one keep-alive
//!    connection per replica and sends request k to replica k mod 2).
//!
//! Each PostgreSQL set-up gets a fresh schema (`CREATE SCHEMA sp_bench_<uuid>`, the gateway
//! migrates it at start, reached through `options=-c search_path=…` in `SP_GATEWAY_STORAGE__URL`),
//! dropped at the end. The gateways are the release binary Cargo built, on the demo configuration
//! (`benches/common`) with the delivery worker on (demo `concurrency`) and every organisation's
//! `webhook_url` pointing at a receiver inside this process (a thread per connection, `204` at
//! once, each receipt timestamped; `benches/common/receiver.rs`), as in `benches/delivery_load.rs`.
//! Referrals are the contained ServiceRequest from `fixtures/`, each with a GP reference no other
//! request uses (`benches/common/referral.rs`).
//!
//! Per set-up: a closed loop of N connections, each sending its next referral when the answer to
//! the previous one is in, for T seconds; then a wait until every accepted referral has been
//! received. Reported: accepted referrals/s during the load; end-to-end referrals/s (received
//! referrals / time from the first send to the last receipt); p50/p99 of the POST (send → whole
//! answer) and of `201` → receipt; CPU during the load of the gateways, of PostgreSQL (all
//! `postgres` processes, whoever uses them), of this process and of everything else on the
//! machine (it is shared: other builds may run).
//!
//! Checks: every receipt's Standard Webhooks signature verifies; every `201` referral (the id in
//! its `Location`) is received exactly once, with a `webhook-id` no other receipt has; nothing
//! else is received. Any failure, non-`201` answer or missing delivery exits non-zero.
//!
//! Settings (environment): `SP_BENCH_CONNECTIONS` (N, default 32), `SP_BENCH_SECS` (T, default
//! 20), `SP_BENCH_POSTGRES` (database, default `postgres://postgres@127.0.0.1:5432/test`),
//! `RUST_LOG` (gateway log level, default `info`).

mod common;

use std::collections::HashMap;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::receiver::{inspect, receiver_config, start_receiver, Inbox};
use common::referral::{create, join_all, Created, CONTAINED};
use common::{
    env_number, load_average, machine_description, percentile, process_ticks, signed_ms, Conn,
    Gateway, Result,
};
use sqlx::postgres::PgPoolOptions;
use sqlx::Executor;

const DEFAULT_POSTGRES: &str = "postgres://postgres@127.0.0.1:5432/test";

fn main() -> ExitCode {
    // `cargo bench` passes `--bench`; `cargo test --all-targets` runs benches without it.
    if !std::env::args().any(|arg| arg == "--bench") {
        println!(
            "replicas_load: run it with `cargo bench --bench replicas_load`; nothing to do here."
        );
        return ExitCode::SUCCESS;
    }
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("replicas_load: FAILED: {message}");
            ExitCode::FAILURE
        }
    }
}

struct Settings {
    connections: usize,
    secs: u64,
    postgres: String,
}

impl Settings {
    fn from_env() -> Result<Settings> {
        let settings = Settings {
            connections: env_number("SP_BENCH_CONNECTIONS", 32)?,
            secs: env_number("SP_BENCH_SECS", 20)?,
            postgres: std::env::var("SP_BENCH_POSTGRES")
                .unwrap_or_else(|_| DEFAULT_POSTGRES.into()),
        };
        if !(1..=256).contains(&settings.connections) {
            return Err("SP_BENCH_CONNECTIONS must be 1..=256".into());
        }
        if !(1..=300).contains(&settings.secs) {
            return Err("SP_BENCH_SECS must be 1..=300".into());
        }
        Ok(settings)
    }
}

// ---------------------------------------------------------------------------------------------
// Sending referrals

/// The closed loop: `connections` threads send referrals until `secs` have passed, request k going
/// to gateway k mod (number of gateways). The first error stops every thread.
fn closed_loop(addrs: &[String], tag: &str, connections: usize, secs: u64) -> Result<Vec<Created>> {
    let next = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let deadline = Instant::now() + Duration::from_secs(secs);
    let threads: Vec<_> = (0..connections)
        .map(|_| {
            let (addrs, next, stop, tag) =
                (addrs.to_vec(), next.clone(), stop.clone(), tag.to_string());
            std::thread::spawn(move || -> Result<Vec<Created>> {
                let mut conns = addrs
                    .iter()
                    .map(|a| Conn::open(a))
                    .collect::<Result<Vec<_>>>()?;
                let mut created = Vec::new();
                while Instant::now() < deadline && !stop.load(Ordering::Relaxed) {
                    let seq = next.fetch_add(1, Ordering::Relaxed);
                    let i = seq as usize % addrs.len();
                    match create(&mut conns[i], &addrs[i], format!("{tag}-{seq:07}")) {
                        Ok(c) => created.push(c),
                        Err(e) => {
                            stop.store(true, Ordering::Relaxed);
                            return Err(e);
                        }
                    }
                }
                Ok(created)
            })
        })
        .collect();
    join_all(threads)
}

// ---------------------------------------------------------------------------------------------
// CPU from /proc: the gateways, PostgreSQL, this process and the whole machine

struct Cpu {
    at: Instant,
    gateways: u64,
    /// Ticks of every `postgres` process by pid (backends come and go with the pools).
    postgres: HashMap<u32, u64>,
    bench: u64,
    machine: (u64, u64),
}

impl Cpu {
    fn sample(gateway_pids: &[u32]) -> Cpu {
        let mut postgres = HashMap::new();
        for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
            let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
                continue;
            };
            let comm = std::fs::read_to_string(entry.path().join("comm")).unwrap_or_default();
            if comm.trim() == "postgres" {
                if let Some(ticks) = process_ticks(&pid.to_string()) {
                    postgres.insert(pid, ticks);
                }
            }
        }
        Cpu {
            at: Instant::now(),
            gateways: gateway_pids
                .iter()
                .filter_map(|pid| process_ticks(&pid.to_string()))
                .sum(),
            postgres,
            bench: process_ticks("self").unwrap_or(0),
            machine: common::machine_ticks().unwrap_or((0, 0)),
        }
    }
}

/// Cores used between two samples: (gateways, PostgreSQL, this process, everything else).
fn cores(before: &Cpu, after: &Cpu, hz: f64) -> (f64, f64, f64, f64) {
    let secs = after.at.duration_since(before.at).as_secs_f64();
    let per_sec = |ticks: u64| ticks as f64 / hz / secs;
    let gateways = per_sec(after.gateways.saturating_sub(before.gateways));
    let postgres = per_sec(
        after
            .postgres
            .iter()
            .map(|(pid, t)| t.saturating_sub(before.postgres.get(pid).copied().unwrap_or(0)))
            .sum(),
    );
    let bench = per_sec(after.bench.saturating_sub(before.bench));
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
    let (busy, total) = (
        after.machine.0.saturating_sub(before.machine.0),
        after.machine.1.saturating_sub(before.machine.1),
    );
    let machine = busy as f64 / total.max(1) as f64 * cpus;
    (
        gateways,
        postgres,
        bench,
        (machine - gateways - postgres - bench).max(0.0),
    )
}

// ---------------------------------------------------------------------------------------------
// PostgreSQL schema per set-up

/// A fresh schema; dropped (with everything in it) when this goes out of scope.
struct Schema {
    server: String,
    name: String,
}

fn pg_execute(server: &str, sql: String) -> Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("tokio runtime: {e}"))?;
    runtime.block_on(async {
        let pool = PgPoolOptions::new()
            .max_connections(1)
            .acquire_timeout(Duration::from_secs(10))
            .connect(server)
            .await
            .map_err(|e| format!("cannot reach PostgreSQL at {server} (SP_BENCH_POSTGRES): {e}"))?;
        let result = pool
            .execute(sqlx::AssertSqlSafe(sql.clone()))
            .await
            .map(|_| ())
            .map_err(|e| format!("{sql}: {e}"));
        pool.close().await;
        result
    })
}

impl Schema {
    fn create(server: &str) -> Result<Schema> {
        let name = format!("sp_bench_{}", uuid::Uuid::new_v4().simple());
        pg_execute(server, format!("CREATE SCHEMA {name}"))?;
        Ok(Schema {
            server: server.to_string(),
            name,
        })
    }

    /// The database URL with `search_path` set to the schema: what `[storage] url` takes.
    fn url(&self) -> String {
        let separator = if self.server.contains('?') { '&' } else { '?' };
        format!(
            "{}{separator}options=-c%20search_path%3D{}",
            self.server, self.name
        )
    }
}

impl Drop for Schema {
    fn drop(&mut self) {
        let sql = format!("DROP SCHEMA IF EXISTS {} CASCADE", self.name);
        if let Err(e) = pg_execute(&self.server, sql) {
            eprintln!("replicas_load: could not drop schema {}: {e}", self.name);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// One set-up

struct Outcome {
    name: &'static str,
    accepted: usize,
    load_secs: f64,
    end_to_end: f64,
    post_ms: Vec<f64>,
    lag_ms: Vec<f64>,
    /// From the last `201` to the last receipt.
    tail_ms: f64,
    /// Cores during the load: gateways, PostgreSQL (none for SQLite), this process, the rest.
    cpu: (f64, Option<f64>, f64, f64),
}

fn run_setup(
    name: &'static str,
    postgres: Option<&str>,
    replicas: usize,
    settings: &Settings,
    hz: f64,
) -> Result<Outcome> {
    println!("\n{name}: starting");
    // Declared before the gateways so that it is dropped after them: no connection left in it.
    let schema = postgres.map(Schema::create).transpose()?;
    let inbox = Arc::new(Inbox::default());
    let receiver = start_receiver(inbox.clone())?;
    let mut env = vec![(
        "SP_GATEWAY_DELIVERY__ALLOW_PRIVATE_TARGETS".to_string(),
        "true".to_string(),
    )];
    if let Some(schema) = &schema {
        env.push(("SP_GATEWAY_STORAGE__URL".into(), schema.url()));
        println!("  schema {} on {}", schema.name, schema.server);
    }
    let mut secrets = HashMap::new();
    let mut gateways = Vec::new();
    // One after the other: the first migrates the schema, the second finds it ready.
    for _ in 0..replicas {
        gateways.push(Gateway::start_with(true, &env, |config| {
            let (config, by_path) = receiver_config(config, &receiver)?;
            secrets = by_path;
            Ok(config)
        })?);
    }
    let addrs: Vec<String> = gateways.iter().map(|g| g.addr.clone()).collect();
    let pids: Vec<u32> = gateways.iter().map(Gateway::pid).collect();
    println!(
        "  gateways {} (logs {}), receiver http://{receiver}/hooks/org*",
        addrs.join(", "),
        gateways
            .iter()
            .map(|g| g.log_path().display().to_string())
            .collect::<Vec<_>>()
            .join(", ")
    );

    let tag = format!("RPL-{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
    let before = Cpu::sample(&pids);
    let started = Instant::now();
    let created = closed_loop(&addrs, &tag, settings.connections, settings.secs)?;
    let load_secs = started.elapsed().as_secs_f64();
    let after = Cpu::sample(&pids);

    // Wait for every delivery, then a moment more for duplicates that would follow.
    let timeout = Duration::from_secs(60 + created.len() as u64 / 50);
    let deadline = Instant::now() + timeout;
    while inbox.count.load(Ordering::Acquire) < created.len() as u64 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    std::thread::sleep(Duration::from_secs(1));
    if let Some(error) = inbox.first_error() {
        return Err(format!(
            "{name}: the receiver saw a broken request: {error}"
        ));
    }
    let receipts = std::mem::take(&mut *inbox.receipts.lock().map_err(|_| "inbox poisoned")?);
    drop(gateways);
    drop(schema);

    // Exactly once: per referral id and per webhook-id.
    let by_id: HashMap<&str, usize> = created
        .iter()
        .enumerate()
        .map(|(i, c)| (c.referral_id.as_str(), i))
        .collect();
    let mut received: Vec<Option<Instant>> = vec![None; created.len()];
    let mut webhook_ids = HashMap::new();
    let mut problems = Vec::new();
    for receipt in &receipts {
        let delivered = inspect(receipt, &secrets)?;
        let (referral_id, reference) = (delivered.referral_id, delivered.reference);
        if let Some(earlier) = webhook_ids.insert(receipt.webhook_id.clone(), referral_id.clone()) {
            problems.push(format!(
                "webhook-id {} received twice (referrals {earlier} and {referral_id})",
                receipt.webhook_id
            ));
        }
        let Some(&i) = by_id.get(referral_id.as_str()) else {
            problems.push(format!("a delivery for an unknown referral {referral_id}"));
            continue;
        };
        if reference != created[i].reference {
            problems.push(format!(
                "{referral_id}: GP reference {reference:?}, created as {:?}",
                created[i].reference
            ));
        }
        if received[i].replace(receipt.at).is_some() {
            problems.push(format!("referral {referral_id} received twice"));
        }
    }
    let missing = received.iter().filter(|r| r.is_none()).count();
    if missing > 0 {
        problems.push(format!(
            "{missing} of {} referrals not received within {timeout:?}",
            created.len()
        ));
    }
    if !problems.is_empty() {
        return Err(format!(
            "{name}: {} problem(s); first: {}",
            problems.len(),
            problems[0]
        ));
    }

    let first_sent = created.iter().map(|c| c.sent).min().ok_or("nothing sent")?;
    let last_answer = created
        .iter()
        .map(|c| c.answered)
        .max()
        .ok_or("nothing sent")?;
    let last_receipt = received.iter().flatten().max().copied().ok_or("none")?;
    let outcome = Outcome {
        name,
        accepted: created.len(),
        load_secs,
        end_to_end: created.len() as f64 / last_receipt.duration_since(first_sent).as_secs_f64(),
        post_ms: sorted(created.iter().map(|c| signed_ms(c.answered, c.sent))),
        lag_ms: sorted(created.iter().zip(&received).map(|(c, r)| {
            // Can be negative: the worker, woken by the commit, may deliver before the client has
            // read the 201.
            r.map_or(f64::NAN, |at| signed_ms(at, c.answered))
        })),
        tail_ms: signed_ms(last_receipt, last_answer),
        cpu: match (cores(&before, &after, hz), postgres) {
            ((gateways, pg, bench, other), Some(_)) => (gateways, Some(pg), bench, other),
            // Without PostgreSQL in the set-up, whatever it does is someone else's load.
            ((gateways, pg, bench, other), None) => (gateways, None, bench, other + pg),
        },
    };
    print_outcome(&outcome);
    Ok(outcome)
}

fn sorted(values: impl Iterator<Item = f64>) -> Vec<f64> {
    let mut values: Vec<f64> = values.collect();
    values.sort_by(f64::total_cmp);
    values
}

fn print_outcome(o: &Outcome) {
    let (gateways, postgres, bench, other) = o.cpu;
    println!(
        "  {} referrals accepted in {:.2} s: {:.0}/s; end to end (first send to last receipt) {:.0}/s; last receipt {:.0} ms after the last 201; every one received exactly once",
        o.accepted,
        o.load_secs,
        o.accepted as f64 / o.load_secs,
        o.end_to_end,
        o.tail_ms
    );
    println!(
        "  POST p50 {:.2} ms, p99 {:.2} ms; 201 -> receipt p50 {:.2} ms, p99 {:.2} ms",
        percentile(&o.post_ms, 0.5),
        percentile(&o.post_ms, 0.99),
        percentile(&o.lag_ms, 0.5),
        percentile(&o.lag_ms, 0.99)
    );
    println!(
        "  CPU during the load (cores): gateways {gateways:.2}, postgres processes {}, bench (sender + receiver) {bench:.2}, other processes {other:.2}; load average {}",
        cores_text(postgres),
        load_average()
    );
}

fn cores_text(cores: Option<f64>) -> String {
    cores.map_or("–".into(), |c| format!("{c:.2}"))
}

fn run() -> Result<()> {
    let settings = Settings::from_env()?;
    let hz = common::clock_ticks_per_second();
    println!("replicas_load: {}", chrono::Utc::now().to_rfc3339());
    println!("machine:       {}", machine_description());
    println!("load average:  {} (at start)", load_average());
    println!("gateway:       {}", env!("CARGO_BIN_EXE_sp-gateway"));
    println!(
        "load:          closed loop, {} connections, {} s per set-up; contained ServiceRequest ({} bytes)",
        settings.connections,
        settings.secs,
        CONTAINED.len()
    );
    let pg = Some(settings.postgres.as_str());
    let outcomes = [
        run_setup("SQLite, 1 gateway", None, 1, &settings, hz)?,
        run_setup("PostgreSQL, 1 gateway", pg, 1, &settings, hz)?,
        run_setup("PostgreSQL, 2 gateways", pg, 2, &settings, hz)?,
    ];
    println!(
        "\n| set-up | accepted | accepted/s | end-to-end/s | POST p50 / p99 ms | 201 → receipt p50 / p99 ms | gateway cores | postgres cores | bench cores | other cores |"
    );
    println!("|---|---:|---:|---:|---|---|---:|---:|---:|---:|");
    for o in &outcomes {
        let (gateways, postgres, bench, other) = o.cpu;
        println!(
            "| {} | {} | {:.0} | {:.0} | {:.1} / {:.1} | {:.1} / {:.1} | {gateways:.2} | {} | {bench:.2} | {other:.2} |",
            o.name,
            o.accepted,
            o.accepted as f64 / o.load_secs,
            o.end_to_end,
            percentile(&o.post_ms, 0.5),
            percentile(&o.post_ms, 0.99),
            percentile(&o.lag_ms, 0.5),
            percentile(&o.lag_ms, 0.99),
            cores_text(postgres)
        );
    }
    println!(
        "(cores during the load; \"postgres\" counts every postgres process on the machine, other users' too; \
         \"other\" is everything else on this shared machine)"
    );
    Ok(())
}
