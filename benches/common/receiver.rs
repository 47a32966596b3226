//! The webhook receiver the delivery benches point the gateway at: it listens on `127.0.0.1:0`
//! inside the bench process (blocking, a thread per connection, answering `204` at once and
//! timestamping each receipt), and the checks made on what it received.
//!
//! Not every bench uses it, hence `dead_code` is allowed here.
#![allow(dead_code)]

use std::collections::HashMap;
use std::io::Write;
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use super::{truncate, Conn, Result};

/// One request received by the webhook receiver.
pub struct Receipt {
    pub at: Instant,
    pub path: String,
    pub webhook_id: String,
    pub timestamp: String,
    pub signature: String,
    pub body: Vec<u8>,
}

#[derive(Default)]
pub struct Inbox {
    pub receipts: Mutex<Vec<Receipt>>,
    pub count: AtomicU64,
    pub errors: Mutex<Vec<String>>,
    /// Faults the receiver plays (the soak bench): out of every 1,000 requests, how many get a
    /// `503` instead of the `204` (not recorded as received), and whether the receiver is away
    /// (every connection closed at once, as a host that went down mid-conversation).
    pub fail_per_mille: AtomicU32,
    pub away: AtomicBool,
    /// Requests answered `503` or dropped while away.
    pub refused: AtomicU64,
}

impl Inbox {
    pub fn take(&self) -> Vec<Receipt> {
        self.receipts
            .lock()
            .map(|mut r| std::mem::take(&mut *r))
            .unwrap_or_default()
    }

    /// The first broken request the receiver saw, if any.
    pub fn first_error(&self) -> Option<String> {
        self.errors.lock().ok().and_then(|e| e.first().cloned())
    }

    fn error(&self, error: String) {
        if let Ok(mut errors) = self.errors.lock() {
            errors.push(error);
        }
    }
}

/// Listens on 127.0.0.1:0; every connection gets a thread that reads requests, records them
/// and answers `204 No Content` at once. Returns the address.
pub fn start_receiver(inbox: Arc<Inbox>) -> Result<String> {
    let listener = TcpListener::bind("127.0.0.1:0").map_err(|e| format!("receiver bind: {e}"))?;
    let addr = listener
        .local_addr()
        .map_err(|e| format!("receiver address: {e}"))?
        .to_string();
    std::thread::Builder::new()
        .name("receiver-accept".into())
        .spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { continue };
                let inbox = inbox.clone();
                let spawned = std::thread::Builder::new()
                    .name("receiver-conn".into())
                    .spawn(move || serve(stream, &inbox));
                if let Err(e) = spawned {
                    eprintln!("receiver: cannot start a connection thread: {e}");
                }
            }
        })
        .map_err(|e| format!("receiver thread: {e}"))?;
    Ok(addr)
}

fn serve(stream: TcpStream, inbox: &Inbox) {
    let Ok(mut conn) = Conn::from_stream(stream) else {
        return;
    };
    // The gateway closing an idle keep-alive connection ends the loop.
    while let Ok(request_line) = conn.line() {
        if request_line.is_empty() {
            continue;
        }
        if inbox.away.load(Ordering::Acquire) {
            inbox.refused.fetch_add(1, Ordering::Relaxed);
            return;
        }
        let path = request_line.split(' ').nth(1).unwrap_or("").to_string();
        let (mut length, mut chunked) = (0usize, false);
        let (mut webhook_id, mut timestamp, mut signature) =
            (String::new(), String::new(), String::new());
        loop {
            let Ok(header) = conn.line() else {
                inbox.error(format!("{path}: connection closed inside the headers"));
                return;
            };
            if header.is_empty() {
                break;
            }
            let Some((name, value)) = header.split_once(':') else {
                continue;
            };
            let (name, value) = (name.trim().to_ascii_lowercase(), value.trim().to_string());
            match name.as_str() {
                "content-length" => length = value.parse().unwrap_or(0),
                "transfer-encoding" => chunked = value.eq_ignore_ascii_case("chunked"),
                "webhook-id" => webhook_id = value,
                "webhook-timestamp" => timestamp = value,
                "webhook-signature" => signature = value,
                _ => {}
            }
        }
        let body = if chunked {
            conn.chunked_body()
        } else {
            conn.take(length)
        };
        let body = match body {
            Ok(body) => body,
            Err(e) => {
                inbox.error(format!("{path}: body: {e}"));
                return;
            }
        };
        let fail = inbox.fail_per_mille.load(Ordering::Relaxed);
        if fail > 0 && rand::random::<u32>() % 1000 < fail {
            inbox.refused.fetch_add(1, Ordering::Relaxed);
            let answer = b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n\r\n";
            if conn.stream.write_all(answer).is_err() {
                return;
            }
            continue;
        }
        let at = Instant::now();
        if let Ok(mut receipts) = inbox.receipts.lock() {
            receipts.push(Receipt {
                at,
                path,
                webhook_id,
                timestamp,
                signature,
                body,
            });
        }
        inbox.count.fetch_add(1, Ordering::Release);
        if conn
            .stream
            .write_all(b"HTTP/1.1 204 No Content\r\n\r\n")
            .is_err()
        {
            return;
        }
    }
}

