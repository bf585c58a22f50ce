//! Quote and signature stripping: from the text of a reply, keeps only what its author newly
//! wrote, so that an office's answer reaches the citizen without the notification it quotes
//! (docs/design-notes.md, "Who speaks for the office": quoted text and signatures are stripped
//! from what is forwarded; the raw is kept).
//!
//! It owns the heuristics for what real mail clients put around a reply: `>` quotes and the
//! attribution line above them ("Il giorno … ha scritto:", "On … wrote:"), Outlook's
//! "-----Messaggio originale-----" and "Da:/Inviato:/A:/Oggetto:" header blocks, `-- `
//! signatures and the "Inviato da iPhone" lines of mobile clients.
//!
//! Pure and total: no I/O, no input makes it panic, and it works in linear time. It reads the
//! plain text of [`InboundMail::text`](super::parse::InboundMail::text), where HTML-only mail is
//! already converted (and so has lost the `>` of its quoted blocks: see [`strip_reply`]). It is
//! a heuristic, so it errs towards keeping text: when nothing would be left, the whole text is
//! returned. It does not decide who is speaking nor read commands (`#presa`…): the caller does,
//! on the result. The raw message stays the record of what was really sent.

use std::borrow::Cow;

/// Longest attribution line ("On … wrote:") recognised, in bytes, after joining its wrapped
/// pieces. Real ones are a date, a name and an address: well under this.
const MAX_ATTRIBUTION_BYTES: usize = 300;

/// Lines an attribution may be wrapped over. Gmail breaks its plain-text attribution at about 78
/// columns, sometimes inside the `<address>` and sometimes again before "wrote:".
const MAX_ATTRIBUTION_LINES: usize = 3;

/// How many lines below "Da:"/"From:" the rest of an Outlook header block is looked for. Outlook
/// writes From, Sent, To, Cc, Subject (and sometimes Importance) on consecutive lines; long
/// recipient lists may wrap.
const HEADER_BLOCK_LINES: usize = 8;

/// Longest line taken for a mobile client's signature ("Inviato dal mio dispositivo Android").
const MAX_DEVICE_SIGNATURE_CHARS: usize = 60;

/// Shortest run of `_` or `-` taken for the rule Outlook draws above its header block.
const MIN_RULE_CHARS: usize = 8;

/// What the author of `text` newly wrote: without `>` quoted lines, without the attribution line
/// above a quote, without everything from an Outlook "original message" marker or header block
/// on, and without a signature; blank lines at the start and end removed, trailing whitespace of
/// each line removed, and the place of each removed quote inside the text shown as one blank
/// line. Text below or between quotes (bottom-posting, interleaved answers) is kept.
///
/// An attribution line that is *not* followed by `>` lines ends the new text when it looks like
/// one a client wrote (it starts like "Il …"/"On …" and names a time or an address): that is what
/// HTML-only replies look like once converted to text, the quoted original following without
/// `>` marks.
///
/// If nothing but whitespace would be left, returns the whole `text`, trimmed: an answer that
/// was wrongly taken for a quote must still reach the citizen.
pub fn strip_reply(text: &str) -> String {
    let text = normalize_newlines(text);
    let lines: Vec<&str> = text.split('\n').collect();
    let stripped = strip_lines(&lines);
    if stripped.trim().is_empty() {
        text.trim().to_owned()
    } else {
        stripped
    }
}

/// [`strip_reply`] over lines already split at `\n`, without its fallback: an empty result
/// means nothing new was written. For [`super::own_text`], which has found our own text below
/// `lines` and must not send the quote back when nothing else is left.
pub(super) fn strip_lines(lines: &[&str]) -> String {
    let end = original_message_start(lines);
    let body = lines.get(..end).unwrap_or(lines);
    let mut kept = without_quotes(body);
    truncate_at_signature(&mut kept);
    render(&kept)
}

/// The first line of a client's attribution ("On … wrote:") ending at line `end`, if one does.
pub(super) fn attribution_start(lines: &[&str], end: usize) -> Option<usize> {
    attribution_ending_at(lines, end).map(|a| a.start)
}

/// The text parser already gives `\n`, but this is public and cheap to make total.
fn normalize_newlines(text: &str) -> Cow<'_, str> {
    if text.contains('\r') {
        Cow::Owned(text.replace("\r\n", "\n").replace('\r', "\n"))
    } else {
        Cow::Borrowed(text)
    }
}

// ---------------------------------------------------------------------------------------------
// Where the quoted original starts (everything below is dropped)
// ---------------------------------------------------------------------------------------------

