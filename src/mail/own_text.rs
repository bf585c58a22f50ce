//! Our own words for staff never go to a citizen (docs/design-notes.md, "Our own text never reaches
//! a citizen").
//!
//! A staff member answers by replying to a notification WE wrote, and we keep every such mail
//! byte for byte. A reply that quotes it — with or without `>`, re-wrapped by the client, under
//! an attribution line in any language — must not forward that quote: it carries the staff
//! member's personal take link and, after a reassignment, the ticket's history with its
//! internal notes. So instead of guessing what a quote looks like, this module recognises our
//! own text: runs of [`WINDOW_WORDS`] consecutive words that occur in what we sent to staff (or
//! in a note), any signed staff link, and any line of a note.
//!
//! Words the citizen may see anyway — their own messages, and what we sent them — are not
//! counted as ours, so an answer that repeats the citizen's words or the office's usual opening
//! is not cut.
//!
//! Pure and total: no I/O, no input makes it panic; time linear in the reply times
//! [`WINDOW_WORDS`].

use std::collections::HashSet;

use super::quote::{attribution_start, strip_lines, strip_reply};

/// Consecutive words that make a stretch of text ours. Long enough that an answer does not
/// share so many words with a notification by chance (the template's longest stock phrase a
/// person might also write, "prende in carico la pratica", has five), short enough that one
/// re-wrapped line of a quote is caught.
pub const WINDOW_WORDS: usize = 8;

/// Fewest words a line of a note needs to be looked for on its own (a note shorter than
/// [`WINDOW_WORDS`] is caught by its lines): "ok" or "fatto" in a note says nothing internal.
pub const MIN_NOTE_LINE_WORDS: usize = 3;

/// Longest field name of a mail client's header block ("Gesendet", "Enviado el").
const MAX_FIELD_NAME_CHARS: usize = 20;

/// What we wrote for staff about one ticket, ready to be found in a reply.
#[derive(Debug, Clone, Default)]
pub struct OwnText {
    windows: HashSet<String>,
    note_lines: Vec<String>,
}

/// A staff reply with our own text taken out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StaffText {
    /// What the staff member newly wrote (quotes and signature stripped too); may be empty.
    pub text: String,
    /// Our own text was found and cut away.
    pub cut_ours: bool,
}

impl OwnText {
    /// `ours`: the texts we sent to staff (notifications, notices). `notes`: internal notes as
    /// the staff wrote them (a `#nota`/`#note` command word is ignored). `citizens`: texts the
    /// citizen wrote or received, whose words are not secret from them.
    pub fn new<'a>(
        ours: impl IntoIterator<Item = &'a str>,
        notes: impl IntoIterator<Item = &'a str>,
        citizens: impl IntoIterator<Item = &'a str>,
    ) -> OwnText {
        let mut windows = HashSet::new();
        let mut note_lines = Vec::new();
        for text in ours {
            windows.extend(windows_of(text));
        }
        for note in notes {
            let note = strip_reply(note);
            windows.extend(windows_of(&note));
            for line in note.lines() {
                let words: Vec<String> = words_of(line)
                    .skip_while(|w| w == "nota" || w == "note")
                    .collect();
                if words.len() >= MIN_NOTE_LINE_WORDS {
                    note_lines.push(words.join(" "));
                }
            }
        }
        for text in citizens {
            for w in windows_of(text) {
                windows.remove(&w);
            }
            // A note that quoted the citizen does not make the citizen's sentences ours.
            let theirs = format!(
                " {} ",
                text.lines()
                    .flat_map(words_of)
                    .collect::<Vec<_>>()
                    .join(" ")
            );
            note_lines.retain(|n| !theirs.contains(&format!(" {n} ")));
        }
        OwnText {
            windows,
            note_lines,
        }
    }

    /// The first line of `lines` where our own text begins, if it does anywhere.
    pub fn first_line(&self, lines: &[&str]) -> Option<usize> {
        let mut words: Vec<(String, usize)> = Vec::new();
        let mut first: Option<usize> = None;
        for (i, line) in lines.iter().enumerate() {
            if is_staff_link_line(line) {
                first = Some(i);
                break;
            }
            let line_words: Vec<String> = words_of(line).collect();
            if !self.note_lines.is_empty() && !line_words.is_empty() {
                let padded = format!(" {} ", line_words.join(" "));
                if self
                    .note_lines
                    .iter()
                    .any(|n| padded.contains(&format!(" {n} ")))
                {
                    first = Some(i);
                    break;
                }
            }
            words.extend(line_words.into_iter().map(|w| (w, i)));
        }
        // Only a window that starts before the line found above can start earlier.
        let by_window = words.windows(WINDOW_WORDS).find_map(|w| {
            let joined = w.iter().map(|(word, _)| word.as_str()).collect::<Vec<_>>();
            self.windows
                .contains(&joined.join(" "))
                .then(|| w.first().map(|(_, line)| *line))
                .flatten()
        });
        match (first, by_window) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }
}

