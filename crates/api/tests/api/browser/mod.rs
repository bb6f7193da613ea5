//! A real browser for the console's tests: Debian's headless Chromium driven over WebDriver by
//! its `chromedriver` (installed by `scripts/install-browser`), on loopback only. Each
//! [`Browser`] is its own chromedriver and browser profile, so tests run side by side.
//!
//! [`Browser::screenshots`] saves a page at a laptop's and a phone's width under
//! `target/console-screenshots/` (test artifacts, not committed).

use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use fantoccini::elements::Element;
use fantoccini::{Client, ClientBuilder, Locator};
use hyper_util::client::legacy::connect::HttpConnector;
use serde_json::{Value, json};
use tokio::process::{Child, Command};

use crate::helpers::{TestApp, status_json};

mod console;

/// A laptop's window, in CSS pixels.
pub const LAPTOP: (u32, u32) = (1366, 900);
/// A phone's window, in CSS pixels.
pub const PHONE: (u32, u32) = (390, 844);
/// How long a wait for the page lasts before the test fails.
pub const PATIENCE: Duration = Duration::from_secs(15);

/// A headless Chromium and the chromedriver that drives it.
pub struct Browser {
    /// The WebDriver session.
    pub client: Client,
    /// The API the browser visits, `http://127.0.0.1:PORT`.
    pub base: String,
    driver: Child,
    _profile: tempfile::TempDir,
}

/// `name` on the `PATH` (Debian's packages put both programs in `/usr/bin`).
fn tool(name: &str) -> PathBuf {
    std::env::var_os("PATH")
        .iter()
        .flat_map(std::env::split_paths)
        .map(|dir| dir.join(name))
        .find(|path| path.is_file())
        .unwrap_or_else(|| {
            panic!(
                "{name} is missing: scripts/install-browser installs Debian's chromium and \
                 chromium-driver"
            )
        })
}

