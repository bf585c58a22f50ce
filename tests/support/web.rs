//! A citizen's browser at the HTTP level: a cookie-keeping client that sees redirects as
//! they are (303 + Location), reads CSRF tokens out of forms, and posts forms (urlencoded
//! or multipart), against a real `ticketgate serve`.

use std::time::Duration;

use super::gateway::Gateway;
use super::mail::wait_for_mail;
use super::mailstack::MailStack;

pub struct Client {
    agent: ureq::Agent,
    pub base: String,
    accept_language: Option<String>,
    forwarded_for: Option<String>,
}

/// One HTTP answer.
#[derive(Debug)]
pub struct Page {
    pub status: u16,
    pub location: Option<String>,
    pub body: String,
    pub bytes: Vec<u8>,
    pub headers: Vec<(String, String)>,
}

impl Page {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
    pub fn headers_all(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .collect()
    }
    /// The CSRF token of the (first) form on the page.
    pub fn csrf(&self) -> String {
        let marker = "name=\"csrf\" value=\"";
        let start = self
            .body
            .find(marker)
            .unwrap_or_else(|| panic!("no csrf field in the page:\n{}", self.body))
            + marker.len();
        self.body[start..]
            .split('"')
            .next()
            .unwrap_or_default()
            .to_owned()
    }
}

impl Client {
    pub fn new(gw: &Gateway) -> Client {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .max_redirects(0)
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(30)))
            .build()
            .into();
        Client {
            agent,
            base: format!("http://127.0.0.1:{}", gw.web_port),
            accept_language: None,
            forwarded_for: None,
        }
    }

    /// Requests as if through a proxy that says the client is `address`.
    pub fn forwarded_for(mut self, address: &str) -> Client {
        self.forwarded_for = Some(address.to_owned());
        self
    }

    pub fn with_language(mut self, value: &str) -> Client {
        self.accept_language = Some(value.to_owned());
        self
    }

    fn url(&self, path: &str) -> String {
        if path.starts_with("http") {
            path.to_owned()
        } else {
            format!("{}{}", self.base, path)
        }
    }

    fn page(resp: ureq::http::Response<ureq::Body>) -> Page {
        let status = resp.status().as_u16();
        let headers: Vec<(String, String)> = resp
            .headers()
            .iter()
            .map(|(k, v)| (k.as_str().to_owned(), v.to_str().unwrap_or("").to_owned()))
            .collect();
        let location = resp
            .headers()
            .get("location")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let bytes = resp
            .into_body()
            .with_config()
            .limit(64 * 1024 * 1024)
            .read_to_vec()
            .expect("response body");
        Page {
            status,
            location,
            body: String::from_utf8_lossy(&bytes).into_owned(),
            bytes,
            headers,
        }
    }

    pub fn get(&self, path: &str) -> Page {
        let mut req = self.agent.get(&self.url(path));
        if let Some(l) = &self.accept_language {
            req = req.header("Accept-Language", l);
        }
        if let Some(a) = &self.forwarded_for {
            req = req.header("X-Forwarded-For", format!("198.51.100.7, {a}"));
        }
        Self::page(req.call().expect("GET"))
    }

    pub fn post(&self, path: &str, fields: &[(&str, &str)]) -> Page {
        let mut req = self.agent.post(&self.url(path));
        if let Some(l) = &self.accept_language {
            req = req.header("Accept-Language", l);
        }
        if let Some(a) = &self.forwarded_for {
            req = req.header("X-Forwarded-For", format!("198.51.100.7, {a}"));
        }
        Self::page(req.send_form(fields.iter().copied()).expect("POST"))
    }

    /// Posts a multipart form: text fields, then files (field, filename, type, bytes).
    pub fn post_multipart(
        &self,
        path: &str,
        fields: &[(&str, &str)],
        files: &[(&str, &str, &str, &[u8])],
    ) -> Page {
        let boundary = "----tgtestboundary7MA4YWxkTrZu0gW";
        let mut body = Vec::new();
        for (k, v) in fields {
            body.extend(
                format!(
                    "--{boundary}\r\nContent-Disposition: form-data; name=\"{k}\"\r\n\r\n{v}\r\n"
                )
                .as_bytes(),
            );
        }
        for (field, filename, ctype, bytes) in files {
            body.extend(
                format!(
                    "--{boundary}\r\nContent-Disposition: form-data; name=\"{field}\"; \
                     filename=\"{filename}\"\r\nContent-Type: {ctype}\r\n\r\n"
                )
                .as_bytes(),
            );
            body.extend_from_slice(bytes);
            body.extend(b"\r\n");
        }
        body.extend(format!("--{boundary}--\r\n").as_bytes());
        let mut req = self.agent.post(&self.url(path)).header(
            "Content-Type",
            format!("multipart/form-data; boundary={boundary}"),
        );
        if let Some(l) = &self.accept_language {
            req = req.header("Accept-Language", l);
        }
        if let Some(a) = &self.forwarded_for {
            req = req.header("X-Forwarded-For", format!("198.51.100.7, {a}"));
        }
        let resp = req.send(&body[..]).expect("POST multipart");
        Self::page(resp)
    }
}

