//! The citizen web page at the HTTP level, against a real `ticketgate serve` with its private
//! Dovecot + Postfix: register, confirm from the mailed link (read over IMAP), sign in, see
//! every ticket of the address, download attachments, report from the web; every validation
//! error, access control, CSRF, rate limits, security headers, language.

mod support;

use std::time::Duration;

use support::gateway::*;
use support::mail::*;
use support::mailstack::MailStack;
use support::web::{cf, link_in, mail_with_photo_and_html, photo, Client, Page};

const WAIT: Duration = Duration::from_secs(30);
const PASSWORD: &str = "una-password-lunga-42";

/// Registers through the form; returns the page after the POST.
fn register(client: &Client, email: &str, fiscal: &str) -> Page {
    let form = client.get("/register");
    assert_eq!(form.status, 200);
    client.post(
        "/register",
        &[
            ("csrf", &form.csrf()),
            ("first_name", "Anna"),
            ("last_name", "Verdi"),
            ("email", email),
            ("fiscal_code", fiscal),
            ("password", PASSWORD),
            ("password_confirm", PASSWORD),
            ("privacy", "yes"),
        ],
    )
}

fn login(client: &Client, email: &str, password: &str) -> Page {
    let form = client.get("/login");
    client.post(
        "/login",
        &[
            ("csrf", &form.csrf()),
            ("email", email),
            ("password", password),
            ("next", "/tickets"),
        ],
    )
}

/// Registers, confirms from the mailed link and signs in.
fn signed_in(stack: &MailStack, gw: &Gateway, email: &str, fiscal: &str) -> Client {
    let client = Client::new(gw);
    let done = register(&client, email, fiscal);
    assert_eq!(done.status, 303, "{}", done.body);
    let mail = wait_for_mail(stack, email, WAIT, |m| m.contains("/verify?token="));
    let link = link_in(&mail, "/verify?token=");
    let page = client.get(&link);
    let token = link.split("token=").nth(1).unwrap().to_owned();
    let confirmed = client.post("/verify", &[("csrf", &page.csrf()), ("token", &token)]);
    assert_eq!(confirmed.status, 303, "{}", confirmed.body);
    let signed = login(&client, email, PASSWORD);
    assert_eq!(signed.status, 303, "{}", signed.body);
    client
}

fn wait_ticket(gw: &Gateway, subject: &str) -> String {
    gw.wait_for(&format!("a ticket {subject:?}"), WAIT, || {
        gw.tickets()
            .into_iter()
            .find(|t| t["subject"].as_str().is_some_and(|s| s.contains(subject)))
            .and_then(|t| t["ref"].as_str().map(str::to_owned))
    })
}

