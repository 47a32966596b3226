//! The `sp-gateway` command: a thin CLI over the library.

mod directory_cli;
mod users_cli;
mod validate_cli;

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use serde_json::Value;

use sp_gateway::config::Delay;
use sp_gateway::domain::ClientId;
use sp_gateway::intake::{self, Rejected, Request};
use sp_gateway::validation::Validation;

/// mimalloc: a quarter of the instructions of a referral were malloc and free in the system
/// allocator (many small JSON values); mimalloc's thread-local free lists make those cheaper.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "sp-gateway",
    version,
    about = "Social-prescribing referral gateway (FHIR R4)"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the gateway (without --config: the embedded demo configuration).
    Serve {
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// Apply pending database migrations and exit (for operators who turn
    /// `storage.migrate_on_start` off). Exit 0 on success, 2 on failure.
    Migrate {
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// The service directory: `directory import` reads Open Referral UK feeds into the database.
    #[command(subcommand)]
    Directory(directory_cli::DirectoryCommand),
    /// The people who sign in to the web inbox: `users add`, `list`, `disable`, `enable`,
    /// `reset-password` (passwords from standard input).
    #[command(subcommand)]
    Users(users_cli::UsersCommand),
    /// Validate FHIR files (any R4 resource) against base R4 and our profiles. Exit 0 valid,
    /// 1 invalid, 2 when a file is not FHIR at all (unreadable, not JSON or XML, not a resource).
    Validate(validate_cli::ValidateArgs),
    /// A webhook receiver that verifies signatures and prints each record (for testers).
    MockVcs {
        #[arg(long, default_value = "127.0.0.1:9000")]
        listen: String,
        /// The organisation's Standard Webhooks secret (whsec_…).
        #[arg(long)]
        secret: String,
        /// Answer this share of messages with --status, to rehearse outages (0 to 1).
        #[arg(long, default_value_t = 0.0)]
        fail_rate: f64,
        #[arg(long, default_value_t = 503)]
        status: u16,
    },
    /// Print the referral record a VCS organisation would receive for a FHIR referral file.
    Translate {
        #[arg(long)]
        config: Option<PathBuf>,
        file: PathBuf,
    },
    /// Replay fixtures (request + name.expect.json) through a gateway and check every step.
    /// Without --target, a gateway and a signature-verifying receiver start in this process.
    /// Exit 0 when all pass, 1 when any fails, 2 when the replay cannot run.
    Replay {
        /// Fixture files or folders (searched recursively).
        #[arg(default_value = "fixtures")]
        paths: Vec<PathBuf>,
        /// A running gateway, e.g. http://127.0.0.1:8080.
        #[arg(long)]
        target: Option<String>,
        /// The GP bearer token for every GP request (default: the fixture's client's token).
        #[arg(long)]
        token: Option<String>,
        /// The gateway's configuration, for client and VCS tokens (default: the demo's); without
        /// --target, the in-process gateway runs with it (webhooks still go to the receiver).
        #[arg(long)]
        config: Option<PathBuf>,
        /// Write a JUnit XML report here.
        #[arg(long)]
        junit: Option<PathBuf>,
        /// Write a JSON report here.
        #[arg(long)]
        json: Option<PathBuf>,
        /// Write the normalised referral records as the new golden files.
        #[arg(long)]
        update_golden: bool,
    },
    /// Start a gateway and a mock VCS, replay the closed-loop fixtures saying what happens,
    /// then keep the gateway running to explore with curl.
    Demo {
        #[arg(long, default_value = "127.0.0.1:8080")]
        listen: String,
        #[arg(long, default_value = "fixtures/loop")]
        fixtures: PathBuf,
        /// Months of synthetic activity (made-up people) seeded first, so that the reports and
        /// the operator's pages are not empty; 0 for none.
        #[arg(long, default_value_t = 6)]
        seed_months: u32,
    },
    /// Write months of synthetic activity (made-up people, NHS numbers of the 999 test range)
    /// into the configured database: referrals from the demo's GP practices to every
    /// organisation with identifiers, their statuses, questionnaires and webhook deliveries.
    /// For demo and test databases only: never a live one.
    Seed {
        #[arg(long)]
        config: Option<PathBuf>,
        /// Whole months before the current one (the current month is seeded up to now too).
        #[arg(long, default_value_t = 6)]
        months: u32,
        /// The random seed: the same seed and day give the same activity.
        #[arg(long, default_value_t = 1)]
        seed: u64,
    },
}

fn init_logging() {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .json()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Serve { config } => serve(config.as_deref()),
        Command::Migrate { config } => migrate(config.as_deref()),
        Command::Validate(args) => validate_cli::run(&args),
        Command::Directory(command) => directory_cli::run(&command),
        Command::Users(command) => users_cli::run(&command),
        Command::Translate { config, file } => translate(config.as_deref(), &file),
        Command::MockVcs {
            listen,
            secret,
            fail_rate,
            status,
        } => mock_vcs(&listen, &secret, fail_rate, status),
        Command::Replay {
            paths,
            target,
            token,
            config,
            junit,
            json,
            update_golden,
        } => replay(&sp_tools::replay::Options {
            paths,
            target,
            token,
            config,
            junit,
            json,
            update_golden,
        }),
        Command::Demo {
            listen,
            fixtures,
            seed_months,
        } => demo(&sp_tools::replay::demo::DemoOptions {
            listen,
            fixtures,
            seed_months,
        }),
        Command::Seed {
            config,
            months,
            seed,
        } => seed_command(config.as_deref(), months, seed),
    }
}

