//! `sp-gateway users`: the people who sign in to the web inbox (and commissioners, to the
//! reports page).
//!
//! Passwords are read from standard input (the first line), never from the command line, where
//! other users of the machine and the shell's history would see them. Exit 0 when done; 1 when
//! refused (a weak password, an address already used, no such account); 2 when the
//! configuration or the database cannot be used.

use std::io::BufRead;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Subcommand, ValueEnum};

use sp_gateway::accounts;
use sp_gateway::config::Config;
use sp_gateway::domain::{CommissionerId, VcsId};
use sp_gateway::store::{Account, Email, Membership, OrgRole, Store};

#[derive(Subcommand)]
pub enum UsersCommand {
    /// Add an account; its password is the first line of standard input (at least 12
    /// characters, not a common one). With --totp, prints the otpauth:// URI for an
    /// authenticator app, and signing in then asks for its code.
    Add(AddArgs),
    /// List every account: email, role, organisation, whether it uses a code, whether disabled.
    List(ConfigArg),
    /// Disable an account (its sessions end at once).
    Disable(EmailArgs),
    /// Enable a disabled account again.
    Enable(EmailArgs),
    /// Set a new password, read from standard input; the account's sessions end.
    ResetPassword(EmailArgs),
}

#[derive(Args)]
pub struct ConfigArg {
    /// The gateway's configuration (its database and its `[[vcs]]`).
    #[arg(long)]
    config: Option<PathBuf>,
}

#[derive(Args)]
pub struct EmailArgs {
    #[command(flatten)]
    config: ConfigArg,
    #[arg(long)]
    email: String,
}

#[derive(Args)]
pub struct AddArgs {
    #[command(flatten)]
    config: ConfigArg,
    /// The organisation (`[[vcs]] id`); none for an operator or a commissioner.
    #[arg(long)]
    org: Option<String>,
    /// With --role commissioner: whose reports the account reads (`[[commissioners]] id`).
    #[arg(long)]
    commissioner: Option<String>,
    #[arg(long)]
    email: String,
    #[arg(long, value_enum, default_value = "staff")]
    role: Role,
    /// Sign in with a one-time code from an authenticator app as well as the password.
    #[arg(long)]
    totp: bool,
}

#[derive(Clone, Copy, ValueEnum)]
enum Role {
    Staff,
    Manager,
    Operator,
    /// Reads the reports page (`/reports`) of one `[[commissioners]]` entry, nothing else.
    Commissioner,
}

/// Why a command did not do what it was asked: refused (exit 1) or unable (exit 2).
enum Failure {
    Refused(String),
    Unusable(String),
}

