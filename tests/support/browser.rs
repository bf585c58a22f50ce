//! A real headless Chromium for browser tests, driven over the W3C WebDriver protocol
//! (<https://www.w3.org/TR/webdriver2/>) by a private `chromedriver` on a free loopback port,
//! plus axe-core run inside the page for WCAG 2.1 AA checks and screenshots under
//! `target/screenshots/`.
//!
//! This module owns the lifecycle of that chromedriver and its browser, and a small blocking
//! client (std + ureq + serde_json): one [`Browser`] is one chromedriver process with one
//! session and a throwaway profile directory. Dropping it (also while a test panics) ends
//! the session, kills chromedriver and whatever is left below it (Chromium's processes) by
//! their ids, and removes the profile. chromedriver stays in the test's process group, so a
//! Ctrl-C on `cargo test` ends the browsers too.
//! It knows nothing about ticketgate's pages: tests say what to look for.
//!
//! Needs the Debian packages `chromium` and `chromium-driver` (scripts/install-deps) and
//! axe-core under `target/npm` (scripts/test installs it with npm). When either is missing
//! the test panics with that advice: it does not skip, so `cargo test` never passes by not
//! testing.
//!
//! Traps met while writing it (Chromium 156, Debian 12, as root):
//! - As root Chromium refuses to start without `--no-sandbox` ("Running as root without
//!   --no-sandbox is not supported"); chromedriver then only reports that the session could
//!   not be created.
//! - chromedriver drives only a browser of its own major version. Debian's chromium-driver
//!   depends on the exact chromium version, so apt keeps the two matched; hence the explicit
//!   `binary` rather than whatever "chrome" is on PATH.
//! - `--window-size` is the outer window: headless Chromium still reserves 143 px of height
//!   for toolbars nobody sees, and keeps the outer width at 500 px or more (the viewport does
//!   go narrower). [`Browser::set_viewport_size`] measures and compensates; [`Browser::start`]
//!   uses it, so pages and screenshots really are 1280×900.
//! - An open `alert()` makes every other command fail with "unexpected alert open". The
//!   session asks for `unhandledPromptBehavior: ignore`, so the alert stays open for
//!   [`Browser::alert_text`] (how a test sees that a page ran script it should not have)
//!   instead of being dismissed by whichever command came next.
//! - `--lang=it-IT` alone does not change Accept-Language in headless mode (it stays
//!   "en-US,en;q=0.9"): the `intl.accept_languages` pref does.
//! - Debian's /usr/bin/chromium is a shell wrapper; its `[: …: unexpected operator` line
//!   in chromedriver's log is harmless.
#![allow(dead_code)] // not every test binary uses every item

use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::base64;
use super::local::{free_port, fresh_dir};

/// The browser chromedriver starts: Debian's wrapper script, which execs
/// /usr/lib/chromium/chromium with the distribution's flags.
const CHROMIUM_BINARY: &str = "/usr/bin/chromium";

/// Where Debian's chromium-driver puts chromedriver, for when PATH does not have it.
const CHROMEDRIVER_FALLBACK: &str = "/usr/bin/chromedriver";

/// axe-core's browser bundle, relative to the crate root (scripts/test puts it there).
const AXE_PATH: &str = "target/npm/node_modules/axe-core/axe.min.js";

/// The WCAG levels checked: 2.0 and 2.1, A and AA (axe-core's tag names).
const AXE_TAGS: [&str; 4] = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"];

/// The web element identifier key of the WebDriver spec (section 12.1): a JSON object with
/// this one key is an element, in answers and in script arguments.
const ELEMENT_KEY: &str = "element-6066-11e4-a52e-4f735466cecf";

/// The viewport every session starts with (a desktop); tests resize for a phone.
const WINDOW_WIDTH: u32 = 1280;
const WINDOW_HEIGHT: u32 = 900;

/// Attempts at starting chromedriver, each on a new port: a port found free can be taken by
/// another process (another test binary) before chromedriver binds it.
const START_ATTEMPTS: usize = 3;

/// How long chromedriver may take to answer `/status` as ready.
const DRIVER_READY_TIMEOUT: Duration = Duration::from_secs(20);

/// Upper bound for one WebDriver command: creating a session (browser start) and axe on a
/// large page are the slow ones, a few seconds on 2 cores.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(120);

