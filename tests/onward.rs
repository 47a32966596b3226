//! Onward referral, end to end over HTTP with real receivers: a link worker refers the person on
//! to a service of the directory; the service's organisation receives the child referral by
//! webhook (and its people an email notice, through a real SMTP exchange); the GP follows the
//! chain as FHIR (`based-on`, `part-of`, `_revinclude`), and its Subscriptions hear of the child.

mod common;

use std::time::Duration;

use common::receiver::Receiver;
use common::smtp::SmtpSink;
use common::*;
use serde_json::{json, Value};

const LINK_TOKEN: &str = "demo-vcs-link-workers";
const KNIT_TOKEN: &str = "demo-vcs-knit-natter";
const CARERS_TOKEN: &str = "demo-vcs-carers-count";
/// Knit and Natter (its organisation is the configured valley-knit-natter).
const KNIT_SERVICE: &str = "f80b822c-7172-5b8d-9f63-72b7f1989394";
/// The Golden Valley Lunch Club: in the directory, its organisation not connected.
const LUNCH_CLUB: &str = "9fd71e5e-079c-59ce-9346-a98199715973";
const DIRECTORY: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/directory");

/// A referral of the demo's contained referral to the link workers (ODS X7L4W).
fn refer_to_link_workers(gateway: &Gateway, gp_reference: &str) -> String {
    let mut referral = contained_referral(gp_reference);
    referral["performer"] = json!([{"type": "Organization", "display": "Golden Valley Link Workers",
        "identifier": {"system": "https://fhir.nhs.uk/Id/ods-organization-code", "value": "X7L4W"}}]);
    let (status, body) = send(gateway.post_json("/fhir/ServiceRequest", &referral));
    assert_eq!(status, 201, "{body}");
    body["id"].as_str().expect("id").to_string()
}

fn report(gateway: &Gateway, token: &str, referral: &str, status: &str) {
    let mut body = json!({"status": status, "occurred_at": "2026-05-10T14:00:00+01:00"});
    if status == "cancelled" {
        body["reason"] = json!("Moved away");
    }
    let (code, answer) = vcs_post(
        gateway,
        token,
        &format!("/vcs/v1/referrals/{referral}/status"),
        &body,
    );
    assert_eq!(code, 200, "{status}: {answer}");
}

fn onward(gateway: &Gateway, token: &str, referral: &str, service: &str) -> (u16, Value) {
    vcs_post(
        gateway,
        token,
        &format!("/vcs/v1/referrals/{referral}/onward"),
        &json!({"service_id": service, "note": "Would like company on Tuesdays"}),
    )
}

fn gp_get(gateway: &Gateway, path: &str) -> Value {
    let (status, body) = send(gateway.get(path));
    assert_eq!(status, 200, "{path}: {body}");
    body
}

fn entries<'a>(bundle: &'a Value, mode: &str, kind: &str) -> Vec<&'a Value> {
    bundle["entry"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|e| e["search"]["mode"] == mode && e["resource"]["resourceType"] == kind)
        .map(|e| &e["resource"])
        .collect()
}

