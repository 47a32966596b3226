//! The web inbox over real HTTP: accounts made with `sp-gateway users`, sign-in (cookies,
//! CSRF, TOTP, throttling), the list and one referral, actions through the same lifecycle as
//! `/vcs/v1` (the GP reads the Task and Observations), and one organisation never seeing
//! another's referrals.

mod common;

use common::web::*;
use common::*;

#[test]
fn a_group_without_a_crm_answers_in_the_browser_and_the_gp_sees_it() {
    let gateway = Gateway::start();
    add_user(
        &gateway,
        &["--org", "carers-count", "--email", "ann@carers.example"],
    );
    let uri = add_user(
        &gateway,
        &[
            "--org",
            "valley-knit-natter",
            "--email",
            "bea@knit.example",
            "--totp",
        ],
    );
    let secret = uri
        .split("secret=")
        .nth(1)
        .and_then(|s| s.split('&').next())
        .expect("a TOTP secret")
        .to_string();
    let referral = gateway.refer("REF-INBOX-1");

    // Not signed in: to the sign-in page. Its cookie is HttpOnly and SameSite=Strict.
    let ann = Browser::new(&gateway);
    assert_eq!(ann.get("/inbox"), (303, "/inbox/login".to_string()));
    let response = ann.http.get(gateway.url("/inbox/login")).send().unwrap();
    let set_cookie = response.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .to_string();
    // Path `/`: the operator pages at /admin share the sign-in.
    for part in ["HttpOnly", "SameSite=Strict", "Path=/"] {
        assert!(set_cookie.split("; ").any(|p| p == part), "{set_cookie}");
    }
    assert!(
        !set_cookie.contains("Secure"),
        "plain http in this test: {set_cookie}"
    );
    let csp = response.headers()["content-security-policy"]
        .to_str()
        .unwrap();
    assert!(csp.contains("default-src 'none'"), "{csp}");

    // A wrong password: the same answer as an unknown address, with the error linked.
    let (status, page) = ann.sign_in("ann@carers.example", "not the password", "");
    assert_eq!(status, 401);
    assert!(page.contains("href=\"#email\""), "{page}");
    assert!(page.contains("Enter a correct email address and password"));
    let (status, unknown) = ann.sign_in("nobody@carers.example", PASSWORD, "");
    assert_eq!(status, 401);
    assert!(unknown.contains("Enter a correct email address and password"));
    let (status, page) = ann.sign_in("", "", "");
    assert_eq!(status, 422);
    assert!(page.contains("href=\"#password\"") && page.contains("Enter your password"));
    // A form from elsewhere (no token) is refused.
    let (status, _) = ann.post(
        "/inbox/login",
        &[("email", "ann@carers.example"), ("password", PASSWORD)],
    );
    assert_eq!(status, 403);

    let (status, to) = ann.sign_in("Ann@Carers.example", PASSWORD, "");
    assert_eq!((status, to.as_str()), (303, "/inbox"));

    // The list: the new referral with the person's name, need and practice.
    let (status, list) = ann.get("/inbox");
    assert_eq!(status, 200, "{list}");
    assert!(list.contains("New referrals (1)"), "{list}");
    assert!(list.contains("Llywelyn"), "{list}");
    assert!(list.contains(&format!("/inbox/referrals/{referral}")));
    assert!(list.len() < 50_000);

    // The referral: only what its status allows is offered.
    let path = format!("/inbox/referrals/{referral}");
    let (status, page) = ann.get(&path);
    assert_eq!(status, 200, "{page}");
    assert!(page.contains(">Accept</button>") && page.contains(">Decline</button>"));
    assert!(!page.contains(">Completed</button>"));
    assert!(page.len() < 50_000);
    let csrf = csrf_of(&page);
    let status_path = format!("{path}/status");

    // Forced: an impossible step, a missing reason, a missing token.
    let (status, page) = ann.post(&status_path, &[("csrf", &csrf), ("status", "completed")]);
    assert_eq!(status, 409);
    assert!(
        page.contains("There is a problem") && page.contains("href=\"#reason\""),
        "{page}"
    );
    // The page offers the coded reasons only while Decline is possible; declining needs one.
    assert!(page.contains("If you decline, why?") && page.contains("value=\"no-capacity\""));
    let (status, page) = ann.post(&status_path, &[("csrf", &csrf), ("status", "declined")]);
    assert_eq!(status, 422);
    assert!(
        page.contains("Choose why you are declining the referral")
            && page.contains("href=\"#reason_code\""),
        "{page}"
    );
    let (status, page) = ann.post(
        &status_path,
        &[
            ("csrf", &csrf),
            ("status", "declined"),
            ("reason_code", "full"),
            ("reason", "We are full"),
        ],
    );
    assert_eq!(status, 422);
    assert!(
        page.contains("Choose why you are declining the referral") && page.contains("We are full"),
        "what was typed is kept: {page}"
    );
    let (status, _) = ann.post(&status_path, &[("status", "accepted")]);
    assert_eq!(status, 403);
    let (status, _) = ann.post(&status_path, &[("csrf", "forged"), ("status", "accepted")]);
    assert_eq!(status, 403);

    // Accept, with a note: the GP's Task says accepted. A decline reason left chosen on the
    // radios (they cannot be cleared without a script) is not used.
    let (status, to) = ann.post(
        &status_path,
        &[
            ("csrf", &csrf),
            ("status", "accepted"),
            ("reason_code", "no-capacity"),
            ("note", "We will ring on Monday"),
        ],
    );
    assert_eq!((status, to.clone()), (303, format!("{path}?done=status")));
    let (_, tasks) = send(gateway.get(&format!("/fhir/Task?focus=ServiceRequest/{referral}")));
    let task = &tasks["entry"][0]["resource"];
    assert_eq!(task["status"], "accepted", "{task}");
    assert_eq!(task["meta"]["versionId"], "2");
    assert!(task.get("statusReason").is_none(), "{task}");

    // A SWEMWBS at baseline: stored as /vcs/v1 stores it, read by the GP as Observations.
    let (_, page) = ann.get(&to);
    assert!(page.contains("Saved."));
    assert!(page.contains("Record SWEMWBS") && page.contains(">Contacted</button>"));
    let mut fields = vec![
        ("csrf", csrf.clone()),
        ("instrument", "swemwbs".to_string()),
        ("timepoint", "baseline".to_string()),
    ];
    let (status, page) = ann.post(
        &format!("{path}/outcomes"),
        &fields
            .iter()
            .map(|(k, v)| (*k, v.as_str()))
            .collect::<Vec<_>>(),
    );
    assert_eq!(status, 422, "no answers");
    assert!(page.contains("href=\"#swemwbs-answer-1\""), "{page}");
    let names: Vec<String> = (1..=7).map(|i| format!("answer{i}")).collect();
    for (i, name) in names.iter().enumerate() {
        fields.push((
            name.as_str(),
            ["3", "4", "3", "2", "4", "3", "5"][i].to_string(),
        ));
    }
    let (status, to) = ann.post(
        &format!("{path}/outcomes"),
        &fields
            .iter()
            .map(|(k, v)| (*k, v.as_str()))
            .collect::<Vec<_>>(),
    );
    assert_eq!((status, to), (303, format!("{path}?done=outcome")));
    let (_, observations) = send(gateway.get(&format!(
        "/fhir/Observation?based-on=ServiceRequest/{referral}"
    )));
    let total = observations["total"].as_u64().unwrap_or(0);
    assert!(total >= 1, "{observations}");
    let text = observations.to_string();
    assert!(
        text.contains("24"),
        "the raw SWEMWBS total, 3+4+3+2+4+3+5: {text}"
    );
    let (_, tasks) = send(gateway.get(&format!("/fhir/Task?focus=ServiceRequest/{referral}")));
    let outputs = tasks["entry"][0]["resource"]["output"]
        .as_array()
        .map(Vec::len);
    assert_eq!(outputs, Some(total as usize));

    // Another organisation's member (signing in with a code) never sees it.
    let bea = Browser::new(&gateway);
    let (status, _) = bea.sign_in("bea@knit.example", PASSWORD, "");
    assert_eq!(status, 401, "the code is needed");
    let code = sp_gateway::accounts::totp_code(&secret, chrono::Utc::now()).unwrap();
    let (status, _) = bea.sign_in("bea@knit.example", PASSWORD, &code);
    assert_eq!(status, 303);
    let (status, _) = bea.get(&path);
    assert_eq!(status, 404);
    let (_, list) = bea.get("/inbox");
    assert!(
        !list.contains("Llywelyn") && list.contains("New referrals (0)"),
        "{list}"
    );
    let bea_csrf = csrf_of(&list);
    let (status, _) = bea.post(
        &status_path,
        &[("csrf", &bea_csrf), ("status", "contacted")],
    );
    assert_eq!(status, 404);

    // Signing out ends the session.
    let (_, page) = ann.get("/inbox");
    let (status, to) = ann.post("/inbox/logout", &[("csrf", &csrf_of(&page))]);
    assert_eq!((status, to.as_str()), (303, "/inbox/login"));
    assert_eq!(ann.get("/inbox").0, 303);

    // Every sign-in, failure and action is in the audit trail.
    let db = rusqlite::Connection::open(gateway.db_path()).unwrap();
    let trail: Vec<(String, String, String)> = db
        .prepare("SELECT actor, action, outcome FROM audit_log ORDER BY id")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    let has = |actor: &str, action: &str, outcome: &str| {
        trail
            .iter()
            .any(|(a, x, o)| a.starts_with(actor) && x == action && o == outcome)
    };
    assert!(has("person:", "login", "failure-password"), "{trail:?}");
    assert!(has("anonymous:", "login", "failure"));
    assert!(has("person:", "login", "failure-code"));
    assert!(has("person:", "login", "success"));
    assert!(has("person:", "status-update:accepted", "success"));
    assert!(
        has("vcs:carers-count", "status-update", "success"),
        "the lifecycle's own entry"
    );
    assert!(has("person:", "outcome:swemwbs", "success"));
    assert!(has("person:", "logout", "success"));
}