/// Script timeout inside the browser, for `execute_async` (axe.run).
const SCRIPT_TIMEOUT_MS: u64 = 60_000;

/// Page load timeout inside the browser, for `goto`.
const PAGE_LOAD_TIMEOUT_MS: u64 = 30_000;

/// `DELETE /session` on drop: short, because a hung browser is killed right after anyway.
const QUIT_TIMEOUT: Duration = Duration::from_secs(10);

/// How often [`Browser::wait_until`] asks again.
const POLL_INTERVAL: Duration = Duration::from_millis(50);

/// Largest answer read (a full-window screenshot is a few hundred KiB of base64).
const MAX_ANSWER_BYTES: u64 = 64 * 1024 * 1024;

/// How much of the page source a failed `find` shows.
const SOURCE_EXCERPT_CHARS: usize = 3000;

/// An error answered by chromedriver (spec section 6.6): `error` is the code, e.g.
/// "no such element", "no such alert", "javascript error".
#[derive(Debug, Clone)]
pub struct WebDriverError {
    pub status: u16,
    pub error: String,
    pub message: String,
}

impl std::fmt::Display for WebDriverError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} (HTTP {}): {}", self.error, self.status, self.message)
    }
}

/// One headless Chromium with one WebDriver session. Not `Sync` on purpose: one test drives
/// one browser, one command at a time.
pub struct Browser {
    agent: ureq::Agent,
    /// `http://127.0.0.1:PORT`
    driver_url: String,
    session_id: String,
    driver: Child,
    /// Profile (`--user-data-dir`), chromedriver's log; removed on drop.
    dir: PathBuf,
}

/// An element found in the current page. Stale once the page navigates away.
pub struct Element<'b> {
    browser: &'b Browser,
    id: String,
}

impl Browser {
    /// Starts chromedriver on a free loopback port and opens a session in a fresh headless
    /// Chromium (viewport 1280×900, Italian). Panics with advice when chromium, chromedriver or the
    /// session cannot be had.
    pub fn start() -> Browser {
        let driver_bin = find_chromedriver();
        assert!(
            Path::new(CHROMIUM_BINARY).exists(),
            "{CHROMIUM_BINARY} not found: install the Debian packages chromium and \
             chromium-driver with scripts/install-deps (as root)"
        );
        let dir = fresh_dir("tgbr");
        let log_path = dir.join("chromedriver.log");
        let mut last_failure = String::new();
        for _ in 0..START_ATTEMPTS {
            let port = free_port();
            let log = fs::File::create(&log_path).expect("create chromedriver.log");
            let log_err = log.try_clone().expect("clone the log file handle");
            let driver = Command::new(&driver_bin)
                .arg(format!("--port={port}"))
                .stdin(Stdio::null())
                .stdout(log)
                .stderr(log_err)
                .spawn()
                .unwrap_or_else(|e| panic!("start {}: {e}", driver_bin.display()));
            let agent: ureq::Agent = ureq::Agent::config_builder()
                // WebDriver errors come as 4xx/5xx with a JSON body that we want to read.
                .http_status_as_error(false)
                .timeout_global(Some(COMMAND_TIMEOUT))
                .build()
                .into();
            let mut browser = Browser {
                agent,
                driver_url: format!("http://127.0.0.1:{port}"),
                session_id: String::new(),
                driver,
                dir: dir.clone(),
            };
            match browser.wait_for_driver() {
                Ok(()) => {}
                Err(why) => {
                    last_failure = format!("{why}\n{}", read_tail(&log_path));
                    drop(browser); // kills this chromedriver; the next attempt takes a new port
                    continue;
                }
            }
            match browser.create_session() {
                Ok(id) => {
                    browser.session_id = id;
                    // --window-size is the outer window; pages and screenshots get the
                    // size tests expect only once the hidden toolbars are added to it.
                    browser.set_viewport_size(WINDOW_WIDTH, WINDOW_HEIGHT);
                    return browser;
                }
                Err(e) => panic!(
                    "chromedriver could not start Chromium: {e}\n\
                     (chromium and chromium-driver must be the same version: \
                     scripts/install-deps installs both)\nchromedriver log:\n{}",
                    read_tail(&log_path)
                ),
            }
        }
        let _ = fs::remove_dir_all(&dir);
        panic!("chromedriver did not start in {START_ATTEMPTS} attempts: {last_failure}");
    }