#[test]
fn a_citizen_registers_confirms_signs_in_and_follows_a_ticket_sent_earlier_by_mail() {
    let stack = MailStack::start();
    let gw = Gateway::start(&stack);
    let photo = photo();
    send(
        &stack,
        CITIZEN,
        &[LAVORI],
        &mail_with_photo_and_html(CITIZEN, LAVORI, "Buca in via Roma", &photo),
    );
    let reference = wait_ticket(&gw, "Buca in via Roma");

    // Anonymous: sent to sign in, coming back afterwards.
    let anon = Client::new(&gw);
    let page = anon.get("/tickets");
    assert_eq!(page.status, 303);
    assert_eq!(page.location.as_deref(), Some("/login?next=%2Ftickets"));
    let page = anon.get(&format!("/tickets/{reference}"));
    assert_eq!(page.status, 303);

    let client = Client::new(&gw);
    let done = register(&client, CITIZEN, &cf("RSSMRA85T10A562"));
    assert_eq!(done.status, 303, "{}", done.body);
    let page = client.get(done.location.as_deref().unwrap());
    assert!(page.body.contains("Controlli la posta"), "{}", page.body);

    // Not confirmed yet: signing in is refused with a way to get a new link.
    let refused = login(&client, CITIZEN, PASSWORD);
    assert_eq!(refused.status, 403);
    assert!(
        refused.body.contains("confermare il suo indirizzo"),
        "{}",
        refused.body
    );
    assert!(refused.body.contains("/verify/resend"));

    // The mailed link: opening it (GET) changes nothing, the button (POST) confirms.
    let mail = wait_for_mail(&stack, CITIZEN, WAIT, |m| m.contains("/verify?token="));
    assert!(
        !mail.contains("RSSMRA85T10A562"),
        "the codice fiscale never goes by mail"
    );
    let link = link_in(&mail, "/verify?token=");
    let token = link.split("token=").nth(1).unwrap().to_owned();
    let confirm = client.get(&link);
    assert_eq!(confirm.status, 200);
    assert!(confirm
        .body
        .contains("<form method=\"post\" action=\"/verify\""));
    assert_eq!(
        login(&client, CITIZEN, PASSWORD).status,
        403,
        "a GET does not confirm"
    );
    let confirmed = client.post("/verify", &[("csrf", &confirm.csrf()), ("token", &token)]);
    assert_eq!(confirmed.status, 303);
    assert_eq!(confirmed.location.as_deref(), Some("/login?verified=1"));
    // Single use.
    let again = client.post("/verify", &[("csrf", &confirm.csrf()), ("token", &token)]);
    assert_eq!(again.status, 404);

    let signed = login(&client, CITIZEN, PASSWORD);
    assert_eq!(signed.status, 303, "{}", signed.body);
    assert_eq!(signed.location.as_deref(), Some("/tickets"));
    let session_cookie = signed
        .headers_all("set-cookie")
        .into_iter()
        .find(|c| c.starts_with("tg_session="))
        .expect("a session cookie")
        .to_owned();
    assert!(session_cookie.contains("HttpOnly") && session_cookie.contains("SameSite=Lax"));
    assert!(
        !session_cookie.contains("Secure"),
        "base_url is http in the tests"
    );

    let list = client.get("/tickets");
    assert_eq!(list.status, 200);
    assert!(list.body.contains(&reference), "{}", list.body);
    // The codice fiscale only masked.
    assert!(list.body.contains("RSS************S"), "{}", list.body);
    assert!(!list.body.contains("RSSMRA85T10A562S"));
    assert!(list.body.contains("Buca in via Roma"));
    assert!(list.body.contains("Lavori pubblici"));

    let detail = client.get(&format!("/tickets/{reference}"));
    assert_eq!(detail.status, 200);
    assert!(detail
        .body
        .contains("Segnalazione ricevuta e assegnata a Lavori pubblici"));
    assert!(detail.body.contains("Buca profonda, vedi foto."));
    assert!(
        detail.body.contains("Conferma di ricezione"),
        "the acknowledgment is shown"
    );
    // The HTML part is shown sanitised: nothing that could run.
    assert!(detail.body.contains("<b>profonda</b>"), "{}", detail.body);
    let lower = detail.body.to_lowercase();
    assert!(!lower.contains("<script"), "{}", detail.body);
    assert!(!lower.contains("onerror"));
    assert!(!lower.contains("javascript:"));
    // Staff notifications are internal.
    assert!(!detail.body.contains(STAFF_LAVORI));

    let href = detail
        .body
        .split("href=\"")
        .map(|s| s.split('"').next().unwrap_or(""))
        .find(|h| h.contains("/attachments/"))
        .expect("an attachment link")
        .to_owned();
    let download = client.get(&href);
    assert_eq!(download.status, 200);
    assert_eq!(download.bytes, photo);
    assert_eq!(download.header("content-type"), Some("image/jpeg"));
    assert!(download
        .header("content-disposition")
        .unwrap()
        .starts_with("attachment; filename=\"buca.jpg\""));
    assert_eq!(download.header("x-content-type-options"), Some("nosniff"));
    // Signed out, the same link sends to sign in.
    assert_eq!(anon.get(&href).status, 303);

    // Another citizen sees neither the ticket nor its attachment: 404, as if absent.
    let other = signed_in(&stack, &gw, CITIZEN2, &cf("VRDLCU90E15F205"));
    assert_eq!(other.get(&format!("/tickets/{reference}")).status, 404);
    assert_eq!(other.get(&href).status, 404);
    assert_eq!(other.get("/tickets/2099-999999").status, 404);
    assert!(!other.get("/tickets").body.contains(&reference));

    // Sign out ends the session.
    let list = client.get("/tickets");
    let out = client.post("/logout", &[("csrf", &list.csrf())]);
    assert_eq!(out.status, 303);
    assert_eq!(client.get("/tickets").status, 303);
}

