//! CSV for spreadsheets (issue 14: `ticket list --format csv`, `stats --format csv`): RFC 4180
//! quoting, CRLF line ends, and cells a spreadsheet would run as a formula neutralised.
//!
//! A citizen writes the subject and text of a ticket, so a cell may begin with `=`, `+`, `-`
//! or `@` (or a tab or carriage return, which some spreadsheets skip before such a sign): an
//! office opening the file would run it (OWASP "CSV injection"). Such a cell gets a leading
//! apostrophe, which spreadsheets show as text and do not evaluate.

/// One cell: neutralised, then quoted when it holds a comma, quote, CR or LF.
pub fn cell(value: &str) -> String {
    let neutral = if value.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{value}")
    } else {
        value.to_string()
    };
    if neutral.contains([',', '"', '\r', '\n']) {
        format!("\"{}\"", neutral.replace('"', "\"\""))
    } else {
        neutral
    }
}

/// One record, CRLF-terminated (RFC 4180).
pub fn row<S: AsRef<str>>(cells: &[S]) -> String {
    let mut line = cells
        .iter()
        .map(|c| cell(c.as_ref()))
        .collect::<Vec<_>>()
        .join(",");
    line.push_str("\r\n");
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cells_with_commas_quotes_and_line_breaks_are_quoted_and_quotes_doubled() {
        assert_eq!(cell("plain"), "plain");
        assert_eq!(cell("a,b"), "\"a,b\"");
        assert_eq!(cell("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(cell("two\nlines"), "\"two\nlines\"");
        assert_eq!(row(&["a", "", "b c"]), "a,,b c\r\n");
    }

    #[test]
    fn cells_a_spreadsheet_would_evaluate_are_neutralised() {
        assert_eq!(cell("=HYPERLINK(\"x\")"), "\"'=HYPERLINK(\"\"x\"\")\"");
        assert_eq!(cell("+39 333"), "'+39 333");
        assert_eq!(cell("-1"), "'-1");
        assert_eq!(cell("@SUM(A1)"), "'@SUM(A1)");
        assert_eq!(cell("\tx"), "'\tx");
        assert_eq!(cell("a=b"), "a=b", "only a leading sign counts");
    }
}