fn replay(options: &sp_tools::replay::Options) -> ExitCode {
    match sp_tools::replay::run(&Server, options) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("sp-gateway replay: {e}");
            ExitCode::from(2)
        }
    }
}

fn demo(options: &sp_tools::replay::demo::DemoOptions) -> ExitCode {
    match sp_tools::replay::demo::run(&Server, options) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("sp-gateway demo: {e}");
            ExitCode::from(2)
        }
    }
}

/// The server library, as `replay` and `demo` reach it.
struct Server;

impl sp_tools::Gateway for Server {
    fn parties(&self, config: Option<&Path>) -> Result<sp_tools::Parties, String> {
        let config = sp_gateway::app::load_config(config).map_err(|e| e.to_string())?;
        Ok(sp_tools::Parties {
            clients: config
                .clients
                .iter()
                .map(|c| (c.id.as_str().to_string(), c.token.clone()))
                .collect(),
            organisations: config
                .vcs
                .iter()
                .filter_map(|v| {
                    Some(sp_tools::Organisation {
                        id: v.id.as_str().to_string(),
                        name: v.name.clone(),
                        token: v.token.clone(),
                        webhook_secret: v.webhook()?.secret.to_string(),
                    })
                })
                .collect(),
            admin_token: config.admin.token.clone(),
        })
    }

    fn serve_local(&self, run: sp_tools::LocalRun, listener: TcpListener) -> Result<(), String> {
        let mut config =
            sp_gateway::app::load_config(run.config.as_deref()).map_err(|e| e.to_string())?;
        config.storage.url = format!("sqlite://{}", run.database.display());
        // Organisations with a webhook get theirs pointed at the run's receiver; the others
        // read their referrals in the inbox.
        for vcs in config.vcs.iter_mut().filter(|v| v.webhook_url.is_some()) {
            vcs.webhook_url = Some(format!("{}/hooks/{}", run.receiver, vcs.id.as_str()));
        }
        config.delivery.allow_private_targets = true;
        config.delivery.retry_schedule = [1, 1, 2]
            .map(|s| Delay(std::time::Duration::from_secs(s)))
            .to_vec();
        config.delivery.worker = true;
        actix_web::rt::System::new().block_on(async {
            if !run.directory.is_empty() {
                directory_cli::import_valid(&config, &run.directory).await?;
            }
            if run.seed_months > 0 {
                let seeded = seed(&config, run.seed_months, 1).await?;
                println!("{}", seeded_summary(&seeded));
            }
            add_demo_accounts(&config).await?;
            sp_gateway::app::serve(config, listener)
                .await
                .map_err(|e| e.to_string())
        })
    }
}

