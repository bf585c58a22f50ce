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

    // The expected date is the ticket's due date (issue 14), as `ticket show` gives it.
    let due = gw.show(&reference)["ticket"]["due_date"]
        .as_str()
        .unwrap_or("")
        .split('-')
        .rev()
        .collect::<Vec<_>>()
        .join("/");
    assert_eq!(due.len(), 10, "{due}");
    assert!(list.body.contains(&due), "{due}: {}", list.body);

    let detail = client.get(&format!("/tickets/{reference}"));
    assert_eq!(detail.status, 200);
    assert!(detail.body.contains(&due), "{due}: {}", detail.body);
    assert!(
        !detail.body.contains("in ritardo"),
        "a new ticket is in time"
    );
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

    // A name that a mail client would turn into a link is refused, the field named.
    let page = post(&[
        ("first_name", "http://evil"),
        ("last_name", "Visita www.evil.example"),
    ]);
    assert_eq!(page.status, 422);
    for field in ["first_name", "last_name"] {
        let at = page
            .body
            .find(&format!("id=\"{field}-error\""))
            .unwrap_or_else(|| panic!("no error next to {field}:\n{}", page.body));
        assert!(
            page.body[at..]
                .split("</span>")
                .next()
                .unwrap()
                .contains("indirizzi web"),
            "{field}"
        );
    }
}

