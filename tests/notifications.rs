//! Staff notifications carry the citizen's files (issue 13, point 1), end to end through the
//! real servers: the citizen's mail goes in over SMTP (Postfix → Dovecot), `ticketgate
//! serve` reads it over IMAP, and the notification the staff member's mailbox receives is
//! fetched over IMAP and parsed: its attachments must be the stored bytes (same sha256), with
//! their names (RFC 2231 for a non-ASCII one) and types, inline images inline under their
//! Content-ID, and what does not fit `notifications.max_attachment_bytes` listed with its
//! size and a link that opens.

mod support;

use std::time::Duration;

use mail_parser::{MessageParser, MimeHeaders};
use sha2::{Digest, Sha256};
use support::gateway::*;
use support::mail::*;
use support::mailstack::MailStack;
use ticketgate::cli::json::TicketShow;

const WAIT: Duration = Duration::from_secs(60);

/// One file of a test mail.
struct File<'a> {
    name: &'a str,
    content_type: &'a str,
    bytes: Vec<u8>,
    /// `Some(id)`: an inline image of the HTML body, `Content-ID: <id>`.
    cid: Option<&'a str>,
}

/// `len` bytes that look like a JPEG to a mail client (SOI marker first) and differ per
/// `seed`, so that each file has its own sha256.
fn jpeg_ish(len: usize, seed: u8) -> Vec<u8> {
    let mut bytes = vec![0xff, 0xd8, 0xff, 0xe0];
    let mut x = u32::from(seed).wrapping_mul(2_654_435_761) | 1;
    while bytes.len() < len {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        bytes.push((x >> 8) as u8);
    }
    bytes
}

fn sha(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// A citizen's mail with `files`: `multipart/mixed` of the body (HTML with its inline images
/// in `multipart/related` when `html` is given, else text) and the other files. File names
/// are written as a mail client does: RFC 2231 when they are not ASCII.
fn mail_with_files(
    to: &str,
    subject: &str,
    extra_headers: &str,
    text: &str,
    html: Option<&str>,
    files: &[File<'_>],
) -> Vec<u8> {
    let name_params = |name: &str| {
        if name.is_ascii() {
            format!("name=\"{name}\"",)
        } else {
            let encoded: String = name
                .bytes()
                .map(|b| {
                    if b.is_ascii_alphanumeric() || b == b'.' || b == b'-' {
                        (b as char).to_string()
                    } else {
                        format!("%{b:02X}")
                    }
                })
                .collect();
            format!("name*=UTF-8''{encoded}")
        }
    };
    let part = |f: &File<'_>| {
        let params = name_params(f.name);
        let disposition = match f.cid {
            Some(id) => format!("Content-ID: <{id}>\r\nContent-Disposition: inline\r\n"),
            None => format!(
                "Content-Disposition: attachment; {}\r\n",
                params.replacen("name", "filename", 1)
            ),
        };
        format!(
            "Content-Type: {}; {params}\r\n{disposition}Content-Transfer-Encoding: base64\r\n\r\n{}",
            f.content_type,
            support::base64::encode_lines(&f.bytes)
        )
    };
    let mut body = String::new();
    body.push_str("--MIXED\r\n");
    match html {
        Some(html) => {
            body.push_str("Content-Type: multipart/related; boundary=\"REL\"\r\n\r\n");
            body.push_str(&format!(
                "--REL\r\nContent-Type: text/html; charset=utf-8\r\n\r\n{html}\r\n"
            ));
            for f in files.iter().filter(|f| f.cid.is_some()) {
                body.push_str(&format!("--REL\r\n{}\r\n", part(f)));
            }
            body.push_str("--REL--\r\n");
        }
        None => body.push_str(&format!(
            "Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n{text}\r\n"
        )),
    }
    for f in files.iter().filter(|f| f.cid.is_none()) {
        body.push_str(&format!("--MIXED\r\n{}\r\n", part(f)));
    }
    body.push_str("--MIXED--\r\n");
    format!(
        "From: Anna Verdi <{CITIZEN}>\r\nTo: {to}\r\nSubject: {subject}\r\nMessage-ID: <{}>\r\n\
         {extra_headers}Date: Thu, 26 Nov 2026 10:00:00 +0100\r\nMIME-Version: 1.0\r\n\
         Content-Type: multipart/mixed; boundary=\"MIXED\"\r\n\r\n{body}",
        unique_id()
    )
    .into_bytes()
}

/// What a staff member's mail client sees of one attachment of a received notification.
#[derive(Debug, PartialEq, Eq)]
struct Received {
    name: String,
    content_type: String,
    sha256: String,
    content_id: Option<String>,
    inline: bool,
}

/// The attachments of a mail as received over IMAP, parsed as a mail client would.
fn received_attachments(raw: &str) -> Vec<Received> {
    let msg = MessageParser::default()
        .parse(raw.as_bytes())
        .expect("the notification parses");
    msg.attachments()
        .map(|a| Received {
            name: a.attachment_name().unwrap_or_default().to_owned(),
            content_type: a
                .content_type()
                .map(|c| format!("{}/{}", c.ctype(), c.subtype().unwrap_or_default()))
                .unwrap_or_default(),
            sha256: sha(a.contents()),
            content_id: a.content_id().map(str::to_owned),
            inline: a.content_disposition().is_some_and(|d| d.is_inline()),
        })
        .collect()
}

/// The sha256 of each file the ticket stored, by file name.
fn stored_sha(shown: &TicketShow, name: &str) -> String {
    shown
        .attachments
        .iter()
        .find(|a| a.filename == name)
        .unwrap_or_else(|| panic!("no stored attachment {name}: {:?}", shown.attachments))
        .sha256
        .clone()
}

/// The notifications of a ticket to `staff`, oldest first.
fn notifications_to<'a>(
    shown: &'a TicketShow,
    staff: &'a str,
) -> impl Iterator<Item = &'a ticketgate::cli::json::Message> {
    shown
        .messages
        .iter()
        .filter(move |m| m.kind == "notification" && m.to.contains(staff))
}

