//! Reminders and escalation of overdue tickets (issue 14), end to end through a private
//! Dovecot + Postfix and the real `ticketgate serve`, with `ticketgate remind --as-of` to
//! stand on the days after the due date: the office is reminded once, in the ticket's thread;
//! the head of office and the admin staff are told once, `escalate_after_days` later; an
//! answered ticket gets nothing; answering the reminder answers the citizen.

mod support;

use std::time::Duration;

use support::gateway::*;
use support::mail::*;
use support::mailstack::MailStack;

const WAIT: Duration = Duration::from_secs(30);
const HEAD: &str = "dirigente.lavori@comune.test";
const ADMIN_STAFF: &str = "segretario@comune.test";
const ESCALATE_AFTER_DAYS: i64 = 3;

/// The first mail of `user` whose decoded subject and text contain every one of `needles`.
fn wait_text(stack: &MailStack, user: &str, needles: &[&str]) -> String {
    wait_for_mail(stack, user, WAIT, |m| {
        let (subject, text) = subject_and_text(m);
        let all = format!("{subject}\n{text}");
        needles.iter().all(|n| all.contains(n))
    })
}

/// How many mails of `user` have all of `needles` in their decoded subject and text.
fn count_text(stack: &MailStack, user: &str, needles: &[&str]) -> usize {
    fetch_all(stack, user)
        .iter()
        .filter(|m| {
            let (subject, text) = subject_and_text(&String::from_utf8_lossy(m));
            let all = format!("{subject}\n{text}");
            needles.iter().all(|n| all.contains(n))
        })
        .count()
}

/// The reference in the subject of a mail about a ticket.
fn reference_of(mail: &str) -> String {
    subject_and_text(mail)
        .0
        .split('#')
        .nth(1)
        .and_then(|r| r.get(..11))
        .expect("reference in the subject")
        .to_owned()
}

