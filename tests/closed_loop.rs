//! The whole loop over real HTTP: a GP refers, the VCS organisation receives a signed webhook and
//! reports back, and the GP reads the Task, the ServiceRequest and the Observations, and hears of
//! every change through a rest-hook Subscription.

mod common;

use std::time::Duration;

use common::receiver::Receiver;
use common::*;
use serde_json::{json, Value};

const VCS_TOKEN: &str = "demo-vcs-carers-count";
const OTHER_VCS_TOKEN: &str = "demo-vcs-knit-natter";

fn vcs_get(gateway: &Gateway, token: &str, path: &str) -> (u16, Value) {
    send(gateway.http.get(gateway.url(path)).bearer_auth(token))
}

fn subscribe(gateway: &Gateway, criteria: &str, endpoint: &str) -> String {
    let subscription = json!({
        "resourceType": "Subscription",
        "status": "requested",
        "reason": "Follow our social-prescribing referrals",
        "criteria": criteria,
        "channel": {"type": "rest-hook", "endpoint": endpoint, "payload": "application/fhir+json",
                    "header": ["X-Listener-Token: gp-listener-token"]}
    });
    let (status, created) = send(gateway.post_json("/fhir/Subscription", &subscription));
    assert_eq!(status, 201, "{created}");
    assert_eq!(created["status"], "active");
    created["id"].as_str().unwrap().to_string()
}

fn swemwbs(timepoint: &str, answers: &[u8]) -> Value {
    json!({"instrument": "swemwbs", "timepoint": timepoint, "answers": answers, "occurred_at": "2026-06-01T10:00:00+01:00"})
}

fn status(value: &str) -> Value {
    json!({"status": value, "occurred_at": "2026-05-10T14:00:00+01:00", "note": "Spoke on the phone"})
}

