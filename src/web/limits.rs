//! Per-client limits on the citizen forms that hash a password or send mail
//! (docs/design-notes.md, "Web accounts under attack"). Each limit counts attempts per key in the database (`web_attempt`), so
//! that every instance behind a load balancer shares them; an attempt is written before the
//! work it allows (see `store::attempts` for why that cannot be raced).
//!
//! Limits are per client address (`Visitor::ip`, the forwarded one behind a trusted proxy)
//! and, for sign-in, per account *and* address: a stranger's wrong passwords slow down only
//! that stranger, never the citizen signing in from their own address.

use axum::http::header::RETRY_AFTER;
use axum::http::{HeaderValue, StatusCode};
use axum::response::Response;

use super::visitor::{message, Visitor};
use super::AppState;
use crate::domain::now_millis;

const MINUTE_MILLIS: i64 = 60_000;
const HOUR_MILLIS: i64 = 60 * MINUTE_MILLIS;

/// At most `max` attempts of one kind per key within `window_millis`.
#[derive(Debug, Clone, Copy)]
pub struct Limit {
    /// The first part of the key (`register`, `links`, …).
    pub name: &'static str,
    pub max: i64,
    pub window_millis: i64,
}

/// Registrations per client address: each one hashes a password (19 MiB of Argon2) and mails.
pub const REGISTER_PER_CLIENT: Limit = Limit {
    name: "register",
    max: 10,
    window_millis: HOUR_MILLIS,
};
/// Mails caused by registrations, per receiving address: one verification link, or a notice
/// that someone tried to register with an address (or codice fiscale) that has an account.
pub const REGISTRATION_MAILS_PER_ADDRESS: Limit = Limit {
    name: "regmail",
    max: 3,
    window_millis: HOUR_MILLIS,
};
/// New confirmation links and password resets asked for, per client address (the limit per
/// account is the one on mailed links, `LINKS_PER_HOUR`).
pub const LINKS_PER_CLIENT: Limit = Limit {
    name: "links",
    max: 10,
    window_millis: HOUR_MILLIS,
};
/// Reports from the web form per client address: each one is a ticket, an acknowledgment
/// and a notification.
pub const REPORTS_PER_CLIENT: Limit = Limit {
    name: "report",
    max: 20,
    window_millis: HOUR_MILLIS,
};
/// Failed sign-ins per client address, over all accounts (each one costs a hash).
pub const SIGN_INS_PER_CLIENT: Limit = Limit {
    name: "login",
    max: 20,
    window_millis: 15 * MINUTE_MILLIS,
};

/// Failed sign-ins to one account from one address that are checked without waiting.
const FREE_FAILURES: i64 = 5;
/// After them, each further attempt waits this long after the previous one, doubled for each
/// failure more…
const FIRST_DELAY_MILLIS: i64 = 30_000;
/// …up to this: a delay, never a lock.
const MAX_DELAY_MILLIS: i64 = HOUR_MILLIS;
/// Failures of one account from one address are remembered this long after the last.
const FAILURE_MEMORY_MILLIS: i64 = 24 * HOUR_MILLIS;

/// The answer of a limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Go on; the attempt's row (to forget it if it turns out not to count).
    Allowed(i64),
    /// Refused: try again in this many seconds.
    Wait(i64),
}

/// Takes one attempt of `limit` for `subject` (a client address, a mail address).
pub async fn take(state: &AppState, limit: Limit, subject: &str) -> anyhow::Result<Verdict> {
    let key = format!("{}:{subject}", limit.name);
    let now = now_millis();
    let own = state.store.record_web_attempt(&key, now).await?;
    let seen = state
        .store
        .count_web_attempts(&key, now - limit.window_millis, own)
        .await?;
    if seen.count <= limit.max {
        return Ok(Verdict::Allowed(own));
    }
    // A refused attempt did no work: it does not push the window further out.
    state.store.forget_web_attempt(own).await?;
    metrics::counter!("ticketgate_web_limited_total", "form" => limit.name).increment(1);
    Ok(Verdict::Wait(limit.window_millis / 1000))
}

/// Forgets an attempt allowed by [`take`] that turned out not to count (a sign-in that
/// succeeded is no failure).
pub async fn forget(state: &AppState, attempt: i64) -> anyhow::Result<()> {
    state.store.forget_web_attempt(attempt).await?;
    Ok(())
}

