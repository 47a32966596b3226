//! `sp-gateway directory import`: reads Open Referral UK feeds from files, judges every service
//! against the UK profile's schema and stores the valid ones in the gateway's database.
//!
//! Exit 0 when everything was valid and stored (last line `imported N services (M
//! organisations, L locations), K skipped`); 1 when a service was invalid (each reported with its
//! id and each fault's JSON pointer and reason; nothing is stored unless `--skip-invalid`, which
//! stores the rest); 2 when a feed, the configuration or the database cannot be used.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Subcommand};

use sp_gateway::directory::{catalog, parse_paths};

#[derive(Subcommand)]
pub enum DirectoryCommand {
    /// Import services from Open Referral UK files: each PATH a service, a list page, an array
    /// of services, or a folder of such `*.json` files.
    Import(ImportArgs),
}

#[derive(Args)]
pub struct ImportArgs {
    /// The gateway's configuration (its database, its `[[vcs]]`, `[directory]`).
    #[arg(long)]
    config: Option<PathBuf>,
    /// Store the valid services even when others are invalid (the exit status is still 1).
    #[arg(long)]
    skip_invalid: bool,
    /// The feed these files are (services are updated by id whatever the feed).
    #[arg(long, default_value = "files")]
    feed: String,
    /// The files are the whole feed: its services stored earlier and missing now are withdrawn
    /// (marked inactive, never deleted).
    #[arg(long)]
    full: bool,
    #[arg(required = true, value_name = "PATH")]
    paths: Vec<PathBuf>,
}

pub fn run(command: &DirectoryCommand) -> ExitCode {
    match command {
        DirectoryCommand::Import(args) => import(args),
    }
}

/// Imports the valid services of the feeds at `paths` into `config`'s database (the invalid
/// ones are left out): how `replay` gives its in-process gateway a directory.
pub async fn import_valid(
    config: &sp_gateway::config::Config,
    paths: &[PathBuf],
) -> Result<(), String> {
    let taxonomy = catalog::taxonomy(config).map_err(|e| e.to_string())?;
    let report = parse_paths(paths).map_err(|e| e.to_string())?;
    let connected = catalog::connected_identifiers(config);
    let store = sp_gateway::store::open(&config.storage)
        .await
        .map_err(|e| e.to_string())?;
    catalog::store_import(
        store.as_ref(),
        &report,
        "files",
        false,
        &taxonomy,
        &connected,
        chrono::Utc::now(),
    )
    .await
    .map_err(|e| e.to_string())?;
    Ok(())
}

fn unusable(message: impl std::fmt::Display) -> ExitCode {
    eprintln!("sp-gateway directory import: {message}");
    ExitCode::from(2)
}

fn import(args: &ImportArgs) -> ExitCode {
    let config = match sp_gateway::app::load_config(args.config.as_deref()) {
        Ok(config) => config,
        Err(e) => return unusable(format!("configuration refused: {e}")),
    };
    let taxonomy = match catalog::taxonomy(&config) {
        Ok(taxonomy) => taxonomy,
        Err(e) => return unusable(e),
    };
    let report = match parse_paths(&args.paths) {
        Ok(report) => report,
        Err(e) => return unusable(e),
    };
    for bad in &report.invalid {
        println!("INVALID {bad}");
    }
    for s in &report.services {
        for note in &s.notes {
            eprintln!("service {} ({}): {note}", s.service.id, s.origin);
        }
    }
    for id in &report.repeated {
        eprintln!("service {id} is given more than once: the last copy is kept");
    }
    let skipped = report.invalid.len();
    if skipped > 0 && !args.skip_invalid {
        println!(
            "{skipped} invalid service(s): nothing imported (--skip-invalid imports the valid ones)"
        );
        return ExitCode::FAILURE;
    }
    let connected = catalog::connected_identifiers(&config);
    let stored = actix_web::rt::System::new().block_on(async {
        let store = sp_gateway::store::open(&config.storage).await?;
        catalog::store_import(
            store.as_ref(),
            &report,
            &args.feed,
            args.full,
            &taxonomy,
            &connected,
            chrono::Utc::now(),
        )
        .await
    });
    let outcome = match stored {
        Ok(outcome) => outcome,
        Err(e) => return unusable(e),
    };
    if outcome.withdrawn > 0 {
        println!(
            "withdrew {} service(s) of feed {} that it no longer lists",
            outcome.withdrawn, args.feed
        );
    }
    let (organisations, locations) = report.organisation_and_location_counts();
    println!(
        "imported {} services ({organisations} organisations, {locations} locations), {skipped} skipped",
        report.services.len()
    );
    if skipped > 0 {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}
