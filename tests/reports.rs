//! The commissioners' reports over HTTP: aggregates only, scoped, suppressed, as JSON and CSV;
//! no other caller reads them, and a commissioner reads nothing else.

mod common;

use common::{send, vcs_post, Gateway, ADMIN_TOKEN, GP_TOKEN};
use serde_json::{json, Value};

const COMMISSIONER: &str = "demo-commissioner-token";
const CARERS_ONLY: &str = "commissioner-carers-only";
const OTHER_PRACTICES: &str = "commissioner-other-practices";
const CARERS: &str = "demo-vcs-carers-count";
const KNIT: &str = "demo-vcs-knit-natter";

/// The demo configuration with two more commissioners: one scoped to Carers Count, one to
/// practices that sent nothing.
fn with_scoped_commissioners(config: String) -> String {
    format!(
        "{config}
[[commissioners]]
id = \"carers-funder\"
name = \"Carers Fund\"
token = \"{CARERS_ONLY}\"
organisations = [\"carers-count\"]

[[commissioners]]
id = \"north-pcn\"
name = \"North PCN\"
token = \"{OTHER_PRACTICES}\"
practices = [\"A81001\", \"A81002\"]
"
    )
}

/// A referral from practice W97001 with a need in the social-connection category, to the
/// organisation named by `performer` (`system`, `value`).
fn refer(gateway: &Gateway, reference: &str, performer: (&str, &str)) -> String {
    let mut body = common::contained_referral(reference);
    body["performer"][0]["identifier"] = json!({"system": performer.0, "value": performer.1});
    body["reasonCode"] = json!([{"coding": [{"system": "http://snomed.info/sct",
        "code": "422650009", "display": "Social isolation"}]}]);
    let (status, created) = send(gateway.post_json("/fhir/ServiceRequest", &body));
    assert_eq!(status, 201, "{created}");
    created["id"].as_str().expect("id").to_string()
}

fn report_status(gateway: &Gateway, token: &str, referral: &str, status: &str) {
    let mut body = json!({"status": status, "occurred_at": "2026-05-10T14:00:00+01:00"});
    if status == "declined" {
        body["reason"] = json!("We have no places left this term");
    }
    let path = format!("/vcs/v1/referrals/{referral}/status");
    let (code, answer) = vcs_post(gateway, token, &path, &body);
    assert_eq!(code, 200, "{status}: {answer}");
}

/// 14 WEMWBS answers adding up to `total` (14 to 70).
fn wemwbs_answers(total: u8) -> Vec<u8> {
    let mut answers = vec![1u8; 14];
    let mut left = total - 14;
    for answer in answers.iter_mut() {
        let add = left.min(4);
        *answer += add;
        left -= add;
    }
    answers
}

fn report_wemwbs(gateway: &Gateway, referral: &str, timepoint: &str, total: u8) {
    let body = json!({"instrument": "wemwbs", "timepoint": timepoint,
        "answers": wemwbs_answers(total), "occurred_at": "2026-06-01T10:00:00+01:00"});
    let path = format!("/vcs/v1/referrals/{referral}/outcomes");
    let (code, answer) = vcs_post(gateway, CARERS, &path, &body);
    assert!(code == 200 || code == 201, "{answer}");
}

/// Nine referrals: seven to Carers Count (six accepted, one declined; five of those contacted,
/// with WEMWBS baseline and follow-up), two to Valley Knit and Natter (both accepted).
fn seeded() -> Gateway {
    let gateway = Gateway::start_with(with_scoped_commissioners, &[]);
    let ods = "https://fhir.nhs.uk/Id/ods-organization-code";
    let charity = "https://www.gov.uk/charity-commission";
    let carers: Vec<String> = (0..7)
        .map(|i| refer(&gateway, &format!("rep-c-{i}"), (ods, "X1A2B")))
        .collect();
    for (i, referral) in carers.iter().enumerate() {
        if i == 6 {
            report_status(&gateway, CARERS, referral, "declined");
            continue;
        }
        report_status(&gateway, CARERS, referral, "accepted");
        if i < 5 {
            report_status(&gateway, CARERS, referral, "contacted");
        }
    }
    // Baselines 40..48 and follow-ups with changes 3, 2, 5, 4, 4.
    for (i, (before, after)) in [(40, 43), (42, 44), (44, 49), (46, 50), (48, 52)]
        .into_iter()
        .enumerate()
    {
        report_wemwbs(&gateway, &carers[i], "baseline", before);
        report_wemwbs(&gateway, &carers[i], "follow-up", after);
    }
    for i in 0..2 {
        let referral = refer(&gateway, &format!("rep-k-{i}"), (charity, "1187654"));
        report_status(&gateway, KNIT, &referral, "accepted");
    }
    gateway
}

fn today() -> String {
    chrono::Utc::now().format("%Y-%m-%d").to_string()
}

fn get(gateway: &Gateway, token: &str, path: &str) -> (u16, Value) {
    send(gateway.http.get(gateway.url(path)).bearer_auth(token))
}

fn referrals(gateway: &Gateway, token: &str, by: &str) -> Value {
    let day = today();
    let path = format!("/reports/v1/referrals?from={day}&to={day}&by={by}");
    let (status, body) = get(gateway, token, &path);
    assert_eq!(status, 200, "{body}");
    body
}

fn row<'a>(table: &'a Value, group: &str) -> &'a Value {
    table["rows"]
        .as_array()
        .and_then(|rows| rows.iter().find(|r| r["group"] == group))
        .unwrap_or_else(|| panic!("no row {group}: {table}"))
}

