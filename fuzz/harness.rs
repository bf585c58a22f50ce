//! The fuzz harness: one function per target, each feeding untrusted bytes to one of the
//! functions that read what strangers send (mail, subjects, forms) and asserting what must hold
//! for *every* input, beyond "no panic".
//!
//! Shared by the libFuzzer targets (`fuzz/fuzz_targets/*.rs`, nightly, `cargo fuzz run`) and by
//! the stable smoke test (`tests/fuzz_smoke.rs`, part of `cargo test`), both through `#[path]`,
//! so a property added here is checked by both and the library carries no fuzzing code. A
//! failed property panics, which libFuzzer reports as a crash with the input that caused it.
//! See docs/fuzzing.md.

use std::borrow::Cow;

use ticketgate::domain::TicketRef;
use ticketgate::domain::{FiscalCode, FiscalCodeKind};
use ticketgate::mail::command::{parse_staff_reply, Command};
use ticketgate::mail::parse::{self, Attachment, InboundMail, Mailbox};
use ticketgate::mail::{auth, pec, prescan, quote, tag};

/// One target: the property checks run on one input.
pub type Target = fn(&[u8]);

/// Every target, by the name of its `fuzz/fuzz_targets/<name>.rs` and `fuzz/corpus/<name>/`.
pub const TARGETS: &[(&str, Target)] = &[
    ("mime_parse", mime_parse),
    ("mime_prescan", mime_prescan),
    ("pec_classify", pec_classify),
    ("pec_daticert", pec_daticert),
    ("quote_strip", quote_strip),
    ("subject_tag", subject_tag),
    ("staff_command", staff_command),
    ("fiscal_code", fiscal_code),
    ("auth_results", auth_results),
];

/// The configured tag prefix of the example configuration.
const TAG_PREFIX: &str = "Ticket";

/// The authserv-id the `auth_results` target asks about (the corpus uses it).
const AUTHSERV_ID: &str = "mx.comune.test";

/// Longest attachment file name `parse` keeps, in bytes (`MAX_FILENAME_BYTES` in
/// src/mail/parse/attachments.rs).
const MAX_FILENAME_BYTES: usize = 200;

/// The strings the targets that take text work on: what the pipeline would hand them after
/// decoding (invalid UTF-8 replaced).
fn text(data: &[u8]) -> Cow<'_, str> {
    String::from_utf8_lossy(data)
}

// ---------------------------------------------------------------------------------------------
// mime_parse
// ---------------------------------------------------------------------------------------------

/// `mail::parse::parse`: never panics (the nesting pre-scan refuses what would overflow the
/// stack), every field keeps its documented promises, and the same bytes with LF or CRLF line
/// ends give the same addresses, ids and subject.
pub fn mime_parse(data: &[u8]) {
    let Ok(mail) = parse::parse(data) else {
        return;
    };
    check_mail(&mail);

    // Line ends: the same message written with bare LF and with CRLF. Lone CRs are dropped
    // first, so that the two inputs differ only in their line ends.
    let lf: Vec<u8> = data.iter().copied().filter(|b| *b != b'\r').collect();
    let crlf = to_crlf(&lf);
    if let (Ok(a), Ok(b)) = (parse::parse(&lf), parse::parse(&crlf)) {
        assert_eq!(a.from, b.from, "From differs between LF and CRLF");
        assert_eq!(
            a.reply_to, b.reply_to,
            "Reply-To differs between LF and CRLF"
        );
        assert_eq!(a.to, b.to, "To differs between LF and CRLF");
        assert_eq!(a.cc, b.cc, "Cc differs between LF and CRLF");
        assert_eq!(a.message_id, b.message_id, "Message-ID differs");
        assert_eq!(a.in_reply_to, b.in_reply_to, "In-Reply-To differs");
        assert_eq!(a.references, b.references, "References differs");
        assert_eq!(a.subject, b.subject, "Subject differs between LF and CRLF");
    }
}

// ---------------------------------------------------------------------------------------------
// mime_prescan
// ---------------------------------------------------------------------------------------------

