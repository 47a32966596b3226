//! The store suite: every rule the `Store` trait promises, run against both backends (SQLite in a
//! temporary file, PostgreSQL in a schema of its own), so the two cannot drift apart.

#[path = "common/postgres.rs"]
mod pg;

use std::any::Any;
use std::collections::HashSet;
use std::sync::Arc;

use chrono::{DateTime, Duration, DurationRound, NaiveDate, Utc};
use sp_gateway::config::StorageConfig;
use sp_gateway::delivery::outcome;
use sp_gateway::domain::{Actor, ClientId, FhirId, Identifier, VcsId};
use sp_gateway::store::{
    self, Access, Attempt, AuditEntry, AuditQuery, AuditRecord, ChangeOutcome, CreateOutcome,
    DeliveryFilter, DeliveryState, IssuedToken, NewOutboxMessage, NewReferral, NewResource,
    NextStep, Payload, ReferralChange, ReferralQuery, ReferralStatus, ResourceQuery, Store,
    StoredResponse, SubscriptionRow, SubscriptionStatus, TargetKind, VcsReferralQuery,
};
use sp_gateway::store::{DeliveryCount, EndpointHealth, RefusalCount};
use sp_gateway::store::{
    DirectoryImport, DirectoryImportOutcome, DirectoryResourceType, DirectoryState, FeedOutcome,
    FeedPoll, NewDirectoryOrganization, NewDirectoryService,
};
use sp_gateway::translate::vcs_status::VcsStatus;

const SYSTEM: &str = "https://fhir.emis-demo.example/Id/referral";

type Keep = Box<dyn Any + Send>;

async fn sqlite_store() -> (Arc<dyn Store>, Keep) {
    let dir = tempfile::tempdir().expect("temp dir");
    let config = StorageConfig {
        url: format!("sqlite://{}", dir.path().join("store.db").display()),
        ..StorageConfig::default()
    };
    let store = store::open(&config).await.expect("open sqlite");
    (store, Box::new(dir))
}

async fn postgres_store() -> (Arc<dyn Store>, Keep) {
    let schema = pg::TestSchema::create();
    let config = StorageConfig {
        url: schema.url.clone(),
        ..StorageConfig::default()
    };
    let store = store::open(&config).await.expect("open postgres");
    (store, Box::new(schema))
}

/// Generates one test per scenario and backend: `sqlite::name` and `postgres::name`.
macro_rules! store_suite {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let (store, _keep) = super::sqlite_store().await;
                    super::$name(store).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let (store, _keep) = super::postgres_store().await;
                    super::$name(store).await;
                }
            )*
        }
    };
}

store_suite!(
    create_then_read_as_owner_only,
    conditional_create_returns_the_existing_referral,
    an_identifier_names_one_referral_per_client,
    a_bars_message_id_is_processed_once,
    racing_conditional_creates_make_one_referral,
    racing_duplicate_messages_make_one_referral,
    search_filters_and_pages,
    changes_apply_once_per_revision,
    idempotency_keys_are_scoped_to_the_referral,
    notifications_share_the_stored_version,
    racing_changes_apply_one,
    history_versions_and_resource_search,
    vcs_lists_its_referrals,
    claims_hold_a_lease_and_keep_referral_order,
    expired_leases_are_claimed_again,
    concurrent_claims_never_share_a_message,
    retries_dead_letters_and_recovery,
    disabled_endpoints_wait,
    secret_rotation_keeps_the_old_secret_for_the_grace,
    delivered_payloads_are_pruned,
    audit_records_reads_and_disclosures,
    audit_records_each_access_of_a_search,
    subscriptions_are_kept_per_client,
    issued_tokens_and_used_assertions_are_kept,
    a_fresh_store_has_every_migration,
    directory_imports_update_by_id_and_withdraw_what_a_full_feed_dropped,
    feed_polls_replace_the_last_one_per_feed,
    service_referrals_carry_their_first_answer,
    an_onward_referral_is_stored_with_the_change_that_makes_it,
    accounts_are_unique_by_email_and_read_back_whole,
    sessions_idle_out_and_end_with_the_account,
    intake_refusals_are_counted_per_day_client_and_rule,
    webhook_health_follows_its_attempts,
    audit_records_filter_by_actor_and_action_newest_first,
    reports_read_grouping_keys_first_status_times_and_scores,
);

// --- Builders ------------------------------------------------------------------------------

/// Now, to the microsecond (what both databases keep).
fn now() -> DateTime<Utc> {
    Utc::now()
        .duration_trunc(Duration::microseconds(1))
        .expect("truncate")
}

fn client(id: &str) -> ClientId {
    id.parse().expect("client id")
}

fn vcs(id: &str) -> VcsId {
    id.parse().expect("vcs id")
}

fn resource(resource_type: &str, id: &FhirId, version: i64, patient: &FhirId) -> NewResource {
    NewResource {
        resource_type: resource_type.into(),
        id: id.clone(),
        version_id: version,
        content: format!(
            r#"{{"resourceType":"{resource_type}","id":"{id}","meta":{{"versionId":"{version}"}}}}"#
        ),
        patient_id: Some(patient.to_string()),
        code: (resource_type == "Observation")
            .then(|| "http://loinc.org|ons4-happiness".to_string()),
    }
}