#[test]
fn three_photos_of_four_megabytes_reach_the_office_as_attachments_with_their_stored_sha256() {
    let stack = MailStack::start();
    let gw = Gateway::start(&stack);
    let files = [
        File {
            name: "buca via Verità.jpg",
            content_type: "image/jpeg",
            bytes: jpeg_ish(4_000_000, 1),
            cid: None,
        },
        File {
            name: "buca-da-vicino.jpg",
            content_type: "image/jpeg",
            bytes: jpeg_ish(4_100_000, 2),
            cid: None,
        },
        File {
            name: "cartello.jpg",
            content_type: "image/jpeg",
            bytes: jpeg_ish(3_900_000, 3),
            cid: None,
        },
    ];
    let raw = mail_with_files(
        LAVORI,
        "Buca con foto",
        "",
        "Tre foto della buca in via Verità.",
        None,
        &files,
    );
    send(&stack, CITIZEN, &[LAVORI], &raw);

    let note = wait_for_mail(&stack, STAFF_LAVORI, WAIT, |m| m.contains("[Ticket #"));
    let reference = wait_tickets(&gw, 1)[0]["ref"]
        .as_str()
        .expect("ref")
        .to_owned();
    let shown = gw.ticket(&reference);
    let got = received_attachments(&note);
    let want: Vec<Received> = files
        .iter()
        .map(|f| Received {
            name: f.name.to_owned(),
            content_type: f.content_type.to_owned(),
            sha256: stored_sha(&shown, f.name),
            content_id: None,
            inline: false,
        })
        .collect();
    assert_eq!(got, want, "the staff mailbox holds the stored bytes");
    for f in &files {
        assert_eq!(stored_sha(&shown, f.name), sha(&f.bytes), "stored as sent");
    }
    // Outlook reads the RFC 2231 name: written as such, not as raw UTF-8.
    assert!(
        note.contains("filename*=UTF-8''buca%20via%20Verit%C3%A0.jpg"),
        "{:.3000}",
        note.split("Content-Transfer-Encoding: base64")
            .nth(1)
            .unwrap_or("")
    );
    let (_, text) = subject_and_text(&note);
    assert!(text.contains("Tre foto della buca"), "{text}");
    assert!(text.contains("buca via Verità.jpg (3.8 MB)"), "{text}");
    assert!(!text.contains("Non allegati"), "{text}");

    // On record: the report's files with sha256, and what the notification carried.
    let report = shown
        .messages
        .iter()
        .find(|m| m.kind == "report")
        .expect("report");
    let report_shas: Vec<&str> = report
        .attachments
        .iter()
        .map(|a| a.sha256.as_str())
        .collect();
    let file_shas: Vec<String> = files.iter().map(|f| sha(&f.bytes)).collect();
    assert_eq!(report_shas, file_shas);
    let notification = notifications_to(&shown, STAFF_LAVORI)
        .next()
        .expect("notification on record");
    assert_eq!(notification.carried_attachments.as_ref(), Some(&file_shas));
    assert_eq!(notification.attachments_not_carried, Some(Vec::new()));

    // Never to the citizen: the acknowledgment carries no file.
    let ack = wait_for_mail(&stack, CITIZEN, WAIT, |m| m.contains(&reference));
    assert!(received_attachments(&ack).is_empty());
    assert!(ack.len() < 100_000, "ack of {} bytes", ack.len());
}

