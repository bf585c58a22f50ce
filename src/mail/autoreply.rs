//! Loop protection (RFC 3834): tells whether an inbound message was written by a machine,
//! so the gateway never answers it automatically.
//!
//! Owns only the reading of the markers in the top-level header and Content-Type. It is pure
//! (no I/O, never panics on any parsed message) and does not decide what happens to the message:
//! whether an automatic message still becomes a ticket, a bounce or nothing is the classifier's
//! call. Our own addresses (another loop source) are configuration, so they are checked there too.

use mail_parser::{Header, HeaderName, HeaderValue, Message, MimeHeaders};

/// Longest keyword kept from a header value; the values end up in logs and in the database.
const MAX_KEYWORD_CHARS: usize = 40;

/// Why a message must not be answered automatically.
///
/// When several markers are present, [`detect`] reports the most specific one, in the order
/// the variants are listed here.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AutoReason {
    /// The top-level type is `multipart/report` (RFC 6522): a delivery status notification
    /// (RFC 3464), a read receipt (RFC 8098), an abuse or TLS report. Always machine-made.
    Dsn,
    /// `Auto-Submitted` with a keyword other than `no` (RFC 3834 §5): `auto-replied`,
    /// `auto-generated`, `auto-notified`… The lowercased keyword, without comments or
    /// parameters.
    AutoSubmitted(String),
    /// `X-Autoreply` or `X-Autorespond` with any value but `no`/`false`/`0`: set by vacation
    /// programs and webmail out-of-office features that predate RFC 3834.
    XAutoreply,
    /// `Return-Path: <>`: the null reverse-path that RFC 5321 §4.5.5 reserves for
    /// notifications (bounces, vacation replies of well-behaved servers). Answering it can
    /// only go nowhere or loop.
    NullSender,
    /// `Precedence: bulk`, `junk` or `list` (RFC 3834 §2 names them), plus the non-standard
    /// `auto_reply` some autoresponders send. The lowercased keyword.
    Precedence(String),
    /// A `List-Id` header (RFC 2919): mailing-list traffic, never a person writing to the comune.
    ListId,
    /// `X-Auto-Response-Suppress` ([MS-OXCMAIL] 2.2.3.2.14) asking to suppress `All`, `OOF` or
    /// `AutoReply` responses. Exchange stamps it on its own out-of-office replies and
    /// notifications, but also on some mail a person did write (meeting forwards, mail sent by
    /// workflow tools on someone's behalf). So it is kept apart from [`AutoReason::XAutoreply`]:
    /// it certainly forbids an automatic answer, it does not prove a machine wrote the message.
    /// The suppressed classes found, lowercased and comma-separated (e.g. `all`).
    AutoResponseSuppress(String),
}

impl AutoReason {
    /// A short English reason for logs and for the database (no user-controlled text beyond
    /// a sanitised keyword).
    pub fn describe(&self) -> String {
        match self {
            AutoReason::Dsn => "delivery or disposition report (multipart/report)".to_owned(),
            AutoReason::AutoSubmitted(keyword) => format!("Auto-Submitted: {keyword}"),
            AutoReason::XAutoreply => "out-of-office marker (X-Autoreply/X-Autorespond)".to_owned(),
            AutoReason::NullSender => "null sender (Return-Path: <>)".to_owned(),
            AutoReason::Precedence(keyword) => format!("Precedence: {keyword}"),
            AutoReason::ListId => "mailing list (List-Id)".to_owned(),
            AutoReason::AutoResponseSuppress(classes) => {
                format!("X-Auto-Response-Suppress: {classes}")
            }
        }
    }
}