fn free_port() -> u16 {
    std::net::TcpListener::bind(("127.0.0.1", 0))
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Browser {
    /// A new browser pointed at `app`, with a laptop's window.
    pub async fn start(app: &TestApp) -> Self {
        let profile = tempfile::tempdir().unwrap();
        let mut last = String::new();
        // The port is free when chosen; another process may take it before chromedriver binds
        // it, so a failed start is tried again on another.
        for _ in 0..3 {
            let port = free_port();
            let mut driver = Command::new(tool("chromedriver"))
                .arg(format!("--port={port}"))
                .arg("--allowed-ips=127.0.0.1")
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .kill_on_drop(true)
                .spawn()
                .unwrap();
            match connect(port, &profile).await {
                Ok(client) => {
                    let browser = Self {
                        client,
                        base: app.base.clone(),
                        driver,
                        _profile: profile,
                    };
                    browser.resize(LAPTOP).await;
                    return browser;
                }
                Err(e) => {
                    last = e;
                    let _ = driver.kill().await;
                }
            }
        }
        panic!("chromedriver did not start: {last}");
    }

    /// Opens `path` of the API.
    pub async fn open(&self, path: &str) {
        self.client
            .goto(&format!("{}{path}", self.base))
            .await
            .unwrap();
    }

    /// The path of the page shown.
    pub async fn path(&self) -> String {
        self.client.current_url().await.unwrap().path().to_owned()
    }

    /// The page's visible text.
    pub async fn text(&self) -> String {
        self.find("body").await.text().await.unwrap()
    }

    /// The page's HTML as the browser holds it now.
    pub async fn source(&self) -> String {
        self.client.source().await.unwrap()
    }

    /// The first element `css` selects (waiting for it up to [`PATIENCE`]).
    pub async fn find(&self, css: &str) -> Element {
        self.client
            .wait()
            .at_most(PATIENCE)
            .for_element(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("no {css} on {}: {e}", self.base))
    }

    /// Every element `css` selects now.
    pub async fn find_all(&self, css: &str) -> Vec<Element> {
        self.client.find_all(Locator::Css(css)).await.unwrap()
    }

    /// Clicks the first element `css` selects, a link or a form's button, and waits up to
    /// [`PATIENCE`] until the page it leads to has loaded (so nothing is read from the page
    /// left behind).
    pub async fn click(&self, css: &str) {
        self.run("window.gpudevLeft = true; return null").await;
        self.press(css).await;
        let deadline = Instant::now() + PATIENCE;
        while Instant::now() < deadline {
            let loaded = self
                .client
                .execute(
                    "return window.gpudevLeft === undefined && document.readyState === 'complete'",
                    Vec::new(),
                )
                .await;
            if matches!(loaded, Ok(Value::Bool(true))) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("clicking {css} led to no new page");
    }

    /// Clicks the first element `css` selects, within the page (an option, a box, a button
    /// that does not leave the page).
    pub async fn press(&self, css: &str) {
        self.find(css).await.click().await.unwrap();
    }

    /// Replaces what the field `css` holds with `text`, typed as a person would.
    pub async fn type_into(&self, css: &str, text: &str) {
        let field = self.find(css).await;
        field.clear().await.unwrap();
        field.send_keys(text).await.unwrap();
    }

    /// On the confirmation page headed `heading`, confirms; waits for the page headed `then`.
    pub async fn confirm(&self, heading: &str, then: &str) {
        self.wait_for_text("h1", heading).await;
        self.click("main button.primary").await;
        self.wait_for_text("h1", then).await;
    }

    /// Waits up to [`PATIENCE`] until the text of `css` is `want`; fails with what it was.
    pub async fn wait_for_text(&self, css: &str, want: &str) {
        let deadline = Instant::now() + PATIENCE;
        let mut seen = String::new();
        while Instant::now() < deadline {
            if let Ok(el) = self.client.find(Locator::Css(css)).await {
                seen = el.text().await.unwrap_or_default();
                if seen == want {
                    return;
                }
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("{css} still reads {seen:?}, not {want:?}");
    }

    /// Runs `script` in the page and returns its value.
    pub async fn run(&self, script: &str) -> Value {
        self.client.execute(script, Vec::new()).await.unwrap()
    }

    /// Sets the window's size (CSS pixels).
    pub async fn resize(&self, (width, height): (u32, u32)) {
        self.client.set_window_size(width, height).await.unwrap();
    }

    /// Saves the page as `NAME-laptop.png` and `NAME-phone.png` (the whole page's height) under
    /// `target/console-screenshots/`, and leaves the window at a laptop's size.
    pub async fn screenshots(&self, name: &str) {
        let dir = screenshot_dir();
        std::fs::create_dir_all(&dir).unwrap();
        for (suffix, (width, height)) in [("laptop", LAPTOP), ("phone", PHONE)] {
            self.resize((width, height)).await;
            // The whole page: as tall as its content, at least the window.
            let tall = self
                .run("return document.documentElement.scrollHeight")
                .await
                .as_u64()
                .unwrap_or(u64::from(height));
            let tall = u32::try_from(tall).unwrap_or(height).clamp(height, 4000);
            // The window's size includes what is not the page (the headless frame).
            let inner = self
                .run("return window.innerHeight")
                .await
                .as_u64()
                .and_then(|h| u32::try_from(h).ok())
                .unwrap_or(height);
            self.resize((width, tall + height.saturating_sub(inner)))
                .await;
            let png = self.client.screenshot().await.unwrap();
            assert!(png.starts_with(b"\x89PNG"), "not a PNG");
            std::fs::write(dir.join(format!("{name}-{suffix}.png")), png).unwrap();
        }
        self.resize(LAPTOP).await;
    }

    /// Ends the browser and its driver.
    pub async fn close(mut self) {
        let _ = self.client.clone().close().await;
        let _ = self.driver.kill().await;
    }
}

/// `target/console-screenshots` of the workspace (or of `CARGO_TARGET_DIR`).
pub fn screenshot_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target"));
    target.join("console-screenshots")
}

/// A WebDriver session on the chromedriver at `port`, once it answers.
async fn connect(port: u16, profile: &tempfile::TempDir) -> Result<Client, String> {
    let caps = json!({
        "goog:chromeOptions": {
            "binary": tool("chromium"),
            "args": [
                "--headless=new",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-dev-shm-usage",
                "--no-first-run",
                "--hide-scrollbars",
                "--force-device-scale-factor=1",
                format!("--user-data-dir={}", profile.path().display()),
            ],
        },
    });
    let serde_json::Value::Object(caps) = caps else {
        unreachable!()
    };
    let url = format!("http://127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut last = String::new();
    while Instant::now() < deadline {
        match ClientBuilder::new(HttpConnector::new())
            .capabilities(caps.clone())
            .connect(&url)
            .await
        {
            Ok(client) => return Ok(client),
            Err(e) => last = e.to_string(),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Err(last)
}

/// A one-time sign-in link for the holder of `key`: its path, `/ui/signin/…`.
pub async fn link(app: &TestApp, key: &str) -> String {
    let (status, body) = status_json(app.post("/v1/console/links", key, json!({})).await).await;
    assert_eq!(status, 200, "{body}");
    body["path"].as_str().unwrap().to_owned()
}

/// Signs the browser in as the holder of `key` through a one-time link, as a person would:
/// opens the link and presses its button. Ends on the reservations page.
pub async fn sign_in(browser: &Browser, app: &TestApp, key: &str) {
    browser.open(&link(app, key).await).await;
    browser.click("form[action='/ui/signin'] button").await;
    browser.find("h1").await;
    assert_eq!(browser.path().await, "/ui/");
}
