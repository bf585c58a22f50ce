//! Citizen accounts: register, confirm the address from the mailed link, sign in and out,
//! forgotten password. Every form is CSRF-checked; every mailed link is random, stored as
//! its sha256, single use and expiring, and opening it (GET) only shows a button — mail
//! scanners open links on their own.

use askama::Template;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, Router};
use serde::Deserialize;

use super::fiscal_code;
use super::password;
use super::visitor::{
    message, random_token, render, Chrome, Errors, FieldErrors, Visitor, SESSION_MILLIS,
};
use super::AppState;
use crate::domain::EmailAddress;
use crate::outbound::queue::{queue_mail, Queued};
use crate::outbound::Transport;
use crate::store::{now_millis, raw_sha256_hex, AccountTaken, NewCitizen, Store};

/// A verification link is valid this long.
const VERIFY_HOURS: i64 = 48;
/// A password-reset link is valid this long.
const RESET_HOURS: i64 = 2;
/// Links of one purpose mailed to one account per hour, at most.
const LINKS_PER_HOUR: i64 = 3;
/// Failed sign-ins counted over this window…
const FAILURE_WINDOW_MILLIS: i64 = 15 * 60_000;
/// …per account and per client address.
const FAILURES_PER_ACCOUNT: i64 = 5;
const FAILURES_PER_IP: i64 = 20;

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

fn t(v: &Visitor, it: &str, en: &str) -> String {
    if v.en() {
        en.to_owned()
    } else {
        it.to_owned()
    }
}

fn site(state: &AppState) -> String {
    state.cfg.server.site_name.clone()
}

fn internal(e: impl std::fmt::Display) -> Response {
    tracing::error!(error = %e, "citizen page failed");
    (StatusCode::INTERNAL_SERVER_ERROR, "internal error").into_response()
}

fn csrf_refused(state: &AppState, v: &Visitor) -> Response {
    message(
        state,
        v,
        StatusCode::FORBIDDEN,
        t(v, "Modulo scaduto", "Form expired"),
        vec![t(
            v,
            "Il modulo non è più valido (o i cookie sono disattivati). Torni indietro, ricarichi la pagina e riprovi.",
            "The form is no longer valid (or cookies are off). Go back, reload the page and try again.",
        )],
        None,
    )
}

// ------------------------------------------------------------------------- register

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct RegisterForm {
    csrf: String,
    first_name: String,
    last_name: String,
    email: String,
    fiscal_code: String,
    password: String,
    password_confirm: String,
    privacy: Option<String>,
}

#[derive(Template)]
#[template(path = "web/register.html")]
struct RegisterPage {
    c: Chrome,
    site: String,
    form: RegisterForm,
    errors: Errors,
}

async fn register_form(
    State(state): State<AppState>,
    v: Visitor,
    Query(q): Query<TokenQuery>,
) -> Response {
    if q.done.is_some() {
        return message(
            &state,
            &v,
            StatusCode::OK,
            t(&v, "Controlli la posta", "Check your mail"),
            vec![
                t(
                    &v,
                    "Le abbiamo inviato un messaggio con un collegamento per confermare il suo indirizzo e-mail. Lo apra e prema «Conferma»: poi potrà accedere.",
                    "We sent you a message with a link to confirm your email address. Open it and press \"Confirm\": then you can sign in.",
                ),
                t(
                    &v,
                    "Non è arrivato? Controlli la posta indesiderata, oppure chieda un nuovo collegamento.",
                    "Nothing arrived? Check the spam folder, or ask for a new link.",
                ),
            ],
            Some(("/verify/resend".to_owned(), t(&v, "Chiedi un nuovo collegamento", "Ask for a new link"))),
        );
    }
    let page = RegisterPage {
        c: v.chrome(&t(&v, "Registrazione", "Register")),
        site: site(&state),
        form: RegisterForm::default(),
        errors: Vec::new(),
    };
    render(&v, StatusCode::OK, &page)
}

fn check_name(v: &Visitor, value: &str, it: &str, en: &str) -> Option<String> {
    let value = value.trim();
    if value.is_empty() {
        return Some(t(v, it, en));
    }
    if value.chars().count() > 100 || value.chars().any(char::is_control) {
        return Some(t(
            v,
            "Usi solo lettere, spazi, apostrofi o trattini (al massimo 100).",
            "Use letters, spaces, apostrophes or hyphens only (at most 100).",
        ));
    }
    None
}