fn is_suppressed(table: &Value, group: &str, column: &str) -> bool {
    table["suppressed"]
        .as_array()
        .is_some_and(|cells| cells.contains(&json!({"group": group, "column": column})))
}

/// Declines are counted by the code the organisation gave (`reason_code`), those given in words
/// only as not coded; the parts add up to the declined count, and the same figures are
/// Measures of their own.
#[test]
fn declines_are_reported_by_their_coded_reason() {
    let gateway = Gateway::start();
    let ods = "https://fhir.nhs.uk/Id/ods-organization-code";
    for i in 0..11 {
        let referral = refer(&gateway, &format!("rep-d-{i}"), (ods, "X1A2B"));
        let body = match i {
            // Six with a code alone (the GP practice reads the code's name), five in words.
            0..=5 => json!({"status": "declined", "reason_code": "no-capacity",
                            "occurred_at": "2026-05-10T14:00:00+01:00"}),
            _ => json!({"status": "declined", "reason": "We are not taking referrals",
                        "occurred_at": "2026-05-10T14:00:00+01:00"}),
        };
        let path = format!("/vcs/v1/referrals/{referral}/status");
        let (code, answer) = vcs_post(&gateway, CARERS, &path, &body);
        assert_eq!(code, 200, "{answer}");
        if i == 0 {
            let (_, tasks) =
                send(gateway.get(&format!("/fhir/Task?focus=ServiceRequest/{referral}")));
            let reason = &tasks["entry"][0]["resource"]["statusReason"];
            assert_eq!(reason["text"], "No places", "{reason}");
            assert_eq!(reason["coding"][0]["code"], "no-capacity", "{reason}");
        }
    }
    // A code with another status is refused, naming the field.
    let referral = refer(&gateway, "rep-d-accepted", (ods, "X1A2B"));
    let path = format!("/vcs/v1/referrals/{referral}/status");
    let body = json!({"status": "accepted", "reason_code": "no-capacity",
                      "occurred_at": "2026-05-10T14:00:00+01:00"});
    let (code, answer) = vcs_post(&gateway, CARERS, &path, &body);
    assert_eq!(code, 422, "{answer}");
    assert!(answer.to_string().contains("reason_code"), "{answer}");

    let table = referrals(&gateway, COMMISSIONER, "organisation");
    let all = &row(&table, "all")["values"];
    assert_eq!(all["received"], 12, "{table}");
    assert_eq!(all["declined"], 11, "{table}");
    assert_eq!(all["declined.no-capacity"], 6, "{table}");
    assert_eq!(all["declined.not-coded"], 5, "{table}");
    assert_eq!(all["declined.risk"], 0, "zeros are shown: {table}");
    let parts: u64 = all
        .as_object()
        .expect("values")
        .iter()
        .filter(|(key, _)| key.starts_with("declined."))
        .map(|(_, v)| v.as_u64().expect("shown"))
        .sum();
    assert_eq!(parts, 11);

    let day = today();
    let (status, bundle) = get(
        &gateway,
        COMMISSIONER,
        &format!(
            "/fhir/MeasureReport?measure=referrals-declined-no-capacity&period=ge{day}&period=le{day}"
        ),
    );
    assert_eq!(status, 200, "{bundle}");
    let report = &bundle["entry"][0]["resource"];
    assert_eq!(report["group"][0]["population"][0]["count"], 6, "{report}");
}

