//! Soak and faults: `cargo bench --bench soak` (30 minutes by default).
//!
//! What it shows: under steady load and every fault we can play on one machine, no referral the
//! gateway answered `201` is lost, each is delivered (a repeat only as the same `webhook-id`), the
//! gateway's memory stays flat and its disk grows by a steady amount per referral.
//!
//! The run:
//! - an open loop of referrals at `SP_SOAK_RATE`/s (default 500) for `SP_SOAK_SECS` (default
//!   1,800), from `SP_SOAK_WORKERS` client threads (default 32), each with its own GP reference;
//! - a webhook receiver in this process (`benches/common/receiver.rs`) that answers `503` to
//!   `SP_SOAK_FAIL_PER_MILLE` of 1,000 requests (default 300) and goes away (closes every
//!   connection) for `SP_SOAK_OUTAGE_SECS` (default 60) at one third and two thirds of the run;
//! - a `SIGKILL` of the gateway every `SP_SOAK_KILL_EVERY_SECS` (default 300), restarted at once
//!   on the same database (a new port; the clients follow);
//! - with `SP_SOAK_BACKEND=postgres` (database `SP_SOAK_POSTGRES`, e.g.
//!   `postgres://postgres@127.0.0.1:5432/sp_soak`, emptied first), a restart of the PostgreSQL
//!   cluster at half time (`pg_ctlcluster … restart`).
//!
//! The retry schedule is short (a 1 s first retry, then every 10 s for 30 tries) so that the run
//! ends in minutes; the gateway's own default is hours. After the load the bench waits up to
//! `SP_SOAK_DRAIN_SECS` (default 900) for every accepted referral to arrive.
//!
//! It prints a Markdown report (the figures for BENCHMARKS.md): referrals sent, accepted (`201`),
//! refused while the gateway was down, delivered, lost (must be 0), repeats, the gateway's RSS
//! per minute and the disk per accepted referral; it exits non-zero if any accepted referral was
//! lost or a delivery failed its signature check. `SP_BENCH_GATEWAY=path` runs another build of the
//! gateway (e.g. a copy, so that a rebuild during the half hour does not change what is killed).

mod common;

use std::collections::{HashMap, HashSet};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use common::receiver::{inspect, receiver_config, start_receiver, Inbox};
use common::referral::create;
use common::{env_number, machine_description, Conn, Gateway, Result};

fn main() -> ExitCode {
    // `cargo bench` passes `--bench`; `cargo test --all-targets` runs benches without it.
    if !std::env::args().any(|arg| arg == "--bench") {
        println!("soak: run it with `cargo bench --bench soak`; nothing to do here.");
        return ExitCode::SUCCESS;
    }
    match run() {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => {
            eprintln!("soak: FAILED (see above)");
            ExitCode::FAILURE
        }
        Err(message) => {
            eprintln!("soak: error: {message}");
            ExitCode::FAILURE
        }
    }
}

struct Settings {
    secs: u64,
    rate: u64,
    workers: usize,
    fail_per_mille: u32,
    outage_secs: u64,
    kill_every: u64,
    drain_secs: u64,
    postgres: Option<String>,
}

impl Settings {
    fn from_env() -> Result<Settings> {
        let backend = std::env::var("SP_SOAK_BACKEND").unwrap_or_else(|_| "sqlite".into());
        let postgres = match backend.as_str() {
            "sqlite" => None,
            "postgres" => Some(
                std::env::var("SP_SOAK_POSTGRES")
                    .map_err(|_| "SP_SOAK_BACKEND=postgres needs SP_SOAK_POSTGRES")?,
            ),
            other => return Err(format!("SP_SOAK_BACKEND={other:?}: sqlite or postgres")),
        };
        Ok(Settings {
            secs: env_number("SP_SOAK_SECS", 1800)?,
            rate: env_number("SP_SOAK_RATE", 500)?,
            workers: env_number("SP_SOAK_WORKERS", 32)?,
            fail_per_mille: env_number("SP_SOAK_FAIL_PER_MILLE", 300)?,
            outage_secs: env_number("SP_SOAK_OUTAGE_SECS", 60)?,
            kill_every: env_number("SP_SOAK_KILL_EVERY_SECS", 300)?,
            drain_secs: env_number("SP_SOAK_DRAIN_SECS", 900)?,
            postgres,
        })
    }
}

