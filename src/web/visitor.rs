//! Who is asking: language, CSRF token, signed-in citizen, client address — read from the
//! request once ([`Visitor`]), and the page chrome every citizen page shares ([`Chrome`]).
//!
//! Cookies (all HttpOnly, SameSite=Lax, Path=/, no Domain; when `server.base_url` is https
//! also Secure and named with the `__Host-` prefix, so that no sibling subdomain can set or
//! shadow them):
//! - `tg_session`: a random id; the database keeps only its sha256 (`web_session`), so any
//!   instance serves any citizen and a database copy opens no session.
//! - `tg_csrf`: a random value given to every visitor; each form of a visitor not signed in
//!   carries its signature ([`SignedIds::sign`], purpose `csrf`) and a POST must bring both
//!   (signed double submit). An attacker's page can neither read the cookie nor compute the
//!   signature.
//! - Once signed in, forms carry the signature of the session instead: a token made before
//!   the sign-in, or for another session, no longer passes — a CSRF cookie planted in the
//!   browser (or a token seen before sign-in) is worth nothing against the session.
//! - `tg_lang`: `it` or `en`, set by the language switch (`?lang=`).

use std::net::SocketAddr;

use super::AppState;
use crate::domain::{now_millis, SignedIds};
use crate::store::{raw_sha256_hex, CitizenRow};
use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::header::{ACCEPT_LANGUAGE, CACHE_CONTROL, COOKIE, SET_COOKIE};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode};
use axum::response::{Html, IntoResponse, Redirect, Response};

pub const SESSION_COOKIE: &str = "tg_session";
pub const CSRF_COOKIE: &str = "tg_csrf";
pub const LANG_COOKIE: &str = "tg_lang";
/// The prefix of cookie names under https: the browser keeps such a cookie only when it is
/// Secure, has Path=/ and no Domain (RFC 6265bis §4.1.3.2).
const HOST_PREFIX: &str = "__Host-";
/// What CSRF tokens sign, so that no other signature of ours passes as one.
const CSRF_PURPOSE: &str = "csrf";
/// A session lasts this long after sign-in.
pub const SESSION_MILLIS: i64 = 7 * 24 * 3_600_000;

/// The page language.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lang {
    It,
    En,
}

impl Lang {
    pub fn code(self) -> &'static str {
        match self {
            Lang::It => "it",
            Lang::En => "en",
        }
    }
    fn parse(s: &str) -> Option<Lang> {
        match s.trim().to_ascii_lowercase().as_str() {
            "it" => Some(Lang::It),
            "en" => Some(Lang::En),
            _ => None,
        }
    }
}

/// The request's visitor.
#[derive(Debug, Clone)]
pub struct Visitor {
    pub lang: Lang,
    /// Set when `?lang=` chose the language: remembered in a cookie.
    lang_chosen: bool,
    csrf_cookie: String,
    new_csrf_cookie: bool,
    pub citizen: Option<CitizenRow>,
    /// sha256 of the session cookie, when there is one.
    pub session_hash: Option<String>,
    pub ip: String,
    /// Path and query of the request (for the language switch and `next`).
    pub path: String,
    pub query: String,
    secure: bool,
    ids: SignedIds,
}

fn cookies(parts: &Parts) -> Vec<(String, String)> {
    parts
        .headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| {
            let (k, v) = kv.split_once('=')?;
            Some((k.trim().to_owned(), v.trim().to_owned()))
        })
        .collect()
}

/// Longest `next` path followed after sign-in; a longer one is not a page of ours.
const MAX_NEXT_PATH: usize = 1024;

/// `next` when it is a path of this site that is safe to put in a `Location` header, else
/// `None`. Browsers are lenient with what follows the first `/`: they drop tabs and line
/// breaks (`/\t/evil.example` is `//evil.example`, another host), read `\` as `/`, and a
/// line break in a header is refused by the HTTP library (a 500 after a good sign-in). So
/// only visible ASCII is accepted — no control character, no whitespace, no backslash, no
/// non-ASCII (a browser would percent-encode it anyway) — and the path must start with
/// exactly one `/`.
pub fn local_path(next: &str) -> Option<&str> {
    let visible = next.bytes().all(|b| b.is_ascii_graphic() && b != b'\\');
    let one_slash = next.starts_with('/') && !next.starts_with("//");
    (visible && one_slash && next.len() <= MAX_NEXT_PATH).then_some(next)
}

