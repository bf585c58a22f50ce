//! The browser test infrastructure itself (support::browser), against small pages served by
//! a throwaway HTTP server in this file: WebDriver commands, axe-core's WCAG checks both ways,
//! alerts as the sign that injected script ran, screenshots, file upload, and that dropping a
//! `Browser` leaves no process behind.
//!
//! Chromium, chromedriver or axe-core missing is a failure, not a skip (scripts/install-deps
//! and scripts/test install them).

mod support;

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use serde_json::json;
use support::base64;
use support::browser::{describe_violations, process_tree, violation_ids, Browser, Method};

/// How long a test waits for something the browser should do at once (an alert, a file read).
const EFFECT_TIMEOUT: Duration = Duration::from_secs(5);

/// How long a test gives something that must not happen (an alert on a safe page).
const ABSENCE_WINDOW: Duration = Duration::from_secs(1);

/// The first 8 bytes of every PNG file (PNG specification, section 5.2).
const PNG_SIGNATURE: [u8; 8] = [0x89, b'P', b'N', b'G', 0x0d, 0x0a, 0x1a, 0x0a];

/// A request as the test server saw it.
#[derive(Debug, Clone)]
struct SeenRequest {
    method: String,
    path: String,
    /// Header names lower-cased.
    headers: HashMap<String, String>,
    body: Vec<u8>,
}

/// A tiny HTTP/1.1 server on a loopback port: fixed pages by path, plus `POST /echo`, which
/// shows the form body it received (HTML-escaped) and sets a cookie. One thread per
/// connection, because Chromium opens spare connections that send nothing.
struct PageServer {
    addr: SocketAddr,
    seen: Arc<Mutex<Vec<SeenRequest>>>,
    stop: Arc<AtomicBool>,
}

impl PageServer {
    fn start(pages: &[(&str, &str)]) -> PageServer {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
        let addr = listener.local_addr().expect("local address");
        let pages: Arc<HashMap<String, String>> = Arc::new(
            pages
                .iter()
                .map(|(path, html)| (path.to_string(), html.to_string()))
                .collect(),
        );
        let seen = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (seen_in, stop_in) = (seen.clone(), stop.clone());
        thread::spawn(move || {
            for stream in listener.incoming() {
                if stop_in.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(stream) = stream else { continue };
                let (pages, seen) = (pages.clone(), seen_in.clone());
                thread::spawn(move || serve_one(stream, &pages, &seen));
            }
        });
        PageServer { addr, seen, stop }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    fn requests(&self) -> Vec<SeenRequest> {
        self.seen.lock().expect("requests lock").clone()
    }
}

impl Drop for PageServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop so that it sees the flag and ends.
        let _ = TcpStream::connect(self.addr);
    }
}

fn serve_one(stream: TcpStream, pages: &HashMap<String, String>, seen: &Mutex<Vec<SeenRequest>>) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
    let mut reader = BufReader::new(&stream);
    let mut request_line = String::new();
    if reader.read_line(&mut request_line).unwrap_or(0) == 0 {
        return; // a spare connection closed unused
    }
    let mut parts = request_line.split_whitespace();
    let method = parts.next().unwrap_or_default().to_string();
    let path = parts.next().unwrap_or_default().to_string();
    let mut headers = HashMap::new();
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 || line.trim_end().is_empty() {
            break;
        }
        if let Some((name, value)) = line.trim_end().split_once(':') {
            headers.insert(name.trim().to_ascii_lowercase(), value.trim().to_string());
        }
    }
    let length: usize = headers
        .get("content-length")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let mut body = vec![0; length];
    if reader.read_exact(&mut body).is_err() {
        return;
    }
    seen.lock().expect("requests lock").push(SeenRequest {
        method: method.clone(),
        path: path.clone(),
        headers,
        body: body.clone(),
    });

    let (status, extra_headers, html) = if method == "POST" && path == "/echo" {
        let received = String::from_utf8_lossy(&body);
        (
            "200 OK",
            "Set-Cookie: tg_smoke=ricevuto; Path=/; HttpOnly; SameSite=Lax\r\n",
            page(
                "Ricevuto",
                &format!(
                    "<h1>Ricevuto</h1><p id=\"got\">{}</p>",
                    escape_html(&received)
                ),
            ),
        )
    } else if let Some(html) = pages.get(&path) {
        ("200 OK", "", html.clone())
    } else {
        (
            "404 Not Found",
            "",
            page("Non trovato", "<h1>Non trovato</h1>"),
        )
    };
    let head = format!(
        "HTTP/1.1 {status}\r\ncontent-type: text/html; charset=utf-8\r\ncontent-length: {}\r\n\
         {extra_headers}connection: close\r\n\r\n",
        html.len()
    );
    let mut stream = &stream;
    let _ = stream.write_all(head.as_bytes());
    let _ = stream.write_all(html.as_bytes());
}