/// `ticketgate remind` with these arguments: its standard output, after checking it succeeded.
fn remind(gw: &Gateway, args: &[&str]) -> String {
    let mut all = vec!["remind"];
    all.extend_from_slice(args);
    let out = gw.cli(&all);
    assert!(
        out.status.success(),
        "ticketgate {all:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// "YYYY-MM-DD HH:MM" of `date` at 09:00.
fn morning(date: time::Date) -> String {
    format!(
        "{:04}-{:02}-{:02} 09:00",
        date.year(),
        u8::from(date.month()),
        date.day()
    )
}

/// The due date `remind` names for `reference` in `printed` ("… (due YYYY-MM-DD, …").
fn due_in(printed: &str, reference: &str) -> time::Date {
    let line = printed
        .lines()
        .find(|l| l.contains(reference))
        .unwrap_or_else(|| panic!("no line for {reference} in {printed:?}"));
    let due = line
        .split("(due ")
        .nth(1)
        .and_then(|r| r.get(..10))
        .unwrap_or_else(|| panic!("no due date in {line:?}"));
    let n: Vec<u16> = due
        .split('-')
        .map(|p| p.parse().expect("a number"))
        .collect();
    time::Date::from_calendar_date(
        i32::from(n[0]),
        time::Month::try_from(u8::try_from(n[1]).unwrap()).unwrap(),
        u8::try_from(n[2]).unwrap(),
    )
    .expect("a date")
}

#[test]
fn an_overdue_ticket_reminds_its_office_once_then_escalates_once_and_a_reply_to_the_reminder_answers_the_citizen(
) {
    let stack = MailStack::start();
    let gw = Gateway::start_configured(&stack, |c| {
        let lavori = c.area("lavori-pubblici");
        lavori.response_days = 1;
        lavori.head = Some(HEAD.to_owned());
        lavori.escalate_after_days = Some(u32::try_from(ESCALATE_AFTER_DAYS).unwrap());
        let mut admin = c.area("ambiente").clone();
        admin.slug = "segreteria".to_owned();
        admin.name = "Segreteria generale".to_owned();
        admin.addresses = vec![format!("{:?}", "segreteria@comune.test")];
        admin.staff = vec![ADMIN_STAFF.to_owned()];
        admin.admin = true;
        c.areas.push(admin);
    });

    // Two reports: one the office never answers, one it answers at once.
    let (_, raw) = citizen_mail(CITIZEN, LAVORI, "Lampione spento", "In via Roma 4.");
    send(&stack, CITIZEN, &[LAVORI], &raw);
    let (_, raw) = citizen_mail(CITIZEN, LAVORI, "Tombino rotto", "In piazza Dante.");
    send(&stack, CITIZEN, &[LAVORI], &raw);
    let late_note = wait_text(&stack, STAFF_LAVORI, &["In via Roma 4."]);
    let answered_note = wait_text(&stack, STAFF_LAVORI, &["In piazza Dante."]);
    let late = reference_of(&late_note);
    let answered = reference_of(&answered_note);
    let (_, raw) = reply_to_mail(&answered_note, STAFF_LAVORI, "Riparato stamattina.");
    send(&stack, STAFF_LAVORI, &[LAVORI], &raw);
    wait_text(&stack, CITIZEN, &["Riparato stamattina."]);

    // A month from now, without --send: both mails are due, nothing is queued, and the
    // answered ticket is not among them.
    let today = time::OffsetDateTime::now_utc().date();
    let printed = remind(
        &gw,
        &["--as-of", &morning(today + time::Duration::days(30))],
    );
    assert!(
        printed.contains(&format!("would send: {late} reminder to {STAFF_LAVORI}")),
        "{printed}"
    );
    assert!(
        printed.contains(&format!(
            "would send: {late} escalation to {HEAD}, {ADMIN_STAFF}"
        )),
        "{printed}"
    );
    assert!(!printed.contains(&answered), "{printed}");
    let due = due_in(&printed, &late);

    // The due date itself: not yet overdue.
    let printed = remind(&gw, &["--as-of", &morning(due), "--send"]);
    assert_eq!(printed.trim(), "nothing due");

    // The day after: one reminder to the office, and only once, though two checks run at
    // the same moment (two instances; on PostgreSQL, two processes racing for the row).
    let day1 = morning(due + time::Duration::days(1));
    let (first, second) = std::thread::scope(|s| {
        let a = s.spawn(|| remind(&gw, &["--as-of", &day1, "--send"]));
        let b = s.spawn(|| remind(&gw, &["--as-of", &day1, "--send"]));
        (
            a.join().expect("first check"),
            b.join().expect("second check"),
        )
    });
    let (printed, other) = if first.contains("queued") {
        (first, second)
    } else {
        (second, first)
    };
    assert_eq!(other.trim(), "nothing due", "{printed} / {other}");
    assert!(
        printed.starts_with(&format!("queued: {late} reminder to {STAFF_LAVORI} (due ")),
        "{printed}"
    );
    assert!(printed.contains(", 1 day(s) overdue)"), "{printed}");
    assert_eq!(printed.lines().count(), 1, "{printed}");
    assert_eq!(
        remind(&gw, &["--as-of", &day1, "--send"]).trim(),
        "nothing due"
    );
    let reminder = wait_text(&stack, STAFF_LAVORI, &["Promemoria", &late]);
    assert_eq!(
        header(&reminder, "In-Reply-To"),
        header(&late_note, "Message-ID"),
        "the reminder is in the ticket's thread"
    );
    let (_, text) = subject_and_text(&reminder);
    assert!(text.contains("Lampione spento"), "{text}");
    assert!(
        text.contains("/staff/tickets/") && text.contains("staff=mario.rossi"),
        "the staff page link: {text}"
    );
    // The staff page shows the reminder on the ticket's timeline.
    let link = text
        .lines()
        .find_map(|l| {
            l.find("/staff/tickets/")
                .map(|at| l[at..].trim().to_owned())
        })
        .expect("a staff page link");
    let page = gw.http_get(&link);
    assert!(
        page.contains(&format!("Promemoria a {STAFF_LAVORI}")),
        "the reminder on the staff page: {page}"
    );

    // Escalation: not on the reminder's day + escalate_after_days - 1, then once.
    let before = morning(due + time::Duration::days(ESCALATE_AFTER_DAYS));
    assert_eq!(
        remind(&gw, &["--as-of", &before, "--send"]).trim(),
        "nothing due"
    );
    let escalation_day = morning(due + time::Duration::days(ESCALATE_AFTER_DAYS + 1));
    let printed = remind(&gw, &["--as-of", &escalation_day, "--send"]);
    assert!(
        printed.contains(&format!(
            "queued: {late} escalation to {HEAD}, {ADMIN_STAFF}"
        )),
        "{printed}"
    );
    assert_eq!(
        remind(&gw, &["--as-of", &escalation_day, "--send"]).trim(),
        "nothing due"
    );
    let to_head = wait_text(&stack, HEAD, &[&late, "ancora senza risposta"]);
    let (_, head_text) = subject_and_text(&to_head);
    assert!(
        !head_text.contains("/staff/tickets/"),
        "no staff page link for a head who is not staff: {head_text}"
    );
    let to_admin = wait_text(&stack, ADMIN_STAFF, &[&late, "ancora senza risposta"]);
    assert!(
        subject_and_text(&to_admin).1.contains("staff=segretario"),
        "the admin staff's own link"
    );

    // Replying to the reminder answers the citizen.
    let (_, raw) = reply_to_mail(&reminder, STAFF_LAVORI, "Lampione sostituito oggi.");
    send(&stack, STAFF_LAVORI, &[LAVORI], &raw);
    let answer = wait_text(&stack, CITIZEN, &["Lampione sostituito oggi."]);
    assert!(
        !subject_and_text(&answer).1.contains("Promemoria"),
        "nothing of the reminder reaches the citizen"
    );

    // Everything queued has been sent by now: one reminder, one escalation each.
    assert_eq!(count_text(&stack, STAFF_LAVORI, &["Promemoria", &late]), 1);
    assert_eq!(count_text(&stack, HEAD, &[&late]), 1);
    assert_eq!(count_text(&stack, ADMIN_STAFF, &[&late]), 1);
    let shown = gw.show(&late);
    let events = events(&shown);
    assert_eq!(
        events.iter().filter(|e| *e == "reminder").count(),
        1,
        "{events:?}"
    );
    assert_eq!(
        events.iter().filter(|e| *e == "escalation").count(),
        1,
        "{events:?}"
    );
    assert_eq!(shown["ticket"]["status"], "answered", "{shown}");

    // Answered: nothing more, however late.
    let much_later = morning(due + time::Duration::days(60));
    assert_eq!(
        remind(&gw, &["--as-of", &much_later, "--send"]).trim(),
        "nothing due"
    );
    let bad = gw.cli(&["remind", "--as-of", "31/12/2026 09:00", "--send"]);
    assert_eq!(
        bad.status.code(),
        Some(2),
        "a time not YYYY-MM-DD HH:MM is refused"
    );
    assert!(String::from_utf8_lossy(&bad.stderr).contains("YYYY-MM-DD HH:MM"));
}