#[test]
fn sign_in_is_throttled_per_account() {
    let gateway = Gateway::start();
    add_user(
        &gateway,
        &["--org", "carers-count", "--email", "ann@carers.example"],
    );
    let browser = Browser::new(&gateway);
    let statuses: Vec<u16> = (0..7)
        .map(|_| {
            browser
                .sign_in("ann@carers.example", "wrong password!", "")
                .0
        })
        .collect();
    assert_eq!(&statuses[..5], &[401; 5], "{statuses:?}");
    assert_eq!(statuses[5], 429, "{statuses:?}");
    // Even the right password waits now.
    assert_eq!(browser.sign_in("ann@carers.example", PASSWORD, "").0, 429);
    // Another account from the same address is not held up by this one's limit.
    add_user(
        &gateway,
        &["--org", "carers-count", "--email", "cai@carers.example"],
    );
    assert_eq!(browser.sign_in("cai@carers.example", PASSWORD, "").0, 303);
    let (status, css) = browser.get("/inbox/static/inbox.css");
    assert_eq!(status, 200);
    assert!(css.contains("--blue: #005eb8"));
}

/// Knit and Natter (its organisation is the configured valley-knit-natter).
const KNIT_SERVICE: &str = "f80b822c-7172-5b8d-9f63-72b7f1989394";
/// The Golden Valley Lunch Club: in the directory, its organisation not connected.
const LUNCH_CLUB: &str = "9fd71e5e-079c-59ce-9346-a98199715973";