#[test]
fn registration_errors_are_named_next_to_their_field_and_keep_what_was_typed() {
    let stack = MailStack::start();
    let gw = Gateway::start(&stack);
    let client = Client::new(&gw);
    let form = client.get("/register");
    let post = |fields: &[(&str, &str)]| {
        let mut all = vec![("csrf", form.csrf())];
        all.extend(fields.iter().map(|(k, v)| (*k, (*v).to_owned())));
        let refs: Vec<(&str, &str)> = all.iter().map(|(k, v)| (*k, v.as_str())).collect();
        client.post("/register", &refs)
    };

    let page = post(&[
        ("first_name", "Anna"),
        ("last_name", ""),
        ("email", "anna@"),
        ("fiscal_code", "RSSMRA85T10A562X"),
        ("password", "corta"),
        ("password_confirm", "corta"),
    ]);
    assert_eq!(page.status, 422);
    for (field, words) in [
        ("last_name", "Scriva il suo cognome"),
        ("email", "non è valido"),
        ("fiscal_code", ""),
        ("password", "10"),
        ("privacy", "informativa"),
    ] {
        let marker = format!("id=\"{field}-error\"");
        let at = page
            .body
            .find(&marker)
            .unwrap_or_else(|| panic!("no error next to {field}:\n{}", page.body));
        assert!(
            page.body[at..]
                .split("</span>")
                .next()
                .unwrap()
                .contains(words),
            "{field}"
        );
        assert!(
            page.body.contains(&format!("href=\"#{field}\"")),
            "the summary links to {field}"
        );
    }
    assert!(page
        .body
        .contains("aria-describedby=\"email-error email-hint\""));
    assert!(
        page.body.contains("value=\"Anna\""),
        "what was typed is kept"
    );
    assert!(page.body.contains("value=\"anna@\""));
    assert!(!page.body.contains("corta"), "never the password");

    // Codice fiscale: each kind of mistake in words.
    for (code, words) in [
        ("RSSMRA85T10A56", "16"),
        ("RSSMRA85Z10A562S", "mese"),
        ("RSSMRA85T32A562S", "giorno"),
        (&cf("RSSMRA23B29A562")[..], "data"),
    ] {
        let page = post(&[("fiscal_code", code)]);
        let at = page
            .body
            .find("id=\"fiscal_code-error\"")
            .expect("a fiscal code error");
        let text = page.body[at..]
            .split("</span>")
            .next()
            .unwrap()
            .to_lowercase();
        assert!(text.contains(words), "{code}: {text}");
    }
    // Omocodic code (digits replaced by letters) accepted.
    let omocodic = cf("RSSMRA85T10A56N");
    let page = post(&[("fiscal_code", &omocodic)]);
    assert!(
        !page.body.contains("id=\"fiscal_code-error\""),
        "{omocodic}"
    );

    // Common password; passwords that differ.
    let page = post(&[
        ("password", "1234567890"),
        ("password_confirm", "1234567890"),
    ]);
    assert!(page.body.contains("id=\"password-error\""));
    let page = post(&[
        ("password", PASSWORD),
        ("password_confirm", "altra-password-99"),
    ]);
    assert!(page.body.contains("id=\"password_confirm-error\""));

    // One account per email and per codice fiscale.
    assert_eq!(
        register(&client, CITIZEN, &cf("RSSMRA85T10A562")).status,
        303
    );
    let page = register(&Client::new(&gw), CITIZEN, &cf("BNCGLI70A41H501"));
    assert_eq!(page.status, 422);
    assert!(page.body.contains("id=\"email-error\""));
    assert!(page
        .body
        .contains("Esiste già un account con questo indirizzo"));
    let page = register(&Client::new(&gw), CITIZEN2, &cf("RSSMRA85T10A562"));
    assert_eq!(page.status, 422);
    assert!(page
        .body
        .contains("Esiste già un account con questo codice fiscale"));
}

