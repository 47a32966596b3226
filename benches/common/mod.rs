//! Helpers shared by the load benchmarks (`benches/intake_load.rs`, `benches/delivery_load.rs`,
//! `benches/replicas_load.rs`): starting the release gateway with an edited demo configuration, a
//! minimal blocking HTTP/1.1 connection (no HTTP library, to leave the CPU to the server), CPU
//! accounting from `/proc` and a few reporting helpers. The benches that follow a referral to
//! its webhook also share [`referral`] (sending referrals) and [`receiver`] (the webhook
//! receiver in the bench process).
//!
//! Each bench uses a different part of it, hence `dead_code` is allowed here.
#![allow(dead_code)]

pub mod receiver;
pub mod referral;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const DEMO_CONFIG: &str = include_str!("../../src/demo.toml");
pub const GP_TOKEN: &str = "demo-gp-token";
pub const IO_TIMEOUT: Duration = Duration::from_secs(30);

pub type Result<T> = std::result::Result<T, String>;

/// A comma-separated list of counts from the environment (each 1 to 1024), e.g. "16,32".
pub fn env_counts(name: &str, default: &str) -> Result<Vec<usize>> {
    let raw = std::env::var(name).unwrap_or_else(|_| default.into());
    raw.split(',')
        .map(|n| {
            n.trim()
                .parse::<usize>()
                .ok()
                .filter(|n| (1..=1024).contains(n))
                .ok_or_else(|| format!("{name}: {n:?} is not 1..=1024"))
        })
        .collect()
}

pub fn env_number<T: std::str::FromStr>(name: &str, default: T) -> Result<T> {
    match std::env::var(name) {
        Ok(text) => text
            .trim()
            .parse()
            .map_err(|_| format!("{name}={text:?} is not a number")),
        Err(_) => Ok(default),
    }
}

// ---------------------------------------------------------------------------------------------
// The gateway process

pub struct Gateway {
    child: Child,
    pub addr: String,
    dir: tempfile::TempDir,
}

impl Gateway {
    /// The demo configuration on `127.0.0.1:0` with a fresh database; `delivery` keeps the
    /// webhook delivery worker running.
    pub fn start(delivery: bool) -> Result<Gateway> {
        Gateway::start_with(delivery, &[], Ok)
    }

    /// As [`Gateway::start`], with the configuration text passed through `edit` first and extra
    /// environment variables (`SP_GATEWAY_…` overrides) given to the process.
    pub fn start_with(
        delivery: bool,
        env: &[(String, String)],
        edit: impl FnOnce(String) -> Result<String>,
    ) -> Result<Gateway> {
        let dir = tempfile::tempdir().map_err(|e| format!("temporary directory: {e}"))?;
        let db = dir.path().join("gateway.db");
        let config = replace_once(
            DEMO_CONFIG,
            "listen = \"127.0.0.1:8080\"",
            "listen = \"127.0.0.1:0\"",
        )?;
        let config = replace_once(
            &config,
            "url = \"sqlite://data/gateway.db\"",
            &format!("url = \"sqlite://{}\"", db.display()),
        )?;
        let config = edit(config)?;
        std::fs::write(dir.path().join("gateway.toml"), config)
            .map_err(|e| format!("write config: {e}"))?;
        let (child, addr) = spawn(dir.path(), delivery, env)?;
        let gateway = Gateway { child, addr, dir };
        gateway.wait_ready()?;
        Ok(gateway)
    }

    /// Kills the gateway (SIGKILL) and starts it again on the same configuration and database
    /// (a new port), e.g. with the delivery worker switched on over a backlog.
    pub fn restart(&mut self, delivery: bool, env: &[(String, String)]) -> Result<()> {
        self.kill()?;
        let (child, addr) = spawn(self.dir.path(), delivery, env)?;
        self.child = child;
        self.addr = addr;
        self.wait_ready()
    }

