//! `[email]` and the organisation settings that go with it: what kind of organisation a
//! `[[vcs]]` entry is (a community group, or a social prescribing link-worker service that refers
//! onward), and whom to tell by email when a referral arrives for it.

use serde::Deserialize;

use super::{invalid, Config, ConfigError};

/// `[email]`: how notices are sent. Without it, no organisation may list `notify_emails`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EmailConfig {
    /// `smtps://host:port` (TLS from the start), or `smtp://host:port` (plain; add
    /// `?tls=required` for STARTTLS); user and password may be given in the URL.
    pub smtp_url: String,
    /// The sender, `Name <address>` or a bare address.
    pub from: String,
}

/// What a `[[vcs]]` entry is: `kind = "group"` (the default) receives referrals;
/// `kind = "link-worker"` may also refer a person onward to a service of the directory.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum VcsKind {
    #[default]
    Group,
    LinkWorker,
}

impl VcsKind {
    pub fn as_str(self) -> &'static str {
        match self {
            VcsKind::Group => "group",
            VcsKind::LinkWorker => "link-worker",
        }
    }
}

/// An email address as a mail server takes it (one `@`, a local part and a domain, no spaces or
/// angle brackets); `lettre` parses it again, strictly, when a notice is built.
pub fn check_address(address: &str, key: &str) -> Result<(), ConfigError> {
    match address.parse::<lettre::Address>() {
        Ok(_) => Ok(()),
        Err(e) => Err(invalid(
            key.to_string(),
            format!("not an email address: {e}"),
        )),
    }
}

/// The rules of `[email]` and `notify_emails`.
pub fn check_email(config: &Config) -> Result<(), ConfigError> {
    if let Some(email) = &config.email {
        let scheme = email.smtp_url.split_once("://").map(|(s, _)| s);
        if !matches!(scheme, Some("smtp" | "smtps")) {
            return Err(invalid(
                "email.smtp_url".into(),
                "must start with smtp:// or smtps://",
            ));
        }
        if url::Url::parse(&email.smtp_url).is_err() {
            return Err(invalid("email.smtp_url".into(), "is not a URL"));
        }
        if email.from.parse::<lettre::message::Mailbox>().is_err() {
            return Err(invalid(
                "email.from".into(),
                "must be an address or Name <address>",
            ));
        }
    }
    for (i, vcs) in config.vcs.iter().enumerate() {
        if !vcs.notify_emails.is_empty() && config.email.is_none() {
            return Err(invalid(
                format!("vcs[{i}].notify_emails"),
                "needs an [email] section (smtp_url, from) to send through",
            ));
        }
        for (j, address) in vcs.notify_emails.iter().enumerate() {
            check_address(address, &format!("vcs[{i}].notify_emails[{j}]"))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: &str = r#"
[[vcs]]
id = "lw"
name = "Link workers"
kind = "link-worker"
identifiers = ["https://www.gov.uk/charity-commission|1"]
webhook_url = "https://lw.example/hooks"
webhook_secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
token = "lw-token-0123456789abcdef"
"#;

    #[test]
    fn kinds_and_notice_addresses() {
        let config = Config::from_toml_with_env(BASE).expect("a link worker");
        assert_eq!(config.vcs[0].kind, VcsKind::LinkWorker);
        let group = BASE.replace("kind = \"link-worker\"\n", "");
        assert_eq!(
            Config::from_toml_with_env(&group).expect("a group").vcs[0].kind,
            VcsKind::Group
        );
        let odd = BASE.replace("link-worker", "hospital");
        assert!(Config::from_toml_with_env(&odd).is_err());
        let without_email = format!("{BASE}notify_emails = [\"team@lw.example\"]\n");
        let err = Config::from_toml_with_env(&without_email)
            .unwrap_err()
            .to_string();
        assert!(err.contains("vcs[0].notify_emails"), "{err}");
        let with_email = format!(
            "[email]\nsmtp_url = \"smtp://127.0.0.1:2525\"\nfrom = \"SP <sp@example.org>\"\n{BASE}notify_emails = [\"team@lw.example\"]\n"
        );
        assert!(Config::from_toml_with_env(&with_email).is_ok());
        let bad = with_email.replace("team@lw.example", "not an address");
        let err = Config::from_toml_with_env(&bad).unwrap_err().to_string();
        assert!(err.contains("vcs[0].notify_emails[0]"), "{err}");
        let bad_url = with_email.replace("smtp://127.0.0.1:2525", "http://mail");
        let err = Config::from_toml_with_env(&bad_url)
            .unwrap_err()
            .to_string();
        assert!(err.contains("email.smtp_url"), "{err}");
    }
}
