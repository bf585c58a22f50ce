//! Citizen accounts: register, confirm the address from the mailed link, sign in and out,
//! forgotten password. Every form is CSRF-checked; every mailed link is random, stored as
//! its sha256, single use and expiring, and opening it (GET) only shows a button — mail
//! scanners open links on their own.
//!
//! Registration answers "check your mail" whether or not the email or codice fiscale already
//! has an account (the answer must not tell anyone whether a person is registered); the
//! owner of an existing account is told by mail instead. Every form that hashes a password or
//! sends mail is limited per client address (`limits`), checked before any hashing.

use askama::Template;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, Router};
use serde::Deserialize;

use super::limits::{self, Verdict};
use super::password;
use super::visitor::{
    local_path, message, random_token, render, Chrome, Errors, FieldErrors, Visitor, SESSION_MILLIS,
};
use super::{AppState, Error};
use crate::domain::password as policy;
use crate::domain::{now_millis, EmailAddress, FiscalCode, TokenPurpose, Transport};
use crate::outbound::queue::{queue_mail, Queued};
use crate::store::{raw_sha256_hex, AccountTaken, CitizenRow, NewCitizen, Store};

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
) -> Result<Response, Error> {
    if q.done.is_some() {
        return Ok(message(
            &state,
            &v,
            StatusCode::OK,
            v.t("Controlli la posta", "Check your mail"),
            vec![
                v.t("Le abbiamo inviato un messaggio con un collegamento per confermare il suo indirizzo e-mail. Lo apra e prema «Conferma»: poi potrà accedere.",
                    "We sent you a message with a link to confirm your email address. Open it and press \"Confirm\": then you can sign in.",
                ),
                v.t("Se con questo indirizzo o con questo codice fiscale esiste già un account, non ne creiamo un altro: scriviamo al titolare come accedere o scegliere una nuova password.",
                    "If this address or this tax code already has an account, we do not create another: we write to its owner how to sign in or choose a new password.",
                ),
                v.t("Non è arrivato? Controlli la posta indesiderata, oppure chieda un nuovo collegamento.",
                    "Nothing arrived? Check the spam folder, or ask for a new link.",
                ),
            ],
            Some(("/verify/resend".to_owned(), v.t("Chiedi un nuovo collegamento", "Ask for a new link"))),
        ));
    }
    let page = RegisterPage {
        c: v.chrome(&v.t("Registrazione", "Register")),
        site: site(&state),
        form: RegisterForm::default(),
        errors: Vec::new(),
    };
    Ok(render(&v, StatusCode::OK, &page))
}

/// Whether a name is plain: letters (any alphabet), spaces, apostrophes, hyphens and the dots
/// of initials. Names go into mails ("Gentile …"), so nothing that a mail client would turn
/// into a link passes: no `:` or `/`, and no dot followed by two letters or more
/// ("evil.example", "www.x"), while "J.R. Tolkien" and "D'Angelo-Rossi" do.
pub fn is_plain_name(name: &str) -> bool {
    let chars: Vec<char> = name.chars().collect();
    let allowed = |c: char| c.is_alphabetic() || matches!(c, ' ' | '\'' | '’' | '-' | '.');
    if chars.len() > MAX_NAME_CHARS || !chars.iter().all(|&c| allowed(c)) {
        return false;
    }
    chars.iter().enumerate().all(|(i, &c)| {
        c != '.'
            || chars
                .iter()
                .skip(i + 1)
                .take_while(|c| c.is_alphabetic())
                .count()
                < 2
    })
}

fn check_name(v: &Visitor, value: &str, it: &str, en: &str) -> Option<String> {
    let value = value.trim();
    if value.is_empty() {
        return Some(v.t(it, en));
    }
    if !is_plain_name(value) {
        return Some(v.t("Usi solo lettere, spazi, apostrofi, trattini e il punto delle iniziali (al massimo 100), senza indirizzi web.",
            "Use letters, spaces, apostrophes, hyphens and the dot of initials only (at most 100), no web addresses.",
        ));
    }
    None
}

