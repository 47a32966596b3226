//! The email notice of a new referral: who is told (`notify_emails`), and what it says. It says
//! that a referral is waiting and where, never who it is about: no name, need, practice or any
//! other patient detail, so that a mailbox or mail server never holds them.

use serde_json::json;

use crate::config::{Config, VcsConfig};
use crate::domain::ReferralId;
use crate::store::{NewOutboxMessage, Payload, TargetKind};
use crate::translate::webhook::new_message_id;

/// The outbox event of a notice.
pub const NOTICE_EVENT: &str = "referral.notice";
/// The subject of every notice.
pub const NOTICE_SUBJECT: &str = "You have a new referral in your inbox";

/// The notice to `vcs`'s `notify_emails` that `referral_id` has arrived, as an outbox message
/// (the first to this organisation's people about this referral); `None` when nobody is to be told.
pub fn new_referral_notice(
    config: &Config,
    vcs: &VcsConfig,
    referral_id: &ReferralId,
) -> Option<NewOutboxMessage> {
    if vcs.notify_emails.is_empty() {
        return None;
    }
    let link = format!("{}/inbox/referrals/{referral_id}", config.base_url());
    let text = format!(
        "Hello {},\r\n\r\nYou have a new referral in your inbox:\r\n{link}\r\n\r\n\
         Sign in to read it. For the person's privacy this email carries none of their details.\r\n",
        vcs.name
    );
    let payload = json!({"to": vcs.notify_emails, "subject": NOTICE_SUBJECT, "text": text});
    Some(NewOutboxMessage {
        id: new_message_id(),
        target_kind: TargetKind::Email,
        target: vcs.id.to_string(),
        event_type: NOTICE_EVENT.into(),
        sequence: 1,
        payload: Payload::Text(payload.to_string()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::DEMO_CONFIG;

    #[test]
    fn a_notice_links_the_inbox_and_goes_only_to_those_listed() {
        let mut config = Config::from_toml_with_env(DEMO_CONFIG).expect("demo config");
        let id = crate::domain::FhirId::generate();
        assert!(new_referral_notice(&config, &config.vcs[0], &id).is_none());
        config.vcs[0].notify_emails = vec!["team@carers.example".into()];
        let notice = new_referral_notice(&config, &config.vcs[0], &id).expect("a notice");
        assert_eq!(notice.target_kind, TargetKind::Email);
        let Payload::Text(text) = &notice.payload else {
            panic!("a notice is text");
        };
        let payload: serde_json::Value = serde_json::from_str(text).expect("JSON");
        assert_eq!(payload["to"], json!(["team@carers.example"]));
        assert_eq!(payload["subject"], NOTICE_SUBJECT);
        let body = payload["text"].as_str().expect("text");
        assert!(body.contains(&format!("/inbox/referrals/{id}")), "{body}");
    }
}