    fn wait_ready(&self) -> Result<()> {
        let deadline = Instant::now() + Duration::from_secs(60);
        let request = metadata_request(&self.addr);
        while Instant::now() < deadline {
            if let Ok(mut conn) = Conn::open(&self.addr) {
                if let Ok(response) = conn.exchange(&request) {
                    if response.status == 200 {
                        return Ok(());
                    }
                }
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Err(format!("the gateway at {} did not become ready", self.addr))
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn db_path(&self) -> PathBuf {
        self.dir.path().join("gateway.db")
    }

    pub fn log_path(&self) -> PathBuf {
        self.dir.path().join("gateway.log")
    }

    /// SIGKILL: nothing is flushed on the way out, so what is on disk is what was committed.
    pub fn kill(&mut self) -> Result<()> {
        self.child
            .kill()
            .map_err(|e| format!("kill gateway: {e}"))?;
        self.child
            .wait()
            .map_err(|e| format!("wait for gateway: {e}"))?;
        Ok(())
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `sp-gateway serve` on `dir/gateway.toml` (log appended to `dir/gateway.log`) and
/// returns it with the address it printed.
fn spawn(dir: &Path, delivery: bool, env: &[(String, String)]) -> Result<(Child, String)> {
    // `SP_BENCH_GATEWAY` runs another build (a copy kept for a long run, or the code before a
    // change); by default, the one cargo built for this bench.
    let binary = std::env::var_os("SP_BENCH_GATEWAY")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_sp-gateway")));
    let log_path = dir.join("gateway.log");
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log_path)
        .map_err(|e| format!("log file: {e}"))?;
    let mut command = Command::new(&binary);
    command
        .arg("serve")
        .arg("--config")
        .arg(dir.join("gateway.toml"))
        .env(
            "RUST_LOG",
            std::env::var("RUST_LOG").unwrap_or_else(|_| "info".into()),
        )
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(log);
    if !delivery && DEMO_CONFIG.contains("[delivery]") {
        command.env("SP_GATEWAY_DELIVERY__WORKER", "false");
    }
    // The benches measure capacity: the per-client rate limit (`[server] rate_limit_per_second`,
    // 0 = off) would answer 429 long before that.
    command.env("SP_GATEWAY_SERVER__RATE_LIMIT_PER_SECOND", "0");
    for (name, value) in env {
        command.env(name, value);
    }
    let mut child = command
        .spawn()
        .map_err(|e| format!("cannot start {}: {e}", binary.display()))?;
    let stdout = child.stdout.take().ok_or("no stdout")?;
    let mut line = String::new();
    let read = BufReader::new(stdout).read_line(&mut line);
    let addr = line
        .trim()
        .strip_prefix("sp-gateway listening on http://")
        .map(str::to_string);
    let Some(addr) = addr.filter(|_| read.is_ok()) else {
        let _ = child.kill();
        let _ = child.wait();
        let log = std::fs::read_to_string(&log_path).unwrap_or_default();
        return Err(format!(
            "the gateway did not start: first stdout line {line:?}; its log:\n{log}"
        ));
    };
    Ok((child, addr))
}

pub fn replace_once(text: &str, from: &str, to: &str) -> Result<String> {
    if text.matches(from).count() != 1 {
        return Err(format!(
            "src/demo.toml no longer has exactly one `{from}`; update the load benches (benches/)"
        ));
    }
    Ok(text.replacen(from, to, 1))
}

pub fn metadata_request(addr: &str) -> Vec<u8> {
    format!(
        "GET /fhir/metadata HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {GP_TOKEN}\r\n\
         Accept: application/fhir+json\r\n\r\n"
    )
    .into_bytes()
}

pub fn truncate(text: &str) -> String {
    text.chars().take(600).collect()
}

// ---------------------------------------------------------------------------------------------
// A minimal HTTP/1.1 client: keep-alive, Content-Length or chunked answers.

pub struct Conn {
    pub stream: TcpStream,
    buf: Vec<u8>,
}

pub struct Response {
    pub status: u16,
    /// The `Location` header, if any.
    pub location: Option<String>,
    pub body: Vec<u8>,
}

pub fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack
        .windows(needle.len())
        .position(|window| window == needle)
}

impl Conn {
    pub fn open(addr: &str) -> Result<Conn> {
        let stream = TcpStream::connect(addr).map_err(|e| format!("connect {addr}: {e}"))?;
        Conn::from_stream(stream)
    }

    /// Wraps an accepted or connected stream (the same line/byte reading serves a small server).
    pub fn from_stream(stream: TcpStream) -> Result<Conn> {
        stream.set_nodelay(true).map_err(|e| e.to_string())?;
        stream
            .set_read_timeout(Some(IO_TIMEOUT))
            .map_err(|e| e.to_string())?;
        stream
            .set_write_timeout(Some(IO_TIMEOUT))
            .map_err(|e| e.to_string())?;
        Ok(Conn {
            stream,
            buf: Vec::with_capacity(64 * 1024),
        })
    }

    fn fill(&mut self) -> Result<()> {
        let mut chunk = [0u8; 32 * 1024];
        let n = self
            .stream
            .read(&mut chunk)
            .map_err(|e| format!("read: {e}"))?;
        if n == 0 {
            return Err("the peer closed the connection".into());
        }
        self.buf.extend_from_slice(&chunk[..n]);
        Ok(())
    }

    /// The next line, without its CRLF.
    pub fn line(&mut self) -> Result<String> {
        let end = loop {
            if let Some(end) = find(&self.buf, b"\r\n") {
                break end;
            }
            self.fill()?;
        };
        let line = String::from_utf8_lossy(&self.buf[..end]).into_owned();
        self.buf.drain(..end + 2);
        Ok(line)
    }

    /// The next `n` bytes.
    pub fn take(&mut self, n: usize) -> Result<Vec<u8>> {
        while self.buf.len() < n {
            self.fill()?;
        }
        Ok(self.buf.drain(..n).collect())
    }

    /// A chunked body (after the headers), trailers skipped.
    pub fn chunked_body(&mut self) -> Result<Vec<u8>> {
        let mut body = Vec::new();
        loop {
            let size_line = self.line()?;
            let size_text = size_line.split(';').next().unwrap_or("").trim();
            let size = usize::from_str_radix(size_text, 16)
                .map_err(|_| format!("bad chunk size {size_line:?}"))?;
            if size == 0 {
                while !self.line()?.is_empty() {}
                return Ok(body);
            }
            body.extend(self.take(size)?);
            self.take(2)?;
        }
    }

    /// Sends one request and reads its whole answer.
    pub fn exchange(&mut self, request: &[u8]) -> Result<Response> {
        self.stream
            .write_all(request)
            .map_err(|e| format!("write: {e}"))?;
        let status_line = self.line()?;
        let status = status_line
            .split(' ')
            .nth(1)
            .and_then(|code| code.parse::<u16>().ok())
            .ok_or_else(|| format!("not an HTTP status line: {status_line:?}"))?;
        let mut length = 0usize;
        let mut chunked = false;
        let mut location = None;
        loop {
            let header = self.line()?;
            if header.is_empty() {
                break;
            }
            if let Some((name, value)) = header.split_once(':') {
                let value = value.trim();
                if name.eq_ignore_ascii_case("content-length") {
                    length = value
                        .parse()
                        .map_err(|_| format!("bad Content-Length {value:?}"))?;
                } else if name.eq_ignore_ascii_case("transfer-encoding") {
                    chunked = value.eq_ignore_ascii_case("chunked");
                } else if name.eq_ignore_ascii_case("location") {
                    location = Some(value.to_string());
                }
            }
        }
        let body = if chunked {
            self.chunked_body()?
        } else {
            self.take(length)?
        };
        Ok(Response {
            status,
            location,
            body,
        })
    }
}

// ---------------------------------------------------------------------------------------------
// CPU accounting from /proc

/// CPU time of a process (all its threads), in clock ticks, from /proc/PID/stat.
pub fn process_ticks(pid: &str) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let fields: Vec<&str> = stat[stat.rfind(')')? + 1..].split_whitespace().collect();
    // After the command name: state is field 3, utime field 14, stime field 15.
    Some(fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?)
}

/// CPU ticks of each of a process's threads, summed by thread name with digits removed
/// (`actix-rt|system:0|arbiter:1` and `…:2` count together), from /proc/PID/task/*/stat.
pub fn thread_ticks(pid: u32) -> BTreeMap<String, u64> {
    let mut groups = BTreeMap::new();
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return groups;
    };
    for task in tasks.flatten() {
        let Ok(stat) = std::fs::read_to_string(task.path().join("stat")) else {
            continue;
        };
        let (Some(open), Some(close)) = (stat.find('('), stat.rfind(')')) else {
            continue;
        };
        let name: String = stat[open + 1..close]
            .chars()
            .filter(|c| !c.is_ascii_digit())
            .collect();
        let fields: Vec<&str> = stat[close + 1..].split_whitespace().collect();
        let ticks = fields
            .get(11)
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
            + fields
                .get(12)
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(0);
        *groups.entry(name).or_default() += ticks;
    }
    groups
}

/// (busy, total) clock ticks of the whole machine, from /proc/stat.
pub fn machine_ticks() -> Option<(u64, u64)> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let line = stat.lines().next()?;
    let values: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|v| v.parse().ok())
        .collect();
    let total: u64 = values.iter().take(8).sum();
    let idle = values.get(3)? + values.get(4)?;
    Some((total - idle, total))
}