/// A cookie's name: `__Host-` before it when the site is served over https.
fn cookie_name(secure: bool, name: &str) -> String {
    if secure {
        format!("{HOST_PREFIX}{name}")
    } else {
        name.to_owned()
    }
}

/// A random value for cookies and mailed links: 32 bytes, hex.
pub fn random_token() -> String {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).expect("the operating system's random source");
    hex::encode(bytes)
}

fn accept_language(parts: &Parts) -> Option<Lang> {
    let header = parts.headers.get(ACCEPT_LANGUAGE)?.to_str().ok()?;
    let mut best: Option<(f32, Lang)> = None;
    for item in header.split(',') {
        let mut pieces = item.split(';');
        let tag = pieces.next().unwrap_or("").trim().to_ascii_lowercase();
        let q = pieces
            .find_map(|p| {
                p.trim()
                    .strip_prefix("q=")
                    .and_then(|q| q.parse::<f32>().ok())
            })
            .unwrap_or(1.0);
        let lang = match tag.split('-').next() {
            Some("it") => Lang::It,
            Some("en") => Lang::En,
            _ => continue,
        };
        if best.is_none_or(|(bq, _)| q > bq) {
            best = Some((q, lang));
        }
    }
    best.map(|(_, l)| l)
}

impl FromRequestParts<AppState> for Visitor {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Response> {
        let jar = cookies(parts);
        let secure = state.cfg.server.base_url.starts_with("https://");
        let get = |name: &str| {
            let name = cookie_name(secure, name);
            jar.iter()
                .find(|(k, v)| *k == name && !v.is_empty())
                .map(|(_, v)| v.clone())
        };
        let query = parts.uri.query().unwrap_or("").to_owned();
        let from_query = query
            .split('&')
            .filter_map(|kv| kv.strip_prefix("lang="))
            .find_map(Lang::parse);
        let lang = from_query
            .or_else(|| get(LANG_COOKIE).and_then(|v| Lang::parse(&v)))
            .or_else(|| accept_language(parts))
            .unwrap_or(Lang::It);
        let (csrf_cookie, new_csrf_cookie) = match get(CSRF_COOKIE) {
            Some(v) if v.len() == 64 && v.bytes().all(|b| b.is_ascii_hexdigit()) => (v, false),
            _ => (random_token(), true),
        };
        let forwarded = state
            .cfg
            .server
            .trust_forwarded_for
            .then(|| parts.headers.get_all("x-forwarded-for").iter().next_back())
            .flatten()
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.rsplit(',').next())
            .map(|a| a.trim().to_owned())
            .filter(|a| !a.is_empty());
        let ip = forwarded.unwrap_or_else(|| {
            parts
                .extensions
                .get::<ConnectInfo<SocketAddr>>()
                .map(|c| c.0.ip().to_string())
                .unwrap_or_else(|| "unknown".to_owned())
        });
        let mut citizen = None;
        let mut session_hash = None;
        if let Some(session) = get(SESSION_COOKIE) {
            let hash = raw_sha256_hex(session.as_bytes());
            match state.store.session_citizen(&hash, now_millis()).await {
                Ok(c) => citizen = c,
                Err(e) => {
                    tracing::error!(error = %e, "reading a web session");
                    return Err(
                        (StatusCode::SERVICE_UNAVAILABLE, "database unavailable").into_response()
                    );
                }
            }
            session_hash = Some(hash);
        }
        Ok(Visitor {
            lang,
            lang_chosen: from_query.is_some(),
            csrf_cookie,
            new_csrf_cookie,
            citizen,
            session_hash,
            ip,
            path: parts.uri.path().to_owned(),
            query,
            secure,
            ids: state.ids.clone(),
        })
    }
}