    /// Waits until chromedriver answers `/status` with `ready: true`.
    fn wait_for_driver(&mut self) -> Result<(), String> {
        let deadline = Instant::now() + DRIVER_READY_TIMEOUT;
        loop {
            if let Ok(Some(status)) = self.driver.try_wait() {
                return Err(format!("chromedriver exited at start ({status})"));
            }
            let answer = self
                .agent
                .get(format!("{}/status", self.driver_url))
                .config()
                .timeout_global(Some(Duration::from_secs(2)))
                .build()
                .call();
            if let Ok(mut response) = answer {
                if let Ok(text) = response.body_mut().read_to_string() {
                    let ready = serde_json::from_str::<Value>(&text)
                        .map(|v| v["value"]["ready"] == json!(true))
                        .unwrap_or(false);
                    if ready {
                        return Ok(());
                    }
                }
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "chromedriver not ready after {DRIVER_READY_TIMEOUT:?}"
                ));
            }
            std::thread::sleep(POLL_INTERVAL);
        }
    }

    /// `POST /session` with the Chromium options; returns the session id.
    fn create_session(&self) -> Result<String, WebDriverError> {
        let profile = self.dir.join("profile");
        let args = vec![
            // --headless=new is the real browser without a window (the old headless mode is
            // a separate, slightly different implementation).
            "--headless=new".to_string(),
            // Root cannot use Chromium's sandbox: without this the browser exits at once.
            "--no-sandbox".to_string(),
            "--disable-gpu".to_string(),
            // /dev/shm is small in containers; Chromium then crashes tabs under load.
            "--disable-dev-shm-usage".to_string(),
            format!("--window-size={WINDOW_WIDTH},{WINDOW_HEIGHT}"),
            "--lang=it-IT".to_string(),
            // No traffic but the pages under test (the network has nothing else anyway,
            // and background fetches would only slow the start and add log noise).
            "--disable-background-networking".to_string(),
            "--disable-component-update".to_string(),
            "--disable-sync".to_string(),
            "--disable-default-apps".to_string(),
            "--no-first-run".to_string(),
            "--no-default-browser-check".to_string(),
            format!("--user-data-dir={}", profile.display()),
        ];
        let capabilities = json!({
            "capabilities": {
                "alwaysMatch": {
                    "browserName": "chrome",
                    "goog:chromeOptions": {
                        "binary": CHROMIUM_BINARY,
                        "args": args,
                        // --lang alone leaves headless Chromium sending "en-US,en;q=0.9"
                        // as Accept-Language: the header comes from this pref.
                        "prefs": { "intl": { "accept_languages": "it-IT,it" } },
                    },
                    "timeouts": {
                        "script": SCRIPT_TIMEOUT_MS,
                        "pageLoad": PAGE_LOAD_TIMEOUT_MS,
                        "implicit": 0,
                    },
                    // Leave an unexpected alert open (other commands then fail with
                    // "unexpected alert open") so that alert_text() can still see it.
                    "unhandledPromptBehavior": "ignore",
                }
            }
        });
        let value = self.call(Method::Post, "/session", Some(&capabilities))?;
        value["sessionId"]
            .as_str()
            .map(str::to_string)
            .ok_or_else(|| WebDriverError {
                status: 200,
                error: "bad answer".into(),
                message: format!("no sessionId in {value}"),
            })
    }

    /// One WebDriver command on the driver (path from the root: `/session`, `/status`).
    fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Value, WebDriverError> {
        self.call_with_timeout(method, path, body, COMMAND_TIMEOUT)
    }

    fn call_with_timeout(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
        timeout: Duration,
    ) -> Result<Value, WebDriverError> {
        let url = format!("{}{path}", self.driver_url);
        let transport = |e: ureq::Error| WebDriverError {
            status: 0,
            error: "transport".into(),
            message: format!("{method:?} {path}: {e}"),
        };
        let answer = match method {
            Method::Get => self
                .agent
                .get(&url)
                .config()
                .timeout_global(Some(timeout))
                .build()
                .call(),
            Method::Delete => self
                .agent
                .delete(&url)
                .config()
                .timeout_global(Some(timeout))
                .build()
                .call(),
            Method::Post => {
                // Every POST has a JSON body in WebDriver, `{}` when there is nothing to say.
                let bytes = serde_json::to_vec(body.unwrap_or(&json!({}))).expect("JSON body");
                self.agent
                    .post(&url)
                    .config()
                    .timeout_global(Some(timeout))
                    .build()
                    .header("content-type", "application/json; charset=utf-8")
                    .send(&bytes[..])
            }
        };
        let mut response = answer.map_err(transport)?;
        let status = response.status().as_u16();
        let text = response
            .body_mut()
            .with_config()
            .limit(MAX_ANSWER_BYTES)
            .read_to_string()
            .map_err(transport)?;
        let parsed: Value = serde_json::from_str(&text).map_err(|e| WebDriverError {
            status,
            error: "bad answer".into(),
            message: format!("{method:?} {path}: not JSON ({e}): {text}"),
        })?;
        let value = parsed.get("value").cloned().unwrap_or(Value::Null);
        if status >= 400 || value.get("error").is_some_and(Value::is_string) {
            return Err(WebDriverError {
                status,
                error: value["error"]
                    .as_str()
                    .unwrap_or("unknown error")
                    .to_string(),
                message: value["message"].as_str().unwrap_or_default().to_string(),
            });
        }
        Ok(value)
    }

    /// A command on this session (`path` after `/session/{id}`), as a Result.
    pub fn try_command(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Value, WebDriverError> {
        let full = format!("/session/{}{path}", self.session_id);
        self.call(method, &full, body)
    }

    /// A command on this session that must succeed (panics naming the command).
    pub fn command(&self, method: Method, path: &str, body: Option<&Value>) -> Value {
        self.try_command(method, path, body)
            .unwrap_or_else(|e| panic!("WebDriver {method:?} {path}: {e}"))
    }

    /// Opens `url` and waits for its load event.
    pub fn goto(&self, url: &str) {
        self.command(Method::Post, "/url", Some(&json!({ "url": url })));
    }

    pub fn current_url(&self) -> String {
        string(self.command(Method::Get, "/url", None))
    }

    pub fn title(&self) -> String {
        string(self.command(Method::Get, "/title", None))
    }

    /// The page's current DOM serialised (not the bytes the server sent).
    pub fn source(&self) -> String {
        string(self.command(Method::Get, "/source", None))
    }

    /// The first element matching `css`; panics with an excerpt of the page if none.
    pub fn find(&self, css: &str) -> Element<'_> {
        self.try_find(css).unwrap_or_else(|| {
            panic!(
                "no element matches `{css}` on {}\npage source (excerpt):\n{}",
                self.current_url(),
                excerpt(&self.source())
            )
        })
    }

    /// The first element matching `css`, if any.
    pub fn try_find(&self, css: &str) -> Option<Element<'_>> {
        let by = json!({ "using": "css selector", "value": css });
        match self.try_command(Method::Post, "/element", Some(&by)) {
            Ok(v) => Some(self.element(&v)),
            Err(e) if e.error == "no such element" => None,
            Err(e) => panic!("find `{css}`: {e}"),
        }
    }

    /// Every element matching `css`, in document order.
    pub fn find_all(&self, css: &str) -> Vec<Element<'_>> {
        let by = json!({ "using": "css selector", "value": css });
        let found = self.command(Method::Post, "/elements", Some(&by));
        found
            .as_array()
            .map(|list| list.iter().map(|v| self.element(v)).collect())
            .unwrap_or_default()
    }

    fn element(&self, reference: &Value) -> Element<'_> {
        let id = reference[ELEMENT_KEY]
            .as_str()
            .unwrap_or_else(|| panic!("not an element reference: {reference}"));
        Element {
            browser: self,
            id: id.to_string(),
        }
    }

    /// Runs `script` as the body of a function (`arguments[i]` are `args`; an [`Element`]
    /// goes in as [`Element::to_arg`]) and returns what it returns, as JSON.
    pub fn execute(&self, script: &str, args: &[Value]) -> Value {
        let body = json!({ "script": script, "args": args });
        self.command(Method::Post, "/execute/sync", Some(&body))
    }

    /// Like [`execute`](Self::execute), but the result is what the script passes to its last
    /// argument, the callback (`const done = arguments[arguments.length - 1]`).
    pub fn execute_async(&self, script: &str, args: &[Value]) -> Value {
        let body = json!({ "script": script, "args": args });
        self.command(Method::Post, "/execute/async", Some(&body))
    }

    /// Sets the outer window size. The page sees less: headless Chromium (new mode) still
    /// reserves its invisible toolbars, 143 px of height on Chromium 156, so a 1280×900
    /// window has a 1280×757 viewport. Use [`set_viewport_size`](Self::set_viewport_size)
    /// for what a layout test means by "a 360×740 phone".
    pub fn set_window_size(&self, width: u32, height: u32) {
        let rect = json!({ "width": width, "height": height });
        self.command(Method::Post, "/window/rect", Some(&rect));
    }

    /// Sizes the window so that the viewport (`innerWidth` × `innerHeight`, and so the
    /// screenshots) is exactly `width` × `height`: sets the window, measures what the
    /// browser's hidden frame takes, and sets it again that much larger. Panics if the
    /// browser does not comply (it keeps the outer window at least 500 px wide, but the
    /// viewport does follow below that).
    pub fn set_viewport_size(&self, width: u32, height: u32) {
        self.set_window_size(width, height);
        let (inner_w, inner_h) = self.viewport();
        let frame_w = u64::from(width).saturating_sub(inner_w);
        let frame_h = u64::from(height).saturating_sub(inner_h);
        if frame_w > 0 || frame_h > 0 {
            let rect = json!({
                "width": u64::from(width) + frame_w,
                "height": u64::from(height) + frame_h,
            });
            self.command(Method::Post, "/window/rect", Some(&rect));
        }
        let now = self.viewport();
        assert_eq!(
            now,
            (u64::from(width), u64::from(height)),
            "viewport after asking for {width}x{height}"
        );
    }

    /// The viewport as the page sees it: (`innerWidth`, `innerHeight`).
    pub fn viewport(&self) -> (u64, u64) {
        let size = self.execute("return [window.innerWidth, window.innerHeight];", &[]);
        (size[0].as_u64().unwrap_or(0), size[1].as_u64().unwrap_or(0))
    }

    /// The visible part of the page as PNG bytes.
    pub fn screenshot_png(&self) -> Vec<u8> {
        let encoded = string(self.command(Method::Get, "/screenshot", None));
        base64::decode(&encoded).expect("the screenshot is base64")
    }

    /// Writes a PNG of the visible part of the page to `path`.
    pub fn screenshot(&self, path: &Path) {
        let png = self.screenshot_png();
        fs::write(path, png).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
    }

    /// Writes `target/screenshots/<name>.png` (for people to look at) and returns its path.
    pub fn screenshot_to_target(&self, name: &str) -> PathBuf {
        assert!(
            !name.is_empty() && !name.contains('/'),
            "a screenshot name is a file stem: {name:?}"
        );
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/screenshots");
        fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("create {}: {e}", dir.display()));
        let path = dir.join(format!("{name}.png"));
        self.screenshot(&path);
        path
    }

    /// The cookies visible to the current page (WebDriver cookie objects: name, value,
    /// path, domain, secure, httpOnly, sameSite, expiry).
    pub fn cookies(&self) -> Vec<Value> {
        match self.command(Method::Get, "/cookie", None) {
            Value::Array(list) => list,
            other => panic!("cookies: not a list: {other}"),
        }
    }

    /// The cookie called `name`, if the current page has one.
    pub fn cookie(&self, name: &str) -> Option<Value> {
        self.cookies().into_iter().find(|c| c["name"] == name)
    }

    /// Asks `done` until it says true or `timeout` passes; returns its last answer. Use it
    /// for both sides: `assert!(b.wait_until(..))` waits for something to happen, and
    /// `assert!(!b.wait_until(..))` gives something the time to happen and shows it did not.
    #[must_use]
    pub fn wait_until(&self, timeout: Duration, mut done: impl FnMut() -> bool) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            if done() {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(POLL_INTERVAL);
        }
    }

    /// The text of the open `alert`/`confirm`/`prompt`, if one is open.
    pub fn alert_text(&self) -> Option<String> {
        match self.try_command(Method::Get, "/alert/text", None) {
            Ok(v) => Some(v.as_str().unwrap_or_default().to_string()),
            Err(e) if e.error == "no such alert" => None,
            Err(e) => panic!("alert text: {e}"),
        }
    }

    /// Closes the open alert (OK). Panics if there is none.
    pub fn accept_alert(&self) {
        self.command(Method::Post, "/alert/accept", None);
    }

    /// chromedriver's pid: Chromium's processes are below it ([`process_tree`]).
    pub fn driver_pid(&self) -> u32 {
        self.driver.id()
    }

    /// Runs axe-core on the current page with the WCAG 2.0/2.1 A and AA rules; returns its
    /// violations (each with `id`, `impact`, `help`, `helpUrl`, `nodes[].target`).
    pub fn axe(&self) -> Vec<Value> {
        let loaded = self.execute("return typeof window.axe === 'object';", &[]);
        if loaded != json!(true) {
            self.execute(&axe_source(), &[]);
        }
        let script = "const done = arguments[arguments.length - 1];
            axe.run(document, { runOnly: { type: 'tag', values: arguments[0] } })
                .then(r => done(r.violations))
                .catch(e => done({ axeError: String(e) }));";
        match self.execute_async(script, &[json!(AXE_TAGS)]) {
            Value::Array(violations) => violations,
            other => panic!("axe.run failed on {}: {other}", self.current_url()),
        }
    }

    /// Panics listing every WCAG 2.1 AA violation axe finds on the current page: rule id,
    /// impact, help text and the selectors of the offending nodes.
    pub fn assert_no_axe_violations(&self, page_name: &str) {
        let violations = self.axe();
        if violations.is_empty() {
            return;
        }
        panic!(
            "{page_name} ({}): {} WCAG 2.1 AA violation(s) found by axe-core:\n{}",
            self.current_url(),
            violations.len(),
            describe_violations(&violations)
        );
    }
}

