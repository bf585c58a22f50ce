//! `Authentication-Results` (RFC 8601) as written by the comune's own MTA: a second,
//! independent proof that a staff reply really comes from the comune's domain.
//!
//! Only headers whose authserv-id is the configured one count: anyone can write an
//! `Authentication-Results` header into a mail, but the comune's MTA adds its own on top
//! (and should remove forged ones with its own id).

/// The failing method (`dkim=fail`, `spf=fail`, `dmarc=fail`) reported by `authserv_id`,
/// if any.
pub fn failed_authentication(raw: &[u8], authserv_id: &str) -> Option<String> {
    let wanted = authserv_id.trim().to_lowercase();
    for value in header_values(raw, "authentication-results") {
        let lower = value.to_lowercase();
        let id = lower.split(';').next().unwrap_or("").trim();
        // The authserv-id may be followed by a version number ("mx.comune.it 1").
        if id.split_whitespace().next() != Some(wanted.as_str()) {
            continue;
        }
        for method in ["dmarc", "dkim", "spf"] {
            for result in ["fail", "softfail", "permerror"] {
                let needle = format!("{method}={result}");
                if lower
                    .split(|c: char| c == ';' || c.is_whitespace())
                    .any(|w| w == needle)
                {
                    return Some(needle);
                }
            }
        }
    }
    None
}

/// Unfolded values of every header named `name` (case-insensitive) in the top-level header.
fn header_values(raw: &[u8], name: &str) -> Vec<String> {
    let text = String::from_utf8_lossy(raw);
    let mut out: Vec<String> = Vec::new();
    let mut current: Option<String> = None;
    for line in text.split('\n') {
        let line = line.trim_end_matches('\r');
        if line.is_empty() {
            break;
        }
        if line.starts_with(' ') || line.starts_with('\t') {
            if let Some(c) = current.as_mut() {
                c.push(' ');
                c.push_str(line.trim());
            }
            continue;
        }
        if let Some(c) = current.take() {
            out.push(c);
        }
        if let Some((n, v)) = line.split_once(':') {
            if n.trim().eq_ignore_ascii_case(name) {
                current = Some(v.trim().to_owned());
            }
        }
    }
    if let Some(c) = current {
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failing_result_from_our_server_is_reported() {
        let raw = b"Authentication-Results: mx.comune.test;\r\n\tdkim=fail header.d=comune.test;\r\n\tspf=pass\r\nFrom: a@comune.test\r\n\r\nbody\r\n";
        assert_eq!(
            failed_authentication(raw, "mx.comune.test").as_deref(),
            Some("dkim=fail")
        );
    }

    #[test]
    fn results_from_other_servers_and_passing_results_are_ignored() {
        let raw = b"Authentication-Results: evil.test; dmarc=fail\r\nAuthentication-Results: mx.comune.test 1; dkim=pass; spf=pass; dmarc=pass\r\n\r\nbody";
        assert_eq!(failed_authentication(raw, "mx.comune.test"), None);
        // A header in the body is not a header.
        let raw = b"Subject: x\r\n\r\nAuthentication-Results: mx.comune.test; dkim=fail\r\n";
        assert_eq!(failed_authentication(raw, "mx.comune.test"), None);
    }
}
