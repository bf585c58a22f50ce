//! Outbound mail: the texts (askama templates under `templates/mail/`) and the exact bytes
//! (mail-builder). Pure: the caller stores the bytes and the outbox worker sends them as-is.

use askama::Template;
use mail_builder::headers::message_id::MessageId;
use mail_builder::headers::raw::Raw;
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
}

/// Builds the RFC 5322 bytes of a plain-text message.
pub fn build(env: &Envelope<'_>, text: &str) -> Vec<u8> {
    build_with_attachments(env, text, &[])
}

/// Builds the RFC 5322 bytes of a plain-text message with attachments.
pub fn build_with_attachments(
    env: &Envelope<'_>,
    text: &str,
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
        .date(env.date_millis / 1000)
        .text_body(text);
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
    for a in attachments {
        let content_type = if a.content_type.contains('/') {
            a.content_type
        } else {
            "application/octet-stream"
        };
        b = b.attachment(content_type.to_owned(), a.filename.to_owned(), a.bytes);
    }
    // Writing into a Vec cannot fail.
    b.write_to_vec().unwrap_or_default()
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
    /// (filename, human size)
    pub attachments: Vec<(String, String)>,
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
            response_days: 30,
            tag_prefix: "Ticket",
            base_url: "http://127.0.0.1:8080",
        }
        .render()
        .expect("renders");
        assert!(text.contains("Numero della pratica: 2026-000001"), "{text}");
        assert!(text.contains("Reference number: 2026-000001"), "{text}");
        assert!(text.contains("entro 30 giorni"), "{text}");
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
