//! Choosing a new password from a reset link.

use askama::Template;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::Form;

use super::links::{expired_link, reset_form_expired, TokenForm, TokenQuery};
use super::register::new_password_errors;
use super::site;
use crate::domain::{now_millis, TokenPurpose};
use crate::store::{raw_sha256_hex, Store};
use crate::web::password;
use crate::web::visitor::{render, Chrome, Errors, FieldErrors, Visitor};
use crate::web::{AppState, Error};

#[derive(Template)]
#[template(path = "web/reset.html")]
struct ResetPage {
    c: Chrome,
    site: String,
    token: String,
    errors: Errors,
}

pub(super) async fn reset_form(
    State(state): State<AppState>,
    v: Visitor,
    Query(q): Query<TokenQuery>,
) -> Result<Response, Error> {
    let hash = raw_sha256_hex(q.token.trim().as_bytes());
    match state
        .store
        .token_citizen(&hash, TokenPurpose::Reset, now_millis())
        .await?
    {
        None => Err(expired_link(&state, &v, "/password/forgot")),
        Some(_) => {
            let page = ResetPage {
                c: v.chrome(&v.t("Nuova password", "New password")),
                site: site(&state),
                token: q.token.trim().to_owned(),
                errors: Vec::new(),
            };
            Ok(render(&v, StatusCode::OK, &page))
        }
    }
}

pub(super) async fn reset(
    State(state): State<AppState>,
    v: Visitor,
    Form(f): Form<TokenForm>,
) -> Result<Response, Error> {
    if !v.csrf_ok(&f.csrf) {
        // The form again with the link's token (so the citizen can try again without a new
        // mail), never the passwords; the token is checked when the form comes back.
        let page = ResetPage {
            c: v.chrome(&v.t(
                "Nuova password: modulo scaduto",
                "New password: form expired",
            )),
            site: site(&state),
            token: f.token.trim().to_owned(),
            errors: vec![("password", reset_form_expired(&v))],
        };
        return Err(Error::CsrfRefused(render(&v, StatusCode::FORBIDDEN, &page)));
    }
    let hash = raw_sha256_hex(f.token.trim().as_bytes());
    let now = now_millis();
    let citizen = match state
        .store
        .token_citizen(&hash, TokenPurpose::Reset, now)
        .await?
    {
        None => None,
        Some(id) => state.store.citizen(id).await?,
    };
    let Some(citizen) = citizen else {
        return Err(expired_link(&state, &v, "/password/forgot"));
    };
    let errors = new_password_errors(
        &v,
        &f.password,
        &f.password_confirm,
        &[
            citizen.email.as_str(),
            &citizen.first_name,
            &citizen.last_name,
        ],
    );
    if !errors.is_empty() {
        let page = ResetPage {
            c: v.chrome(&v.t(
                "Nuova password: da correggere",
                "New password: please correct",
            )),
            site: site(&state),
            token: f.token.trim().to_owned(),
            errors,
        };
        return Err(Error::Form(render(
            &v,
            StatusCode::UNPROCESSABLE_ENTITY,
            &page,
        )));
    }
    let phc = password::hash(f.password.clone()).await?;
    let mut tx = state.store.begin().await?;
    let used = Store::use_token(&mut tx, &hash, TokenPurpose::Reset, now).await?;
    if let Some(id) = used {
        Store::set_citizen_password(&mut tx, id, &phc).await?;
        // Whoever can read the mailbox could reset; they have thereby proven the address.
        Store::set_citizen_verified(&mut tx, id, now).await?;
    }
    tx.commit().await?;
    match used {
        None => Err(expired_link(&state, &v, "/password/forgot")),
        Some(_) => Ok(v.finish(Redirect::to("/login?reset=1").into_response())),
    }
}