/// A referral of `client_id` to `carers-count` with the GP reference `reference`.
fn referral(client_id: &str, reference: &str) -> NewReferral {
    let referral_id = FhirId::generate();
    let patient_id = FhirId::generate();
    let task_id = FhirId::generate();
    NewReferral {
        referral_id: referral_id.clone(),
        client_id: client(client_id),
        vcs_id: vcs("carers-count"),
        identifiers: vec![Identifier::new(SYSTEM, reference)],
        message_id: None,
        patient_id: patient_id.clone(),
        status: ReferralStatus::Active,
        received_content_type: "application/fhir+json".into(),
        received_body: br#"{"resourceType":"ServiceRequest"}"#.to_vec(),
        resources: vec![
            resource("ServiceRequest", &referral_id, 1, &patient_id),
            resource("Patient", &patient_id, 1, &patient_id),
            resource("Task", &task_id, 1, &patient_id),
        ],
        task_id,
        record: format!(r#"{{"schema":"referral-record/v1","referral_id":"{referral_id}"}}"#),
        outbox: vec![message(
            TargetKind::Vcs,
            "carers-count",
            "referral.created",
            1,
        )],
        correlation_id: Some("corr-1".into()),
        created_at: now(),
        onward: None,
    }
}

fn message(kind: TargetKind, target: &str, event: &str, sequence: i64) -> NewOutboxMessage {
    NewOutboxMessage {
        id: format!("msg_{}", uuid::Uuid::new_v4().simple()),
        target_kind: kind,
        target: target.into(),
        event_type: event.into(),
        sequence,
        payload: Payload::Text(format!(r#"{{"type":"{event}"}}"#)),
    }
}

async fn create(store: &Arc<dyn Store>, referral: NewReferral) -> NewReferral {
    let outcome = store
        .create_referral(referral.clone(), None)
        .await
        .expect("create");
    assert!(matches!(outcome, CreateOutcome::Created), "{outcome:?}");
    referral
}

fn attempt(at: DateTime<Utc>, status: Option<u16>) -> Attempt {
    Attempt {
        at,
        status_code: status,
        latency_ms: 12,
        error: status.filter(|s| *s >= 400).map(|s| format!("HTTP {s}")),
        response_prefix: Some("ok".into()),
    }
}

/// A change to `referral` computed from `revision`: a new Task version and one outbox message.
fn change(referral: &NewReferral, revision: i64, task_version: i64) -> ReferralChange {
    ReferralChange {
        referral_id: referral.referral_id.clone(),
        expected_revision: revision,
        status: None,
        vcs_status: Some(VcsStatus::Accepted),
        resources: vec![resource(
            "Task",
            &referral.task_id,
            task_version,
            &referral.patient_id,
        )],
        outbox: vec![],
        audit: vec![AuditEntry {
            actor: "vcs:carers-count".parse().expect("an actor"),
            action: "update".into(),
            resource_type: "Task".into(),
            resource_id: referral.task_id.to_string(),
        }],
        idempotency: None,
        correlation_id: None,
        at: now(),
        onward: None,
    }
}

fn vcs_query(
    status: Option<VcsStatus>,
    since: Option<DateTime<Utc>>,
    count: usize,
    offset: usize,
) -> VcsReferralQuery {
    VcsReferralQuery {
        status,
        since,
        count,
        offset,
    }
}

fn search(identifier: Option<(Option<&str>, &str)>) -> ReferralQuery {
    ReferralQuery {
        identifier: identifier.map(|(s, v)| (s.map(str::to_string), v.to_string())),
        count: 50,
        ..ReferralQuery::default()
    }
}

// --- Creating and reading ------------------------------------------------------------------

async fn create_then_read_as_owner_only(store: Arc<dyn Store>) {
    let r = create(&store, referral("emis-demo", "REF-1")).await;
    let owner = client("emis-demo");
    let found = store
        .read_resource(&owner, "ServiceRequest", r.referral_id.as_str())
        .await
        .expect("read")
        .expect("found");
    assert_eq!(found.version_id, 1);
    assert!(found.content.contains(r.referral_id.as_str()));
    assert_eq!(found.last_updated, r.created_at);
    let patient = store
        .read_resource(&owner, "Patient", r.patient_id.as_str())
        .await
        .expect("read patient");
    assert!(patient.is_some());
    let other = client("tpp-demo");
    assert!(store
        .read_resource(&other, "ServiceRequest", r.referral_id.as_str())
        .await
        .expect("read as other")
        .is_none());
    assert!(store
        .read_resource(&owner, "ServiceRequest", "no-such-id")
        .await
        .expect("read missing")
        .is_none());
    let state = store
        .load_referral(r.referral_id.as_str())
        .await
        .expect("load")
        .expect("state");
    assert_eq!(state.client_id.as_str(), "emis-demo");
    assert_eq!(state.vcs_id.as_str(), "carers-count");
    assert_eq!(state.status, ReferralStatus::Active);
    assert_eq!(state.revision, 1);
    assert_eq!(state.vcs_status, VcsStatus::Received);
    assert_eq!(
        state.task.as_ref().map(|t| t.id.as_str()),
        Some(r.task_id.as_str())
    );
    assert_eq!(state.next_sequence(TargetKind::Vcs, "carers-count"), 2);
    assert_eq!(state.next_sequence(TargetKind::Subscription, "sub-1"), 1);
    assert_eq!(state.created_at, r.created_at);
}

async fn conditional_create_returns_the_existing_referral(store: Arc<dyn Store>) {
    let first = create(&store, referral("emis-demo", "REF-2")).await;
    let condition = Identifier::new(SYSTEM, "REF-2");
    let retry = referral("emis-demo", "REF-2");
    match store
        .create_referral(retry, Some(condition.clone()))
        .await
        .expect("conditional create")
    {
        CreateOutcome::Existing(found) => assert_eq!(found.id, first.referral_id.as_str()),
        other => panic!("expected the existing referral, got {other:?}"),
    }
    // Another client's identifiers are its own: the same value creates a new referral there.
    let elsewhere = referral("tpp-demo", "REF-2");
    let outcome = store
        .create_referral(elsewhere, Some(condition))
        .await
        .expect("other client");
    assert!(matches!(outcome, CreateOutcome::Created), "{outcome:?}");
}

async fn an_identifier_names_one_referral_per_client(store: Arc<dyn Store>) {
    let first = create(&store, referral("emis-demo", "REF-3")).await;
    match store
        .create_referral(referral("emis-demo", "REF-3"), None)
        .await
        .expect("second create")
    {
        CreateOutcome::IdentifierTaken {
            identifier,
            existing,
        } => {
            assert_eq!(identifier.value, "REF-3");
            assert_eq!(existing, first.referral_id.as_str());
        }
        other => panic!("expected IdentifierTaken, got {other:?}"),
    }
    let page = store
        .search_referrals(&client("emis-demo"), &search(None))
        .await
        .expect("search");
    assert_eq!(page.total, 1, "the refused create stored nothing");
}

async fn a_bars_message_id_is_processed_once(store: Arc<dyn Store>) {
    let mut first = referral("emis-demo", "REF-4");
    first.message_id = Some("msg-0001".into());
    let first = create(&store, first).await;
    let mut again = referral("emis-demo", "REF-4-again");
    again.message_id = Some("msg-0001".into());
    match store.create_referral(again, None).await.expect("again") {
        CreateOutcome::DuplicateMessage { existing } => {
            assert_eq!(existing, first.referral_id.as_str())
        }
        other => panic!("expected DuplicateMessage, got {other:?}"),
    }
}

/// Many creates with one `If-None-Exist` at once (a vendor's retries reaching several replicas):
/// exactly one referral, and every other answer names it.
async fn racing_conditional_creates_make_one_referral(store: Arc<dyn Store>) {
    let condition = Identifier::new(SYSTEM, "REF-RACE");
    let racers: Vec<_> = (0..16)
        .map(|_| {
            let store = store.clone();
            let condition = condition.clone();
            tokio::spawn(async move {
                store
                    .create_referral(referral("emis-demo", "REF-RACE"), Some(condition))
                    .await
            })
        })
        .collect();
    let mut created = Vec::new();
    let mut existing = HashSet::new();
    for racer in racers {
        match racer.await.expect("join").expect("create") {
            CreateOutcome::Created => created.push(()),
            CreateOutcome::Existing(found) => {
                existing.insert(found.id);
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(created.len(), 1, "exactly one create wins");
    assert!(existing.len() <= 1, "every loser names the same referral");
    let page = store
        .search_referrals(
            &client("emis-demo"),
            &search(Some((Some(SYSTEM), "REF-RACE"))),
        )
        .await
        .expect("search");
    assert_eq!(page.total, 1);
    if let Some(id) = existing.iter().next() {
        assert_eq!(&page.resources[0].id, id);
    }
}

async fn racing_duplicate_messages_make_one_referral(store: Arc<dyn Store>) {
    let racers: Vec<_> = (0..8)
        .map(|i| {
            let store = store.clone();
            tokio::spawn(async move {
                let mut r = referral("emis-demo", &format!("REF-MSG-{i}"));
                r.message_id = Some("msg-race".into());
                store.create_referral(r, None).await
            })
        })
        .collect();
    let mut created = 0;
    for racer in racers {
        match racer.await.expect("join").expect("create") {
            CreateOutcome::Created => created += 1,
            CreateOutcome::DuplicateMessage { .. } => {}
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(created, 1);
}

async fn search_filters_and_pages(store: Arc<dyn Store>) {
    let mut made = Vec::new();
    for i in 0..5 {
        made.push(create(&store, referral("emis-demo", &format!("REF-S-{i}"))).await);
    }
    create(&store, referral("tpp-demo", "REF-S-0")).await;
    let owner = client("emis-demo");
    let all = store
        .search_referrals(&owner, &search(None))
        .await
        .expect("all");
    assert_eq!(all.total, 5);
    let ids: Vec<_> = all.resources.iter().map(|r| r.id.clone()).collect();
    let expected: Vec<_> = made.iter().map(|r| r.referral_id.to_string()).collect();
    assert_eq!(ids, expected, "oldest first");
    let page = store
        .search_referrals(
            &owner,
            &ReferralQuery {
                count: 2,
                offset: 2,
                ..ReferralQuery::default()
            },
        )
        .await
        .expect("page");
    assert_eq!(page.total, 5);
    assert_eq!(
        page.resources
            .iter()
            .map(|r| r.id.clone())
            .collect::<Vec<_>>(),
        expected[2..4].to_vec()
    );
    let by_value = store
        .search_referrals(&owner, &search(Some((None, "REF-S-3"))))
        .await
        .expect("by value");
    assert_eq!(by_value.total, 1);
    assert_eq!(by_value.resources[0].id, expected[3]);
    let wrong_system = store
        .search_referrals(&owner, &search(Some((Some("urn:other"), "REF-S-3"))))
        .await
        .expect("wrong system");
    assert_eq!(wrong_system.total, 0);
    let by_patient = store
        .search_referrals(
            &owner,
            &ReferralQuery {
                patient_id: Some(made[1].patient_id.to_string()),
                count: 10,
                ..ReferralQuery::default()
            },
        )
        .await
        .expect("by patient");
    assert_eq!(by_patient.total, 1);
    let by_status = store
        .search_referrals(
            &owner,
            &ReferralQuery {
                statuses: vec!["revoked".into(), "completed".into()],
                count: 10,
                ..ReferralQuery::default()
            },
        )
        .await
        .expect("by status");
    assert_eq!(by_status.total, 0);
    let active = store
        .search_referrals(
            &owner,
            &ReferralQuery {
                statuses: vec!["active".into()],
                count: 10,
                ..ReferralQuery::default()
            },
        )
        .await
        .expect("active");
    assert_eq!(active.total, 5);
}

// --- Changes -------------------------------------------------------------------------------

async fn changes_apply_once_per_revision(store: Arc<dyn Store>) {
    let r = create(&store, referral("emis-demo", "REF-C")).await;
    let mut first = change(&r, 1, 2);
    first.outbox = vec![message(
        TargetKind::Vcs,
        "carers-count",
        "referral.accepted",
        2,
    )];
    first.idempotency = Some((
        "carers-count".into(),
        "key-1".into(),
        StoredResponse {
            request_hash: "hash".into(),
            status: 200,
            body: "{\"ok\":true}".into(),
        },
    ));
    assert_eq!(
        store.apply_change(first).await.expect("apply"),
        ChangeOutcome::Applied
    );
    let stale = change(&r, 1, 2);
    assert_eq!(
        store.apply_change(stale).await.expect("stale"),
        ChangeOutcome::Conflict
    );
    let state = store
        .load_referral(r.referral_id.as_str())
        .await
        .expect("load")
        .expect("state");
    assert_eq!(state.revision, 2);
    assert_eq!(state.vcs_status, VcsStatus::Accepted);
    assert_eq!(state.task.as_ref().map(|t| t.version_id), Some(2));
    assert_eq!(state.next_sequence(TargetKind::Vcs, "carers-count"), 3);
    let referral_id = r.referral_id.as_str();
    let stored = store
        .idempotent_response("carers-count", referral_id, "key-1")
        .await
        .expect("idempotency")
        .expect("stored response");
    assert_eq!(
        (stored.status, stored.body.as_str()),
        (200, "{\"ok\":true}")
    );
    assert!(store
        .idempotent_response("carers-count", referral_id, "key-2")
        .await
        .expect("other key")
        .is_none());
}

/// A key names one request on one referral: the same key on another referral is another request,
/// and a change carrying a key already answered on its referral writes nothing.
async fn idempotency_keys_are_scoped_to_the_referral(store: Arc<dyn Store>) {
    let keyed = |change: &mut ReferralChange, body: &str| {
        change.idempotency = Some((
            "carers-count".into(),
            "same-key".into(),
            StoredResponse {
                request_hash: "hash".into(),
                status: 200,
                body: body.into(),
            },
        ));
    };
    let a = create(&store, referral("emis-demo", "REF-KEY-A")).await;
    let b = create(&store, referral("emis-demo", "REF-KEY-B")).await;
    for (r, body) in [(&a, "{\"on\":\"a\"}"), (&b, "{\"on\":\"b\"}")] {
        let mut first = change(r, 1, 2);
        keyed(&mut first, body);
        assert_eq!(
            store.apply_change(first).await.expect("apply"),
            ChangeOutcome::Applied
        );
    }
    for (r, body) in [(&a, "{\"on\":\"a\"}"), (&b, "{\"on\":\"b\"}")] {
        let stored = store
            .idempotent_response("carers-count", r.referral_id.as_str(), "same-key")
            .await
            .expect("idempotency")
            .expect("stored response");
        assert_eq!(stored.body, body);
    }
    // At the new revision, but with the key already answered on this referral: nothing written.
    let mut repeat = change(&a, 2, 3);
    keyed(&mut repeat, "{\"on\":\"repeat\"}");
    assert_eq!(
        store.apply_change(repeat).await.expect("repeat"),
        ChangeOutcome::Conflict
    );
    let state = store
        .load_referral(a.referral_id.as_str())
        .await
        .expect("load")
        .expect("state");
    assert_eq!(state.revision, 2, "the repeat wrote nothing");
    assert_eq!(state.task.as_ref().map(|t| t.version_id), Some(2));
}

/// Notifications about a stored resource version name it instead of holding a copy; a claim
/// reads that version's content as each message's payload.
async fn notifications_share_the_stored_version(store: Arc<dyn Store>) {
    let r = create(&store, referral("emis-demo", "REF-SHARED")).await;
    let mut shared = change(&r, 1, 2);
    let stored = Payload::Stored {
        resource_type: "Task".into(),
        id: r.task_id.to_string(),
        version_id: 2,
    };
    shared.outbox = ["sub-a", "sub-b"]
        .iter()
        .map(|target| NewOutboxMessage {
            payload: stored.clone(),
            ..message(TargetKind::Subscription, target, "Task.changed", 1)
        })
        .collect();
    let task_v2 = shared.resources[0].content.clone();
    assert_eq!(
        store.apply_change(shared).await.expect("apply"),
        ChangeOutcome::Applied
    );
    let later = now() + Duration::minutes(1);
    let claimed = store
        .claim_due_messages(later, later + Duration::minutes(1), 10)
        .await
        .expect("claim");
    let notifications: Vec<_> = claimed
        .iter()
        .filter(|m| m.target_kind == TargetKind::Subscription)
        .collect();
    assert_eq!(notifications.len(), 2, "{claimed:?}");
    for notification in notifications {
        assert_eq!(notification.payload, task_v2);
    }
}

async fn racing_changes_apply_one(store: Arc<dyn Store>) {
    let r = create(&store, referral("emis-demo", "REF-RC")).await;
    let racers: Vec<_> = (0..6)
        .map(|_| {
            let store = store.clone();
            let change = change(&r, 1, 2);
            tokio::spawn(async move { store.apply_change(change).await })
        })
        .collect();
    let mut applied = 0;
    for racer in racers {
        if racer.await.expect("join").expect("apply") == ChangeOutcome::Applied {
            applied += 1;
        }
    }
    assert_eq!(applied, 1);
    let history = store
        .history(&client("emis-demo"), "Task", r.task_id.as_str())
        .await
        .expect("history");
    assert_eq!(history.len(), 2, "one new version, not six");
}

async fn history_versions_and_resource_search(store: Arc<dyn Store>) {
    let r = create(&store, referral("emis-demo", "REF-H")).await;
    let owner = client("emis-demo");
    let observation = FhirId::generate();
    let mut c = change(&r, 1, 2);
    c.resources
        .push(resource("Observation", &observation, 1, &r.patient_id));
    store.apply_change(c).await.expect("apply");
    let history = store
        .history(&owner, "Task", r.task_id.as_str())
        .await
        .expect("history");
    assert_eq!(
        history.iter().map(|h| h.version_id).collect::<Vec<_>>(),
        vec![2, 1],
        "newest first"
    );
    let v1 = store
        .read_version(&owner, "Task", r.task_id.as_str(), 1)
        .await
        .expect("vread")
        .expect("v1");
    assert!(v1.content.contains("\"versionId\":\"1\""));
    assert!(store
        .read_version(&owner, "Task", r.task_id.as_str(), 9)
        .await
        .expect("vread 9")
        .is_none());
    let current = store
        .read_resource(&owner, "Task", r.task_id.as_str())
        .await
        .expect("read")
        .expect("task");
    assert_eq!(current.version_id, 2);
    let tasks = store
        .search_resources(
            &owner,
            "Task",
            &ResourceQuery {
                referral_id: Some(r.referral_id.to_string()),
                count: 10,
                ..ResourceQuery::default()
            },
        )
        .await
        .expect("tasks");
    assert_eq!(tasks.total, 1, "only the current version");
    assert_eq!(tasks.resources[0].version_id, 2);
    for (code, expected) in [
        (
            Some((
                Some("http://loinc.org".to_string()),
                "ons4-happiness".to_string(),
            )),
            1,
        ),
        (Some((None, "ons4-happiness".to_string())), 1),
        (
            Some((Some("urn:other".to_string()), "ons4-happiness".to_string())),
            0,
        ),
        (None, 1),
    ] {
        let found = store
            .search_resources(
                &owner,
                "Observation",
                &ResourceQuery {
                    patient_id: Some(r.patient_id.to_string()),
                    code: code.clone(),
                    count: 10,
                    ..ResourceQuery::default()
                },
            )
            .await
            .expect("observations");
        assert_eq!(found.total, expected, "{code:?}");
    }
    let not_theirs = store
        .search_resources(
            &client("tpp-demo"),
            "Observation",
            &ResourceQuery {
                count: 10,
                ..ResourceQuery::default()
            },
        )
        .await
        .expect("other client");
    assert_eq!(not_theirs.total, 0);
}

async fn vcs_lists_its_referrals(store: Arc<dyn Store>) {
    let a = create(&store, referral("emis-demo", "REF-V-1")).await;
    let b = create(&store, referral("emis-demo", "REF-V-2")).await;
    let mut elsewhere = referral("emis-demo", "REF-V-3");
    elsewhere.vcs_id = vcs("knit-natter");
    create(&store, elsewhere).await;
    store
        .apply_change(change(&b, 1, 2))
        .await
        .expect("accept b");
    let carers = vcs("carers-count");
    let (total, items) = store
        .list_vcs_referrals(&carers, &vcs_query(None, None, 10, 0))
        .await
        .expect("list");
    assert_eq!(total, 2);
    assert_eq!(
        items
            .iter()
            .map(|i| i.referral_id.clone())
            .collect::<Vec<_>>(),
        vec![a.referral_id.clone(), b.referral_id.clone()],
        "oldest change first"
    );
    let (accepted, items) = store
        .list_vcs_referrals(&carers, &vcs_query(Some(VcsStatus::Accepted), None, 10, 0))
        .await
        .expect("accepted");
    assert_eq!(accepted, 1);
    assert_eq!(items[0].referral_id, b.referral_id);
    assert!(items[0].record.contains("referral-record/v1"));
    let later = now() + Duration::seconds(60);
    let (since_later, _) = store
        .list_vcs_referrals(&carers, &vcs_query(None, Some(later), 10, 0))
        .await
        .expect("since");
    assert_eq!(since_later, 0);
    let (_, second_page) = store
        .list_vcs_referrals(&carers, &vcs_query(None, None, 1, 1))
        .await
        .expect("page");
    assert_eq!(second_page.len(), 1);
    assert_eq!(second_page[0].referral_id, b.referral_id);
}

// --- The outbox ----------------------------------------------------------------------------

async fn claims_hold_a_lease_and_keep_referral_order(store: Arc<dyn Store>) {
    let r = create(&store, referral("emis-demo", "REF-O")).await;
    let mut second = change(&r, 1, 2);
    second.outbox = vec![message(
        TargetKind::Vcs,
        "carers-count",
        "referral.accepted",
        2,
    )];
    store.apply_change(second).await.expect("second event");
    let t = now();
    let lease = t + Duration::seconds(30);
    let claimed = store.claim_due_messages(t, lease, 10).await.expect("claim");
    assert_eq!(claimed.len(), 1, "the second event waits for the first");
    assert_eq!(claimed[0].sequence, 1);
    assert_eq!(claimed[0].event_type, "referral.created");
    assert_eq!(claimed[0].referral_id, r.referral_id);
    assert_eq!(claimed[0].attempts, 0);
    assert!(store
        .claim_due_messages(t, lease, 10)
        .await
        .expect("claim again")
        .is_empty());
    store
        .record_attempt(
            &claimed[0].id,
            outcome::record(&claimed[0], attempt(t, Some(200)), &NextStep::Delivered),
        )
        .await
        .expect("record");
    let next = store
        .claim_due_messages(now(), lease, 10)
        .await
        .expect("claim 2");
    assert_eq!(next.len(), 1);
    assert_eq!(next[0].sequence, 2);
    let deliveries = store
        .referral_deliveries(r.referral_id.as_str())
        .await
        .expect("deliveries");
    assert_eq!(deliveries.len(), 2);
    assert_eq!(deliveries[0].0.state, DeliveryState::Delivered);
    assert_eq!(deliveries[0].0.attempts, 1);
    assert!(deliveries[0].0.delivered_at.is_some());
    assert_eq!(deliveries[0].1.len(), 1);
    assert_eq!(deliveries[0].1[0].status_code, Some(200));
    assert_eq!(deliveries[0].1[0].latency_ms, 12);
}

async fn expired_leases_are_claimed_again(store: Arc<dyn Store>) {
    create(&store, referral("emis-demo", "REF-L")).await;
    let t = now();
    let claimed = store
        .claim_due_messages(t, t + Duration::seconds(10), 10)
        .await
        .expect("claim");
    assert_eq!(claimed.len(), 1);
    assert_eq!(
        store.next_due_at().await.expect("next due"),
        Some(t + Duration::seconds(10)),
        "a leased message is due when its lease runs out"
    );
    // The holder died: nobody may take it before the lease ends, anyone may after.
    assert!(store
        .claim_due_messages(t + Duration::seconds(9), t + Duration::seconds(40), 10)
        .await
        .expect("before expiry")
        .is_empty());
    assert_eq!(
        store
            .release_expired_leases(t + Duration::seconds(5))
            .await
            .expect("sweep early"),
        0
    );
    assert_eq!(
        store
            .release_expired_leases(t + Duration::seconds(11))
            .await
            .expect("sweep"),
        1
    );
    let again = store
        .claim_due_messages(t + Duration::seconds(11), t + Duration::seconds(40), 10)
        .await
        .expect("after expiry");
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].id, claimed[0].id);
}

/// Several workers (replicas) claiming at once: every message is claimed exactly once.
async fn concurrent_claims_never_share_a_message(store: Arc<dyn Store>) {
    for i in 0..60 {
        create(&store, referral("emis-demo", &format!("REF-CC-{i}"))).await;
    }
    let workers: Vec<_> = (0..4)
        .map(|_| {
            let store = store.clone();
            tokio::spawn(async move {
                let mut mine = Vec::new();
                loop {
                    let t = now();
                    let batch = store
                        .claim_due_messages(t, t + Duration::seconds(60), 5)
                        .await
                        .expect("claim");
                    if batch.is_empty() {
                        return mine;
                    }
                    mine.extend(batch.into_iter().map(|m| m.id));
                }
            })
        })
        .collect();
    let mut all = Vec::new();
    for worker in workers {
        all.extend(worker.await.expect("join"));
    }
    let distinct: HashSet<_> = all.iter().collect();
    assert_eq!(all.len(), 60, "every message claimed");
    assert_eq!(distinct.len(), 60, "no message claimed twice");
}

async fn retries_dead_letters_and_recovery(store: Arc<dyn Store>) {
    create(&store, referral("emis-demo", "REF-R")).await;
    let t = now();
    let lease = t + Duration::seconds(30);
    let claimed = store.claim_due_messages(t, lease, 1).await.expect("claim");
    let id = claimed[0].id.clone();
    let retry_at = t + Duration::seconds(5);
    store
        .record_attempt(
            &id,
            outcome::record(
                &claimed[0],
                attempt(t, Some(503)),
                &NextStep::RetryAt(retry_at),
            ),
        )
        .await
        .expect("retry");
    assert_eq!(store.next_due_at().await.expect("due"), Some(retry_at));
    assert!(store
        .claim_due_messages(t, lease, 1)
        .await
        .expect("not yet")
        .is_empty());
    // An operator's retry makes a pending message due now.
    assert!(store
        .retry_message(&id, t)
        .await
        .expect("retry a pending message"));
    assert_eq!(store.next_due_at().await.expect("due"), Some(t));
    let again = store
        .claim_due_messages(t, lease, 1)
        .await
        .expect("due now");
    assert_eq!(again[0].attempts, 1);
    store
        .record_attempt(
            &id,
            outcome::record(&claimed[0], attempt(retry_at, Some(500)), &NextStep::Dead),
        )
        .await
        .expect("dead");
    let stats = store.outbox_stats(now()).await.expect("stats");
    assert_eq!((stats.pending, stats.dead), (0, 1));
    let (dead, listed) = store
        .list_deliveries(&DeliveryFilter {
            state: Some(DeliveryState::Dead),
            count: 10,
            ..DeliveryFilter::default()
        })
        .await
        .expect("dead letters");
    assert_eq!(dead, 1);
    assert_eq!(listed[0].last_error.as_deref(), Some("HTTP 500"));
    assert_eq!(listed[0].next_attempt_at, None, "a dead message is not due");
    let job = store
        .start_recovery(&vcs("carers-count"), t - Duration::hours(1), now())
        .await
        .expect("recover");
    assert_eq!((job.total, job.pending, job.done), (1, 1, false));
    let recovered = store
        .claim_due_messages(now(), now() + Duration::seconds(30), 1)
        .await
        .expect("claim recovered");
    assert_eq!(recovered.len(), 1);
    assert_eq!(
        recovered[0].attempts, 0,
        "a recovered message starts afresh"
    );
    store
        .record_attempt(
            &id,
            outcome::record(
                &recovered[0],
                attempt(now(), Some(200)),
                &NextStep::Delivered,
            ),
        )
        .await
        .expect("delivered");
    let progress = store
        .recovery_progress(&job.job_id)
        .await
        .expect("progress")
        .expect("job");
    assert_eq!((progress.delivered, progress.done), (1, true));
    assert!(store
        .retry_message(&id, now())
        .await
        .expect("operator retry"));
    assert!(!store
        .retry_message("msg_unknown", now())
        .await
        .expect("unknown"));
    assert_eq!(store.outbox_stats(now()).await.expect("stats").pending, 1);
}

async fn disabled_endpoints_wait(store: Arc<dyn Store>) {
    create(&store, referral("emis-demo", "REF-D")).await;
    let carers = vcs("carers-count");
    store
        .set_endpoint_enabled(&carers, false, Some("maintenance".into()), now())
        .await
        .expect("disable");
    assert_eq!(
        store.disabled_endpoints().await.expect("disabled"),
        vec![("carers-count".to_string(), Some("maintenance".to_string()))]
    );
    let t = now();
    assert!(store
        .claim_due_messages(t, t + Duration::seconds(30), 10)
        .await
        .expect("claim while disabled")
        .is_empty());
    assert_eq!(store.next_due_at().await.expect("due"), None);
    store
        .set_endpoint_enabled(&carers, true, None, now())
        .await
        .expect("enable");
    let claimed = store
        .claim_due_messages(now(), now() + Duration::seconds(30), 10)
        .await
        .expect("claim");
    assert_eq!(claimed.len(), 1);
    // A 410 Gone switches the endpoint off and keeps the message waiting for it.
    store
        .record_attempt(
            &claimed[0].id,
            outcome::record(
                &claimed[0],
                attempt(now(), Some(410)),
                &NextStep::EndpointGone,
            ),
        )
        .await
        .expect("gone");
    let disabled = store.disabled_endpoints().await.expect("disabled again");
    assert_eq!(disabled.len(), 1);
    assert_eq!(store.outbox_stats(now()).await.expect("stats").pending, 1);
}

async fn secret_rotation_keeps_the_old_secret_for_the_grace(store: Arc<dyn Store>) {
    let carers = vcs("carers-count");
    let t = now();
    let grace = t + Duration::hours(24);
    store
        .adopt_secret(&carers, "whsec_old", t, grace)
        .await
        .expect("adopt");
    store
        .adopt_secret(&carers, "whsec_old", t, grace)
        .await
        .expect("adopt again is a no-op");
    assert_eq!(
        store.signing_secrets(&carers, t).await.expect("secrets"),
        vec!["whsec_old".to_string()]
    );
    let later = t + Duration::seconds(1);
    store
        .adopt_secret(&carers, "whsec_new", later, later + Duration::hours(24))
        .await
        .expect("rotate");
    assert_eq!(
        store.signing_secrets(&carers, later).await.expect("both"),
        vec!["whsec_new".to_string(), "whsec_old".to_string()],
        "newest first, the old one still signing"
    );
    assert_eq!(
        store
            .signing_secrets(&carers, later + Duration::hours(25))
            .await
            .expect("after grace"),
        vec!["whsec_new".to_string()]
    );
}

async fn delivered_payloads_are_pruned(store: Arc<dyn Store>) {
    for i in 0..3 {
        create(&store, referral("emis-demo", &format!("REF-P-{i}"))).await;
    }
    let t = now();
    let claimed = store
        .claim_due_messages(t, t + Duration::seconds(30), 10)
        .await
        .expect("claim");
    for message in &claimed[..2] {
        store
            .record_attempt(
                &message.id,
                outcome::record(message, attempt(t, Some(204)), &NextStep::Delivered),
            )
            .await
            .expect("delivered");
    }
    assert_eq!(
        store
            .prune_delivered_payloads(t - Duration::seconds(1), 10)
            .await
            .expect("nothing old enough"),
        0
    );
    assert_eq!(
        store
            .prune_delivered_payloads(t + Duration::seconds(1), 1)
            .await
            .expect("batch of one"),
        1
    );
    assert_eq!(
        store
            .prune_delivered_payloads(t + Duration::seconds(1), 10)
            .await
            .expect("the rest"),
        1
    );
    // A pruned message has nothing left to send again.
    assert!(!store
        .retry_message(&claimed[0].id, now())
        .await
        .expect("retry pruned"));
}

// --- Audit and subscriptions ---------------------------------------------------------------

async fn audit_records_reads_and_disclosures(store: Arc<dyn Store>) {
    let r = create(&store, referral("emis-demo", "REF-A")).await;
    store
        .record_access(Access {
            at: now(),
            actor: "emis-demo".parse().expect("an actor"),
            action: "read".into(),
            resource_type: "ServiceRequest".into(),
            resource_id: Some(r.referral_id.to_string()),
            patient_id: None,
            outcome: "success".into(),
            correlation_id: Some("corr-read".into()),
        })
        .await
        .expect("read audited");
    let t = now();
    let claimed = store
        .claim_due_messages(t, t + Duration::seconds(30), 1)
        .await
        .expect("claim");
    store
        .record_attempt(
            &claimed[0].id,
            outcome::record(&claimed[0], attempt(t, Some(200)), &NextStep::Delivered),
        )
        .await
        .expect("delivered");
    let (total, records) = patient_audit(&store, &r).await;
    let actions: Vec<_> = records.iter().map(|a| a.action.as_str()).collect();
    assert_eq!(total, 3);
    assert_eq!(actions, vec!["create", "read", "disclose"]);
    assert_eq!(records[1].correlation_id.as_deref(), Some("corr-read"));
    assert_eq!(
        records[1].patient_id.as_deref(),
        Some(r.patient_id.as_str()),
        "the patient is found from the resource read"
    );
    assert_eq!(records[2].actor.to_string(), "vcs:carers-count");
    let (none, _) = store
        .audit_events(&AuditQuery {
            from: Some(now() + Duration::seconds(60)),
            count: 50,
            ..AuditQuery::default()
        })
        .await
        .expect("audit from later");
    assert_eq!(none, 0);
}

/// The audit records about `r`'s patient.
async fn patient_audit(store: &Arc<dyn Store>, r: &NewReferral) -> (usize, Vec<AuditRecord>) {
    store
        .audit_events(&AuditQuery {
            patient_id: Some(r.patient_id.to_string()),
            count: 50,
            ..AuditQuery::default()
        })
        .await
        .expect("audit by patient")
}

/// Several accesses are kept at once, each with the patient of the resource it names; records
/// are found by the resource (entity) too.
async fn audit_records_each_access_of_a_search(store: Arc<dyn Store>) {
    let r = create(&store, referral("emis-demo", "REF-AUDIT-EACH")).await;
    let access = |resource_type: &str, id: &str| Access {
        at: now(),
        actor: "emis-demo".parse().expect("an actor"),
        action: "search".into(),
        resource_type: resource_type.into(),
        resource_id: Some(id.into()),
        patient_id: None,
        outcome: "success".into(),
        correlation_id: Some("corr-each".into()),
    };
    store
        .record_accesses(vec![
            access("ServiceRequest", r.referral_id.as_str()),
            access("Task", r.task_id.as_str()),
            access("Subscription", "sub-audited"),
        ])
        .await
        .expect("record");
    let (total, records) = patient_audit(&store, &r).await;
    let searched: Vec<_> = records
        .iter()
        .filter(|a| a.action == "search")
        .filter_map(|a| a.resource_type.clone())
        .collect();
    assert_eq!(searched, ["ServiceRequest", "Task"], "{total} records");
    let (total, records) = store
        .audit_events(&AuditQuery {
            entity: Some(("Subscription".into(), "sub-audited".into())),
            count: 50,
            ..AuditQuery::default()
        })
        .await
        .expect("by entity");
    assert_eq!(total, 1);
    assert_eq!(records[0].patient_id, None);
    store
        .record_accesses(Vec::new())
        .await
        .expect("nothing to record");
}

async fn subscriptions_are_kept_per_client(store: Arc<dyn Store>) {
    let subscription = SubscriptionRow {
        id: "sub-1".into(),
        client_id: client("emis-demo"),
        resource_type: "Task".into(),
        criteria: "Task?status=completed".into(),
        endpoint: "https://gp.example/notify".into(),
        status: SubscriptionStatus::Active,
        content: "{}".into(),
    };
    assert!(store
        .create_subscription(subscription.clone(), now(), 2)
        .await
        .expect("create"));
    let second = SubscriptionRow {
        id: "sub-2".into(),
        ..subscription.clone()
    };
    assert!(store
        .create_subscription(second, now(), 2)
        .await
        .expect("create"));
    let third = SubscriptionRow {
        id: "sub-3".into(),
        ..subscription.clone()
    };
    assert!(
        !store
            .create_subscription(third.clone(), now(), 2)
            .await
            .expect("over the limit"),
        "a third active Subscription passes a limit of 2"
    );
    assert!(store.subscription("sub-3").await.expect("read").is_none());
    // Another client has its own count; a deleted one frees a place.
    let other = SubscriptionRow {
        id: "sub-4".into(),
        client_id: client("tpp-demo"),
        resource_type: "Observation".into(),
        ..subscription.clone()
    };
    assert!(store
        .create_subscription(other, now(), 2)
        .await
        .expect("create"));
    assert!(store
        .delete_subscription(&client("emis-demo"), "sub-2")
        .await
        .expect("delete"));
    assert!(store
        .create_subscription(third, now(), 2)
        .await
        .expect("a place freed"));
    assert!(store
        .delete_subscription(&client("emis-demo"), "sub-3")
        .await
        .expect("delete"));
    assert_eq!(
        store
            .subscriptions_for(&client("emis-demo"), "Task")
            .await
            .expect("list")
            .len(),
        1
    );
    assert!(store
        .subscriptions_for(&client("tpp-demo"), "Task")
        .await
        .expect("other")
        .is_empty());
    assert!(!store
        .delete_subscription(&client("tpp-demo"), "sub-1")
        .await
        .expect("not theirs"));
    assert!(store
        .delete_subscription(&client("emis-demo"), "sub-1")
        .await
        .expect("delete"));
    assert_eq!(
        store
            .subscription("sub-1")
            .await
            .expect("read")
            .map(|s| s.status),
        Some(SubscriptionStatus::Off)
    );
    assert!(store
        .subscriptions_for(&client("emis-demo"), "Task")
        .await
        .expect("after delete")
        .is_empty());
}

// --- Tokens --------------------------------------------------------------------------------

async fn issued_tokens_and_used_assertions_are_kept(store: Arc<dyn Store>) {
    let t = now();
    let token = IssuedToken {
        digest: "ab12".repeat(16),
        client_id: client("lab-rs"),
        scopes: vec![
            "system/ServiceRequest.read".into(),
            "system/Task.read".into(),
        ],
        expires_at: t + Duration::seconds(300),
    };
    store
        .save_access_token(token.clone())
        .await
        .expect("save token");
    assert_eq!(
        store.access_token(&token.digest, t).await.expect("lookup"),
        Some(token.clone())
    );
    assert!(store
        .access_token(&token.digest, t + Duration::seconds(301))
        .await
        .expect("expired")
        .is_none());
    assert!(store
        .access_token(&"cd34".repeat(16), t)
        .await
        .expect("unknown")
        .is_none());

    let window = t + Duration::seconds(60);
    assert!(store
        .use_assertion(&client("lab-rs"), "jti-1", window, t)
        .await
        .expect("first use"));
    assert!(!store
        .use_assertion(&client("lab-rs"), "jti-1", window, t)
        .await
        .expect("replay"));
    assert!(store
        .use_assertion(&client("lab-es"), "jti-1", window, t)
        .await
        .expect("another client's jti"));
    // Once the window has passed the row is forgotten (the assertion's exp refuses it anyway).
    assert!(store
        .use_assertion(
            &client("lab-rs"),
            "jti-1",
            window + Duration::seconds(60),
            window + Duration::seconds(1)
        )
        .await
        .expect("after the window"));
}

async fn a_fresh_store_has_every_migration(store: Arc<dyn Store>) {
    assert_eq!(store.migrations_missing().await.expect("reachable"), 0);
}

/// SQLite counts its WAL and shared-memory files (disk the database takes) and sees the free
/// space of the filesystem that holds it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_measures_its_wal_and_the_free_disk_beside_it() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("store.db");
    let config = StorageConfig {
        url: format!("sqlite://{}", path.display()),
        ..StorageConfig::default()
    };
    let store = store::open(&config).await.expect("open sqlite");
    let before = store.used_bytes().await.expect("size");
    for n in 0..20 {
        create(&store, referral("emis-demo", &format!("REF-WAL-{n}"))).await;
    }
    let beside = |suffix: &str| {
        std::fs::metadata(format!("{}{suffix}", path.display())).map_or(0, |m| m.len())
    };
    let (wal, shm) = (beside("-wal"), beside("-shm"));
    assert!(wal > 0, "the writes are in the WAL");
    let used = store.used_bytes().await.expect("size");
    assert!(
        used >= wal + shm,
        "{used} counts the WAL ({wal}) and shm ({shm})"
    );
    assert!(used > before, "{before} -> {used}");
    let free = store.free_bytes().await.expect("free space");
    assert!(free.is_some_and(|f| f > 0), "{free:?}");
}

/// PostgreSQL's size is the database's (shared here by parallel tests, so only its presence is
/// checked); its disk is its server's: the gateway does not claim to see it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_leaves_its_servers_disk_to_the_server() {
    let (store, _keep) = postgres_store().await;
    assert!(store.used_bytes().await.expect("size") > 0);
    assert_eq!(store.free_bytes().await.expect("answer"), None);
}

// --- Directory -----------------------------------------------------------------------------

fn directory_service(id: &str, name: &str, org: &str, charity: &str) -> NewDirectoryService {
    NewDirectoryService {
        id: id.into(),
        name: name.into(),
        state: DirectoryState::Active,
        source: serde_json::json!({"id": id, "name": name, "status": "active"}).to_string(),
        content: serde_json::json!({"resourceType": "HealthcareService", "id": id, "name": name, "active": true})
            .to_string(),
        organization: Some(NewDirectoryOrganization {
            id: org.into(),
            content: serde_json::json!({"resourceType": "Organization", "id": org}).to_string(),
            identifiers: vec![Identifier::new(
                "https://www.gov.uk/charity-commission",
                charity,
            )],
        }),
        locations: vec![(
            format!("{id}-place"),
            serde_json::json!({"resourceType": "Location", "id": format!("{id}-place"), "name": name})
                .to_string(),
        )],
    }
}

fn directory_import(feed: &str, full: bool, services: Vec<NewDirectoryService>) -> DirectoryImport {
    DirectoryImport {
        feed: feed.into(),
        full,
        services,
        at: now(),
    }
}

async fn directory_imports_update_by_id_and_withdraw_what_a_full_feed_dropped(
    store: Arc<dyn Store>,
) {
    let knit = directory_service("svc-knit", "Knit and Natter", "org-a", "1100001");
    let lunch = directory_service("svc-lunch", "Lunch Club", "org-b", "1100002");
    let other = directory_service("svc-other", "Men's Shed", "org-c", "1100003");
    let first = store
        .import_directory(directory_import(
            "hfd",
            true,
            vec![knit.clone(), lunch.clone()],
        ))
        .await
        .expect("first import");
    assert_eq!(
        first,
        DirectoryImportOutcome {
            created: 2,
            updated: 0,
            withdrawn: 0
        }
    );
    store
        .import_directory(directory_import("elsewhere", true, vec![other]))
        .await
        .expect("another feed");

    // The same feed again, the lunch club dropped and the knitting group renamed, its charity
    // number changed: updated in place, the dropped one withdrawn (still readable).
    let mut renamed = directory_service("svc-knit", "Knit, Natter and Tea", "org-a", "1100009");
    renamed.state = DirectoryState::Active;
    let again = store
        .import_directory(directory_import("hfd", true, vec![renamed]))
        .await
        .expect("second import");
    assert_eq!(
        again,
        DirectoryImportOutcome {
            created: 0,
            updated: 1,
            withdrawn: 1
        }
    );
    let knit = store
        .directory_service("svc-knit")
        .await
        .expect("read")
        .expect("kept");
    assert_eq!(knit.name, "Knit, Natter and Tea");
    assert_eq!(knit.state, DirectoryState::Active);
    assert_eq!(knit.feed, "hfd");
    assert_eq!(knit.organization_id.as_deref(), Some("org-a"));
    assert_eq!(
        knit.organization_identifiers,
        [Identifier::new(
            "https://www.gov.uk/charity-commission",
            "1100009"
        )]
    );
    assert_eq!(knit.json().expect("json")["name"], "Knit, Natter and Tea");
    let lunch = store
        .directory_service("svc-lunch")
        .await
        .expect("read")
        .expect("withdrawn, never deleted");
    assert_eq!(lunch.state, DirectoryState::Withdrawn);
    assert_eq!(lunch.json().expect("json")["active"], false);

    // A partial import changes what it carries and withdraws nothing; the other feed is untouched.
    let partial = store
        .import_directory(directory_import("hfd", false, vec![lunch_again(&lunch.id)]))
        .await
        .expect("partial import");
    assert_eq!(partial.withdrawn, 0);
    let all = store.directory_services().await.expect("all");
    let states: Vec<(&str, DirectoryState)> =
        all.iter().map(|s| (s.id.as_str(), s.state)).collect();
    assert_eq!(
        states,
        [
            ("svc-knit", DirectoryState::Active),
            ("svc-lunch", DirectoryState::Inactive),
            ("svc-other", DirectoryState::Active),
        ]
    );
    assert_eq!(
        all[2].organization_identifiers,
        [Identifier::new(
            "https://www.gov.uk/charity-commission",
            "1100003"
        )]
    );

    let org = store
        .directory_resource(DirectoryResourceType::Organization, "org-b")
        .await
        .expect("read")
        .expect("organisation");
    assert!(org.contains("\"org-b\""), "{org}");
    let place = store
        .directory_resource(DirectoryResourceType::Location, "svc-knit-place")
        .await
        .expect("read")
        .expect("location");
    assert!(place.contains("Knit, Natter and Tea"), "{place}");
    assert!(store
        .directory_resource(DirectoryResourceType::Location, "org-b")
        .await
        .expect("read")
        .is_none());
    assert!(store
        .directory_service("nope")
        .await
        .expect("read")
        .is_none());
}

/// The lunch club back in its feed, marked inactive by the feed itself.
fn lunch_again(id: &str) -> NewDirectoryService {
    let mut s = directory_service(id, "Lunch Club", "org-b", "1100002");
    s.state = DirectoryState::Inactive;
    s
}

fn feed_poll(feed: &str, outcome: FeedOutcome, at: DateTime<Utc>) -> FeedPoll {
    FeedPoll {
        feed: feed.into(),
        polled_at: at,
        outcome,
        http_status: Some(200),
        imported: 3,
        skipped: 1,
        withdrawn: 0,
        faults: vec!["service x (page 1 [2]):\n  /name: \"name\" is a required property".into()],
        etag: Some("\"v1\"".into()),
        last_modified: Some("Wed, 21 Oct 2026 07:28:00 GMT".into()),
        next_poll_at: at + chrono::Duration::minutes(5),
    }
}

async fn feed_polls_replace_the_last_one_per_feed(store: Arc<dyn Store>) {
    assert!(store.feed_polls().await.expect("read").is_empty());
    let at = now();
    let council = feed_poll("council", FeedOutcome::Imported, at);
    let mut cvs = feed_poll("cvs", FeedOutcome::Failed, at);
    (cvs.http_status, cvs.etag, cvs.last_modified) = (None, None, None);
    store.record_feed_poll(&council).await.expect("stored");
    store.record_feed_poll(&cvs).await.expect("stored");
    assert_eq!(
        store.feed_polls().await.expect("read"),
        [council.clone(), cvs.clone()]
    );
    let later = at + chrono::Duration::minutes(5);
    let mut again = feed_poll("council", FeedOutcome::NotModified, later);
    (
        again.http_status,
        again.imported,
        again.skipped,
        again.faults,
    ) = (Some(304), 0, 0, vec![]);
    store.record_feed_poll(&again).await.expect("stored");
    assert_eq!(store.feed_polls().await.expect("read"), [again, cvs]);
}

/// A referral addressed to a directory service, its Task `requested`.
fn referral_to_service(service: &str, reference: &str) -> NewReferral {
    let mut r = referral("emis-demo", reference);
    r.record = format!(
        r#"{{"schema":"referral-record/v1","referral_id":"{}","service":{{"id":"{service}","name":"S"}}}}"#,
        r.referral_id
    );
    for res in r.resources.iter_mut().filter(|x| x.resource_type == "Task") {
        res.content = format!(
            r#"{{"resourceType":"Task","id":"{}","status":"requested"}}"#,
            res.id
        );
    }
    r
}

/// The change that moves the referral's Task to `status` (its version 2).
fn task_status(r: &NewReferral, status: &str) -> ReferralChange {
    let mut c = change(r, 1, 2);
    c.resources[0].content = format!(
        r#"{{"resourceType":"Task","id":"{}","status":"{status}"}}"#,
        r.task_id
    );
    c
}

async fn service_referrals_carry_their_first_answer(store: Arc<dyn Store>) {
    let since = now() - chrono::Duration::days(90);
    let accepted = create(&store, referral_to_service("knit", "SR-1")).await;
    let declined = create(&store, referral_to_service("knit", "SR-2")).await;
    let waiting = create(&store, referral_to_service("advice", "SR-3")).await;
    create(&store, referral("emis-demo", "SR-4")).await; // to an organisation: not listed
    store
        .apply_change(task_status(&accepted, "accepted"))
        .await
        .expect("accepted");
    store
        .apply_change(task_status(&declined, "rejected"))
        .await
        .expect("declined");
    let mut rows = store.service_referrals(since).await.expect("read");
    rows.sort_by(|a, b| {
        (a.service_id.as_str(), a.accepted).cmp(&(b.service_id.as_str(), b.accepted))
    });
    let seen: Vec<(&str, bool, bool)> = rows
        .iter()
        .map(|r| {
            (
                r.service_id.as_str(),
                r.first_response_at.is_some(),
                r.accepted,
            )
        })
        .collect();
    assert_eq!(
        seen,
        [
            ("advice", false, false),
            ("knit", true, false),
            ("knit", true, true)
        ]
    );
    assert!(rows
        .iter()
        .all(|r| r.created_at >= since && r.created_at <= waiting.created_at));
    let later = now() + chrono::Duration::seconds(1);
    assert!(store
        .service_referrals(later)
        .await
        .expect("read")
        .is_empty());
}

/// An onward referral is created by the change recorded on the referral it is based on, in its
/// transaction: a stale change stores no child; the child is found by `based_on` (its
/// ServiceRequest, and its Task by the parent's referral), audited as the link worker's, and its
/// email notice is claimed like any message, its recipient the organisation.
async fn an_onward_referral_is_stored_with_the_change_that_makes_it(store: Arc<dyn Store>) {
    let parent = create(&store, referral("emis-demo", "REF-ONWARD")).await;
    let mut child = referral("emis-demo", "unused");
    child.identifiers = vec![];
    child.patient_id = parent.patient_id.clone();
    child.vcs_id = vcs("valley-knit-natter");
    child.onward = Some((parent.referral_id.clone(), vcs("carers-count")));
    child.outbox = vec![message(
        TargetKind::Email,
        "valley-knit-natter",
        "referral.notice",
        1,
    )];
    let mut stale = change(&parent, 7, 2);
    stale.onward = Some(Box::new(child.clone()));
    assert_eq!(
        store.apply_change(stale).await.expect("stale"),
        ChangeOutcome::Conflict
    );
    let children = ReferralQuery {
        based_on: Some(parent.referral_id.to_string()),
        count: 10,
        ..ReferralQuery::default()
    };
    let emis = client("emis-demo");
    let found = store
        .search_referrals(&emis, &children)
        .await
        .expect("search");
    assert_eq!(found.total, 0, "a conflicting change stores no child");
    let mut onward = change(&parent, 1, 2);
    onward.onward = Some(Box::new(child.clone()));
    assert_eq!(
        store.apply_change(onward).await.expect("apply"),
        ChangeOutcome::Applied
    );
    let found = store
        .search_referrals(&emis, &children)
        .await
        .expect("search");
    assert_eq!(found.total, 1);
    assert_eq!(found.resources[0].id, child.referral_id.as_str());
    let tasks = ResourceQuery {
        based_on: Some(parent.referral_id.to_string()),
        count: 10,
        ..ResourceQuery::default()
    };
    let found = store
        .search_resources(&emis, "Task", &tasks)
        .await
        .expect("tasks");
    assert_eq!(found.total, 1);
    assert_eq!(found.resources[0].id, child.task_id.as_str());
    let other = client("tpp-demo");
    let hidden = store
        .search_referrals(&other, &children)
        .await
        .expect("other");
    assert_eq!(hidden.total, 0, "another client's children are not found");
    let state = store
        .load_referral(child.referral_id.as_str())
        .await
        .expect("load")
        .expect("the child");
    assert_eq!(state.vcs_id, vcs("valley-knit-natter"));
    let (_, records) = store
        .audit_events(&AuditQuery {
            entity: Some(("ServiceRequest".into(), child.referral_id.to_string())),
            count: 10,
            ..AuditQuery::default()
        })
        .await
        .expect("audit");
    assert!(
        records
            .iter()
            .any(|r| r.action == "onward" && r.actor.to_string() == "vcs:carers-count"),
        "{records:?}"
    );
    let t = now();
    let claimed = store
        .claim_due_messages(t, t + Duration::seconds(30), 10)
        .await
        .expect("claim");
    let notice = claimed
        .iter()
        .find(|m| m.target_kind == TargetKind::Email)
        .expect("the notice is claimed");
    assert_eq!(notice.referral_id, child.referral_id);
    assert_eq!(notice.recipient.to_string(), "vcs:valley-knit-natter");
    let record = outcome::record(notice, attempt(t, None), &NextStep::Delivered);
    assert_eq!(
        record.disclosure.as_ref().map(|d| d.action.as_str()),
        Some("notify")
    );
}

// --- Inbox accounts and sessions ----------------------------------------------------------

fn account_email(text: &str) -> sp_gateway::store::Email {
    text.parse().expect("email")
}

fn account(
    id: &str,
    address: &str,
    membership: sp_gateway::store::Membership,
) -> sp_gateway::store::Account {
    sp_gateway::store::Account {
        id: id.to_string(),
        email: account_email(address),
        membership,
        password_hash: format!("$argon2id$v=19$m=19456,t=2,p=1$salt-of-{id}$hash"),
        totp_secret: None,
        disabled: false,
        created_at: now(),
    }
}

fn member(organisation: &str, role: sp_gateway::store::OrgRole) -> sp_gateway::store::Membership {
    sp_gateway::store::Membership::Member {
        vcs: vcs(organisation),
        role,
    }
}

async fn accounts_are_unique_by_email_and_read_back_whole(store: Arc<dyn Store>) {
    let mut ann = account(
        "a1",
        "ann@carers.example",
        member("carers-count", sp_gateway::store::OrgRole::Staff),
    );
    ann.totp_secret = Some("JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP".into());
    assert!(store.create_account(ann.clone()).await.unwrap());
    // The same address (in any case) is taken.
    let twin = account(
        "a2",
        "ANN@carers.example",
        member("valley-knit-natter", sp_gateway::store::OrgRole::Manager),
    );
    assert!(!store.create_account(twin).await.unwrap());
    let operator = account(
        "a3",
        "ops@gateway.example",
        sp_gateway::store::Membership::Operator,
    );
    assert!(store.create_account(operator.clone()).await.unwrap());
    // A commissioner's account keeps its commissioner, in its sessions too.
    let icb = account(
        "a4",
        "icb@valley.example",
        sp_gateway::store::Membership::Commissioner("valley-icb".parse().unwrap()),
    );
    assert!(store.create_account(icb.clone()).await.unwrap());
    let session = sp_gateway::store::NewSession {
        digest: "icb-session".into(),
        account_id: icb.id.clone(),
        csrf_token: "csrf-icb".into(),
        at: now(),
    };
    store.create_session(session).await.unwrap();
    let live = store
        .session("icb-session", now() - Duration::minutes(1), now())
        .await
        .unwrap()
        .expect("the commissioner's session");
    assert_eq!(live.account, icb);
    assert_eq!(live.csrf_token, "csrf-icb");

    let read = store
        .account_by_email(&account_email("Ann@Carers.example"))
        .await
        .unwrap();
    assert_eq!(read.as_ref(), Some(&ann));
    assert_eq!(
        store
            .account_by_email(&account_email("nobody@x.example"))
            .await
            .unwrap(),
        None
    );
    let all = store.accounts().await.unwrap();
    assert_eq!(
        all,
        vec![ann.clone(), icb.clone(), operator.clone()],
        "by email"
    );

    assert!(store.set_account_disabled(&ann.email, true).await.unwrap());
    let disabled = store.account_by_email(&ann.email).await.unwrap().unwrap();
    assert!(disabled.disabled);
    assert!(store.set_account_disabled(&ann.email, false).await.unwrap());
    assert!(!store
        .set_account_disabled(&account_email("no@x.example"), true)
        .await
        .unwrap());

    assert!(store
        .set_password(&operator.email, "$argon2id$new")
        .await
        .unwrap());
    let changed = store
        .account_by_email(&operator.email)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(changed.password_hash, "$argon2id$new");
    assert!(!store
        .set_password(&account_email("no@x.example"), "x")
        .await
        .unwrap());
}

async fn sessions_idle_out_and_end_with_the_account(store: Arc<dyn Store>) {
    let ann = account(
        "a1",
        "ann@carers.example",
        member("carers-count", sp_gateway::store::OrgRole::Staff),
    );
    assert!(store.create_account(ann.clone()).await.unwrap());
    let start = now();
    let new = |digest: &str, at| sp_gateway::store::NewSession {
        digest: digest.into(),
        account_id: ann.id.clone(),
        csrf_token: format!("csrf-{digest}"),
        at,
    };
    store.create_session(new("d1", start)).await.unwrap();
    let idle = Duration::minutes(30);

    // Used within the idle time: found, with its account, and marked used.
    let later = start + Duration::minutes(20);
    let session = store
        .session("d1", later - idle, later)
        .await
        .unwrap()
        .expect("a live session");
    assert_eq!(session.account, ann);
    assert_eq!(session.csrf_token, "csrf-d1");
    assert_eq!(session.created_at, start);
    // Used 20 minutes ago, so still live 40 minutes after it started.
    let again = start + Duration::minutes(40);
    assert!(store
        .session("d1", again - idle, again)
        .await
        .unwrap()
        .is_some());
    // Idle for longer than 30 minutes: gone for good.
    let late = again + Duration::minutes(31);
    assert!(store
        .session("d1", late - idle, late)
        .await
        .unwrap()
        .is_none());
    assert!(store
        .session("d1", start - idle, start)
        .await
        .unwrap()
        .is_none());
    assert!(store
        .session("unknown", start - idle, start)
        .await
        .unwrap()
        .is_none());

    // Signing out ends one session.
    store.create_session(new("d2", start)).await.unwrap();
    store.end_session("d2").await.unwrap();
    assert!(store
        .session("d2", start - idle, start)
        .await
        .unwrap()
        .is_none());
    store.end_session("d2").await.unwrap();

    // Disabling the account ends its sessions; a new password does too.
    store.create_session(new("d3", start)).await.unwrap();
    assert!(store.set_account_disabled(&ann.email, true).await.unwrap());
    assert!(store
        .session("d3", start - idle, start)
        .await
        .unwrap()
        .is_none());
    assert!(store.set_account_disabled(&ann.email, false).await.unwrap());
    assert!(store
        .session("d3", start - idle, start)
        .await
        .unwrap()
        .is_none());
    store.create_session(new("d4", start)).await.unwrap();
    assert!(store
        .set_password(&ann.email, "$argon2id$other")
        .await
        .unwrap());
    assert!(store
        .session("d4", start - idle, start)
        .await
        .unwrap()
        .is_none());
}

// --- The operator pages' figures ---------------------------------------------------------------

async fn intake_refusals_are_counted_per_day_client_and_rule(store: Arc<dyn Store>) {
    let day: NaiveDate = "2026-12-01".parse().expect("day");
    let next = day + Duration::days(1);
    let rules = |ids: &[&str]| ids.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    let (emis, tpp) = (client("emis-demo"), client("tpp-demo"));
    let record = |day, client, ids: Vec<String>| {
        let store = store.clone();
        async move {
            store
                .record_refusal(day, &client, &ids)
                .await
                .expect("record")
        }
    };
    record(day, emis.clone(), rules(&["sp-nhs-number", "sp-consent"])).await;
    // A rule named twice in one refusal counts once.
    record(
        day,
        emis.clone(),
        rules(&["sp-nhs-number", "sp-nhs-number"]),
    )
    .await;
    record(next, tpp.clone(), rules(&["sp-consent"])).await;
    record(day + Duration::days(30), tpp.clone(), rules(&["sp-late"])).await;
    let counts = store.refusal_counts(day, next).await.expect("counts");
    let expected = vec![
        RefusalCount {
            day,
            client: emis.clone(),
            message_id: "sp-nhs-number".into(),
            refusals: 2,
        },
        RefusalCount {
            day,
            client: emis,
            message_id: "sp-consent".into(),
            refusals: 1,
        },
        RefusalCount {
            day: next,
            client: tpp,
            message_id: "sp-consent".into(),
            refusals: 1,
        },
    ];
    assert_eq!(counts, expected);
    assert!(store
        .refusal_counts(next + Duration::days(1), next + Duration::days(2))
        .await
        .expect("none")
        .is_empty());
}

async fn webhook_health_follows_its_attempts(store: Arc<dyn Store>) {
    assert!(store.endpoint_health().await.expect("none yet").is_empty());
    create(&store, referral("emis-demo", "REF-H")).await;
    let t = now();
    let lease = t + Duration::seconds(30);
    let claimed = store.claim_due_messages(t, lease, 1).await.expect("claim");
    let message = &claimed[0];
    for (i, status) in [Some(500), None].into_iter().enumerate() {
        let at = t + Duration::seconds(i as i64);
        let next = NextStep::RetryAt(at);
        let mut tried = attempt(at, status);
        if status.is_none() {
            tried.error = Some("connection refused".into());
        }
        store
            .record_attempt(&message.id, outcome::record(message, tried, &next))
            .await
            .expect("failed attempt");
    }
    let failing = store.endpoint_health().await.expect("health");
    assert_eq!(
        failing,
        vec![EndpointHealth {
            vcs_id: "carers-count".into(),
            last_success_at: None,
            last_failure_at: Some(t + Duration::seconds(1)),
            last_error: Some("connection refused".into()),
            failure_streak: 2,
        }]
    );
    let later = t + Duration::seconds(5);
    let again = store
        .claim_due_messages(later, later + Duration::seconds(30), 1)
        .await
        .expect("due");
    let delivered_at = t + Duration::seconds(2);
    store
        .record_attempt(
            &again[0].id,
            outcome::record(
                &again[0],
                attempt(delivered_at, Some(200)),
                &NextStep::Delivered,
            ),
        )
        .await
        .expect("delivered");
    let healthy = store.endpoint_health().await.expect("health");
    assert_eq!(healthy[0].failure_streak, 0);
    assert_eq!(healthy[0].last_success_at, Some(delivered_at));
    assert_eq!(healthy[0].last_error.as_deref(), Some("connection refused"));
    let counts = store.delivery_counts().await.expect("counts");
    assert!(
        counts.contains(&DeliveryCount {
            target_kind: TargetKind::Vcs,
            target: "carers-count".into(),
            state: DeliveryState::Delivered,
            messages: 1,
        }),
        "{counts:?}"
    );
}

async fn audit_records_filter_by_actor_and_action_newest_first(store: Arc<dyn Store>) {
    let access = |actor: Actor, action: &str, id: &str| Access {
        at: now(),
        actor,
        action: action.into(),
        resource_type: "Account".into(),
        resource_id: Some(id.into()),
        patient_id: None,
        outcome: "success".into(),
        correlation_id: None,
    };
    let ann = Actor::Person(uuid::Uuid::new_v4().to_string());
    store
        .record_access(access(ann.clone(), "login", "a1"))
        .await
        .expect("1");
    store
        .record_access(access(Actor::Operator, "login", "a2"))
        .await
        .expect("2");
    store
        .record_access(access(ann.clone(), "logout", "a3"))
        .await
        .expect("3");
    store
        .record_access(access(ann.clone(), "login", "a4"))
        .await
        .expect("4");
    let (total, records) = store
        .audit_events(&AuditQuery {
            actor: Some(ann.to_string()),
            action: Some("login".into()),
            newest_first: true,
            count: 10,
            ..AuditQuery::default()
        })
        .await
        .expect("filtered");
    assert_eq!(total, 2);
    let ids: Vec<_> = records
        .iter()
        .filter_map(|r| r.resource_id.as_deref())
        .collect();
    assert_eq!(ids, ["a4", "a1"]);
}
// --- Reports -------------------------------------------------------------------------------

fn at(text: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(text)
        .expect("a time")
        .with_timezone(&Utc)
}

/// A referral received at `received`, whose record names `practice` and `needs` (JSON), its
/// Task `requested`.
fn reported_referral(reference: &str, received: &str, practice: &str, needs: &str) -> NewReferral {
    let mut r = referral("emis-demo", reference);
    r.created_at = at(received);
    r.record = format!(
        r#"{{"schema":"referral-record/v1","referral_id":"{}","referrer":{{"practice_ods":{practice}}},"needs":{needs}}}"#,
        r.referral_id
    );
    for res in r.resources.iter_mut().filter(|x| x.resource_type == "Task") {
        res.content = format!(
            r#"{{"resourceType":"Task","id":"{}","status":"requested"}}"#,
            res.id
        );
    }
    r
}

/// The change that records the Task's next version with `status` (and a businessStatus code).
fn step(
    r: &NewReferral,
    version: i64,
    status: &str,
    business: Option<&str>,
    when: &str,
) -> ReferralChange {
    let mut c = change(r, version - 1, version);
    let business = business
        .map(|code| format!(r#","businessStatus":{{"coding":[{{"code":"{code}"}}]}}"#))
        .unwrap_or_default();
    c.resources[0].content = format!(
        r#"{{"resourceType":"Task","id":"{}","status":"{status}"{business}}}"#,
        r.task_id
    );
    c.at = at(when);
    c
}

fn score(r: &NewReferral, timepoint: &str, value: i64, effective: &str) -> NewResource {
    let id = FhirId::generate();
    NewResource {
        resource_type: "Observation".into(),
        id: id.clone(),
        version_id: 1,
        content: serde_json::json!({
            "resourceType": "Observation", "id": id.to_string(), "status": "final",
            "code": {"coding": [{"system": "https://fhir.sp-gateway.uk/CodeSystem/wellbeing-measure", "code": "wemwbs-total"}]},
            "effectiveDateTime": effective,
            "valueInteger": value,
            "component": [{
                "code": {"coding": [{"system": "https://fhir.sp-gateway.uk/CodeSystem/wellbeing-measure", "code": "assessment-timepoint"}]},
                "valueCodeableConcept": {"coding": [{"system": "https://fhir.sp-gateway.uk/CodeSystem/assessment-timepoint", "code": timepoint}]}
            }]
        })
        .to_string(),
        patient_id: Some(r.patient_id.to_string()),
        code: Some("https://fhir.sp-gateway.uk/CodeSystem/wellbeing-measure|wemwbs-total".into()),
    }
}

/// The reports read, per referral received in the period, its practice, organisation and
/// first categorised need, and the first time each status was recorded (a repeated status
/// keeps its first time); and the current wellbeing scores with their timepoints. Referrals
/// received outside the period are not read.
async fn reports_read_grouping_keys_first_status_times_and_scores(store: Arc<dyn Store>) {
    use sp_gateway::domain::NeedCategory;
    use sp_gateway::translate::instruments::Timepoint;
    let followed = create(
        &store,
        reported_referral(
            "REP-1",
            "2026-03-02T10:00:00Z",
            r#""W97001""#,
            r#"[{"code":"x","category":null},{"code":"y","category":"carers"},{"category":"food"}]"#,
        ),
    )
    .await;
    let waiting = create(
        &store,
        reported_referral("REP-2", "2026-03-03T10:00:00Z", "null", "[]"),
    )
    .await;
    create(
        &store,
        reported_referral("REP-3", "2026-04-01T00:00:00Z", r#""W97001""#, "[]"),
    )
    .await;
    let steps = [
        (2, "accepted", None, "2026-03-04T10:00:00Z"),
        (3, "in-progress", Some("contacted"), "2026-03-07T10:00:00Z"),
        (4, "in-progress", Some("contacted"), "2026-03-11T10:00:00Z"),
        (5, "completed", Some("completed"), "2026-03-22T10:00:00Z"),
    ];
    for (version, status, business, when) in steps {
        let mut c = step(&followed, version, status, business, when);
        if version == 5 {
            c.resources.push(score(
                &followed,
                "baseline",
                40,
                "2026-03-05T10:00:00+01:00",
            ));
            c.resources.push(score(
                &followed,
                "follow-up",
                47,
                "2026-03-21T10:00:00+01:00",
            ));
        }
        assert_eq!(
            store.apply_change(c).await.expect("apply"),
            ChangeOutcome::Applied
        );
    }
    // Declined with a coded reason: the code is read from the Task's statusReason.
    let declined = create(
        &store,
        reported_referral("REP-4", "2026-03-20T10:00:00Z", "null", "[]"),
    )
    .await;
    let mut decline = step(&declined, 2, "rejected", None, "2026-03-21T10:00:00Z");
    decline.resources[0].content = format!(
        r#"{{"resourceType":"Task","id":"{}","status":"rejected","statusReason":{{"text":"Full","coding":[{{"system":"https://fhir.sp-gateway.uk/CodeSystem/decline-reason","code":"no-capacity"}}]}}}}"#,
        declined.task_id
    );
    assert_eq!(
        store.apply_change(decline).await.expect("apply"),
        ChangeOutcome::Applied
    );
    let (from, to) = (at("2026-03-01T00:00:00Z"), at("2026-04-01T00:00:00Z"));
    let mut referrals = store.reported_referrals(from, to).await.expect("read");
    referrals.sort_by_key(|r| r.keys.received_at);
    assert_eq!(referrals.len(), 3, "REP-3 is received after the period");
    let third = &referrals[2];
    assert_eq!(third.keys.referral_id, declined.referral_id.to_string());
    assert_eq!(
        third.decline_reason,
        Some(sp_gateway::translate::decline_reason::DeclineReason::NoCapacity)
    );
    let mut recorded = third.first_recorded.clone();
    recorded.sort_by_key(|(_, when)| *when);
    assert_eq!(
        recorded,
        [
            (VcsStatus::Received, at("2026-03-20T10:00:00Z")),
            (VcsStatus::Declined, at("2026-03-21T10:00:00Z")),
        ]
    );
    let first = &referrals[0];
    assert_eq!(first.keys.referral_id, followed.referral_id.to_string());
    assert_eq!(first.keys.received_at, at("2026-03-02T10:00:00Z"));
    assert_eq!(
        first.keys.practice.as_ref().map(|p| p.as_str()),
        Some("W97001")
    );
    assert_eq!(first.keys.organisation.as_str(), "carers-count");
    assert_eq!(
        first.keys.need,
        Some(NeedCategory::Carers),
        "the first categorised need"
    );
    assert_eq!(first.decline_reason, None);
    let mut recorded = first.first_recorded.clone();
    recorded.sort_by_key(|(_, when)| *when);
    assert_eq!(
        recorded,
        [
            (VcsStatus::Received, at("2026-03-02T10:00:00Z")),
            (VcsStatus::Accepted, at("2026-03-04T10:00:00Z")),
            (VcsStatus::Contacted, at("2026-03-07T10:00:00Z")),
            (VcsStatus::Completed, at("2026-03-22T10:00:00Z")),
        ]
    );
    let second = &referrals[1];
    assert_eq!(second.keys.referral_id, waiting.referral_id.to_string());
    assert_eq!(second.keys.practice, None);
    assert_eq!(second.keys.need, None);
    assert_eq!(
        second.first_recorded,
        [(VcsStatus::Received, at("2026-03-03T10:00:00Z"))]
    );

    let mut scores = store.reported_scores(from, to).await.expect("scores");
    scores.sort_by_key(|s| s.effective);
    let seen: Vec<(&str, Timepoint, i64, DateTime<Utc>)> = scores
        .iter()
        .map(|s| (s.measure.as_str(), s.timepoint, s.value, s.effective))
        .collect();
    assert_eq!(
        seen,
        [
            (
                "wemwbs-total",
                Timepoint::Baseline,
                40,
                at("2026-03-05T09:00:00Z")
            ),
            (
                "wemwbs-total",
                Timepoint::FollowUp,
                47,
                at("2026-03-21T09:00:00Z")
            ),
        ]
    );
    assert!(scores
        .iter()
        .all(|s| s.keys.referral_id == followed.referral_id.to_string()));
    let later = (at("2026-04-01T00:00:00Z"), at("2026-05-01T00:00:00Z"));
    assert!(store
        .reported_scores(later.0, later.1)
        .await
        .expect("scores")
        .is_empty());
}