#[test]
fn a_link_worker_refers_onward_and_the_gp_sees_the_chain() {
    let receiver = Receiver::start();
    let gateway = Gateway::start_with(|c| deliver_to(c, &receiver.base, &["1s"]), &[]);
    gateway.import_directory(&[DIRECTORY]);
    let (status, subscription) = send(gateway.post_json(
        "/fhir/Subscription",
        &json!({"resourceType": "Subscription", "status": "requested", "reason": "Our referrals",
                "criteria": "Task?status=requested",
                "channel": {"type": "rest-hook", "endpoint": format!("{}/gp", receiver.base),
                            "payload": "application/fhir+json"}}),
    ));
    assert_eq!(status, 201, "{subscription}");
    let parent = refer_to_link_workers(&gateway, "ONWARD-1");
    report(&gateway, LINK_TOKEN, &parent, "accepted");
    let key = [("idempotency-key", "onward-1")];
    let post = |body: &Value| {
        let mut request = gateway
            .http
            .post(gateway.url(&format!("/vcs/v1/referrals/{parent}/onward")))
            .bearer_auth(LINK_TOKEN)
            .json(body);
        for (name, value) in key {
            request = request.header(name, value);
        }
        send(request)
    };
    let body = json!({"service_id": KNIT_SERVICE, "note": "Would like company on Tuesdays"});
    let (status, created) = post(&body);
    assert_eq!(status, 201, "{created}");
    let child = created["referral_id"]
        .as_str()
        .expect("the child's id")
        .to_string();
    assert_ne!(child, parent);
    assert_eq!(created["based_on"], parent.as_str());
    assert_eq!(created["vcs_id"], "valley-knit-natter");
    // A retry with the same key gets the same answer and makes no second child.
    let (status, again) = post(&body);
    assert_eq!((status, &again), (201, &created));

    // The group's receiver gets the child's record, naming the service and the link worker.
    let arrived = receiver.wait_for(Duration::from_secs(20), "the child's webhook", |r| {
        r.iter()
            .any(|m| m.path == "/hooks/knit" && m.json()["data"]["referral_id"] == child.as_str())
    });
    let webhook = arrived
        .iter()
        .find(|m| m.path == "/hooks/knit")
        .expect("the group's webhook");
    let record = &webhook.json()["data"];
    assert_eq!(webhook.json()["type"], "referral.created");
    assert_eq!(record["service"]["id"], KNIT_SERVICE);
    assert_eq!(record["service"]["name"], "Knit and Natter, Ewyas Harold");
    assert_eq!(record["recipient"]["vcs_id"], "valley-knit-natter");
    assert_eq!(record["onward_from"]["referral_id"], parent.as_str());
    assert_eq!(record["onward_from"]["vcs_id"], "link-workers");
    assert_eq!(record["notes"], json!(["Would like company on Tuesdays"]));
    assert_eq!(record["patient"]["given_name"], "Siân");
    // The group shares no NHS number (its `share` is empty).
    assert!(record["patient"].get("nhs_number").is_none(), "{record}");
    let schema: Value =
        serde_json::from_str(include_str!("../profiles/referral-record.v1.schema.json")).unwrap();
    assert!(jsonschema::is_valid(&schema, record), "{record}");
    let signature = standardwebhooks::Webhook::new(&demo_secret("valley-knit-natter"))
        .expect("secret")
        .verify(&webhook.body, &webhook.http_headers());
    assert!(signature.is_ok(), "{signature:?}");

    // The GP's chain: the child ServiceRequest based on the first, its Task part of the first's.
    let children = gp_get(
        &gateway,
        &format!("/fhir/ServiceRequest?based-on=ServiceRequest/{parent}"),
    );
    assert_eq!(children["total"], 1, "{children}");
    let sr = &children["entry"][0]["resource"];
    assert_eq!(sr["id"], child.as_str());
    assert_eq!(
        sr["basedOn"][0]["reference"],
        format!("ServiceRequest/{parent}")
    );
    assert_eq!(
        sr["performer"][0]["reference"],
        format!("HealthcareService/{KNIT_SERVICE}")
    );
    assert_eq!(sr["requester"]["identifier"]["value"], "X7L4W");
    assert_eq!(sr["subject"]["reference"], "#pat");
    assert_eq!(sr["supportingInfo"][0]["reference"], "#consent");
    let mut kept: Vec<&str> = sr["contained"]
        .as_array()
        .expect("contained")
        .iter()
        .filter_map(|r| r["id"].as_str())
        .collect();
    kept.sort_unstable();
    assert_eq!(
        kept,
        ["consent", "pat"],
        "the GP's own requester is not carried"
    );
    let parent_task = gp_get(
        &gateway,
        &format!("/fhir/Task?focus=ServiceRequest/{parent}"),
    );
    let parent_task = parent_task["entry"][0]["resource"]["id"]
        .as_str()
        .expect("the link worker's Task")
        .to_string();
    let parts = gp_get(&gateway, &format!("/fhir/Task?part-of=Task/{parent_task}"));
    assert_eq!(parts["total"], 1, "{parts}");
    let child_task = &parts["entry"][0]["resource"];
    assert_eq!(
        child_task["partOf"][0]["reference"],
        format!("Task/{parent_task}")
    );
    assert_eq!(
        child_task["focus"]["reference"],
        format!("ServiceRequest/{child}")
    );
    let child_task = child_task["id"].as_str().expect("id").to_string();
    let with_children = gp_get(
        &gateway,
        "/fhir/ServiceRequest?identifier=ONWARD-1&_revinclude=ServiceRequest:based-on",
    );
    let included = entries(&with_children, "include", "ServiceRequest");
    assert_eq!(included.len(), 1, "{with_children}");
    assert_eq!(included[0]["id"], child.as_str());
    let with_parts = gp_get(
        &gateway,
        &format!("/fhir/Task?focus=ServiceRequest/{parent}&_revinclude=Task:part-of"),
    );
    let included = entries(&with_parts, "include", "Task");
    assert_eq!(included.len(), 1, "{with_parts}");
    assert_eq!(included[0]["id"], child_task.as_str());
    let (status, _) = send(gateway.get("/fhir/Task?_revinclude=Task:focus"));
    assert_eq!(status, 400, "only Task:part-of is a Task _revinclude");

    // The GP's Subscription heard of the child's Task, and hears of its progress too.
    receiver.wait_for(
        Duration::from_secs(20),
        "the child Task's notification",
        |r| {
            r.iter()
                .any(|m| m.path == "/gp" && m.json()["id"] == child_task.as_str())
        },
    );
    report(&gateway, KNIT_TOKEN, &child, "accepted");
    let task = gp_get(&gateway, &format!("/fhir/Task/{child_task}"));
    assert_eq!(task["status"], "accepted");
    assert_eq!(
        task["partOf"][0]["reference"],
        format!("Task/{parent_task}")
    );

    // Another GP client sees none of it.
    let (status, other) = send(
        gateway
            .http
            .get(gateway.url(&format!(
                "/fhir/ServiceRequest?based-on=ServiceRequest/{parent}"
            )))
            .bearer_auth(OTHER_GP_TOKEN),
    );
    assert_eq!((status, other["total"].as_u64()), (200, Some(0)));
    // The audit trail names the link worker.
    let (status, audit) =
        gateway.admin_get(&format!("/fhir/AuditEvent?entity=ServiceRequest/{child}"));
    assert_eq!(status, 200, "{audit}");
    assert!(
        audit.to_string().contains("vcs:link-workers"),
        "the onward referral is audited as the link worker's: {audit}"
    );
}