#[test]
fn a_commissioner_reads_aggregates_with_small_counts_suppressed() {
    let gateway = seeded();

    let by_month = referrals(&gateway, COMMISSIONER, "month");
    assert_eq!(by_month["report"], "referrals");
    assert_eq!(by_month["by"], "month");
    let all = &row(&by_month, "all")["values"];
    assert_eq!(all["received"], 9);
    assert_eq!(all["accepted"], 8);
    assert_eq!(all["contacted"], 5);
    assert_eq!(all["completed"], 0, "zeros are shown");
    // One decline: a count from 1 to 4 is null and listed, its reason breakdown too.
    assert_eq!(all["declined"], Value::Null);
    assert!(is_suppressed(&by_month, "all", "declined"), "{by_month}");
    assert!(is_suppressed(&by_month, "all", "declined.not-coded"));
    // The medians are over the referrals contacted (5): shown; none completed: not applicable.
    assert!(all["median_days_to_first_contact"].is_number(), "{all}");
    assert_eq!(all["median_days_to_completion"], Value::Null);
    assert!(!is_suppressed(
        &by_month,
        "all",
        "median_days_to_completion"
    ));

    // Two referrals to Knit and Natter: hidden, and Carers Count's 7 with them, or 9 − 7
    // would give the 2 away.
    let by_organisation = referrals(&gateway, COMMISSIONER, "organisation");
    let knit = &row(&by_organisation, "valley-knit-natter")["values"];
    assert_eq!(knit["received"], Value::Null);
    assert!(is_suppressed(
        &by_organisation,
        "valley-knit-natter",
        "received"
    ));
    let carers = &row(&by_organisation, "carers-count")["values"];
    assert_eq!(carers["received"], Value::Null, "{by_organisation}");
    assert!(is_suppressed(&by_organisation, "carers-count", "received"));
    assert_eq!(row(&by_organisation, "all")["values"]["received"], 9);
    assert_eq!(
        row(&by_organisation, "cyngor-ar-bopeth")["values"]["received"],
        0
    );
    // Every suppressed cell is null.
    for cell in by_organisation["suppressed"]
        .as_array()
        .expect("suppressed")
    {
        let group = cell["group"].as_str().expect("group");
        let column = cell["column"].as_str().expect("column");
        assert_eq!(row(&by_organisation, group)["values"][column], Value::Null);
    }

    let by_practice = referrals(&gateway, COMMISSIONER, "practice");
    assert_eq!(row(&by_practice, "W97001")["values"]["received"], 9);
    let by_need = referrals(&gateway, COMMISSIONER, "need-category");
    assert_eq!(row(&by_need, "social-connection")["values"]["received"], 9);
    assert_eq!(row(&by_need, "unknown")["values"]["received"], 0);

    // No record, no patient detail in any answer.
    for table in [&by_month, &by_organisation, &by_practice, &by_need] {
        let text = table.to_string();
        for personal in ["Llywelyn", "9000000009", "CF10", "rep-c-0"] {
            assert!(!text.contains(personal), "{personal} in {text}");
        }
    }
}

#[test]
fn a_scope_restricts_what_a_commissioner_sees() {
    let gateway = seeded();
    let carers = referrals(&gateway, CARERS_ONLY, "organisation");
    let groups: Vec<&str> = carers["rows"]
        .as_array()
        .expect("rows")
        .iter()
        .filter_map(|r| r["group"].as_str())
        .collect();
    assert_eq!(groups, ["carers-count", "all"]);
    assert_eq!(row(&carers, "carers-count")["values"]["received"], 7);
    assert_eq!(row(&carers, "all")["values"]["accepted"], 6);

    let none = referrals(&gateway, OTHER_PRACTICES, "practice");
    let groups: Vec<&str> = none["rows"]
        .as_array()
        .expect("rows")
        .iter()
        .filter_map(|r| r["group"].as_str())
        .collect();
    assert_eq!(groups, ["A81001", "A81002", "all"]);
    assert_eq!(row(&none, "all")["values"]["received"], 0);
}