/// The retry schedule for the run: a first retry after a second, then every 10 s.
fn schedule() -> String {
    let mut steps = vec!["\"1s\"".to_string()];
    steps.extend(std::iter::repeat_n("\"10s\"".to_string(), 30));
    format!("retry_schedule = [{}]", steps.join(", "))
}

fn configure(
    config: String,
    receiver: &str,
    postgres: Option<&str>,
) -> Result<(String, HashMap<String, String>)> {
    let (config, secrets) = receiver_config(config, receiver)?;
    let start = config
        .find("retry_schedule = [")
        .ok_or("no retry_schedule")?;
    let end = start + config[start..].find(']').ok_or("no ]")? + 1;
    let mut config = config;
    config.replace_range(start..end, &schedule());
    if let Some(url) = postgres {
        let line = config
            .lines()
            .find(|l| l.trim_start().starts_with("url = \"sqlite://"))
            .ok_or("no sqlite url line")?
            .to_string();
        config = config.replace(&line, &format!("url = \"{url}\""));
    }
    Ok((config, secrets))
}

/// What the bench saw, shared between its threads.
#[derive(Default)]
struct Tally {
    sent: AtomicU64,
    accepted: Mutex<HashSet<String>>,
    refused: AtomicU64,
    other: AtomicU64,
    /// Referral id → the webhook-id it first arrived with.
    delivered: Mutex<HashMap<String, String>>,
    repeats: AtomicU64,
    errors: Mutex<Vec<String>>,
}

impl Tally {
    fn error(&self, e: String) {
        if let Ok(mut errors) = self.errors.lock() {
            if errors.len() < 20 {
                errors.push(e);
            }
        }
    }
}

