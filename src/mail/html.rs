//! The HTML body of a mail made safe to show on the citizen's page — once, when the mail comes
//! in, never on a page view (docs/design-notes.md, "HTML bodies sanitised once, at intake").
//!
//! ammonia (through html5ever) costs time roughly quadratic in the nesting depth of its input:
//! 1.1 MB of nested `<div>` took 22 s. So before ammonia sees anything, a linear pre-check
//! refuses HTML over [`MAX_HTML_BYTES`] or nested deeper than [`MAX_HTML_DEPTH`]; such a message
//! is shown as its text part only, with a word saying so. The caller runs [`prepare`] off the
//! async threads (`spawn_blocking`): even capped, sanitising is CPU work.
//!
//! Pure and total: no I/O, and no input makes it panic.

/// Largest HTML body sanitised, in bytes. Mail clients write a few to a few tens of KiB for a
/// citizen's report; newsletters stay under a few hundred.
pub const MAX_HTML_BYTES: usize = 512 * 1024;

/// Deepest element nesting sanitised, in elements, as counted by [`nesting_exceeds`]. Editors
/// nest 10–20 deep; a long thread of quoted replies adds about three per reply. The count may
/// under-estimate the parser's real tree by a small factor (html5ever inserts `tbody`/`tr` in
/// tables and re-opens formatting elements), so the real bound is a few hundred: milliseconds.
pub const MAX_HTML_DEPTH: usize = 128;

/// What the citizen's page may show of a message's HTML body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ShownHtml {
    /// The sanitised HTML, safe to insert into the page as it is.
    Safe(String),
    /// Not shown (the text part is): the reason, as stored.
    Withheld(Withheld),
}

/// Why an HTML body is not shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Withheld {
    /// Over [`MAX_HTML_BYTES`].
    TooLarge,
    /// Nested deeper than [`MAX_HTML_DEPTH`].
    TooDeep,
    /// Markup whose reading differs between our count and the parser (a CDATA section): not
    /// worth the risk for a mail body.
    Unusual,
}

impl Withheld {
    /// The word stored in `message.html_withheld`.
    pub fn as_str(self) -> &'static str {
        match self {
            Withheld::TooLarge => "too_large",
            Withheld::TooDeep => "too_deep",
            Withheld::Unusual => "unusual_markup",
        }
    }
}

/// Checks the caps, then sanitises. Linear until ammonia runs, and ammonia only runs on input
/// within the caps.
pub fn prepare(html: &str) -> ShownHtml {
    match precheck(html) {
        Err(why) => ShownHtml::Withheld(why),
        Ok(()) => ShownHtml::Safe(sanitize(html)),
    }
}

/// The caps, checked in one linear pass without building a tree.
pub fn precheck(html: &str) -> Result<(), Withheld> {
    if html.len() > MAX_HTML_BYTES {
        return Err(Withheld::TooLarge);
    }
    nesting_exceeds(html, MAX_HTML_DEPTH)
}

/// Mail HTML made safe to show: ammonia's allow-list (no script, no event handlers, no
/// `javascript:` links), and no images at all — remote ones would be tracking pixels (and the
/// CSP blocks them anyway), inline `cid:` ones cannot be resolved, and mail images rarely carry
/// the text alternative a screen reader needs. The pictures are attachments.
fn sanitize(html: &str) -> String {
    ammonia::Builder::default()
        .rm_tags(&["img"])
        .clean(html)
        .to_string()
}

/// Elements that never stay open (HTML's void elements, and those html5ever drops in a body).
/// Only these are not counted: any other start tag counts, so a wrong guess over-counts.
const VOID: &[&str] = &[
    "area", "base", "basefont", "bgsound", "br", "col", "embed", "frame", "hr", "img", "input",
    "keygen", "link", "meta", "param", "source", "track", "wbr",
];