#[test]
fn wellbeing_means_and_confidence_interval_on_known_scores() {
    let gateway = seeded();
    let day = today();
    let path =
        format!("/reports/v1/wellbeing?from={day}&to={day}&by=organisation&instrument=wemwbs");
    let (status, table) = get(&gateway, COMMISSIONER, &path);
    assert_eq!(status, 200, "{table}");
    assert_eq!(table["instrument"], "wemwbs");
    let carers = &row(&table, "carers-count")["values"];
    assert_eq!(carers["wemwbs-total.people"], 5);
    assert_eq!(carers["wemwbs-total.mean_baseline"], 44.0);
    assert_eq!(carers["wemwbs-total.mean_follow_up"], 47.6);
    assert_eq!(carers["wemwbs-total.mean_change"], 3.6);
    // Changes 3, 2, 5, 4, 4: sd 1.1402, t(0.975, 4) 2.7764, half-width 1.4157.
    assert_eq!(carers["wemwbs-total.change_ci_low"], 2.18);
    assert_eq!(carers["wemwbs-total.change_ci_high"], 5.02);
    // Four of five improved by 3 points or more: a count from 1 to 4, hidden with its share.
    assert_eq!(carers["wemwbs-total.reached_threshold"], Value::Null);
    assert!(is_suppressed(
        &table,
        "carers-count",
        "wemwbs-total.reached_threshold"
    ));
    assert!(is_suppressed(
        &table,
        "carers-count",
        "wemwbs-total.share_reached"
    ));
    // Nobody at Knit and Natter has a pair: zero people, no means (not suppressed: none).
    let knit = &row(&table, "valley-knit-natter")["values"];
    assert_eq!(knit["wemwbs-total.people"], 0);
    assert_eq!(knit["wemwbs-total.mean_change"], Value::Null);
    assert!(!is_suppressed(
        &table,
        "valley-knit-natter",
        "wemwbs-total.mean_change"
    ));

    // The carers-only scope sees the same people; a scope without them sees nobody.
    let (_, scoped) = get(&gateway, CARERS_ONLY, &path);
    assert_eq!(row(&scoped, "all")["values"]["wemwbs-total.people"], 5);
    let (_, other) = get(&gateway, OTHER_PRACTICES, &path);
    assert_eq!(row(&other, "all")["values"]["wemwbs-total.people"], 0);
}

#[test]
fn csv_has_a_heading_and_a_row_per_group() {
    let gateway = seeded();
    let day = today();
    let response = gateway
        .http
        .get(gateway.url(&format!(
            "/reports/v1/referrals?from={day}&to={day}&by=organisation"
        )))
        .bearer_auth(COMMISSIONER)
        .header("accept", "text/csv")
        .send()
        .expect("request");
    assert_eq!(response.status().as_u16(), 200);
    let content_type = response.headers()["content-type"].to_str().expect("type");
    assert!(content_type.starts_with("text/csv"), "{content_type}");
    let text = response.text().expect("body");
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        lines[0],
        "group,label,received,accepted,declined,declined.no-capacity,declined.not-eligible,\
         declined.outside-area,declined.needs-beyond-service,declined.risk,\
         declined.already-supported,declined.insufficient-information,declined.other,\
         declined.not-coded,contacted,attended,\
         did_not_attend,completed,cancelled,median_days_to_first_contact,median_days_to_completion"
    );
    // Four organisations and the total.
    assert_eq!(lines.len(), 6, "{text}");
    let knit = lines
        .iter()
        .find(|l| l.starts_with("valley-knit-natter,"))
        .expect("knit row");
    assert!(
        knit.starts_with("valley-knit-natter,Valley Knit and Natter,,"),
        "{knit}"
    );
    assert!(lines[5].starts_with("all,All,9,8,"), "{}", lines[5]);
}

