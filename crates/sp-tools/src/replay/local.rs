//! A gateway inside this process on a temporary database, delivering to a built-in receiver that
//! verifies every webhook's signature: so a tester can replay fixtures with nothing else running.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::Value;

use super::ReplayError;
use crate::{Gateway, LocalRun, Parties};

/// One webhook the receiver got.
#[derive(Debug, Clone)]
pub struct Delivery {
    /// The organisation whose URL was called (`/hooks/{vcs_id}`).
    pub vcs_id: String,
    /// `Ok` when the signature verified with that organisation's secret.
    pub verified: Result<(), String>,
    pub event: Value,
}

/// Secrets by organisation, and what arrived.
pub struct Inbox {
    secrets: Vec<(String, String)>,
    deliveries: Mutex<Vec<Delivery>>,
}

impl Inbox {
    pub fn deliveries(&self) -> Vec<Delivery> {
        self.deliveries
            .lock()
            .map(|d| d.clone())
            .unwrap_or_default()
    }

    /// Waits for the event of `kind` about `referral_id`, up to `timeout`.
    pub async fn wait_for(
        &self,
        referral_id: &str,
        kind: &str,
        timeout: Duration,
    ) -> Option<Delivery> {
        let deadline = Instant::now() + timeout;
        loop {
            let found = self
                .deliveries()
                .into_iter()
                .find(|d| d.event["type"] == kind && d.event["data"]["referral_id"] == referral_id);
            if found.is_some() || Instant::now() > deadline {
                return found;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    fn verify(&self, vcs_id: &str, body: &[u8], headers: &http::HeaderMap) -> Result<(), String> {
        let secret = self
            .secrets
            .iter()
            .find(|(id, _)| id == vcs_id)
            .map(|(_, s)| s.as_str())
            .ok_or_else(|| format!("no organisation {vcs_id:?} behind this URL"))?;
        let verifier =
            standardwebhooks::Webhook::new(secret).map_err(|e| format!("bad secret: {e}"))?;
        verifier.verify(body, headers).map_err(|e| e.to_string())
    }
}

/// The running pair: gateway and receiver, and the temporary folder holding the database.
pub struct LocalGateway {
    pub base: String,
    /// Who may call it, from its configuration.
    pub parties: Parties,
    pub inbox: Arc<Inbox>,
    gateway_thread: std::thread::JoinHandle<()>,
    _dir: tempfile::TempDir,
}

impl LocalGateway {
    /// Starts `gateway` on `listen` (`127.0.0.1:0` for any free port) with the configuration at
    /// `config` (default: the demo's), with `seed_months` of synthetic activity in its database,
    /// and waits until it answers.
    pub fn start(
        gateway: &'static dyn Gateway,
        listen: &str,
        config: Option<&Path>,
        directory: Vec<PathBuf>,
        seed_months: u32,
    ) -> Result<LocalGateway, ReplayError> {
        let dir = tempfile::tempdir()
            .map_err(|e| ReplayError::Setup(format!("temporary folder: {e}")))?;
        let receiver_listener = bind("127.0.0.1:0")?;
        let receiver_base = format!("http://{}", local_addr(&receiver_listener)?);
        let parties = gateway
            .parties(config)
            .map_err(|e| ReplayError::Setup(format!("configuration: {e}")))?;
        let inbox = Arc::new(Inbox {
            secrets: parties
                .organisations
                .iter()
                .map(|o| (o.id.clone(), o.webhook_secret.clone()))
                .collect(),
            deliveries: Mutex::new(Vec::new()),
        });
        start_receiver(receiver_listener, inbox.clone());
        let listener = bind(listen)?;
        let base = format!("http://{}", local_addr(&listener)?);
        let (failed_tx, failed_rx) = mpsc::channel();
        let run = LocalRun {
            config: config.map(Path::to_path_buf),
            database: dir.path().join("gateway.db"),
            receiver: receiver_base,
            directory,
            seed_months,
        };
        let gateway_thread = std::thread::spawn(move || {
            let _ = failed_tx.send(match gateway.serve_local(run, listener) {
                Ok(()) => "the gateway stopped".to_string(),
                Err(e) => e,
            });
        });
        wait_ready(&base, &failed_rx)?;
        Ok(LocalGateway {
            base,
            parties,
            inbox,
            gateway_thread,
            _dir: dir,
        })
    }

    /// Blocks until the gateway stops (Ctrl-C).
    pub fn wait(self) {
        let _ = self.gateway_thread.join();
    }
}

fn bind(addr: &str) -> Result<TcpListener, ReplayError> {
    TcpListener::bind(addr).map_err(|e| ReplayError::Setup(format!("cannot listen on {addr}: {e}")))
}

fn local_addr(listener: &TcpListener) -> Result<std::net::SocketAddr, ReplayError> {
    listener
        .local_addr()
        .map_err(|e| ReplayError::Setup(format!("no local address: {e}")))
}

fn wait_ready(base: &str, failed: &mpsc::Receiver<String>) -> Result<(), ReplayError> {
    let answers = probe();
    let deadline = Instant::now() + Duration::from_secs(120);
    let url = format!("{base}/fhir/metadata");
    while Instant::now() < deadline {
        if let Ok(reason) = failed.try_recv() {
            return Err(ReplayError::Setup(format!(
                "the in-process gateway did not start: {reason}"
            )));
        }
        if answers(&url) {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Err(ReplayError::Setup(format!(
        "the in-process gateway at {base} did not become ready"
    )))
}

/// A readiness probe without an async runtime: one plain HTTP/1.1 GET over a socket, so the
/// caller can run before (or outside) any runtime.
fn probe() -> impl Fn(&str) -> bool {
    |url: &str| {
        use std::io::{Read, Write};
        let Some(rest) = url.strip_prefix("http://") else {
            return false;
        };
        let (host, path) = match rest.find('/') {
            Some(at) => (&rest[..at], &rest[at..]),
            None => (rest, "/"),
        };
        let Ok(mut stream) = std::net::TcpStream::connect(host) else {
            return false;
        };
        let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
        let request = format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n");
        if stream.write_all(request.as_bytes()).is_err() {
            return false;
        }
        let mut head = [0u8; 12];
        stream.read_exact(&mut head).is_ok() && head.starts_with(b"HTTP/1.1 200")
    }
}

async fn receive(inbox: web::Data<Inbox>, request: HttpRequest, body: web::Bytes) -> HttpResponse {
    let vcs_id = request
        .path()
        .trim_start_matches("/hooks/")
        .trim_matches('/')
        .to_string();
    let verified = inbox.verify(&vcs_id, &body, &crate::mock_vcs::to_http_headers(&request));
    let answer = if verified.is_ok() {
        HttpResponse::NoContent().finish()
    } else {
        HttpResponse::Unauthorized().finish()
    };
    let event = serde_json::from_slice(&body).unwrap_or(Value::Null);
    if let Ok(mut deliveries) = inbox.deliveries.lock() {
        deliveries.push(Delivery {
            vcs_id,
            verified,
            event,
        });
    }
    answer
}

/// Serves the receiver on its own thread and actix System, apart from the gateway's.
fn start_receiver(listener: TcpListener, inbox: Arc<Inbox>) {
    std::thread::spawn(move || {
        let data = web::Data::from(inbox);
        let run = actix_web::rt::System::new().block_on(async move {
            let server = actix_web::HttpServer::new(move || {
                actix_web::App::new()
                    .app_data(data.clone())
                    .app_data(web::PayloadConfig::new(4 * 1024 * 1024))
                    .default_service(web::post().to(receive))
            })
            .workers(1)
            .disable_signals()
            .listen(listener)?
            .run();
            server.await
        });
        if let Err(e) = run {
            eprintln!("sp-gateway replay: the built-in receiver stopped: {e}");
        }
    });
}