/// The key of sign-ins to `account` from `client`.
fn sign_in_key(account: &str, client: &str) -> String {
    format!("login:acct:{account}|ip:{client}")
}

/// How long after the previous failure the next sign-in to one account from one address
/// waits, given how many failures there were (none for the first [`FREE_FAILURES`]).
pub fn sign_in_delay_millis(failures: i64) -> i64 {
    if failures < FREE_FAILURES {
        return 0;
    }
    let doublings = (failures - FREE_FAILURES).min(20) as u32;
    FIRST_DELAY_MILLIS
        .saturating_mul(1_i64 << doublings)
        .min(MAX_DELAY_MILLIS)
}

/// Takes a sign-in attempt at `account` from `client`: allowed at once for the first few
/// failures, then only when the progressive delay since the previous failure has passed.
pub async fn take_sign_in(
    state: &AppState,
    account: &str,
    client: &str,
) -> anyhow::Result<Verdict> {
    let key = sign_in_key(account, client);
    let now = now_millis();
    let own = state.store.record_web_attempt(&key, now).await?;
    let seen = state
        .store
        .count_web_attempts(&key, now - FAILURE_MEMORY_MILLIS, own)
        .await?;
    // Every other row is a failure that was checked (or a parallel attempt in flight, which
    // counts as one: so parallel guesses get no more checks than sequential ones).
    let delay = sign_in_delay_millis(seen.count - 1);
    let waited = seen.previous_at.map_or(i64::MAX, |p| now - p);
    if delay == 0 || waited >= delay {
        return Ok(Verdict::Allowed(own));
    }
    state.store.forget_web_attempt(own).await?;
    metrics::counter!("ticketgate_web_limited_total", "form" => "login_account").increment(1);
    Ok(Verdict::Wait((delay - waited.max(0) + 999) / 1000))
}

/// A successful sign-in ends the delay of that account at that address.
pub async fn signed_in(state: &AppState, account: &str, client: &str) -> anyhow::Result<()> {
    state
        .store
        .clear_web_attempts(&sign_in_key(account, client))
        .await?;
    Ok(())
}

/// "Wait N seconds / minutes" in the page's language.
pub fn wait_words(v: &Visitor, seconds: i64) -> String {
    let seconds = seconds.max(1);
    match (v.en(), seconds) {
        (true, s) if s < 120 => format!("{s} seconds"),
        (true, s) => format!("{} minutes", (s + 59) / 60),
        (false, s) if s < 120 => format!("{s} secondi"),
        (false, s) => format!("{} minuti", (s + 59) / 60),
    }
}

/// The 429 page of a refused form, with `Retry-After`.
pub fn too_many(state: &AppState, v: &Visitor, seconds: i64) -> Response {
    let wait = wait_words(v, seconds);
    let (heading, text) = if v.en() {
        (
            "Too many requests".to_owned(),
            format!(
                "Too many requests of this kind came from your connection. For everyone's \
                 safety, wait {wait} and try again."
            ),
        )
    } else {
        (
            "Troppe richieste".to_owned(),
            format!(
                "Dalla sua connessione sono arrivate troppe richieste di questo tipo. Per la \
                 sicurezza di tutti attenda {wait} e riprovi."
            ),
        )
    };
    let mut response = message(
        state,
        v,
        StatusCode::TOO_MANY_REQUESTS,
        heading,
        vec![text],
        Some((
            "/".to_owned(),
            if v.en() { "Home" } else { "Pagina iniziale" }.to_owned(),
        )),
    );
    if let Ok(value) = HeaderValue::from_str(&seconds.max(1).to_string()) {
        response.headers_mut().insert(RETRY_AFTER, value);
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_failures_wait_for_nothing_then_each_one_doubles_the_wait_up_to_an_hour() {
        for f in 0..FREE_FAILURES {
            assert_eq!(sign_in_delay_millis(f), 0);
        }
        assert_eq!(sign_in_delay_millis(FREE_FAILURES), 30_000);
        assert_eq!(sign_in_delay_millis(FREE_FAILURES + 1), 60_000);
        assert_eq!(sign_in_delay_millis(FREE_FAILURES + 3), 240_000);
        assert_eq!(sign_in_delay_millis(FREE_FAILURES + 10), HOUR_MILLIS);
        assert_eq!(sign_in_delay_millis(i64::MAX), HOUR_MILLIS);
    }
}
