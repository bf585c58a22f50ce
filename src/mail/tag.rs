//! The subject tag `[Ticket #2026-000123]`: finding the ticket reference in the subject of an
//! inbound mail, and removing reply/forward prefixes from a subject for display.
//!
//! Pure and total: no I/O, no input makes it panic, linear time on any subject. A tag is only a
//! hint: anyone can write it in a subject, so a reference found here never proves who is
//! speaking (docs/design-notes.md, "Who speaks for the office": only our signed Message-IDs
//! in References/In-Reply-To do). It helps to find the ticket of a citizen's
//! follow-up and to link a stranger's mail to the ticket it names.

use crate::domain::TicketRef;

/// Longest text accepted between `#` and `]`, in bytes. A reference is 11; this leaves room for
/// stray spaces and keeps a hostile subject of many unclosed `[Ticket #` from costing
/// quadratic time.
const MAX_REFERENCE_BYTES: usize = 32;

/// The first `[<prefix> #YYYY-NNNNNN]` tag anywhere in `subject` whose reference is valid.
///
/// The prefix matches in any case; spaces are allowed inside the brackets and around `#`
/// (`[Ticket#2026-000123]`, `[ Ticket #2026-000123 ]`). Reply and forward prefixes (`Re:`,
/// `R:`, `I:`, `AW:`…) and other systems' tags (`[EXT]`, `[SPAM?]`) around it do not matter.
/// A tag whose reference is malformed (`[Ticket #2026-123]`) counts as no tag.
pub fn find_ticket_ref(subject: &str, prefix: &str) -> Option<TicketRef> {
    let prefix = prefix.trim();
    // A candidate tag runs from a `[` to the first `]` after it, so every candidate lies inside
    // one `]`-separated segment: scanning segment by segment keeps the search linear.
    // Text after the last `]` is in no closed tag.
    subject.split_inclusive(']').find_map(|piece| {
        let segment = piece.strip_suffix(']')?;
        segment.match_indices('[').find_map(|(open, _)| {
            segment
                .get(open + 1..)
                .and_then(|inner| reference_in_tag(inner, prefix))
        })
    })
}

/// The reference in the inside of one `[…]`, when it is `<prefix> #<reference>`.
fn reference_in_tag(inner: &str, prefix: &str) -> Option<TicketRef> {
    let after_prefix = strip_prefix_ignoring_case(inner.trim_start(), prefix)?;
    let reference = after_prefix.trim_start().strip_prefix('#')?;
    if reference.len() > MAX_REFERENCE_BYTES {
        return None;
    }
    // `TicketRef`'s parser trims and insists on exactly `YYYY-NNNNNN`.
    reference.parse().ok()
}

/// `text` without `prefix` at its start, comparing characters case-insensitively (Unicode
/// lowercase, so a configured prefix like "Pratica" or "Segnalazione" matches however a mail
/// client or a person re-cased it).
fn strip_prefix_ignoring_case<'a>(text: &'a str, prefix: &str) -> Option<&'a str> {
    let mut chars = text.chars();
    for expected in prefix.chars() {
        let found = chars.next()?;
        if !found.to_lowercase().eq(expected.to_lowercase()) {
            return None;
        }
    }
    Some(chars.as_str())
}

/// What mail clients put before a subject when replying or forwarding, lowercased: Italian
/// Outlook writes `R:` and `I:` (inoltro), German Outlook `AW:` and `WG:`, others `Re:`,
/// `Rif:`, `Fwd:`, `Fw:`.
const REPLY_PREFIXES: &[&str] = &["re", "r", "rif", "i", "fwd", "fw", "aw", "wg"];

/// `subject` without reply/forward prefixes, for display: every `Re:`, `R:`, `RE:`, `Rif:`,
/// `I:`, `Fwd:`, `Fw:`, `AW:`, `WG:` at its start, repeated and in any case (also `Re[2]:`,
/// `Re (2):`, `Re :`), and those found after other tags at the start, which are kept:
/// `[EXT] RE: [Ticket #2026-000123] Buca` becomes `[EXT] [Ticket #2026-000123] Buca`.
/// The rest is untouched; the result is trimmed.
pub fn clean_subject(subject: &str) -> String {
    let mut tags: Vec<&str> = Vec::new();
    let mut rest = subject.trim_start();
    loop {
        if let Some(after) = strip_reply_prefix(rest) {
            rest = after.trim_start();
        } else if let Some((tag, after)) = leading_tag(rest) {
            tags.push(tag);
            rest = after.trim_start();
        } else {
            break;
        }
    }
    let rest = rest.trim_end();
    let mut cleaned = tags.join(" ");
    if !cleaned.is_empty() && !rest.is_empty() {
        cleaned.push(' ');
    }
    cleaned.push_str(rest);
    cleaned
}