/// Returns why `msg` must not be answered automatically, or `None` if nothing says so.
///
/// Only the top-level header counts: markers inside an attached or returned message describe
/// that message, not this one.
pub fn detect(msg: &Message<'_>) -> Option<AutoReason> {
    // `Message::root_part()`/`headers()` index `parts[0]` and would panic on an empty
    // `Message` (e.g. `Message::default()`); go through `first()` instead.
    let root = msg.parts.first()?;
    let headers = root.headers.as_slice();

    if root.content_type().is_some_and(|ct| {
        ct.ctype().eq_ignore_ascii_case("multipart")
            && ct
                .subtype()
                .is_some_and(|s| s.eq_ignore_ascii_case("report"))
    }) {
        return Some(AutoReason::Dsn);
    }
    if let Some(keyword) = auto_submitted(headers) {
        return Some(AutoReason::AutoSubmitted(keyword));
    }
    if x_autoreply(headers) {
        return Some(AutoReason::XAutoreply);
    }
    if null_sender(headers) {
        return Some(AutoReason::NullSender);
    }
    if let Some(keyword) = precedence(headers) {
        return Some(AutoReason::Precedence(keyword));
    }
    if has_list_id(headers) {
        return Some(AutoReason::ListId);
    }
    auto_response_suppress(headers).map(AutoReason::AutoResponseSuppress)
}