pub fn clock_ticks_per_second() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|out| String::from_utf8(out.stdout).ok())
        .and_then(|text| text.trim().parse().ok())
        .unwrap_or(100.0)
}

pub struct CpuSample {
    at: Instant,
    server: Option<u64>,
    generator: Option<u64>,
    machine: Option<(u64, u64)>,
    threads: BTreeMap<String, u64>,
}

impl CpuSample {
    pub fn take(server_pid: u32) -> CpuSample {
        CpuSample {
            at: Instant::now(),
            server: process_ticks(&server_pid.to_string()),
            generator: process_ticks("self"),
            machine: machine_ticks(),
            threads: thread_ticks(server_pid),
        }
    }

    /// Seconds from `earlier` to this sample.
    pub fn seconds_since(&self, earlier: &CpuSample) -> f64 {
        self.at.duration_since(earlier.at).as_secs_f64()
    }
}

/// CPU used between two samples: cores busy in the server, in the generator, and the share of
/// the whole machine that was busy.
pub struct CpuUse {
    pub server_cores: Option<f64>,
    pub generator_cores: Option<f64>,
    pub machine_busy: Option<f64>,
    /// The gateway's busiest thread groups, in cores.
    pub threads: Vec<(String, f64)>,
}

pub fn cpu_use(before: &CpuSample, after: &CpuSample, hz: f64) -> CpuUse {
    let secs = after.at.duration_since(before.at).as_secs_f64();
    let cores = |a: Option<u64>, b: Option<u64>| Some((b? - a?) as f64 / hz / secs);
    let machine = match (before.machine, after.machine) {
        (Some((busy0, total0)), Some((busy1, total1))) if total1 > total0 => {
            Some((busy1 - busy0) as f64 / (total1 - total0) as f64)
        }
        _ => None,
    };
    let mut threads: Vec<(String, f64)> = after
        .threads
        .iter()
        .map(|(name, ticks)| {
            let earlier = before.threads.get(name).copied().unwrap_or(0);
            (
                name.clone(),
                ticks.saturating_sub(earlier) as f64 / hz / secs,
            )
        })
        .filter(|(_, cores)| *cores >= 0.01)
        .collect();
    threads.sort_by(|a, b| b.1.total_cmp(&a.1));
    CpuUse {
        threads,
        server_cores: cores(before.server, after.server),
        generator_cores: cores(before.generator, after.generator),
        machine_busy: machine,
    }
}

