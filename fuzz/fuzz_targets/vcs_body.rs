//! The two bodies a VCS organisation sends (status update, outcome report), read as the VCS API
//! reads them, and the FHIR the gateway makes of an accepted one. Property: no input panics,
//! and whatever the reader accepts becomes a Task and Observations that pass our profiles (a
//! body that passes the reader but breaks the profile was once a 500 with the note in the log).
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use sp_gateway::config::{Config, DEMO_CONFIG};
use sp_gateway::translate::observation::{observation_count, outcome_observations};
use sp_gateway::translate::task::{apply_status, new_task};
use sp_gateway::translate::vcs_request::{parse_outcome_report, parse_status_update};
use sp_gateway::validation::Validation;

struct Setup {
    config: Config,
    validation: Validation,
}

fn setup() -> &'static Setup {
    static S: OnceLock<Setup> = OnceLock::new();
    S.get_or_init(|| Setup {
        config: Config::from_toml_with_env(DEMO_CONFIG).expect("demo configuration"),
        validation: Validation::bundled().expect("bundled definitions load"),
    })
}

fuzz_target!(|data: &[u8]| {
    let Ok(body) = serde_json::from_slice::<serde_json::Value>(data) else {
        return;
    };
    let s = setup();
    let vcs = &s.config.vcs[0];
    let now = chrono::Utc::now();
    if let Ok(update) = parse_status_update(&body) {
        let task = new_task("t1", "sr1", "p1", vcs, now);
        let next = apply_status(&task, &update, now);
        let errors = s.validation.errors(&next);
        assert!(
            errors.is_empty(),
            "accepted status made an invalid Task: {errors:?}"
        );
    }
    if let Ok(report) = parse_outcome_report(&body) {
        let ids: Vec<String> = (0..observation_count(report.instrument))
            .map(|i| format!("o{i}"))
            .collect();
        for observation in outcome_observations(&report, &ids, "sr1", "p1", vcs) {
            let errors = s.validation.errors(&observation);
            assert!(
                errors.is_empty(),
                "accepted outcome made an invalid Observation: {errors:?}"
            );
        }
    }
});
