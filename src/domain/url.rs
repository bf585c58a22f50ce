//! Percent-encoding of one URL component, shared by the links mailed to staff and the web
//! pages: a query value, an RFC 5987 file name.

use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};

/// Everything but the RFC 3986 unreserved characters (ALPHA, DIGIT, `-._~`) is encoded.
const COMPONENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// Percent-encodes `s` (as UTF-8, upper-case hex) for use as one URL component: a query
/// value, an RFC 5987 file name.
pub fn escape_component(s: &str) -> String {
    utf8_percent_encode(s, COMPONENT).to_string()
}

#[cfg(test)]
mod tests {
    use super::escape_component;

    #[test]
    fn only_unreserved_characters_stay_as_they_are() {
        assert_eq!(
            escape_component("mario.rossi@comune.example"),
            "mario.rossi%40comune.example"
        );
        assert_eq!(escape_component("a-b_c~d.E9"), "a-b_c~d.E9");
        assert_eq!(
            escape_component("foto città & 100%/x?y=z"),
            "foto%20citt%C3%A0%20%26%20100%25%2Fx%3Fy%3Dz"
        );
    }
}
