//! `daticert.xml` (RFC 6109 §4.3) read with quick-xml: no DTD, no entity expansion, nothing
//! fetched; the document's encoding honoured or reported; the certified time turned into
//! unix milliseconds.

use std::borrow::Cow;

use mail_parser::decoders::charsets::map::charset_decoder;
use quick_xml::escape::resolve_predefined_entity;
use quick_xml::events::{BytesStart, Event};
use quick_xml::{Reader, XmlVersion};

use super::{nonempty_id, CertifiedTime, Daticert, Destinatario};

/// Milliseconds in one second, for [`CertifiedTime::millis`].
const MILLIS_PER_SECOND: i64 = 1000;

/// Reads `daticert.xml`. Returns what was read up to the first error, and the problem if any.
///
/// quick-xml never reads a DTD, never expands a declared entity and never fetches anything: a
/// `<!DOCTYPE>` (with or without an internal subset naming `SYSTEM` entities) is skipped, and a
/// reference to any entity other than the five predefined ones stays in the text as written.
///
/// Public for the fuzz target `pec_daticert` (docs/fuzzing.md): the pipeline reaches it only
/// through [`classify`](super::classify).
pub fn read_daticert(xml: &[u8]) -> (Daticert, Option<String>) {
    let (text, note) = xml_text(xml);
    let mut reader = Reader::from_str(&text);
    let mut state = XmlState::default();
    let mut problem = None;
    loop {
        match reader.read_event() {
            Ok(Event::Start(element)) => state.start(&element, false),
            Ok(Event::Empty(element)) => state.start(&element, true),
            Ok(Event::End(_)) => state.end(),
            Ok(Event::Text(text)) => state.text.push_str(&text.xml10_content()),
            Ok(Event::CData(data)) => state.text.push_str(&data.xml10_content()),
            Ok(Event::GeneralRef(reference)) => {
                let resolved = match reference.resolve_char_ref() {
                    Ok(Some(ch)) => Some(ch.to_string()),
                    Ok(None) => resolve_predefined_entity(&reference).map(str::to_owned),
                    Err(_) => None,
                };
                match resolved {
                    Some(value) => state.text.push_str(&value),
                    None => {
                        state.text.push('&');
                        state.text.push_str(&reference);
                        state.text.push(';');
                    }
                }
            }
            Ok(Event::Eof) => {
                if let Some(open) = state.path.last() {
                    problem = Some(format!(
                        "daticert.xml is malformed: document ends inside <{open}>"
                    ));
                } else if !state.saw_root {
                    problem = Some("daticert.xml is malformed: no root element".to_owned());
                }
                break;
            }
            // Declaration, DOCTYPE, comments, processing instructions: nothing to read.
            Ok(_) => {}
            Err(error) => {
                problem = Some(format!(
                    "daticert.xml is malformed: {error} (at byte {})",
                    reader.error_position()
                ));
                break;
            }
        }
    }
    let root_problem = state
        .root
        .as_deref()
        .filter(|root| !root.eq_ignore_ascii_case("postacert"))
        .map(|root| format!("daticert.xml root is <{root}>, not <postacert>"));
    let problem = [problem, root_problem, note]
        .into_iter()
        .flatten()
        .collect::<Vec<_>>();
    let problem = (!problem.is_empty()).then(|| problem.join("; "));
    (state.finish(), problem)
}

