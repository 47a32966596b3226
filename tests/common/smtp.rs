//! A mail sink for tests: an SMTP server on 127.0.0.1 that speaks just enough of RFC 5321 for a
//! client to hand it a message (greeting, EHLO/HELO, MAIL, RCPT, DATA, RSET, NOOP, QUIT) and keeps
//! each message it accepts. It can refuse the first transactions with a transient `451`, so that
//! a test sees the sender try again.

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// One message the sink accepted.
#[derive(Debug, Clone)]
pub struct Mail {
    pub from: String,
    pub to: Vec<String>,
    /// Headers and body as sent (dot-stuffing undone).
    pub data: String,
}

pub struct SmtpSink {
    pub port: u16,
    mails: Arc<Mutex<Vec<Mail>>>,
    /// Transactions refused so far.
    refused: Arc<AtomicUsize>,
}

impl SmtpSink {
    /// Starts a sink that refuses the first `refuse_first` transactions (`451` to MAIL FROM).
    pub fn start(refuse_first: usize) -> SmtpSink {
        let listener = TcpListener::bind("127.0.0.1:0").expect("smtp sink");
        let port = listener.local_addr().expect("address").port();
        let mails = Arc::new(Mutex::new(Vec::new()));
        let refused = Arc::new(AtomicUsize::new(0));
        let (kept, count) = (mails.clone(), refused.clone());
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let (kept, count) = (kept.clone(), count.clone());
                std::thread::spawn(move || {
                    let _ = session(stream, &kept, &count, refuse_first);
                });
            }
        });
        SmtpSink {
            port,
            mails,
            refused,
        }
    }

    pub fn url(&self) -> String {
        format!("smtp://127.0.0.1:{}", self.port)
    }

    pub fn mails(&self) -> Vec<Mail> {
        self.mails.lock().unwrap().clone()
    }

    pub fn refused(&self) -> usize {
        self.refused.load(Ordering::SeqCst)
    }

    /// Waits until `count` messages arrived, or panics after `timeout`.
    pub fn wait_for(&self, count: usize, timeout: Duration) -> Vec<Mail> {
        let deadline = Instant::now() + timeout;
        loop {
            let mails = self.mails();
            if mails.len() >= count {
                return mails;
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {count} mails; got {} ({} refused)",
                mails.len(),
                self.refused()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

fn session(
    stream: TcpStream,
    mails: &Mutex<Vec<Mail>>,
    refused: &AtomicUsize,
    refuse_first: usize,
) -> std::io::Result<()> {
    stream.set_read_timeout(Some(Duration::from_secs(30)))?;
    let mut writer = stream.try_clone()?;
    let mut reader = BufReader::new(stream);
    writer.write_all(b"220 sink ESMTP ready\r\n")?;
    let (mut from, mut to) = (String::new(), Vec::new());
    let mut line = String::new();
    loop {
        line.clear();
        if reader.read_line(&mut line)? == 0 {
            return Ok(());
        }
        let command = line.trim_end().to_string();
        let verb = command
            .split([' ', ':'])
            .next()
            .unwrap_or("")
            .to_ascii_uppercase();
        let reply: &[u8] = match verb.as_str() {
            "EHLO" | "HELO" => b"250 sink\r\n",
            "MAIL" => {
                let n = refused.load(Ordering::SeqCst);
                if n < refuse_first {
                    refused.store(n + 1, Ordering::SeqCst);
                    b"451 4.3.0 Try again later\r\n"
                } else {
                    from = address(&command);
                    to.clear();
                    b"250 2.1.0 OK\r\n"
                }
            }
            "RCPT" => {
                to.push(address(&command));
                b"250 2.1.5 OK\r\n"
            }
            "DATA" => {
                writer.write_all(b"354 End data with <CR><LF>.<CR><LF>\r\n")?;
                let mut data = String::new();
                loop {
                    line.clear();
                    if reader.read_line(&mut line)? == 0 {
                        return Ok(());
                    }
                    if line == ".\r\n" || line == ".\n" {
                        break;
                    }
                    data.push_str(line.strip_prefix('.').unwrap_or(&line));
                }
                mails.lock().unwrap().push(Mail {
                    from: from.clone(),
                    to: to.clone(),
                    data,
                });
                b"250 2.0.0 Queued\r\n"
            }
            "RSET" | "NOOP" => b"250 2.0.0 OK\r\n",
            "QUIT" => {
                writer.write_all(b"221 2.0.0 Bye\r\n")?;
                return Ok(());
            }
            _ => b"502 5.5.2 Command not recognised\r\n",
        };
        writer.write_all(reply)?;
    }
}

/// `MAIL FROM:<a@b> SIZE=…` → `a@b`.
fn address(command: &str) -> String {
    command
        .split_once('<')
        .and_then(|(_, rest)| rest.split_once('>'))
        .map(|(address, _)| address.to_string())
        .unwrap_or_default()
}
