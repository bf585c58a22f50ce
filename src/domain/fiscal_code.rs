//! `FiscalCode`: the Italian *codice fiscale* a citizen types into the web page, parsed into
//! one normalised form (uppercase, no spaces) or refused with an error a citizen can act on.
//!
//! This module owns the *shape* of the code: the 16-character personal code (letters, birth
//! date and sex, Belfiore municipality code, check letter, *omocodia* substitutions) and the
//! 11-digit numeric code (companies, associations, some temporary personal codes, with its
//! Luhn-like check digit). It is pure: no I/O, no async, and it never panics, whatever the
//! input. It must not decide whether a code *belongs* to anyone: only the Agenzia delle
//! Entrate knows that, and a well-formed code is not proof of identity. Nor does it check the
//! surname/name letters or the Belfiore code against a registry — the check letter already
//! catches almost every typo, which is what a web form needs.

use std::fmt;

/// A syntactically valid codice fiscale, uppercase and without spaces, exactly as written
/// (omocodic substitution letters are kept: they are part of the code). Made only by
/// [`FiscalCode::parse`] (or `str::parse`), so holding one means the shape was checked.
///
/// `Debug` shows only the masked form so that the code, which is personal data, does not end
/// up in logs by accident; use [`FiscalCode::as_str`] where the full code is really needed.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct FiscalCode {
    code: String,
    kind: FiscalCodeKind,
}

/// Which of the two shapes a [`FiscalCode`] has.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FiscalCodeKind {
    /// The 16-character code of a natural person.
    Person,
    /// The 11-digit numeric code (partita IVA / codice fiscale of a company or association,
    /// or a temporary code given to a person).
    Numeric,
}

/// Why a string is not a codice fiscale. Ordered roughly by how early a reader would notice.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FiscalCodeError {
    /// Nothing but whitespace was entered.
    Empty,
    /// Not 16 characters, and not 11 digits.
    Length,
    /// A character that is not an ASCII letter or digit, or a letter/digit where the other
    /// belongs (surname/name letters, the municipality letter).
    Characters,
    /// The 9th character is not one of the month letters `ABCDEHLMPRST`.
    Month,
    /// The day of birth is not 01–31 (men) or 41–71 (women: day + 40).
    Day,
    /// Day and month exist separately but not together (30 February, 31 April, 29 February
    /// of a year that is not a leap year in either century).
    Date,
    /// A letter in one of the seven digit positions that is not an omocodia substitution
    /// letter (`LMNPQRSTUV`).
    Omocodia,
    /// The check character (16th) or check digit (11th) does not match the rest.
    Check,
}

impl FiscalCodeError {
    /// The error in plain Italian, for the citizen page.
    pub fn message_it(&self) -> &'static str {
        match self {
            Self::Empty => "Inserisca il codice fiscale.",
            Self::Length => "Il codice fiscale deve avere 16 caratteri (o 11 cifre).",
            Self::Characters => {
                "Il codice fiscale contiene un carattere non valido o fuori posto: \
                 controlli di averlo copiato bene dalla tessera sanitaria."
            }
            Self::Month => {
                "La lettera del mese di nascita (il nono carattere) non è valida: \
                 controlli di averla scritta bene."
            }
            Self::Day => {
                "Il giorno di nascita nel codice fiscale (decimo e undicesimo carattere) \
                 non è valido: controlli di averlo scritto bene."
            }
            Self::Date => {
                "La data di nascita contenuta nel codice fiscale non esiste: \
                 controlli di averlo scritto bene."
            }
            Self::Omocodia => {
                "Nel codice fiscale c'è una lettera dove dovrebbe esserci una cifra: \
                 controlli di averlo scritto bene."
            }
            Self::Check => {
                "L'ultimo carattere del codice fiscale non corrisponde: \
                 controlli di averlo scritto bene."
            }
        }
    }

    /// The error in plain English, for the citizen page.
    pub fn message_en(&self) -> &'static str {
        match self {
            Self::Empty => "Please enter your tax code (codice fiscale).",
            Self::Length => "The tax code must have 16 characters (or 11 digits).",
            Self::Characters => {
                "The tax code contains a character that is not valid or not in the right \
                 place: please copy it carefully from your health insurance card."
            }
            Self::Month => {
                "The letter for the month of birth (the 9th character) is not valid: \
                 please check that you typed it correctly."
            }
            Self::Day => {
                "The day of birth in the tax code (10th and 11th characters) is not valid: \
                 please check that you typed it correctly."
            }
            Self::Date => {
                "The date of birth in the tax code does not exist: \
                 please check that you typed it correctly."
            }
            Self::Omocodia => {
                "The tax code has a letter where a digit should be: \
                 please check that you typed it correctly."
            }
            Self::Check => {
                "The last character of the tax code does not match the others: \
                 please check that you typed it correctly."
            }
        }
    }
}