/// `mail::prescan::check`, the nesting bound that keeps deep MIME away from the parser: never
/// panics; the first byte picks a number of `message/rfc822` levels wrapped around the rest,
/// and more levels than the bound are always refused, whatever the inner bytes; and wrapping
/// one more level around refused bytes never makes them accepted.
pub fn mime_prescan(data: &[u8]) {
    let verdict = prescan::check(data);
    let Some((&first, inner)) = data.split_first() else {
        return;
    };
    let levels = usize::from(first) % (2 * prescan::MAX_NESTING_LEVELS);
    let mut wrapped = Vec::with_capacity(inner.len() + levels * 32);
    for _ in 0..levels {
        wrapped.extend_from_slice(b"Content-Type: message/rfc822\r\n\r\n");
    }
    wrapped.extend_from_slice(inner);
    let wrapped_verdict = prescan::check(&wrapped);
    if levels > prescan::MAX_NESTING_LEVELS {
        assert!(
            wrapped_verdict.is_err(),
            "{levels} message/rfc822 levels accepted"
        );
    }
    if verdict.is_err() {
        let mut once_more = b"Content-Type: message/rfc822\r\n\r\n".to_vec();
        once_more.extend_from_slice(data);
        assert!(
            prescan::check(&once_more).is_err(),
            "one more level made refused bytes acceptable"
        );
    }
}

/// What [`InboundMail`]'s documentation promises about each field, whatever the input.
fn check_mail(mail: &InboundMail) {
    for id in mail
        .message_id
        .iter()
        .chain(&mail.in_reply_to)
        .chain(&mail.references)
    {
        assert!(!id.is_empty(), "empty message id");
        assert!(
            !id.chars().any(|c| c.is_whitespace() || c.is_control()),
            "message id with whitespace or control characters: {id:?}"
        );
        assert!(
            !id.starts_with('<') && !id.ends_with('>'),
            "id keeps <>: {id:?}"
        );
    }
    for m in mail
        .from
        .iter()
        .chain(&mail.reply_to)
        .chain(&mail.to)
        .chain(&mail.cc)
    {
        check_mailbox(m);
    }
    assert!(
        !mail.subject.chars().any(char::is_control),
        "control character in the subject: {:?}",
        mail.subject
    );
    assert_eq!(mail.subject, mail.subject.trim(), "subject not trimmed");
    for a in &mail.attachments {
        check_attachment(a);
    }
}

fn check_mailbox(m: &Mailbox) {
    assert!(!m.address.is_empty(), "empty address");
    assert!(
        !m.address.chars().any(char::is_control),
        "control character in an address: {:?}",
        m.address
    );
    assert_eq!(m.address, m.address.trim(), "address not trimmed");
    assert_eq!(
        m.address,
        m.address.to_lowercase(),
        "address not lowercased"
    );
    if let Some(name) = &m.name {
        // Display names end up in headers we write: a line break there is header injection.
        assert!(
            !name.contains(['\r', '\n']),
            "line break in a display name: {name:?}"
        );
    }
}

fn check_attachment(a: &Attachment) {
    let name = &a.filename;
    assert!(!name.is_empty(), "empty attachment name");
    assert!(name.len() <= MAX_FILENAME_BYTES, "attachment name too long");
    assert!(
        !name.starts_with('.'),
        "attachment name starts with a dot: {name:?}"
    );
    assert!(
        !name.contains(['/', '\\']),
        "path separator in an attachment name: {name:?}"
    );
    assert!(
        !name.chars().any(|c| c.is_control() || is_bidi_control(c)),
        "control or bidi character in an attachment name: {name:?}"
    );
    let ct = &a.content_type;
    let (kind, subtype) = ct
        .split_once('/')
        .unwrap_or_else(|| panic!("media type {ct:?}"));
    let is_name = |s: &str| {
        !s.is_empty()
            && s.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"!#$&-^_.+".contains(&b))
    };
    assert!(is_name(kind) && is_name(subtype), "media type {ct:?}");
}

/// The Unicode bidirectional formatting characters (a name like `fattura\u{202e}gpj.exe`).
fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

fn to_crlf(lf: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(lf.len() + lf.len() / 16);
    for &b in lf {
        if b == b'\n' {
            out.push(b'\r');
        }
        out.push(b);
    }
    out
}

// ---------------------------------------------------------------------------------------------
// PEC
// ---------------------------------------------------------------------------------------------