/// A complete, accessible page shell (language, title, main landmark) around `main`.
fn page(title: &str, main: &str) -> String {
    format!(
        "<!doctype html><html lang=\"it\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{title}</title></head><body><main>{main}</main></body></html>"
    )
}

fn escape_html(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// A small picture that needs no request: an SVG data URL.
const PICTURE: &str = "data:image/svg+xml,%3Csvg xmlns='http://www.w3.org/2000/svg' \
     width='40' height='40'%3E%3Crect width='40' height='40' fill='%23036'/%3E%3C/svg%3E";

/// Width and height from a PNG's IHDR chunk, which always comes first after the signature.
fn png_size(png: &[u8]) -> (u32, u32) {
    assert!(png.len() > 24, "a PNG is longer than {} bytes", png.len());
    let be = |at: usize| u32::from_be_bytes([png[at], png[at + 1], png[at + 2], png[at + 3]]);
    assert_eq!(&png[12..16], b"IHDR", "IHDR comes first");
    (be(16), be(20))
}

#[test]
fn a_form_is_filled_submitted_and_its_answer_read_back() {
    let form = page(
        "Nuova segnalazione",
        "<h1>Nuova segnalazione</h1>\
         <form method=\"post\" action=\"/echo\">\
         <label for=\"name\">Nome</label> <input id=\"name\" name=\"name\" value=\"da cancellare\">\
         <label for=\"msg\">Messaggio</label> <textarea id=\"msg\" name=\"msg\"></textarea>\
         <button type=\"submit\">Invia</button></form>",
    );
    let server = PageServer::start(&[("/form", &form)]);
    let browser = Browser::start();

    browser.goto(&server.url("/form"));
    assert_eq!(browser.title(), "Nuova segnalazione");
    let name = browser.find("#name");
    assert_eq!(name.property("value"), json!("da cancellare"));
    name.clear();
    name.send_keys("Anna Verdi");
    browser
        .find("#msg")
        .send_keys("Buca in via Roma: è pericolosa");
    assert_eq!(name.property("value"), json!("Anna Verdi"));
    assert_eq!(name.attr("name").as_deref(), Some("name"));
    assert_eq!(name.attr("placeholder"), None);
    browser.find("button[type=submit]").click();

    assert!(
        browser.wait_until(EFFECT_TIMEOUT, || browser.title() == "Ricevuto"),
        "the form was not submitted: {}",
        browser.source()
    );
    assert_eq!(browser.current_url(), server.url("/echo"));
    assert_eq!(
        browser.find("#got").text(),
        "name=Anna+Verdi&msg=Buca+in+via+Roma%3A+%C3%A8+pericolosa"
    );
    assert!(browser.try_find("#name").is_none(), "a new page was loaded");
    assert_eq!(browser.find_all("h1").len(), 1);

    let cookie = browser
        .cookie("tg_smoke")
        .expect("the echo page set a cookie");
    assert_eq!(cookie["value"], "ricevuto");
    assert_eq!(cookie["httpOnly"], true);
    assert_eq!(cookie["sameSite"], "Lax");

    // The browser speaks Italian: pages that negotiate the language see it.
    let post = server
        .requests()
        .into_iter()
        .find(|r| r.method == "POST" && r.path == "/echo")
        .expect("the server saw the POST");
    let language = post
        .headers
        .get("accept-language")
        .cloned()
        .unwrap_or_default();
    assert!(
        language.starts_with("it-IT"),
        "Accept-Language: {language:?}"
    );
    assert_eq!(browser.execute("return navigator.language;", &[]), "it-IT");
    assert_eq!(
        String::from_utf8_lossy(&post.body),
        "name=Anna+Verdi&msg=Buca+in+via+Roma%3A+%C3%A8+pericolosa"
    );
}

#[test]
fn an_accessible_page_has_no_axe_violations() {
    let good = page(
        "Segnala un problema — Comune di Prova",
        &format!(
            "<h1>Segnala un problema</h1>\
             <p style=\"color:#222;background:#fff\">Scrivi al Comune: ti rispondiamo per email.</p>\
             <img src=\"{PICTURE}\" alt=\"Stemma del Comune di Prova\" width=\"40\" height=\"40\">\
             <form method=\"post\" action=\"/echo\">\
             <label for=\"email\">Il tuo indirizzo email</label>\
             <input id=\"email\" name=\"email\" type=\"email\" autocomplete=\"email\">\
             <button type=\"submit\">Invia</button></form>\
             <p><a href=\"/privacy\">Informativa sulla privacy</a></p>"
        ),
    );
    let server = PageServer::start(&[("/", &good)]);
    let browser = Browser::start();
    browser.goto(&server.url("/"));

    browser.assert_no_axe_violations("accessible smoke page");
    // Twice on one page: axe is injected once and reused.
    assert!(browser.axe().is_empty());
}

#[test]
fn an_inaccessible_page_shows_label_contrast_and_alt_violations() {
    let bad = page(
        "Pagina scorretta",
        &format!(
            "<h1>Pagina scorretta</h1>\
             <p style=\"color:#c8c8c8;background:#ffffff\">Testo quasi invisibile</p>\
             <img src=\"{PICTURE}\" width=\"40\" height=\"40\">\
             <form><input type=\"text\" name=\"q\"></form>"
        ),
    );
    let server = PageServer::start(&[("/", &bad)]);
    let browser = Browser::start();
    browser.goto(&server.url("/"));

    let violations = browser.axe();
    let ids = violation_ids(&violations);
    for expected in ["color-contrast", "image-alt", "label"] {
        assert!(
            ids.iter().any(|id| id == expected),
            "axe did not report {expected}; it reported:\n{}",
            describe_violations(&violations)
        );
    }
    // The report names the offending node, so a failing test says where to look.
    let report = describe_violations(&violations);
    assert!(report.contains("input"), "{report}");

    let failure = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        browser.assert_no_axe_violations("inaccessible smoke page")
    }))
    .expect_err("assert_no_axe_violations must fail on this page");
    let message = failure
        .downcast_ref::<String>()
        .cloned()
        .unwrap_or_default();
    assert!(
        message.contains("image-alt") && message.contains("inaccessible smoke page"),
        "{message}"
    );
}