#[test]
fn a_link_worker_refers_onward_in_the_browser_and_the_gp_follows_it() {
    use common::receiver::Receiver;
    use serde_json::json;
    use std::time::Duration;

    let receiver = Receiver::start();
    let gateway = Gateway::start_with(|c| deliver_to(c, &receiver.base, &["1s"]), &[]);
    gateway.import_directory(&[concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/directory")]);
    add_user(
        &gateway,
        &["--org", "link-workers", "--email", "lis@links.example"],
    );
    add_user(
        &gateway,
        &["--org", "carers-count", "--email", "ann@carers.example"],
    );
    // The GP refers to the link workers (ODS X7L4W).
    let mut referral = contained_referral("REF-ONWARD-INBOX");
    referral["performer"] = json!([{"type": "Organization", "display": "Golden Valley Link Workers",
        "identifier": {"system": "https://fhir.nhs.uk/Id/ods-organization-code", "value": "X7L4W"}}]);
    let (status, created) = send(gateway.post_json("/fhir/ServiceRequest", &referral));
    assert_eq!(status, 201, "{created}");
    let parent = created["id"].as_str().expect("id").to_string();
    let path = format!("/inbox/referrals/{parent}");
    let onward_path = format!("{path}/onward");

    let lis = Browser::new(&gateway);
    assert_eq!(lis.sign_in("lis@links.example", PASSWORD, "").0, 303);
    // Not accepted yet: nothing to refer onward from.
    let (status, page) = lis.get(&path);
    assert_eq!(status, 200, "{page}");
    assert!(!page.contains("Refer onward"), "{page}");
    let csrf = csrf_of(&page);
    let (status, _) = lis.post(
        &format!("{path}/status"),
        &[("csrf", &csrf), ("status", "accepted")],
    );
    assert_eq!(status, 303);
    let (_, page) = lis.get(&path);
    assert!(page.contains(&format!("href=\"{onward_path}\"")), "{page}");

    // Another organisation (not a link worker) finds no such page, and cannot post to it.
    let ann = Browser::new(&gateway);
    assert_eq!(ann.sign_in("ann@carers.example", PASSWORD, "").0, 303);
    assert_eq!(ann.get(&onward_path).0, 404);
    let (_, list) = ann.get("/inbox");
    let ann_csrf = csrf_of(&list);
    let forged = [("csrf", ann_csrf.as_str()), ("service_id", KNIT_SERVICE)];
    assert_eq!(ann.post(&onward_path, &forged).0, 404);

    // The form, prefilled with the person's postcode; no search yet.
    let (status, page) = lis.get(&onward_path);
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("value=\"CF10 1AA\""), "{page}");
    assert!(
        page.contains("<label class=\"label\" for=\"need\">"),
        "{page}"
    );
    assert!(!page.contains("Services found"), "{page}");
    // A postcode that is not one: the error summary links to the field.
    let (status, page) = lis.get(&format!(
        "{onward_path}?need=social-connection&postcode=HR99+ZZZZ"
    ));
    assert_eq!(status, 422, "{page}");
    assert!(page.contains("href=\"#postcode\""), "{page}");
    assert!(page.contains("Enter a real postcode"), "{page}");

    // Searched: Knit and Natter can be chosen; the search ranks services covering HR2 first.
    let (status, page) = lis.get(&format!(
        "{onward_path}?need=social-connection&postcode=HR2+0LT"
    ));
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("Services found ("), "{page}");
    assert!(
        page.contains(&format!("value=\"{KNIT_SERVICE}\"")),
        "{page}"
    );
    assert!(page.contains("Knit and Natter, Ewyas Harold"), "{page}");
    assert!(page.contains("Valley Knit and Natter"), "{page}");
    assert!(
        page.contains("Takes referrals through this gateway"),
        "{page}"
    );
    assert!(page.contains("<legend class=\"fieldset-legend\">Choose a service</legend>"));
    assert!(page.contains(">Refer onward</button>"), "{page}");
    let csrf = csrf_of(&page);

    // Refusals come back with the summary linked to the radios.
    let (status, page) = lis.post(
        &onward_path,
        &[
            ("csrf", &csrf),
            ("need", "social-connection"),
            ("postcode", "HR2 0LT"),
        ],
    );
    assert_eq!(status, 422, "{page}");
    assert!(page.contains("href=\"#service_id\"") && page.contains("Choose a service"));
    let (status, page) = lis.post(
        &onward_path,
        &[
            ("csrf", &csrf),
            ("service_id", LUNCH_CLUB),
            ("postcode", "HR2 0LT"),
        ],
    );
    assert_eq!(status, 422, "{page}");
    assert!(
        page.contains("does not take referrals through this gateway"),
        "{page}"
    );
    assert_eq!(
        lis.post(&onward_path, &[("service_id", KNIT_SERVICE)]).0,
        403,
        "no form token"
    );

    // Confirmed: to the referral page, the confirmation naming the service and the child.
    let note = "Would like company on Thursdays";
    let (status, to) = lis.post(
        &onward_path,
        &[
            ("csrf", &csrf),
            ("need", "social-connection"),
            ("postcode", "HR2 0LT"),
            ("service_id", KNIT_SERVICE),
            ("note", note),
        ],
    );
    assert_eq!(status, 303, "{to}");
    assert!(
        to.starts_with(&format!("{path}?done=onward&child=")),
        "{to}"
    );
    let child = to.rsplit("child=").next().expect("child").to_string();
    let (status, page) = lis.get(&to);
    assert_eq!(status, 200, "{page}");
    assert!(
        page.contains("Referred onward to Knit and Natter, Ewyas Harold") && page.contains(&child),
        "{page}"
    );
    // A made-up child puts nothing in the banner.
    let (_, page) = lis.get(&format!("{path}?done=onward&child={parent}"));
    assert!(!page.contains("Referred onward"), "{page}");

    // Once the referral is closed, onward is refused (409) and no longer offered.
    let (status, _) = lis.post(
        &format!("{path}/status"),
        &[("csrf", &csrf), ("status", "completed")],
    );
    assert_eq!(status, 303);
    let (status, page) = lis.post(
        &onward_path,
        &[
            ("csrf", &csrf),
            ("need", "social-connection"),
            ("postcode", "HR2 0LT"),
            ("service_id", KNIT_SERVICE),
        ],
    );
    assert_eq!(status, 409, "{page}");
    assert!(
        page.contains("href=\"#service_id\"") && page.contains("cannot be referred onward now"),
        "{page}"
    );
    assert_eq!(lis.get(&onward_path), (303, path.clone()));
    let (_, page) = lis.get(&path);
    assert!(!page.contains("Refer onward"), "{page}");

    // The group's receiver gets the child, with the note.
    receiver.wait_for(Duration::from_secs(20), "the child's webhook", |r| {
        r.iter().any(|m| {
            m.path == "/hooks/knit"
                && m.json()["data"]["referral_id"] == child.as_str()
                && m.json()["data"]["notes"] == json!([note])
                && m.json()["data"]["onward_from"]["referral_id"] == parent.as_str()
        })
    });

    // The GP follows it as FHIR.
    let (status, children) = send(gateway.get(&format!(
        "/fhir/ServiceRequest?based-on=ServiceRequest/{parent}"
    )));
    assert_eq!(status, 200, "{children}");
    assert_eq!(children["total"], 1, "{children}");
    assert_eq!(children["entry"][0]["resource"]["id"], child.as_str());
    assert_eq!(
        children["entry"][0]["resource"]["performer"][0]["reference"],
        format!("HealthcareService/{KNIT_SERVICE}")
    );

    // The person's action is in the audit trail, beside the lifecycle's own entry.
    let db = rusqlite::Connection::open(gateway.db_path()).unwrap();
    let actors: Vec<String> = db
        .prepare("SELECT actor FROM audit_log WHERE action = 'onward' AND outcome = 'success'")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert!(
        actors.iter().any(|a| a.starts_with("person:")),
        "{actors:?}"
    );
    assert!(actors.iter().any(|a| a == "vcs:link-workers"), "{actors:?}");
}
