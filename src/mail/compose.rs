//! Outbound mail: the texts (askama templates under `templates/mail/`) and the exact bytes
//! (mail-builder). Pure: the caller stores the bytes and the outbox worker sends them as-is.

use std::borrow::Cow;

use askama::Template;
use mail_builder::headers::content_type::ContentType;
use mail_builder::headers::message_id::MessageId;
use mail_builder::headers::raw::Raw;
use mail_builder::mime::{BodyPart, MimePart};
use mail_builder::MessageBuilder;

use crate::domain::EmailAddress;

/// Everything that goes into the headers of one outbound message.
#[derive(Debug, Clone)]
pub struct Envelope<'a> {
    pub from_name: &'a str,
    pub from_addr: &'a str,
    /// Each one valid address: the header lists exactly the envelope recipients.
    pub to: &'a [EmailAddress],
    pub reply_to: Option<(&'a str, &'a str)>,
    pub subject: &'a str,
    /// Our Message-ID, without angle brackets.
    pub message_id: &'a str,
    /// The message this one answers (ids without brackets).
    pub in_reply_to: Option<&'a str>,
    pub references: &'a [String],
    /// RFC 3834: `Auto-Submitted: auto-replied` on automatic answers to a person's mail.
    pub auto_replied: bool,
    /// Unix millis for the Date header.
    pub date_millis: i64,
}

/// A file to attach to an outbound message.
#[derive(Debug, Clone, Copy)]
pub struct OutAttachment<'a> {
    pub filename: &'a str,
    pub content_type: &'a str,
    pub bytes: &'a [u8],
    /// Written as the part's `Content-ID` (without `<>`), so that `cid:` references resolve.
    pub content_id: Option<&'a str>,
    /// `Content-Disposition: inline` (an image shown in the mail) instead of `attachment`.
    pub inline: bool,
}

/// Builds the RFC 5322 bytes of a plain-text message.
pub fn build(env: &Envelope<'_>, text: &str) -> Vec<u8> {
    build_with_attachments(env, text, &[])
}