impl fmt::Display for FiscalCodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.message_en())
    }
}

impl std::error::Error for FiscalCodeError {}

/// Length of the personal code.
const PERSON_LEN: usize = 16;
/// Length of the numeric code.
const NUMERIC_LEN: usize = 11;
/// Month letters, January to December (the letters were chosen to be hard to confuse with
/// digits and with each other, hence the gaps).
const MONTH_LETTERS: &[u8; 12] = b"ABCDEHLMPRST";
/// Omocodia substitution letters for the digits 0 to 9. When two people would get the same
/// code, the Agenzia replaces digits (right to left) with these letters.
const OMOCODIA_LETTERS: &[u8; 10] = b"LMNPQRSTUV";
/// The seven 0-based positions that hold digits (or their omocodia letters): year (6, 7),
/// day (9, 10), municipality number (12, 13, 14).
const DIGIT_POSITIONS: [usize; 7] = [6, 7, 9, 10, 12, 13, 14];
/// Value of a character in an odd (1-based) position, indexed by digit value or letter
/// index (the official table maps digit `d` and the `d`-th letter alike).
const ODD_VALUES: [u32; 26] = [
    1, 0, 5, 7, 9, 13, 15, 17, 19, 21, 2, 4, 18, 20, 11, 3, 6, 8, 12, 14, 16, 10, 22, 25, 24, 23,
];

/// See [`FiscalCode::parse`].
fn parse(input: &str) -> Result<FiscalCode, FiscalCodeError> {
    let compact: String = input.chars().filter(|c| !c.is_whitespace()).collect();
    if compact.is_empty() {
        return Err(FiscalCodeError::Empty);
    }
    // ASCII only, checked before uppercasing: Unicode uppercasing can change the length
    // ("ß" → "SS") and would let look-alike letters through.
    if !compact.chars().all(|c| c.is_ascii_alphanumeric()) {
        return Err(FiscalCodeError::Characters);
    }
    let code = compact.to_ascii_uppercase();
    match code.len() {
        PERSON_LEN => parse_person(code),
        // Eleven characters with letters in them is most likely a personal code cut short,
        // so the length message ("16 characters or 11 digits") is the helpful one.
        NUMERIC_LEN if code.bytes().all(|b| b.is_ascii_digit()) => parse_numeric(code),
        _ => Err(FiscalCodeError::Length),
    }
}

impl FiscalCode {
    /// Parses what a citizen typed: surrounding and inner whitespace (including the no-break
    /// spaces that copy-and-paste brings) is removed and letters are uppercased.
    pub fn parse(input: &str) -> Result<FiscalCode, FiscalCodeError> {
        parse(input)
    }

    /// The normalised code.
    pub fn as_str(&self) -> &str {
        &self.code
    }

    /// Person or numeric code.
    pub fn kind(&self) -> FiscalCodeKind {
        self.kind
    }

    /// The code with all but the first three and the last character replaced by `*`, same
    /// length: enough for a citizen to recognise their own code on a page or in a mail
    /// without showing it whole.
    pub fn masked(&self) -> String {
        let s = self.as_str();
        let n = s.chars().count();
        s.chars()
            .enumerate()
            .map(|(i, c)| if i < 3 || i + 1 == n { c } else { '*' })
            .collect()
    }
}