async fn register(
    State(state): State<AppState>,
    v: Visitor,
    Form(mut form): Form<RegisterForm>,
) -> Response {
    if !v.csrf_ok(&form.csrf) {
        return csrf_refused(&state, &v);
    }
    let mut errors: Errors = Vec::new();
    if let Some(e) = check_name(
        &v,
        &form.first_name,
        "Scriva il suo nome.",
        "Enter your first name.",
    ) {
        errors.push(("first_name", e));
    }
    if let Some(e) = check_name(
        &v,
        &form.last_name,
        "Scriva il suo cognome.",
        "Enter your last name.",
    ) {
        errors.push(("last_name", e));
    }
    let email = form.email.trim().to_lowercase();
    if email.is_empty() {
        errors.push((
            "email",
            t(
                &v,
                "Scriva il suo indirizzo e-mail.",
                "Enter your email address.",
            ),
        ));
    } else if EmailAddress::parse(&email).is_err() {
        errors.push((
            "email",
            t(
                &v,
                "L'indirizzo e-mail non è valido: deve essere come nome@esempio.it.",
                "The email address is not valid: it should look like name@example.com.",
            ),
        ));
    }
    let fiscal = match fiscal_code::parse(&form.fiscal_code) {
        Ok(code) => Some(code),
        Err(e) => {
            errors.push((
                "fiscal_code",
                if v.en() {
                    e.message_en().to_owned()
                } else {
                    e.message_it().to_owned()
                },
            ));
            None
        }
    };
    errors.extend(new_password_errors(
        &v,
        &form.password,
        &form.password_confirm,
        &[&email, form.first_name.trim(), form.last_name.trim()],
    ));
    if form.privacy.is_none() {
        errors.push((
            "privacy",
            t(
                &v,
                "Per registrarsi deve dichiarare di aver letto l'informativa sulla privacy.",
                "To register you must confirm you have read the privacy notice.",
            ),
        ));
    }
    let mut created = None;
    if errors.is_empty() {
        let fiscal = fiscal
            .as_ref()
            .map(|f| f.as_str().to_owned())
            .unwrap_or_default();
        match create_account(&state, &form, &email, &fiscal).await {
            Ok(Ok(id)) => created = Some(id),
            Ok(Err(AccountTaken::Email)) => errors.push((
                "email",
                t(
                    &v,
                    "Esiste già un account con questo indirizzo: acceda, oppure recuperi la password.",
                    "An account with this address exists already: sign in, or recover the password.",
                ),
            )),
            Ok(Err(AccountTaken::FiscalCode)) => errors.push((
                "fiscal_code",
                t(
                    &v,
                    "Esiste già un account con questo codice fiscale.",
                    "An account with this tax code exists already.",
                ),
            )),
            Err(e) => return internal(e),
        }
    }
    if created.is_some() {
        tracing::info!("citizen account registered; verification mail queued");
        state.outbox_wake.notify_one();
        return v.finish(Redirect::to("/register?done=1").into_response());
    }
    // The form comes back with what was typed, never the passwords.
    form.password.clear();
    form.password_confirm.clear();
    let page = RegisterPage {
        c: v.chrome(&t(
            &v,
            "Registrazione: da correggere",
            "Register: please correct",
        )),
        site: site(&state),
        form,
        errors,
    };
    render(&v, StatusCode::UNPROCESSABLE_ENTITY, &page)
}

/// The errors of a new password and its repetition; `personal` is the account's email,
/// first and last name (a password may not be made of them).
fn new_password_errors(v: &Visitor, password: &str, confirm: &str, personal: &[&str]) -> Errors {
    let local = personal
        .first()
        .map(|e| e.split('@').next().unwrap_or(""))
        .unwrap_or("");
    let mut data = vec![local];
    data.extend(personal.iter().skip(1));
    if let Err(p) = password::check(password, &data) {
        let message = if v.en() {
            p.message_en()
        } else {
            p.message_it()
        };
        return vec![("password", message)];
    }
    if password != confirm {
        return vec![(
            "password_confirm",
            t(
                v,
                "Le due password non coincidono.",
                "The two passwords do not match.",
            ),
        )];
    }
    Vec::new()
}