/// Builds the RFC 5322 bytes of a plain-text message with attachments: `multipart/mixed`, the
/// text first, then one part per file in the order given.
pub fn build_with_attachments(
    env: &Envelope<'_>,
    text: &str,
    attachments: &[OutAttachment<'_>],
) -> Vec<u8> {
    build_parts(env, text, None, attachments)
}

/// A mail with a plain-text body and an HTML alternative of the same content (`html` is
/// trusted markup: the caller escaped every value it put in).
pub fn build_alternative(env: &Envelope<'_>, text: &str, html: &str) -> Vec<u8> {
    build_parts(env, text, Some(html), &[])
}

fn build_parts(
    env: &Envelope<'_>,
    text: &str,
    html: Option<&str>,
    attachments: &[OutAttachment<'_>],
) -> Vec<u8> {
    let mut b = MessageBuilder::new()
        .from((env.from_name, env.from_addr))
        .to(env
            .to
            .iter()
            .map(EmailAddress::as_str)
            .collect::<Vec<&str>>())
        .subject(env.subject)
        .message_id(env.message_id)
        .date(env.date_millis / 1000);
    if let Some(html) = html {
        // multipart/alternative: the plain text first, the HTML the client prefers last.
        b = b.text_body(text).html_body(html);
    } else if attachments.is_empty() {
        b = b.text_body(text);
    } else {
        let mut parts = Vec::with_capacity(attachments.len() + 1);
        parts.push(MimePart::new("text/plain", BodyPart::Text(text.into())));
        parts.extend(attachments.iter().map(attachment_part));
        b = b.body(MimePart::new("multipart/mixed", parts));
    }
    if let Some((name, addr)) = env.reply_to {
        b = b.reply_to((name, addr));
    }
    if let Some(irt) = env.in_reply_to {
        b = b.in_reply_to(irt);
    }
    if !env.references.is_empty() {
        b = b.references(MessageId::new_list(
            env.references.iter().map(|s| s.as_str()),
        ));
    }
    if env.auto_replied {
        b = b.header("Auto-Submitted", Raw::new("auto-replied"));
        // Tells Exchange/Outlook not to answer with out-of-office mail (MS-OXCMAIL 2.2.3.2.14).
        b = b.header("X-Auto-Response-Suppress", Raw::new("All"));
    }
    // Writing into a Vec cannot fail.
    b.write_to_vec().unwrap_or_default()
}

/// One file as a MIME part that gives back exactly its bytes.
///
/// The name goes in both places clients look: `Content-Disposition` `filename` and the older
/// `Content-Type` `name`. mail-builder writes a non-ASCII value as RFC 2231
/// (`filename*=UTF-8''buca%20via%20Verit%C3%A0.jpg`, continued as `filename*0*=`, `*1*=`
/// past 78 characters), which Thunderbird and Outlook (2010 and later, Exchange, Outlook on
/// the web) read. The body is always base64: mail-builder would send a `text/*` file as 7bit
/// or quoted-printable and turn its bare LFs into CRLF, so the bytes staff receive (and their
/// sha256) would differ from the stored ones; binary files it already base64-encodes itself,
/// straight from the borrowed bytes, with no copy.
fn attachment_part<'x>(a: &OutAttachment<'x>) -> MimePart<'x> {
    let content_type = if is_media_type(a.content_type) {
        a.content_type
    } else {
        "application/octet-stream"
    };
    let is_text = content_type
        .get(..5)
        .is_some_and(|t| t.eq_ignore_ascii_case("text/"));
    let body = if is_text {
        BodyPart::Binary(Cow::Owned(base64_lines(a.bytes)))
    } else {
        BodyPart::Binary(Cow::Borrowed(a.bytes))
    };
    let disposition = if a.inline { "inline" } else { "attachment" };
    let mut part = MimePart::new(
        ContentType::new(content_type).attribute("name", a.filename),
        body,
    )
    .header(
        "Content-Disposition",
        ContentType::new(disposition).attribute("filename", a.filename),
    );
    if let Some(id) = a.content_id {
        part = part.cid(id);
    }
    if is_text {
        // Present, mail-builder writes the body as it is: our base64 above.
        part = part.header("Content-Transfer-Encoding", Raw::new("base64"));
    }
    part
}

/// RFC 6838 §4.2: `type/subtype`, each 1–127 of letters, digits and ``!#$&-^_.+``: what can
/// go into a header as it is.
fn is_media_type(value: &str) -> bool {
    let valid = |s: &str| {
        !s.is_empty()
            && s.len() <= 127
            && s.bytes().all(|b| {
                b.is_ascii_alphanumeric()
                    || matches!(
                        b,
                        b'!' | b'#' | b'$' | b'&' | b'-' | b'^' | b'_' | b'.' | b'+'
                    )
            })
    };
    value
        .split_once('/')
        .is_some_and(|(t, s)| valid(t) && valid(s))
}

/// Base64 (RFC 2045 §6.8) in lines of 76 characters ending in CRLF.
fn base64_lines(bytes: &[u8]) -> Vec<u8> {
    /// 57 input bytes make one 76-character line.
    const LINE_INPUT_BYTES: usize = 57;
    fn symbol(six_bits: u32) -> u8 {
        // Masked to 0..=63, so the cast keeps every bit.
        let v = (six_bits & 0x3f) as u8;
        match v {
            0..=25 => b'A' + v,
            26..=51 => b'a' + (v - 26),
            52..=61 => b'0' + (v - 52),
            62 => b'+',
            _ => b'/',
        }
    }
    let mut out = Vec::with_capacity(bytes.len().div_ceil(3) * 4 + bytes.len() / 57 * 2 + 2);
    for line in bytes.chunks(LINE_INPUT_BYTES) {
        for group in line.chunks(3) {
            let (n, symbols) = match *group {
                [a] => (u32::from(a) << 16, 2),
                [a, b] => ((u32::from(a) << 16) | (u32::from(b) << 8), 3),
                [a, b, c, ..] => ((u32::from(a) << 16) | (u32::from(b) << 8) | u32::from(c), 4),
                [] => continue,
            };
            for k in 0..4 {
                if k < symbols {
                    out.push(symbol(n >> (18 - 6 * k)));
                } else {
                    out.push(b'=');
                }
            }
        }
        out.extend_from_slice(b"\r\n");
    }
    out
}