#[test]
fn onward_referrals_are_refused_where_they_make_no_sense() {
    let gateway = Gateway::start();
    gateway.import_directory(&[DIRECTORY]);
    let parent = refer_to_link_workers(&gateway, "ONWARD-2");
    // Not accepted yet: the link worker has not met the person.
    let (status, problem) = onward(&gateway, LINK_TOKEN, &parent, KNIT_SERVICE);
    assert_eq!(status, 409, "{problem}");
    report(&gateway, LINK_TOKEN, &parent, "accepted");
    // A group is not a link worker.
    let carers = gateway.refer("ONWARD-3");
    let (status, problem) = onward(&gateway, CARERS_TOKEN, &carers, KNIT_SERVICE);
    assert_eq!(status, 403, "{problem}");
    // Another organisation's referral does not exist for the link worker.
    let (status, _) = onward(&gateway, LINK_TOKEN, &carers, KNIT_SERVICE);
    assert_eq!(status, 404);
    let (status, _) = onward(&gateway, LINK_TOKEN, "no-such-referral", KNIT_SERVICE);
    assert_eq!(status, 404);
    // A service the directory does not hold.
    let (status, problem) = onward(
        &gateway,
        LINK_TOKEN,
        &parent,
        "00000000-0000-4000-8000-000000000000",
    );
    assert_eq!(status, 422, "{problem}");
    assert_eq!(problem["errors"][0]["field"], "service_id");
    // A service whose organisation is not connected: its contact details, to refer by hand.
    let (status, problem) = onward(&gateway, LINK_TOKEN, &parent, LUNCH_CLUB);
    assert_eq!(status, 422, "{problem}");
    assert_eq!(problem["errors"][0]["field"], "service_id");
    let detail = problem["detail"].as_str().unwrap_or_default();
    assert!(detail.contains("contact it directly"), "{detail}");
    // A body that breaks the schema.
    let (status, problem) = vcs_post(
        &gateway,
        LINK_TOKEN,
        &format!("/vcs/v1/referrals/{parent}/onward"),
        &json!({"service": KNIT_SERVICE}),
    );
    assert_eq!(status, 422, "{problem}");
    // Nothing above made a child.
    let children = gp_get(
        &gateway,
        &format!("/fhir/ServiceRequest?based-on=ServiceRequest/{parent}"),
    );
    assert_eq!(children["total"], 0, "{children}");
    // Closed: nothing more is referred on.
    report(&gateway, LINK_TOKEN, &parent, "cancelled");
    let (status, problem) = onward(&gateway, LINK_TOKEN, &parent, KNIT_SERVICE);
    assert_eq!(status, 409, "{problem}");
}