impl Drop for Browser {
    /// Ends the session (Chromium quits), then kills chromedriver and whatever is still
    /// below it, by pid, and removes the profile. Runs while a test panics too; never panics
    /// itself. (Chromium's crashpad handlers daemonise away from the tree; they exit by
    /// themselves when the browser is gone.)
    fn drop(&mut self) {
        if !self.session_id.is_empty() {
            let path = format!("/session/{}", self.session_id);
            let _ = self.call_with_timeout(Method::Delete, &path, None, QUIT_TIMEOUT);
        }
        // The tree is read before anything is killed: once chromedriver is gone, what was
        // below it is re-parented and can no longer be told apart from other processes.
        let below: Vec<String> = process_tree(self.driver.id())
            .into_iter()
            .filter(|&pid| pid != self.driver.id())
            .map(|pid| pid.to_string())
            .collect();
        if !below.is_empty() {
            let _ = Command::new("kill")
                .arg("-KILL")
                .args(&below)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
        let _ = self.driver.kill();
        let _ = self.driver.wait();
        let _ = fs::remove_dir_all(&self.dir);
    }
}

impl<'b> Element<'b> {
    /// This element as a script argument for [`Browser::execute`].
    pub fn to_arg(&self) -> Value {
        json!({ ELEMENT_KEY: self.id })
    }

