//! `seed`: months of synthetic activity through the real domain code, on both backends. What a
//! seeded database answers: referrals of every month, each organisation's, with the statuses and
//! questionnaires of their journeys, and deliveries delivered, retried and dead.

#[path = "common/postgres.rs"]
mod pg;

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use chrono::{DateTime, Datelike, TimeZone, Utc};
use sp_gateway::config::{Config, StorageConfig, DEMO_CONFIG};
use sp_gateway::seed::{seed, SeedOptions};
use sp_gateway::store::{self, DeliveryFilter, DeliveryState, Store, VcsReferralQuery};
use sp_gateway::translate::vcs_status::VcsStatus;
use sp_gateway::validation::Validation;

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 20, 15, 30, 0).unwrap()
}

async fn seeded(url: String) -> (Arc<dyn Store>, Config, sp_gateway::seed::Seeded) {
    let mut config = Config::from_toml_with_env(DEMO_CONFIG).expect("demo config");
    config.storage = StorageConfig {
        url,
        ..StorageConfig::default()
    };
    let store = store::open(&config.storage).await.expect("open store");
    let validation = Validation::bundled().expect("profiles");
    let options = SeedOptions {
        months: 3,
        seed: 42,
        now: now(),
    };
    let seeded = seed(store.as_ref(), &config, &validation, &options)
        .await
        .expect("seed");
    (store, config, seeded)
}

async fn check(store: Arc<dyn Store>, config: Config, seeded: sp_gateway::seed::Seeded) {
    // About 40 to 65 referrals a month, three months and most of a fourth.
    assert!(
        (120..=300).contains(&seeded.referrals),
        "{} referrals",
        seeded.referrals
    );
    assert!(seeded.status_reports > seeded.referrals, "{seeded:?}");
    assert!(seeded.outcome_reports > seeded.referrals / 3, "{seeded:?}");
    assert!(seeded.cancelled_by_gp > 0, "{seeded:?}");

    let mut months = BTreeMap::new();
    let mut statuses = HashSet::new();
    let mut total = 0;
    for vcs in &config.vcs {
        let query = VcsReferralQuery {
            count: 1000,
            ..VcsReferralQuery::default()
        };
        let (count, referrals) = store
            .list_vcs_referrals(&vcs.id, &query)
            .await
            .expect("list");
        assert!(count > 10, "{}: {count} referrals", vcs.id);
        total += count;
        for referral in referrals {
            let record = referral.record_json().expect("record");
            let created: DateTime<Utc> = record["created_at"]
                .as_str()
                .and_then(|t| t.parse().ok())
                .expect("created_at");
            assert!(created <= now() && referral.updated_at <= now());
            assert!(referral.updated_at >= created);
            *months.entry((created.year(), created.month())).or_insert(0) += 1;
            statuses.insert(referral.status);
            let nhs = record["patient"]["nhs_number"].as_str();
            assert!(nhs.is_none_or(|n| n.starts_with("999")), "{nhs:?}");
        }
    }
    assert_eq!(total, seeded.referrals);
    // August to November 2026, every month with referrals.
    assert_eq!(
        months.keys().copied().collect::<Vec<_>>(),
        vec![(2026, 8), (2026, 9), (2026, 10), (2026, 11)]
    );
    for status in [
        VcsStatus::Received,
        VcsStatus::Accepted,
        VcsStatus::Declined,
        VcsStatus::Completed,
        VcsStatus::Cancelled,
    ] {
        assert!(statuses.contains(&status), "no {status:?} in {statuses:?}");
    }

    let deliveries = |state| {
        let store = store.clone();
        async move {
            let filter = DeliveryFilter {
                state: Some(state),
                count: 1000,
                ..DeliveryFilter::default()
            };
            store.list_deliveries(&filter).await.expect("deliveries").0
        }
    };
    assert_eq!(deliveries(DeliveryState::Delivered).await, seeded.delivered);
    assert!(seeded.delivered > seeded.referrals / 2, "{seeded:?}");
    // The outage leaves dead messages; transient failures are retried and delivered.
    assert!(deliveries(DeliveryState::Dead).await > 0, "{seeded:?}");
    assert!(seeded.delivery_attempts > seeded.delivered + seeded.dead);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_seeded_sqlite_database_has_months_of_activity() {
    let dir = tempfile::tempdir().expect("temp dir");
    let url = format!("sqlite://{}", dir.path().join("seed.db").display());
    let (store, config, seeded) = seeded(url).await;
    check(store, config, seeded).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_seeded_postgres_database_has_months_of_activity() {
    let schema = pg::TestSchema::create();
    let (store, config, seeded) = seeded(schema.url.clone()).await;
    check(store, config, seeded).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_seed_gives_the_same_activity() {
    let dirs = [tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap()];
    let mut runs = vec![];
    for dir in &dirs {
        let url = format!("sqlite://{}", dir.path().join("seed.db").display());
        runs.push(seeded(url).await.2);
    }
    assert_eq!(runs[0], runs[1]);
}