impl Visitor {
    pub fn en(&self) -> bool {
        self.lang == Lang::En
    }

    /// The Italian or English text, by the page language: the one translation helper of
    /// the citizen pages (templates use [`Chrome::t`], which answers the same).
    pub fn t(&self, it: &str, en: &str) -> String {
        if self.en() { en } else { it }.to_owned()
    }

    /// What the CSRF token signs: the session once signed in, else the CSRF cookie. The
    /// two cannot be confused: the cookie is hex only, the session value has a `:`.
    fn csrf_subject(&self) -> String {
        match (&self.citizen, &self.session_hash) {
            (Some(_), Some(session)) => format!("session:{session}"),
            _ => self.csrf_cookie.clone(),
        }
    }

    /// The token forms carry.
    pub fn csrf_token(&self) -> String {
        self.ids.sign(CSRF_PURPOSE, &self.csrf_subject())
    }

    /// Whether a submitted form's token belongs to this visitor: to the session when signed
    /// in, else to the CSRF cookie. A visitor without the cookie (a forged cross-site POST,
    /// or cookies off) never passes.
    pub fn csrf_ok(&self, submitted: &str) -> bool {
        !self.new_csrf_cookie
            && self
                .ids
                .verify_sig(CSRF_PURPOSE, &self.csrf_subject(), submitted.trim())
    }

    fn cookie(&self, name: &str, value: &str, max_age: Option<i64>) -> String {
        let name = cookie_name(self.secure, name);
        let mut c = format!("{name}={value}; Path=/; HttpOnly; SameSite=Lax");
        if let Some(age) = max_age {
            c.push_str(&format!("; Max-Age={age}"));
        }
        if self.secure {
            c.push_str("; Secure");
        }
        c
    }

    /// Adds the cookies this visitor needs (new CSRF cookie, chosen language) and marks the
    /// response private: pages carry a CSRF token and a citizen's data.
    pub fn finish(&self, mut response: Response) -> Response {
        let headers = response.headers_mut();
        if self.new_csrf_cookie {
            if let Ok(v) = HeaderValue::from_str(&self.cookie(CSRF_COOKIE, &self.csrf_cookie, None))
            {
                headers.append(SET_COOKIE, v);
            }
        }
        if self.lang_chosen {
            let c = self.cookie(LANG_COOKIE, self.lang.code(), Some(365 * 24 * 3600));
            if let Ok(v) = HeaderValue::from_str(&c) {
                headers.append(SET_COOKIE, v);
            }
        }
        headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
        response
    }

    /// A response that starts a session (new id: any id the browser had before is dropped).
    pub fn with_session(&self, response: Response, session: &str) -> Response {
        let mut response = self.finish(response);
        let c = self.cookie(SESSION_COOKIE, session, Some(SESSION_MILLIS / 1000));
        if let Ok(v) = HeaderValue::from_str(&c) {
            response.headers_mut().append(SET_COOKIE, v);
        }
        response
    }

    /// A response that ends the session cookie.
    pub fn without_session(&self, response: Response) -> Response {
        let mut response = self.finish(response);
        if let Ok(v) = HeaderValue::from_str(&self.cookie(SESSION_COOKIE, "", Some(0))) {
            response.headers_mut().append(SET_COOKIE, v);
        }
        response
    }

    /// The chrome of a page titled `title`.
    pub fn chrome(&self, title: &str) -> Chrome {
        let other = match self.lang {
            Lang::It => Lang::En,
            Lang::En => Lang::It,
        };
        let rest: Vec<&str> = self
            .query
            .split('&')
            .filter(|kv| !kv.is_empty() && !kv.starts_with("lang="))
            .collect();
        let mut switch_href = format!("{}?lang={}", self.path, other.code());
        for kv in rest {
            switch_href.push('&');
            switch_href.push_str(kv);
        }
        Chrome {
            en: self.en(),
            lang: self.lang.code(),
            csrf: self.csrf_token(),
            signed_in: self
                .citizen
                .as_ref()
                .map(|c| format!("{} {}", c.first_name, c.last_name)),
            switch_href,
            switch_label: if self.en() { "Italiano" } else { "English" },
            switch_lang: other.code(),
            title: title.to_owned(),
            staff: None,
        }
    }

