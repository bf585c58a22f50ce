//! Mailed links: composing and queueing them, confirming the address from the link, and
//! asking for a link again (verification resend, forgotten password).

use askama::Template;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::Form;
use serde::Deserialize;

use super::{site, LINKS_PER_HOUR, RESET_HOURS, VERIFY_HOURS};
use crate::domain::{now_millis, EmailAddress, TokenPurpose, Transport};
use crate::outbound::queue::{queue_mail, Queued};
use crate::store::{raw_sha256_hex, Store};
use crate::web::limits::{self, Verdict};
use crate::web::visitor::{message, random_token, render, Chrome, Errors, FieldErrors, Visitor};
use crate::web::{AppState, Error};

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
pub(super) async fn mail_link(
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
pub(super) async fn queue_account_mail(
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

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct TokenQuery {
    pub(super) token: String,
    pub(super) done: Option<String>,
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

pub(super) async fn verify_page(
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
pub(super) fn expired_link(state: &AppState, v: &Visitor, again: &str) -> Error {
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
    pub(super) csrf: String,
    pub(super) token: String,
    pub(super) password: String,
    pub(super) password_confirm: String,
}

pub(super) async fn verify(
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
pub(super) fn reset_form_expired(v: &Visitor) -> String {
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

pub(super) async fn resend_form(State(state): State<AppState>, v: Visitor) -> Response {
    email_form(&state, &v, TokenPurpose::Verify, String::new(), Vec::new())
}

pub(super) async fn forgot_form(State(state): State<AppState>, v: Visitor) -> Response {
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

pub(super) async fn resend(
    State(state): State<AppState>,
    v: Visitor,
    Form(f): Form<EmailForm>,
) -> Result<Response, Error> {
    email_post(state, v, f, TokenPurpose::Verify).await
}

pub(super) async fn forgot(
    State(state): State<AppState>,
    v: Visitor,
    Form(f): Form<EmailForm>,
) -> Result<Response, Error> {
    email_post(state, v, f, TokenPurpose::Reset).await
}