    fn path(&self, rest: &str) -> String {
        format!("/element/{}{rest}", self.id)
    }

    pub fn click(&self) {
        self.browser
            .command(Method::Post, &self.path("/click"), None);
    }

    /// Types `text` into the element. On an `<input type=file>` the text is the absolute
    /// path of the file to choose (chromedriver reads it from the local disk); see
    /// [`upload`](Self::upload).
    pub fn send_keys(&self, text: &str) {
        let body = json!({ "text": text });
        self.browser
            .command(Method::Post, &self.path("/value"), Some(&body));
    }

    /// Chooses `file` in an `<input type=file>`. chromedriver wants an absolute path and
    /// answers a relative one with "invalid argument: File not found".
    pub fn upload(&self, file: &Path) {
        let absolute =
            fs::canonicalize(file).unwrap_or_else(|e| panic!("upload {}: {e}", file.display()));
        self.send_keys(absolute.to_str().expect("a UTF-8 path"));
    }

    pub fn clear(&self) {
        self.browser
            .command(Method::Post, &self.path("/clear"), None);
    }

    /// The rendered, visible text.
    pub fn text(&self) -> String {
        string(self.browser.command(Method::Get, &self.path("/text"), None))
    }

    /// The attribute as written in the markup, if present.
    pub fn attr(&self, name: &str) -> Option<String> {
        let value =
            self.browser
                .command(Method::Get, &self.path(&format!("/attribute/{name}")), None);
        value.as_str().map(str::to_string)
    }