/// Whether `html` nests elements deeper than `max`, by a conservative count: every start tag of
/// a non-void element opens one, and an end tag closes one only when it names the element most
/// recently opened and still open. A parser closes more than that (implied end tags, misnested
/// markup), never less for the elements we saw, so the count is at least the depth of what we
/// saw; sloppy markup can only make it higher (and the page then shows the text).
///
/// Comments are skipped exactly as the HTML tokenizer ends them (`-->`, `--!>`, and the abrupt
/// `<!-->`/`<!--->`), because a comment read longer or shorter than the parser reads it would
/// hide tags from the count. Linear: the stack never grows past `max + 1`.
fn nesting_exceeds(html: &str, max: usize) -> Result<(), Withheld> {
    let bytes = html.as_bytes();
    let mut open: Vec<String> = Vec::new();
    let mut i = 0;
    while let Some(offset) = bytes.get(i..).and_then(|rest| memchr(b'<', rest)) {
        let lt = i + offset;
        let after = bytes.get(lt + 1..).unwrap_or(&[]);
        if let Some(rest) = after.strip_prefix(b"!--") {
            i = lt + 4 + comment_len(rest);
            continue;
        }
        if starts_with_ignore_case(after, b"![cdata[") {
            return Err(Withheld::Unusual);
        }
        if matches!(after.first(), Some(b'!' | b'?')) {
            // Doctype or bogus comment: up to the next `>`.
            i = lt + 1 + memchr(b'>', after).map_or(after.len(), |p| p + 1);
            continue;
        }
        let (closing, name_start) = match after.first() {
            Some(b'/') => (true, 1),
            _ => (false, 0),
        };
        let name_bytes = after.get(name_start..).unwrap_or(&[]);
        if !name_bytes.first().is_some_and(u8::is_ascii_alphabetic) {
            // `<` followed by anything else is text (`</` + non-letter a bogus comment, which
            // ends at the next `>` like the tag would: nothing to count either way).
            i = lt + 1;
            continue;
        }
        let name_len = name_bytes
            .iter()
            .position(|b| b.is_ascii_whitespace() || matches!(b, b'/' | b'>'))
            .unwrap_or(name_bytes.len());
        let name =
            String::from_utf8_lossy(name_bytes.get(..name_len).unwrap_or(&[])).to_ascii_lowercase();
        // The tag ends at the first `>`: ending a tag early (a `>` inside a quoted attribute
        // value) only makes us read more tags than there are.
        let tag_rest = name_bytes.get(name_len..).unwrap_or(&[]);
        let tag_len = memchr(b'>', tag_rest).map_or(tag_rest.len(), |p| p + 1);
        let self_closing = tag_rest.get(..tag_len).is_some_and(|t| t.ends_with(b"/>"));
        i = lt + 1 + name_start + name_len + tag_len;
        if closing {
            if open.last() == Some(&name) {
                open.pop();
            }
        } else if !VOID.contains(&name.as_str()) {
            // `/>` closes an element only inside SVG or MathML; in HTML it is ignored.
            let foreign = open.iter().any(|n| n == "svg" || n == "math");
            if !(self_closing && foreign) {
                open.push(name);
                if open.len() > max {
                    return Err(Withheld::TooDeep);
                }
            }
        }
    }
    Ok(())
}

/// Length of a comment's rest (after `<!--`) including its end, as the HTML tokenizer reads it
/// (WHATWG HTML §13.2.5.43–52): `>` or `->` right away ends it, else the first `-->` or `--!>`,
/// else the end of input.
fn comment_len(rest: &[u8]) -> usize {
    if rest.starts_with(b">") {
        return 1;
    }
    if rest.starts_with(b"->") {
        return 2;
    }
    let mut j = 0;
    while let Some(p) = rest.get(j..).and_then(|r| memchr(b'-', r)) {
        let at = j + p;
        let tail = rest.get(at..).unwrap_or(&[]);
        if tail.starts_with(b"-->") {
            return at + 3;
        }
        if tail.starts_with(b"--!>") {
            return at + 4;
        }
        j = at + 1;
    }
    rest.len()
}

fn memchr(needle: u8, haystack: &[u8]) -> Option<usize> {
    haystack.iter().position(|&b| b == needle)
}