/// The staff reply `text` without quotes, signature and any of our own text. Where our text is
/// found, everything from there on goes, with the client's attribution line or header block
/// just above it, and nothing quoted is ever sent back as a fallback: an empty result means the
/// reply was only our notification. Where it is not found, this is [`strip_reply`].
pub fn strip_staff_reply(text: &str, own: &OwnText) -> StaffText {
    let text = text.replace("\r\n", "\n").replace('\r', "\n");
    let lines: Vec<&str> = text.split('\n').collect();
    match own.first_line(&lines) {
        None => StaffText {
            text: strip_reply(&text),
            cut_ours: false,
        },
        Some(cut)
            if lines
                .get(cut)
                .is_some_and(|l| l.trim_start().starts_with('>')) =>
        {
            // A `>` quote of our text: the quote goes, with the attribution or header block
            // introducing it; what the staff member wrote below or between quotes stays, and
            // the guard then catches anything of ours left unquoted.
            let intro = intro_start(&lines, cut);
            let kept: Vec<&str> = lines
                .get(..intro)
                .unwrap_or_default()
                .iter()
                .chain(lines.get(cut..).unwrap_or_default())
                .copied()
                .collect();
            let text = strip_lines(&kept);
            StaffText {
                text: guard_answer(&text, own).unwrap_or(text),
                cut_ours: true,
            }
        }
        // Our text without `>`: where it ends cannot be told, so everything from it on goes.
        Some(cut) => StaffText {
            text: cut_before(&lines, cut),
            cut_ours: true,
        },
    }
}

/// The last guard before an answer goes to a citizen: `Some(what is left)` when `answer` still
/// contains our own text (cut there; may be empty), `None` when it is clean.
pub fn guard_answer(answer: &str, own: &OwnText) -> Option<String> {
    let lines: Vec<&str> = answer.lines().collect();
    own.first_line(&lines).map(|cut| cut_before(&lines, cut))
}

/// The new text above line `cut`: without the attribution line (any language: the last line
/// above ending in `:`, or a recognised wrapped one) and then stripped without fallback.
fn cut_before(lines: &[&str], cut: usize) -> String {
    strip_lines(lines.get(..intro_start(lines, cut)).unwrap_or(lines))
}

/// The first line of what introduces a quote starting at line `cut`: the attribution line
/// (any language: the last line above ending in `:`, or a recognised wrapped one) and a
/// client's header block above it; `cut` when there is neither.
fn intro_start(lines: &[&str], cut: usize) -> usize {
    let mut end = cut;
    let above = lines
        .get(..cut)
        .unwrap_or(lines)
        .iter()
        .rposition(|l| !l.trim().is_empty());
    if let Some(last) = above {
        let line = lines.get(last).map_or("", |l| l.trim());
        if line.ends_with(':') && !line.starts_with('#') {
            end = attribution_start(lines, last).unwrap_or(last);
        }
    }
    header_block_above(lines, end)
}

/// Where a mail client's header block ("Von: / Gesendet: / An: / Betreff:", in any language)
/// directly above line `end` begins, with the separator line above it; `end` when there is
/// none. Only used right above our own text, where a quote is known to begin: the field names
/// need not be known.
fn header_block_above(lines: &[&str], end: usize) -> usize {
    let blank = |i: usize| lines.get(i).is_none_or(|l| l.trim().is_empty());
    let mut last = end;
    while last > 0 && blank(last - 1) {
        last -= 1;
    }
    let mut start = last;
    while start > 0 && lines.get(start - 1).is_some_and(|l| is_field_line(l)) {
        start -= 1;
    }
    if last - start < 2 {
        return end;
    }
    let mut above = start;
    while above > 0 && blank(above - 1) {
        above -= 1;
    }
    match above.checked_sub(1).and_then(|i| lines.get(i)) {
        Some(line) if is_separator(line) => above - 1,
        _ => start,
    }
}