    /// The live DOM property (`value` of an input is the typed text, `checked` a bool).
    pub fn property(&self, name: &str) -> Value {
        self.browser
            .command(Method::Get, &self.path(&format!("/property/{name}")), None)
    }

    /// The first element matching `css` inside this one, if any.
    pub fn try_find(&self, css: &str) -> Option<Element<'b>> {
        let by = json!({ "using": "css selector", "value": css });
        match self
            .browser
            .try_command(Method::Post, &self.path("/element"), Some(&by))
        {
            Ok(v) => Some(self.browser.element(&v)),
            Err(e) if e.error == "no such element" => None,
            Err(e) => panic!("find `{css}` inside an element: {e}"),
        }
    }
}

/// The HTTP methods WebDriver uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    Get,
    Post,
    Delete,
}

/// One line per violation, then one per offending node (its selector path).
pub fn describe_violations(violations: &[Value]) -> String {
    let mut out = String::new();
    for v in violations {
        out.push_str(&format!(
            "- {} [{}]: {} ({})\n",
            v["id"].as_str().unwrap_or("?"),
            v["impact"].as_str().unwrap_or("?"),
            v["help"].as_str().unwrap_or("?"),
            v["helpUrl"].as_str().unwrap_or(""),
        ));
        for node in v["nodes"].as_array().into_iter().flatten() {
            out.push_str(&format!("    at {}\n", node["target"]));
        }
    }
    out
}