/// `text` after a reply/forward prefix at its start: a word of [`REPLY_PREFIXES`], an optional
/// count (`[2]`, `(2)`) and a colon (ASCII or the full-width one of CJK clients).
fn strip_reply_prefix(text: &str) -> Option<&str> {
    let word_end = text
        .find(|c: char| !c.is_ascii_alphabetic())
        .unwrap_or(text.len());
    let word = text.get(..word_end)?;
    if !REPLY_PREFIXES.iter().any(|p| p.eq_ignore_ascii_case(word)) {
        return None;
    }
    let mut rest = text.get(word_end..)?.trim_start();
    for (open, close) in [('[', ']'), ('(', ')')] {
        if let Some(inside) = rest.strip_prefix(open) {
            let digits = inside
                .find(|c: char| !c.is_ascii_digit())
                .unwrap_or(inside.len());
            if digits > 0 {
                if let Some(after) = inside.get(digits..).and_then(|a| a.strip_prefix(close)) {
                    rest = after.trim_start();
                }
            }
        }
    }
    rest.strip_prefix(':').or_else(|| rest.strip_prefix('：'))
}

/// A `[…]` tag at the start of `text` and what follows it.
fn leading_tag(text: &str) -> Option<(&str, &str)> {
    if !text.starts_with('[') {
        return None;
    }
    let close = text.find(']')?;
    Some((text.get(..=close)?, text.get(close + 1..)?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn reference(s: &str) -> Option<TicketRef> {
        s.parse().ok()
    }

    #[test]
    fn a_tag_is_found_behind_reply_and_forward_prefixes() {
        for subject in [
            "[Ticket #2026-000123] Buca in via Roma",
            "Re: [Ticket #2026-000123] Buca in via Roma",
            "R: [Ticket #2026-000123] Buca in via Roma",
            "RE: [Ticket #2026-000123] Buca in via Roma",
            "Rif: [Ticket #2026-000123] Buca in via Roma",
            "I: [Ticket #2026-000123] Buca in via Roma",
            "Fwd: [Ticket #2026-000123] Buca in via Roma",
            "AW: [Ticket #2026-000123] Buca in via Roma",
            "WG: [Ticket #2026-000123] Buca in via Roma",
            "Re: R: I: [Ticket #2026-000123] Buca in via Roma",
            "Buca in via Roma [Ticket #2026-000123]",
        ] {
            assert_eq!(
                find_ticket_ref(subject, "Ticket"),
                reference("2026-000123"),
                "{subject}"
            );
        }
    }

    #[test]
    fn a_tag_is_found_among_other_systems_tags() {
        assert_eq!(
            find_ticket_ref("[EXT] RE: [Ticket #2026-000123] Buca", "Ticket"),
            reference("2026-000123")
        );
        assert_eq!(
            find_ticket_ref("[SPAM?] [Ticket #2026-000123] Buca", "Ticket"),
            reference("2026-000123")
        );
        assert_eq!(
            find_ticket_ref("[[Ticket #2026-000123]] [ext] Buca", "Ticket"),
            reference("2026-000123")
        );
        assert_eq!(
            find_ticket_ref("[lista] [x [Ticket #2026-000123] Buca", "Ticket"),
            reference("2026-000123")
        );
    }

    #[test]
    fn the_prefix_matches_in_any_case() {
        assert_eq!(
            find_ticket_ref("Re: Re: [ticket #2026-000001]", "Ticket"),
            reference("2026-000001")
        );
        assert_eq!(
            find_ticket_ref("[TICKET #2026-000001]", "ticket"),
            reference("2026-000001")
        );
        assert_eq!(
            find_ticket_ref("[pratica #2026-000001]", "Pratica"),
            reference("2026-000001")
        );
    }

    #[test]
    fn spaces_inside_the_tag_are_tolerated() {
        for subject in [
            "[Ticket#2026-000123]",
            "[ Ticket #2026-000123 ]",
            "[Ticket  #  2026-000123]",
            "[\tTicket # 2026-000123\t]",
        ] {
            assert_eq!(
                find_ticket_ref(subject, "Ticket"),
                reference("2026-000123"),
                "{subject}"
            );
        }
    }

    #[test]
    fn a_malformed_reference_is_no_reference() {
        for subject in [
            "[Ticket #2026-123]",
            "[Ticket #2026-0001234]",
            "[Ticket #2026-000000]",
            "[Ticket #1999-000001]",
            "[Ticket #2026_000123]",
            "[Ticket #abcd-000123]",
            "[Ticket 2026-000123]",
            "[Ticket #2026-000123",
            "Ticket #2026-000123",
            "[Tickets #2026-000123]",
            "[MyTicket #2026-000123]",
            "[Ticket #2026-000123 x]",
            "[Ticket #-2026-000123]",
            "",
        ] {
            assert_eq!(find_ticket_ref(subject, "Ticket"), None, "{subject}");
        }
    }

    #[test]
    fn the_first_valid_tag_wins_after_a_malformed_one() {
        assert_eq!(
            find_ticket_ref("[Ticket #2026-12] [Ticket #2026-000007]", "Ticket"),
            reference("2026-000007")
        );
        assert_eq!(
            find_ticket_ref("[Ticket #2026-000002] [Ticket #2026-000007]", "Ticket"),
            reference("2026-000002")
        );
    }

    #[test]
    fn another_prefix_is_not_our_tag() {
        assert_eq!(find_ticket_ref("[Ticket #2026-000123]", "Pratica"), None);
        assert_eq!(find_ticket_ref("[JIRA #2026-000123]", "Ticket"), None);
    }

    #[test]
    fn reply_and_forward_prefixes_are_removed_for_display() {
        for (subject, cleaned) in [
            (
                "Re: [Ticket #2026-000123] Buca",
                "[Ticket #2026-000123] Buca",
            ),
            ("RE: RE: R: Buca in via Roma", "Buca in via Roma"),
            ("rif: I: fwd: Fw: AW: WG: Buca", "Buca"),
            ("Re[2]: Buca", "Buca"),
            ("Re (3) : Buca", "Buca"),
            ("Re : Buca", "Buca"),
            ("Re：Buca", "Buca"),
            ("Re:Buca", "Buca"),
            (
                "[EXT] RE: [Ticket #2026-000123] Buca",
                "[EXT] [Ticket #2026-000123] Buca",
            ),
            ("[SPAM?]   Re:   Buca  ", "[SPAM?] Buca"),
            ("Re: Re: [ticket #2026-000001]", "[ticket #2026-000001]"),
            ("  Buca in via Roma  ", "Buca in via Roma"),
            ("Re:", ""),
            ("", ""),
        ] {
            assert_eq!(clean_subject(subject), cleaned, "{subject}");
        }
    }

    #[test]
    fn words_that_merely_start_like_a_prefix_stay() {
        for subject in [
            "Reclamo: buca",
            "Rifiuti: raccolta",
            "Info: orari",
            "Richiesta: Re dei parchi",
            "Buca Re: via Roma",
            "Re[x]: Buca",
        ] {
            assert_eq!(clean_subject(subject), subject, "{subject}");
        }
    }

    #[test]
    fn an_unclosed_bracket_at_the_start_is_left_alone() {
        assert_eq!(clean_subject("[EXT Re: Buca"), "[EXT Re: Buca");
    }

    #[test]
    fn a_hostile_subject_of_unclosed_tags_is_searched_quickly() {
        let started = std::time::Instant::now();
        let unclosed = "[Ticket #2026-000001 ".repeat(100_000);
        assert_eq!(find_ticket_ref(&unclosed, "Ticket"), None);
        // Only the last of these is a whole tag.
        let nested = "[Ticket #".repeat(200_000) + "2026-000001]";
        assert_eq!(find_ticket_ref(&nested, "Ticket"), reference("2026-000001"));
        let _ = clean_subject(&nested);
        let brackets = "[".repeat(1_000_000);
        assert_eq!(find_ticket_ref(&brackets, "Ticket"), None);
        assert!(started.elapsed() < std::time::Duration::from_secs(5));
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

        #[test]
        fn arbitrary_subjects_never_panic(subject in "\\PC*|[\\[\\]# :rReEiI0-9a-zA-Z-]{0,60}", prefix in "\\PC{0,10}") {
            let _ = find_ticket_ref(&subject, &prefix);
            let _ = find_ticket_ref(&subject, "Ticket");
            let _ = clean_subject(&subject);
        }

        #[test]
        fn a_tag_inserted_anywhere_is_found(
            before in "\\PC{0,40}",
            after in "\\PC{0,40}",
            year in 2000u16..=9999,
            seq in 1u32..=999_999,
            prefix in prop::sample::select(vec!["Ticket", "TICKET", "ticket", "Pratica"]),
            spaced in any::<bool>(),
        ) {
            let expected = TicketRef::new(year, seq).ok();
            prop_assume!(expected.is_some());
            let tag = if spaced {
                format!("[ {prefix} # {year:04}-{seq:06} ]")
            } else {
                format!("[{prefix} #{year:04}-{seq:06}]")
            };
            let subject = format!("{before}{tag}{after}");
            let configured = prefix.to_lowercase();
            prop_assert_eq!(find_ticket_ref(&subject, &configured), expected, "{}", subject);
        }

        #[test]
        fn cleaning_a_subject_twice_changes_nothing_more(subject in "\\PC{0,60}") {
            let once = clean_subject(&subject);
            prop_assert_eq!(clean_subject(&once), once.clone());
        }
    }
}