impl CpuUse {
    /// Cores used by everything else on the machine (neither the gateway nor this process).
    pub fn other_cores(&self) -> Option<f64> {
        let cpus = std::thread::available_parallelism().map_or(0, |n| n.get()) as f64;
        Some((self.machine_busy? * cpus - self.server_cores? - self.generator_cores?).max(0.0))
    }
}

pub fn count_rows(db: &Path, sql: &str) -> Result<u64> {
    let conn = rusqlite::Connection::open(db).map_err(|e| format!("open {}: {e}", db.display()))?;
    conn.query_row(sql, [], |row| row.get::<_, i64>(0))
        .map(|n| n as u64)
        .map_err(|e| format!("{sql}: {e}"))
}

pub fn machine_description() -> String {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|line| line.strip_prefix("model name"))
        .map(|rest| rest.trim_start_matches([' ', '\t', ':']).to_string())
        .unwrap_or_else(|| "unknown CPU".into());
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let memory = meminfo
        .lines()
        .find_map(|line| line.strip_prefix("MemTotal:"))
        .map(|kb| kb.trim().to_string())
        .unwrap_or_else(|| "unknown".into());
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    format!("{cpus} CPUs, {model}, MemTotal {memory}")
}

// ---------------------------------------------------------------------------------------------
// Reporting

/// The `q` quantile (0 to 1) of sorted values, by nearest rank; NaN when there are none.
pub fn percentile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

/// `a - b` in milliseconds, negative when `a` came first.
pub fn signed_ms(a: Instant, b: Instant) -> f64 {
    if a >= b {
        a.duration_since(b).as_secs_f64() * 1e3
    } else {
        -(b.duration_since(a).as_secs_f64() * 1e3)
    }
}

/// The 1, 5 and 15 minute load averages (the machine is shared: other builds may run).
pub fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "n/a".into())
}