/// `mail::pec::classify`: never panics; `None` exactly when the top-level header has no PEC
/// field; an anomaly has no daticert and the others always have one; the message it carries is
/// what the pipeline parses next, so it goes through `parse` too.
pub fn pec_classify(data: &[u8]) {
    let Some(pm) = pec::classify(data) else {
        return;
    };
    match pm.class {
        pec::PecClass::Anomaly => assert!(pm.daticert.is_none(), "anomaly with a daticert"),
        pec::PecClass::Transport | pec::PecClass::Receipt(_) => {
            assert!(pm.daticert.is_some(), "{:?} without a daticert", pm.class)
        }
    }
    for id in pm
        .envelope_message_id
        .iter()
        .chain(&pm.riferimento_message_id)
    {
        check_stripped_id(id);
    }
    if let Some(d) = &pm.daticert {
        check_daticert(d);
    }
    if let Some(inner) = &pm.inner {
        if let Ok(mail) = parse::parse(inner) {
            check_mail(&mail);
        }
    }
}

/// `mail::pec::read_daticert` on raw XML: never panics, never expands an entity it was not
/// given, and every text it returns is trimmed.
pub fn pec_daticert(data: &[u8]) {
    let (d, _problem) = pec::read_daticert(data);
    check_daticert(&d);
}

fn check_daticert(d: &pec::Daticert) {
    let texts = [
        &d.tipo,
        &d.errore,
        &d.mittente,
        &d.risposte,
        &d.oggetto,
        &d.gestore_emittente,
        &d.identificativo,
        &d.consegna,
        &d.errore_esteso,
        &d.ricevuta,
    ];
    for t in texts.into_iter().flatten() {
        assert_eq!(t, t.trim(), "daticert text not trimmed");
    }
    if let Some(id) = &d.msgid {
        check_stripped_id(id);
    }
    for dest in &d.destinatari {
        assert!(!dest.address.is_empty(), "empty destinatario");
        assert_eq!(
            dest.address,
            dest.address.trim(),
            "destinatario not trimmed"
        );
    }
    if let Some(t) = &d.data {
        if let Some(millis) = t.millis {
            // A calendar date of years 0000–9999 (time's default range) give or take a day of
            // zone offset, whatever the text.
            const DAY_MILLIS: i64 = 86_400_000;
            assert!(
                (-62_167_219_200_000 - DAY_MILLIS..=253_402_300_800_000 + DAY_MILLIS)
                    .contains(&millis),
                "certified time out of range: {millis}"
            );
        }
    }
}

/// `strip_id`'s promise: no `<>`, no whitespace, and stripping again changes nothing.
fn check_stripped_id(id: &str) {
    assert!(!id.is_empty(), "empty id");
    assert!(
        !id.chars()
            .any(|c| c.is_whitespace() || c == '<' || c == '>'),
        "id keeps <> or whitespace: {id:?}"
    );
    assert_eq!(pec::strip_id(id), id, "strip_id is not idempotent");
}

// ---------------------------------------------------------------------------------------------
// Quote stripping, subject tag, staff commands
// ---------------------------------------------------------------------------------------------

/// `mail::quote::strip_reply`: it only ever removes. The result is never longer than the text
/// it was given, and every line of it is a line of that text (a removed quote leaves one blank
/// line, which is also "a line of the text" only in spirit: blank lines are skipped here).
pub fn quote_strip(data: &[u8]) {
    let text = text(data);
    let stripped = quote::strip_reply(&text);
    assert!(
        stripped.len() <= text.len(),
        "stripping added text: {} > {} bytes",
        stripped.len(),
        text.len()
    );
    let normalized = text.replace("\r\n", "\n").replace('\r', "\n");
    let lines: std::collections::HashSet<&str> = normalized.split('\n').map(str::trim).collect();
    for line in stripped
        .split('\n')
        .map(str::trim)
        .filter(|l| !l.is_empty())
    {
        assert!(
            lines.contains(line),
            "a line that was not in the text: {line:?}"
        );
    }
}