#[test]
fn the_whole_loop() {
    let vcs_receiver = Receiver::start();
    let gp_listener = Receiver::start();
    let base = vcs_receiver.base.clone();
    let gateway = Gateway::start_with(move |c| deliver_to(c, &base, &["1s", "1s", "1s"]), &[]);
    subscribe(
        &gateway,
        "Task",
        &format!("{}/fhir-notify", gp_listener.base),
    );
    subscribe(
        &gateway,
        "Observation",
        &format!("{}/fhir-notify", gp_listener.base),
    );

    // GP → gateway → signed webhook to the charity.
    let referral = gateway.refer("REF-LOOP");
    let hooks = vcs_receiver.wait_for(Duration::from_secs(30), "the referral webhook", |r| {
        !r.is_empty()
    });
    standardwebhooks::Webhook::new(&demo_secret("carers-count"))
        .unwrap()
        .verify(&hooks[0].body, &hooks[0].http_headers())
        .unwrap();

    // The charity sees it in its list and reports back.
    let (code, listed) = vcs_get(&gateway, VCS_TOKEN, "/vcs/v1/referrals?status=received");
    assert_eq!(code, 200, "{listed}");
    assert!(listed["items"]
        .as_array()
        .unwrap()
        .iter()
        .any(|i| i["referral_id"] == referral.as_str()));
    for step in ["accepted", "attended"] {
        let (code, body) = vcs_post(
            &gateway,
            VCS_TOKEN,
            &format!("/vcs/v1/referrals/{referral}/status"),
            &status(step),
        );
        assert_eq!(code, 200, "{step}: {body}");
    }
    let (code, baseline) = vcs_post(
        &gateway,
        VCS_TOKEN,
        &format!("/vcs/v1/referrals/{referral}/outcomes"),
        &swemwbs("baseline", &[2, 2, 3, 2, 3, 2, 2]),
    );
    assert_eq!(code, 201, "{baseline}");
    let (code, follow_up) = vcs_post(
        &gateway,
        VCS_TOKEN,
        &format!("/vcs/v1/referrals/{referral}/outcomes"),
        &swemwbs("follow-up", &[4, 3, 4, 4, 3, 4, 4]),
    );
    assert_eq!(code, 201, "{follow_up}");
    let (code, done) = vcs_post(
        &gateway,
        VCS_TOKEN,
        &format!("/vcs/v1/referrals/{referral}/status"),
        &status("completed"),
    );
    assert_eq!(code, 200, "{done}");

    // The GP reads the outcome as FHIR.
    let (_, tasks) = send(gateway.get(&format!("/fhir/Task?focus=ServiceRequest/{referral}")));
    assert_eq!(tasks["total"], 1, "{tasks}");
    let task = &tasks["entry"][0]["resource"];
    assert_eq!(task["status"], "completed");
    assert_eq!(
        task["focus"]["reference"],
        format!("ServiceRequest/{referral}")
    );
    assert_eq!(task["output"].as_array().map(Vec::len), Some(2), "{task}");
    let (_, sr) = send(gateway.get(&format!("/fhir/ServiceRequest/{referral}")));
    assert_eq!(sr["status"], "completed");
    let (_, observations) = send(gateway.get(&format!(
        "/fhir/Observation?based-on=ServiceRequest/{referral}"
    )));
    assert_eq!(observations["total"], 2, "{observations}");
    for entry in observations["entry"].as_array().unwrap() {
        let observation = &entry["resource"];
        assert_eq!(
            observation["basedOn"][0]["reference"],
            format!("ServiceRequest/{referral}")
        );
        assert!(observation["valueInteger"].is_i64(), "{observation}");
    }
    // By patient and code, as a GP system's outcome view would ask.
    let first = &observations["entry"][0]["resource"];
    let patient = first["subject"]["reference"].as_str().unwrap().to_string();
    let coding = &first["code"]["coding"][0];
    let code = format!(
        "{}|{}",
        coding["system"].as_str().unwrap(),
        coding["code"].as_str().unwrap()
    );
    let query: String = form_urlencoded::Serializer::new(String::new())
        .append_pair("patient", &patient)
        .append_pair("code", &code)
        .finish();
    let (_, by_code) = send(gateway.get(&format!("/fhir/Observation?{query}")));
    assert_eq!(by_code["total"], 2, "{by_code}");
    let (_, history) = send(gateway.get(&format!("/fhir/ServiceRequest/{referral}/_history")));
    assert_eq!(history["type"], "history");
    assert_eq!(history["total"], 2, "created, then completed: {history}");
    let (_, with_loop) = send(gateway.get(
        "/fhir/ServiceRequest?identifier=REF-LOOP&_revinclude=Task:focus&_revinclude=Observation:based-on",
    ));
    let included = with_loop["entry"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["search"]["mode"] == "include")
        .count();
    assert_eq!(included, 3, "{with_loop}");

    // The GP's listener heard every Task change and both Observations, signed with the GP client's secret.
    let heard = gp_listener.wait_for(Duration::from_secs(30), "subscription notifications", |r| {
        r.iter()
            .filter(|n| n.json()["resourceType"] == "Observation")
            .count()
            >= 2
            && r.iter()
                .any(|n| n.json()["resourceType"] == "Task" && n.json()["status"] == "completed")
    });
    let verifier = standardwebhooks::Webhook::new(&demo_secret("emis-demo")).unwrap();
    for notification in &heard {
        verifier
            .verify(&notification.body, &notification.http_headers())
            .unwrap();
        assert_eq!(notification.header("x-listener-token"), "gp-listener-token");
        assert_eq!(notification.header("content-type"), "application/fhir+json");
    }
    // Every action of the loop left an AuditEvent about this patient, valid FHIR R4.
    let (code, audit) = send(
        gateway
            .http
            .get(gateway.url(&format!(
                    "/fhir/AuditEvent?{}",
                    form_urlencoded::Serializer::new(String::new())
                        .append_pair("patient", &patient)
                        // Each search now records every resource it returned: one page of the
                        // default size no longer holds the whole loop.
                        .append_pair("_count", "500")
                        .finish()
                )))
            .bearer_auth(ADMIN_TOKEN),
    );
    assert_eq!(code, 200, "{audit}");
    let events: Vec<&Value> = audit["entry"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| &e["resource"])
        .collect();
    let subtypes: Vec<&str> = events
        .iter()
        .filter_map(|e| e["subtype"][0]["code"].as_str())
        .collect();
    assert!(
        events.iter().any(|e| e["type"]["code"] == "110106"),
        "the webhook disclosure is audited"
    );
    for expected in [
        "create",
        "read",
        "search-type",
        "update",
        "history-instance",
    ] {
        assert!(
            subtypes.contains(&expected),
            "no {expected} in {subtypes:?}"
        );
    }
    let actors: Vec<&str> = events
        .iter()
        .filter_map(|e| e["agent"][0]["who"]["identifier"]["value"].as_str())
        .collect();
    assert!(
        actors.contains(&"emis-demo") && actors.contains(&"vcs:carers-count"),
        "{actors:?}"
    );
    let validator = sp_validator::Validator::bundled().unwrap();
    for event in &events {
        let errors: Vec<_> = validator
            .validate(
                event,
                &sp_validator::Options {
                    profiles_by_type: &[],
                    root_profiles: &[],
                },
            )
            .into_iter()
            .filter(|i| i.is_error())
            .collect();
        assert!(errors.is_empty(), "{event}: {errors:?}");
    }
    assert_eq!(
        send(gateway.get("/fhir/AuditEvent")).0,
        401,
        "GP clients cannot read the audit trail"
    );
    let task_statuses: Vec<String> = heard
        .iter()
        .filter(|n| n.json()["resourceType"] == "Task")
        .map(|n| n.json()["status"].as_str().unwrap_or("").to_string())
        .collect();
    assert!(
        task_statuses.contains(&"accepted".to_string())
            && task_statuses.contains(&"in-progress".to_string()),
        "{task_statuses:?}"
    );
}