/// The first `http…` link in a mail text that contains `needle`.
pub fn link_in(mail: &str, needle: &str) -> String {
    let (_, text) = super::mail::subject_and_text(mail);
    text.split_whitespace()
        .find(|w| w.starts_with("http") && w.contains(needle))
        .unwrap_or_else(|| panic!("no link with {needle:?} in:\n{text}"))
        .to_owned()
}

/// A mail with a JPEG attachment and an HTML part carrying script payloads.
pub fn mail_with_photo_and_html(from: &str, to: &str, subject: &str, photo: &[u8]) -> Vec<u8> {
    let wrapped = format!("{}\r\n", super::base64::encode_lines(photo));
    format!(
        "From: Anna Verdi <{from}>\r\nTo: {to}\r\nSubject: {subject}\r\nMessage-ID: <{}>\r\n\
         MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"M\"\r\n\r\n\
         --M\r\nContent-Type: multipart/alternative; boundary=\"A\"\r\n\r\n\
         --A\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nBuca profonda, vedi foto.\r\n\
         --A\r\nContent-Type: text/html; charset=utf-8\r\n\r\n<p>Buca <b>profonda</b></p>\
         <script>alert('xss')</script><img src=x onerror=\"alert('xss2')\">\
         <a href=\"javascript:alert(3)\">link</a>\r\n--A--\r\n\
         --M\r\nContent-Type: image/jpeg; name=\"buca.jpg\"\r\nContent-Transfer-Encoding: base64\r\n\
         Content-Disposition: attachment; filename=\"buca.jpg\"\r\n\r\n{wrapped}--M--\r\n",
        super::mail::unique_id()
    )
    .into_bytes()
}

pub fn photo() -> Vec<u8> {
    let mut j = vec![
        0xFF, 0xD8, 0xFF, 0xE0, 0x00, 0x10, b'J', b'F', b'I', b'F', 0x00,
    ];
    j.extend((0..5000u32).map(|i| (i * 31 % 253) as u8));
    j.extend([0xFF, 0xD9]);
    j
}

/// The check character of the first 15 characters of a personal codice fiscale.
pub fn cf_check(first15: &str) -> char {
    const ODD: [u32; 26] = [
        1, 0, 5, 7, 9, 13, 15, 17, 19, 21, 2, 4, 18, 20, 11, 3, 6, 8, 12, 14, 16, 10, 22, 25, 24,
        23,
    ];
    let sum: u32 = first15
        .chars()
        .enumerate()
        .map(|(i, ch)| {
            let v = if ch.is_ascii_digit() {
                ch as u32 - '0' as u32
            } else {
                ch as u32 - 'A' as u32
            };
            if i % 2 == 0 {
                ODD[v as usize]
            } else {
                v
            }
        })
        .sum();
    (b'A' + (sum % 26) as u8) as char
}

pub fn cf(first15: &str) -> String {
    format!("{first15}{}", cf_check(first15))
}

/// A citizen named Anna Verdi makes a web account for `email` (codice fiscale from the first
/// 15 characters `cf15`, password `password`), confirms it from the mailed link and signs in.
pub fn signed_in_citizen(
    stack: &MailStack,
    gw: &Gateway,
    email: &str,
    cf15: &str,
    password: &str,
) -> Client {
    let wait = Duration::from_secs(30);
    let client = Client::new(gw);
    let form = client.get("/register");
    let fiscal = cf(cf15);
    let done = client.post(
        "/register",
        &[
            ("csrf", &form.csrf()),
            ("first_name", "Anna"),
            ("last_name", "Verdi"),
            ("email", email),
            ("fiscal_code", &fiscal),
            ("password", password),
            ("password_confirm", password),
            ("privacy", "yes"),
        ],
    );
    assert_eq!(done.status, 303, "{}", done.body);
    let mail = wait_for_mail(stack, email, wait, |m| m.contains("/verify?token="));
    let link = link_in(&mail, "/verify?token=");
    let page = client.get(&link);
    let token = link.split("token=").nth(1).unwrap_or("").to_owned();
    let confirmed = client.post("/verify", &[("csrf", &page.csrf()), ("token", &token)]);
    assert_eq!(confirmed.status, 303, "{}", confirmed.body);
    let form = client.get("/login");
    let signed = client.post(
        "/login",
        &[
            ("csrf", &form.csrf()),
            ("email", email),
            ("password", password),
            ("next", "/tickets"),
        ],
    );
    assert_eq!(signed.status, 303, "{}", signed.body);
    client
}
