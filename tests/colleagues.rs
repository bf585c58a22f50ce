//! Colleagues of one office answering the same ticket (issue 13): the others get a copy of
//! every answer sent to the citizen, threaded in the ticket's thread; an answer written
//! without knowing of a colleague's is held, its author told, and sent only by `#invia` —
//! end to end through a private Dovecot + Postfix and the real `ticketgate serve`.

mod support;

use std::time::Duration;

use mail_parser::MimeHeaders;
use serde_json::Value;
use support::gateway::*;
use support::mail::*;
use support::mailstack::MailStack;

const WAIT: Duration = Duration::from_secs(30);

/// The second staff member of lavori-pubblici in this suite.
const LUCIA: &str = "lucia.ferri@comune.test";

/// A reply to `original` from `name <from>`, as a mail client builds it: to its Reply-To,
/// threaded, `body` on top and the original quoted below.
fn reply_as(original: &str, name: &str, from: &str, body: &str) -> Vec<u8> {
    let id = header(original, "Message-ID").expect("original has a Message-ID");
    let to = header(original, "Reply-To")
        .or_else(|| header(original, "From"))
        .map(|v| address_in(&v))
        .expect("original has a sender");
    let (subject, text) = subject_and_text(original);
    let quoted: String = text.lines().map(|l| format!("> {l}\r\n")).collect();
    format!(
        "From: {name} <{from}>\r\nTo: <{to}>\r\nSubject: Re: {subject}\r\nIn-Reply-To: {id}\r\n\
         References: {id}\r\nMessage-ID: <{}>\r\nMIME-Version: 1.0\r\n\
         Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n\
         {body}\r\n\r\nIl giorno gio 26 nov 2026 alle ore 10:00 Comune <{to}> ha scritto:\r\n\r\n{quoted}",
        unique_id()
    )
    .into_bytes()
}

/// A 1×1 PNG, base64, 70 bytes decoded.
const PNG: &str = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg==";

/// [`reply_as`] with the PNG attached as `filename`.
fn reply_as_with_png(
    original: &str,
    name: &str,
    from: &str,
    body: &str,
    filename: &str,
) -> Vec<u8> {
    let plain = String::from_utf8(reply_as(original, name, from, body)).expect("utf-8");
    let (head, text) = plain.split_once("\r\n\r\n").expect("header and body");
    let head = head.replace(
        "Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit",
        "Content-Type: multipart/mixed; boundary=\"S\"",
    );
    format!(
        "{head}\r\n\r\n--S\r\nContent-Type: text/plain; charset=utf-8\r\n\
         Content-Transfer-Encoding: 8bit\r\n\r\n{text}\r\n--S\r\nContent-Type: image/png\r\n\
         Content-Disposition: attachment; filename=\"{filename}\"\r\n\
         Content-Transfer-Encoding: base64\r\n\r\n{PNG}\r\n--S--\r\n"
    )
    .into_bytes()
}

/// The first mail of `user` whose decoded subject and text contain every one of `needles`.
fn wait_text(stack: &MailStack, user: &str, needles: &[&str]) -> String {
    wait_for_mail(stack, user, WAIT, |m| {
        let (subject, text) = subject_and_text(m);
        let all = format!("{subject}\n{text}");
        needles.iter().all(|n| all.contains(n))
    })
}

/// How many mails of `user` have `needle` in their decoded text.
fn count_text(stack: &MailStack, user: &str, needle: &str) -> usize {
    fetch_all(stack, user)
        .iter()
        .filter(|m| {
            subject_and_text(&String::from_utf8_lossy(m))
                .1
                .contains(needle)
        })
        .count()
}

/// Sends one more report and waits for its acknowledgment: the outbox has then sent
/// everything queued before it, so a mail that has not arrived was never sent.
fn outbox_has_run(stack: &MailStack) {
    let (_, raw) = citizen_mail(CITIZEN, LAVORI, "Sonda", "ordine");
    send(stack, CITIZEN, &[LAVORI], &raw);
    wait_for_mail(stack, CITIZEN, WAIT, |m| m.contains("Sonda"));
}

/// The messages of a `ticket show` JSON.
fn messages(shown: &Value) -> Vec<Value> {
    shown["messages"].as_array().cloned().unwrap_or_default()
}