async fn register(
    State(state): State<AppState>,
    v: Visitor,
    Form(mut form): Form<RegisterForm>,
) -> Result<Response, Error> {
    if !v.csrf_ok(&form.csrf) {
        // Shown again with what was typed (never the passwords), not a bare refusal.
        form.password.clear();
        form.password_confirm.clear();
        let page = RegisterPage {
            c: v.chrome(&v.t("Registrazione: modulo scaduto", "Register: form expired")),
            site: site(&state),
            form,
            errors: vec![("password", form_expired(&v))],
        };
        return Err(Error::CsrfRefused(render(&v, StatusCode::FORBIDDEN, &page)));
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
            v.t(
                "Scriva il suo indirizzo e-mail.",
                "Enter your email address.",
            ),
        ));
    }
    let parsed_email = EmailAddress::parse(&email).ok();
    if !email.is_empty() && parsed_email.is_none() {
        errors.push((
            "email",
            v.t(
                "L'indirizzo e-mail non è valido: deve essere come nome@esempio.it.",
                "The email address is not valid: it should look like name@example.com.",
            ),
        ));
    }
    let fiscal = match FiscalCode::parse(&form.fiscal_code) {
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
            v.t(
                "Per registrarsi deve dichiarare di aver letto l'informativa sulla privacy.",
                "To register you must confirm you have read the privacy notice.",
            ),
        ));
    }
    if let (true, Some(email), Some(fiscal)) = (errors.is_empty(), &parsed_email, &fiscal) {
        // The limit after the form's own checks (a mistyped form costs nothing and must not
        // use up the citizen's attempts), before any lookup, hash or mail.
        if let Verdict::Wait(seconds) =
            limits::take(&state, limits::REGISTER_PER_CLIENT, &v.ip).await?
        {
            return Err(Error::Form(limits::too_many(&state, &v, seconds)));
        }
        register_account(&state, &form, email, fiscal).await?;
        state.outbox_wake.notify_one();
        // The same answer whether an account was created or one existed already.
        return Ok(v.finish(Redirect::to("/register?done=1").into_response()));
    }
    // The form comes back with what was typed, never the passwords.
    form.password.clear();
    form.password_confirm.clear();
    let page = RegisterPage {
        c: v.chrome(&v.t("Registrazione: da correggere", "Register: please correct")),
        site: site(&state),
        form,
        errors,
    };
    Err(Error::Form(render(
        &v,
        StatusCode::UNPROCESSABLE_ENTITY,
        &page,
    )))
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
    if let Err(p) = policy::check(password, &data) {
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
            v.t(
                "Le due password non coincidono.",
                "The two passwords do not match.",
            ),
        )];
    }
    Vec::new()
}

/// Creates the account and queues its verification link; or, when the email or codice
/// fiscale already has an account, tells that account's owner by mail and creates nothing.
/// Both ways cost one Argon2 run, so that not even the time of the answer says which.
async fn register_account(
    state: &AppState,
    form: &RegisterForm,
    email: &EmailAddress,
    fiscal: &FiscalCode,
) -> anyhow::Result<()> {
    // Cheap lookups first: nothing is hashed or written for a taken email or codice fiscale
    // (docs/design-notes.md, "Web accounts under attack"). They are only an early exit: the
    // unique constraints of `citizen` are the authority, and `insert_citizen` below reports
    // a registration that raced past these lookups.
    let owner = match state.store.citizen_by_email(email).await? {
        Some(owner) => Some((owner, AccountTaken::Email)),
        None => state
            .store
            .citizen_by_fiscal_code(fiscal)
            .await?
            .map(|owner| (owner, AccountTaken::FiscalCode)),
    };
    if let Some((owner, what)) = owner {
        password::verify_dummy(form.password.clone()).await;
        return tell_owner(state, &owner, what).await;
    }
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
        Err(taken) => {
            // A parallel registration with the same data won the race: it mails its own link.
            tracing::info!(?taken, "registration raced with another for the same data");
            return Ok(());
        }
    };
    let name = format!("{} {}", form.first_name.trim(), form.last_name.trim());
    mail_link(
        state,
        &mut tx,
        id,
        email.as_str(),
        &name,
        TokenPurpose::Verify,
    )
    .await?;
    tx.commit().await?;
    tracing::info!("citizen account registered; verification mail queued");
    Ok(())
}

#[derive(Template)]
#[template(path = "mail/citizen_register_attempt.txt")]
struct RegisterAttemptMail<'a> {
    name: &'a str,
    site: &'a str,
    what_it: &'a str,
    what_en: &'a str,
    forgot: &'a str,
}