/// Index of the first line of the quoted original that runs to the end of the text, or
/// `lines.len()` when there is none. Only unquoted lines can start it: a marker inside a `>`
/// quote is part of that quote.
fn original_message_start(lines: &[&str]) -> usize {
    for (i, line) in lines.iter().enumerate() {
        if is_quoted(line) {
            continue;
        }
        if is_original_message_separator(line) {
            return i;
        }
        if starts_header_block(lines, i) {
            return rule_above(lines, i).unwrap_or(i);
        }
        if let Some(attribution) = attribution_ending_at(lines, i) {
            if !is_followed_by_quote(lines, i) && attribution.names_time_or_address {
                return attribution.start;
            }
        }
    }
    lines.len()
}

/// Outlook in plain-text mode (and Outlook Express, Windows Mail, older Thunderbird) writes
/// "-----Messaggio originale-----" / "-----Original Message-----" above the header block.
fn is_original_message_separator(line: &str) -> bool {
    let line = line.trim();
    if !(line.starts_with("--") && line.ends_with("--")) {
        return false;
    }
    let inner = line.trim_matches('-').trim().to_lowercase();
    matches!(inner.as_str(), "messaggio originale" | "original message")
}

/// The fields of the header block Outlook writes above the original when replying in HTML.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum HeaderField {
    From,
    Sent,
    To,
    Cc,
    Subject,
}

/// The Outlook header field a line starts with, in Italian or English. Bold field names come
/// out as `*Da:*` when another client or converter turned Outlook's `<b>Da:</b>` into text.
fn header_field(line: &str) -> Option<HeaderField> {
    let line = line.trim_start().trim_start_matches(['*', '_']);
    let (name, _) = line.split_once(':')?;
    // "Da" and "A" are short words: a field name is only the name, nothing else before the colon.
    let name = name.trim_end_matches(['*', '_']).trim_end();
    if name.len() > "inviato".len() {
        return None;
    }
    match name.to_lowercase().as_str() {
        "da" | "from" => Some(HeaderField::From),
        // Outlook for Windows writes "Inviato:"/"Sent:", Outlook for Mac "Data:"/"Date:".
        "inviato" | "sent" | "data" | "date" => Some(HeaderField::Sent),
        "a" | "to" => Some(HeaderField::To),
        "cc" | "ccn" | "bcc" => Some(HeaderField::Cc),
        "oggetto" | "subject" => Some(HeaderField::Subject),
        _ => None,
    }
}

/// A "Da:"/"From:" line followed closely by at least two of the date, recipient and subject
/// fields. One field alone is not enough: a person may well start a line with "Da lunedì:" or
/// "A: …", and the gateway's own notification has "Da:" and "Oggetto:" lines.
fn starts_header_block(lines: &[&str], i: usize) -> bool {
    if lines.get(i).and_then(|l| header_field(l)) != Some(HeaderField::From) {
        return false;
    }
    let following = lines.iter().skip(i + 1).take(HEADER_BLOCK_LINES);
    let fields: Vec<HeaderField> = following.filter_map(|l| header_field(l)).collect();
    let seen = |field| fields.contains(&field);
    [HeaderField::Sent, HeaderField::To, HeaderField::Subject]
        .into_iter()
        .filter(|f| seen(*f))
        .count()
        >= 2
}

/// The `________________________________` rule that new Outlook and Outlook on the web put
/// above the header block (classic Outlook's HTML border converts to nothing), if the nearest
/// non-blank line above line `i` is one.
fn rule_above(lines: &[&str], i: usize) -> Option<usize> {
    let above = lines.get(..i)?;
    let (index, line) = above
        .iter()
        .enumerate()
        .rev()
        .find(|(_, l)| !l.trim().is_empty())?;
    is_rule(line).then_some(index)
}

fn is_rule(line: &str) -> bool {
    let line = line.trim();
    line.chars().count() >= MIN_RULE_CHARS
        && (line.chars().all(|c| c == '_') || line.chars().all(|c| c == '-'))
}

// ---------------------------------------------------------------------------------------------
// Attribution lines
// ---------------------------------------------------------------------------------------------

/// An attribution ("Il 26/11/2026 10:00, Mario Rossi ha scritto:") found over lines
/// `start..=end`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Attribution {
    start: usize,
    /// Starts like a client's attribution and names a time ("10:00") or an address: strong
    /// enough to cut the text there even without `>` quotes below.
    names_time_or_address: bool,
}

