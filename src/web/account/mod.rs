//! Citizen accounts: register, confirm the address from the mailed link, sign in and out,
//! forgotten password. Every form is CSRF-checked; every mailed link is random, stored as
//! its sha256, single use and expiring, and opening it (GET) only shows a button — mail
//! scanners open links on their own.
//!
//! Registration answers "check your mail" whether or not the email or codice fiscale already
//! has an account (the answer must not tell anyone whether a person is registered); the
//! owner of an existing account is told by mail instead. Every form that hashes a password or
//! sends mail is limited per client address (`limits`), checked before any hashing.

mod links;
mod register;
mod reset;
mod sign_in;

use axum::routing::{get, post};
use axum::Router;

use super::visitor::Visitor;
use super::AppState;

use links::{forgot, forgot_form, resend, resend_form, verify, verify_page};
use register::{register, register_form};
use reset::{reset, reset_form};
use sign_in::{login, login_form, logout};

/// A verification link is valid this long.
const VERIFY_HOURS: i64 = 48;
/// A password-reset link is valid this long.
const RESET_HOURS: i64 = 2;
/// Links of one purpose mailed to one account per hour, at most.
const LINKS_PER_HOUR: i64 = 3;
/// Longest first or last name, in characters.
const MAX_NAME_CHARS: usize = 100;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/register", get(register_form).post(register))
        .route("/verify", get(verify_page).post(verify))
        .route("/verify/resend", get(resend_form).post(resend))
        .route("/login", get(login_form).post(login))
        .route("/logout", post(logout))
        .route("/password/forgot", get(forgot_form).post(forgot))
        .route("/password/reset", get(reset_form).post(reset))
}

fn site(state: &AppState) -> String {
    state.cfg.server.site_name.clone()
}

/// The error of a form refused for its token, shown at the password (typed again).
fn form_expired(v: &Visitor) -> String {
    v.t("Il modulo era scaduto (o i cookie sono disattivati): i dati sono qui sotto, scriva di nuovo la password e invii ancora.",
        "The form had expired (or cookies are off): your details are below; type the password again and send once more.",
    )
}