    /// 303 to the sign-in page, coming back here afterwards.
    pub fn to_login(&self) -> Response {
        let mut next = self.path.clone();
        if !self.query.is_empty() {
            next.push('?');
            next.push_str(&self.query);
        }
        let target = format!("/login?next={}", super::url_escape(&next));
        self.finish(Redirect::to(&target).into_response())
    }
}

/// What every citizen page shows around its content: language, switch, sign-in state.
#[derive(Debug, Clone)]
pub struct Chrome {
    pub en: bool,
    pub lang: &'static str,
    pub csrf: String,
    pub signed_in: Option<String>,
    pub switch_href: String,
    pub switch_label: &'static str,
    pub switch_lang: &'static str,
    pub title: String,
    /// On the staff pages, the staff member the signed link names: the menu then shows them
    /// instead of the citizens' account links, which are not theirs.
    pub staff: Option<String>,
}

impl Chrome {
    /// The Italian or English text, by the page language.
    pub fn t<'a>(&self, it: &'a str, en: &'a str) -> &'a str {
        if self.en {
            en
        } else {
            it
        }
    }
}

/// Renders a page template for `v` with `status`.
pub fn render(v: &Visitor, status: StatusCode, page: &impl askama::Template) -> Response {
    match page.render() {
        Ok(html) => v.finish((status, Html(html)).into_response()),
        Err(e) => {
            tracing::error!(error = %e, "rendering a page");
            (StatusCode::INTERNAL_SERVER_ERROR, "internal error").into_response()
        }
    }
}

/// A form's errors: (field id, message), in the order of the fields.
pub type Errors = Vec<(&'static str, String)>;

/// The error of one field, for templates: `errors.of("email")` ("" when none).
pub trait FieldErrors {
    fn of(&self, field: &str) -> &str;
}

impl FieldErrors for Errors {
    fn of(&self, field: &str) -> &str {
        self.iter()
            .find(|(f, _)| *f == field)
            .map(|(_, m)| m.as_str())
            .unwrap_or("")
    }
}

/// A page with a title and a few sentences (confirmations, expired links, not found).
#[derive(askama::Template)]
#[template(path = "web/message.html")]
struct MessagePage {
    c: Chrome,
    site: String,
    heading: String,
    paragraphs: Vec<String>,
    link: Option<(String, String)>,
}

/// Renders a [`MessagePage`]: `heading`, its paragraphs, an optional (href, label) link.
pub fn message(
    state: &AppState,
    v: &Visitor,
    status: StatusCode,
    heading: String,
    paragraphs: Vec<String>,
    link: Option<(String, String)>,
) -> Response {
    let page = MessagePage {
        c: v.chrome(&heading),
        site: state.cfg.server.site_name.clone(),
        heading,
        paragraphs,
        link,
    };
    render(v, status, &page)
}

#[cfg(test)]
mod tests {
    use super::local_path;

    #[test]
    fn a_local_path_with_a_query_is_followed() {
        assert_eq!(local_path("/tickets"), Some("/tickets"));
        assert_eq!(
            local_path("/tickets/2026-000001?lang=en"),
            Some("/tickets/2026-000001?lang=en")
        );
        assert_eq!(local_path("/"), Some("/"));
    }

    #[test]
    fn anything_a_browser_could_read_as_another_host_is_refused() {
        for next in [
            "",
            "tickets",
            "//evil.example",
            "/\t/evil.example",
            "/\n/evil.example",
            "/\r\nSet-Cookie: x=y",
            "/\\evil.example",
            "\\\\evil.example",
            "https://evil.example",
            "/ /evil.example",
            "/\u{7f}/evil.example",
            "/\u{3000}/evil.example",
            "/città",
            " /tickets",
        ] {
            assert_eq!(local_path(next), None, "{next:?}");
        }
        assert_eq!(local_path(&format!("/{}", "a".repeat(2000))), None);
    }
}