/// Which of a notification's attachments it carries, given their decoded sizes in the
/// citizen's order and the budget `max_bytes` (`notifications.max_attachment_bytes`): each
/// one in turn goes if it still fits in what the ones before it left, so one large video
/// does not keep out the photos after it, and the first files keep their precedence. `0`
/// carries nothing.
pub fn fit_attachments(sizes: &[u64], max_bytes: u64) -> Vec<bool> {
    let mut left = max_bytes;
    sizes
        .iter()
        .map(|&size| {
            let fits = max_bytes > 0 && size <= left;
            if fits {
                left -= size;
            }
            fits
        })
        .collect()
}

/// `[Ticket #2026-000123] subject`, without stacking a second tag on a subject that has one.
pub fn tagged_subject(prefix: &str, reference: &str, subject: &str) -> String {
    let tag = format!("[{prefix} #{reference}]");
    let subject = subject.trim();
    if subject.contains(&tag) {
        subject.to_owned()
    } else if subject.is_empty() {
        tag
    } else {
        format!("{tag} {subject}")
    }
}

/// Acknowledgment to the citizen (Italian, then English).
#[derive(Template)]
#[template(path = "mail/ack.txt")]
pub struct AckText<'a> {
    pub citizen_name: &'a str,
    pub kind_it: &'a str,
    pub kind_en: &'a str,
    pub subject: &'a str,
    pub reference: &'a str,
    pub area_name: &'a str,
    pub response_days: u32,
    /// The due date in words (issue 14): "martedì 20 gennaio 2026".
    pub due_date_it: &'a str,
    /// "Tuesday 20 January 2026".
    pub due_date_en: &'a str,
    pub tag_prefix: &'a str,
    pub base_url: &'a str,
}

/// New-ticket notification to an office's staff.
#[derive(Template)]
#[template(path = "mail/notification.txt")]
pub struct NotificationText<'a> {
    /// "Nuova pratica" / "Nuovo messaggio sulla pratica".
    pub headline: &'a str,
    pub reference: &'a str,
    pub area_name: &'a str,
    /// Other areas the citizen also wrote to, comma separated.
    pub also_areas: &'a str,
    pub citizen: &'a str,
    /// The Reply-To the citizen asked for, when it differs from From (else empty): shown,
    /// never used unless staff choose it.
    pub reply_to_asked: &'a str,
    pub received_at: &'a str,
    pub kind_it: &'a str,
    pub subject: &'a str,
    pub text: &'a str,
    /// (filename, human size) of each file this mail carries.
    pub attachments: Vec<(String, String)>,
    /// (filename, human size) of each file that did not fit `attachment_limit`.
    pub not_carried: Vec<(String, String)>,
    /// `notifications.max_attachment_bytes`, human size.
    pub attachment_limit: &'a str,
    /// Where staff get the files not carried (the ticket's page for staff).
    pub files_link: &'a str,
    /// Files over `tickets.max_attachments`, left in the original message.
    pub not_extracted: usize,
    /// The ticket's messages so far (for a reassigned ticket), or empty.
    pub history: &'a str,
    /// Signed link to take the ticket from the web page, or empty.
    pub take_link: &'a str,
    /// Signed link to this staff member's ticket page (timeline, files, actions), or empty.
    pub staff_link: &'a str,
}