/// The document as text. UTF-8 is what the rules prescribe; a declared other encoding is
/// honoured when mail-parser knows it, and undeclared non-UTF-8 is read as windows-1252 (what
/// such producers really write) and reported.
fn xml_text(xml: &[u8]) -> (Cow<'_, str>, Option<String>) {
    let xml = xml.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(xml);
    if let Some(label) = declared_encoding(xml) {
        let is_utf8 = label.eq_ignore_ascii_case("utf-8") || label.eq_ignore_ascii_case("utf8");
        if !is_utf8 {
            if let Some(decode) = charset_decoder(label.as_bytes()) {
                return (Cow::Owned(decode(xml)), None);
            }
        }
    }
    match std::str::from_utf8(xml) {
        Ok(text) => (Cow::Borrowed(text), None),
        Err(_) => {
            let text = match charset_decoder(b"windows-1252") {
                Some(decode) => decode(xml),
                None => String::from_utf8_lossy(xml).into_owned(),
            };
            (
                Cow::Owned(text),
                Some("daticert.xml is not UTF-8, read as windows-1252".to_owned()),
            )
        }
    }
}

/// The `encoding` pseudo-attribute of an `<?xml …?>` declaration.
fn declared_encoding(xml: &[u8]) -> Option<String> {
    let declaration = xml.strip_prefix(b"<?xml")?;
    let end = declaration.windows(2).position(|w| w == b"?>")?;
    let declaration = std::str::from_utf8(declaration.get(..end)?).ok()?;
    let (_, after) = declaration.split_once("encoding")?;
    let after = after.trim_start().strip_prefix('=')?.trim_start();
    let quote = after.chars().next().filter(|c| *c == '"' || *c == '\'')?;
    let value = after.strip_prefix(quote)?;
    value
        .split_once(quote)
        .map(|(value, _)| value.trim().to_owned())
}

/// The element walk: a stack of open element names and the text of the innermost one.
#[derive(Default)]
struct XmlState {
    path: Vec<String>,
    text: String,
    saw_root: bool,
    root: Option<String>,
    daticert: Daticert,
    destinatario_tipo: Option<String>,
    giorno: Option<String>,
    ora: Option<String>,
    zona: Option<String>,
}

impl XmlState {
    fn start(&mut self, element: &BytesStart<'_>, empty: bool) {
        let name = element.local_name().as_ref().to_ascii_lowercase();
        if !self.saw_root {
            self.saw_root = true;
            self.root = Some(name.clone());
        }
        let attr = |wanted: &str| attribute(element, wanted);
        match (self.path.len(), name.as_str()) {
            (0, _) => {
                self.daticert.tipo = attr("tipo");
                self.daticert.errore = attr("errore");
            }
            (_, "destinatari") => self.destinatario_tipo = attr("tipo"),
            (_, "data") => self.zona = self.zona.take().or_else(|| attr("zona")),
            (_, "ricevuta") => {
                self.daticert.ricevuta = self.daticert.ricevuta.take().or_else(|| attr("tipo"))
            }
            _ => {}
        }
        self.text.clear();
        if empty {
            // `<destinatari tipo="…"/>` has no address: nothing to keep.
            self.destinatario_tipo = None;
        } else {
            self.path.push(name);
        }
    }

    fn end(&mut self) {
        let Some(name) = self.path.pop() else {
            return;
        };
        let text = std::mem::take(&mut self.text);
        let value = Some(text.trim().to_owned()).filter(|v| !v.is_empty());
        let d = &mut self.daticert;
        // The first occurrence wins: a duplicate cannot override what came first.
        let keep = |slot: &mut Option<String>| {
            if slot.is_none() {
                *slot = value.clone();
            }
        };
        match name.as_str() {
            "mittente" => keep(&mut d.mittente),
            "risposte" => keep(&mut d.risposte),
            "oggetto" => keep(&mut d.oggetto),
            "gestore-emittente" => keep(&mut d.gestore_emittente),
            "identificativo" => keep(&mut d.identificativo),
            "msgid" if d.msgid.is_none() => d.msgid = value.as_deref().and_then(nonempty_id),
            "consegna" => keep(&mut d.consegna),
            "errore-esteso" => keep(&mut d.errore_esteso),
            "giorno" => keep(&mut self.giorno),
            "ora" => keep(&mut self.ora),
            "destinatari" => {
                let tipo = self.destinatario_tipo.take();
                if let Some(address) = value {
                    d.destinatari.push(Destinatario { address, tipo });
                }
            }
            _ => {}
        }
    }

