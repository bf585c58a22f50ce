//! Header fields of a parsed message: threading ids, addresses (one valid addr-spec each),
//! trace fields, subject and date. First occurrence wins; duplicates go in linear time; every
//! string that can reach a header we write is one line.

use std::borrow::Cow;
use std::collections::HashSet;

use mail_parser::{Addr, Header, HeaderName, HeaderValue, Message};

use super::Mailbox;
use crate::domain::EmailAddress;

/// The top-level header. `Message::headers()` indexes `parts[0]`; `first()` cannot panic.
pub(super) fn top_headers<'a, 'x>(message: &'a Message<'x>) -> &'a [Header<'x>] {
    message.parts.first().map_or(&[], |p| p.headers.as_slice())
}

/// Values of every header called `name`, in order. mail-parser's own accessors return the
/// *last* occurrence; here the first one wins where only one is wanted.
fn values<'a, 'x>(
    headers: &'a [Header<'x>],
    name: &'a HeaderName<'_>,
) -> impl Iterator<Item = &'a HeaderValue<'x>> {
    headers
        .iter()
        .filter(move |h| h.name == *name)
        .map(|h| &h.value)
}

/// Text of every header whose (unregistered) name is `name`, ASCII case-insensitive.
fn other_texts<'a>(headers: &'a [Header<'_>], name: &'a str) -> impl Iterator<Item = &'a str> {
    headers
        .iter()
        .filter(move |h| h.name().eq_ignore_ascii_case(name))
        .flat_map(|h| text_list(&h.value))
}

/// A text or text-list value as a slice of strings; anything else as nothing.
fn text_list<'a>(value: &'a HeaderValue<'_>) -> impl Iterator<Item = &'a str> {
    value
        .as_text_list()
        .unwrap_or_default()
        .iter()
        .map(|t| t.as_ref())
}

/// A message id as stored: no `<>`, trimmed; `None` when empty or when it holds whitespace or
/// control characters (never part of a valid id, and dangerous in logs and headers).
fn clean_id(id: &str) -> Option<String> {
    let id = id
        .trim()
        .trim_start_matches('<')
        .trim_end_matches('>')
        .trim();
    (!id.is_empty() && !id.chars().any(|c| c.is_whitespace() || c.is_control()))
        .then(|| id.to_owned())
}

pub(super) fn first_id(headers: &[Header<'_>]) -> Option<String> {
    values(headers, &HeaderName::MessageId)
        .flat_map(text_list)
        .find_map(clean_id)
}

pub(super) fn ids(headers: &[Header<'_>], name: &HeaderName<'_>) -> Vec<String> {
    let found = values(headers, name)
        .flat_map(text_list)
        .filter_map(clean_id);
    unique_by(found, |id| id.clone())
}

/// Keeps the first item for each key, in order. A set rather than `Vec::contains`: a hostile
/// header can carry hundreds of thousands of addresses or ids, and quadratic time would stall
/// the poller.
pub(super) fn unique_by<T>(
    items: impl IntoIterator<Item = T>,
    key: impl Fn(&T) -> String,
) -> Vec<T> {
    let mut seen = HashSet::new();
    items
        .into_iter()
        .filter(|item| seen.insert(key(item)))
        .collect()
}

fn addrs<'a, 'x>(value: &'a HeaderValue<'x>) -> impl Iterator<Item = &'a Addr<'x>> {
    value.as_address().into_iter().flat_map(|a| a.iter())
}

/// One address of a header, or `None` when it is not exactly one valid addr-spec: mail-parser
/// keeps `Reply-To: <a@x,b@y,…>` as ONE "address", and using that string as a recipient
/// once made the comune's server relay an acknowledgment to every address in it.
fn mailbox(addr: &Addr<'_>) -> Option<Mailbox> {
    let address = EmailAddress::parse(addr.address.as_deref()?).ok()?;
    let name = addr
        .name
        .as_deref()
        .map(|n| single_line(n).trim().to_owned())
        .filter(|n| !n.is_empty());
    Some(Mailbox {
        name,
        address: address.into_string(),
    })
}

/// The first address of the first such header, if it is one valid address: an unusable
/// first address is not replaced by a later one, which a sender could pick at will.
pub(super) fn first_mailbox(headers: &[Header<'_>], name: &HeaderName<'_>) -> Option<Mailbox> {
    values(headers, name)
        .flat_map(addrs)
        .next()
        .and_then(mailbox)
}

pub(super) fn mailboxes(headers: &[Header<'_>], name: &HeaderName<'_>) -> Vec<Mailbox> {
    let found = values(headers, name).flat_map(addrs).filter_map(mailbox);
    unique_by(found, |m| m.address.clone())
}

/// An address from a trace field (`X-Original-To`, `Delivered-To`, `Return-Path`, DSN
/// recipients): no `<>`, lowercased; `None` when empty or holding whitespace/control characters.
pub(super) fn trace_address(value: &str) -> Option<String> {
    let address = value
        .trim()
        .trim_start_matches('<')
        .trim_end_matches('>')
        .trim()
        .to_lowercase();
    (!address.is_empty() && !address.chars().any(|c| c.is_whitespace() || c.is_control()))
        .then_some(address)
}

pub(super) fn original_recipients(headers: &[Header<'_>]) -> Vec<String> {
    let found = other_texts(headers, "x-original-to").chain(other_texts(headers, "delivered-to"));
    unique_by(found.filter_map(trace_address), |a| a.clone())
}

/// RFC 5321 §4.4: the final delivery agent prepends `Return-Path`, so the topmost one is the
/// envelope sender of this delivery.
pub(super) fn return_path(headers: &[Header<'_>]) -> Option<String> {
    let value = values(headers, &HeaderName::ReturnPath).next()?;
    // mail-parser parses the field as a message id: `<>` comes out as `Empty`.
    Some(text_list(value).find_map(trace_address).unwrap_or_default())
}

pub(super) fn subject(headers: &[Header<'_>]) -> String {
    values(headers, &HeaderName::Subject)
        .find_map(|v| v.as_text())
        .map(|s| single_line(s).trim().to_owned())
        .unwrap_or_default()
}

pub(super) fn date_millis(headers: &[Header<'_>]) -> Option<i64> {
    let date = values(headers, &HeaderName::Date).find_map(|v| v.as_datetime())?;
    // mail-parser keeps out-of-range days/hours (e.g. day 0 or 99); its timestamp arithmetic
    // would silently roll them over, so only valid dates count.
    date.is_valid()
        .then(|| date.to_timestamp().checked_mul(1000))
        .flatten()
}

/// Control characters (CR, LF, TAB, NUL…) become spaces: these strings go into logs, the
/// database and, for subjects and names, into headers of mail we send.
pub(super) fn single_line(s: &str) -> Cow<'_, str> {
    if s.chars().any(char::is_control) {
        Cow::Owned(
            s.chars()
                .map(|c| if c.is_control() { ' ' } else { c })
                .collect(),
        )
    } else {
        Cow::Borrowed(s)
    }
}