/// How clients end the attribution: Gmail, Apple Mail and Thunderbird in Italian and English.
const ATTRIBUTION_ENDINGS: &[&str] = &[" ha scritto:", " wrote:", " scrisse:"];

/// How clients begin it: "Il giorno …" (Gmail, Apple Mail), "Il 26/11/2026 …" (Thunderbird),
/// "In data …" (some webmails), "On …" (English).
const ATTRIBUTION_OPENINGS: &[&str] = &["il ", "in data ", "on "];

/// The attribution whose last line is line `end`, wrapped over up to
/// [`MAX_ATTRIBUTION_LINES`]. A wrapped one is only recognised from a line that starts like an
/// attribution, so that a sentence above it is not swallowed.
fn attribution_ending_at(lines: &[&str], end: usize) -> Option<Attribution> {
    let last = lines.get(end)?;
    // Cheap filter first: almost no line ends with a colon.
    if !last.trim_end().ends_with(':') {
        return None;
    }
    let first_candidate = end.saturating_sub(MAX_ATTRIBUTION_LINES - 1);
    for start in first_candidate..=end {
        let Some(span) = lines.get(start..=end) else {
            continue;
        };
        if span.iter().any(|l| l.trim().is_empty() || is_quoted(l)) {
            continue;
        }
        let joined = span.iter().map(|l| l.trim()).collect::<Vec<_>>().join(" ");
        if joined.len() > MAX_ATTRIBUTION_BYTES {
            continue;
        }
        let lower = joined.to_lowercase();
        if !ATTRIBUTION_ENDINGS.iter().any(|e| lower.ends_with(e)) {
            continue;
        }
        let opens = ATTRIBUTION_OPENINGS.iter().any(|o| lower.starts_with(o));
        if opens || start == end {
            return Some(Attribution {
                start,
                names_time_or_address: opens && (lower.contains('@') || has_clock_time(&lower)),
            });
        }
    }
    None
}

/// Contains a time of day such as `10:00` or `9.05`.
fn has_clock_time(text: &str) -> bool {
    let bytes = text.as_bytes();
    bytes.windows(4).any(|w| match w {
        [h, sep, m1, m2] => {
            h.is_ascii_digit()
                && matches!(sep, b':' | b'.')
                && m1.is_ascii_digit()
                && m2.is_ascii_digit()
        }
        _ => false,
    })
}

/// The next non-blank line after line `i` is a `>` quote.
fn is_followed_by_quote(lines: &[&str], i: usize) -> bool {
    lines
        .iter()
        .skip(i + 1)
        .find(|l| !l.trim().is_empty())
        .is_some_and(|l| is_quoted(l))
}

// ---------------------------------------------------------------------------------------------
// Quotes inside the new text
// ---------------------------------------------------------------------------------------------

/// A line of the result, or the place where a quote was removed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kept<'a> {
    Text(&'a str),
    Removed,
}

/// RFC 3676 §4.5 and every client since: quoted lines start with `>`. Leading spaces are allowed
/// because some converters indent quotes.
fn is_quoted(line: &str) -> bool {
    line.trim_start().starts_with('>')
}

/// The lines without `>` quotes and without the attribution line above each quote. Consecutive
/// removed lines become one [`Kept::Removed`].
fn without_quotes<'a>(lines: &[&'a str]) -> Vec<Kept<'a>> {
    let mut removed = vec![false; lines.len()];
    for (i, line) in lines.iter().enumerate() {
        if is_quoted(line) {
            if let Some(flag) = removed.get_mut(i) {
                *flag = true;
            }
        } else if let Some(attribution) = attribution_ending_at(lines, i) {
            if is_followed_by_quote(lines, i) {
                for flag in removed.iter_mut().take(i + 1).skip(attribution.start) {
                    *flag = true;
                }
            }
        }
    }
    let mut kept = Vec::with_capacity(lines.len());
    for (line, removed) in lines.iter().zip(removed) {
        if !removed {
            kept.push(Kept::Text(line));
        } else if kept.last() != Some(&Kept::Removed) {
            kept.push(Kept::Removed);
        }
    }
    kept
}

// ---------------------------------------------------------------------------------------------
// Signatures
// ---------------------------------------------------------------------------------------------

/// Drops everything from the first signature on. Done after quotes are removed, because
/// Thunderbird puts the signature below the quote when the reply is written above it.
fn truncate_at_signature(kept: &mut Vec<Kept<'_>>) {
    let start = (0..kept.len()).find(|&i| is_signature_start(kept, i));
    if let Some(start) = start {
        kept.truncate(start);
    }
}