#[test]
fn script_injected_into_markup_is_seen_by_its_alert_and_escaped_markup_raises_none() {
    let payload = "<img src=x onerror=alert(1)>";
    let raw = page("Grezza", &format!("<h1>Grezza</h1><p>{payload}</p>"));
    let escaped = page(
        "Escapata",
        &format!("<h1>Escapata</h1><p id=\"p\">{}</p>", escape_html(payload)),
    );
    let server = PageServer::start(&[("/raw", &raw), ("/escaped", &escaped)]);
    let browser = Browser::start();

    browser.goto(&server.url("/escaped"));
    assert!(
        !browser.wait_until(ABSENCE_WINDOW, || browser.alert_text().is_some()),
        "escaped markup ran script"
    );
    assert_eq!(browser.find("#p").text(), payload, "shown as text");

    browser.goto(&server.url("/raw"));
    assert!(
        browser.wait_until(EFFECT_TIMEOUT, || browser.alert_text().is_some()),
        "the injected onerror handler did not run"
    );
    assert_eq!(browser.alert_text().as_deref(), Some("1"));
    // While it is open every other command fails loudly instead of dismissing it.
    let blocked = browser
        .try_command(Method::Get, "/title", None)
        .expect_err("commands fail while an alert is open");
    assert_eq!(blocked.error, "unexpected alert open", "{blocked}");
    assert_eq!(browser.alert_text().as_deref(), Some("1"), "still open");
    browser.accept_alert();
    assert_eq!(browser.alert_text(), None);
    assert_eq!(
        browser.title(),
        "Grezza",
        "the session goes on after the alert"
    );
}