/// "Name: value" with a short name of letters: a header field in any language.
fn is_field_line(line: &str) -> bool {
    let line = line.trim().trim_start_matches(['*', '_']);
    let Some((name, _)) = line.split_once(':') else {
        return false;
    };
    let name = name.trim_end_matches(['*', '_']).trim();
    !name.is_empty()
        && name.chars().count() <= MAX_FIELD_NAME_CHARS
        && name.split_whitespace().count() <= 2
        && name
            .chars()
            .all(|c| c.is_alphabetic() || c == ' ' || c == '-')
}

/// "-----Ursprüngliche Nachricht-----", "________________": a line framed by, or made of,
/// dashes or underscores.
fn is_separator(line: &str) -> bool {
    let line = line.trim();
    (line.starts_with("---") && line.ends_with("---"))
        || (line.chars().count() >= 8 && line.chars().all(|c| c == '_' || c == '-'))
}

/// A line carrying one of our signed staff links (the take link, or any other `/staff/` page
/// link, all of which are signed).
fn is_staff_link_line(line: &str) -> bool {
    line.contains("/staff/take/") || (line.contains("/staff/") && line.contains("sig="))
}

/// The words of a line as compared: quote marks, case and the punctuation around each word
/// ignored, so that `>` quoting, re-wrapping and bold markers do not hide our text.
fn words_of(line: &str) -> impl Iterator<Item = String> + '_ {
    line.split_whitespace()
        .map(|w| {
            w.trim_matches(|c: char| !c.is_alphanumeric())
                .to_lowercase()
        })
        .filter(|w| !w.is_empty())
}