#[test]
fn the_group_is_told_by_email_without_patient_details_and_a_failed_send_is_retried() {
    let sink = SmtpSink::start(1);
    let url = sink.url();
    let gateway = Gateway::start_with(
        |c| {
            let c = deliver_to(c, "http://127.0.0.1:9", &["1s", "1s"]);
            let c = c.replace(
                "token = \"demo-vcs-knit-natter\"\n",
                "token = \"demo-vcs-knit-natter\"\nnotify_emails = [\"team@knit.example\", \"lead@knit.example\"]\n",
            );
            format!("[email]\nsmtp_url = \"{url}\"\nfrom = \"Social prescribing <sp@gateway.example>\"\n\n{c}")
        },
        &[],
    );
    gateway.import_directory(&[DIRECTORY]);
    let parent = refer_to_link_workers(&gateway, "ONWARD-MAIL");
    report(&gateway, LINK_TOKEN, &parent, "accepted");
    let (status, created) = onward(&gateway, LINK_TOKEN, &parent, KNIT_SERVICE);
    assert_eq!(status, 201, "{created}");
    let child = created["referral_id"].as_str().expect("id").to_string();
    let mails = sink.wait_for(1, Duration::from_secs(30));
    assert_eq!(
        sink.refused(),
        1,
        "the first attempt was refused, the second delivered"
    );
    let mail = &mails[0];
    assert_eq!(mail.from, "sp@gateway.example");
    let mut to = mail.to.clone();
    to.sort();
    assert_eq!(to, ["lead@knit.example", "team@knit.example"]);
    assert!(
        mail.data
            .contains("Subject: You have a new referral in your inbox"),
        "{}",
        mail.data
    );
    assert!(
        mail.data.contains(&format!("/inbox/referrals/{child}")),
        "{}",
        mail.data
    );
    for detail in [
        "Siân",
        "Si=C3=A2n",
        "Llywelyn",
        "9000000009",
        "07700",
        "CF10",
        "Heol",
        "1948",
        "Tuesdays",
        "Caring",
        "Evans",
        "W97001",
    ] {
        assert!(
            !mail.data.contains(detail),
            "the notice carries {detail}: {}",
            mail.data
        );
    }
    // The operator sees the notice's two attempts.
    let (status, deliveries) =
        gateway.admin_get(&format!("/admin/v1/referrals/{child}/deliveries"));
    assert_eq!(status, 200, "{deliveries}");
    let text = deliveries.to_string();
    assert!(text.contains("referral.notice"), "{text}");
    let notice = deliveries["messages"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|d| d["event_type"] == "referral.notice")
        .unwrap_or_else(|| panic!("the notice among {deliveries}"));
    assert_eq!(
        notice["attempts_detail"].as_array().map(Vec::len),
        Some(2),
        "{notice}"
    );
    assert_eq!(notice["state"], "delivered", "{notice}");
    // Its delivery is audited (the webhook here goes nowhere: this is the notice's record).
    let (status, audit) =
        gateway.admin_get(&format!("/fhir/AuditEvent?entity=ServiceRequest/{child}"));
    assert_eq!(status, 200);
    assert!(
        audit.to_string().contains("vcs:valley-knit-natter"),
        "{audit}"
    );
    // A referral straight from a GP to the group is noticed too.
    let mut direct = contained_referral("MAIL-DIRECT");
    direct["performer"] = json!([{"reference": format!("HealthcareService/{KNIT_SERVICE}")}]);
    let (status, body) = send(gateway.post_json("/fhir/ServiceRequest", &direct));
    assert_eq!(status, 201, "{body}");
    let id = body["id"].as_str().expect("id").to_string();
    let mails = sink.wait_for(2, Duration::from_secs(30));
    assert!(mails[1].data.contains(&format!("/inbox/referrals/{id}")));
}