fn is_signature_start(kept: &[Kept<'_>], i: usize) -> bool {
    let Some(Kept::Text(line)) = kept.get(i) else {
        return false;
    };
    let is_blank_or_edge = |k: Option<&Kept<'_>>| match k {
        None | Some(Kept::Removed) => true,
        Some(Kept::Text(l)) => l.trim().is_empty(),
    };
    let next_is_text = matches!(kept.get(i + 1), Some(Kept::Text(l)) if !l.trim().is_empty());
    match *line {
        // RFC 3676 §4.3. Quoted-printable `-- =20` decodes to two spaces.
        "-- " | "--  " => true,
        // The same delimiter after a converter trimmed its space (HTML-only mail: Thunderbird's
        // `<div class="moz-signature">-- <br>`), or after `=2D-`: only when a signature follows.
        "--" => next_is_text,
        _ => {
            let before = i.checked_sub(1).and_then(|b| kept.get(b));
            is_device_signature(line)
                && is_blank_or_edge(before)
                && is_blank_or_edge(kept.get(i + 1))
        }
    }
}

/// "Inviato da iPhone", "Sent from my Android", "Inviato dal mio dispositivo Android", "Get
/// Outlook for iOS": a short line of its own that names a device or a mail app. The device word
/// is required so that "Inviato da noi il sopralluogo." stays.
fn is_device_signature(line: &str) -> bool {
    const OPENINGS: &[&str] = &[
        "inviato da ",
        "inviato dal ",
        "inviato dalla ",
        "inviato con ",
        "sent from ",
        "sent with ",
        "sent via ",
        "get outlook for ",
        "scarica outlook per ",
        "ottieni outlook per ",
    ];
    const DEVICES: &[&str] = &[
        "iphone",
        "ipad",
        "android",
        "dispositivo",
        "device",
        "smartphone",
        "cellulare",
        "mobile",
        "galaxy",
        "samsung",
        "huawei",
        "xiaomi",
        "blackberry",
        "outlook",
        "mail",
        "posta",
    ];
    let line = line.trim();
    if line.chars().count() > MAX_DEVICE_SIGNATURE_CHARS {
        return false;
    }
    let lower = line.to_lowercase();
    OPENINGS.iter().any(|o| lower.starts_with(o)) && DEVICES.iter().any(|d| lower.contains(d))
}

// ---------------------------------------------------------------------------------------------
// Output
// ---------------------------------------------------------------------------------------------