pub fn run(command: &UsersCommand) -> ExitCode {
    let result = actix_web::rt::System::new().block_on(async {
        match command {
            UsersCommand::Add(args) => add(args).await,
            UsersCommand::List(args) => list(args).await,
            UsersCommand::Disable(args) => set_disabled(args, true).await,
            UsersCommand::Enable(args) => set_disabled(args, false).await,
            UsersCommand::ResetPassword(args) => reset_password(args).await,
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::Refused(message)) => {
            eprintln!("sp-gateway users: {message}");
            ExitCode::FAILURE
        }
        Err(Failure::Unusable(message)) => {
            eprintln!("sp-gateway users: {message}");
            ExitCode::from(2)
        }
    }
}

async fn open(args: &ConfigArg) -> Result<(Config, std::sync::Arc<dyn Store>), Failure> {
    let config = sp_gateway::app::load_config(args.config.as_deref())
        .map_err(|e| Failure::Unusable(format!("configuration refused: {e}")))?;
    let store = sp_gateway::store::open(&config.storage)
        .await
        .map_err(|e| Failure::Unusable(e.to_string()))?;
    Ok((config, store))
}

fn email(raw: &str) -> Result<Email, Failure> {
    raw.parse().map_err(Failure::Refused)
}

fn store_error(e: impl std::fmt::Display) -> Failure {
    Failure::Unusable(e.to_string())
}

/// The first line of standard input, checked as a new password and hashed.
fn new_password_hash() -> Result<String, Failure> {
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .map_err(|e| Failure::Unusable(format!("cannot read the password: {e}")))?;
    let password = line.trim_end_matches(['\n', '\r']);
    accounts::check_password(password).map_err(|e| Failure::Refused(e.to_string()))?;
    accounts::hash_password(password).map_err(|e| Failure::Unusable(e.to_string()))
}

fn membership(config: &Config, args: &AddArgs) -> Result<Membership, Failure> {
    if args.commissioner.is_some() && !matches!(args.role, Role::Commissioner) {
        return Err(Failure::Refused(
            "--commissioner goes with --role commissioner".into(),
        ));
    }
    let role = match args.role {
        Role::Commissioner => {
            if args.org.is_some() {
                return Err(Failure::Refused(
                    "--role commissioner belongs to no organisation: leave out --org".into(),
                ));
            }
            let Some(id) = &args.commissioner else {
                return Err(Failure::Refused(
                    "--commissioner is needed for --role commissioner ([[commissioners]] id)"
                        .into(),
                ));
            };
            let id = id
                .parse::<CommissionerId>()
                .ok()
                .filter(|id| config.commissioners.iter().any(|c| c.id == *id))
                .ok_or_else(|| {
                    Failure::Refused(format!(
                        "there is no commissioner {id:?} in the configuration ([[commissioners]] id)"
                    ))
                })?;
            return Ok(Membership::Commissioner(id));
        }
        Role::Staff => OrgRole::Staff,
        Role::Manager => OrgRole::Manager,
        Role::Operator => {
            return match &args.org {
                None => Ok(Membership::Operator),
                Some(_) => Err(Failure::Refused(
                    "--role operator belongs to no organisation: leave out --org".into(),
                )),
            };
        }
    };
    let Some(org) = &args.org else {
        return Err(Failure::Refused(
            "--org is needed for staff and managers".into(),
        ));
    };
    let vcs = org
        .parse::<VcsId>()
        .ok()
        .filter(|id| config.vcs(id).is_some())
        .ok_or_else(|| {
            Failure::Refused(format!(
                "there is no organisation {org:?} in the configuration ([[vcs]] id)"
            ))
        })?;
    Ok(Membership::Member { vcs, role })
}

async fn add(args: &AddArgs) -> Result<(), Failure> {
    let (config, store) = open(&args.config).await?;
    let email = email(&args.email)?;
    let membership = membership(&config, args)?;
    let password_hash = new_password_hash()?;
    let totp_secret = args.totp.then(accounts::new_totp_secret);
    let account = Account {
        id: uuid::Uuid::new_v4().to_string(),
        email: email.clone(),
        membership,
        password_hash,
        totp_secret: totp_secret.clone(),
        disabled: false,
        created_at: chrono::Utc::now(),
    };
    if !store.create_account(account).await.map_err(store_error)? {
        return Err(Failure::Refused(format!(
            "there is already an account for {email}"
        )));
    }
    println!("added {email}");
    if let Some(secret) = totp_secret {
        let uri = accounts::totp_uri(&secret, email.as_str())
            .map_err(|e| Failure::Unusable(e.to_string()))?;
        println!("{uri}");
    }
    Ok(())
}

async fn list(args: &ConfigArg) -> Result<(), Failure> {
    let (_, store) = open(args).await?;
    for account in store.accounts().await.map_err(store_error)? {
        println!(
            "{}\t{}\t{}\t{}\t{}",
            account.email,
            account.membership.role(),
            account
                .membership
                .vcs()
                .map(|v| v.as_str())
                .or(account.membership.commissioner().map(|c| c.as_str()))
                .unwrap_or("-"),
            if account.totp_secret.is_some() {
                "totp"
            } else {
                "password"
            },
            if account.disabled {
                "disabled"
            } else {
                "enabled"
            },
        );
    }
    Ok(())
}

async fn set_disabled(args: &EmailArgs, disabled: bool) -> Result<(), Failure> {
    let (_, store) = open(&args.config).await?;
    let email = email(&args.email)?;
    if !store
        .set_account_disabled(&email, disabled)
        .await
        .map_err(store_error)?
    {
        return Err(Failure::Refused(format!("there is no account for {email}")));
    }
    println!("{} {email}", if disabled { "disabled" } else { "enabled" });
    Ok(())
}

async fn reset_password(args: &EmailArgs) -> Result<(), Failure> {
    let (_, store) = open(&args.config).await?;
    let email = email(&args.email)?;
    let hash = new_password_hash()?;
    if !store
        .set_password(&email, &hash)
        .await
        .map_err(store_error)?
    {
        return Err(Failure::Refused(format!("there is no account for {email}")));
    }
    println!("new password set for {email}; its sessions have ended");
    Ok(())
}