#[test]
fn only_commissioners_read_reports_and_commissioners_read_no_records() {
    let gateway = Gateway::start_with(with_scoped_commissioners, &[]);
    let day = today();
    let report = format!("/reports/v1/referrals?from={day}&to={day}&by=month");
    for token in [GP_TOKEN, CARERS, ADMIN_TOKEN] {
        let (status, body) = get(&gateway, token, &report);
        assert_eq!(status, 403, "{token}: {body}");
    }
    let (status, _) = send(gateway.http.get(gateway.url(&report)));
    assert_eq!(status, 401);
    let (status, _) = get(&gateway, "not-a-token-at-all", &report);
    assert_eq!(status, 401);

    for path in [
        "/fhir/ServiceRequest",
        "/fhir/Task",
        "/fhir/Patient/anything",
        "/vcs/v1/referrals",
        "/admin/v1/deliveries",
        "/metrics",
    ] {
        let (status, body) = get(&gateway, COMMISSIONER, path);
        assert_eq!(status, 403, "{path}: {body}");
    }
    let (_, outcome) = get(&gateway, COMMISSIONER, "/fhir/ServiceRequest");
    assert_eq!(outcome["resourceType"], "OperationOutcome");
}

#[test]
fn bad_parameters_are_named() {
    let gateway = Gateway::start();
    for (query, named) in [
        ("from=2026-02-01&to=2026-01-01&by=month", "to"),
        ("from=2026-01-01&to=2026-01-31&by=week", "by"),
        ("from=2026-1-1&to=2026-01-31&by=month", "from"),
        ("to=2026-01-31&by=month", "from"),
        ("from=2026-01-01&to=2026-01-31&by=month&colour=red", "query"),
    ] {
        let (status, body) = get(
            &gateway,
            COMMISSIONER,
            &format!("/reports/v1/referrals?{query}"),
        );
        assert_eq!(status, 400, "{query}: {body}");
        assert!(
            body["detail"]
                .as_str()
                .is_some_and(|d| d.starts_with(named)),
            "{query}: {body}"
        );
    }
    let (status, body) = get(
        &gateway,
        COMMISSIONER,
        "/reports/v1/wellbeing?from=2026-01-01&to=2026-01-31&by=month",
    );
    assert_eq!(status, 400, "{body}");
    let (status, _) = send(
        gateway
            .http
            .get(gateway.url("/reports/v1/referrals?from=2026-01-01&to=2026-01-31&by=month"))
            .bearer_auth(COMMISSIONER)
            .header("accept", "application/xml"),
    );
    assert_eq!(status, 406);
}