/// Every run of [`WINDOW_WORDS`] consecutive words of `text`, across line breaks.
fn windows_of(text: &str) -> Vec<String> {
    let words: Vec<String> = text.lines().flat_map(words_of).collect();
    words.windows(WINDOW_WORDS).map(|w| w.join(" ")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOTIFICATION: &str = "Nuova segnalazione 2026-000001 — Lavori pubblici\n\n\
        Da:       citizen@example.org\n\
        Ricevuta: 2026-12-07T10:00:00Z\n\
        Oggetto:  Buca in via Roma\n\n\
        C'è una buca profonda davanti al civico 12, le auto ci finiscono dentro.\n\n\
        Storia della pratica:\n\n\
        --- 2026-12-07T10:05 · nota interna · mario@comune.example\n\
        #nota chiamare la ditta Rossi, preventivo 1200 euro\n\n\
        Per prendere in carico la pratica senza rispondere (apre una pagina con un pulsante):\n\
        https://comune.example/staff/take/2026-000001?staff=mario%40comune.example&exp=1&sig=abc\n\
        ----------------------------------------------------------------------\n\
        Per rispondere al cittadino, usi \"Rispondi\" su questo messaggio: la risposta\n\
        arriva al cittadino dall'indirizzo dell'ufficio. Non modifichi l'oggetto.\n";

    const CITIZEN: &str =
        "C'è una buca profonda davanti al civico 12, le auto ci finiscono dentro.";

    fn own() -> OwnText {
        OwnText::new(
            [NOTIFICATION],
            ["#nota chiamare la ditta Rossi, preventivo 1200 euro"],
            [CITIZEN],
        )
    }

    fn quoted(text: &str) -> String {
        text.lines().map(|l| format!("> {l}\n")).collect()
    }

    #[test]
    fn a_reply_that_is_only_the_quoted_notification_leaves_nothing() {
        let reply = format!(
            "\nIl giorno lun 7 dic 2026 alle ore 10:00 Comune <lavori@comune.example> ha scritto:\n\n{}",
            quoted(NOTIFICATION)
        );
        let s = strip_staff_reply(&reply, &own());
        assert_eq!(s.text, "");
        assert!(s.cut_ours);
    }

    #[test]
    fn text_written_below_or_between_quotes_of_our_text_stays() {
        let reply = format!(
            "Le 7 déc. 2026 à 10:00, Comune a écrit :\n{}\nRisposta sotto la citazione.\n",
            quoted(NOTIFICATION)
        );
        let s = strip_staff_reply(&reply, &own());
        assert_eq!(s.text, "Risposta sotto la citazione.");
        assert!(s.cut_ours);
        // …but our text pasted unquoted below is still caught.
        let reply = format!(
            "{}\nEcco:\nhttps://comune.example/staff/take/2026-000001?staff=x&exp=1&sig=zz\n",
            quoted(NOTIFICATION)
        );
        assert_eq!(strip_staff_reply(&reply, &own()).text, "");
    }

    #[test]
    fn an_unquoted_copy_under_an_unknown_attribution_is_cut_with_the_attribution() {
        let reply = format!(
            "Abbiamo inviato una squadra.\n\nLe 7 déc. 2026 à 10:00, Comune a écrit :\n\n{NOTIFICATION}"
        );
        let s = strip_staff_reply(&reply, &own());
        assert_eq!(s.text, "Abbiamo inviato una squadra.");
        assert!(s.cut_ours);
    }

    #[test]
    fn an_outlook_header_block_above_our_text_goes_too() {
        let reply = format!(
            "Passeremo domani.\n\n-----Original Message-----\nDa: Lavori pubblici <lavori@comune.example>\n\
             Inviato: lunedì 7 dicembre 2026 10:00\nA: mario@comune.example\n\
             Oggetto: [Ticket #2026-000001] Buca in via Roma\n\n{NOTIFICATION}"
        );
        assert_eq!(strip_staff_reply(&reply, &own()).text, "Passeremo domani.");
    }

    #[test]
    fn a_header_block_in_any_language_above_our_text_goes_too() {
        let reply = format!(
            "Ci scusiamo per il ritardo.\n\n-----Ursprüngliche Nachricht-----\n\
             Von: Lavori pubblici <lavori@comune.example>\nGesendet: Montag, 7. Dezember 2026\n\
             An: mario@comune.example\nBetreff: Buca\n\n{NOTIFICATION}"
        );
        assert_eq!(
            strip_staff_reply(&reply, &own()).text,
            "Ci scusiamo per il ritardo."
        );
        let reply = format!("Ok.\nVon: a\nAn: b\n{NOTIFICATION}");
        assert_eq!(strip_staff_reply(&reply, &own()).text, "Ok.");
    }

    #[test]
    fn rewrapped_quotes_are_still_recognised() {
        let rewrapped: String = NOTIFICATION
            .split_whitespace()
            .collect::<Vec<_>>()
            .chunks(5)
            .map(|c| format!(">> {}\n", c.join(" ")))
            .collect();
        let reply = format!("Risolto.\n{rewrapped}");
        assert_eq!(strip_staff_reply(&reply, &own()).text, "Risolto.");
    }

    #[test]
    fn the_take_link_and_note_lines_are_caught_on_their_own() {
        let own = own();
        let answer =
            "Ecco il link:\nhttps://comune.example/staff/take/2026-000001?staff=x&exp=1&sig=zz";
        assert_eq!(guard_answer(answer, &own).as_deref(), Some(""));
        let answer = "Gentile signora,\nchiamare la ditta Rossi, preventivo 1200 euro\nsaluti";
        assert_eq!(
            guard_answer(answer, &own).as_deref(),
            Some("Gentile signora,")
        );
    }

    #[test]
    fn the_citizens_own_words_and_a_clean_answer_pass() {
        let own = own();
        let answer = format!("Lei ci ha scritto: «{CITIZEN}»\nLa buca sarà chiusa domani.");
        assert_eq!(guard_answer(&answer, &own), None);
        assert_eq!(
            guard_answer("L'ufficio prende in carico la pratica oggi stesso.", &own),
            None
        );
        let s = strip_staff_reply("Grazie, risolto.\n\n> un'altra citazione\n", &own);
        assert_eq!(s.text, "Grazie, risolto.");
        assert!(!s.cut_ours);
    }

    #[test]
    fn odd_input_never_panics() {
        let own = own();
        for odd in ["", "\n", "\r", ":", ">\n>", "/staff/", "a\r\n\r\nb:\n"] {
            let _ = strip_staff_reply(odd, &own);
            let _ = guard_answer(odd, &own);
        }
        let _ = strip_staff_reply(NOTIFICATION, &OwnText::default());
    }
}