/// Mails the owner of an account that someone tried to register with its email address or
/// codice fiscale: no link that changes anything, only where to choose a new password. At
/// most [`limits::REGISTRATION_MAILS_PER_ADDRESS`] an hour, so the form cannot be used to
/// flood a citizen's mailbox.
async fn tell_owner(
    state: &AppState,
    owner: &CitizenRow,
    what: AccountTaken,
) -> anyhow::Result<()> {
    let mail_key = raw_sha256_hex(owner.email.as_str().as_bytes());
    if let Verdict::Wait(_) =
        limits::take(state, limits::REGISTRATION_MAILS_PER_ADDRESS, &mail_key).await?
    {
        tracing::warn!("registration notices to one address: limit reached");
        return Ok(());
    }
    let (what_it, what_en) = match what {
        AccountTaken::Email => ("il suo indirizzo e-mail", "your email address"),
        AccountTaken::FiscalCode => (
            "il suo codice fiscale (e un altro indirizzo e-mail)",
            "your tax code (and another email address)",
        ),
    };
    let site = site(state);
    let forgot = format!(
        "{}/password/forgot",
        state.cfg.server.base_url.trim_end_matches('/')
    );
    let name = format!("{} {}", owner.first_name, owner.last_name);
    let text = RegisterAttemptMail {
        name: &name,
        site: &site,
        what_it,
        what_en,
        forgot: &forgot,
    }
    .render()?;
    let mut tx = state.store.begin().await?;
    queue_account_mail(
        state,
        &mut tx,
        owner.email.as_str(),
        "tentativo di registrazione / Registration attempt",
        &text,
    )
    .await?;
    tx.commit().await?;
    tracing::info!(
        ?what,
        "registration with an existing account's data: owner told"
    );
    Ok(())
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
    purpose: TokenPurpose,
) -> anyhow::Result<()> {
    let token = random_token();
    let now = now_millis();
    let (path, hours, subject) = match purpose {
        TokenPurpose::Verify => (
            "/verify",
            VERIFY_HOURS,
            "Conferma il tuo indirizzo / Confirm your address",
        ),
        TokenPurpose::Reset => (
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
    let text = if purpose == TokenPurpose::Verify {
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
    queue_account_mail(state, tx, email, subject, &text).await
}

/// Queues an automatic mail about a citizen's account to that account's address, in `tx`.
async fn queue_account_mail(
    state: &AppState,
    tx: &mut crate::store::Tx,
    to: &str,
    subject: &str,
    text: &str,
) -> anyhow::Result<()> {
    let site = site(state);
    let from = state.cfg.web_sender().unwrap_or_default();
    let to = EmailAddress::parse(to).map_err(|e| anyhow::anyhow!("the account's address: {e}"))?;
    queue_mail(
        tx,
        &state.ids,
        &Queued {
            ticket: None,
            kind: crate::domain::MessageKind::Account,
            from_name: &site,
            from_addr: &from,
            to: vec![to],
            reply_to: None,
            subject: &format!("{site}: {subject}"),
            in_reply_to: None,
            references: Vec::new(),
            auto_replied: true,
            text,
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
) -> Result<Response, Error> {
    let hash = raw_sha256_hex(q.token.trim().as_bytes());
    match state
        .store
        .token_citizen(&hash, TokenPurpose::Verify, now_millis())
        .await?
    {
        None => Err(expired_link(&state, &v, "/verify/resend")),
        Some(_) => Ok(confirm_button(
            &state,
            &v,
            StatusCode::OK,
            q.token.trim(),
            v.t(
                "Prema il pulsante per confermare il suo indirizzo e-mail e attivare l'account.",
                "Press the button to confirm your email address and activate the account.",
            ),
        )),
    }
}

/// The page with the one button that confirms an address, carrying the mailed link's token.
fn confirm_button(
    state: &AppState,
    v: &Visitor,
    status: StatusCode,
    token: &str,
    text: String,
) -> Response {
    let heading = v.t(
        "Conferma dell'indirizzo e-mail",
        "Confirm your email address",
    );
    let page = ConfirmPage {
        c: v.chrome(&heading),
        site: site(state),
        heading,
        text,
        action: "/verify",
        token: token.to_owned(),
        button: v.t("Conferma", "Confirm"),
    };
    render(v, status, &page)
}

/// The page of a mailed link that is expired, used or incomplete (404).
fn expired_link(state: &AppState, v: &Visitor, again: &str) -> Error {
    Error::NotFound(message(
        state,
        v,
        StatusCode::NOT_FOUND,
        v.t("Collegamento non valido", "Link not valid"),
        vec![v.t(
            "Il collegamento è scaduto, è già stato usato oppure è incompleto.",
            "The link has expired, was used already, or is incomplete.",
        )],
        Some((
            again.to_owned(),
            v.t("Chiedi un nuovo collegamento", "Ask for a new link"),
        )),
    ))
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct TokenForm {
    csrf: String,
    token: String,
    password: String,
    password_confirm: String,
}

async fn verify(
    State(state): State<AppState>,
    v: Visitor,
    Form(f): Form<TokenForm>,
) -> Result<Response, Error> {
    if !v.csrf_ok(&f.csrf) {
        // The button again with the link's token: one more press confirms.
        return Err(Error::CsrfRefused(confirm_button(
            &state,
            &v,
            StatusCode::FORBIDDEN,
            f.token.trim(),
            v.t("Il modulo era scaduto (o i cookie sono disattivati): prema di nuovo il pulsante per confermare il suo indirizzo e-mail.",
                "The form had expired (or cookies are off): press the button again to confirm your email address.",
            ),
        )));
    }
    let hash = raw_sha256_hex(f.token.trim().as_bytes());
    let now = now_millis();
    let mut tx = state.store.begin().await?;
    let used = Store::use_token(&mut tx, &hash, TokenPurpose::Verify, now).await?;
    if let Some(id) = used {
        Store::set_citizen_verified(&mut tx, id, now).await?;
    }
    tx.commit().await?;
    match used {
        None => Err(expired_link(&state, &v, "/verify/resend")),
        Some(_) => Ok(v.finish(Redirect::to("/login?verified=1").into_response())),
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

/// The error of a mailed-link form refused for its token, shown at the address (kept).
fn link_form_expired(v: &Visitor) -> String {
    v.t("Il modulo era scaduto (o i cookie sono disattivati): l'indirizzo è qui sotto, invii di nuovo.",
        "The form had expired (or cookies are off): your address is below; send once more.",
    )
}

/// The error of a new-password form refused for its token: the link still counts until it
/// is used or expires, so the citizen types the password again here.
fn reset_form_expired(v: &Visitor) -> String {
    v.t("Il modulo era scaduto (o i cookie sono disattivati): scriva di nuovo la nuova password e la salvi. Il collegamento ricevuto vale ancora.",
        "The form had expired (or cookies are off): type the new password again and save it. The link you received still works.",
    )
}

fn email_form(
    state: &AppState,
    v: &Visitor,
    purpose: TokenPurpose,
    email: String,
    errors: Errors,
) -> Response {
    let status = if errors.is_empty() {
        StatusCode::OK
    } else {
        StatusCode::UNPROCESSABLE_ENTITY
    };
    email_form_with(state, v, purpose, email, errors, status)
}

fn email_form_with(
    state: &AppState,
    v: &Visitor,
    purpose: TokenPurpose,
    email: String,
    errors: Errors,
    status: StatusCode,
) -> Response {
    let (heading, text, action, button) = if purpose == TokenPurpose::Verify {
        (
            v.t("Nuovo collegamento di conferma", "New confirmation link"),
            v.t("Scriva l'indirizzo con cui si è registrato: se l'account esiste e non è ancora confermato, le inviamo un nuovo collegamento.",
                "Enter the address you registered with: if the account exists and is not confirmed yet, we send you a new link.",
            ),
            "/verify/resend",
            v.t("Invia il collegamento", "Send the link"),
        )
    } else {
        (
            v.t("Password dimenticata", "Forgotten password"),
            v.t("Scriva l'indirizzo con cui si è registrato: se l'account esiste, le inviamo un collegamento per scegliere una nuova password.",
                "Enter the address you registered with: if the account exists, we send you a link to choose a new password.",
            ),
            "/password/forgot",
            v.t("Invia il collegamento", "Send the link"),
        )
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
    email_form(&state, &v, TokenPurpose::Verify, String::new(), Vec::new())
}

async fn forgot_form(State(state): State<AppState>, v: Visitor) -> Response {
    email_form(&state, &v, TokenPurpose::Reset, String::new(), Vec::new())
}

/// Sends a link of `purpose` to the account of `email` if there is one (and, for `verify`,
/// if it is not confirmed yet), within the hourly limit. The answer never says which.
async fn send_link_if_any(
    state: &AppState,
    email: &str,
    purpose: TokenPurpose,
) -> anyhow::Result<()> {
    // An address that does not parse has no account.
    let Ok(email) = EmailAddress::parse(email) else {
        return Ok(());
    };
    let Some(c) = state.store.citizen_by_email(&email).await? else {
        return Ok(());
    };
    if purpose == TokenPurpose::Verify && c.verified_at.is_some() {
        return Ok(());
    }
    let sent = state
        .store
        .tokens_since(c.citizen_id, purpose, now_millis() - 3_600_000)
        .await?;
    if sent >= LINKS_PER_HOUR {
        tracing::warn!(
            purpose = purpose.as_str(),
            "mailed-link limit reached for an account"
        );
        return Ok(());
    }
    let mut tx = state.store.begin().await?;
    let name = format!("{} {}", c.first_name, c.last_name);
    mail_link(
        state,
        &mut tx,
        c.citizen_id,
        c.email.as_str(),
        &name,
        purpose,
    )
    .await?;
    tx.commit().await?;
    state.outbox_wake.notify_one();
    Ok(())
}

async fn email_post(
    state: AppState,
    v: Visitor,
    f: EmailForm,
    purpose: TokenPurpose,
) -> Result<Response, Error> {
    if !v.csrf_ok(&f.csrf) {
        // The form again with the address typed, not a bare refusal; nothing is sent until
        // a post with a good token (docs/design-notes.md, "Web server hardening").
        let errors = vec![("email", link_form_expired(&v))];
        let email = f.email.trim().to_owned();
        return Err(Error::CsrfRefused(email_form_with(
            &state,
            &v,
            purpose,
            email,
            errors,
            StatusCode::FORBIDDEN,
        )));
    }
    let email = f.email.trim().to_lowercase();
    if EmailAddress::parse(&email).is_err() {
        let e = v.t(
            "L'indirizzo e-mail non è valido: deve essere come nome@esempio.it.",
            "The email address is not valid: it should look like name@example.com.",
        );
        return Err(Error::Form(email_form(
            &state,
            &v,
            purpose,
            f.email,
            vec![("email", e)],
        )));
    }
    if let Verdict::Wait(seconds) = limits::take(&state, limits::LINKS_PER_CLIENT, &v.ip).await? {
        return Err(Error::Form(limits::too_many(&state, &v, seconds)));
    }
    send_link_if_any(&state, &email, purpose).await?;
    Ok(message(
        &state,
        &v,
        StatusCode::OK,
        v.t("Controlli la posta", "Check your mail"),
        vec![v.t("Se l'indirizzo corrisponde a un account, tra poco riceverà un messaggio con il collegamento. Controlli anche la cartella della posta indesiderata.",
            "If the address belongs to an account, you will soon get a message with the link. Check the spam folder too.",
        )],
        None,
    ))
}

async fn resend(
    State(state): State<AppState>,
    v: Visitor,
    Form(f): Form<EmailForm>,
) -> Result<Response, Error> {
    email_post(state, v, f, TokenPurpose::Verify).await
}

async fn forgot(
    State(state): State<AppState>,
    v: Visitor,
    Form(f): Form<EmailForm>,
) -> Result<Response, Error> {
    email_post(state, v, f, TokenPurpose::Reset).await
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

async fn reset(
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

/// Only a path on this site, else `/tickets` (open redirect: see [`local_path`]).
fn safe_next(next: &str) -> String {
    local_path(next).unwrap_or("/tickets").to_owned()
}

async fn login_form(
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

async fn login(
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

async fn logout(
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

#[cfg(test)]
mod tests {
    use super::is_plain_name;

    #[test]
    fn names_of_people_are_plain_and_anything_like_a_link_is_not() {
        for ok in [
            "Anna",
            "De Luca",
            "D'Angelo-Rossi",
            "D’Amico",
            "J.R.",
            "J. R. Tolkien",
            "Zoë",
            "Łukasz",
            "Σωκράτης",
        ] {
            assert!(is_plain_name(ok), "{ok}");
        }
        for bad in [
            "http://evil",
            "evil.example",
            "www.evil",
            "Visita evil.it",
            "a@b",
            "Anna <b>",
            "Anna\u{7}",
            "Anna 2",
            &"a".repeat(101),
        ] {
            assert!(!is_plain_name(bad), "{bad}");
        }
    }
}