#[test]
fn measure_reports_carry_the_same_figures_and_validate_against_their_measures() {
    let gateway = seeded();
    // Measures are definitions: readable without a token.
    let (status, bundle) = send(gateway.http.get(gateway.url("/fhir/Measure")));
    assert_eq!(status, 200, "{bundle}");
    let measures: Vec<Value> = bundle["entry"]
        .as_array()
        .expect("entries")
        .iter()
        .map(|e| e["resource"].clone())
        .collect();
    assert!(measures.len() > 20);
    let (status, one) = send(
        gateway
            .http
            .get(gateway.url("/fhir/Measure/referrals-received")),
    );
    assert_eq!(status, 200);
    assert_eq!(
        one["url"],
        "https://fhir.sp-gateway.uk/Measure/referrals-received"
    );
    let validator = sp_validator::Validator::with_extra(measures.clone()).expect("validator");
    let options = sp_validator::Options {
        profiles_by_type: &[],
        root_profiles: &[],
    };
    let errors = |resource: &Value| -> Vec<sp_validator::Issue> {
        validator
            .validate(resource, &options)
            .into_iter()
            .filter(|i| {
                matches!(
                    i.severity,
                    sp_validator::Severity::Error | sp_validator::Severity::Fatal
                )
            })
            .collect()
    };
    for measure in &measures {
        let errors = errors(measure);
        assert!(errors.is_empty(), "{}: {errors:?}", measure["id"]);
    }

    let day = today();
    let asked = "referrals-received,https://fhir.sp-gateway.uk/Measure/referrals-declined,\
                 referrals-median-days-to-first-contact,wemwbs-total-mean-change,\
                 wemwbs-total-share-reached";
    let path = format!("/fhir/MeasureReport?measure={asked}&period=ge{day}&period=le{day}");
    let (status, bundle) = get(&gateway, COMMISSIONER, &path);
    assert_eq!(status, 200, "{bundle}");
    let reports: Vec<&Value> = bundle["entry"]
        .as_array()
        .expect("entries")
        .iter()
        .map(|e| &e["resource"])
        .collect();
    assert_eq!(reports.len(), 5);
    for report in &reports {
        assert_eq!(report["type"], "summary");
        let errors = errors(report);
        assert!(errors.is_empty(), "{}: {errors:?}", report["measure"]);
        let stratifiers: Vec<&str> = report["group"][0]["stratifier"]
            .as_array()
            .expect("stratifiers")
            .iter()
            .filter_map(|s| s["code"][0]["coding"][0]["code"].as_str())
            .collect();
        assert_eq!(
            stratifiers,
            ["month", "practice", "organisation", "need-category"]
        );
    }
    let by_measure = |id: &str| {
        reports
            .iter()
            .find(|r| r["measure"] == format!("https://fhir.sp-gateway.uk/Measure/{id}"))
            .unwrap_or_else(|| panic!("no report of {id}"))
    };
    let received = &by_measure("referrals-received")["group"][0];
    assert_eq!(received["population"][0]["count"], 9);
    // By organisation: Knit and Natter's 2 and Carers Count's 7 are masked, as in the table.
    let organisations = &received["stratifier"][2]["stratum"];
    let stratum = |value: &str| {
        organisations
            .as_array()
            .and_then(|s| s.iter().find(|s| s["value"]["text"] == value))
            .unwrap_or_else(|| panic!("no stratum {value}"))
            .clone()
    };
    for masked in ["valley-knit-natter", "carers-count"] {
        let population = &stratum(masked)["population"][0];
        assert!(population.get("count").is_none(), "{population}");
        assert_eq!(population["_count"]["extension"][0]["valueCode"], "masked");
    }
    assert_eq!(stratum("cyngor-ar-bopeth")["population"][0]["count"], 0);
    // One decline: masked in the whole-population group too.
    let declined = &by_measure("referrals-declined")["group"][0]["population"][0];
    assert_eq!(declined["_count"]["extension"][0]["valueCode"], "masked");
    // The mean change of the five pairs.
    let change = &by_measure("wemwbs-total-mean-change")["group"][0];
    assert_eq!(change["measureScore"]["value"], 3.6);
    // Four of five reached the threshold: the numerator and the score are masked.
    let share = &by_measure("wemwbs-total-share-reached")["group"][0];
    assert_eq!(share["measureScore"]["extension"][0]["valueCode"], "masked");

    // Commissioners only; a GP system's token is refused, and a bad period is a 400.
    let (status, _) = get(&gateway, GP_TOKEN, &path);
    assert_eq!(status, 403);
    let bad = format!("/fhir/MeasureReport?measure=referrals-received&period={day}");
    let (status, outcome) = get(&gateway, COMMISSIONER, &bad);
    assert_eq!(status, 400, "{outcome}");
    let (status, _) = get(
        &gateway,
        COMMISSIONER,
        "/fhir/MeasureReport?measure=nothing",
    );
    assert_eq!(status, 400);
}

/// The page and its CSV with a token, as a script reads them: the commissioner's token opens the
/// page (no session, so no sign-out); any other token is refused; no token asks to sign in.
#[test]
fn the_reports_page_opens_with_the_commissioners_token() {
    let gateway = Gateway::start();
    let http = reqwest::blocking::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    let page = |token: Option<&str>, path: &str| {
        let mut request = http.get(gateway.url(path));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let response = request.send().expect("answer");
        let status = response.status().as_u16();
        let location = response
            .headers()
            .get("location")
            .and_then(|l| l.to_str().ok())
            .map(str::to_string);
        (status, location, response.text().expect("body"))
    };
    let (status, _, body) = page(Some(COMMISSIONER), "/reports");
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("Commissioner reports"), "{body}");
    assert!(
        body.contains("Golden Valley Integrated Care Board"),
        "{body}"
    );
    assert!(!body.contains("Sign out"), "{body}");

    let day = today();
    let csv = format!("/reports/referrals.csv?from={day}&to={day}&by=month");
    let (status, _, body) = page(Some(COMMISSIONER), &csv);
    assert_eq!(status, 200, "{body}");
    assert!(body.starts_with("group,label,received,"), "{body}");

    for token in [GP_TOKEN, CARERS, ADMIN_TOKEN, "not-a-token-at-all"] {
        let (status, _, body) = page(Some(token), "/reports");
        assert_eq!(status, 403, "{token}: {body}");
        assert!(!body.contains("Referrals received"), "{token}: {body}");
    }
    let (status, location, _) = page(None, "/reports");
    assert_eq!(status, 303);
    assert_eq!(location.as_deref(), Some("/inbox/login"));
}