/// To the citizen: another office now handles the ticket.
#[derive(Template)]
#[template(path = "mail/reassigned.txt")]
pub struct ReassignedText<'a> {
    pub reference: &'a str,
    pub subject: &'a str,
    pub area_name: &'a str,
    pub previous_area: &'a str,
}

/// To a staff member whose mail could not be trusted as the office's answer.
#[derive(Template)]
#[template(path = "mail/how_to_reply.txt")]
pub struct HowToReplyText<'a> {
    pub reference: &'a str,
    pub subject: &'a str,
    pub reason: &'a str,
    pub tag_prefix: &'a str,
}

/// To a staff member whose reply was only our quoted notification: nothing was sent.
#[derive(Template)]
#[template(path = "mail/answer_held.txt")]
pub struct AnswerHeldText<'a> {
    pub reference: &'a str,
    pub subject: &'a str,
}

/// To a staff member whose commands could not be carried out.
#[derive(Template)]
#[template(path = "mail/command_error.txt")]
pub struct CommandErrorText<'a> {
    pub reference: &'a str,
    pub problem: &'a str,
    /// Slugs of the areas, for `#assegna`.
    pub areas: &'a str,
}

/// To the office: a mail to the citizen bounced.
#[derive(Template)]
#[template(path = "mail/bounce_notice.txt")]
pub struct BounceNoticeText<'a> {
    pub reference: &'a str,
    pub recipient: &'a str,
    pub bounced_subject: &'a str,
    pub reason: &'a str,
}

/// To the office: a PEC receipt says a certified mail to the citizen failed or is late.
#[derive(Template)]
#[template(path = "mail/pec_notice.txt")]
pub struct PecNoticeText<'a> {
    pub reference: &'a str,
    /// The receipt type as the provider names it (`errore-consegna`, …).
    pub receipt: &'a str,
    pub receipt_it: &'a str,
    pub recipient: &'a str,
    pub subject: &'a str,
    pub certified_at: &'a str,
    pub reason: &'a str,
    pub advice_it: &'a str,
    pub advice_en: &'a str,
}

/// "Your message was too large" notice.
#[derive(Template)]
#[template(path = "mail/oversize.txt")]
pub struct OversizeText {
    pub size_mb: String,
    pub limit_mb: String,
}