impl std::str::FromStr for FiscalCode {
    type Err = FiscalCodeError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        parse(s)
    }
}

impl fmt::Debug for FiscalCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match self.kind {
            FiscalCodeKind::Person => "Person",
            FiscalCodeKind::Numeric => "Numeric",
        };
        f.debug_tuple(kind).field(&self.masked()).finish()
    }
}

/// `code` is 16 uppercase ASCII letters and digits.
fn parse_person(code: String) -> Result<FiscalCode, FiscalCodeError> {
    let b = code.as_bytes();
    // Surname (1–3), name (4–6) and the municipality letter (12) are letters only.
    if !b[..6].iter().all(u8::is_ascii_uppercase) || !b[11].is_ascii_uppercase() {
        return Err(FiscalCodeError::Characters);
    }
    // Map omocodia letters back to digits before looking at the date.
    let mut digits = [0u8; 7];
    for (slot, &pos) in digits.iter_mut().zip(DIGIT_POSITIONS.iter()) {
        *slot = digit_value(b[pos]).ok_or(FiscalCodeError::Omocodia)?;
    }
    let month = MONTH_LETTERS
        .iter()
        .position(|&m| m == b[8])
        .ok_or(FiscalCodeError::Month)?
        + 1;
    let year = digits[0] * 10 + digits[1];
    let day = match digits[2] * 10 + digits[3] {
        d @ 1..=31 => d,
        d @ 41..=71 => d - 40,
        _ => return Err(FiscalCodeError::Day),
    };
    if day > days_in_month(year, month) {
        return Err(FiscalCodeError::Date);
    }
    // The check letter is computed over the code as written, substitution letters included.
    if check_letter(&b[..PERSON_LEN - 1]) != b[PERSON_LEN - 1] {
        return Err(FiscalCodeError::Check);
    }
    Ok(FiscalCode {
        code,
        kind: FiscalCodeKind::Person,
    })
}

/// `code` is 11 ASCII digits.
fn parse_numeric(code: String) -> Result<FiscalCode, FiscalCodeError> {
    let d: Vec<u32> = code.bytes().map(|b| u32::from(b - b'0')).collect();
    let sum: u32 = d[..NUMERIC_LEN - 1]
        .iter()
        .enumerate()
        .map(|(i, &x)| {
            if i % 2 == 0 {
                // 1st, 3rd, … 9th digit (1-based odd positions): as is.
                x
            } else {
                // 2nd, 4th, … 10th: doubled, digits summed (Luhn).
                let y = 2 * x;
                if y > 9 {
                    y - 9
                } else {
                    y
                }
            }
        })
        .sum();
    if (10 - sum % 10) % 10 != d[NUMERIC_LEN - 1] {
        return Err(FiscalCodeError::Check);
    }
    Ok(FiscalCode {
        code,
        kind: FiscalCodeKind::Numeric,
    })
}

/// A digit, or the digit an omocodia letter stands for.
fn digit_value(b: u8) -> Option<u8> {
    if b.is_ascii_digit() {
        return Some(b - b'0');
    }
    OMOCODIA_LETTERS
        .iter()
        .position(|&l| l == b)
        .and_then(|p| u8::try_from(p).ok())
}