/// RFC 3834 §5: `Auto-Submitted: no` (or an absent field) is the only value that says a person
/// sent the message. An empty or unreadable value carries no keyword, so it asserts nothing.
fn auto_submitted(headers: &[Header<'_>]) -> Option<String> {
    texts(headers, "auto-submitted")
        .map(|value| keyword(&value))
        .find(|k| !k.is_empty() && k != "no")
}

fn x_autoreply(headers: &[Header<'_>]) -> bool {
    texts(headers, "x-autoreply")
        .chain(texts(headers, "x-autorespond"))
        .map(|value| keyword(&value))
        .any(|k| !matches!(k.as_str(), "no" | "false" | "0"))
}

/// Only the topmost `Return-Path` counts: it is the one the final delivery agent wrote
/// (RFC 5321 §4.4); anything below it came with the message.
fn null_sender(headers: &[Header<'_>]) -> bool {
    headers
        .iter()
        .find(|h| h.name == HeaderName::ReturnPath)
        .is_some_and(|h| match &h.value {
            // mail-parser parses Return-Path as a message id: `<>` comes out as Empty.
            HeaderValue::Empty => true,
            HeaderValue::Text(text) => text.trim().trim_matches(['<', '>']).trim().is_empty(),
            HeaderValue::TextList(list) => list.iter().all(|t| t.trim().is_empty()),
            _ => false,
        })
}

fn precedence(headers: &[Header<'_>]) -> Option<String> {
    texts(headers, "precedence")
        .map(|value| keyword(&value))
        .find(|k| matches!(k.as_str(), "bulk" | "junk" | "list" | "auto_reply"))
}

fn has_list_id(headers: &[Header<'_>]) -> bool {
    headers
        .iter()
        .any(|h| h.name == HeaderName::ListId && !h.value.is_empty())
}

/// The field is a comma-separated list of classes (`DR, NDR, RN, NRN, OOF, AutoReply, All`);
/// only the classes that cover an acknowledgement matter here.
fn auto_response_suppress(headers: &[Header<'_>]) -> Option<String> {
    let mut classes: Vec<String> = Vec::new();
    for value in texts(headers, "x-auto-response-suppress") {
        for class in value.split(',').map(keyword) {
            if matches!(class.as_str(), "all" | "oof" | "autoreply") && !classes.contains(&class) {
                classes.push(class);
            }
        }
    }
    (!classes.is_empty()).then(|| classes.join(","))
}

/// The values of every top-level header called `name` (ASCII case-insensitive), as text.
/// The fields read here are not registered with mail-parser, so it hands them over raw.
fn texts<'a>(headers: &'a [Header<'_>], name: &'a str) -> impl Iterator<Item = String> + 'a {
    headers
        .iter()
        .filter(move |h| h.name().eq_ignore_ascii_case(name))
        .filter_map(|h| match &h.value {
            HeaderValue::Text(text) => Some(text.to_string()),
            HeaderValue::TextList(list) => Some(list.join(",")),
            _ => None,
        })
}

/// The first keyword of a structured value: comments `( … )` (RFC 5322 §3.2.2) and
/// parameters after `;` dropped, lowercased, limited to keyword characters and length.
fn keyword(value: &str) -> String {
    let mut depth = 0usize;
    let mut out = String::new();
    for c in value.chars() {
        match c {
            '(' => depth += 1,
            ')' => depth = depth.saturating_sub(1),
            ';' if depth == 0 => break,
            _ if depth > 0 => {}
            c if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') => {
                // Only ASCII is pushed, so bytes are characters.
                if out.len() == MAX_KEYWORD_CHARS {
                    break;
                }
                out.push(c.to_ascii_lowercase());
            }
            // Whitespace between the keyword and a comment, or stray bytes: a keyword has
            // no inner spaces, so stop at the first gap once one has started.
            _ if !out.is_empty() => break,
            _ => {}
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use mail_parser::MessageParser;

    fn reason(raw: &str) -> Option<AutoReason> {
        let message = MessageParser::default().parse(raw.as_bytes());
        message.as_ref().and_then(detect)
    }

    const BODY: &str = "Content-Type: text/plain\n\nciao\n";

    #[test]
    fn auto_submitted_auto_replied_is_detected_without_its_comment() {
        let raw = format!("From: a@example.test\nAuto-Submitted: Auto-Replied (vacation)\n{BODY}");
        assert_eq!(
            reason(&raw),
            Some(AutoReason::AutoSubmitted("auto-replied".into()))
        );
    }

    #[test]
    fn auto_submitted_no_is_a_person() {
        let raw = format!("From: a@example.test\nAuto-Submitted: no\n{BODY}");
        assert_eq!(reason(&raw), None);
    }

    #[test]
    fn auto_submitted_with_parameters_keeps_only_the_keyword() {
        let raw =
            format!("From: a@example.test\nAuto-Submitted: auto-generated; owner-email=x\n{BODY}");
        assert_eq!(
            reason(&raw),
            Some(AutoReason::AutoSubmitted("auto-generated".into()))
        );
    }

    #[test]
    fn empty_auto_submitted_asserts_nothing() {
        let raw = format!("From: a@example.test\nAuto-Submitted: (nothing)\n{BODY}");
        assert_eq!(reason(&raw), None);
    }

    #[test]
    fn x_autoreply_and_x_autorespond_are_out_of_office_markers() {
        for header in [
            "X-Autoreply: yes",
            "X-Autorespond: Out of office",
            "x-autoreply: 1",
        ] {
            let raw = format!("From: a@example.test\n{header}\n{BODY}");
            assert_eq!(reason(&raw), Some(AutoReason::XAutoreply), "{header}");
        }
    }

    #[test]
    fn x_autoreply_no_is_not_a_marker() {
        let raw = format!("From: a@example.test\nX-Autoreply: no\n{BODY}");
        assert_eq!(reason(&raw), None);
    }

    #[test]
    fn empty_return_path_is_a_null_sender() {
        for header in ["Return-Path: <>", "Return-Path: < >", "Return-Path:<>"] {
            let raw = format!("{header}\nFrom: a@example.test\n{BODY}");
            assert_eq!(reason(&raw), Some(AutoReason::NullSender), "{header}");
        }
    }

    #[test]
    fn only_the_topmost_return_path_counts() {
        let raw =
            format!("Return-Path: <a@example.test>\nReturn-Path: <>\nFrom: a@example.test\n{BODY}");
        assert_eq!(reason(&raw), None);
    }

    #[test]
    fn precedence_bulk_junk_list_are_detected_and_first_class_is_not() {
        for value in ["bulk", "Junk", "list", "auto_reply"] {
            let raw = format!("From: a@example.test\nPrecedence: {value}\n{BODY}");
            assert_eq!(
                reason(&raw),
                Some(AutoReason::Precedence(value.to_ascii_lowercase())),
                "{value}"
            );
        }
        let raw = format!("From: a@example.test\nPrecedence: first-class\n{BODY}");
        assert_eq!(reason(&raw), None);
    }

    #[test]
    fn list_id_is_mailing_list_traffic() {
        let raw = format!("From: a@example.test\nList-Id: Notizie <notizie.example.test>\n{BODY}");
        assert_eq!(reason(&raw), Some(AutoReason::ListId));
    }

    #[test]
    fn multipart_report_is_a_dsn_even_without_other_markers() {
        let raw = "From: a@example.test\nContent-Type: multipart/report; report-type=disposition-notification; boundary=b\n\n--b\nContent-Type: text/plain\n\nletto\n--b--\n";
        assert_eq!(reason(raw), Some(AutoReason::Dsn));
    }

    #[test]
    fn x_auto_response_suppress_all_or_oof_is_kept_apart() {
        let raw =
            format!("From: a@example.test\nX-Auto-Response-Suppress: DR, OOF, AutoReply\n{BODY}");
        assert_eq!(
            reason(&raw),
            Some(AutoReason::AutoResponseSuppress("oof,autoreply".into()))
        );
        let raw = format!("From: a@example.test\nX-Auto-Response-Suppress: All\n{BODY}");
        assert_eq!(
            reason(&raw),
            Some(AutoReason::AutoResponseSuppress("all".into()))
        );
    }

    #[test]
    fn x_auto_response_suppress_of_receipts_only_is_not_a_reason() {
        let raw =
            format!("From: a@example.test\nX-Auto-Response-Suppress: DR, NDR, RN, NRN\n{BODY}");
        assert_eq!(reason(&raw), None);
    }

    #[test]
    fn the_most_specific_reason_wins() {
        let raw = format!(
            "Return-Path: <>\nFrom: a@example.test\nPrecedence: bulk\nList-Id: <l.example.test>\nAuto-Submitted: auto-generated\n{BODY}"
        );
        assert_eq!(
            reason(&raw),
            Some(AutoReason::AutoSubmitted("auto-generated".into()))
        );
    }

    #[test]
    fn markers_inside_an_attached_message_do_not_count() {
        let raw = "From: a@example.test\nContent-Type: multipart/mixed; boundary=b\n\n--b\nContent-Type: text/plain\n\nvedi sotto\n--b\nContent-Type: message/rfc822\n\nFrom: bot@example.test\nAuto-Submitted: auto-replied\nPrecedence: bulk\n\nassente\n--b--\n";
        assert_eq!(reason(raw), None);
    }

    #[test]
    fn an_ordinary_message_has_no_reason() {
        let raw = format!("From: a@example.test\nTo: b@example.test\nSubject: ciao\n{BODY}");
        assert_eq!(reason(&raw), None);
    }

    #[test]
    fn an_empty_message_value_does_not_panic() {
        assert_eq!(detect(&Message::default()), None);
    }

    #[test]
    fn describe_is_short_and_names_the_header() {
        assert_eq!(
            AutoReason::AutoSubmitted("auto-replied".into()).describe(),
            "Auto-Submitted: auto-replied"
        );
        assert_eq!(
            AutoReason::NullSender.describe(),
            "null sender (Return-Path: <>)"
        );
        assert_eq!(
            AutoReason::Precedence("bulk".into()).describe(),
            "Precedence: bulk"
        );
        for reason in [
            AutoReason::Dsn,
            AutoReason::XAutoreply,
            AutoReason::ListId,
            AutoReason::AutoResponseSuppress("all".into()),
        ] {
            assert!(reason.describe().len() < 60, "{reason:?}");
        }
    }

    #[test]
    fn keyword_stops_at_comments_parameters_and_gaps() {
        assert_eq!(keyword(" Auto-Replied (vacation)"), "auto-replied");
        assert_eq!(keyword("(c) auto-generated; x=y"), "auto-generated");
        assert_eq!(keyword("bulk junk"), "bulk");
        assert_eq!(keyword("((unbalanced"), "");
        assert_eq!(keyword(&"a".repeat(500)).len(), MAX_KEYWORD_CHARS);
    }
}