/// Posts `fields` to `path` from `clients` all at once (each client first loads the form for
/// its CSRF token); the statuses of the answers.
fn post_in_parallel(clients: &[Client], form: &str, fields: &[Vec<(&str, String)>]) -> Vec<Page> {
    let tokens: Vec<String> = clients.iter().map(|c| c.get(form).csrf()).collect();
    let barrier = std::sync::Barrier::new(clients.len());
    std::thread::scope(|scope| {
        let handles: Vec<_> = clients
            .iter()
            .zip(&tokens)
            .zip(fields)
            .map(|((client, token), fields)| {
                let barrier = &barrier;
                scope.spawn(move || {
                    let mut all = vec![("csrf", token.as_str())];
                    all.extend(fields.iter().map(|(k, v)| (*k, v.as_str())));
                    barrier.wait();
                    client.post(form, &all)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    })
}

fn count(pages: &[Page], status: u16) -> usize {
    pages.iter().filter(|p| p.status == status).count()
}

fn behind_a_proxy(stack: &MailStack) -> Gateway {
    Gateway::start_configured(stack, |c| {
        c.outbox = "retry_initial_seconds = 1".to_owned();
        c.trust_forwarded_for = true;
    })
}

#[test]
fn registration_answers_the_same_for_taken_data_and_tells_the_owner_by_mail() {
    let stack = MailStack::start();
    let gw = Gateway::start(&stack);
    let new = register(&Client::new(&gw), CITIZEN, &cf("RSSMRA85T10A562"));
    assert_eq!(new.status, 303, "{}", new.body);
    assert_eq!(new.location.as_deref(), Some("/register?done=1"));
    // The same email with another codice fiscale, and the same codice fiscale with another
    // email: the very same answer, so nobody learns whether a person is registered.
    let same_email = register(&Client::new(&gw), CITIZEN, &cf("BNCGLI70A41H501"));
    let same_code = register(&Client::new(&gw), CITIZEN2, &cf("RSSMRA85T10A562"));
    for page in [&same_email, &same_code] {
        assert_eq!(page.status, new.status, "{}", page.body);
        assert_eq!(page.location, new.location);
        assert_eq!(page.body, new.body);
    }
    // The owner is told, twice, with no link that changes anything.
    let notices = |stack: &MailStack| {
        fetch_all(stack, CITIZEN)
            .into_iter()
            .map(|m| String::from_utf8_lossy(&m).into_owned())
            .filter(|m| {
                subject_and_text(m)
                    .1
                    .contains("Someone has just asked to register")
            })
            .collect::<Vec<_>>()
    };
    gw.wait_for("two notices to the owner", WAIT, || {
        (notices(&stack).len() >= 2).then_some(())
    });
    for mail in notices(&stack) {
        let (_, text) = subject_and_text(&mail);
        assert!(text.contains("Gentile Anna Verdi"), "{text}");
        assert!(text.contains("/password/forgot"), "{text}");
        assert!(!text.contains("token="), "{text}");
        assert!(
            !text.contains("BNCGLI70A41H501") && !text.contains(CITIZEN2),
            "{text}"
        );
    }
    let texts: Vec<String> = notices(&stack)
        .iter()
        .map(|m| subject_and_text(m).1)
        .collect();
    assert!(texts.iter().any(|t| t.contains("il suo indirizzo e-mail")));
    assert!(texts.iter().any(|t| t.contains("il suo codice fiscale")));
    // Nothing was created for the second email.
    assert_eq!(login(&Client::new(&gw), CITIZEN2, PASSWORD).status, 401);
    // The form cannot flood the owner's mailbox: three notices an hour, then the same answer
    // and no mail.
    for _ in 0..3 {
        let again = register(&Client::new(&gw), CITIZEN, &cf("BNCGLI70A41H501"));
        assert_eq!(again.location, new.location);
    }
    let (_, probe) = citizen_mail(CITIZEN2, LAVORI, "Sonda", "x");
    send(&stack, CITIZEN2, &[LAVORI], &probe);
    wait_for_mail(&stack, CITIZEN2, WAIT, |m| m.contains("Sonda"));
    assert_eq!(notices(&stack).len(), 3);
}

#[test]
fn parallel_registrations_from_one_address_are_limited_and_hashing_stays_within_memory() {
    let stack = MailStack::start();
    let gw = behind_a_proxy(&stack);
    let clients: Vec<Client> = (0..30)
        .map(|_| Client::new(&gw).forwarded_for("203.0.113.20"))
        .collect();
    let forms: Vec<Vec<(&str, String)>> = (0..30)
        .map(|i| {
            vec![
                ("first_name", "Anna".to_owned()),
                ("last_name", "Verdi".to_owned()),
                ("email", format!("persona{i}@citizen.test")),
                ("fiscal_code", cf(&format!("RSSMRA85T10A{:03}", 100 + i))),
                ("password", PASSWORD.to_owned()),
                ("password_confirm", PASSWORD.to_owned()),
                ("privacy", "yes".to_owned()),
            ]
        })
        .collect();
    let pages = post_in_parallel(&clients, "/register", &forms);
    assert_eq!(count(&pages, 303) + count(&pages, 429), 30);
    // Never more than the limit; in a burst possibly fewer (attempts still being refused count
    // for the others: see store::attempts), which only holds back the bursting client itself.
    let created = count(&pages, 303);
    assert!(
        created <= 10,
        "{created} registered: the limit per client address is 10"
    );
    // Once the burst is over, the client's remaining registrations are allowed again.
    if created < 10 {
        let page = register(
            &Client::new(&gw).forwarded_for("203.0.113.20"),
            "dopo@citizen.test",
            &cf("RSSMRA85T10A199"),
        );
        assert_eq!(page.status, 303, "{}", page.body);
    }
    let limited = pages.iter().find(|p| p.status == 429).unwrap();
    assert!(
        limited.body.contains("Troppe richieste"),
        "{}",
        limited.body
    );
    assert!(limited.header("retry-after").is_some());
    // Sign-ins from many addresses at once (each one an Argon2 run of 19 MiB): hashed a
    // core's worth at a time, so the process does not balloon.
    let clients: Vec<Client> = (0..64)
        .map(|i| Client::new(&gw).forwarded_for(&format!("198.51.100.{}", i + 100)))
        .collect();
    let forms: Vec<Vec<(&str, String)>> = (0..64)
        .map(|i| {
            vec![
                ("email", format!("nessuno{i}@citizen.test")),
                ("password", "sbagliata-password-1".to_owned()),
                ("next", "/tickets".to_owned()),
            ]
        })
        .collect();
    let pages = post_in_parallel(&clients, "/login", &forms);
    assert_eq!(count(&pages, 401), 64);
    let peak_mib = gw.peak_rss_kib() / 1024;
    assert!(peak_mib < 600, "the gateway peaked at {peak_mib} MiB");
}

#[test]
fn parallel_failed_sign_ins_get_no_more_password_checks_than_the_limits() {
    let stack = MailStack::start();
    let gw = behind_a_proxy(&stack);
    assert_eq!(
        register(&Client::new(&gw), CITIZEN, &cf("RSSMRA85T10A562")).status,
        303
    );
    // Sixty at once from one address, each at another account: twenty are checked.
    let clients: Vec<Client> = (0..60)
        .map(|_| Client::new(&gw).forwarded_for("203.0.113.30"))
        .collect();
    let forms: Vec<Vec<(&str, String)>> = (0..60)
        .map(|i| {
            vec![
                ("email", format!("nessuno{i}@citizen.test")),
                ("password", "sbagliata-password-1".to_owned()),
            ]
        })
        .collect();
    let pages = post_in_parallel(&clients, "/login", &forms);
    assert_eq!(count(&pages, 401) + count(&pages, 429), 60);
    assert!(count(&pages, 401) <= 20, "{} checked", count(&pages, 401));
    // Forty guesses at once at one account from one address: five are checked.
    let clients: Vec<Client> = (0..40)
        .map(|_| Client::new(&gw).forwarded_for("203.0.113.31"))
        .collect();
    let forms: Vec<Vec<(&str, String)>> = (0..40)
        .map(|i| {
            vec![
                ("email", CITIZEN.to_owned()),
                ("password", format!("sbagliata-password-{i}")),
            ]
        })
        .collect();
    let pages = post_in_parallel(&clients, "/login", &forms);
    assert_eq!(count(&pages, 401) + count(&pages, 429), 40);
    assert!(count(&pages, 401) <= 5, "{} checked", count(&pages, 401));
    let limited = pages.iter().find(|p| p.status == 429).unwrap();
    assert!(
        limited.body.contains("Troppi tentativi"),
        "{}",
        limited.body
    );
}

#[test]
fn mailed_link_requests_and_web_reports_are_limited_per_client_address() {
    let stack = MailStack::start();
    let gw = behind_a_proxy(&stack);
    let client = Client::new(&gw).forwarded_for("203.0.113.50");
    let form = client.get("/password/forgot");
    // Ten requests for links an hour from one address, whichever form and account…
    for i in 0..10 {
        let (path, email) = if i % 2 == 0 {
            ("/password/forgot", format!("nessuno{i}@citizen.test"))
        } else {
            ("/verify/resend", CITIZEN.to_owned())
        };
        let page = client.post(path, &[("csrf", &form.csrf()), ("email", &email)]);
        assert_eq!(page.status, 200, "request {i}");
    }
    let page = client.post(
        "/password/forgot",
        &[("csrf", &form.csrf()), ("email", CITIZEN)],
    );
    assert_eq!(page.status, 429, "{}", page.body);
    assert!(page.body.contains("Troppe richieste"));
    // …and another address is not affected.
    let other = Client::new(&gw).forwarded_for("203.0.113.51");
    let form = other.get("/password/forgot");
    let page = other.post(
        "/password/forgot",
        &[("csrf", &form.csrf()), ("email", CITIZEN)],
    );
    assert_eq!(page.status, 200);

    // Twenty reports from the web an hour from one address; a form with mistakes is not one.
    let reporter = signed_in(&stack, &gw, CITIZEN2, &cf("BNCGLI70A41H501"));
    let reporter = reporter.forwarded_for("203.0.113.52");
    let form = reporter.get("/tickets/new");
    let report = |subject: &str| {
        reporter.post_multipart(
            "/tickets/new",
            &[
                ("csrf", &form.csrf()),
                ("area", "ambiente"),
                ("kind", "reclamo"),
                ("subject", subject),
                ("text", "Sacchi abbandonati."),
            ],
            &[],
        )
    };
    assert_eq!(report("").status, 422);
    for i in 0..20 {
        assert_eq!(report(&format!("Rifiuti {i}")).status, 303, "report {i}");
    }
    let page = report("Rifiuti di troppo");
    assert_eq!(page.status, 429, "{}", page.body);
    assert!(page.body.contains("Troppe richieste"));
}

#[test]
fn a_strangers_wrong_passwords_do_not_keep_the_citizen_out_of_the_account() {
    let stack = MailStack::start();
    let gw = behind_a_proxy(&stack);
    let _account = signed_in(&stack, &gw, CITIZEN, &cf("RSSMRA85T10A562"));
    let stranger = Client::new(&gw).forwarded_for("203.0.113.40");
    let answers: Vec<u16> = (0..12)
        .map(|i| login(&stranger, CITIZEN, &format!("sbagliata-password-{i}")).status)
        .collect();
    assert_eq!(&answers[..5], &[401; 5], "the first failures are checked");
    assert!(answers[5..].iter().all(|&s| s == 429), "{answers:?}");
    // Even the right password waits, from the stranger's address…
    let waiting = login(&stranger, CITIZEN, PASSWORD);
    assert_eq!(waiting.status, 429);
    assert!(
        waiting.body.contains("Troppi tentativi") && waiting.body.contains("attenda"),
        "{}",
        waiting.body
    );
    // …but the citizen, from their own, signs in.
    let citizen = Client::new(&gw).forwarded_for("203.0.113.41");
    assert_eq!(login(&citizen, CITIZEN, PASSWORD).status, 303);
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
    let gw = Gateway::start_configured(&stack, |c| {
        c.outbox = "retry_initial_seconds = 1".to_owned();
        c.trust_forwarded_for = true;
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

/// A mail whose HTML part is `html` (sent base64, so no MTA re-wraps its lines) and whose
/// text part is `text`.
fn mail_with_html(subject: &str, text: &str, html: &str) -> Vec<u8> {
    let encoded = support::base64::encode_lines(html.as_bytes());
    let wrapped: String = encoded
        .as_bytes()
        .chunks(76)
        .map(|l| format!("{}\r\n", String::from_utf8_lossy(l)))
        .collect();
    format!(
        "From: Anna Verdi <{CITIZEN}>\r\nTo: {LAVORI}\r\nSubject: {subject}\r\nMessage-ID: <{}>\r\n\
         MIME-Version: 1.0\r\nContent-Type: multipart/alternative; boundary=\"A\"\r\n\r\n\
         --A\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n{text}\r\n\
         --A\r\nContent-Type: text/html; charset=utf-8\r\nContent-Transfer-Encoding: base64\r\n\r\n\
         {wrapped}--A--\r\n",
        unique_id()
    )
    .into_bytes()
}

#[test]
fn a_megabyte_of_nested_html_reaches_the_page_as_text_with_a_notice_and_normal_html_is_still_sanitised(
) {
    let stack = MailStack::start();
    let gw = Gateway::start(&stack);
    // Sanitising this on every view took 22 s a view (release build) and stalled the server.
    let nested = format!(
        "{}annidato{}",
        "<div>".repeat(100_000),
        "</div>".repeat(100_000)
    );
    send(
        &stack,
        CITIZEN,
        &[LAVORI],
        &mail_with_html("Annidato", "Il testo della segnalazione annidata.", &nested),
    );
    send(
        &stack,
        CITIZEN,
        &[LAVORI],
        &mail_with_html(
            "Formattato",
            "Il testo semplice.",
            "<p>Una <b>buca</b> in <i>via Roma</i></p><script>alert('x')</script>\
             <a href=\"javascript:alert(2)\" onclick=\"alert(3)\">qui</a>",
        ),
    );
    let deep = wait_ticket(&gw, "Annidato");
    let normal = wait_ticket(&gw, "Formattato");
    let client = signed_in(&stack, &gw, CITIZEN, &cf("RSSMRA85T10A562"));

    let page = client.get(&format!("/tickets/{deep}"));
    assert_eq!(page.status, 200);
    assert!(page.body.contains("Il testo della segnalazione annidata."));
    assert!(
        page.body
            .contains("troppo grande o complessa per mostrarla in sicurezza"),
        "the page says why the formatted version is missing: {}",
        page.body.get(..4000).unwrap_or(&page.body)
    );
    assert!(
        !page.body.contains("<div><div>"),
        "the nested HTML is not shown"
    );
    let en = client.get(&format!("/tickets/{deep}?lang=en"));
    assert!(
        en.body.contains("too large or too complex to show safely"),
        "{}",
        en.body.get(..4000).unwrap_or(&en.body)
    );

    let page = client.get(&format!("/tickets/{normal}"));
    assert_eq!(page.status, 200);
    assert!(page.body.contains("<b>buca</b>"), "{}", page.body);
    assert!(!page.body.contains("mostrarla in sicurezza"));
    let lower = page.body.to_lowercase();
    for inert in ["<script", "alert(", "onclick", "javascript:"] {
        assert!(!lower.contains(inert), "{inert} in {}", page.body);
    }
}

/// Runs one statement on the gateway's database (the one in its config file); returns the
/// rows it changed, or the first column of its one row for a query.
fn on_database(gw: &Gateway, statement: &'static str, query: bool) -> i64 {
    let config = std::fs::read_to_string(&gw.config_path).expect("the gateway's config");
    let url = config
        .lines()
        .find_map(|l| l.trim().strip_prefix("url = \""))
        .and_then(|r| r.strip_suffix('"'))
        .expect("a database url in the config")
        .to_owned();
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime")
        .block_on(async move {
            sqlx::any::install_default_drivers();
            let pool = sqlx::AnyPool::connect(&url).await.expect("the database");
            if query {
                use sqlx::Row;
                let row = sqlx::query(statement)
                    .fetch_one(&pool)
                    .await
                    .expect("query");
                row.get::<i64, _>(0)
            } else {
                let done = sqlx::query(statement)
                    .execute(&pool)
                    .await
                    .expect("statement");
                i64::try_from(done.rows_affected()).unwrap_or(i64::MAX)
            }
        })
}

#[test]
fn html_stored_before_it_was_sanitised_at_intake_is_sanitised_once_on_its_first_view() {
    let stack = MailStack::start();
    let gw = Gateway::start(&stack);
    send(
        &stack,
        CITIZEN,
        &[LAVORI],
        &mail_with_html(
            "Vecchia",
            "Il testo semplice.",
            "<p>Una <b>buca</b></p><script>alert('x')</script>",
        ),
    );
    let reference = wait_ticket(&gw, "Vecchia");
    // As a row written before migration 0006 looks: the HTML, neither column.
    let forgotten = on_database(
        &gw,
        "UPDATE message SET html_safe = NULL, html_withheld = NULL WHERE html IS NOT NULL",
        false,
    );
    assert!(forgotten >= 1);
    let client = signed_in(&stack, &gw, CITIZEN, &cf("RSSMRA85T10A562"));
    let page = client.get(&format!("/tickets/{reference}"));
    assert!(page.body.contains("<b>buca</b>"), "{}", page.body);
    assert!(!page.body.to_lowercase().contains("<script"));
    assert_eq!(
        on_database(
            &gw,
            "SELECT COUNT(*) FROM message WHERE html IS NOT NULL AND html_safe IS NULL",
            true
        ),
        0,
        "the sanitised HTML was stored: later views only read it"
    );
}

// -------------------------- attacks on accounts and pages (docs/design-notes.md, issue 10)

#[test]
fn after_sign_in_only_a_local_path_is_followed_never_another_host() {
    let stack = MailStack::start();
    let gw = Gateway::start(&stack);
    let client = signed_in(&stack, &gw, CITIZEN, &cf("RSSMRA85T10A562"));
    // A tab after the first slash: browsers drop it and read `//evil.example`, another
    // host. A line break made the redirect itself fail with a 500 after a good sign-in.
    for next in ["/\t/evil.example", "/\n/evil.example", "/\\evil.example"] {
        let form = client.get(&format!("/login?next={}", encode(next)));
        assert_eq!(form.status, 200);
        assert!(
            form.body.contains("name=\"next\" value=\"/tickets\""),
            "the form carries {next:?} on:\n{}",
            form.body
        );
        let page = client.post(
            "/login",
            &[
                ("csrf", &form.csrf()),
                ("email", CITIZEN),
                ("password", PASSWORD),
                ("next", next),
            ],
        );
        assert_eq!(page.status, 303, "{next:?}: {}", page.body);
        assert_eq!(page.location.as_deref(), Some("/tickets"), "{next:?}");
    }
    // A path of ours is followed.
    let form = client.get("/login");
    let page = client.post(
        "/login",
        &[
            ("csrf", &form.csrf()),
            ("email", CITIZEN),
            ("password", PASSWORD),
            ("next", "/tickets/new?lang=en"),
        ],
    );
    assert_eq!(page.location.as_deref(), Some("/tickets/new?lang=en"));
}

/// Percent-encodes a query value (every byte that is not unreserved).
fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~/".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// GET `path` on `port` with `headers`; (status, body).
fn raw_get(port: u16, path: &str, headers: &str) -> (u16, String) {
    use std::io::{Read, Write};
    let address = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    // A server that accepts nothing leaves the connect waiting: try again until a deadline.
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let mut s = loop {
        match std::net::TcpStream::connect_timeout(&address, Duration::from_secs(5)) {
            Ok(s) => break s,
            Err(e) if std::time::Instant::now() > deadline => panic!("connect: {e}"),
            Err(_) => {}
        }
    };
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    s.write_all(format!("GET {path} HTTP/1.0\r\n{headers}\r\n").as_bytes())
        .expect("request");
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    let status = out
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (status, out)
}

#[test]
fn metrics_are_not_on_the_citizens_port_but_on_the_operators_listener() {
    let stack = MailStack::start();
    let gw = Gateway::start(&stack);
    let (status, _) = raw_get(gw.web_port, "/metrics", "");
    assert_eq!(status, 404);
    let (status, body) = raw_get(gw.metrics_port, "/metrics", "");
    assert_eq!(status, 200);
    assert!(body.contains("ticketgate_raw_messages"), "{body}");
}

#[test]
fn with_a_metrics_token_metrics_need_the_bearer_token_on_both_ports() {
    const TOKEN: &str = "scrape-me-0123456789abcdef";
    let stack = MailStack::start();
    let gw = Gateway::start_configured(&stack, |c| {
        c.outbox = "retry_initial_seconds = 1".to_owned();
        c.metrics_token = Some(TOKEN.to_owned());
    });
    for port in [gw.web_port, gw.metrics_port] {
        for bad in [
            "",
            "Authorization: Bearer wrong-token-0123456789\r\n",
            "Authorization: Basic c2NyYXBlOm1l\r\n",
        ] {
            let (status, _) = raw_get(port, "/metrics", bad);
            assert_eq!(status, 401, "port {port}, {bad:?}");
        }
        let (status, body) = raw_get(
            port,
            "/metrics",
            &format!("Authorization: Bearer {TOKEN}\r\n"),
        );
        assert_eq!(status, 200, "port {port}: {body}");
        assert!(body.contains("ticketgate_raw_messages"), "{body}");
    }
}

/// Opens `n` connections to `port` that each send half a request and then keep quiet.
fn half_sent_requests(port: u16, n: usize) -> Vec<std::net::TcpStream> {
    use std::io::Write;
    let address = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let mut held = Vec::new();
    for _ in 0..n {
        // Stop at the first connection the server's queue no longer takes.
        let Ok(mut s) = std::net::TcpStream::connect_timeout(&address, Duration::from_secs(5))
        else {
            break;
        };
        let _ = s.write_all(b"POST /login HTTP/1.1\r\nHost: comune.test\r\nContent-Le");
        held.push(s);
    }
    held
}

#[test]
fn half_sent_requests_beyond_the_connection_cap_starve_neither_the_web_nor_the_mail_nor_the_stop() {
    let stack = MailStack::start();
    // 256 file descriptors in all, as a small default would give; short header deadline.
    let mut gw = Gateway::start_with_fd_limit(&stack, 256, |c| {
        c.header_timeout_seconds = Some(2);
        c.body_timeout_seconds = Some(2);
    });
    // More half-sent requests than the process has descriptors.
    let held = half_sent_requests(gw.web_port, 400);
    assert!(held.len() > 256, "only {} connections opened", held.len());

    // A mail with a photo sent meanwhile still becomes a ticket (its attachment is a file).
    let photo = photo();
    let raw = mail_with_photo_and_html(CITIZEN, LAVORI, "Buca durante un attacco", &photo);
    send(&stack, CITIZEN, &[LAVORI], &raw);
    let reference = wait_ticket(&gw, "Buca durante un attacco");
    assert_eq!(gw.show(&reference)["attachments"][0]["size"], photo.len());

    // A normal request from another connection is served (once the half-sent ones time out).
    let (status, _) = raw_get(gw.web_port, "/healthz", "");
    assert_eq!(status, 200, "{}", gw.log());

    // An idle keep-alive connection and a body that stops halfway are closed by the server
    // (the client only waits, with a generous deadline, for the end of the stream).
    {
        use std::io::{Read, Write};
        let mut idle = std::net::TcpStream::connect(("127.0.0.1", gw.web_port)).unwrap();
        idle.set_read_timeout(Some(Duration::from_secs(60)))
            .unwrap();
        idle.write_all(b"GET /healthz HTTP/1.1\r\nHost: comune.test\r\n\r\n")
            .unwrap();
        let mut slow = std::net::TcpStream::connect(("127.0.0.1", gw.web_port)).unwrap();
        slow.set_read_timeout(Some(Duration::from_secs(60)))
            .unwrap();
        slow.write_all(
            b"POST /login HTTP/1.1\r\nHost: comune.test\r\n\
              Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 100\r\n\r\ncsrf=",
        )
        .unwrap();
        for (what, mut s) in [("idle keep-alive", idle), ("half-sent body", slow)] {
            let mut answer = Vec::new();
            let read = s.read_to_end(&mut answer);
            assert!(read.is_ok(), "{what}: the server kept the connection open");
        }
    }

    // SIGTERM stops the process although half-sent requests are open.
    let more = half_sent_requests(gw.web_port, 100);
    assert!(gw.stop(), "serve did not stop cleanly:\n{}", gw.log());
    drop((held, more));
}

#[test]
fn once_signed_in_a_form_token_counts_only_for_its_own_session() {
    let stack = MailStack::start();
    let gw = Gateway::start(&stack);
    let first = signed_in(&stack, &gw, CITIZEN, &cf("RSSMRA85T10A562"));
    // A token seen before sign-in (made for the CSRF cookie, which a hostile sibling site
    // could have planted) no longer counts once the visitor is signed in.
    let browser = Client::new(&gw);
    let form = browser.get("/login");
    let before = form.csrf();
    let page = browser.post(
        "/login",
        &[
            ("csrf", &before),
            ("email", CITIZEN),
            ("password", PASSWORD),
            ("next", "/tickets"),
        ],
    );
    assert_eq!(page.status, 303, "{}", page.body);
    assert_eq!(browser.post("/logout", &[("csrf", &before)]).status, 403);
    // Nor does a token of another session (the first browser's) of the same citizen…
    let other = first.get("/tickets/new").csrf();
    assert_eq!(browser.post("/logout", &[("csrf", &other)]).status, 403);
    // …nor one of this browser's previous session, after signing in again.
    let previous = browser.get("/tickets/new").csrf();
    let form = browser.get("/login");
    let page = browser.post(
        "/login",
        &[
            ("csrf", &form.csrf()),
            ("email", CITIZEN),
            ("password", PASSWORD),
            ("next", "/tickets"),
        ],
    );
    assert_eq!(page.status, 303, "{}", page.body);
    assert_eq!(browser.post("/logout", &[("csrf", &previous)]).status, 403);
    // The page's own token does.
    let current = browser.get("/tickets/new").csrf();
    assert_eq!(browser.post("/logout", &[("csrf", &current)]).status, 303);
}

/// Posts the new-report form with `csrf` and a photo; the answer.
fn post_report(client: &Client, csrf: &str, subject: &str, text: &str) -> Page {
    client.post_multipart(
        "/tickets/new",
        &[
            ("csrf", csrf),
            ("area", "ambiente"),
            ("kind", "reclamo"),
            ("subject", subject),
            ("text", text),
        ],
        &[("files", "lampione.jpg", "image/jpeg", &photo())],
    )
}

/// The re-displayed form keeps what was typed.
fn assert_kept(page: &Page, subject: &str, text: &str) {
    assert!(
        page.body.contains(&format!("value=\"{subject}\"")),
        "subject lost:\n{}",
        page.body
    );
    assert!(
        page.body.contains(&format!(">{text}</textarea>")),
        "text lost"
    );
    assert!(
        page.body.contains("value=\"ambiente\" selected"),
        "area lost"
    );
    assert!(page.body.contains("value=\"reclamo\" checked"), "kind lost");
}

#[test]
fn a_report_refused_for_an_expired_form_or_session_comes_back_with_the_text_and_a_word_about_the_photos(
) {
    let stack = MailStack::start();
    let gw = Gateway::start(&stack);
    let subject = "Lampione spento";
    let text = "Il lampione di via Roma 3 è spento da una settimana.";

    // The form expired (a stale or missing token): in Italian, the text kept, sent again.
    let anna = signed_in(&stack, &gw, CITIZEN, &cf("RSSMRA85T10A562"));
    let page = post_report(&anna, "a-stale-token", subject, text);
    assert_eq!(page.status, 403, "{}", page.body);
    assert!(page.body.contains("Il modulo era scaduto"), "{}", page.body);
    assert!(page.body.contains("li alleghi di nuovo"), "{}", page.body);
    assert_kept(&page, subject, text);
    let sent = post_report(&anna, &page.csrf(), subject, text);
    assert_eq!(sent.status, 303, "{}", sent.body);

    // In English, for an English-speaking visitor.
    let luca = signed_in(&stack, &gw, CITIZEN2, &cf("VRDLCU90E15F205"));
    assert_eq!(luca.get("/tickets/new?lang=en").status, 200);
    let page = post_report(&luca, "", subject, text);
    assert_eq!(page.status, 403, "{}", page.body);
    assert!(page.body.contains("The form had expired"), "{}", page.body);
    assert!(page.body.contains("attach them again"), "{}", page.body);
    assert_kept(&page, subject, text);

    // The session ended meanwhile: the text is kept, with a way to sign in that keeps it.
    let token = anna.get("/tickets/new").csrf();
    assert_eq!(anna.post("/logout", &[("csrf", &token)]).status, 303);
    let page = post_report(&anna, &token, subject, text);
    assert_eq!(page.status, 403, "{}", page.body);
    assert!(page.body.contains("La sessione è scaduta"), "{}", page.body);
    assert!(page.body.contains("href=\"/login\" target=\"_blank\""));
    assert_kept(&page, subject, text);
}

#[test]
fn under_https_the_cookies_carry_the_host_prefix_and_only_those_count() {
    let stack = MailStack::start();
    let gw = Gateway::start_configured(&stack, |c| {
        c.outbox = "retry_initial_seconds = 1".to_owned();
        c.base_url = c.base_url.replacen("http://", "https://", 1);
    });
    let answer = support::http::exchange(gw.web_port, "GET /login HTTP/1.0\r\n\r\n");
    let cookie = answer
        .lines()
        .find(|l| {
            l.to_ascii_lowercase()
                .starts_with("set-cookie: __host-tg_csrf=")
        })
        .unwrap_or_else(|| panic!("no __Host- CSRF cookie:\n{answer}"));
    assert!(cookie.contains("; Path=/"), "{cookie}");
    assert!(cookie.contains("; Secure"), "{cookie}");
    assert!(!cookie.to_ascii_lowercase().contains("domain="), "{cookie}");
    let value = cookie
        .split_once('=')
        .and_then(|(_, v)| v.split(';').next())
        .unwrap()
        .to_owned();
    let marker = "name=\"csrf\" value=\"";
    let token = answer
        .split(marker)
        .nth(1)
        .and_then(|r| r.split('"').next())
        .unwrap()
        .to_owned();
    let post = |cookie_name: &str| {
        let body = format!("csrf={token}&email=nobody%40citizen.test&password=una-password-42");
        let answer = support::http::exchange(
            gw.web_port,
            &format!(
                "POST /login HTTP/1.0\r\nCookie: {cookie_name}={value}\r\n\
                 Content-Type: application/x-www-form-urlencoded\r\n\
                 Content-Length: {}\r\n\r\n{body}",
                body.len()
            ),
        );
        answer
            .split_whitespace()
            .nth(1)
            .and_then(|c| c.parse::<u16>().ok())
            .unwrap_or(0)
    };
    // The prefixed cookie passes the form check (then the sign-in fails: no such account)…
    assert_eq!(post("__Host-tg_csrf"), 401);
    // …one without the prefix, as a sibling subdomain could set, does not count.
    assert_eq!(post("tg_csrf"), 403);
}

#[test]
fn a_registration_or_sign_in_refused_for_its_token_comes_back_with_what_was_typed_but_no_password()
{
    let stack = MailStack::start();
    let gw = Gateway::start(&stack);
    let fiscal = cf("RSSMRA85T10A562");
    for (lang, expired) in [
        ("it", "Il modulo era scaduto"),
        ("en", "The form had expired"),
    ] {
        let client = Client::new(&gw);
        assert_eq!(client.get(&format!("/register?lang={lang}")).status, 200);
        let page = client.post(
            "/register",
            &[
                ("csrf", "a-stale-token"),
                ("first_name", "Anna"),
                ("last_name", "Verdi"),
                ("email", CITIZEN),
                ("fiscal_code", &fiscal),
                ("password", PASSWORD),
                ("password_confirm", PASSWORD),
                ("privacy", "yes"),
            ],
        );
        assert_eq!(page.status, 403, "{}", page.body);
        assert!(page.body.contains(expired), "{lang}: {}", page.body);
        for kept in [
            "value=\"Anna\"",
            "value=\"Verdi\"",
            CITIZEN,
            fiscal.as_str(),
        ] {
            assert!(page.body.contains(kept), "{lang}: {kept} lost");
        }
        assert!(!page.body.contains(PASSWORD), "a password came back");

        let page = client.post(
            "/login",
            &[
                ("csrf", ""),
                ("email", CITIZEN),
                ("password", PASSWORD),
                ("next", "/tickets/new"),
            ],
        );
        assert_eq!(page.status, 403, "{}", page.body);
        assert!(page.body.contains(expired), "{lang}: {}", page.body);
        assert!(page.body.contains(&format!("value=\"{CITIZEN}\"")));
        assert!(page.body.contains("name=\"next\" value=\"/tickets/new\""));
        assert!(!page.body.contains(PASSWORD), "a password came back");
    }
}

/// A stranger's mail with a citizen's address in Reply-To is the stranger's ticket; it never
/// appears on that citizen's page (docs/design-notes.md, "Who is who").
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

/// docs/design-notes.md, "Web server hardening" (the rest of it): the mailed-link forms, the
/// new-password form and the confirmation button, refused for their token, come back in the page's
/// language with the address typed (or the link's token) kept, never with a password and never as a
/// bare page.
#[test]
fn a_link_request_or_new_password_refused_for_its_token_comes_back_with_the_address_or_the_link_kept(
) {
    let stack = MailStack::start();
    let gw = Gateway::start(&stack);
    for (lang, expired) in [
        ("it", "Il modulo era scaduto"),
        ("en", "The form had expired"),
    ] {
        let client = Client::new(&gw);
        for path in ["/password/forgot", "/verify/resend"] {
            assert_eq!(client.get(&format!("{path}?lang={lang}")).status, 200);
            let page = client.post(path, &[("csrf", "a-stale-token"), ("email", CITIZEN)]);
            assert_eq!(page.status, 403, "{path}: {}", page.body);
            assert!(page.body.contains(expired), "{lang} {path}: {}", page.body);
            assert!(
                page.body.contains(&format!("value=\"{CITIZEN}\"")),
                "{lang} {path}: the address was lost: {}",
                page.body
            );
            assert!(
                page.body.contains(&format!("action=\"{path}\"")),
                "{lang} {path}: not the form again: {}",
                page.body
            );
        }
        let page = client.post(
            "/password/reset",
            &[
                ("csrf", ""),
                ("token", "the-token-of-the-link"),
                ("password", PASSWORD),
                ("password_confirm", PASSWORD),
            ],
        );
        assert_eq!(page.status, 403, "{}", page.body);
        assert!(page.body.contains(expired), "{lang}: {}", page.body);
        assert!(
            page.body
                .contains("name=\"token\" value=\"the-token-of-the-link\""),
            "{lang}: the link's token was lost: {}",
            page.body
        );
        assert!(!page.body.contains(PASSWORD), "a password came back");
        // The confirmation button of the mailed link, likewise.
        let page = client.post(
            "/verify",
            &[("csrf", ""), ("token", "the-token-of-the-link")],
        );
        assert_eq!(page.status, 403, "{}", page.body);
        assert!(page.body.contains(expired), "{lang}: {}", page.body);
        assert!(
            page.body
                .contains("name=\"token\" value=\"the-token-of-the-link\""),
            "{lang}: the link's token was lost: {}",
            page.body
        );
    }
}