/// The rule ids of axe's violations, sorted.
pub fn violation_ids(violations: &[Value]) -> Vec<String> {
    let mut ids: Vec<String> = violations
        .iter()
        .filter_map(|v| v["id"].as_str().map(str::to_string))
        .collect();
    ids.sort();
    ids
}

/// axe-core's source. A missing file is a failure with advice, never a skipped check.
fn axe_source() -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(AXE_PATH);
    fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "axe-core not found at {} ({e}): run scripts/test, which installs it with npm \
             into target/npm (needs node and npm: scripts/install-deps, as root)",
            path.display()
        )
    })
}

/// `chromedriver` from PATH, else Debian's location.
fn find_chromedriver() -> PathBuf {
    let on_path = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join("chromedriver"))
            .find(|candidate| candidate.is_file())
    });
    on_path
        .or_else(|| Some(PathBuf::from(CHROMEDRIVER_FALLBACK)).filter(|p| p.is_file()))
        .unwrap_or_else(|| {
            panic!(
                "chromedriver not found (PATH, {CHROMEDRIVER_FALLBACK}): install the Debian \
                 packages chromium and chromium-driver with scripts/install-deps (as root)"
            )
        })
}

/// `root` and every live process below it, from /proc (the parent pid is the second field
/// after the parenthesised command name of /proc/PID/stat; zombies are left out).
pub fn process_tree(root: u32) -> Vec<u32> {
    let mut parents: Vec<(u32, u32)> = Vec::new();
    for entry in fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(stat) = fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        // The command name may hold spaces and parentheses: split after its last ')'.
        let Some((_, rest)) = stat.rsplit_once(')') else {
            continue;
        };
        let mut fields = rest.split_whitespace();
        let state = fields.next().unwrap_or("Z");
        let Some(ppid) = fields.next().and_then(|p| p.parse::<u32>().ok()) else {
            continue;
        };
        if state != "Z" {
            parents.push((pid, ppid));
        }
    }
    let mut tree = vec![root];
    let mut i = 0;
    while i < tree.len() {
        let parent = tree[i];
        tree.extend(
            parents
                .iter()
                .filter(|&&(_, p)| p == parent)
                .map(|&(c, _)| c),
        );
        i += 1;
    }
    tree
}

/// The last lines of a log file, for panic messages.
fn read_tail(path: &Path) -> String {
    let mut text = String::new();
    if let Ok(mut f) = fs::File::open(path) {
        let _ = f.read_to_string(&mut text);
    }
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(30)..].join("\n")
}

fn excerpt(source: &str) -> String {
    let mut cut: String = source.chars().take(SOURCE_EXCERPT_CHARS).collect();
    if cut.len() < source.len() {
        cut.push_str("\n[…]");
    }
    cut
}

fn string(value: Value) -> String {
    match value {
        Value::String(s) => s,
        other => panic!("expected a string from WebDriver, got {other}"),
    }
}