fn run() -> Result<bool> {
    let s = Settings::from_env()?;
    if let Some(url) = &s.postgres {
        reset_postgres(url)?;
    }
    let inbox = Arc::new(Inbox::default());
    inbox
        .fail_per_mille
        .store(s.fail_per_mille, Ordering::Relaxed);
    let receiver = start_receiver(inbox.clone())?;
    let secrets = Arc::new(Mutex::new(HashMap::new()));
    let edit = {
        let secrets = secrets.clone();
        let postgres = s.postgres.clone();
        move |config: String| {
            let (config, found) = configure(config, &receiver, postgres.as_deref())?;
            if let Ok(mut secrets) = secrets.lock() {
                *secrets = found;
            }
            Ok(config)
        }
    };
    let mut gateway = Gateway::start_with(true, &[], edit)?;
    let secrets = secrets.lock().map_err(|_| "secrets")?.clone();
    let addr = Arc::new(RwLock::new(gateway.addr.clone()));
    let tally = Arc::new(Tally::default());
    let stop = Arc::new(AtomicBool::new(false));
    let started = Instant::now();
    println!(
        "soak: {} s at {}/s, {} workers, receiver fails {}‰, away {} s twice, SIGKILL every {} s, backend {}",
        s.secs,
        s.rate,
        s.workers,
        s.fail_per_mille,
        s.outage_secs,
        s.kill_every,
        if s.postgres.is_some() { "PostgreSQL (restarted at half time)" } else { "SQLite" }
    );

    // The open loop: a ticket per referral at its scheduled time; workers send them.
    let (tickets, queue) = mpsc::sync_channel::<u64>(s.rate as usize * 2);
    let queue = Arc::new(Mutex::new(queue));
    let mut workers = Vec::new();
    for _ in 0..s.workers {
        let (queue, addr, tally) = (queue.clone(), addr.clone(), tally.clone());
        workers.push(std::thread::spawn(move || send_loop(&queue, &addr, &tally)));
    }
    let checker = {
        let (inbox, tally, stop) = (inbox.clone(), tally.clone(), stop.clone());
        std::thread::spawn(move || {
            while !stop.load(Ordering::Acquire) {
                check_receipts(&inbox, &secrets, &tally);
                std::thread::sleep(Duration::from_millis(500));
            }
            check_receipts(&inbox, &secrets, &tally);
        })
    };

    let mut samples: Vec<Sample> = Vec::new();
    let mut next_ticket = 0u64;
    let mut next_kill = s.kill_every;
    let mut next_sample = 0u64;
    let mut kills = 0u32;
    let mut postgres_restarted = false;
    let outages = [s.secs / 3, 2 * s.secs / 3];
    let mut lag_max = Duration::ZERO;
    while started.elapsed() < Duration::from_secs(s.secs) {
        let now = started.elapsed();
        let due = (now.as_secs_f64() * s.rate as f64) as u64;
        while next_ticket < due {
            // A full queue means the workers are behind: the ticket waits for a later round (the
            // lag is reported), and this loop goes on to its kills, outages and samples on time.
            match tickets.try_send(next_ticket) {
                Ok(()) => next_ticket += 1,
                Err(mpsc::TrySendError::Full(_)) => break,
                Err(mpsc::TrySendError::Disconnected(_)) => {
                    return Err("the sending workers stopped".into())
                }
            }
        }
        let secs = now.as_secs();
        inbox.away.store(
            outages
                .iter()
                .any(|&at| secs >= at && secs < at + s.outage_secs),
            Ordering::Release,
        );
        if s.kill_every > 0 && secs >= next_kill {
            next_kill += s.kill_every;
            kills += 1;
            samples.push(Sample::take(&gateway, &s, started, true));
            gateway.restart(true, &[])?;
            *addr.write().map_err(|_| "addr")? = gateway.addr.clone();
        }
        if s.postgres.is_some() && !postgres_restarted && secs >= s.secs / 2 {
            postgres_restarted = true;
            restart_postgres()?;
        }
        if secs >= next_sample {
            next_sample += 10;
            samples.push(Sample::take(&gateway, &s, started, false));
        }
        let behind = started
            .elapsed()
            .saturating_sub(Duration::from_secs_f64(next_ticket as f64 / s.rate as f64));
        lag_max = lag_max.max(behind);
        std::thread::sleep(Duration::from_millis(5));
    }
    drop(tickets);
    for worker in workers {
        let _ = worker.join();
    }
    inbox.away.store(false, Ordering::Release);
    let load_secs = started.elapsed().as_secs_f64();
    let accepted_n = tally.accepted.lock().map_err(|_| "accepted")?.len();
    println!(
        "soak: load over after {load_secs:.0} s; {accepted_n} accepted; waiting up to {} s for every delivery",
        s.drain_secs
    );

    // Drain: every accepted referral must arrive.
    let drain_started = Instant::now();
    let missing = loop {
        let missing = {
            let accepted = tally.accepted.lock().map_err(|_| "accepted")?;
            let delivered = tally.delivered.lock().map_err(|_| "delivered")?;
            accepted
                .iter()
                .filter(|id| !delivered.contains_key(*id))
                .count()
        };
        if missing == 0 || drain_started.elapsed() > Duration::from_secs(s.drain_secs) {
            break missing;
        }
        std::thread::sleep(Duration::from_secs(1));
    };
    let drain_secs = drain_started.elapsed().as_secs_f64();
    samples.push(Sample::take(&gateway, &s, started, false));
    stop.store(true, Ordering::Release);
    let _ = checker.join();

    let delivered = tally.delivered.lock().map_err(|_| "delivered")?;
    let accepted = tally.accepted.lock().map_err(|_| "accepted")?;
    let unannounced = delivered
        .keys()
        .filter(|id| !accepted.contains(*id))
        .count();
    let errors = tally.errors.lock().map_err(|_| "errors")?.clone();
    let receiver_errors = inbox.first_error();
    report(&Report {
        s: &s,
        load_secs,
        drain_secs,
        sent: tally.sent.load(Ordering::Relaxed),
        accepted: accepted.len(),
        refused: tally.refused.load(Ordering::Relaxed),
        other: tally.other.load(Ordering::Relaxed),
        delivered: delivered.len(),
        unannounced,
        missing,
        repeats: tally.repeats.load(Ordering::Relaxed),
        receiver_refused: inbox.refused.load(Ordering::Relaxed),
        kills,
        lag_max,
        samples: &samples,
    });
    for e in &errors {
        println!("error: {e}");
    }
    if let Some(e) = &receiver_errors {
        println!("receiver error: {e}");
    }
    Ok(missing == 0 && errors.is_empty() && receiver_errors.is_none())
}