#[test]
fn screenshots_at_phone_and_desktop_sizes_are_png_files_under_target() {
    let long_text = "Il Comune risponde alle segnalazioni entro trenta giorni. ".repeat(20);
    let html = page(
        "Schermate",
        &format!(
            "<h1 style=\"font-family:sans-serif\">Segnala un problema</h1>\
             <p style=\"font-family:sans-serif;font-size:16px\">{long_text}</p>"
        ),
    );
    let server = PageServer::start(&[("/", &html)]);
    let browser = Browser::start();
    browser.goto(&server.url("/"));
    assert_eq!(
        browser.viewport(),
        (1280, 900),
        "the session starts at desktop size"
    );

    for (name, width, height) in [
        ("smoke-phone-360x740", 360, 740),
        ("smoke-desktop-1280x900", 1280, 900),
    ] {
        browser.set_viewport_size(width, height);
        let page_width = browser.execute("return document.documentElement.clientWidth;", &[]);
        assert_eq!(page_width, width, "the layout is {width} px wide");
        let path = browser.screenshot_to_target(name);
        assert!(path.starts_with(Path::new(env!("CARGO_MANIFEST_DIR")).join("target/screenshots")));
        let png = std::fs::read(&path).expect("the screenshot file");
        assert_eq!(png[..8], PNG_SIGNATURE, "{} is a PNG", path.display());
        assert_eq!(png_size(&png), (width, height), "{}", path.display());
    }
}

#[test]
fn a_file_chosen_in_a_file_input_is_seen_by_the_page() {
    let html = page(
        "Allegato",
        "<h1>Allegato</h1><form><label for=\"f\">Allega un file</label>\
         <input id=\"f\" type=\"file\" name=\"allegato\"></form>",
    );
    let server = PageServer::start(&[("/", &html)]);
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("foto-buca.txt");
    std::fs::write(&file, "una buca profonda").expect("write the file to upload");
    let browser = Browser::start();
    browser.goto(&server.url("/"));

    let input = browser.find("#f");
    input.upload(&file);

    let chosen = browser.execute(
        "const f = arguments[0].files[0]; return f ? [f.name, f.size] : null;",
        &[input.to_arg()],
    );
    assert_eq!(chosen, json!(["foto-buca.txt", 17]));
    let content = browser.execute_async(
        "const done = arguments[arguments.length - 1];
         arguments[0].files[0].text().then(done, e => done('error: ' + e));",
        &[input.to_arg()],
    );
    assert_eq!(content, "una buca profonda");
}

#[test]
#[should_panic(expected = "no element matches `#missing`")]
fn finding_a_missing_element_panics_with_the_page_source() {
    let server = PageServer::start(&[("/", &page("Vuota", "<h1 id=\"only\">Vuota</h1>"))]);
    let browser = Browser::start();
    browser.goto(&server.url("/"));
    assert!(browser.try_find("#missing").is_none());
    browser.find("#missing");
}

fn is_running(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|stat| !matches!(stat.rsplit_once(')'), Some((_, rest)) if rest.trim_start().starts_with('Z')))
        .unwrap_or(false)
}

#[test]
fn dropping_the_browser_ends_chromedriver_and_chromium() {
    let browser = Browser::start();
    browser.goto("about:blank");
    let processes = process_tree(browser.driver_pid());
    assert!(
        processes.len() > 1,
        "Chromium's processes are below chromedriver (found {processes:?})"
    );

    drop(browser);
    let left: Vec<u32> = processes.into_iter().filter(|&p| is_running(p)).collect();
    assert!(left.is_empty(), "processes left after drop: {left:?}");
}

#[test]
fn base64_decode_reads_padded_and_unpadded_tails() {
    assert_eq!(base64::decode("TWFu").as_deref(), Some(&b"Man"[..]));
    assert_eq!(base64::decode("TWE=").as_deref(), Some(&b"Ma"[..]));
    assert_eq!(base64::decode("TQ==").as_deref(), Some(&b"M"[..]));
    assert_eq!(base64::decode("TW\r\nFu").as_deref(), Some(&b"Man"[..]));
    assert_eq!(base64::decode("").as_deref(), Some(&b""[..]));
    assert_eq!(base64::decode("T"), None);
    assert_eq!(base64::decode("T!=="), None);
}