async fn create_account(
    state: &AppState,
    form: &RegisterForm,
    email: &str,
    fiscal: &str,
) -> anyhow::Result<Result<i64, AccountTaken>> {
    let phc = password::hash(form.password.clone()).await?;
    let now = now_millis();
    let mut tx = state.store.begin().await?;
    let id = match Store::insert_citizen(
        &mut tx,
        &NewCitizen {
            email,
            first_name: form.first_name.trim(),
            last_name: form.last_name.trim(),
            fiscal_code: fiscal,
            password_hash: &phc,
            at: now,
        },
    )
    .await?
    {
        Ok(id) => id,
        Err(taken) => return Ok(Err(taken)),
    };
    let name = format!("{} {}", form.first_name.trim(), form.last_name.trim());
    mail_link(state, &mut tx, id, email, &name, "verify").await?;
    tx.commit().await?;
    Ok(Ok(id))
}

#[derive(Template)]
#[template(path = "mail/citizen_verify.txt")]
struct VerifyMail<'a> {
    name: &'a str,
    site: &'a str,
    link: &'a str,
    hours: i64,
}

#[derive(Template)]
#[template(path = "mail/citizen_reset.txt")]
struct ResetMail<'a> {
    name: &'a str,
    site: &'a str,
    link: &'a str,
    hours: i64,
}

/// Makes a link for `purpose` and queues the mail carrying it, in `tx`.
async fn mail_link(
    state: &AppState,
    tx: &mut crate::store::Tx,
    citizen_id: i64,
    email: &str,
    name: &str,
    purpose: &str,
) -> anyhow::Result<()> {
    let token = random_token();
    let now = now_millis();
    let (path, hours, subject) = match purpose {
        "verify" => (
            "/verify",
            VERIFY_HOURS,
            "Conferma il tuo indirizzo / Confirm your address",
        ),
        _ => (
            "/password/reset",
            RESET_HOURS,
            "Nuova password / New password",
        ),
    };
    Store::insert_token(
        tx,
        &raw_sha256_hex(token.as_bytes()),
        citizen_id,
        purpose,
        now,
        now + hours * 3_600_000,
    )
    .await?;
    let base = state.cfg.server.base_url.trim_end_matches('/');
    let link = format!("{base}{path}?token={token}");
    let site = site(state);
    let text = if purpose == "verify" {
        VerifyMail {
            name,
            site: &site,
            link: &link,
            hours,
        }
        .render()?
    } else {
        ResetMail {
            name,
            site: &site,
            link: &link,
            hours,
        }
        .render()?
    };
    let from = state.cfg.web_sender().unwrap_or_default();
    queue_mail(
        tx,
        &state.ids,
        &Queued {
            ticket: None,
            kind: "account",
            from_name: &site,
            from_addr: &from,
            to: vec![EmailAddress::parse(email)
                .map_err(|e| anyhow::anyhow!("the account's address: {e}"))?],
            reply_to: None,
            subject: &format!("{site}: {subject}"),
            in_reply_to: None,
            references: Vec::new(),
            auto_replied: true,
            text: &text,
            attachments: Vec::new(),
            transport: Transport::Smtp,
        },
    )
    .await?;
    Ok(())
}

// ------------------------------------------------------------------------- verify

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct TokenQuery {
    token: String,
    done: Option<String>,
}

#[derive(Template)]
#[template(path = "web/confirm.html")]
struct ConfirmPage {
    c: Chrome,
    site: String,
    heading: String,
    text: String,
    action: &'static str,
    token: String,
    button: String,
}

async fn verify_page(
    State(state): State<AppState>,
    v: Visitor,
    Query(q): Query<TokenQuery>,
) -> Response {
    let hash = raw_sha256_hex(q.token.trim().as_bytes());
    match state
        .store
        .token_citizen(&hash, "verify", now_millis())
        .await
    {
        Err(e) => internal(e),
        Ok(None) => expired_link(&state, &v, "/verify/resend"),
        Ok(Some(_)) => {
            let heading = t(
                &v,
                "Conferma dell'indirizzo e-mail",
                "Confirm your email address",
            );
            let page = ConfirmPage {
                c: v.chrome(&heading),
                site: site(&state),
                heading,
                text: t(
                    &v,
                    "Prema il pulsante per confermare il suo indirizzo e-mail e attivare l'account.",
                    "Press the button to confirm your email address and activate the account.",
                ),
                action: "/verify",
                token: q.token.trim().to_owned(),
                button: t(&v, "Conferma", "Confirm"),
            };
            render(&v, StatusCode::OK, &page)
        }
    }
}