#[test]
fn posts_without_a_valid_csrf_token_are_refused() {
    let stack = MailStack::start();
    let gw = Gateway::start(&stack);
    let client = Client::new(&gw);
    let form = client.get("/login");
    let good = form.csrf();
    // No token, a wrong token, and a token of another visitor's cookie.
    let other = Client::new(&gw).get("/login").csrf();
    for token in ["", "00ff", other.as_str()] {
        let page = client.post(
            "/login",
            &[("csrf", token), ("email", CITIZEN), ("password", PASSWORD)],
        );
        assert_eq!(page.status, 403, "token {token:?}");
    }
    // A client without the cookie (a cross-site form post) fails even with a real token.
    let stranger = Client::new(&gw);
    let page = stranger.post(
        "/register",
        &[("csrf", &good), ("email", CITIZEN), ("first_name", "X")],
    );
    assert_eq!(page.status, 403);
    // The right one passes the check (and then fails on the password).
    let page = client.post(
        "/login",
        &[("csrf", &good), ("email", CITIZEN), ("password", PASSWORD)],
    );
    assert_eq!(page.status, 401);
}

#[test]
fn repeated_failed_sign_ins_are_limited_per_account_with_a_clear_message() {
    let stack = MailStack::start();
    let gw = Gateway::start(&stack);
    let client = signed_in(&stack, &gw, CITIZEN, &cf("RSSMRA85T10A562"));
    let fresh = Client::new(&gw);
    for _ in 0..5 {
        assert_eq!(login(&fresh, CITIZEN, "sbagliata-password-1").status, 401);
    }
    let limited = login(&fresh, CITIZEN, PASSWORD);
    assert_eq!(limited.status, 429, "even the right password waits");
    assert!(
        limited.body.contains("Troppi tentativi"),
        "{}",
        limited.body
    );
    // An unknown account answers like a wrong password.
    let unknown = login(&Client::new(&gw), "nessuno@citizen.test", PASSWORD);
    assert_eq!(unknown.status, 401);
    assert!(unknown
        .body
        .contains("Indirizzo e-mail o password non corretti"));
    // The session opened before is unaffected.
    assert_eq!(client.get("/tickets").status, 200);
}

#[test]
fn a_forgotten_password_is_reset_from_a_single_use_mailed_link() {
    let stack = MailStack::start();
    let gw = Gateway::start(&stack);
    let first = signed_in(&stack, &gw, CITIZEN, &cf("RSSMRA85T10A562"));
    let client = Client::new(&gw);
    let form = client.get("/password/forgot");
    let page = client.post(
        "/password/forgot",
        &[("csrf", &form.csrf()), ("email", CITIZEN)],
    );
    assert_eq!(page.status, 200);
    // The same answer for an address without account.
    let none = client.post(
        "/password/forgot",
        &[("csrf", &form.csrf()), ("email", "nessuno@citizen.test")],
    );
    assert_eq!(
        none.body.replace("nessuno@citizen.test", ""),
        page.body.replace(CITIZEN, "")
    );

    let mail = wait_for_mail(&stack, CITIZEN, WAIT, |m| {
        m.contains("/password/reset?token=")
    });
    let link = link_in(&mail, "/password/reset?token=");
    let token = link.split("token=").nth(1).unwrap().to_owned();
    let reset = client.get(&link);
    assert_eq!(reset.status, 200);
    let weak = client.post(
        "/password/reset",
        &[
            ("csrf", &reset.csrf()),
            ("token", &token),
            ("password", "123"),
            ("password_confirm", "123"),
        ],
    );
    assert_eq!(weak.status, 422);
    let new = "nuova-password-sicura-7";
    let done = client.post(
        "/password/reset",
        &[
            ("csrf", &reset.csrf()),
            ("token", &token),
            ("password", new),
            ("password_confirm", new),
        ],
    );
    assert_eq!(done.status, 303, "{}", done.body);
    assert_eq!(login(&Client::new(&gw), CITIZEN, PASSWORD).status, 401);
    assert_eq!(login(&Client::new(&gw), CITIZEN, new).status, 303);
    // Used: the link no longer works; the old session ended with the password change.
    assert_eq!(client.get(&link).status, 404);
    assert_eq!(first.get("/tickets").status, 303);
}

