//! `Authentication-Results` (RFC 8601) as written by the comune's own MTA: a second,
//! independent proof that a staff reply really comes from the comune's domain, and the
//! DMARC verdict that lets a citizen's follow-up count as the citizen's.
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

/// What the comune's MTA says about DMARC (RFC 7489) for the From domain of a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Dmarc {
    /// `dmarc=pass`: the From domain vouches for this message.
    Pass,
    /// `dmarc=none`: the From domain publishes no DMARC policy, so nothing can be checked.
    NoPolicy,
    /// Any other result (`fail`, `temperror`, `permerror`, …), as `dmarc=<result>`.
    Failed(String),
    /// The MTA wrote no DMARC result for this From domain.
    Missing,
}

/// The DMARC result for `from_domain` in the TOPMOST `Authentication-Results` of
/// `authserv_id`. Only the topmost counts: that is the one the comune's MTA prepended on
/// receipt, while any lower header with the same id came with the mail and proves nothing.
/// A result naming another `header.from` domain is not about this From.
pub fn dmarc(raw: &[u8], authserv_id: &str, from_domain: &str) -> Dmarc {
    let wanted = authserv_id.trim().to_lowercase();
    let from_domain = from_domain.trim().to_lowercase();
    let ours = header_values(raw, "authentication-results")
        .into_iter()
        .map(|v| v.to_lowercase())
        .find(|v| {
            let id = v.split(';').next().unwrap_or("").trim();
            id.split_whitespace().next() == Some(wanted.as_str())
        });
    let Some(value) = ours else {
        return Dmarc::Missing;
    };
    for resinfo in value.split(';').skip(1) {
        let mut words = resinfo.split_whitespace();
        let Some(result) = words.next().and_then(|w| w.strip_prefix("dmarc=")) else {
            continue;
        };
        // `dmarc=pass (p=none dis=none) header.from=example.it`: the result ends at a comment.
        let result = result.split('(').next().unwrap_or("").trim();
        let about_other_domain = resinfo
            .split_whitespace()
            .filter_map(|w| w.strip_prefix("header.from="))
            .any(|d| d.trim_matches(['"', ')', '(']) != from_domain);
        if about_other_domain {
            continue;
        }
        return match result {
            "pass" => Dmarc::Pass,
            "none" => Dmarc::NoPolicy,
            other => Dmarc::Failed(format!("dmarc={other}")),
        };
    }
    Dmarc::Missing
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
    fn dmarc_is_read_from_the_topmost_header_of_our_server_for_the_from_domain() {
        let raw = b"Authentication-Results: mx.comune.test;\r\n\tspf=pass; dmarc=fail (p=reject) header.from=citizen.test\r\nAuthentication-Results: mx.comune.test; dmarc=pass header.from=citizen.test\r\n\r\nbody";
        assert_eq!(
            dmarc(raw, "mx.comune.test", "citizen.test"),
            Dmarc::Failed("dmarc=fail".into()),
            "a forged lower header with our id does not count"
        );
        let raw = b"Authentication-Results: mx.comune.test 1; dkim=pass; dmarc=pass (p=none dis=none) header.from=Citizen.test\r\n\r\nbody";
        assert_eq!(dmarc(raw, "mx.comune.test", "citizen.test"), Dmarc::Pass);
        let raw = b"Authentication-Results: mx.comune.test; dmarc=none header.from=citizen.test\r\n\r\nbody";
        assert_eq!(
            dmarc(raw, "mx.comune.test", "citizen.test"),
            Dmarc::NoPolicy
        );
        let raw = b"Authentication-Results: mx.comune.test; dmarc=pass header.from=attacker.test\r\n\r\nbody";
        assert_eq!(dmarc(raw, "mx.comune.test", "citizen.test"), Dmarc::Missing);
        let raw = b"Authentication-Results: evil.test; dmarc=pass\r\n\r\nbody";
        assert_eq!(dmarc(raw, "mx.comune.test", "citizen.test"), Dmarc::Missing);
        let raw = b"Authentication-Results: mx.comune.test; spf=pass\r\n\r\nbody";
        assert_eq!(dmarc(raw, "mx.comune.test", "citizen.test"), Dmarc::Missing);
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
