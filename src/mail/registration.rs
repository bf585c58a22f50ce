//! `#registra` / `#record`: the first line of a staff member's new mail that registers a
//! report received by phone, at the counter or by letter on the citizen's behalf.
//!
//! ```text
//! #registra telefono|sportello|lettera EMAIL Nome Cognome
//! #record phone|counter|letter EMAIL First Last
//! ```
//!
//! EMAIL is `-` when the citizen gave no address; then the name is required. Pure parsing of
//! the text: whether the sender may register (staff of the area, authenticated) is intake's
//! decision (`intake::classify`), and a mail whose first line is not the command is none of
//! this module's business ([`find`] returns `None`).

use crate::domain::{AddressError, Channel, EmailAddress};

/// Characters of a citizen's name kept at most: a name, not a letter.
pub const MAX_NAME_CHARS: usize = 120;

/// A well-formed registration line and the report that follows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Registration {
    /// Phone, counter or letter.
    pub channel: Channel,
    /// The citizen's address, `None` for `-`.
    pub citizen: Option<EmailAddress>,
    /// The citizen's name as written (whitespace collapsed), if any.
    pub name: Option<String>,
    /// The report: the text after the command line, leading blank lines dropped, trimmed.
    pub body: String,
}

/// What is wrong with a `#registra` line; shown to the staff member who wrote it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RegistrationError {
    #[error(
        "manca il canale (telefono, sportello, lettera) / the channel is missing (phone, \
         counter, letter)"
    )]
    MissingChannel,
    #[error(
        "canale sconosciuto {0:?}: telefono, sportello o lettera / unknown channel {0:?}: \
         phone, counter or letter"
    )]
    UnknownChannel(String),
    #[error(
        "manca l'indirizzo del cittadino (o - se non l'ha dato) / the citizen's address is \
         missing (or - when they gave none)"
    )]
    MissingAddress,
    #[error("indirizzo non valido {0:?} ({1}) / invalid address {0:?} ({1})")]
    InvalidAddress(String, AddressError),
    #[error(
        "senza indirizzo (-) serve nome e cognome del cittadino / without an address (-) the \
         citizen's name is required"
    )]
    NameRequired,
    #[error(
        "nome troppo lungo (al massimo {MAX_NAME_CHARS} caratteri) / name too long (at most \
         {MAX_NAME_CHARS} characters)"
    )]
    NameTooLong,
}

/// The registration command of `text`, if its first non-empty line is `#registra` or
/// `#record` (any case) followed by a space or the end of the line. `None`: an ordinary
/// mail; `Some(Err)`: the command, written wrong.
pub fn find(text: &str) -> Option<Result<Registration, RegistrationError>> {
    let mut lines = text.lines().skip_while(|l| l.trim().is_empty());
    let first = lines.next()?.trim();
    let args = command_args(first)?;
    let body = lines
        .skip_while(|l| l.trim().is_empty())
        .collect::<Vec<_>>()
        .join("\n")
        .trim()
        .to_owned();
    Some(
        parse_args(args).map(|(channel, citizen, name)| Registration {
            channel,
            citizen,
            name,
            body,
        }),
    )
}

/// True when `text`'s first non-empty line is the registration command (well formed or
/// not): a cheap test before any configuration is looked at.
pub fn is_registration(text: &str) -> bool {
    text.lines()
        .find(|l| !l.trim().is_empty())
        .and_then(|l| command_args(l.trim()))
        .is_some()
}

/// What follows `#registra` / `#record` on `line`, or `None` when the line is another one.
fn command_args(line: &str) -> Option<&str> {
    let rest = line.strip_prefix('#')?;
    let word_end = rest.find(char::is_whitespace).unwrap_or(rest.len());
    let (word, args) = rest.split_at_checked(word_end)?;
    let word = word.to_lowercase();
    (word == "registra" || word == "record").then_some(args.trim())
}

type Parsed = (Channel, Option<EmailAddress>, Option<String>);