/// `mail::tag::find_ticket_ref` and `clean_subject`: a reference found round-trips through
/// `TicketRef`'s `Display` and `FromStr`, is written in the subject as found, and is found
/// again in the tag we write and in the cleaned subject; cleaning is idempotent.
pub fn subject_tag(data: &[u8]) {
    let subject = text(data);
    let found = tag::find_ticket_ref(&subject, TAG_PREFIX);
    if let Some(reference) = found {
        let shown = reference.to_string();
        assert_eq!(shown.parse::<TicketRef>(), Ok(reference), "Display/FromStr");
        assert!(
            subject.contains(&shown),
            "{shown} is not written in {subject:?}"
        );
        let ours = format!("Re: [{TAG_PREFIX} #{reference}] x");
        assert_eq!(tag::find_ticket_ref(&ours, TAG_PREFIX), Some(reference));
    }
    let cleaned = tag::clean_subject(&subject);
    assert_eq!(
        tag::clean_subject(&cleaned),
        cleaned,
        "cleaning is not idempotent"
    );
    assert_eq!(
        tag::find_ticket_ref(&cleaned, TAG_PREFIX),
        found,
        "cleaning the subject changed its tag"
    );
}

/// `mail::command::parse_staff_reply`: commands come only from lines that start with `#`, the
/// body starts with the first line that is not one, and nothing is invented.
pub fn staff_command(data: &[u8]) {
    let text = text(data);
    let reply = parse_staff_reply(&text);
    let command_lines = text.lines().filter(|l| l.trim().starts_with('#')).count();
    assert!(
        reply.commands.len() <= command_lines,
        "more commands than # lines"
    );
    assert!(reply.body.len() <= text.len(), "body longer than the text");
    assert_eq!(reply.body, reply.body.trim(), "body not trimmed");
    if let Some(first) = reply.body.lines().next() {
        let t = first.trim();
        let is_command = t
            .strip_prefix('#')
            .and_then(|r| r.chars().next())
            .is_some_and(char::is_alphabetic);
        assert!(!is_command, "body starts with a command line: {t:?}");
    }
    for c in &reply.commands {
        match c {
            Command::Assign(a) | Command::Kind(a) => {
                assert!(!a.is_empty(), "empty argument");
                assert!(!a.contains('\n'), "argument spans lines");
            }
            Command::Note(a) | Command::Close(a) => {
                assert!(!a.contains('\n'), "inline text spans lines")
            }
            Command::Unknown(line) => assert!(line.starts_with('#'), "unknown {line:?}"),
            Command::Take | Command::AnswerAtReplyTo | Command::Send => {}
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Codice fiscale, Authentication-Results
// ---------------------------------------------------------------------------------------------

/// `domain::FiscalCode::parse`: what it accepts is 16 or 11 uppercase ASCII letters and digits,
/// parses again to itself (also lowercased and spaced out, as a citizen types it), and its
/// masked form has the same length and shows at most four characters.
pub fn fiscal_code(data: &[u8]) {
    let input = text(data);
    let Ok(code) = FiscalCode::parse(&input) else {
        return;
    };
    let s = code.as_str();
    assert!(
        s.bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit()),
        "not uppercase alphanumeric: {s:?}"
    );
    match code.kind() {
        FiscalCodeKind::Person => assert_eq!(s.len(), 16),
        FiscalCodeKind::Numeric => {
            assert_eq!(s.len(), 11);
            assert!(s.bytes().all(|b| b.is_ascii_digit()));
        }
    }
    assert_eq!(
        FiscalCode::parse(s).as_ref(),
        Ok(&code),
        "does not round-trip"
    );
    let typed: String = s
        .to_ascii_lowercase()
        .chars()
        .flat_map(|c| [c, ' '])
        .collect();
    assert_eq!(
        FiscalCode::parse(&typed).as_ref(),
        Ok(&code),
        "typed form differs"
    );
    let masked = code.masked();
    assert_eq!(masked.len(), s.len(), "masked length");
    assert!(
        masked.chars().filter(|c| *c != '*').count() <= 4,
        "masked shows too much"
    );
}

/// `mail::auth::failed_authentication`: never panics, and a failure it reports is one of the
/// method=result pairs it looks for.
pub fn auth_results(data: &[u8]) {
    if let Some(failure) = auth::failed_authentication(data, AUTHSERV_ID) {
        let (method, result) = failure
            .split_once('=')
            .unwrap_or_else(|| panic!("failure {failure:?}"));
        assert!(["dmarc", "dkim", "spf"].contains(&method), "{failure:?}");
        assert!(
            ["fail", "softfail", "permerror"].contains(&result),
            "{failure:?}"
        );
    }
}
