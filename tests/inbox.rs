//! The web inbox over real HTTP: accounts made with `sp-gateway users`, sign-in (cookies,
//! CSRF, TOTP, throttling), the list and one referral, actions through the same lifecycle as
//! `/vcs/v1` (the GP reads the Task and Observations), and one organisation never seeing
//! another's referrals.

mod common;

use std::io::Write;
use std::process::{Command, Stdio};

use common::*;
use reqwest::blocking::{Client, Response};
use reqwest::redirect::Policy;

const PASSWORD: &str = "a long walk by the Wye";

/// Adds an account with `sp-gateway users add`; returns what it printed.
fn add_user(gateway: &Gateway, args: &[&str]) -> String {
    let mut child = Command::new(env!("CARGO_BIN_EXE_sp-gateway"))
        .args(["users", "add", "--config"])
        .arg(gateway.dir.path().join("gateway.toml"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("users add");
    let mut stdin = child.stdin.take().expect("stdin");
    writeln!(stdin, "{PASSWORD}").expect("password");
    drop(stdin);
    let out = child.wait_with_output().expect("output");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A browser without JavaScript: a cookie jar, no redirects followed.
struct Browser<'g> {
    gateway: &'g Gateway,
    http: Client,
}

impl<'g> Browser<'g> {
    fn new(gateway: &'g Gateway) -> Self {
        let http = Client::builder()
            .cookie_store(true)
            .redirect(Policy::none())
            .build()
            .expect("client");
        Browser { gateway, http }
    }

    fn get(&self, path: &str) -> (u16, String) {
        read(self.http.get(self.gateway.url(path)).send().expect("GET"))
    }

    fn post(&self, path: &str, fields: &[(&str, &str)]) -> (u16, String) {
        let body: String = form_urlencoded::Serializer::new(String::new())
            .extend_pairs(fields)
            .finish();
        let response = self
            .http
            .post(self.gateway.url(path))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body)
            .send()
            .expect("POST");
        read(response)
    }

    /// Signs in through the form; answers the status of the form's answer and its page.
    fn sign_in(&self, email: &str, password: &str, code: &str) -> (u16, String) {
        let (status, page) = self.get("/inbox/login");
        assert_eq!(status, 200, "{page}");
        let csrf = csrf_of(&page);
        self.post(
            "/inbox/login",
            &[
                ("csrf", &csrf),
                ("email", email),
                ("password", password),
                ("code", code),
            ],
        )
    }
}

fn read(response: Response) -> (u16, String) {
    let status = response.status().as_u16();
    let location = response
        .headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let text = response.text().expect("body");
    (status, location.unwrap_or(text))
}

/// The value of the form's hidden `csrf` field.
fn csrf_of(page: &str) -> String {
    let at = page.find("name=\"csrf\" value=\"").expect("a csrf field") + 19;
    page[at..].split('"').next().expect("value").to_string()
}

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
    for part in ["HttpOnly", "SameSite=Strict", "Path=/inbox"] {
        assert!(set_cookie.contains(part), "{set_cookie}");
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
    let (status, page) = ann.post(&status_path, &[("csrf", &csrf), ("status", "declined")]);
    assert_eq!(status, 422);
    assert!(page.contains("Enter a reason to decline"), "{page}");
    let (status, _) = ann.post(&status_path, &[("status", "accepted")]);
    assert_eq!(status, 403);
    let (status, _) = ann.post(&status_path, &[("csrf", "forged"), ("status", "accepted")]);
    assert_eq!(status, 403);

    // Accept, with a note: the GP's Task says accepted.
    let (status, to) = ann.post(
        &status_path,
        &[
            ("csrf", &csrf),
            ("status", "accepted"),
            ("note", "We will ring on Monday"),
        ],
    );
    assert_eq!((status, to.clone()), (303, format!("{path}?done=status")));
    let (_, tasks) = send(gateway.get(&format!("/fhir/Task?focus=ServiceRequest/{referral}")));
    let task = &tasks["entry"][0]["resource"];
    assert_eq!(task["status"], "accepted", "{task}");
    assert_eq!(task["meta"]["versionId"], "2");

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
