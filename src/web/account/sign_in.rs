//! Signing in and out.

use askama::Template;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::Form;
use serde::Deserialize;

use super::{form_expired, site};
use crate::domain::{now_millis, EmailAddress};
use crate::store::raw_sha256_hex;
use crate::web::limits::{self, Verdict};
use crate::web::password;
use crate::web::visitor::{
    local_path, random_token, render, Chrome, Errors, FieldErrors, Visitor, SESSION_MILLIS,
};
use crate::web::{AppState, Error};

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct LoginQuery {
    next: String,
    verified: Option<String>,
    reset: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct LoginForm {
    csrf: String,
    email: String,
    password: String,
    next: String,
}

#[derive(Template)]
#[template(path = "web/login.html")]
struct LoginPage {
    c: Chrome,
    site: String,
    email: String,
    next: String,
    notice: Option<String>,
    errors: Errors,
    unverified: bool,
}

/// Only a path on this site, else `/tickets` (open redirect: see [`local_path`]).
fn safe_next(next: &str) -> String {
    local_path(next).unwrap_or("/tickets").to_owned()
}

pub(super) async fn login_form(
    State(state): State<AppState>,
    v: Visitor,
    Query(q): Query<LoginQuery>,
) -> Response {
    let notice = if q.verified.is_some() {
        Some(v.t(
            "Indirizzo confermato: ora può accedere.",
            "Address confirmed: you can sign in now.",
        ))
    } else if q.reset.is_some() {
        Some(v.t(
            "Password cambiata: acceda con la nuova password.",
            "Password changed: sign in with the new password.",
        ))
    } else {
        None
    };
    let page = LoginPage {
        c: v.chrome(&v.t("Accesso", "Sign in")),
        site: site(&state),
        email: String::new(),
        next: safe_next(&q.next),
        notice,
        errors: Vec::new(),
        unverified: false,
    };
    render(&v, StatusCode::OK, &page)
}

pub(super) async fn login(
    State(state): State<AppState>,
    v: Visitor,
    Form(f): Form<LoginForm>,
) -> Result<Response, Error> {
    if !v.csrf_ok(&f.csrf) {
        let page = LoginPage {
            c: v.chrome(&v.t("Accesso: modulo scaduto", "Sign in: form expired")),
            site: site(&state),
            email: f.email.trim().to_owned(),
            next: safe_next(&f.next),
            notice: None,
            errors: vec![("password", form_expired(&v))],
            unverified: false,
        };
        return Err(Error::CsrfRefused(render(&v, StatusCode::FORBIDDEN, &page)));
    }
    let email = f.email.trim().to_lowercase();
    let next = safe_next(&f.next);
    // Attempts are written before the password is checked, so parallel guesses cannot slip
    // past the limits (docs/design-notes.md, "Web accounts under attack"). The account's
    // part of the key is hashed: no plain addresses of failed sign-ins in the database,
    // and a bounded key.
    let account = raw_sha256_hex(email.as_bytes());
    let refuse = |errors: Errors, unverified: bool, status: StatusCode| {
        let page = LoginPage {
            c: v.chrome(&v.t("Accesso: non riuscito", "Sign in: failed")),
            site: site(&state),
            email: f.email.trim().to_owned(),
            next: next.clone(),
            notice: None,
            errors,
            unverified,
        };
        Error::Form(render(&v, status, &page))
    };
    let limited = |seconds: i64| {
        metrics::counter!("ticketgate_web_login_limited_total").increment(1);
        let wait = limits::wait_words(&v, seconds);
        let e = if v.en() {
            format!("Too many failed attempts. For your security, wait {wait} and try again, or recover the password.")
        } else {
            format!("Troppi tentativi non riusciti. Per la sua sicurezza attenda {wait} e riprovi, oppure recuperi la password.")
        };
        let mut page = refuse(vec![("email", e)], false, StatusCode::TOO_MANY_REQUESTS);
        if let (Error::Form(page), Ok(value)) = (
            &mut page,
            axum::http::HeaderValue::from_str(&seconds.max(1).to_string()),
        ) {
            page.headers_mut()
                .insert(axum::http::header::RETRY_AFTER, value);
        }
        page
    };
    let client_attempt = match limits::take(&state, limits::SIGN_INS_PER_CLIENT, &v.ip).await? {
        Verdict::Wait(seconds) => return Err(limited(seconds)),
        Verdict::Allowed(id) => id,
    };
    if let Verdict::Wait(seconds) = limits::take_sign_in(&state, &account, &v.ip).await? {
        // Not checked, so not a failure of this address either.
        limits::forget(&state, client_attempt).await?;
        return Err(limited(seconds));
    }
    // An address that does not parse has no account (and still costs a dummy check below).
    let citizen = match EmailAddress::parse(&email) {
        Ok(email) => state.store.citizen_by_email(&email).await?,
        Err(_) => None,
    };
    let ok = match &citizen {
        Some(c) => password::verify(f.password.clone(), c.password_hash.clone()).await,
        None => {
            // The same work as a real check: the answer's timing does not tell whether the
            // account exists.
            password::verify_dummy(f.password.clone()).await;
            false
        }
    };
    let Some(citizen) = citizen.filter(|_| ok) else {
        // The attempts written above stay: they are this failure.
        metrics::counter!("ticketgate_web_login_failed_total").increment(1);
        let e = v.t(
            "Indirizzo e-mail o password non corretti.",
            "Wrong email address or password.",
        );
        return Err(refuse(vec![("email", e)], false, StatusCode::UNAUTHORIZED));
    };
    // The right password: no failure, and the delay this address built up for the account ends.
    limits::forget(&state, client_attempt).await?;
    limits::signed_in(&state, &account, &v.ip).await?;
    if citizen.verified_at.is_none() {
        let e = v.t("Deve prima confermare il suo indirizzo e-mail con il collegamento che le abbiamo inviato.",
            "First confirm your email address with the link we sent you.",
        );
        return Err(refuse(vec![("email", e)], true, StatusCode::FORBIDDEN));
    }
    let session = random_token();
    let now = now_millis();
    if let Some(old) = &v.session_hash {
        state.store.delete_session(old).await?;
    }
    state
        .store
        .insert_session(
            &raw_sha256_hex(session.as_bytes()),
            citizen.citizen_id,
            now,
            now + SESSION_MILLIS,
        )
        .await?;
    metrics::counter!("ticketgate_web_logins_total").increment(1);
    Ok(v.with_session(Redirect::to(&next).into_response(), &session))
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct CsrfForm {
    csrf: String,
}

pub(super) async fn logout(
    State(state): State<AppState>,
    v: Visitor,
    Form(f): Form<CsrfForm>,
) -> Result<Response, Error> {
    if !v.csrf_ok(&f.csrf) {
        return Err(Error::csrf_refused(&state, &v));
    }
    if let Some(hash) = &v.session_hash {
        state.store.delete_session(hash).await?;
    }
    Ok(v.without_session(Redirect::to("/").into_response()))
}