#[test]
fn a_report_from_the_web_goes_through_the_pipeline_and_is_acknowledged_by_mail() {
    let stack = MailStack::start();
    let gw = Gateway::start(&stack);
    let client = signed_in(&stack, &gw, CITIZEN, &cf("RSSMRA85T10A562"));
    let form = client.get("/tickets/new");
    assert_eq!(form.status, 200);
    assert!(form.body.contains("10 MB"), "limits shown up front");

    // Errors named: no area, empty subject, a file that is no photo.
    let page = client.post_multipart(
        "/tickets/new",
        &[
            ("csrf", &form.csrf()),
            ("area", ""),
            ("kind", "reclamo"),
            ("subject", ""),
            ("text", "x"),
        ],
        &[("files", "virus.exe", "image/jpeg", b"MZ\x90\x00not a jpeg")],
    );
    assert_eq!(page.status, 422);
    for field in ["area", "subject", "files"] {
        assert!(
            page.body.contains(&format!("id=\"{field}-error\"")),
            "{field}"
        );
    }

    let photo = photo();
    let page = client.post_multipart(
        "/tickets/new",
        &[
            ("csrf", &form.csrf()),
            ("area", "ambiente"),
            ("kind", "reclamo"),
            ("subject", "Rifiuti nel parco"),
            ("text", "Sacchi abbandonati vicino alle panchine."),
        ],
        &[("files", "parco.jpg", "image/jpeg", &photo)],
    );
    assert_eq!(page.status, 303, "{}", page.body);
    let location = page.location.clone().unwrap();
    assert!(location.starts_with("/tickets/"), "{location}");
    let reference = location
        .trim_start_matches("/tickets/")
        .split('?')
        .next()
        .unwrap()
        .to_owned();

    let shown = gw.show(&reference);
    assert_eq!(shown["ticket"]["channel"], "web");
    assert_eq!(shown["ticket"]["kind"], "reclamo");
    assert_eq!(shown["ticket"]["area"], "ambiente");
    assert_eq!(shown["ticket"]["citizen"], CITIZEN);
    assert_eq!(shown["attachments"][0]["size"], photo.len());
    // Acknowledged by mail, like any report; the office is notified.
    wait_for_mail(&stack, CITIZEN, WAIT, |m| m.contains(&reference));
    wait_for_mail(&stack, STAFF_AMBIENTE, WAIT, |m| m.contains(&reference));
    let detail = client.get(&location);
    assert_eq!(detail.status, 200);
    assert!(detail.body.contains("Sacchi abbandonati"));
    assert!(detail.body.contains("Sito web"));
}

#[test]
fn pages_carry_security_headers_and_speak_italian_or_english() {
    let stack = MailStack::start();
    let gw = Gateway::start(&stack);
    let it = Client::new(&gw);
    let home = it.get("/");
    assert_eq!(home.status, 200);
    assert!(home.body.contains("<html lang=\"it\">"));
    assert!(home.body.contains("Cosa non inviare qui"));
    assert!(home.body.contains(LAVORI), "the areas and their addresses");
    let csp = home.header("content-security-policy").unwrap();
    assert!(
        csp.contains("frame-ancestors 'none'") && !csp.contains("unsafe-inline"),
        "{csp}"
    );
    assert_eq!(home.header("x-frame-options"), Some("DENY"));
    assert_eq!(home.header("referrer-policy"), Some("same-origin"));
    let csrf_cookie = home
        .headers_all("set-cookie")
        .into_iter()
        .find(|c| c.starts_with("tg_csrf="))
        .expect("a csrf cookie")
        .to_owned();
    assert!(csrf_cookie.contains("HttpOnly") && csrf_cookie.contains("SameSite=Lax"));

    let en = Client::new(&gw).with_language("en-GB,en;q=0.9,it;q=0.5");
    let home = en.get("/");
    assert!(home.body.contains("<html lang=\"en\">"));
    assert!(home.body.contains("What not to send here"));
    // The visible switch, remembered.
    let switched = it.get("/?lang=en");
    assert!(switched.body.contains("<html lang=\"en\">"));
    assert!(it.get("/login").body.contains("<html lang=\"en\">"));
    assert!(
        it.get("/login").body.contains("lang=\"it\""),
        "the switch back names Italian in Italian"
    );
    assert_eq!(it.get("/healthz").status, 200);
}