/// Joins the kept lines: no blank lines at the start or end, trailing whitespace of each line
/// dropped (format=flowed soft breaks mean nothing once forwarded), the author's own blank lines
/// kept, and one blank line where a quote was removed, so that two interleaved answers do not
/// run into one paragraph.
fn render(kept: &[Kept<'_>]) -> String {
    let mut out = String::new();
    let mut blank_lines = 0usize;
    let mut removed_here = false;
    for item in kept {
        match item {
            Kept::Removed => removed_here = true,
            Kept::Text(line) if line.trim().is_empty() => blank_lines += 1,
            Kept::Text(line) => {
                if !out.is_empty() {
                    let gap = if removed_here { 1 } else { blank_lines };
                    for _ in 0..=gap {
                        out.push('\n');
                    }
                }
                out.push_str(line.trim_end());
                blank_lines = 0;
                removed_here = false;
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mail::parse::parse;
    use crate::mail::tag::find_ticket_ref;
    use proptest::prelude::*;

    // --- fixtures: replies built the way real clients build them ---------------------------

    macro_rules! reply {
        ($name:literal) => {
            (
                $name,
                include_bytes!(concat!("../../tests/fixtures/replies/", $name, ".eml")).as_slice(),
            )
        };
    }

    /// Every reply fixture with the new text its author wrote. Each answers the notification
    /// `[Ticket #2026-000123] Buca in via Roma` and quotes its text ("Nuova pratica …").
    const REPLIES: &[((&str, &[u8]), &str)] = &[
        (
            reply!("outlook-it-plain"),
            // Outlook signatures have no delimiter: they stay (see the module's limits).
            "Buongiorno, abbiamo inviato una squadra.\nCordiali saluti\n\nGiuseppe Verdi\nUfficio Lavori Pubblici",
        ),
        (
            reply!("outlook-en-alternative"),
            "Buongiorno, abbiamo inviato una squadra stamattina.\nLa buca sarà chiusa entro venerdì.\n\nCordiali saluti\nSara Conti",
        ),
        (
            reply!("outlook-it-html-only"),
            "Buongiorno, abbiamo inviato una squadra.\nCordiali saluti",
        ),
        (
            reply!("gmail-it"),
            "Buongiorno, abbiamo inviato una squadra.\nCordiali saluti",
        ),
        (
            reply!("gmail-en"),
            "Buongiorno,\nabbiamo inviato una squadra: la buca sarà chiusa oggi pomeriggio.",
        ),
        (
            reply!("apple-mail-it"),
            "Buongiorno, abbiamo inviato una squadra.\nCordiali saluti\nLucia Ferri",
        ),
        (
            reply!("thunderbird-it-top-posting"),
            "#presa\nBuongiorno, abbiamo inviato una squadra.\nCordiali saluti",
        ),
        (
            reply!("thunderbird-en-bottom-posting"),
            "Buongiorno, abbiamo inviato una squadra.\n\nCordiali saluti",
        ),
        (
            reply!("iphone-it"),
            "Buongiorno, abbiamo inviato una squadra.\nCordiali saluti",
        ),
        (
            reply!("thunderbird-it-html-inline-image"),
            // The paragraph that held the image is the blank line; the image is an attachment.
            "Buongiorno, la buca è stata chiusa. Ecco la foto:\n\nCordiali saluti",
        ),
    ];

    fn to_crlf(bytes: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(bytes.len() + bytes.len() / 20);
        for &b in bytes {
            if b == b'\n' {
                out.push(b'\r');
            }
            out.push(b);
        }
        out
    }

    fn assert_only_new_text(name: &str, stripped: &str) {
        for line in stripped.lines() {
            assert!(
                !line.trim_start().starts_with('>'),
                "{name}: quoted line {line:?}"
            );
        }
        for marker in [
            "ha scritto",
            "wrote:",
            "Messaggio originale",
            "Nuova pratica",
        ] {
            assert!(
                !stripped.contains(marker),
                "{name}: {marker:?} left in {stripped:?}"
            );
        }
    }

    #[test]
    fn each_client_reply_keeps_exactly_what_its_author_wrote() {
        for ((name, raw), expected) in REPLIES {
            let mail = parse(raw).unwrap_or_else(|e| panic!("{name}: {e}"));
            let stripped = strip_reply(&mail.text);
            assert_eq!(stripped, *expected, "{name}, from text {:?}", mail.text);
            assert_only_new_text(name, &stripped);
        }
    }

    #[test]
    fn each_client_reply_gives_the_same_text_with_crlf_line_ends() {
        for ((name, raw), expected) in REPLIES {
            let mail = parse(&to_crlf(raw)).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(strip_reply(&mail.text), *expected, "{name} (CRLF)");
        }
    }

    #[test]
    fn each_client_reply_subject_carries_the_ticket_reference() {
        let expected = "2026-000123".parse().ok();
        for ((name, raw), _) in REPLIES {
            let mail = parse(raw).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(
                find_ticket_ref(&mail.subject, "Ticket"),
                expected,
                "{name}: {:?}",
                mail.subject
            );
        }
    }

    #[test]
    fn the_inline_image_of_an_html_reply_is_an_attachment_not_text() {
        let raw =
            include_bytes!("../../tests/fixtures/replies/thunderbird-it-html-inline-image.eml");
        let mail = parse(raw).unwrap_or_else(|e| panic!("{e}"));
        let images: Vec<&str> = mail
            .attachments
            .iter()
            .map(|a| a.content_type.as_str())
            .collect();
        assert_eq!(images, ["image/png"]);
    }

    // --- Outlook -----------------------------------------------------------------------------

    #[test]
    fn outlook_original_message_separator_ends_the_new_text_in_italian_and_english() {
        for separator in [
            "-----Messaggio originale-----",
            "-----Original Message-----",
        ] {
            let text = format!(
                "Risposta.\n\n{separator}\nDa: Ufficio <u@comune.test>\nInviato: giovedì\n\nNuova pratica"
            );
            assert_eq!(strip_reply(&text), "Risposta.", "{separator}");
        }
    }

    #[test]
    fn outlook_header_block_ends_the_new_text_in_italian_and_english() {
        let italian = "Risposta.\n\nDa: Ufficio <u@comune.test>\nInviato: giovedì 26 novembre 2026 10:00\nA: Mario <m@comune.test>\nCc: Anna <a@comune.test>\nOggetto: [Ticket #2026-000123] Buca\n\nNuova pratica";
        let english = "Risposta.\n\nFrom: Ufficio <u@comune.test>\nSent: Thursday, November 26, 2026 10:00 AM\nTo: Mario <m@comune.test>\nSubject: [Ticket #2026-000123] Buca\n\nNuova pratica";
        let mac = "Risposta.\n\nDa: Ufficio <u@comune.test>\nData: giovedì, 26 novembre 2026 10:00\nA: Mario <m@comune.test>\nOggetto: Buca\n\nNuova pratica";
        for text in [italian, english, mac] {
            assert_eq!(strip_reply(text), "Risposta.", "{text}");
        }
    }

    #[test]
    fn outlook_header_block_with_bold_markers_from_html_conversion_is_recognised() {
        let text = "Risposta.\n\n*Da:* Ufficio <u@comune.test>\n*Inviato:* giovedì 26 novembre 2026 10:00\n*A:* Mario <m@comune.test>\n*Cc:* Anna\n*Oggetto:* Buca\n\nNuova pratica";
        assert_eq!(strip_reply(text), "Risposta.");
        let english = "Risposta.\n*From:* Ufficio\n*Sent:* Thursday\n*To:* Mario\n*Subject:* Buca\nNuova pratica";
        assert_eq!(strip_reply(english), "Risposta.");
    }

    #[test]
    fn the_underscore_rule_above_the_outlook_header_block_goes_with_it() {
        let text = "Risposta.\n________________________________\nFrom: Ufficio\nSent: Thursday\nTo: Mario\nSubject: Buca\n\nNuova pratica";
        assert_eq!(strip_reply(text), "Risposta.");
    }

    #[test]
    fn a_line_starting_with_da_or_a_in_the_answer_is_not_a_header_block() {
        let text = "Da: lunedì la strada sarà chiusa.\nA: chi chiedesse, rispondete così.\nGrazie";
        assert_eq!(strip_reply(text), text);
    }

    #[test]
    fn an_underscore_rule_alone_is_kept() {
        let text = "Prima parte\n__________\nSeconda parte";
        assert_eq!(strip_reply(text), text);
    }

    // --- attribution lines -------------------------------------------------------------------

    #[test]
    fn attribution_lines_of_gmail_apple_mail_and_thunderbird_go_with_their_quote() {
        for attribution in [
            "Il giorno gio 26 nov 2026 alle ore 10:00 Mario Rossi <m@x.test> ha scritto:",
            "Il giorno 26 nov 2026, alle ore 10:00, Mario <m@x.test> ha scritto:",
            "On Thu, Nov 26, 2026 at 10:00 AM Mario <m@x.test> wrote:",
            "Il 26/11/2026 10:00, Mario Rossi ha scritto:",
            "On 26/11/2026 10:00, Mario Rossi wrote:",
            "Mario Rossi ha scritto:",
        ] {
            let text = format!("Risposta.\n\n{attribution}\n> Nuova pratica\n> testo");
            assert_eq!(strip_reply(&text), "Risposta.", "{attribution}");
        }
    }

    #[test]
    fn attribution_wrapped_over_two_or_three_lines_is_removed_whole() {
        for attribution in [
            "Il giorno gio 26 nov 2026 alle ore 10:00 Mario Rossi <m@x.test>\nha scritto:",
            "Il giorno gio 26 nov 2026 alle ore 10:00 Comune di Esempio - Lavori Pubblici <\nlavori-pubblici@comune.test> ha scritto:",
            "On Thu, Nov 26, 2026 at 10:00 AM Comune di Esempio - Lavori Pubblici <\nlavori-pubblici@comune.test>\nwrote:",
            "Il giorno 26 nov 2026, alle ore 10:00,\nMario Rossi <m@x.test>\nha scritto:",
        ] {
            let text = format!("Risposta.\nSaluti\n\n{attribution}\n\n> Nuova pratica");
            assert_eq!(strip_reply(&text), "Risposta.\nSaluti", "{attribution}");
        }
    }

    #[test]
    fn a_wrapped_attribution_does_not_swallow_the_sentence_above_it() {
        let text = "La squadra è partita.\nMario Rossi <m@x.test> ha scritto:\n> Nuova pratica";
        assert_eq!(strip_reply(text), "La squadra è partita.");
    }

    #[test]
    fn an_attribution_without_quote_marks_ends_the_new_text_as_in_html_only_replies() {
        // Gmail's HTML converted to text: the blockquote has lost its `>` marks.
        let text = "Risposta.\nIl giorno gio 26 nov 2026 alle ore 10:00 Ufficio <u@comune.test> ha scritto:\nNuova pratica 2026-000123\nDa: Mario";
        assert_eq!(strip_reply(text), "Risposta.");
        let english =
            "Risposta.\n\nOn Thu, Nov 26, 2026 at 10:00 AM Ufficio wrote:\n\nNuova pratica";
        assert_eq!(strip_reply(english), "Risposta.");
    }

    #[test]
    fn a_sentence_ending_in_ha_scritto_without_quote_is_kept() {
        let text = "Il cittadino del civico 12 ha scritto:\nla buca è di nuovo aperta.";
        assert_eq!(strip_reply(text), text);
    }

    #[test]
    fn apple_mail_quoted_attribution_is_removed_with_the_quote() {
        let text = "Risposta.\n\n> Il giorno 26 nov 2026, alle ore 10:00, Ufficio <u@comune.test> ha scritto:\n> \n> Nuova pratica";
        assert_eq!(strip_reply(text), "Risposta.");
    }

    // --- top-posting, bottom-posting, interleaving ----------------------------------------

    #[test]
    fn a_bottom_posted_answer_below_the_quote_is_kept() {
        let text = "On 26/11/2026 10:00, Ufficio wrote:\n> Nuova pratica\n> testo\n\nLa squadra è partita.\nSaluti";
        assert_eq!(strip_reply(text), "La squadra è partita.\nSaluti");
    }

    #[test]
    fn interleaved_answers_keep_the_authors_lines_and_drop_the_quoted_ones() {
        let text = "Il 26/11/2026 10:00, Ufficio ha scritto:\n> Dov'è la buca?\nDavanti al civico 12.\n> Quando?\n\nIeri sera.\n\n> Altro?";
        assert_eq!(strip_reply(text), "Davanti al civico 12.\n\nIeri sera.");
    }

    #[test]
    fn the_authors_own_blank_lines_are_kept() {
        let text = "Primo paragrafo.\n\n\nSecondo paragrafo.\n\n> quote";
        assert_eq!(
            strip_reply(text),
            "Primo paragrafo.\n\n\nSecondo paragrafo."
        );
    }

    #[test]
    fn indented_quote_marks_are_quotes_too() {
        assert_eq!(strip_reply("Risposta.\n  > quoted\n >> more"), "Risposta.");
    }

    #[test]
    fn commands_at_the_top_survive_stripping() {
        let text = "#assegna ambiente\n#nota controllare domani\n\nOn 26/11/2026 10:00, Ufficio wrote:\n> Nuova pratica";
        assert_eq!(
            strip_reply(text),
            "#assegna ambiente\n#nota controllare domani"
        );
    }

    // --- signatures ----------------------------------------------------------------------------

    #[test]
    fn a_dash_dash_space_signature_is_removed() {
        assert_eq!(strip_reply("Risposta.\n-- \nMario\nUfficio"), "Risposta.");
        // Quoted-printable `-- =20`.
        assert_eq!(strip_reply("Risposta.\n--  \nMario"), "Risposta.");
        // HTML conversion trimmed the space.
        assert_eq!(strip_reply("Risposta.\n--\nMario"), "Risposta.");
    }

    #[test]
    fn a_lone_double_dash_without_a_signature_below_is_kept() {
        assert_eq!(
            strip_reply("Risposta.\n--\n\nAltro."),
            "Risposta.\n--\n\nAltro."
        );
    }

    #[test]
    fn a_signature_below_the_quote_is_removed_as_thunderbird_places_it() {
        let text = "Risposta.\n\nIl 26/11/2026 10:00, Ufficio ha scritto:\n> Nuova pratica\n\n-- \nMarco Neri";
        assert_eq!(strip_reply(text), "Risposta.");
    }

    #[test]
    fn mobile_client_signatures_are_removed() {
        for signature in [
            "Inviato da iPhone",
            "Inviato dal mio iPhone",
            "Sent from my iPhone",
            "Inviato dal mio dispositivo Android",
            "Sent from my Android",
            "Sent from my Samsung Galaxy smartphone.",
            "Get Outlook for iOS",
            "Scarica Outlook per Android",
        ] {
            let text =
                format!("Risposta.\n\n{signature}\n\n> Il giorno 26 nov 2026 ha scritto:\n> quote");
            assert_eq!(strip_reply(&text), "Risposta.", "{signature}");
            assert_eq!(
                strip_reply(&format!("Risposta.\n\n{signature}")),
                "Risposta."
            );
        }
    }

    #[test]
    fn a_sentence_that_starts_like_a_mobile_signature_is_kept() {
        let text = "Risposta.\n\nInviato da noi il sopralluogo di ieri.";
        assert_eq!(strip_reply(text), text);
        let inside = "Risposta.\nInviato dal mio iPhone ieri sera, il rapporto è allegato.\nSaluti";
        assert_eq!(strip_reply(inside), inside);
    }

    // --- nothing left, odd input ---------------------------------------------------------------

    #[test]
    fn when_stripping_leaves_nothing_the_whole_text_is_kept() {
        let only_quote = "\n> Nuova pratica\n> testo\n";
        assert_eq!(strip_reply(only_quote), "> Nuova pratica\n> testo");
        let only_signature = "-- \nMario Rossi\n";
        assert_eq!(strip_reply(only_signature), "-- \nMario Rossi");
        assert_eq!(strip_reply("   \n\n"), "");
        assert_eq!(strip_reply(""), "");
    }

    #[test]
    fn trailing_blank_lines_and_trailing_spaces_are_trimmed() {
        assert_eq!(
            strip_reply("\n\nRisposta.  \nSaluti\t\n\n\n"),
            "Risposta.\nSaluti"
        );
    }

    #[test]
    fn crlf_and_lone_cr_line_ends_are_handled() {
        assert_eq!(
            strip_reply("Risposta.\r\n\r\nOn 26/11/2026 10:00, U wrote:\r\n> q\r\n"),
            "Risposta."
        );
        assert_eq!(strip_reply("Risposta.\r> q\r"), "Risposta.");
    }

    #[test]
    fn a_huge_hostile_reply_is_stripped_in_linear_time() {
        let mut text = String::from("Risposta.\n");
        for i in 0..50_000 {
            text.push_str(&format!("On {i}, x wrote:\n\n\n> q\nDa: a\nA: b\n-- x\n"));
        }
        text.push_str(&"ha scritto:\n".repeat(50_000));
        let started = std::time::Instant::now();
        assert!(strip_reply(&text).starts_with("Risposta."));
        assert!(started.elapsed() < std::time::Duration::from_secs(10));
    }

    #[test]
    fn clock_times_are_recognised() {
        assert!(has_clock_time("alle ore 10:00"));
        assert!(has_clock_time("at 9.05 am"));
        assert!(!has_clock_time("civico 12 ha scritto:"));
    }

    // --- never panics, never empty -----------------------------------------------------------

    /// Lines that steer the stripper into every rule.
    fn reply_line() -> impl Strategy<Value = String> {
        prop_oneof![
            "[ -~àèéìòù]{0,40}",
            "> ?[ -~]{0,30}",
            prop::sample::select(vec![
                "",
                " ",
                ">",
                "-- ",
                "--",
                "--  ",
                "Inviato da iPhone",
                "Sent from my Android",
                "Il giorno gio 26 nov 2026 alle ore 10:00 Mario <m@x> ha scritto:",
                "Il giorno 26 nov 2026, alle ore 10:00, Mario <",
                "m@x>",
                "ha scritto:",
                "wrote:",
                "On Thu, Nov 26, 2026 at 10:00 AM Mario <m@x> wrote:",
                "-----Messaggio originale-----",
                "-----Original Message-----",
                "________________________________",
                "Da: Ufficio <u@x>",
                "*From:* Ufficio",
                "Inviato: giovedì",
                "Sent: Thursday",
                "A: Mario",
                "To: Mario",
                "Cc: Anna",
                "Oggetto: Buca",
                "Subject: Buca",
                "#presa",
                "\r",
                "\u{a0}",
            ])
            .prop_map(str::to_owned),
        ]
    }

    fn normalized_trimmed(text: &str) -> String {
        normalize_newlines(text).trim().to_owned()
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

        #[test]
        fn arbitrary_text_never_panics_and_is_never_emptied(text in "\\PC*|[\\s\\S]{0,300}") {
            let stripped = strip_reply(&text);
            if !text.trim().is_empty() {
                prop_assert!(!stripped.trim().is_empty());
            }
        }

        #[test]
        fn reply_shaped_text_is_never_emptied_and_never_keeps_a_quote(
            lines in prop::collection::vec(reply_line(), 0..40)
        ) {
            let text = lines.join("\n");
            let stripped = strip_reply(&text);
            if !text.trim().is_empty() {
                prop_assert!(!stripped.trim().is_empty());
            }
            // Either the fallback (the whole text) or a text without quoted lines.
            if stripped != normalized_trimmed(&text) {
                prop_assert!(stripped.lines().all(|l| !l.trim_start().starts_with('>')), "{stripped:?}");
            }
        }
    }
}