fn parse_args(args: &str) -> Result<Parsed, RegistrationError> {
    let mut words = args.split_whitespace();
    let channel_word = words.next().ok_or(RegistrationError::MissingChannel)?;
    let channel = match channel_word.to_lowercase().as_str() {
        "telefono" | "phone" => Channel::Phone,
        "sportello" | "counter" => Channel::Counter,
        "lettera" | "letter" => Channel::Letter,
        _ => return Err(RegistrationError::UnknownChannel(channel_word.to_owned())),
    };
    let address = words.next().ok_or(RegistrationError::MissingAddress)?;
    let citizen = match address {
        "-" => None,
        a => Some(
            EmailAddress::parse(a)
                .map_err(|e| RegistrationError::InvalidAddress(a.to_owned(), e))?,
        ),
    };
    let name = words.collect::<Vec<_>>().join(" ");
    if name.chars().count() > MAX_NAME_CHARS {
        return Err(RegistrationError::NameTooLong);
    }
    let name = (!name.is_empty()).then_some(name);
    if citizen.is_none() && name.is_none() {
        return Err(RegistrationError::NameRequired);
    }
    Ok((channel, citizen, name))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_phone_report_with_an_address_and_a_name_is_parsed_with_its_body() {
        let text = "\n  #registra telefono Anna.Bianchi@Example.IT Anna  Bianchi\n\n\
                    Buca in via Roma 3.\nPericolosa.\n";
        let r = find(text).expect("a command").expect("well formed");
        assert_eq!(r.channel, Channel::Phone);
        assert_eq!(
            r.citizen.as_ref().map(EmailAddress::as_str),
            Some("anna.bianchi@example.it")
        );
        assert_eq!(r.name.as_deref(), Some("Anna Bianchi"));
        assert_eq!(r.body, "Buca in via Roma 3.\nPericolosa.");
    }

    #[test]
    fn english_words_and_any_case_are_accepted() {
        for (line, channel) in [
            ("#RECORD Counter - Mario Rossi", Channel::Counter),
            ("#record letter - Mario Rossi", Channel::Letter),
            ("#Registra SPORTELLO - Mario Rossi", Channel::Counter),
            ("#registra lettera mario@example.it", Channel::Letter),
        ] {
            let r = find(line).expect("a command").expect(line);
            assert_eq!(r.channel, channel, "{line}");
            assert_eq!(r.body, "");
        }
    }

    #[test]
    fn without_an_address_the_name_is_required() {
        let r = find("#registra sportello - Mario Rossi\ntesto")
            .expect("a command")
            .expect("well formed");
        assert_eq!(r.citizen, None);
        assert_eq!(r.name.as_deref(), Some("Mario Rossi"));
        assert_eq!(
            find("#registra sportello -\ntesto"),
            Some(Err(RegistrationError::NameRequired))
        );
    }

    #[test]
    fn a_bad_line_names_its_problem() {
        assert_eq!(
            find("#registra fax a@b.it Anna"),
            Some(Err(RegistrationError::UnknownChannel("fax".into())))
        );
        assert_eq!(
            find("#registra"),
            Some(Err(RegistrationError::MissingChannel))
        );
        assert_eq!(
            find("#registra telefono"),
            Some(Err(RegistrationError::MissingAddress))
        );
        assert!(matches!(
            find("#registra telefono anna@ Anna"),
            Some(Err(RegistrationError::InvalidAddress(a, _))) if a == "anna@"
        ));
        assert!(matches!(
            find("#registra telefono a@b.it,c@d.it Anna"),
            Some(Err(RegistrationError::InvalidAddress(..)))
        ));
        let long = format!("#registra telefono - {}", "x".repeat(MAX_NAME_CHARS + 1));
        assert_eq!(find(&long), Some(Err(RegistrationError::NameTooLong)));
        let problem = find("#registra fax - Anna")
            .and_then(Result::err)
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(
            problem.contains("fax") && problem.contains("telefono"),
            "{problem}"
        );
    }

    #[test]
    fn the_reserved_no_address_cannot_be_typed_in() {
        assert!(matches!(
            find(&format!(
                "#registra telefono {} Anna",
                crate::domain::NO_ADDRESS
            )),
            Some(Err(RegistrationError::InvalidAddress(
                _,
                AddressError::Reserved
            )))
        ));
    }

    #[test]
    fn other_mail_is_not_a_registration() {
        for text in [
            "",
            "Buongiorno,\n#registra telefono - Mario Rossi",
            "#registrazione telefono - Mario Rossi",
            "#presa",
            "registra telefono - Mario Rossi",
        ] {
            assert_eq!(find(text), None, "{text:?}");
            assert!(!is_registration(text), "{text:?}");
        }
        assert!(is_registration("\n\n#registra fax"));
    }
}