#[test]
fn two_colleagues_answering_one_notification_give_the_citizen_one_answer_until_the_second_sends_theirs(
) {
    let stack = MailStack::start();
    let gw = Gateway::start_configured(&stack, |c| {
        c.area("lavori-pubblici").staff.push(LUCIA.to_owned());
    });
    let (id, raw) = citizen_mail(
        CITIZEN,
        LAVORI,
        "Buca in via Po",
        "Una buca enorme al civico 3.",
    );
    send(&stack, CITIZEN, &[LAVORI], &raw);
    let ack = wait_for_mail(&stack, CITIZEN, WAIT, |m| m.contains(&id));
    let reference = subject_and_text(&ack)
        .0
        .split('#')
        .nth(1)
        .and_then(|r| r.get(..11))
        .expect("reference in the ack subject")
        .to_owned();
    let mario_note = wait_text(&stack, STAFF_LAVORI, &[&reference, "Una buca enorme"]);
    let lucia_note = wait_text(&stack, LUCIA, &[&reference, "Una buca enorme"]);

    // Mario answers: the citizen gets it, Lucia gets the copy in the ticket's thread.
    send(
        &stack,
        STAFF_LAVORI,
        &[LAVORI],
        &reply_as(
            &mario_note,
            "Mario Rossi",
            STAFF_LAVORI,
            "Squadra inviata domattina.",
        ),
    );
    wait_text(&stack, CITIZEN, &["Squadra inviata domattina."]);
    let copy = wait_text(
        &stack,
        LUCIA,
        &["Mario Rossi ha risposto al ticket", &reference],
    );
    let (_, copy_text) = subject_and_text(&copy);
    assert!(
        copy_text.contains("Squadra inviata domattina."),
        "{copy_text}"
    );
    assert_eq!(
        header(&copy, "In-Reply-To"),
        header(&lucia_note, "Message-ID"),
        "the copy threads under Lucia's notification"
    );
    assert!(
        !copy_text.contains(STAFF_LAVORI),
        "the display name is shown, not the address: {copy_text}"
    );
    assert!(
        copy_text.contains("/staff/tickets/") && copy_text.contains("staff=lucia"),
        "Lucia's own staff page link: {copy_text}"
    );

    // Mario answers his notification again: his own answer does not hold his next one.
    send(
        &stack,
        STAFF_LAVORI,
        &[LAVORI],
        &reply_as(
            &mario_note,
            "Mario Rossi",
            STAFF_LAVORI,
            "Rettifica: nel pomeriggio.",
        ),
    );
    wait_text(&stack, CITIZEN, &["Rettifica: nel pomeriggio."]);

    // Lucia answers her notification, not knowing of Mario's answers: held, and she is told.
    let lucia_answer = "Abbiamo già chiuso la buca ieri.";
    send(
        &stack,
        LUCIA,
        &[LAVORI],
        &reply_as_with_png(
            &lucia_note,
            "Lucia Ferri",
            LUCIA,
            &format!("#chiudi\n{lucia_answer}"),
            "chiusura.png",
        ),
    );
    let notice = wait_text(&stack, LUCIA, &["Answer not sent", &reference]);
    let (_, notice_text) = subject_and_text(&notice);
    assert!(
        notice_text.contains("Rettifica: nel pomeriggio."),
        "{notice_text}"
    );
    assert!(notice_text.contains("#invia"), "{notice_text}");
    assert!(notice_text.contains("/staff/tickets/"), "{notice_text}");
    outbox_has_run(&stack);
    assert_eq!(
        count_text(&stack, CITIZEN, lucia_answer),
        0,
        "a held answer is never sent"
    );
    let shown = gw.show(&reference);
    assert!(
        events(&shown).contains(&"answer_held".to_owned()),
        "{shown}"
    );
    assert_ne!(
        shown["ticket"]["status"], "resolved",
        "#chiudi waits with the answer"
    );
    let held: Vec<Value> = messages(&shown)
        .into_iter()
        .filter(|m| m["held"] == true)
        .collect();
    assert_eq!(held.len(), 1, "{shown}");
    assert_eq!(held[0]["from"], LUCIA);
    assert!(
        held[0]["held_reason"]
            .as_str()
            .is_some_and(|r| r.contains(STAFF_LAVORI)),
        "{held:?}"
    );
    assert!(
        messages(&shown)
            .iter()
            .all(|m| m["kind"] != "answer"
                || !m["text"].as_str().unwrap_or("").contains(lucia_answer)),
        "the held answer is not in the outbox"
    );

    // #invia to the notice sends exactly the held answer, and closes as it said.
    send(
        &stack,
        LUCIA,
        &[LAVORI],
        &reply_as(&notice, "Lucia Ferri", LUCIA, "#invia"),
    );
    let sent = wait_text(&stack, CITIZEN, &[lucia_answer]);
    let parsed = mail_parser::MessageParser::default()
        .parse(sent.as_bytes())
        .expect("answer parses");
    let att = parsed
        .attachments()
        .next()
        .expect("the held reply's attachment");
    assert_eq!(att.attachment_name(), Some("chiusura.png"));
    assert_eq!(att.contents().len(), 70);
    assert_eq!(
        subject_and_text(&sent).1.replace("\r\n", "\n").trim(),
        lucia_answer
    );
    let mario_copy = wait_text(&stack, STAFF_LAVORI, &["Lucia Ferri ha risposto al ticket"]);
    assert_eq!(
        header(&mario_copy, "In-Reply-To"),
        header(&mario_note, "Message-ID"),
        "Mario's copy threads under his notification"
    );
    let shown = gw.show(&reference);
    assert!(
        events(&shown).contains(&"held_answer_sent".to_owned()),
        "{shown}"
    );
    assert!(
        events(&shown).contains(&"colleague_copy".to_owned()),
        "{shown}"
    );
    assert_eq!(shown["ticket"]["status"], "resolved");
    assert!(
        messages(&shown).iter().all(|m| m["held"] == false),
        "{shown}"
    );

    // A second #invia sends nothing and says so.
    send(
        &stack,
        LUCIA,
        &[LAVORI],
        &reply_as(&notice, "Lucia Ferri", LUCIA, "#send"),
    );
    wait_text(&stack, LUCIA, &["Already sent", &reference]);

    // Mario answers the copy of Lucia's answer: he knew of it, so it is sent.
    send(
        &stack,
        STAFF_LAVORI,
        &[LAVORI],
        &reply_as(
            &mario_copy,
            "Mario Rossi",
            STAFF_LAVORI,
            "Confermo, grazie alla collega.",
        ),
    );
    wait_text(&stack, CITIZEN, &["Confermo, grazie alla collega."]);
    outbox_has_run(&stack);
    assert_eq!(count_text(&stack, CITIZEN, lucia_answer), 1, "sent once");
    assert_eq!(count_text(&stack, CITIZEN, "Squadra inviata domattina."), 1);
    assert_eq!(
        count_text(&stack, CITIZEN, "ha risposto al ticket"),
        0,
        "the copies never reach the citizen"
    );

    // Two answers to a new ticket in the same instant, on two processes sharing the database
    // (two `ticketgate ingest`s): the ticket's row lock lets one through and holds the other.
    let (_, raw) = citizen_mail(
        CITIZEN,
        LAVORI,
        "Lampione spento",
        "Il lampione del civico 8.",
    );
    send(&stack, CITIZEN, &[LAVORI], &raw);
    let mario_note = wait_text(&stack, STAFF_LAVORI, &["Il lampione del civico 8."]);
    let lucia_note = wait_text(&stack, LUCIA, &["Il lampione del civico 8."]);
    let (mario_text, lucia_text) = ("Lampione: tecnico in arrivo.", "Lampione: già riparato.");
    let replies = [
        reply_as(&mario_note, "Mario Rossi", STAFF_LAVORI, mario_text),
        reply_as(&lucia_note, "Lucia Ferri", LUCIA, lucia_text),
    ];
    // Each holds its transaction open a while after its check: without the lock, both
    // would see no answer yet and both would be sent.
    let pause = [("TICKETGATE_TEST_ANSWER_PAUSE_MS", "1500")];
    std::thread::scope(|s| {
        let runs: Vec<_> = replies
            .iter()
            .map(|r| s.spawn(|| ingest(&gw.config_path, "lavori-pubblici", r, &pause)))
            .collect();
        for run in runs {
            let out = run.join().expect("ingest thread");
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
    });
    // Mail the `ingest`s queued leaves on the server's next outbox scan.
    wait_for_mail(&stack, CITIZEN, WAIT, |m| {
        let text = subject_and_text(m).1;
        text.contains(mario_text) || text.contains(lucia_text)
    });
    let (marios, lucias) = (
        count_text(&stack, CITIZEN, mario_text),
        count_text(&stack, CITIZEN, lucia_text),
    );
    assert_eq!(
        marios + lucias,
        1,
        "two racing answers, one reaches the citizen"
    );
    let held_author = if marios == 1 { LUCIA } else { STAFF_LAVORI };
    wait_text(&stack, held_author, &["Answer not sent", "Lampione spento"]);
    outbox_has_run(&stack);
    assert_eq!(
        count_text(&stack, CITIZEN, mario_text) + count_text(&stack, CITIZEN, lucia_text),
        1,
        "the held one never follows"
    );
}
