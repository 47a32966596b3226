//! `sp-gateway demo`: the whole loop for a newcomer. Starts a gateway and a signature-verifying
//! VCS receiver, replays the closed-loop fixtures telling what happens at each step in plain
//! words, then leaves the gateway running so they can carry on with curl.

use std::path::PathBuf;

use super::local::LocalGateway;
use super::runner::FixtureResult;
use super::{fixture, replay_fixtures, target_for, Options, ReplayError};
use crate::Gateway;

/// What `sp-gateway demo` was asked to do.
#[derive(Debug, Clone)]
pub struct DemoOptions {
    pub listen: String,
    pub fixtures: PathBuf,
    /// Months of synthetic activity seeded before the fixtures run (0: none).
    pub seed_months: u32,
}

fn tell(result: &FixtureResult) {
    println!("\n▶ {}", result.fixture.name);
    for step in &result.steps {
        if step.passed {
            println!("  ✓ {}", step.story);
        } else {
            println!("  ✗ {}", step.name);
            for line in step.detail.as_deref().unwrap_or("").lines() {
                println!("      {line}");
            }
        }
    }
}

fn explore(gateway: &LocalGateway) {
    let base = &gateway.base;
    println!("\nThe gateway keeps running at {base} (Ctrl-C to stop). Its database is temporary.");
    println!("\nTokens (Authorization: Bearer <token>):");
    for (client, token) in &gateway.parties.clients {
        println!("  {:<32} {token}", format!("GP system {client}"));
    }
    for vcs in &gateway.parties.organisations {
        println!("  {:<32} {}", format!("VCS {}", vcs.id), vcs.token);
    }
    if let Some(admin) = &gateway.parties.admin_token {
        println!("  {:<32} {admin}", "operator (admin)");
    }
    println!(
        "\nPages (sign in at {base}/inbox/login with the password \"{}\"):",
        crate::DEMO_PAGE_PASSWORD
    );
    for (email, what) in crate::DEMO_PAGE_ACCOUNTS {
        println!("  {email:<32} {what}");
    }
    println!("\nTry (<id>: a ServiceRequest id printed above):");
    println!(
        "  curl -H 'Authorization: Bearer demo-gp-token' '{base}/fhir/ServiceRequest?_count=5'"
    );
    println!("  curl -H 'Authorization: Bearer demo-gp-token' '{base}/fhir/Task?focus=ServiceRequest/<id>'");
    println!("  curl -H 'Authorization: Bearer demo-gp-token' '{base}/fhir/Observation?based-on=ServiceRequest/<id>'");
    println!("  curl -H 'Authorization: Bearer demo-vcs-carers-count' '{base}/vcs/v1/referrals'");
    println!(
        "  curl -X POST {base}/fhir/ServiceRequest -H 'Authorization: Bearer demo-gp-token' \\\n    \
         -H 'Content-Type: application/fhir+json' --data-binary @fixtures/referrals/valid/debt-advice-cyngor.json"
    );
    println!("  curl -H 'Authorization: Bearer demo-admin-token' '{base}/admin/v1/deliveries'");
}

/// Runs the demo; returns whether every step went as expected, once the gateway stops.
pub fn run(gateway: &'static dyn Gateway, options: &DemoOptions) -> Result<bool, ReplayError> {
    let fixtures = fixture::discover(std::slice::from_ref(&options.fixtures))?;
    if fixtures.is_empty() {
        return Err(ReplayError::NoFixtures);
    }
    if options.seed_months > 0 {
        println!(
            "Seeding a temporary database with {} months of synthetic referrals (made-up people)…",
            options.seed_months
        );
    }
    println!(
        "Starting the gateway on {} with a temporary database…",
        options.listen
    );
    let local = LocalGateway::start(gateway, &options.listen, None, vec![], options.seed_months)?;
    println!(
        "Gateway ready at {}; webhooks go to a built-in VCS receiver that checks every signature.",
        local.base
    );
    let target = target_for(
        local.base.clone(),
        &local.parties,
        &Options::default(),
        Some(local.inbox.clone()),
    );
    let outcome = replay_fixtures(&target, &fixtures, tell, |_| {})?;
    println!("\n{}", super::report::summary(&outcome.results));
    explore(&local);
    let all_passed = outcome.all_passed();
    local.wait();
    Ok(all_passed)
}