/// `1.5 MB`, `820 kB`, `12 B`.
pub fn human_size(bytes: u64) -> String {
    if bytes >= 1024 * 1024 {
        format!("{:.1} MB", bytes as f64 / (1024.0 * 1024.0))
    } else if bytes >= 1024 {
        format!("{} kB", bytes / 1024)
    } else {
        format!("{bytes} B")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn built_message_carries_threading_and_auto_submitted_headers() {
        let to = vec![EmailAddress::parse("cittadino@citizen.test").unwrap()];
        let refs = vec!["orig@citizen.test".to_owned()];
        let bytes = build(
            &Envelope {
                from_name: "Lavori pubblici",
                from_addr: "lavori-pubblici@comune.test",
                to: &to,
                reply_to: None,
                subject: "[Ticket #2026-000001] Buca in via Roma",
                message_id: "t2026-000001.m2.abc@comune.test",
                in_reply_to: Some("orig@citizen.test"),
                references: &refs,
                auto_replied: true,
                date_millis: 1_790_000_000_000,
            },
            "Gentile cittadino, è arrivata.",
        );
        let parsed = mail_parser::MessageParser::default()
            .parse(&bytes[..])
            .expect("our own mail parses");
        assert_eq!(parsed.message_id(), Some("t2026-000001.m2.abc@comune.test"));
        assert_eq!(parsed.in_reply_to().as_text(), Some("orig@citizen.test"));
        assert_eq!(
            parsed.subject(),
            Some("[Ticket #2026-000001] Buca in via Roma")
        );
        assert_eq!(
            parsed.header_raw("Auto-Submitted").map(str::trim),
            Some("auto-replied")
        );
        assert!(parsed
            .body_text(0)
            .unwrap_or_default()
            .contains("è arrivata"));
    }

    fn envelope(to: &[EmailAddress]) -> Envelope<'_> {
        Envelope {
            from_name: "Lavori pubblici",
            from_addr: "lavori-pubblici@comune.test",
            to,
            reply_to: None,
            subject: "[Ticket #2026-000001] Buca",
            message_id: "t2026-000001.m3.abc@comune.test",
            in_reply_to: None,
            references: &[],
            auto_replied: false,
            date_millis: 1_790_000_000_000,
        }
    }

    #[test]
    fn attachments_come_back_with_the_same_bytes_names_types_and_inline_ids() {
        use mail_parser::MimeHeaders;
        let to = vec![EmailAddress::parse("ufficio@comune.test").unwrap()];
        let photo: Vec<u8> = (0..=255u8).cycle().take(100_000).collect();
        // Bare LFs and a trailing space: a text file must not be normalised on the way.
        let text_file = b"riga uno\nriga due \n\nfine".to_vec();
        let long_name = format!("{} via Verità.jpg", "fotografia della buca".repeat(4));
        let files = [
            OutAttachment {
                filename: "buca via Verità.jpg",
                content_type: "image/jpeg",
                bytes: &photo,
                content_id: None,
                inline: false,
            },
            OutAttachment {
                filename: "note.txt",
                content_type: "text/plain",
                bytes: &text_file,
                content_id: None,
                inline: false,
            },
            OutAttachment {
                filename: "logo.png",
                content_type: "image/png",
                bytes: b"\x89PNG",
                content_id: Some("logo.1@citizen.test"),
                inline: true,
            },
            OutAttachment {
                filename: &long_name,
                content_type: "image/jpeg",
                bytes: b"jpeg",
                content_id: None,
                inline: false,
            },
        ];
        let bytes = build_with_attachments(&envelope(&to), "Nuova pratica", &files);
        let raw = String::from_utf8_lossy(&bytes);
        assert!(
            raw.contains("filename*=UTF-8''buca%20via%20Verit%C3%A0.jpg"),
            "RFC 2231 name: {raw:.2000}"
        );
        assert!(raw.contains("Content-Disposition: inline"), "{raw:.3000}");
        assert!(
            raw.contains("Content-ID: <logo.1@citizen.test>"),
            "{raw:.3000}"
        );
        let parsed = mail_parser::MessageParser::default()
            .parse(&bytes[..])
            .expect("our own mail parses");
        assert!(parsed
            .body_text(0)
            .unwrap_or_default()
            .contains("Nuova pratica"));
        let got: Vec<_> = parsed
            .attachments()
            .map(|a| {
                (
                    a.attachment_name().unwrap_or_default().to_owned(),
                    a.content_type()
                        .map(|c| format!("{}/{}", c.ctype(), c.subtype().unwrap_or_default()))
                        .unwrap_or_default(),
                    a.contents().to_vec(),
                    a.content_id().map(str::to_owned),
                    a.content_disposition().is_some_and(|d| d.is_inline()),
                )
            })
            .collect();
        let want: Vec<_> = files
            .iter()
            .map(|f| {
                (
                    f.filename.to_owned(),
                    f.content_type.to_owned(),
                    f.bytes.to_vec(),
                    f.content_id.map(str::to_owned),
                    f.inline,
                )
            })
            .collect();
        assert_eq!(got, want);
    }

    #[test]
    fn our_base64_is_the_standard_one_in_76_character_lines() {
        assert_eq!(base64_lines(b""), b"");
        assert_eq!(base64_lines(b"f"), b"Zg==\r\n");
        assert_eq!(base64_lines(b"fo"), b"Zm8=\r\n");
        assert_eq!(base64_lines(b"foo"), b"Zm9v\r\n");
        assert_eq!(base64_lines(b"\xff\xfe\xfd"), b"//79\r\n");
        let long = base64_lines(&[0u8; 58]);
        let lines: Vec<&[u8]> = long.split(|b| *b == b'\n').collect();
        assert_eq!(lines.first().map(|l| l.len()), Some(77), "76 + CR");
        assert_eq!(lines.get(1).copied(), Some(&b"AA==\r"[..]));
    }

    #[test]
    fn attachments_are_carried_in_order_while_each_still_fits() {
        let mib = 1024 * 1024;
        // Three photos of 4 MiB under the default 15 MiB: all three.
        assert_eq!(
            fit_attachments(&[4 * mib, 4 * mib, 4 * mib], 15 * mib),
            [true, true, true]
        );
        // Under 9 MiB: the first two, the third is listed.
        assert_eq!(
            fit_attachments(&[4 * mib, 4 * mib, 4 * mib], 9 * mib),
            [true, true, false]
        );
        // A large video first does not keep out the photos after it.
        assert_eq!(
            fit_attachments(&[30 * mib, 4 * mib, 12 * mib, 1], 15 * mib),
            [false, true, false, true]
        );
        // Exactly the budget fits; 0 carries nothing, not even an empty file.
        assert_eq!(fit_attachments(&[10, 5], 15), [true, true]);
        assert_eq!(fit_attachments(&[1, 0], 0), [false, false]);
        assert_eq!(fit_attachments(&[], 15), Vec::<bool>::new());
    }

    #[test]
    fn subject_tag_is_added_once() {
        assert_eq!(
            tagged_subject("Ticket", "2026-000001", "Buca"),
            "[Ticket #2026-000001] Buca"
        );
        assert_eq!(
            tagged_subject("Ticket", "2026-000001", "Re: [Ticket #2026-000001] Buca"),
            "Re: [Ticket #2026-000001] Buca"
        );
        assert_eq!(
            tagged_subject("Ticket", "2026-000001", ""),
            "[Ticket #2026-000001]"
        );
    }

    #[test]
    fn ack_text_names_reference_area_and_days_in_both_languages() {
        let text = AckText {
            citizen_name: "Mario Rossi",
            kind_it: "segnalazione",
            kind_en: "report",
            subject: "Buca",
            reference: "2026-000001",
            area_name: "Lavori pubblici",
            response_days: 2,
            due_date_it: "martedì 20 gennaio 2026",
            due_date_en: "Tuesday 20 January 2026",
            tag_prefix: "Ticket",
            base_url: "http://127.0.0.1:8080",
        }
        .render()
        .expect("renders");
        assert!(text.contains("Numero della pratica: 2026-000001"), "{text}");
        assert!(text.contains("Reference number: 2026-000001"), "{text}");
        assert!(
            text.contains("entro 2 giorni lavorativi, cioè entro martedì 20 gennaio 2026"),
            "{text}"
        );
        assert!(
            text.contains("within 2 working days, that is by Tuesday 20 January 2026"),
            "{text}"
        );
        assert!(text.contains("112"), "{text}");
    }
}

/// To the staff member who registered a report (`#registra`): the ticket's reference and
/// whether the citizen was mailed (Italian, then English).
#[derive(Template)]
#[template(path = "mail/registered.txt")]
pub struct RegisteredText<'a> {
    pub reference: &'a str,
    pub area_name: &'a str,
    pub channel_it: &'a str,
    pub channel_en: &'a str,
    /// The name as the staff member wrote it, else the address.
    pub citizen_name: &'a str,
    pub citizen: &'a str,
    pub has_address: bool,
    pub acknowledged: bool,
    /// Why the acknowledgment was withheld (when `has_address` and not `acknowledged`).
    pub ack_withheld: &'a str,
    pub subject: &'a str,
}

/// To a staff member whose `#registra` line could not be read: what is wrong, and the form.
#[derive(Template)]
#[template(path = "mail/registration_refused.txt")]
pub struct RegistrationRefusedText<'a> {
    pub subject: &'a str,
    pub problem: &'a str,
}