/// One worker: takes tickets, sends a referral for each on a keep-alive connection to the
/// gateway's current address. A request the gateway does not answer (it was killed) counts as
/// refused; no retry, so nothing unanswered is counted as accepted.
fn send_loop(queue: &Mutex<mpsc::Receiver<u64>>, addr: &RwLock<String>, tally: &Tally) {
    let mut conn: Option<(String, Conn)> = None;
    let run = std::process::id();
    loop {
        let ticket = match queue.lock().map(|q| q.recv()) {
            Ok(Ok(ticket)) => ticket,
            _ => return,
        };
        tally.sent.fetch_add(1, Ordering::Relaxed);
        let current = addr.read().map(|a| a.clone()).unwrap_or_default();
        if conn.as_ref().is_none_or(|(a, _)| *a != current) {
            conn = Conn::open(&current).ok().map(|c| (current.clone(), c));
        }
        let Some((_, c)) = conn.as_mut() else {
            tally.refused.fetch_add(1, Ordering::Relaxed);
            continue;
        };
        match create(c, &current, format!("SOAK-{run}-{ticket}")) {
            Ok(created) => {
                if let Ok(mut accepted) = tally.accepted.lock() {
                    accepted.insert(created.referral_id);
                }
            }
            Err(e) if e.contains("HTTP ") => {
                tally.other.fetch_add(1, Ordering::Relaxed);
                tally.error(format!("a referral was not accepted: {e}"));
                conn = None;
            }
            Err(_) => {
                tally.refused.fetch_add(1, Ordering::Relaxed);
                conn = None;
            }
        }
    }
}

fn check_receipts(inbox: &Inbox, secrets: &HashMap<String, String>, tally: &Tally) {
    for receipt in inbox.take() {
        match inspect(&receipt, secrets) {
            Ok(d) => {
                let Ok(mut delivered) = tally.delivered.lock() else {
                    return;
                };
                match delivered.get(&d.referral_id) {
                    None => {
                        delivered.insert(d.referral_id, d.webhook_id);
                    }
                    Some(first) if *first == d.webhook_id => {
                        tally.repeats.fetch_add(1, Ordering::Relaxed);
                    }
                    Some(first) => tally.error(format!(
                        "referral {} arrived as two messages ({first}, {})",
                        d.referral_id, d.webhook_id
                    )),
                }
            }
            Err(e) => tally.error(e),
        }
    }
}

/// The gateway's resident memory and the database's size at one moment.
struct Sample {
    at_secs: f64,
    rss_kib: Option<u64>,
    disk_bytes: Option<u64>,
    before_kill: bool,
}

impl Sample {
    fn take(gateway: &Gateway, s: &Settings, started: Instant, before_kill: bool) -> Sample {
        Sample {
            at_secs: started.elapsed().as_secs_f64(),
            rss_kib: rss_kib(gateway.pid()),
            disk_bytes: match &s.postgres {
                None => sqlite_bytes(gateway),
                Some(url) => postgres_bytes(url),
            },
            before_kill,
        }
    }
}

fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

fn sqlite_bytes(gateway: &Gateway) -> Option<u64> {
    let db = gateway.db_path();
    let size = |suffix: &str| {
        let mut path = db.clone().into_os_string();
        path.push(suffix);
        std::fs::metadata(path).map(|m| m.len()).unwrap_or(0)
    };
    Some(size("") + size("-wal"))
}

