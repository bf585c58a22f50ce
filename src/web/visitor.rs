//! Who is asking: language, CSRF token, signed-in citizen, client address — read from the
//! request once ([`Visitor`]), and the page chrome every citizen page shares ([`Chrome`]).
//!
//! Cookies (all HttpOnly, SameSite=Lax, Secure when `server.base_url` is https):
//! - `tg_session`: a random id; the database keeps only its sha256 (`web_session`), so any
//!   instance serves any citizen and a database copy opens no session.
//! - `tg_csrf`: a random value given to every visitor; each form carries its signature
//!   ([`SignedIds::sign`], purpose `csrf`) and a POST must bring both (signed double submit).
//!   An attacker's page can neither read the cookie nor compute the signature.
//! - `tg_lang`: `it` or `en`, set by the language switch (`?lang=`).

use std::net::SocketAddr;

use super::AppState;
use crate::domain::SignedIds;
use crate::store::{now_millis, raw_sha256_hex, CitizenRow};
use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::header::{ACCEPT_LANGUAGE, CACHE_CONTROL, COOKIE, SET_COOKIE};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode};
use axum::response::{Html, IntoResponse, Redirect, Response};

pub const SESSION_COOKIE: &str = "tg_session";
pub const CSRF_COOKIE: &str = "tg_csrf";
pub const LANG_COOKIE: &str = "tg_lang";
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
        let get = |name: &str| {
            jar.iter()
                .find(|(k, v)| k == name && !v.is_empty())
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
            secure: state.cfg.server.base_url.starts_with("https://"),
            ids: state.ids.clone(),
        })
    }
}

impl Visitor {
    pub fn en(&self) -> bool {
        self.lang == Lang::En
    }

    /// The token forms carry.
    pub fn csrf_token(&self) -> String {
        self.ids.sign(CSRF_PURPOSE, &self.csrf_cookie)
    }

    /// Whether a submitted form's token belongs to this visitor's cookie. A visitor without
    /// the cookie (a forged cross-site POST, or cookies off) never passes.
    pub fn csrf_ok(&self, submitted: &str) -> bool {
        !self.new_csrf_cookie
            && self
                .ids
                .verify_sig(CSRF_PURPOSE, &self.csrf_cookie, submitted.trim())
    }

    fn cookie(&self, name: &str, value: &str, max_age: Option<i64>) -> String {
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