/// Points every organisation's `webhook_url` at the receiver (`/hooks/org<i>`) and sets
/// `[delivery] allow_private_targets = true` (the receiver is on 127.0.0.1); returns the
/// configuration with each path's signing secret.
pub fn receiver_config(
    config: String,
    receiver: &str,
) -> Result<(String, HashMap<String, String>)> {
    let organisations = config.matches("[[vcs]]").count();
    let mut out = String::new();
    let mut urls = 0;
    let mut secrets = HashMap::new();
    let mut pending_path = None;
    for line in config.lines() {
        let trimmed = line.trim_start();
        if trimmed.starts_with("webhook_url") {
            let path = format!("/hooks/org{urls}");
            out.push_str(&format!("webhook_url = \"http://{receiver}{path}\"\n"));
            pending_path = Some(path);
            urls += 1;
            continue;
        }
        if trimmed.starts_with("webhook_secret") {
            let secret = trimmed
                .split_once('=')
                .map(|(_, v)| v.trim().trim_matches('"').to_string())
                .unwrap_or_default();
            if let Some(path) = pending_path.take() {
                secrets.insert(path, secret);
            }
        }
        if trimmed.starts_with("allow_private_targets") {
            out.push_str("allow_private_targets = true\n");
            continue;
        }
        out.push_str(line);
        out.push('\n');
    }
    if urls != organisations || secrets.len() != organisations || organisations == 0 {
        return Err(format!(
            "src/demo.toml: expected one webhook_url and a webhook_secret after it per [[vcs]] \
             ({organisations} organisations, {urls} URLs, {} secrets); update benches/common/receiver.rs",
            secrets.len()
        ));
    }
    if !out.contains("allow_private_targets = true") {
        return Err("src/demo.toml has no [delivery] allow_private_targets line".into());
    }
    Ok((out, secrets))
}

/// What a receipt says, once checked.
pub struct Delivered {
    pub at: Instant,
    pub referral_id: String,
    pub reference: String,
    pub webhook_id: String,
}

/// Checks the signature with the organisation's secret (by the receiver path) and reads the
/// referral id and GP reference from the `referral.created` payload.
pub fn inspect(receipt: &Receipt, secrets: &HashMap<String, String>) -> Result<Delivered> {
    let secret = secrets
        .get(&receipt.path)
        .ok_or_else(|| format!("a delivery to an unknown path {:?}", receipt.path))?;
    let verifier = standardwebhooks::Webhook::new(secret).map_err(|e| format!("secret: {e}"))?;
    let mut headers = http::HeaderMap::new();
    for (name, value) in [
        ("webhook-id", &receipt.webhook_id),
        ("webhook-timestamp", &receipt.timestamp),
        ("webhook-signature", &receipt.signature),
    ] {
        let value = http::HeaderValue::from_str(value)
            .map_err(|_| format!("{name} header {value:?} is not a header value"))?;
        headers.insert(name, value);
    }
    verifier
        .verify(&receipt.body, &headers)
        .map_err(|e| format!("signature of {} does not verify: {e}", receipt.webhook_id))?;
    let payload: serde_json::Value = serde_json::from_slice(&receipt.body).map_err(|e| {
        format!(
            "payload of {} is not JSON ({e}): {}",
            receipt.webhook_id,
            truncate(&String::from_utf8_lossy(&receipt.body))
        )
    })?;
    if payload["type"] != "referral.created" {
        return Err(format!(
            "{}: unexpected event type {}",
            receipt.webhook_id, payload["type"]
        ));
    }
    let text = |value: &serde_json::Value| value.as_str().unwrap_or("").to_string();
    Ok(Delivered {
        at: receipt.at,
        referral_id: text(&payload["data"]["referral_id"]),
        reference: text(&payload["data"]["gp_reference"]["value"]),
        webhook_id: receipt.webhook_id.clone(),
    })
}