fn psql(url: &str, sql: &str) -> Result<String> {
    let out = std::process::Command::new("psql")
        .args([url, "-XAtqc", sql])
        .output()
        .map_err(|e| format!("psql: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "psql {sql:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

fn postgres_bytes(url: &str) -> Option<u64> {
    psql(url, "SELECT pg_database_size(current_database())")
        .ok()?
        .parse()
        .ok()
}

/// Empties the soak database (the gateway migrates it afresh).
fn reset_postgres(url: &str) -> Result<()> {
    psql(url, "DROP SCHEMA public CASCADE; CREATE SCHEMA public;").map(|_| ())
}

fn restart_postgres() -> Result<()> {
    let version = std::fs::read_dir("/etc/postgresql")
        .map_err(|e| format!("/etc/postgresql: {e}"))?
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().to_string())
        .next()
        .ok_or("no PostgreSQL cluster under /etc/postgresql")?;
    println!("soak: restarting PostgreSQL {version}");
    let status = std::process::Command::new("pg_ctlcluster")
        .args(["--skip-systemctl-redirect", &version, "main", "restart"])
        .status()
        .map_err(|e| format!("pg_ctlcluster: {e}"))?;
    if !status.success() {
        return Err(format!("pg_ctlcluster restart: {status}"));
    }
    Ok(())
}

struct Report<'a> {
    s: &'a Settings,
    load_secs: f64,
    drain_secs: f64,
    sent: u64,
    accepted: usize,
    refused: u64,
    other: u64,
    delivered: usize,
    unannounced: usize,
    missing: usize,
    repeats: u64,
    receiver_refused: u64,
    kills: u32,
    lag_max: Duration,
    samples: &'a [Sample],
}

fn report(r: &Report) {
    let backend = if r.s.postgres.is_some() {
        "PostgreSQL"
    } else {
        "SQLite"
    };
    println!("\n## Soak ({backend}), {}", machine_description());
    println!("| | |\n|---|---|");
    println!(
        "| load | {:.0} s at {}/s (open loop, {} clients; sender lag at most {:.1} s) |",
        r.load_secs,
        r.s.rate,
        r.s.workers,
        r.lag_max.as_secs_f64()
    );
    println!(
        "| faults | receiver answers 503 to {}‰, away {} s twice; gateway SIGKILLed {} times{} |",
        r.s.fail_per_mille,
        r.s.outage_secs,
        r.kills,
        if r.s.postgres.is_some() {
            "; PostgreSQL restarted once"
        } else {
            ""
        }
    );
    println!("| referrals sent | {} |", r.sent);
    println!("| accepted (201) | {} |", r.accepted);
    println!("| not answered (gateway down) | {} |", r.refused);
    println!("| other answers | {} |", r.other);
    println!(
        "| delivered | {} (+{} whose 201 the client never read) |",
        r.delivered - (r.delivered.min(r.unannounced)),
        r.unannounced
    );
    println!("| **accepted and lost** | **{}** |", r.missing);
    println!("| repeats (same webhook-id) | {} |", r.repeats);
    println!("| receiver refusals played | {} |", r.receiver_refused);
    println!("| drain after the load | {:.0} s |", r.drain_secs);
    if let Some(disk) = r.samples.last().and_then(|s| s.disk_bytes) {
        let per = disk as f64 / r.accepted.max(1) as f64;
        println!(
            "| disk at the end | {:.1} MiB ({:.1} KiB per accepted referral) |",
            disk as f64 / 1048576.0,
            per / 1024.0
        );
    }
    println!("\nRSS of the gateway (MiB) and disk (MiB), sampled every 10 s; `kill` marks the sample just before a SIGKILL:\n");
    println!("| t (s) | RSS | disk | |\n|---:|---:|---:|---|");
    for sample in r.samples {
        // Every minute, and each kill.
        if sample.before_kill || (sample.at_secs as u64) % 60 < 10 {
            println!(
                "| {:.0} | {} | {} | {} |",
                sample.at_secs,
                sample
                    .rss_kib
                    .map_or("-".into(), |k| format!("{:.0}", k as f64 / 1024.0)),
                sample
                    .disk_bytes
                    .map_or("-".into(), |b| format!("{:.0}", b as f64 / 1048576.0)),
                if sample.before_kill { "kill" } else { "" }
            );
        }
    }
}