/// Days in `month` (1–12) of the two-digit year `yy`. The code does not say the century, so
/// 29 February is allowed if either 19yy or 20yy is a leap year — for a multiple of four that
/// is always true (yy = 00: 2000 is a leap year though 1900 is not).
fn days_in_month(yy: u8, month: usize) -> u8 {
    let leap = |y: u32| (y.is_multiple_of(4) && !y.is_multiple_of(100)) || y.is_multiple_of(400);
    let yy = u32::from(yy);
    match month {
        2 if leap(1900 + yy) || leap(2000 + yy) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// The check letter of the first 15 characters (uppercase ASCII letters and digits).
fn check_letter(first15: &[u8]) -> u8 {
    let sum: u32 = first15
        .iter()
        .enumerate()
        .map(|(i, &c)| {
            let index = match c {
                b'0'..=b'9' => c - b'0',
                b'A'..=b'Z' => c - b'A',
                // Unreachable after the character check; any value keeps this total.
                _ => 0,
            };
            // `i` is 0-based, so even `i` is an odd 1-based position.
            if i % 2 == 0 {
                ODD_VALUES[usize::from(index)]
            } else {
                u32::from(index)
            }
        })
        .sum();
    // `sum % 26` is below 26, so the cast cannot truncate.
    b'A' + (sum % 26) as u8
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Completes 15 characters with their check letter, computed independently of the code
    /// under test: the odd-position table written the other way round, as the letter whose
    /// index is the value ("BAKPLCQDREVOSFTGUHMINJWZYX": B/1 → 0, A/0 → 1, K → 2, …), with
    /// digits first turned into the letter of the same index.
    fn with_check(first15: &str) -> String {
        const BY_VALUE: &str = "BAKPLCQDREVOSFTGUHMINJWZYX";
        let letter_index = |c: char| -> u32 {
            if let Some(d) = c.to_digit(10) {
                d
            } else {
                u32::from(c) - u32::from('A')
            }
        };
        let mut sum = 0;
        for (i, c) in first15.chars().enumerate() {
            let as_letter = char::from_u32(u32::from('A') + letter_index(c)).unwrap();
            if (i + 1) % 2 == 1 {
                sum += BY_VALUE.find(as_letter).unwrap() as u32;
            } else {
                sum += letter_index(c);
            }
        }
        format!(
            "{first15}{}",
            char::from_u32(u32::from('A') + sum % 26).unwrap()
        )
    }

    fn person(s: &str) -> FiscalCode {
        FiscalCode {
            code: s.to_string(),
            kind: FiscalCodeKind::Person,
        }
    }

    fn numeric(s: &str) -> FiscalCode {
        FiscalCode {
            code: s.to_string(),
            kind: FiscalCodeKind::Numeric,
        }
    }

    #[test]
    fn the_classic_mario_rossi_example_is_valid() {
        // Mario Rossi, born 10 December 1985 in San Giuliano Terme (A562); checked by hand:
        // odd positions R S R 8 T 0 5 2 → 8+12+8+19+14+1+13+5 = 80, even positions
        // S M A 5 1 A 6 → 18+12+0+5+1+0+6 = 42, 122 mod 26 = 18 → S.
        assert_eq!(parse("RSSMRA85T10A562S"), Ok(person("RSSMRA85T10A562S")));
        assert_eq!(with_check("RSSMRA85T10A562"), "RSSMRA85T10A562S");
    }

    #[test]
    fn the_test_helper_agrees_with_the_implementation() {
        for first15 in ["BNCLRA90A41F205", "SMTJHN75B20Z404", "RSSMRAURTMLARSN"] {
            let b = first15.as_bytes();
            assert_eq!(
                with_check(first15).as_bytes()[15],
                check_letter(b),
                "{first15}"
            );
        }
    }

    #[test]
    fn men_born_in_italy_are_accepted() {
        // Giuseppe Bianchi, 15 July 1980, Milano (F205).
        assert_eq!(parse("BNCGPP80L15F205Y"), Ok(person("BNCGPP80L15F205Y")));
        assert_eq!(with_check("BNCGPP80L15F205"), "BNCGPP80L15F205Y");
        // Every month letter, on the 28th of a month.
        for m in "ABCDEHLMPRST".chars() {
            let code = with_check(&format!("RSSMRA85{m}28H501"));
            assert!(parse(&code).is_ok(), "{code}");
        }
    }

    #[test]
    fn women_have_forty_added_to_the_day() {
        // Laura Bianchi, 1 January 1990, Milano.
        assert_eq!(parse("BNCLRA90A41F205I"), Ok(person("BNCLRA90A41F205I")));
        // Giovanna Verdi, 11 May 1972, Roma (H501).
        assert_eq!(parse("VRDGNN72E51H501W"), Ok(person("VRDGNN72E51H501W")));
        // Sofia Ferrari, 31 March 2000: day 71 is the last valid one.
        assert_eq!(parse("FRRSFO00C71F205P"), Ok(person("FRRSFO00C71F205P")));
    }

    #[test]
    fn people_born_abroad_have_a_z_code_for_the_state() {
        // John Smith, 20 February 1975, United States (Z404).
        assert_eq!(parse("SMTJHN75B20Z404P"), Ok(person("SMTJHN75B20Z404P")));
        // Anna Müller, 22 August 1988, Switzerland (Z133).
        assert_eq!(parse("MLLNNA88M62Z133B"), Ok(person("MLLNNA88M62Z133B")));
    }

    #[test]
    fn omocodic_codes_with_one_three_and_seven_substitutions_are_accepted() {
        // The Agenzia substitutes from the right: 2 → N, then 6 → S and 5 → R, … and the check
        // letter is recomputed over the substituted code each time.
        let one = with_check("RSSMRA85T10A56N");
        let three = with_check("RSSMRA85T10ARSN");
        let seven = with_check("RSSMRAURTMLARSN");
        assert_eq!(one, "RSSMRA85T10A56NH");
        assert_eq!(three, "RSSMRA85T10ARSNO");
        assert_eq!(seven, "RSSMRAURTMLARSNL");
        for code in [one, three, seven] {
            assert_eq!(parse(&code), Ok(person(&code)), "{code}");
        }
    }

    #[test]
    fn an_omocodic_code_keeps_its_letters_and_needs_its_own_check_letter() {
        // The original check letter (S) is wrong for the substituted code.
        assert_eq!(parse("RSSMRA85T10A56NS"), Err(FiscalCodeError::Check));
        assert_eq!(
            parse("rssmraurtmlarsnl").unwrap().as_str(),
            "RSSMRAURTMLARSNL"
        );
    }

    #[test]
    fn omocodia_letters_are_decoded_before_the_date_is_checked() {
        // Day "3L" is 30: 30 February does not exist.
        assert_eq!(
            parse("RSSMRA85B3LH501F"),
            Err(FiscalCodeError::Date),
            "check letter is right, only the date is wrong"
        );
        assert_eq!(with_check("RSSMRA85B3LH501"), "RSSMRA85B3LH501F");
        // Day "ML" is 10 and year "UR" is 85.
        let code = with_check("RSSMRAURBMLH501");
        assert!(parse(&code).is_ok(), "{code}");
        // Day "7M" is 71 (a woman born on the 31st); "7N" would be 72.
        assert!(parse(&with_check("RSSMRA85C7MH501")).is_ok());
        assert_eq!(
            parse(&with_check("RSSMRA85C7NH501")),
            Err(FiscalCodeError::Day)
        );
    }

    #[test]
    fn a_letter_that_is_not_an_omocodia_letter_in_a_digit_position_is_refused() {
        assert_eq!(parse("RSSMRAA5T10A562S"), Err(FiscalCodeError::Omocodia));
        assert_eq!(
            parse(&with_check("RSSMRA85T1AA562")),
            Err(FiscalCodeError::Omocodia)
        );
        assert_eq!(
            parse(&with_check("RSSMRA85T10A56W")),
            Err(FiscalCodeError::Omocodia)
        );
        // O looks like 0 but is not a substitution letter.
        assert_eq!(
            parse(&with_check("RSSMRA85T1OA562")),
            Err(FiscalCodeError::Omocodia)
        );
    }

    #[test]
    fn twenty_ninth_of_february_needs_a_leap_year_in_some_century() {
        // yy = 00: 2000 is a leap year (1900 is not): accepted.
        assert_eq!(parse("RSSMRA00B29H501Y"), Ok(person("RSSMRA00B29H501Y")));
        // 1996 (a woman: 29 + 40 = 69).
        assert_eq!(parse("RSSMRA96B69H501C"), Ok(person("RSSMRA96B69H501C")));
        // yy = 23: neither 1923 nor 2023 is.
        assert_eq!(parse("RSSMRA23B29H501F"), Err(FiscalCodeError::Date));
        assert_eq!(
            parse(&with_check("RSSMRA23B69H501")),
            Err(FiscalCodeError::Date)
        );
    }

    #[test]
    fn days_that_do_not_exist_in_their_month_are_refused() {
        assert_eq!(parse("RSSMRA85B30H501C"), Err(FiscalCodeError::Date));
        assert_eq!(parse("RSSMRA85D31H501I"), Err(FiscalCodeError::Date));
        assert_eq!(
            parse(&with_check("RSSMRA85R71H501")),
            Ok(person(&with_check("RSSMRA85R71H501"))),
            "31 October exists"
        );
        assert_eq!(
            parse(&with_check("RSSMRA85S71H501")),
            Err(FiscalCodeError::Date),
            "31 November does not"
        );
    }

    #[test]
    fn days_outside_both_ranges_are_refused() {
        for first15 in [
            "RSSMRA85T32A562",
            "RSSMRA85T72A562",
            "RSSMRA85T00A562",
            "RSSMRA85T40A562",
            "RSSMRA85T99A562",
        ] {
            assert_eq!(
                parse(&with_check(first15)),
                Err(FiscalCodeError::Day),
                "{first15}"
            );
        }
        assert_eq!(parse("RSSMRA85T32A562Y"), Err(FiscalCodeError::Day));
        assert_eq!(parse("RSSMRA85T72A562C"), Err(FiscalCodeError::Day));
    }

    #[test]
    fn a_letter_that_is_not_a_month_is_refused() {
        assert_eq!(parse("RSSMRA85F10A562R"), Err(FiscalCodeError::Month));
        for m in "FGIJKNOQUVWXYZ0".chars() {
            let code = with_check(&format!("RSSMRA85{m}10A562"));
            assert_eq!(parse(&code), Err(FiscalCodeError::Month), "{code}");
        }
    }

    #[test]
    fn a_wrong_check_letter_is_refused() {
        for last in "ABCDEFGHIJKLMNOPQRTUVWXYZ0123456789".chars() {
            let code = format!("RSSMRA85T10A562{last}");
            assert_eq!(parse(&code), Err(FiscalCodeError::Check), "{code}");
        }
        // Two letters swapped: the check letter catches it.
        assert_eq!(parse("SRSMRA85T10A562S"), Err(FiscalCodeError::Check));
    }

    #[test]
    fn digits_in_the_letter_positions_are_refused() {
        assert_eq!(parse("RSS1RA85T10A562S"), Err(FiscalCodeError::Characters));
        assert_eq!(parse("RSSMRA85T101562S"), Err(FiscalCodeError::Characters));
    }

    #[test]
    fn wrong_lengths_are_refused() {
        for s in [
            "RSSMRA85T10A562",   // 15
            "RSSMRA85T10A562SX", // 17
            "0074311015",        // 10
            "007431101570",      // 12
            "R",
            "0074311015A", // 11, but not all digits
        ] {
            assert_eq!(parse(s), Err(FiscalCodeError::Length), "{s}");
        }
    }

    #[test]
    fn empty_input_is_refused() {
        assert_eq!(parse(""), Err(FiscalCodeError::Empty));
        assert_eq!(parse("  \t\n\u{a0}"), Err(FiscalCodeError::Empty));
    }

    #[test]
    fn non_ascii_and_punctuation_are_refused() {
        for s in [
            "RSSMRA85T10A562Ś",
            "RSSMRÀ85T10A562S",
            "RSSMRA85T10A562S😀",
            "RSSMRA85T10A562-",
            "RSS-MRA-85T10-A562S",
            "ß",
            "００７４３１１０１５７", // full-width digits
        ] {
            assert_eq!(parse(s), Err(FiscalCodeError::Characters), "{s}");
        }
    }

    #[test]
    fn lowercase_and_spaces_are_normalised() {
        let code = parse("  rss mra 85t10 a562s\t").unwrap();
        assert_eq!(code.as_str(), "RSSMRA85T10A562S");
        assert_eq!(code, person("RSSMRA85T10A562S"));
        // A no-break space from copy-and-paste.
        assert_eq!(
            parse("RSSMRA85T10\u{a0}A562S").unwrap().as_str(),
            "RSSMRA85T10A562S"
        );
        assert_eq!(parse(" 007 431 101 57 ").unwrap(), numeric("00743110157"));
    }

    #[test]
    fn valid_numeric_codes_are_accepted() {
        // 0 0 7 4 3 1 1 0 1 5 | 7: odd 0+7+3+1+1 = 12, even 0+8+2+0+(10-9) = 11,
        // (10 - 23 % 10) % 10 = 7.
        assert_eq!(parse("00743110157"), Ok(numeric("00743110157")));
        // 1 2 3 4 5 6 7 8 9 0 | 3: odd 1+3+5+7+9 = 25, even 4+8+3+7+0 = 22, 47 → 3.
        assert_eq!(parse("12345678903"), Ok(numeric("12345678903")));
        // A sum that is a multiple of ten gives check digit 0: 1 9 → 1 + (18-9) = 10.
        assert!(parse("19000000000").is_ok());
    }

    #[test]
    fn a_numeric_code_with_a_wrong_check_digit_is_refused() {
        for s in ["00743110150", "00743110158", "12345678900", "07043110157"] {
            assert_eq!(parse(s), Err(FiscalCodeError::Check), "{s}");
        }
    }

    #[test]
    fn masking_keeps_three_first_and_one_last_character() {
        let p = parse("RSSMRA85T10A562S").unwrap();
        assert_eq!(p.masked(), "RSS************S");
        let n = parse("00743110157").unwrap();
        assert_eq!(n.masked(), "007*******7");
        assert_eq!(format!("{p:?}"), "Person(\"RSS************S\")");
        assert!(!format!("{n:?}").contains("00743110157"));
    }

    #[test]
    fn every_error_has_a_message_in_both_languages() {
        use FiscalCodeError::*;
        for e in [Empty, Length, Characters, Month, Day, Date, Omocodia, Check] {
            assert!(!e.message_it().is_empty());
            assert!(!e.message_en().is_empty());
            assert_ne!(e.message_it(), e.message_en());
            assert_eq!(e.to_string(), e.message_en());
        }
        assert_eq!(
            Length.message_it(),
            "Il codice fiscale deve avere 16 caratteri (o 11 cifre)."
        );
    }

    proptest! {
        #[test]
        fn parse_never_panics_on_arbitrary_strings(s in "\\PC{0,40}") {
            let _ = parse(&s);
        }

        #[test]
        fn parse_never_panics_on_code_shaped_strings(s in "[A-Za-z0-9 ]{0,20}") {
            let _ = parse(&s);
        }

        #[test]
        fn any_well_formed_person_code_is_accepted_and_a_changed_check_letter_refused(
            letters in "[A-Z]{6}",
            year in 0u8..100,
            month in 0usize..12,
            day in 1u8..=28,
            woman in any::<bool>(),
            town in "[A-Z][0-9]{3}",
            other in 1u8..26,
        ) {
            let m = char::from(MONTH_LETTERS[month]);
            let day = if woman { day + 40 } else { day };
            let code = with_check(&format!("{letters}{year:02}{m}{day:02}{town}"));
            prop_assert_eq!(parse(&code), Ok(person(&code)));
            let last = code.as_bytes()[15];
            let wrong = char::from(b'A' + (last - b'A' + other) % 26);
            let bad = format!("{}{wrong}", &code[..15]);
            prop_assert_eq!(parse(&bad), Err(FiscalCodeError::Check));
        }

        #[test]
        fn a_numeric_code_has_exactly_one_valid_check_digit(body in "[0-9]{10}") {
            let valid: Vec<_> = (0..10)
                .filter(|d| parse(&format!("{body}{d}")).is_ok())
                .collect();
            prop_assert_eq!(valid.len(), 1);
        }
    }
}