/// The demo's accounts for the pages (`sp_tools::DEMO_PAGE_ACCOUNTS`): an operator, and the demo
/// commissioner's reader when the configuration has that commissioner.
async fn add_demo_accounts(config: &sp_gateway::config::Config) -> Result<(), String> {
    use sp_gateway::domain::CommissionerId;
    use sp_gateway::store::{Account, Membership};
    let store = sp_gateway::store::open(&config.storage)
        .await
        .map_err(|e| e.to_string())?;
    let password_hash = sp_gateway::accounts::hash_password(sp_tools::DEMO_PAGE_PASSWORD)
        .map_err(|e| e.to_string())?;
    let commissioner: Option<CommissionerId> = "valley-icb"
        .parse()
        .ok()
        .filter(|id| config.commissioners.iter().any(|c| c.id == *id));
    let [(operator, _), (reader, _)] = sp_tools::DEMO_PAGE_ACCOUNTS;
    let mut accounts = vec![(operator, Membership::Operator)];
    if let Some(id) = commissioner {
        accounts.push((reader, Membership::Commissioner(id)));
    }
    for (email, membership) in accounts {
        let account = Account {
            id: uuid::Uuid::new_v4().to_string(),
            email: email.parse().map_err(|e| format!("{email}: {e}"))?,
            membership,
            password_hash: password_hash.clone(),
            totp_secret: None,
            disabled: false,
            created_at: chrono::Utc::now(),
        };
        store
            .create_account(account)
            .await
            .map_err(|e| e.to_string())?;
    }
    Ok(())
}

/// Seeds `config`'s database with `months` of synthetic activity.
async fn seed(
    config: &sp_gateway::config::Config,
    months: u32,
    seed: u64,
) -> Result<sp_gateway::seed::Seeded, String> {
    let validation = Validation::bundled().map_err(|e| e.to_string())?;
    let store = sp_gateway::store::open(&config.storage)
        .await
        .map_err(|e| e.to_string())?;
    let options = sp_gateway::seed::SeedOptions {
        months,
        seed,
        now: chrono::Utc::now(),
    };
    sp_gateway::seed::seed(store.as_ref(), config, &validation, &options)
        .await
        .map_err(|e| e.to_string())
}

fn seeded_summary(seeded: &sp_gateway::seed::Seeded) -> String {
    format!(
        "seeded {} referrals, {} status reports, {} questionnaires, {} cancelled by the GP; \
         {} webhook attempts: {} delivered, {} dead",
        seeded.referrals,
        seeded.status_reports,
        seeded.outcome_reports,
        seeded.cancelled_by_gp,
        seeded.delivery_attempts,
        seeded.delivered,
        seeded.dead
    )
}

fn seed_command(config_path: Option<&Path>, months: u32, random_seed: u64) -> ExitCode {
    let config = match sp_gateway::app::load_config(config_path) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("sp-gateway seed: configuration refused: {e}");
            return ExitCode::from(2);
        }
    };
    match actix_web::rt::System::new().block_on(seed(&config, months, random_seed)) {
        Ok(seeded) => {
            println!("{}", seeded_summary(&seeded));
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("sp-gateway seed: {e}");
            ExitCode::FAILURE
        }
    }
}

fn mock_vcs(listen: &str, secret: &str, fail_rate: f64, status: u16) -> ExitCode {
    let receiver = match sp_tools::mock_vcs::MockVcs::new(secret, fail_rate, status) {
        Ok(receiver) => receiver,
        Err(e) => {
            eprintln!("sp-gateway mock-vcs: {e}");
            return ExitCode::from(2);
        }
    };
    let listener = match TcpListener::bind(listen) {
        Ok(listener) => listener,
        Err(e) => {
            eprintln!("sp-gateway mock-vcs: cannot listen on {listen}: {e}");
            return ExitCode::from(2);
        }
    };
    println!(
        "mock-vcs listening on http://{}",
        listener
            .local_addr()
            .map(|a| a.to_string())
            .unwrap_or_default()
    );
    match actix_web::rt::System::new().block_on(sp_tools::mock_vcs::serve(receiver, listener)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("sp-gateway mock-vcs: {e}");
            ExitCode::FAILURE
        }
    }
}

