//! Registration: the form, its checks, and the account created or its owner told.

use askama::Template;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::Form;
use serde::Deserialize;

use super::links::{mail_link, queue_account_mail, TokenQuery};
use super::{form_expired, site, MAX_NAME_CHARS};
use crate::domain::password as policy;
use crate::domain::{now_millis, EmailAddress, FiscalCode, TokenPurpose};
use crate::store::{raw_sha256_hex, AccountTaken, CitizenRow, NewCitizen, Store};
use crate::web::limits::{self, Verdict};
use crate::web::password;
use crate::web::visitor::{message, render, Chrome, Errors, FieldErrors, Visitor};
use crate::web::{AppState, Error};

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

pub(super) async fn register_form(
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

pub(super) async fn register(
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
pub(super) fn new_password_errors(
    v: &Visitor,
    password: &str,
    confirm: &str,
    personal: &[&str],
) -> Errors {
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