#[test]
fn what_does_not_fit_is_listed_with_a_link_and_inline_images_follow_the_ticket_to_follow_ups_and_reassignment(
) {
    let stack = MailStack::start();
    let gw = Gateway::start_configured(&stack, |c| {
        c.extra
            .push_str("\n[notifications]\nmax_attachment_bytes = 150000\n");
    });
    let inline = File {
        name: "buca.png",
        content_type: "image/png",
        bytes: jpeg_ish(20_000, 4),
        cid: Some("buca.1@citizen.test"),
    };
    let pdf = File {
        name: "pianta.pdf",
        content_type: "application/pdf",
        bytes: jpeg_ish(100_000, 5),
        cid: None,
    };
    let video = File {
        name: "video.mp4",
        content_type: "video/mp4",
        bytes: jpeg_ish(200_000, 6),
        cid: None,
    };
    let raw = mail_with_files(
        LAVORI,
        "Buca e video",
        "",
        "",
        Some("<p>Ecco la buca: <img src=\"cid:buca.1@citizen.test\"></p>"),
        &[inline, pdf, video],
    );
    send(&stack, CITIZEN, &[LAVORI], &raw);

    let note = wait_for_mail(&stack, STAFF_LAVORI, WAIT, |m| m.contains("[Ticket #"));
    let reference = wait_tickets(&gw, 1)[0]["ref"]
        .as_str()
        .expect("ref")
        .to_owned();
    let shown = gw.ticket(&reference);
    let got = received_attachments(&note);
    assert_eq!(
        got,
        [
            Received {
                name: "buca.png".into(),
                content_type: "image/png".into(),
                sha256: stored_sha(&shown, "buca.png"),
                content_id: Some("buca.1@citizen.test".into()),
                inline: true,
            },
            Received {
                name: "pianta.pdf".into(),
                content_type: "application/pdf".into(),
                sha256: stored_sha(&shown, "pianta.pdf"),
                content_id: None,
                inline: false,
            },
        ],
        "the video is over the 150000 bytes left"
    );
    let stored_inline = shown
        .attachments
        .iter()
        .find(|a| a.filename == "buca.png")
        .expect("inline image stored");
    assert!(stored_inline.inline);
    assert_eq!(
        stored_inline.content_id.as_deref(),
        Some("buca.1@citizen.test")
    );
    let (_, text) = subject_and_text(&note);
    assert!(text.contains("video.mp4 (195 kB)"), "{text}");
    let link = text
        .lines()
        .skip_while(|l| !l.contains("Si scaricano dalla pagina della pratica"))
        .nth(1)
        .expect("a link under the files not attached")
        .trim()
        .to_owned();
    let path = link
        .split_once("127.0.0.1:")
        .and_then(|(_, rest)| rest.split_once('/'))
        .map(|(_, path)| format!("/{path}"))
        .unwrap_or_else(|| panic!("not a link to this gateway: {link}"));
    // The staff ticket page, signed for this staff member, where the video downloads.
    let staff = STAFF_LAVORI.replace('@', "%40");
    assert!(
        path.starts_with(&format!("/staff/tickets/{reference}?staff={staff}&exp=")),
        "{link}"
    );
    let (status, page) = gw.http("GET", &path, None);
    assert_eq!(status, 200, "{link}: {page:.500}");
    assert!(page.contains(&reference), "{page:.500}");
    assert!(page.contains("video.mp4"), "{page:.2000}");
    let notification = notifications_to(&shown, STAFF_LAVORI)
        .next()
        .expect("notification on record");
    assert_eq!(
        notification.carried_attachments,
        Some(vec![
            stored_sha(&shown, "buca.png"),
            stored_sha(&shown, "pianta.pdf")
        ])
    );
    let not_carried = notification
        .attachments_not_carried
        .as_ref()
        .expect("listed");
    assert_eq!(not_carried.len(), 1);
    assert_eq!(not_carried[0].filename, "video.mp4");
    assert_eq!(not_carried[0].size, 200_000);
    assert_eq!(not_carried[0].sha256, stored_sha(&shown, "video.mp4"));

    // The citizen writes again with a new file, answering the acknowledgment.
    let ack = wait_for_mail(&stack, CITIZEN, WAIT, |m| m.contains(&reference));
    let ack_id = header(&ack, "Message-ID").expect("ack id");
    let extra = File {
        name: "altra foto.jpg",
        content_type: "image/jpeg",
        bytes: jpeg_ish(10_000, 7),
        cid: None,
    };
    let extra_sha = sha(&extra.bytes);
    let follow_up = mail_with_files(
        LAVORI,
        &format!("Re: [Ticket #{reference}] Buca e video"),
        &format!("In-Reply-To: {ack_id}\r\nReferences: {ack_id}\r\n"),
        "Un'altra foto, più vicina.",
        None,
        &[extra],
    );
    send(&stack, CITIZEN, &[LAVORI], &follow_up);
    let second = wait_for_mail(&stack, STAFF_LAVORI, WAIT, |m| {
        m.contains("altra foto") && m.contains("Nuovo messaggio")
    });
    let got: Vec<(String, String)> = received_attachments(&second)
        .into_iter()
        .map(|r| (r.name, r.sha256))
        .collect();
    assert_eq!(got, [("altra foto.jpg".to_owned(), extra_sha.clone())]);

    // The office passes it on: the new office gets every file the citizen sent that fits.
    let (_, assign) = reply_to_mail(&note, STAFF_LAVORI, "#assegna ambiente");
    send(&stack, STAFF_LAVORI, &[LAVORI], &assign);
    let moved = wait_for_mail(&stack, STAFF_AMBIENTE, WAIT, |m| m.contains(&reference));
    let got = received_attachments(&moved);
    let names: Vec<&str> = got.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(
        names,
        ["buca.png", "pianta.pdf", "altra foto.jpg"],
        "the video does not fit, the later photo still does"
    );
    let shown = gw.ticket(&reference);
    for r in &got {
        assert_eq!(r.sha256, stored_sha(&shown, &r.name), "{}", r.name);
    }
    assert_eq!(
        got.first().map(|r| (r.inline, r.content_id.as_deref())),
        Some((true, Some("buca.1@citizen.test")))
    );
    let (_, text) = subject_and_text(&moved);
    assert!(text.contains("video.mp4 (195 kB)"), "{text}");
    let to_ambiente = gw.wait_for("the reassignment notification on record", WAIT, || {
        let shown = gw.ticket(&reference);
        let carried = notifications_to(&shown, STAFF_AMBIENTE)
            .next()
            .map(|m| m.carried_attachments.clone());
        carried
    });
    assert_eq!(
        to_ambiente.map(|c| c.len()),
        Some(3),
        "carried: image, plan, later photo"
    );
}