#[test]
fn new_confirmation_links_are_sent_on_request_at_most_three_an_hour() {
    let stack = MailStack::start();
    let gw = Gateway::start(&stack);
    let client = Client::new(&gw);
    assert_eq!(
        register(&client, CITIZEN, &cf("RSSMRA85T10A562")).status,
        303
    );
    let form = client.get("/verify/resend");
    assert_eq!(form.status, 200);
    for _ in 0..5 {
        let page = client.post(
            "/verify/resend",
            &[("csrf", &form.csrf()), ("email", CITIZEN)],
        );
        assert_eq!(page.status, 200);
        assert!(page.body.contains("Controlli la posta"));
    }
    // The registration's link and two more: three in the hour, then none.
    let verify_mails = || {
        fetch_all(&stack, CITIZEN)
            .iter()
            .filter(|m| String::from_utf8_lossy(m).contains("/verify?token="))
            .count()
    };
    gw.wait_for("three confirmation mails", WAIT, || {
        (verify_mails() >= 3).then_some(())
    });
    // Anything queued has been sent once a later mail arrives.
    let (_, probe) = citizen_mail(CITIZEN2, LAVORI, "Sonda", "x");
    send(&stack, CITIZEN2, &[LAVORI], &probe);
    wait_for_mail(&stack, CITIZEN2, WAIT, |m| m.contains("Sonda"));
    assert_eq!(verify_mails(), 3);
}

#[test]
fn behind_a_proxy_the_per_address_limit_counts_the_forwarded_client_address() {
    let stack = MailStack::start();
    let gw = Gateway::start_edited(&stack, "", "retry_initial_seconds = 1", |t| {
        t.replacen("[server]\n", "[server]\ntrust_forwarded_for = true\n", 1)
    });
    let _account = signed_in(&stack, &gw, CITIZEN, &cf("RSSMRA85T10A562"));
    // Twenty failures from one client address, each on another account (the per-account
    // limit stays out of the way)…
    let noisy = Client::new(&gw).forwarded_for("203.0.113.5");
    for i in 0..20 {
        let page = login(
            &noisy,
            &format!("nobody{i}@citizen.test"),
            "sbagliata-password-1",
        );
        assert_eq!(page.status, 401);
    }
    // …lock that address out, even for a right password…
    let page = login(&noisy, CITIZEN, PASSWORD);
    assert_eq!(page.status, 429, "{}", page.body);
    // …and nobody else behind the same proxy.
    let other = Client::new(&gw).forwarded_for("203.0.113.99");
    assert_eq!(login(&other, CITIZEN, PASSWORD).status, 303);
}

/// Issue 10, finding 3: a stranger's mail with a citizen's address in Reply-To is the
/// stranger's ticket; it never appears on that citizen's page.
#[test]
fn a_strangers_ticket_naming_a_citizen_in_reply_to_is_not_on_that_citizens_page() {
    let stack = MailStack::start();
    let gw = Gateway::start(&stack);
    let client = signed_in(&stack, &gw, CITIZEN, &cf("RSSMRA85T10A562"));
    let (_, own) = citizen_mail(CITIZEN, LAVORI, "Buca del citizen", "Buca.");
    send(&stack, CITIZEN, &[LAVORI], &own);
    let own_ref = wait_ticket(&gw, "Buca del citizen");
    let raw = format!(
        "From: Anna Verdi <mallory@attacker.test>\r\nReply-To: <{CITIZEN}>\r\nTo: {LAVORI}\r\n\
         Subject: Rimborso del comune\r\nMessage-ID: <{}>\r\n\
         Date: Thu, 26 Nov 2026 10:00:00 +0100\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n\
         Ritiri il rimborso su http://refund.attacker.test\r\n",
        unique_id()
    );
    append(&stack, LAVORI, raw.as_bytes());
    let strangers_ref = wait_ticket(&gw, "Rimborso del comune");
    let page = client.get("/tickets");
    assert_eq!(page.status, 200);
    assert!(page.body.contains(&own_ref), "{}", page.body);
    assert!(!page.body.contains(&strangers_ref), "{}", page.body);
    assert!(!page.body.contains("Rimborso"), "{}", page.body);
    assert_eq!(client.get(&format!("/tickets/{strangers_ref}")).status, 404);
}