fn starts_with_ignore_case(haystack: &[u8], prefix: &[u8]) -> bool {
    haystack
        .get(..prefix.len())
        .is_some_and(|h| h.eq_ignore_ascii_case(prefix))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nested(tag: &str, depth: usize) -> String {
        format!("<{tag}>").repeat(depth) + "x" + &format!("</{tag}>").repeat(depth)
    }

    #[test]
    fn ordinary_mail_html_is_sanitised() {
        let shown = prepare(
            "<div dir=\"ltr\">Buongiorno,<br><b>buca</b> in via Roma<script>alert(1)</script>\
             <img src=\"http://x/p.gif\"><a href=\"javascript:alert(1)\" onclick=\"x()\">qui</a></div>",
        );
        let ShownHtml::Safe(html) = shown else {
            panic!("ordinary HTML is shown: {shown:?}");
        };
        assert!(html.contains("<b>buca</b>"), "{html}");
        for gone in ["script", "alert", "<img", "onclick", "javascript"] {
            assert!(!html.contains(gone), "{gone} in {html}");
        }
    }

    #[test]
    fn nesting_up_to_the_cap_is_shown_and_one_more_level_is_not() {
        assert!(matches!(
            prepare(&nested("div", MAX_HTML_DEPTH)),
            ShownHtml::Safe(_)
        ));
        assert_eq!(
            prepare(&nested("div", MAX_HTML_DEPTH + 1)),
            ShownHtml::Withheld(Withheld::TooDeep)
        );
    }

    #[test]
    fn a_megabyte_of_nested_divs_is_refused_by_the_precheck() {
        let html = "<div>".repeat(200_000);
        assert_eq!(precheck(&html), Err(Withheld::TooLarge));
        let html = "<div>".repeat(100_000);
        assert!(html.len() < MAX_HTML_BYTES);
        assert_eq!(precheck(&html), Err(Withheld::TooDeep));
    }

    #[test]
    fn html_over_the_size_cap_is_refused_even_when_flat() {
        let html = "<p>buca</p>".repeat(MAX_HTML_BYTES / 10);
        assert_eq!(precheck(&html), Err(Withheld::TooLarge));
        let html = "<p>buca</p>".repeat(MAX_HTML_BYTES / 12);
        assert_eq!(precheck(&html), Ok(()));
    }

    #[test]
    fn closing_tags_that_do_not_close_the_current_element_do_not_lower_the_count() {
        // html5ever ignores `</span>` when a `<div>` is open above the span, and `</td>` outside
        // a table: the tree grows though every tag has its "end".
        let html = "<span><div></span>".repeat(MAX_HTML_DEPTH);
        assert_eq!(precheck(&html), Err(Withheld::TooDeep));
        let html = "<span><td><li></td></span>".repeat(MAX_HTML_DEPTH);
        assert_eq!(precheck(&html), Err(Withheld::TooDeep));
    }

    #[test]
    fn void_elements_and_properly_closed_siblings_do_not_nest() {
        let html = "<p>a<br>b<img src=x><hr></p>".repeat(10_000);
        assert_eq!(precheck(&html), Ok(()));
        let html = "<ul><li>a</li><li>b</li></ul>".repeat(5_000);
        assert_eq!(precheck(&html), Ok(()));
    }

    #[test]
    fn tags_in_comments_are_skipped_as_the_tokenizer_reads_comments() {
        let html = format!("<!--{}-->", "<div>".repeat(1_000));
        assert_eq!(precheck(&html), Ok(()));
        // `<!-->` is a whole (empty) comment: what follows is markup and counts.
        let html = format!("<!-->{}-->", "<div>".repeat(1_000));
        assert_eq!(precheck(&html), Err(Withheld::TooDeep));
        let html = format!("<!--->{}-->", "<div>".repeat(1_000));
        assert_eq!(precheck(&html), Err(Withheld::TooDeep));
        let html = format!("<!-- a --!>{}", "<div>".repeat(1_000));
        assert_eq!(precheck(&html), Err(Withheld::TooDeep));
        // Outlook's conditional comments and `<![if …]>` bogus comments.
        let html = "<!--[if gte mso 9]><xml><o:OfficeDocumentSettings></xml><![endif]-->\
                    <![if !supportLists]><span>1.</span><![endif]><p>ok</p>";
        assert_eq!(precheck(html), Ok(()));
    }

    #[test]
    fn self_closing_counts_as_closed_only_inside_svg() {
        let html = "<div/>".repeat(MAX_HTML_DEPTH + 1);
        assert_eq!(precheck(&html), Err(Withheld::TooDeep));
        let html = format!("<svg>{}</svg>", "<path d=\"M0\"/>".repeat(1_000));
        assert_eq!(precheck(&html), Ok(()));
    }

    #[test]
    fn cdata_sections_are_refused_and_odd_input_never_panics() {
        assert_eq!(precheck("<svg><![CDATA[</svg>]]>"), Err(Withheld::Unusual));
        for odd in [
            "<",
            "</",
            "<!",
            "<!-",
            "<!--",
            "<a",
            "< div>",
            "<\u{e9}>",
            "<a\u{e9}b>",
        ] {
            let _ = prepare(odd);
        }
    }
}
