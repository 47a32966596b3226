//! A browser without JavaScript for the web pages (inbox and operator pages): accounts made with
//! `sp-gateway users add`, a cookie jar, forms posted with their CSRF token.

use std::io::Write;
use std::process::{Command, Stdio};

use reqwest::blocking::{Client, Response};
use reqwest::redirect::Policy;

use super::Gateway;

pub const PASSWORD: &str = "a long walk by the Wye";

/// Adds an account with `sp-gateway users add`; returns what it printed.
pub fn add_user(gateway: &Gateway, args: &[&str]) -> String {
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
pub struct Browser<'g> {
    pub gateway: &'g Gateway,
    pub http: Client,
}

impl<'g> Browser<'g> {
    pub fn new(gateway: &'g Gateway) -> Self {
        let http = Client::builder()
            .cookie_store(true)
            .redirect(Policy::none())
            .build()
            .expect("client");
        Browser { gateway, http }
    }

    pub fn get(&self, path: &str) -> (u16, String) {
        read(self.http.get(self.gateway.url(path)).send().expect("GET"))
    }

    pub fn post(&self, path: &str, fields: &[(&str, &str)]) -> (u16, String) {
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
    pub fn sign_in(&self, email: &str, password: &str, code: &str) -> (u16, String) {
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

pub fn read(response: Response) -> (u16, String) {
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
pub fn csrf_of(page: &str) -> String {
    let at = page.find("name=\"csrf\" value=\"").expect("a csrf field") + 19;
    page[at..].split('"').next().expect("value").to_string()
}

/// The dead messages' ids, once there are `n` (waiting up to 30 s).
pub fn dead_letters(gateway: &Gateway, n: u64) -> Vec<String> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let (status, body) = gateway.admin_get("/admin/v1/deliveries?state=dead");
        assert_eq!(status, 200, "{body}");
        if body["total"].as_u64() == Some(n) {
            return body["items"]
                .as_array()
                .expect("items")
                .iter()
                .map(|d| d["id"].as_str().expect("id").to_string())
                .collect();
        }
        assert!(std::time::Instant::now() < deadline, "{body}");
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
}