    /// The collected fields; `data` from whatever of giorno/ora/zona was read, so a document
    /// cut off after `<ora>` still keeps its time.
    fn finish(self) -> Daticert {
        let mut daticert = self.daticert;
        if self.giorno.is_some() || self.ora.is_some() {
            daticert.data = Some(CertifiedTime::new(
                self.giorno.as_deref().unwrap_or_default(),
                self.ora.as_deref().unwrap_or_default(),
                self.zona.as_deref(),
            ));
        }
        daticert
    }
}

/// An attribute's value by local name, entities resolved where possible (an undefined entity
/// leaves the value as written), trimmed; `None` when absent or empty.
fn attribute(element: &BytesStart<'_>, wanted: &str) -> Option<String> {
    element
        .attributes()
        .flatten()
        .find(|a| a.key.local_name().as_ref().eq_ignore_ascii_case(wanted))
        .map(|a| {
            a.normalized_value(XmlVersion::Implicit1_0)
                .map(Cow::into_owned)
                .unwrap_or_else(|_| a.value.clone().into_owned())
        })
        .map(|v| v.trim().to_owned())
        .filter(|v| !v.is_empty())
}

/// `dd/mm/yyyy` + `HH:MM[:SS]` + `±HHMM` (or `±HH:MM`, or none = UTC) → unix millis.
pub(super) fn certified_millis(giorno: &str, ora: &str, zona: Option<&str>) -> Option<i64> {
    let number = |s: &str| -> Option<u32> {
        let s = s.trim();
        (!s.is_empty() && s.len() <= 4 && s.bytes().all(|b| b.is_ascii_digit()))
            .then(|| s.parse().ok())
            .flatten()
    };
    let mut day = giorno.split('/');
    let (d, m, y) = (day.next()?, day.next()?, day.next()?);
    if day.next().is_some() {
        return None;
    }
    let mut clock = ora.split(':');
    let (h, min) = (clock.next()?, clock.next()?);
    let s = clock.next().unwrap_or("0");
    if clock.next().is_some() {
        return None;
    }
    let month = time::Month::try_from(u8::try_from(number(m)?).ok()?).ok()?;
    let date = time::Date::from_calendar_date(
        i32::try_from(number(y)?).ok()?,
        month,
        u8::try_from(number(d)?).ok()?,
    )
    .ok()?;
    let clock = time::Time::from_hms(
        u8::try_from(number(h)?).ok()?,
        u8::try_from(number(min)?).ok()?,
        u8::try_from(number(s)?).ok()?,
    )
    .ok()?;
    let offset = match zona {
        None => time::UtcOffset::UTC,
        Some(zona) => zone_offset(zona)?,
    };
    let seconds = time::PrimitiveDateTime::new(date, clock)
        .assume_offset(offset)
        .unix_timestamp();
    seconds.checked_mul(MILLIS_PER_SECOND)
}

/// `+0100`, `-0530`, `+01:00`, `Z`.
fn zone_offset(zona: &str) -> Option<time::UtcOffset> {
    let zona = zona.trim();
    if zona.eq_ignore_ascii_case("z") {
        return Some(time::UtcOffset::UTC);
    }
    let (sign, digits) = if let Some(digits) = zona.strip_prefix('+') {
        (1i8, digits)
    } else if let Some(digits) = zona.strip_prefix('-') {
        (-1i8, digits)
    } else {
        return None;
    };
    let digits: String = digits.chars().filter(|c| *c != ':').collect();
    if digits.len() != 4 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let (hours, minutes) = digits.split_at_checked(2)?;
    let hours: i8 = hours.parse().ok()?;
    let minutes: i8 = minutes.parse().ok()?;
    time::UtcOffset::from_hms(sign * hours, sign * minutes, 0).ok()
}
