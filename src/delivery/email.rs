//! Email notices through SMTP (`[email]`): an outbox message of kind `email` carries the whole
//! notice (`to`, `subject`, `text`), written when the referral was stored; sending it is one
//! SMTP transaction, retried on the delivery schedule like a webhook.

use std::time::Duration;

use lettre::message::header::ContentType;
use lettre::message::Mailbox;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use serde::Deserialize;

use crate::config::EmailConfig;

/// The notice as queued.
#[derive(Debug, Deserialize)]
struct Notice {
    to: Vec<String>,
    subject: String,
    text: String,
}

/// Why a notice was not sent: worth another attempt, or never going to work (a recipient or
/// the notice refused for good, which an operator looks at).
#[derive(Debug, PartialEq, Eq)]
pub enum SendError {
    Retry(String),
    Permanent(String),
}

pub struct Mailer {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
}

impl Mailer {
    /// The SMTP client `[email]` describes, each attempt bounded by `timeout`.
    pub fn new(config: &EmailConfig, timeout: Duration) -> Result<Mailer, String> {
        let transport = AsyncSmtpTransport::<Tokio1Executor>::from_url(&config.smtp_url)
            .map_err(|e| format!("email.smtp_url: {e}"))?
            .timeout(Some(timeout))
            .build();
        let from = config
            .from
            .parse()
            .map_err(|e| format!("email.from: {e}"))?;
        Ok(Mailer { transport, from })
    }

    /// Sends one queued notice.
    pub async fn send(&self, payload: &str) -> Result<(), SendError> {
        let notice: Notice = serde_json::from_str(payload)
            .map_err(|e| SendError::Permanent(format!("the queued notice is unreadable: {e}")))?;
        let mut builder = Message::builder()
            .from(self.from.clone())
            .subject(notice.subject)
            .header(ContentType::TEXT_PLAIN);
        for to in &notice.to {
            let mailbox: Mailbox = to
                .parse()
                .map_err(|e| SendError::Permanent(format!("recipient {to}: {e}")))?;
            builder = builder.to(mailbox);
        }
        let message = builder
            .body(notice.text)
            .map_err(|e| SendError::Permanent(format!("the notice cannot be built: {e}")))?;
        match self.transport.send(message).await {
            Ok(_) => Ok(()),
            Err(e) if e.is_permanent() => Err(SendError::Permanent(format!("SMTP: {e}"))),
            Err(e) => Err(SendError::Retry(format!("SMTP: {e}"))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn an_unreadable_notice_is_refused_for_good() {
        let config = EmailConfig {
            smtp_url: "smtp://127.0.0.1:1".into(),
            from: "SP <sp@example.org>".into(),
        };
        let mailer = Mailer::new(&config, Duration::from_secs(1)).expect("a mailer");
        assert!(matches!(
            mailer.send("not json").await,
            Err(SendError::Permanent(_))
        ));
        let bad_recipient = r#"{"to": ["nobody"], "subject": "s", "text": "t"}"#;
        assert!(matches!(
            mailer.send(bad_recipient).await,
            Err(SendError::Permanent(_))
        ));
        // Nothing listens on port 1: a transient failure, tried again later.
        let notice = r#"{"to": ["a@example.org"], "subject": "s", "text": "t"}"#;
        assert!(matches!(
            mailer.send(notice).await,
            Err(SendError::Retry(_))
        ));
    }
}