fn serve(config_path: Option<&Path>) -> ExitCode {
    init_logging();
    let config = match sp_gateway::app::load_config(config_path) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("sp-gateway: configuration refused: {e}");
            return ExitCode::from(2);
        }
    };
    let demo_tokens = config.public_demo_tokens();
    if !demo_tokens.is_empty() {
        tracing::warn!(
            keys = demo_tokens.join(", "),
            "DEMO TOKENS IN USE: anyone who has read the README can act as these clients, \
             organisations or the operator. Fine on this machine for a try-out; never for real \
             referrals (serve --config with tokens of your own)."
        );
    }
    let open_guard: Vec<String> = config
        .vcs
        .iter()
        .enumerate()
        .filter(|(_, v)| v.allows_private_targets(&config.delivery))
        .map(|(i, _)| format!("vcs[{i}]"))
        .chain(
            config
                .clients
                .iter()
                .enumerate()
                .filter(|(_, c)| c.allows_private_targets(&config.delivery))
                .map(|(i, _)| format!("clients[{i}]")),
        )
        .collect();
    if config.delivery.allow_private_targets || !open_guard.is_empty() {
        tracing::warn!(
            open_for = open_guard.join(", "),
            "delivery.allow_private_targets is on: webhooks may be sent to private, loopback and \
             link-local addresses (the SSRF guard is off for them)"
        );
    }
    let listener = match TcpListener::bind(config.server.listen) {
        Ok(listener) => listener,
        Err(e) => {
            eprintln!("sp-gateway: cannot listen on {}: {e}", config.server.listen);
            return ExitCode::from(2);
        }
    };
    // Tests and scripts start us on port 0 and read the real address from this line.
    println!(
        "sp-gateway listening on {}://{}",
        config.scheme(),
        listener
            .local_addr()
            .map(|a| a.to_string())
            .unwrap_or_default()
    );
    let runtime =
        match actix_web::rt::System::new().block_on(sp_gateway::app::serve(config, listener)) {
            Ok(()) => return ExitCode::SUCCESS,
            Err(e) => e,
        };
    eprintln!("sp-gateway: {runtime}");
    ExitCode::FAILURE
}

fn migrate(config_path: Option<&Path>) -> ExitCode {
    init_logging();
    let config = match sp_gateway::app::load_config(config_path) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("sp-gateway migrate: configuration refused: {e}");
            return ExitCode::from(2);
        }
    };
    let outcome =
        actix_web::rt::System::new().block_on(sp_gateway::store::migrate(&config.storage));
    let target = sp_gateway::config::redact_password(&config.storage.url);
    match outcome {
        Ok(applied) if applied.is_empty() => {
            println!("{target}: up to date, nothing to apply");
            ExitCode::SUCCESS
        }
        Ok(applied) => {
            for migration in &applied {
                println!("{target}: applied {migration}");
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("sp-gateway migrate: {e}");
            ExitCode::from(2)
        }
    }
}

fn translate(config_path: Option<&Path>, file: &Path) -> ExitCode {
    let result = (|| {
        let config = sp_gateway::app::load_config(config_path).map_err(|e| e.to_string())?;
        let validation = Validation::bundled().map_err(|e| e.to_string())?;
        let (tree, bytes, format) = validate_cli::read_fhir_file(file)?;
        let endpoint = validate_cli::endpoint_of(&tree);
        let client: ClientId = "cli".parse().map_err(|e| format!("{e}"))?;
        let request = Request {
            endpoint,
            tree,
            received_body: &bytes,
            received_content_type: format.content_type(),
            client: &client,
            correlation_id: None,
            now: chrono::Utc::now(),
        };
        match intake::prepare(&config, &validation, request) {
            Ok(prepared) => Ok(prepared.referral.record),
            Err(Rejected(issues)) => {
                let _ = validate_cli::write_text(&mut std::io::stdout(), file, &issues);
                Err("the referral was refused".to_string())
            }
        }
    })();
    match result {
        Ok(record) => {
            let pretty = serde_json::from_str::<Value>(&record)
                .and_then(|v| serde_json::to_string_pretty(&v))
                .unwrap_or(record);
            println!("{pretty}");
            ExitCode::SUCCESS
        }
        Err(message) => {
            eprintln!("sp-gateway: {message}");
            ExitCode::FAILURE
        }
    }
}
