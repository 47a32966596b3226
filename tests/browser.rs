//! The web inbox in a real browser: headless Chromium driven over WebDriver (chromedriver), on
//! the real gateway. A GP refers over FHIR; a member of the group signs in, finds the referral,
//! accepts it and records a SWEMWBS; the GP then reads the Task and Observation. axe-core
//! checks each page: no serious or critical accessibility violation. An operator signs in to the
//! operator pages and retries a dead letter; a commissioner reads the reports page and its CSV.
//!
//! Needs `chromium` and `chromium-driver` (`.ci/run` installs them) and npm (for axe-core, put
//! in `target/axe` on first run). Without them the test fails: it never skips. With
//! `SP_SCREENSHOTS=1` it saves the main pages to `docs/screenshots/`.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{json, Value};

use common::receiver::{Receiver, Reply};
use common::web::{self, PASSWORD};
const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

/// chromedriver on a free port, stopped when dropped.
struct Driver {
    child: Child,
    url: String,
}

impl Driver {
    fn start() -> Driver {
        for program in [CHROMIUM, CHROMEDRIVER] {
            assert!(
                Path::new(program).exists(),
                "{program} is missing: install chromium and chromium-driver (.ci/run does)"
            );
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let child = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start chromedriver");
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "chromedriver did not listen");
            std::thread::sleep(Duration::from_millis(50));
        }
        Driver {
            child,
            url: format!("http://127.0.0.1:{port}"),
        }
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// axe-core's script, installed from the npm registry into `target/axe` when missing.
fn axe_source() -> String {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/axe");
    let script = root.join("node_modules/axe-core/axe.min.js");
    if !script.exists() {
        let status = Command::new("npm")
            .args(["install", "--no-audit", "--no-fund", "--prefix"])
            .arg(&root)
            .arg("axe-core@4")
            .status()
            .expect("npm (needed to install axe-core)");
        assert!(status.success(), "npm install axe-core@4 failed");
    }
    std::fs::read_to_string(&script).expect("axe-core")
}

fn add_user(gateway: &Gateway, org: &str, email: &str) {
    web::add_user(gateway, &["--org", org, "--email", email]);
}

/// No serious or critical axe-core violation on the page shown.
async fn assert_accessible(client: &Client, axe: &str, page: &str) {
    client.execute(axe, vec![]).await.expect("inject axe-core");
    let found = client
        .execute_async(
            "const done = arguments[arguments.length - 1];
             axe.run(document, {resultTypes: ['violations']})
               .then(r => done(r.violations
                 .filter(v => v.impact === 'serious' || v.impact === 'critical')
                 .map(v => v.id + ' (' + v.impact + '): ' + v.help + ' at '
                      + v.nodes.map(n => n.target.join(' ')).join(', '))))
               .catch(e => done(['axe failed: ' + e]));",
            vec![],
        )
        .await
        .expect("run axe-core");
    let violations = found.as_array().cloned().unwrap_or_default();
    assert!(violations.is_empty(), "{page}: {violations:#?}");
}

/// Usable at 320 px: nothing wider than the window.
async fn assert_fits_320(client: &Client, page: &str) {
    client.set_window_size(320, 800).await.unwrap();
    let overflow = client
        .execute(
            "return document.documentElement.scrollWidth > window.innerWidth;",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(overflow, json!(false), "{page} scrolls sideways at 320 px");
}

async fn screenshot(client: &Client, name: &str) {
    if std::env::var_os("SP_SCREENSHOTS").is_none() {
        return;
    }
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("docs/screenshots");
    std::fs::create_dir_all(&dir).expect("docs/screenshots");
    let png = client.screenshot().await.expect("screenshot");
    std::fs::write(dir.join(format!("{name}.png")), png).expect("write screenshot");
}

async fn click_button(client: &Client, label: &str) {
    click_xpath(client, &format!("//button[normalize-space()='{label}']")).await;
}

async fn click_xpath(client: &Client, xpath: &str) {
    click(client, Locator::XPath(xpath)).await;
}

/// Clicks the element `locator` finds; the test fails naming it when there is none.
async fn click(client: &Client, locator: Locator<'_>) {
    client
        .find(locator)
        .await
        .unwrap_or_else(|e| panic!("{locator:?}: {e}"))
        .click()
        .await
        .expect("click");
}

/// Waits (up to 10 s) for the page after a click to show `text`.
async fn wait_for_text(client: &Client, text: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let page = client.source().await.expect("page source");
        if page.contains(text) {
            return;
        }
        assert!(Instant::now() < deadline, "{text:?} never shown: {page}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn type_into(client: &Client, name: &str, text: &str) {
    let css = format!("input[name={name}]");
    client
        .find(Locator::Css(&css))
        .await
        .unwrap_or_else(|e| panic!("{css}: {e}"))
        .send_keys(text)
        .await
        .expect("type");
}

/// A headless Chromium session.
async fn open_browser(driver: &str) -> Client {
    let capabilities = json!({"goog:chromeOptions": {
        "binary": CHROMIUM,
        "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--window-size=1024,900"]
    }});
    let Value::Object(capabilities) = capabilities else {
        unreachable!("an object")
    };
    ClientBuilder::rustls()
        .expect("rustls")
        .capabilities(capabilities)
        .connect(driver)
        .await
        .expect("a browser session")
}

/// Signs in through the form.
async fn sign_in(client: &Client, base: &str, email: &str) {
    client.goto(&format!("{base}/inbox")).await.expect("goto");
    type_into(client, "email", email).await;
    type_into(client, "password", PASSWORD).await;
    click_button(client, "Sign in").await;
    wait_for_text(client, "Sign out").await;
}

/// Runs a browser journey on a runtime of its own, chromedriver alongside.
fn drive<F: std::future::Future<Output = ()>>(journey: impl FnOnce(String) -> F) {
    let driver = Driver::start();
    // The WebDriver client's TLS stack finds both rustls providers in the tree: choose one.
    let _ = rustls::crypto::ring::default_provider().install_default();
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime")
        .block_on(journey(driver.url.clone()));
}

async fn journey(base: &str, driver: &str, referral: &str) {
    let axe = axe_source();
    let client = open_browser(driver).await;

    // Sign in.
    client.goto(&format!("{base}/inbox")).await.expect("goto");
    assert!(client
        .current_url()
        .await
        .unwrap()
        .path()
        .ends_with("/inbox/login"));
    assert_accessible(&client, &axe, "sign-in").await;
    screenshot(&client, "login").await;
    type_into(&client, "email", "ann@carers.example").await;
    type_into(&client, "password", PASSWORD).await;
    click_button(&client, "Sign in").await;

    // The list shows the GP's referral.
    wait_for_text(&client, "New referrals (1)").await;
    assert_eq!(client.current_url().await.unwrap().path(), "/inbox");
    assert_accessible(&client, &axe, "list").await;
    screenshot(&client, "inbox").await;
    let link = format!("a[href='/inbox/referrals/{referral}']");
    click(&client, Locator::Css(&link)).await;

    // Accept it.
    wait_for_text(&client, "What happens next").await;
    assert_accessible(&client, &axe, "referral").await;
    screenshot(&client, "referral").await;
    click_button(&client, "Accept").await;
    wait_for_text(&client, "Saved.").await;

    // Record a SWEMWBS at baseline: open the form, answer all seven items.
    click(
        &client,
        Locator::XPath("//summary[normalize-space()='Record SWEMWBS']"),
    )
    .await;
    for (item, answer) in [3, 4, 3, 2, 4, 3, 5].iter().enumerate() {
        let id = format!("label[for='swemwbs-a{}-{answer}']", item + 1);
        click(&client, Locator::Css(&id)).await;
    }
    assert_accessible(&client, &axe, "questionnaire").await;
    screenshot(&client, "questionnaire").await;
    click_button(&client, "Save SWEMWBS").await;
    wait_for_text(&client, "Questionnaire saved.").await;

    assert_fits_320(&client, "referral").await;
    client.close().await.unwrap();
}

/// A gateway where Ann of Carers Count has one new referral (`reference`); `journey(base,
/// driver, referral)` runs in the browser. Answers the gateway, the referral's id and the Task
/// the GP practice reads afterwards.
fn ann_answers<F, Fut>(reference: &str, journey: F) -> (Gateway, String, Value)
where
    F: FnOnce(String, String, String) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let gateway = Gateway::start();
    add_user(&gateway, "carers-count", "ann@carers.example");
    let referral = gateway.refer(reference);
    let (base, id) = (gateway.base.clone(), referral.clone());
    drive(|driver| journey(base, driver, id));
    let (_, tasks) = send(gateway.get(&format!("/fhir/Task?focus=ServiceRequest/{referral}")));
    let task = tasks["entry"][0]["resource"].clone();
    (gateway, referral, task)
}

#[test]
fn a_group_answers_a_referral_in_a_real_browser() {
    let (gateway, referral, task) = ann_answers("REF-BROWSER-1", |base, driver, id| async move {
        journey(&base, &driver, &id).await
    });

    // What the GP reads.
    assert_eq!(task["status"], "accepted", "{task}");
    let (_, observations) = send(gateway.get(&format!(
        "/fhir/Observation?based-on=ServiceRequest/{referral}"
    )));
    assert!(
        observations["total"].as_u64().unwrap_or(0) >= 1,
        "{observations}"
    );
    assert!(
        observations.to_string().contains("24"),
        "the raw SWEMWBS total: {observations}"
    );
}

async fn decline_journey(base: &str, driver: &str, referral: &str) {
    let axe = axe_source();
    let client = open_browser(driver).await;
    sign_in(&client, base, "ann@carers.example").await;
    client
        .goto(&format!("{base}/inbox/referrals/{referral}"))
        .await
        .expect("goto");
    wait_for_text(&client, "If you decline, why?").await;

    // Decline without a reason: the error summary names the radios, and the page stays usable.
    click_button(&client, "Decline").await;
    wait_for_text(&client, "Choose why you are declining the referral").await;
    assert_accessible(&client, &axe, "decline error").await;
    // The summary's link goes to the radios (the first one carries the field's id).
    click(
        &client,
        Locator::LinkText("Choose why you are declining the referral"),
    )
    .await;
    assert!(client
        .current_url()
        .await
        .unwrap()
        .as_str()
        .ends_with("#reason_code"));
    // For the README's picture: the legend and the error above the radios in view too.
    client
        .execute("window.scrollBy(0, -170)", vec![])
        .await
        .expect("scroll");
    screenshot(&client, "decline-error").await;

    // Choose a coded reason (by its label, as a person would) and decline.
    click(
        &client,
        Locator::Css("label[for='reason_code-outside-area']"),
    )
    .await;
    click_button(&client, "Decline").await;
    wait_for_text(&client, "Saved.").await;
    wait_for_text(&client, "This referral is closed").await;
    client.close().await.unwrap();
}

#[test]
fn a_group_declines_a_referral_with_a_coded_reason_in_a_real_browser() {
    let (_, _, task) = ann_answers("REF-BROWSER-DECLINE", |base, driver, id| async move {
        decline_journey(&base, &driver, &id).await
    });

    // What the GP reads: rejected, the code beside the words.
    assert_eq!(task["status"], "rejected", "{task}");
    assert_eq!(task["statusReason"]["text"], "Outside the area", "{task}");
    assert_eq!(
        task["statusReason"]["coding"][0],
        json!({"system": "https://fhir.sp-gateway.uk/CodeSystem/decline-reason",
               "code": "outside-area", "display": "Outside the area"})
    );
}

const KNIT_SERVICE: &str = "f80b822c-7172-5b8d-9f63-72b7f1989394";

async fn onward_journey(base: &str, driver: &str, referral: &str) {
    let axe = axe_source();
    let client = open_browser(driver).await;
    sign_in(&client, base, "lis@links.example").await;
    client
        .goto(&format!("{base}/inbox/referrals/{referral}"))
        .await
        .expect("goto");
    click(&client, Locator::LinkText("Refer onward")).await;

    // The search form, prefilled; the link worker picks the need and types the postcode.
    wait_for_text(&client, "Search the service directory").await;
    assert_accessible(&client, &axe, "onward search").await;
    click(&client, Locator::Css("option[value='social-connection']")).await;
    let postcode = client
        .find(Locator::Css("input[name=postcode]"))
        .await
        .expect("postcode");
    postcode.clear().await.unwrap();
    postcode.send_keys("HR2 0LT").await.unwrap();
    click_button(&client, "Search").await;
    wait_for_text(&client, "Services found").await;
    assert_accessible(&client, &axe, "onward results").await;
    screenshot(&client, "onward").await;
    assert_fits_320(&client, "onward results").await;
    client.set_window_size(1024, 900).await.unwrap();

    // Confirmed without a choice: the error summary, itself accessible.
    click_button(&client, "Refer onward").await;
    wait_for_text(&client, "There is a problem").await;
    assert_accessible(&client, &axe, "onward error").await;

    // Choose Knit and Natter, add a note, confirm.
    let radio = format!("//input[@value='{KNIT_SERVICE}']/following-sibling::label");
    click(&client, Locator::XPath(&radio)).await;
    client
        .find(Locator::Css("textarea[name=note]"))
        .await
        .expect("the note")
        .send_keys("Would like company on Thursdays")
        .await
        .unwrap();
    click_button(&client, "Refer onward").await;
    wait_for_text(&client, "Referred onward to Knit and Natter, Ewyas Harold").await;
    assert_accessible(&client, &axe, "referral after onward").await;
    client.close().await.unwrap();
}

#[test]
fn a_link_worker_refers_onward_in_a_real_browser() {
    let gateway = Gateway::start();
    gateway.import_directory(&[concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/directory")]);
    add_user(&gateway, "link-workers", "lis@links.example");
    let mut referral = contained_referral("REF-BROWSER-ONWARD");
    referral["performer"] = json!([{"type": "Organization", "display": "Golden Valley Link Workers",
        "identifier": {"system": "https://fhir.nhs.uk/Id/ods-organization-code", "value": "X7L4W"}}]);
    let (status, created) = send(gateway.post_json("/fhir/ServiceRequest", &referral));
    assert_eq!(status, 201, "{created}");
    let parent = created["id"].as_str().expect("id").to_string();
    let accepted = json!({"status": "accepted", "occurred_at": "2026-05-10T14:00:00+01:00"});
    let path = format!("/vcs/v1/referrals/{parent}/status");
    let (status, body) = vcs_post(&gateway, "demo-vcs-link-workers", &path, &accepted);
    assert_eq!(status, 200, "{body}");

    let (base, id) = (gateway.base.clone(), parent.clone());
    drive(|driver| async move { onward_journey(&base, &driver, &id).await });

    let (_, children) = send(gateway.get(&format!(
        "/fhir/ServiceRequest?based-on=ServiceRequest/{parent}"
    )));
    assert_eq!(children["total"], 1, "{children}");
}

/// The first button whose text starts with `label` (its visually hidden rest names the thing).
async fn click_button_starting(client: &Client, label: &str) {
    click_xpath(
        client,
        &format!("//button[starts-with(normalize-space(), '{label}')]"),
    )
    .await;
}

/// Opens `path` signed out, is sent to the sign-in form, and signs in as `email`.
async fn sign_in_from(client: &Client, base: &str, path: &str, email: &str) {
    client.goto(&format!("{base}{path}")).await.expect("goto");
    assert!(client
        .current_url()
        .await
        .unwrap()
        .path()
        .ends_with("/inbox/login"));
    type_into(client, "email", email).await;
    type_into(client, "password", PASSWORD).await;
    click_button(client, "Sign in").await;
}

async fn operator_journey(base: &str, driver: &str, dead: &str) {
    let axe = axe_source();
    let client = open_browser(driver).await;
    sign_in_from(&client, base, "/admin", "ops@gateway.example").await;

    // The overview.
    wait_for_text(&client, "Deliveries by organisation").await;
    assert_eq!(client.current_url().await.unwrap().path(), "/admin");
    assert_accessible(&client, &axe, "overview").await;
    // Tall enough for the endpoints' health and the feeds too.
    client.set_window_size(1024, 1400).await.unwrap();
    screenshot(&client, "admin").await;
    assert_fits_320(&client, "overview").await;
    client.set_window_size(1024, 900).await.unwrap();

    // Retry the dead letter.
    click(&client, Locator::LinkText("Dead letters")).await;
    wait_for_text(&client, dead).await;
    assert_accessible(&client, &axe, "dead letters").await;
    click_button_starting(&client, "Retry").await;
    wait_for_text(&client, "is back in the queue").await;
    assert_accessible(&client, &axe, "dead letters after a retry").await;
    assert_fits_320(&client, "dead letters").await;

    for (path, heading) in [
        ("/admin/refusals", "Intake refusals"),
        ("/admin/audit", "Audit"),
    ] {
        client.set_window_size(1024, 900).await.unwrap();
        client.goto(&format!("{base}{path}")).await.expect("goto");
        wait_for_text(&client, &format!("<h1 class=\"heading-l\">{heading}</h1>")).await;
        assert_accessible(&client, &axe, path).await;
        assert_fits_320(&client, path).await;
    }
    client.close().await.unwrap();
}

#[test]
fn an_operator_retries_a_dead_letter_in_a_real_browser() {
    let receiver = Receiver::start();
    receiver.answer(|_| Reply::status(500));
    let hooks = receiver.base.clone();
    let gateway = Gateway::start_with(move |c| deliver_to(c, &hooks, &["1s"]), &[]);
    web::add_user(
        &gateway,
        &["--role", "operator", "--email", "ops@gateway.example"],
    );
    gateway.refer("REF-BROWSER-DEAD");
    let dead = web::dead_letters(&gateway, 1).remove(0);
    receiver.answer(|_| Reply::status(204));
    let (base, id) = (gateway.base.clone(), dead.clone());
    drive(|driver| async move { operator_journey(&base, &driver, &id).await });

    // The retried message went out.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (_, delivered) = gateway.admin_get("/admin/v1/deliveries?state=delivered");
        if delivered.to_string().contains(&dead) {
            break;
        }
        assert!(Instant::now() < deadline, "{delivered}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

async fn commissioner_journey(base: &str, driver: &str) {
    let axe = axe_source();
    let client = open_browser(driver).await;
    sign_in_from(&client, base, "/reports", "icb@valley.example").await;

    // The page: both tables, and the charts drawn on the server.
    wait_for_text(&client, "Download the referrals table (CSV)").await;
    assert_eq!(client.current_url().await.unwrap().path(), "/reports");
    let page = client.source().await.unwrap();
    // The referrals chart (the wellbeing chart needs questionnaires, which this test has none of);
    // every chart is an image with its own title.
    let charts = page.matches("<svg").count();
    assert!(charts >= 1, "{page}");
    assert_eq!(page.matches("role=\"img\"").count(), charts, "{page}");
    assert!(page.contains("Download the wellbeing table (CSV)"));
    assert_accessible(&client, &axe, "reports").await;
    assert_fits_320(&client, "reports").await;

    // The referrals table as CSV, through the page's own link and the browser's session.
    let href = client
        .find(Locator::LinkText("Download the referrals table (CSV)"))
        .await
        .expect("the CSV link")
        .attr("href")
        .await
        .unwrap()
        .expect("href");
    let cookie = client
        .get_all_cookies()
        .await
        .unwrap()
        .iter()
        .map(|c| format!("{}={}", c.name(), c.value()))
        .collect::<Vec<_>>()
        .join("; ");
    let url = format!("{base}{href}");
    let (status, csv) = tokio::task::spawn_blocking(move || {
        let response = reqwest::blocking::Client::new()
            .get(url)
            .header("Cookie", cookie)
            .send()
            .expect("the CSV");
        (response.status().as_u16(), response.text().expect("text"))
    })
    .await
    .unwrap();
    assert_eq!(status, 200, "{csv}");
    assert!(csv.starts_with("group,label,received,"), "{csv}");
    // The six referrals of this test, in the row of every month together.
    let all = csv
        .lines()
        .find(|line| line.starts_with("all,"))
        .expect("the total row");
    assert_eq!(all.split(',').nth(2), Some("6"), "{csv}");
    client.close().await.unwrap();
}

#[test]
fn a_commissioner_reads_the_reports_page_in_a_real_browser() {
    let gateway = Gateway::start();
    web::add_user(
        &gateway,
        &[
            "--role",
            "commissioner",
            "--commissioner",
            "valley-icb",
            "--email",
            "icb@valley.example",
        ],
    );
    for n in 0..6 {
        gateway.refer(&format!("REF-BROWSER-REPORT-{n}"));
    }
    let base = gateway.base.clone();
    drive(|driver| async move { commissioner_journey(&base, &driver).await });
}