#[test]
fn forbidden_paths_and_bad_reports() {
    let receiver = Receiver::start();
    let base = receiver.base.clone();
    let gateway = Gateway::start_with(move |c| deliver_to(c, &base, &["1s"]), &[]);
    let referral = gateway.refer("REF-RULES");

    // Another organisation, or another GP client, finds nothing.
    assert_eq!(
        vcs_get(
            &gateway,
            OTHER_VCS_TOKEN,
            &format!("/vcs/v1/referrals/{referral}")
        )
        .0,
        404
    );
    assert_eq!(
        vcs_post(
            &gateway,
            OTHER_VCS_TOKEN,
            &format!("/vcs/v1/referrals/{referral}/status"),
            &status("accepted")
        )
        .0,
        404
    );
    assert_eq!(vcs_get(&gateway, "not-a-token", "/vcs/v1/referrals").0, 401);
    let (_, tasks) = send(
        gateway
            .http
            .get(gateway.url(&format!("/fhir/Task?focus=ServiceRequest/{referral}")))
            .bearer_auth(OTHER_GP_TOKEN),
    );
    assert_eq!(tasks["total"], 0);
    let (_, own) = send(gateway.get(&format!("/fhir/Task?focus=ServiceRequest/{referral}")));
    let task_id = own["entry"][0]["resource"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(own["entry"][0]["resource"]["status"], "requested");
    assert_eq!(
        send(
            gateway
                .http
                .get(gateway.url(&format!("/fhir/Task/{task_id}")))
                .bearer_auth(OTHER_GP_TOKEN)
        )
        .0,
        404
    );

    // Bad payloads are 422 problem+json naming the field.
    let (code, problem) = vcs_post(
        &gateway,
        VCS_TOKEN,
        &format!("/vcs/v1/referrals/{referral}/status"),
        &json!({"status": "declined", "occurred_at": "2026-05-10T14:00:00Z"}),
    );
    assert_eq!(code, 422, "{problem}");
    assert!(
        problem["errors"].to_string().contains("reason"),
        "{problem}"
    );
    let (code, problem) = vcs_post(
        &gateway,
        VCS_TOKEN,
        &format!("/vcs/v1/referrals/{referral}/outcomes"),
        &swemwbs("baseline", &[2, 2, 3, 2, 6, 2, 2]),
    );
    assert_eq!(code, 422, "{problem}");
    assert!(
        problem["errors"].to_string().contains("answers[4]"),
        "{problem}"
    );
    let (code, _) = vcs_post(
        &gateway,
        VCS_TOKEN,
        &format!("/vcs/v1/referrals/{referral}/outcomes"),
        &json!({"instrument": "ons4", "timepoint": "baseline", "answers": [7, 8, 6], "occurred_at": "2026-06-01T10:00:00Z"}),
    );
    assert_eq!(code, 422);
    let (code, _) = vcs_post(
        &gateway,
        VCS_TOKEN,
        &format!("/vcs/v1/referrals/{referral}/status"),
        &json!({"status": "teleported"}),
    );
    assert_eq!(code, 422);

    // Impossible transitions are 409.
    assert_eq!(
        vcs_post(
            &gateway,
            VCS_TOKEN,
            &format!("/vcs/v1/referrals/{referral}/status"),
            &status("accepted")
        )
        .0,
        200
    );
    assert_eq!(
        vcs_post(
            &gateway,
            VCS_TOKEN,
            &format!("/vcs/v1/referrals/{referral}/status"),
            &status("completed")
        )
        .0,
        200
    );
    let (code, problem) = vcs_post(
        &gateway,
        VCS_TOKEN,
        &format!("/vcs/v1/referrals/{referral}/status"),
        &status("accepted"),
    );
    assert_eq!(code, 409, "{problem}");
    assert_eq!(problem["status"], 409);
}

#[test]
fn idempotency_keys_replay_the_first_answer() {
    let receiver = Receiver::start();
    let base = receiver.base.clone();
    let gateway = Gateway::start_with(move |c| deliver_to(c, &base, &["1s"]), &[]);
    let referral = gateway.refer("REF-IDEMPOTENT");
    let post = |body: &Value, key: &str| {
        send(
            gateway
                .http
                .post(gateway.url(&format!("/vcs/v1/referrals/{referral}/outcomes")))
                .bearer_auth(VCS_TOKEN)
                .header("Idempotency-Key", key)
                .json(body),
        )
    };
    let report = json!({"instrument": "ons4", "timepoint": "baseline", "answers": [6, 7, 5, 3], "occurred_at": "2026-06-01T10:00:00Z"});
    let (first_code, first) = post(&report, "key-1");
    assert_eq!(first_code, 201, "{first}");
    assert_eq!(
        first["observation_ids"].as_array().map(Vec::len),
        Some(4),
        "ONS4 gives four Observations"
    );
    let (again_code, again) = post(&report, "key-1");
    assert_eq!((again_code, &again), (201, &first));
    let (_, observations) = send(gateway.get(&format!(
        "/fhir/Observation?based-on=ServiceRequest/{referral}"
    )));
    assert_eq!(observations["total"], 4, "the repeat created nothing");
    let (code, _) = post(
        &json!({"instrument": "ons4", "timepoint": "follow-up", "answers": [8, 8, 8, 2], "occurred_at": "2026-07-01T10:00:00Z"}),
        "key-1",
    );
    assert_eq!(code, 422, "a key reused for another body is refused");
}

/// A key names one request on one referral: the same key on another referral is that
/// referral's own update (not a replay of the first answer); the same key with another body on
/// the same referral is refused.
#[test]
fn idempotency_keys_are_scoped_to_the_referral() {
    let receiver = Receiver::start();
    let base = receiver.base.clone();
    let gateway = Gateway::start_with(move |c| deliver_to(c, &base, &["1s"]), &[]);
    let (first, second) = (gateway.refer("REF-KEY-1"), gateway.refer("REF-KEY-2"));
    let post = |referral: &str, body: &Value| {
        send(
            gateway
                .http
                .post(gateway.url(&format!("/vcs/v1/referrals/{referral}/status")))
                .bearer_auth(VCS_TOKEN)
                .header("Idempotency-Key", "daily-sync-1")
                .json(body),
        )
    };
    let (code, answer) = post(&first, &status("accepted"));
    assert_eq!(code, 200, "{answer}");
    assert_eq!(answer["referral_id"], first.as_str());
    let (code, answer) = post(&second, &status("accepted"));
    assert_eq!(code, 200, "{answer}");
    assert_eq!(
        answer["referral_id"],
        second.as_str(),
        "not the first referral's answer"
    );
    let (_, listed) = vcs_get(&gateway, VCS_TOKEN, &format!("/vcs/v1/referrals/{second}"));
    assert_eq!(
        listed["status"], "accepted",
        "the second referral's update was applied"
    );
    let (code, problem) = post(&first, &status("in-progress"));
    assert_eq!(code, 422, "{problem}");
    assert_eq!(
        problem["errors"][0]["field"], "Idempotency-Key",
        "{problem}"
    );
}

/// Concurrent requests with the same key: one is applied and every other gets its answer
/// (never a 500, never a second set of Observations).
#[test]
fn concurrent_duplicates_get_the_first_answer() {
    let receiver = Receiver::start();
    let base = receiver.base.clone();
    let gateway = Gateway::start_with(move |c| deliver_to(c, &base, &["1s"]), &[]);
    let referral = gateway.refer("REF-KEY-RACE");
    let report = json!({"instrument": "ons4", "timepoint": "baseline", "answers": [6, 7, 5, 3], "occurred_at": "2026-06-01T10:00:00Z"});
    let answers: Vec<(u16, Value)> = std::thread::scope(|scope| {
        let racers: Vec<_> = (0..8)
            .map(|_| {
                scope.spawn(|| {
                    send(
                        gateway
                            .http
                            .post(gateway.url(&format!("/vcs/v1/referrals/{referral}/outcomes")))
                            .bearer_auth(VCS_TOKEN)
                            .header("Idempotency-Key", "race-1")
                            .json(&report),
                    )
                })
            })
            .collect();
        racers
            .into_iter()
            .map(|r| r.join().expect("racer"))
            .collect()
    });
    for (code, answer) in &answers {
        assert_eq!((*code, answer), (201, &answers[0].1), "{answers:?}");
    }
    let (_, observations) = send(gateway.get(&format!(
        "/fhir/Observation?based-on=ServiceRequest/{referral}"
    )));
    assert_eq!(
        observations["total"], 4,
        "one report applied: {observations}"
    );
}

#[test]
fn the_gp_cancels_with_version_checking() {
    let receiver = Receiver::start();
    let base = receiver.base.clone();
    let gateway = Gateway::start_with(move |c| deliver_to(c, &base, &["1s"]), &[]);
    let referral = gateway.refer("REF-CANCEL");
    receiver.wait_for(Duration::from_secs(30), "the referral webhook", |r| {
        !r.is_empty()
    });
    let patch = json!([{"op": "replace", "path": "/status", "value": "revoked"}]);
    let patch_request = |version: &str| {
        gateway
            .http
            .patch(gateway.url(&format!("/fhir/ServiceRequest/{referral}")))
            .bearer_auth(GP_TOKEN)
            .header("content-type", "application/json-patch+json")
            .header("if-match", version)
            .body(patch.to_string())
    };
    let (code, outcome) = send(patch_request("W/\"7\""));
    assert_eq!(code, 412, "{outcome}");
    let (code, revoked) = send(patch_request("W/\"1\""));
    assert_eq!(code, 200, "{revoked}");
    assert_eq!(revoked["status"], "revoked");
    assert_eq!(revoked["meta"]["versionId"], "2");

    let cancelled = receiver.wait_for(Duration::from_secs(30), "referral.cancelled", |r| {
        r.iter().any(|h| h.json()["type"] == "referral.cancelled")
    });
    let event = cancelled
        .iter()
        .find(|h| h.json()["type"] == "referral.cancelled")
        .unwrap();
    assert_eq!(event.json()["data"]["referral_id"], referral.as_str());
    assert_eq!(event.json()["sequence"], 2);
    let (_, seen) = vcs_get(
        &gateway,
        VCS_TOKEN,
        &format!("/vcs/v1/referrals/{referral}"),
    );
    assert_eq!(seen["status"], "cancelled");
    assert_eq!(
        vcs_post(
            &gateway,
            VCS_TOKEN,
            &format!("/vcs/v1/referrals/{referral}/status"),
            &status("attended")
        )
        .0,
        409
    );
    let (_, tasks) = send(gateway.get(&format!("/fhir/Task?focus=ServiceRequest/{referral}")));
    assert_eq!(tasks["entry"][0]["resource"]["status"], "cancelled");

    // PUT works the same way; changing anything but the status is refused.
    let other = gateway.refer("REF-CANCEL-2");
    let (_, mut current) = send(gateway.get(&format!("/fhir/ServiceRequest/{other}")));
    current["priority"] = json!("urgent");
    let (code, _) = send(
        gateway
            .http
            .put(gateway.url(&format!("/fhir/ServiceRequest/{other}")))
            .bearer_auth(GP_TOKEN)
            .header("content-type", FHIR_JSON)
            .body(current.to_string()),
    );
    assert_eq!(code, 422);
    current.as_object_mut().unwrap().remove("priority");
    current["status"] = json!("revoked");
    let (code, body) = send(
        gateway
            .http
            .put(gateway.url(&format!("/fhir/ServiceRequest/{other}")))
            .bearer_auth(GP_TOKEN)
            .header("content-type", FHIR_JSON)
            .header("if-match", "W/\"1\"")
            .body(current.to_string()),
    );
    assert_eq!(code, 200, "{body}");
}

#[test]
fn the_vcs_api_describes_itself() {
    let gateway = Gateway::start();
    let (code, openapi) = send(gateway.http.get(gateway.url("/vcs/v1/openapi.json")));
    assert_eq!(code, 200);
    assert!(openapi["openapi"].as_str().unwrap().starts_with('3'));
    assert_eq!(openapi["servers"][0]["url"], "/vcs/v1");
    for path in [
        "/referrals",
        "/referrals/{referral_id}",
        "/referrals/{referral_id}/status",
        "/referrals/{referral_id}/outcomes",
    ] {
        assert!(openapi["paths"].get(path).is_some(), "{path} missing");
    }
}

/// Logs carry our ids and correlation ids, never who the patient is: drive the whole loop with
/// every log level on and look for each identifying value of the patient in what was logged.
#[test]
fn trace_logs_carry_no_patient_data() {
    let receiver = Receiver::start();
    let base = receiver.base.clone();
    let gateway = Gateway::start_capturing_logs(move |c| deliver_to(c, &base, &["1s"]), "trace");
    let referral = gateway.refer("REF-PRIVATE");
    receiver.wait_for(Duration::from_secs(30), "the referral webhook", |r| {
        !r.is_empty()
    });
    assert_eq!(
        vcs_post(
            &gateway,
            VCS_TOKEN,
            &format!("/vcs/v1/referrals/{referral}/status"),
            &status("accepted")
        )
        .0,
        200
    );
    assert_eq!(
        vcs_post(
            &gateway,
            VCS_TOKEN,
            &format!("/vcs/v1/referrals/{referral}/outcomes"),
            &swemwbs("baseline", &[2, 2, 3, 2, 3, 2, 2])
        )
        .0,
        201
    );
    let mut invalid = contained_referral("REF-PRIVATE-2");
    invalid["contained"][0]["birthDate"] = json!("1948-13-40");
    assert_eq!(
        send(gateway.post_json("/fhir/ServiceRequest", &invalid)).0,
        422
    );
    let _ = send(gateway.get("/fhir/ServiceRequest?identifier=REF-PRIVATE"));
    std::thread::sleep(Duration::from_millis(500));

    let logs = gateway.logs();
    assert!(
        logs.lines().count() > 20,
        "trace logging was on: {} lines",
        logs.lines().count()
    );
    assert!(logs.contains(&referral), "our ids are logged");
    for private in [
        "Llywelyn",
        "Siân",
        "Sia\\u0302n",
        "9000000009",
        "07700 900123",
        "1948-03-02",
        "1948-13-40",
        "CF10 1AA",
        "Heol y Frenhines",
        "Caerdydd",
        "Prefers afternoon calls",
        "Caring for her husband",
        "Rhian",
        "Spoke on the phone",
    ] {
        assert!(!logs.contains(private), "the log contains {private:?}");
    }
}

/// A referral that arrived as a transaction Bundle references stored resources by id; its status
/// changes must still go through (they once failed the profile's resolution rules).
#[test]
fn bundled_referrals_complete_and_cancel() {
    let receiver = Receiver::start();
    let base = receiver.base.clone();
    let gateway = Gateway::start_with(move |c| deliver_to(c, &base, &["1s"]), &[]);
    for (reference, last) in [("REF-TX-DONE", "completed"), ("REF-TX-CANCEL", "cancelled")] {
        let mut bundle = transaction_referral(reference);
        // A declared profile must not bring the bundle-only resolution rules back at a status change.
        bundle["entry"][5]["resource"]["meta"] =
            json!({"profile": [sp_validator::SP_SERVICE_REQUEST]});
        let (code, response) = send(gateway.post_json("/fhir", &bundle));
        assert_eq!(code, 200, "{response}");
        let location = response["entry"][5]["response"]["location"]
            .as_str()
            .unwrap();
        let referral = location.split('/').nth(1).unwrap().to_string();
        assert_eq!(
            vcs_post(
                &gateway,
                VCS_TOKEN,
                &format!("/vcs/v1/referrals/{referral}/status"),
                &status("accepted")
            )
            .0,
            200
        );
        let mut finish = status(last);
        finish["reason"] = json!("The person moved away");
        let (code, body) = vcs_post(
            &gateway,
            VCS_TOKEN,
            &format!("/vcs/v1/referrals/{referral}/status"),
            &finish,
        );
        assert_eq!(code, 200, "{last}: {body}");
        let (_, sr) = send(gateway.get(&format!("/fhir/ServiceRequest/{referral}")));
        assert_eq!(
            sr["status"],
            if last == "completed" {
                "completed"
            } else {
                "revoked"
            }
        );
    }
}
