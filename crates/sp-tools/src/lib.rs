//! Tools around the sp-gateway server, offered as subcommands of the `sp-gateway` binary:
//! `replay` (fixtures through a live gateway, every step checked), `demo` (the closed loop told
//! in plain words) and `mock-vcs` (a webhook receiver for testers).
//!
//! The tools reach the server only through [`Gateway`], which the binary implements with the
//! server library: this crate does not depend on the server, and the server library carries none
//! of the tools' dependencies (progress bars, JUnit reports, diffs, temporary folders).

pub mod mock_vcs;
pub mod replay;

use std::net::TcpListener;
use std::path::{Path, PathBuf};

/// The password of the demo's accounts for the pages, printed by the demo like its tokens (the
/// demo serves on loopback only).
pub const DEMO_PAGE_PASSWORD: &str = "demo password for the pages";

/// The demo's accounts for the pages: (email, what it opens).
pub const DEMO_PAGE_ACCOUNTS: [(&str, &str); 2] = [
    ("ops@demo.example", "operator: the operator pages, /admin"),
    (
        "icb@demo.example",
        "commissioner valley-icb: the reports page, /reports",
    ),
];

/// What the tools know of a gateway's configuration: who may call it, with which tokens.
#[derive(Debug, Clone, Default)]
pub struct Parties {
    /// GP systems: client id and bearer token.
    pub clients: Vec<(String, String)>,
    pub organisations: Vec<Organisation>,
    /// The operator's token, when the admin API is on.
    pub admin_token: Option<String>,
}

/// A VCS organisation the gateway delivers webhooks to.
#[derive(Debug, Clone)]
pub struct Organisation {
    pub id: String,
    pub name: String,
    /// Its bearer token for the VCS API.
    pub token: String,
    /// Its Standard Webhooks secret (`whsec_…`), to verify what the gateway sends it.
    pub webhook_secret: String,
}

/// A gateway run inside this process by `replay` and `demo`: where its database lives and where
/// its webhooks go.
#[derive(Debug, Clone)]
pub struct LocalRun {
    /// The configuration file (the demo configuration without one).
    pub config: Option<PathBuf>,
    /// The SQLite database, in a temporary folder.
    pub database: PathBuf,
    /// The built-in receiver: organisation `id` is called at `{receiver}/hooks/{id}`.
    pub receiver: String,
    /// Open Referral UK feeds (files or folders) imported into the directory before serving, so
    /// that fixtures may refer to (and onward to) its services; invalid services are skipped.
    pub directory: Vec<PathBuf>,
    /// Months of synthetic activity written into the database before serving (0: none), so
    /// that the reports and the operator's pages have something to show.
    pub seed_months: u32,
}

/// The server, as the tools need it. The `sp-gateway` binary implements it with the server
/// library.
pub trait Gateway: Sync {
    /// The parties of the configuration at `config` (the demo configuration without one).
    fn parties(&self, config: Option<&Path>) -> Result<Parties, String>;

    /// Serves a gateway on `listener` with `run.config`, changed for a run in this process: the
    /// database at `run.database`, webhooks to the receiver, private webhook targets allowed,
    /// retries short enough for a test run, the delivery worker on. Blocks until it stops.
    fn serve_local(&self, run: LocalRun, listener: TcpListener) -> Result<(), String>;
}