fn expired_link(state: &AppState, v: &Visitor, again: &str) -> Response {
    message(
        state,
        v,
        StatusCode::NOT_FOUND,
        t(v, "Collegamento non valido", "Link not valid"),
        vec![t(
            v,
            "Il collegamento è scaduto, è già stato usato oppure è incompleto.",
            "The link has expired, was used already, or is incomplete.",
        )],
        Some((
            again.to_owned(),
            t(v, "Chiedi un nuovo collegamento", "Ask for a new link"),
        )),
    )
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct TokenForm {
    csrf: String,
    token: String,
    password: String,
    password_confirm: String,
}

async fn verify(State(state): State<AppState>, v: Visitor, Form(f): Form<TokenForm>) -> Response {
    if !v.csrf_ok(&f.csrf) {
        return csrf_refused(&state, &v);
    }
    let hash = raw_sha256_hex(f.token.trim().as_bytes());
    let now = now_millis();
    let result: anyhow::Result<Option<i64>> = async {
        let mut tx = state.store.begin().await?;
        let used = Store::use_token(&mut tx, &hash, "verify", now).await?;
        if let Some(id) = used {
            Store::set_citizen_verified(&mut tx, id, now).await?;
        }
        tx.commit().await?;
        Ok(used)
    }
    .await;
    match result {
        Err(e) => internal(e),
        Ok(None) => expired_link(&state, &v, "/verify/resend"),
        Ok(Some(_)) => v.finish(Redirect::to("/login?verified=1").into_response()),
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct EmailForm {
    csrf: String,
    email: String,
}

#[derive(Template)]
#[template(path = "web/email_form.html")]
struct EmailFormPage {
    c: Chrome,
    site: String,
    heading: String,
    text: String,
    action: &'static str,
    button: String,
    email: String,
    errors: Errors,
}

fn email_form(
    state: &AppState,
    v: &Visitor,
    resend: bool,
    email: String,
    errors: Errors,
) -> Response {
    let (heading, text, action, button) = if resend {
        (
            t(v, "Nuovo collegamento di conferma", "New confirmation link"),
            t(
                v,
                "Scriva l'indirizzo con cui si è registrato: se l'account esiste e non è ancora confermato, le inviamo un nuovo collegamento.",
                "Enter the address you registered with: if the account exists and is not confirmed yet, we send you a new link.",
            ),
            "/verify/resend",
            t(v, "Invia il collegamento", "Send the link"),
        )
    } else {
        (
            t(v, "Password dimenticata", "Forgotten password"),
            t(
                v,
                "Scriva l'indirizzo con cui si è registrato: se l'account esiste, le inviamo un collegamento per scegliere una nuova password.",
                "Enter the address you registered with: if the account exists, we send you a link to choose a new password.",
            ),
            "/password/forgot",
            t(v, "Invia il collegamento", "Send the link"),
        )
    };
    let status = if errors.is_empty() {
        StatusCode::OK
    } else {
        StatusCode::UNPROCESSABLE_ENTITY
    };
    let page = EmailFormPage {
        c: v.chrome(&heading),
        site: site(state),
        heading,
        text,
        action,
        button,
        email,
        errors,
    };
    render(v, status, &page)
}

async fn resend_form(State(state): State<AppState>, v: Visitor) -> Response {
    email_form(&state, &v, true, String::new(), Vec::new())
}

async fn forgot_form(State(state): State<AppState>, v: Visitor) -> Response {
    email_form(&state, &v, false, String::new(), Vec::new())
}

/// Sends a link of `purpose` to the account of `email` if there is one (and, for `verify`,
/// if it is not confirmed yet), within the hourly limit. The answer never says which.
async fn send_link_if_any(state: &AppState, email: &str, purpose: &str) -> anyhow::Result<()> {
    let Some(c) = state.store.citizen_by_email(email).await? else {
        return Ok(());
    };
    if purpose == "verify" && c.verified_at.is_some() {
        return Ok(());
    }
    let sent = state
        .store
        .tokens_since(c.citizen_id, purpose, now_millis() - 3_600_000)
        .await?;
    if sent >= LINKS_PER_HOUR {
        tracing::warn!(purpose, "mailed-link limit reached for an account");
        return Ok(());
    }
    let mut tx = state.store.begin().await?;
    let name = format!("{} {}", c.first_name, c.last_name);
    mail_link(state, &mut tx, c.citizen_id, &c.email, &name, purpose).await?;
    tx.commit().await?;
    state.outbox_wake.notify_one();
    Ok(())
}

async fn email_post(state: AppState, v: Visitor, f: EmailForm, purpose: &str) -> Response {
    let resend = purpose == "verify";
    if !v.csrf_ok(&f.csrf) {
        return csrf_refused(&state, &v);
    }
    let email = f.email.trim().to_lowercase();
    if EmailAddress::parse(&email).is_err() {
        let e = t(
            &v,
            "L'indirizzo e-mail non è valido: deve essere come nome@esempio.it.",
            "The email address is not valid: it should look like name@example.com.",
        );
        return email_form(&state, &v, resend, f.email, vec![("email", e)]);
    }
    if let Err(e) = send_link_if_any(&state, &email, purpose).await {
        return internal(e);
    }
    message(
        &state,
        &v,
        StatusCode::OK,
        t(&v, "Controlli la posta", "Check your mail"),
        vec![t(
            &v,
            "Se l'indirizzo corrisponde a un account, tra poco riceverà un messaggio con il collegamento. Controlli anche la cartella della posta indesiderata.",
            "If the address belongs to an account, you will soon get a message with the link. Check the spam folder too.",
        )],
        None,
    )
}

async fn resend(State(state): State<AppState>, v: Visitor, Form(f): Form<EmailForm>) -> Response {
    email_post(state, v, f, "verify").await
}

async fn forgot(State(state): State<AppState>, v: Visitor, Form(f): Form<EmailForm>) -> Response {
    email_post(state, v, f, "reset").await
}

// ------------------------------------------------------------------------- reset

#[derive(Template)]
#[template(path = "web/reset.html")]
struct ResetPage {
    c: Chrome,
    site: String,
    token: String,
    errors: Errors,
}

async fn reset_form(
    State(state): State<AppState>,
    v: Visitor,
    Query(q): Query<TokenQuery>,
) -> Response {
    let hash = raw_sha256_hex(q.token.trim().as_bytes());
    match state
        .store
        .token_citizen(&hash, "reset", now_millis())
        .await
    {
        Err(e) => internal(e),
        Ok(None) => expired_link(&state, &v, "/password/forgot"),
        Ok(Some(_)) => {
            let page = ResetPage {
                c: v.chrome(&t(&v, "Nuova password", "New password")),
                site: site(&state),
                token: q.token.trim().to_owned(),
                errors: Vec::new(),
            };
            render(&v, StatusCode::OK, &page)
        }
    }
}

async fn reset(State(state): State<AppState>, v: Visitor, Form(f): Form<TokenForm>) -> Response {
    if !v.csrf_ok(&f.csrf) {
        return csrf_refused(&state, &v);
    }
    let hash = raw_sha256_hex(f.token.trim().as_bytes());
    let now = now_millis();
    let citizen = match state.store.token_citizen(&hash, "reset", now).await {
        Err(e) => return internal(e),
        Ok(None) => return expired_link(&state, &v, "/password/forgot"),
        Ok(Some(id)) => match state.store.citizen(id).await {
            Ok(Some(c)) => c,
            Ok(None) => return expired_link(&state, &v, "/password/forgot"),
            Err(e) => return internal(e),
        },
    };
    let errors = new_password_errors(
        &v,
        &f.password,
        &f.password_confirm,
        &[&citizen.email, &citizen.first_name, &citizen.last_name],
    );
    if !errors.is_empty() {
        let page = ResetPage {
            c: v.chrome(&t(
                &v,
                "Nuova password: da correggere",
                "New password: please correct",
            )),
            site: site(&state),
            token: f.token.trim().to_owned(),
            errors,
        };
        return render(&v, StatusCode::UNPROCESSABLE_ENTITY, &page);
    }
    let result: anyhow::Result<bool> = async {
        let phc = password::hash(f.password.clone()).await?;
        let mut tx = state.store.begin().await?;
        let used = Store::use_token(&mut tx, &hash, "reset", now).await?;
        if let Some(id) = used {
            Store::set_citizen_password(&mut tx, id, &phc).await?;
            // Whoever can read the mailbox could reset; they have thereby proven the address.
            Store::set_citizen_verified(&mut tx, id, now).await?;
        }
        tx.commit().await?;
        Ok(used.is_some())
    }
    .await;
    match result {
        Err(e) => internal(e),
        Ok(false) => expired_link(&state, &v, "/password/forgot"),
        Ok(true) => v.finish(Redirect::to("/login?reset=1").into_response()),
    }
}

// ------------------------------------------------------------------------- sign in / out

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

/// Only a path on this site: never an absolute or scheme-relative URL (open redirect).
fn safe_next(next: &str) -> String {
    let ok = next.starts_with('/') && !next.starts_with("//") && !next.contains('\\');
    if ok {
        next.to_owned()
    } else {
        "/tickets".to_owned()
    }
}

async fn login_form(
    State(state): State<AppState>,
    v: Visitor,
    Query(q): Query<LoginQuery>,
) -> Response {
    let notice = if q.verified.is_some() {
        Some(t(
            &v,
            "Indirizzo confermato: ora può accedere.",
            "Address confirmed: you can sign in now.",
        ))
    } else if q.reset.is_some() {
        Some(t(
            &v,
            "Password cambiata: acceda con la nuova password.",
            "Password changed: sign in with the new password.",
        ))
    } else {
        None
    };
    let page = LoginPage {
        c: v.chrome(&t(&v, "Accesso", "Sign in")),
        site: site(&state),
        email: String::new(),
        next: safe_next(&q.next),
        notice,
        errors: Vec::new(),
        unverified: false,
    };
    render(&v, StatusCode::OK, &page)
}

async fn login(State(state): State<AppState>, v: Visitor, Form(f): Form<LoginForm>) -> Response {
    if !v.csrf_ok(&f.csrf) {
        return csrf_refused(&state, &v);
    }
    let email = f.email.trim().to_lowercase();
    let next = safe_next(&f.next);
    let now = now_millis();
    let since = now - FAILURE_WINDOW_MILLIS;
    let ip_key = format!("ip:{}", v.ip);
    let acct_key = format!("acct:{email}");
    let refuse = |errors: Errors, unverified: bool, status: StatusCode| {
        let page = LoginPage {
            c: v.chrome(&t(&v, "Accesso: non riuscito", "Sign in: failed")),
            site: site(&state),
            email: f.email.trim().to_owned(),
            next: next.clone(),
            notice: None,
            errors,
            unverified,
        };
        render(&v, status, &page)
    };
    let counts = async {
        let ip = state.store.login_failures_since(&ip_key, since).await?;
        let acct = state.store.login_failures_since(&acct_key, since).await?;
        anyhow::Ok((ip, acct))
    }
    .await;
    let (ip_failures, acct_failures) = match counts {
        Ok(c) => c,
        Err(e) => return internal(e),
    };
    if ip_failures >= FAILURES_PER_IP || acct_failures >= FAILURES_PER_ACCOUNT {
        metrics::counter!("ticketgate_web_login_limited_total").increment(1);
        let minutes = FAILURE_WINDOW_MILLIS / 60_000;
        let e = if v.en() {
            format!("Too many failed attempts. For your security, wait {minutes} minutes and try again, or recover the password.")
        } else {
            format!("Troppi tentativi non riusciti. Per la sua sicurezza attenda {minutes} minuti e riprovi, oppure recuperi la password.")
        };
        return refuse(vec![("email", e)], false, StatusCode::TOO_MANY_REQUESTS);
    }
    let citizen = match state.store.citizen_by_email(&email).await {
        Ok(c) => c,
        Err(e) => return internal(e),
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
        if let Err(e) = state
            .store
            .record_login_failure(&[ip_key, acct_key], now)
            .await
        {
            return internal(e);
        }
        metrics::counter!("ticketgate_web_login_failed_total").increment(1);
        let e = t(
            &v,
            "Indirizzo e-mail o password non corretti.",
            "Wrong email address or password.",
        );
        return refuse(vec![("email", e)], false, StatusCode::UNAUTHORIZED);
    };
    if citizen.verified_at.is_none() {
        let e = t(
            &v,
            "Deve prima confermare il suo indirizzo e-mail con il collegamento che le abbiamo inviato.",
            "First confirm your email address with the link we sent you.",
        );
        return refuse(vec![("email", e)], true, StatusCode::FORBIDDEN);
    }
    let session = random_token();
    let result = async {
        state
            .store
            .clear_login_failures(&acct_key, now - FAILURE_WINDOW_MILLIS * 4)
            .await?;
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
        anyhow::Ok(())
    }
    .await;
    if let Err(e) = result {
        return internal(e);
    }
    metrics::counter!("ticketgate_web_logins_total").increment(1);
    v.with_session(Redirect::to(&next).into_response(), &session)
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct CsrfForm {
    csrf: String,
}

async fn logout(State(state): State<AppState>, v: Visitor, Form(f): Form<CsrfForm>) -> Response {
    if !v.csrf_ok(&f.csrf) {
        return csrf_refused(&state, &v);
    }
    if let Some(hash) = &v.session_hash {
        if let Err(e) = state.store.delete_session(hash).await {
            return internal(e);
        }
    }
    v.without_session(Redirect::to("/").into_response())
}
