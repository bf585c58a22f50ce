//! The policy a new citizen password must meet (pure: no hashing, no I/O; the web's
//! `password` module hashes and verifies).
//!
//! The policy follows NIST SP 800-63B §3.1.1.2 rather than composition rules: a minimum
//! length, a maximum, and a refusal of passwords that are known to be common or that contain
//! the citizen's own name or e-mail — no "one capital, one digit, one symbol", which pushes
//! people towards `Password1!` and helps nobody.
//!
//! `common_passwords.txt` (lowercase, one per line) holds a few thousand passwords of ten
//! characters or more: ones that top the published leaked-password lists, Italian ones
//! (football clubs and their founding years, names, "tiamo", "ciaociao", …), and the patterns
//! people use to stretch a short password to a length requirement (a name or a word followed
//! by digits or a year from 1950 to 2025, keyboard walks, repeated words). It is not
//! exhaustive and cannot be: it turns away the first guesses of an attacker, while the slow
//! hash and rate limiting elsewhere deal with the rest. Shorter passwords are not in it
//! because the length check already refuses them.

use std::collections::HashSet;
use std::fmt;
use std::sync::LazyLock;

/// Shortest acceptable password, in characters (not bytes: "perché" is six).
pub const MIN_LENGTH: usize = 10;

/// Longest acceptable password, in bytes. Far beyond any passphrase, and it keeps someone
/// from making the server hash megabytes per login attempt.
pub const MAX_BYTES: usize = 1024;

/// A name or e-mail local part shorter than this is not looked for in the password: "Ugo"
/// or "al" would refuse too many good passwords by accident.
const PERSONAL_DATUM_MIN_CHARS: usize = 4;

static COMMON: LazyLock<HashSet<&'static str>> = LazyLock::new(|| {
    include_str!("common_passwords.txt")
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty())
        .collect()
});

/// Why a new password is refused. Each one has a message for the citizen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PasswordProblem {
    /// Fewer than `min` characters.
    TooShort { min: usize },
    /// In the list of common passwords.
    Common,
    /// Contains (or is) the citizen's e-mail local part, first name or last name.
    SameAsPersonalData,
    /// Longer than [`MAX_BYTES`].
    TooLong,
}

impl PasswordProblem {
    /// The problem in plain Italian, for the citizen page.
    pub fn message_it(&self) -> String {
        match self {
            Self::TooShort { min } => format!(
                "La password deve avere almeno {min} caratteri. Un consiglio: \
                 tre o quattro parole a caso sono facili da ricordare e difficili da indovinare."
            ),
            Self::Common => "Questa password è tra le più usate ed è facile da indovinare: \
                             ne scelga un'altra."
                .to_string(),
            Self::SameAsPersonalData => "La password non deve contenere il suo nome, \
                                         il suo cognome o il suo indirizzo email."
                .to_string(),
            Self::TooLong => "La password è troppo lunga: ne scelga una più corta.".to_string(),
        }
    }

    /// The problem in plain English, for the citizen page.
    pub fn message_en(&self) -> String {
        match self {
            Self::TooShort { min } => format!(
                "The password must be at least {min} characters long. A tip: three or four \
                 random words are easy to remember and hard to guess."
            ),
            Self::Common => "This password is one of the most commonly used and is easy to \
                             guess: please choose another one."
                .to_string(),
            Self::SameAsPersonalData => "The password must not contain your first name, \
                                         last name or email address."
                .to_string(),
            Self::TooLong => "The password is too long: please choose a shorter one.".to_string(),
        }
    }
}

impl fmt::Display for PasswordProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message_en())
    }
}

impl std::error::Error for PasswordProblem {}

/// Checks a new password against the policy. `personal` holds what the citizen told us about
/// themselves: first name, last name, e-mail address (or just its local part). Any of them
/// with at least four characters must not appear in the password, ignoring case; for an
/// e-mail address only the part before `@` is looked for, and for every datum also its
/// spelling without spaces, dots, dashes, underscores and apostrophes ("De Luca" →
/// "deluca", "mario.rossi" → "mariorossi").
pub fn check(password: &str, personal: &[&str]) -> Result<(), PasswordProblem> {
    if password.len() > MAX_BYTES {
        return Err(PasswordProblem::TooLong);
    }
    if password.chars().count() < MIN_LENGTH {
        return Err(PasswordProblem::TooShort { min: MIN_LENGTH });
    }
    if is_common(password) {
        return Err(PasswordProblem::Common);
    }
    let lower = password.to_lowercase();
    let contains =
        |datum: &str| datum.chars().count() >= PERSONAL_DATUM_MIN_CHARS && lower.contains(datum);
    for datum in personal {
        let datum = match datum.rsplit_once('@') {
            Some((local, _domain)) => local,
            None => datum,
        };
        let datum = datum.trim().to_lowercase();
        let joined: String = datum
            .chars()
            .filter(|c| !(c.is_whitespace() || matches!(c, '.' | '-' | '_' | '\'' | '’')))
            .collect();
        if contains(&datum) || contains(&joined) {
            return Err(PasswordProblem::SameAsPersonalData);
        }
    }
    Ok(())
}

/// Whether the password is in the list of common passwords, ignoring case.
pub fn is_common(password: &str) -> bool {
    COMMON.contains(password.to_lowercase().as_str())
}

#[cfg(test)]
mod tests {
    use super::*;

    const MARIO: [&str; 3] = ["Mario", "Rossi", "mario.rossi85@example.it"];

    #[test]
    fn nine_characters_are_too_short() {
        assert_eq!(
            check("kjq7Wm2pX", &[]),
            Err(PasswordProblem::TooShort { min: 10 })
        );
        assert_eq!(check("", &[]), Err(PasswordProblem::TooShort { min: 10 }));
    }

    #[test]
    fn exactly_ten_characters_are_enough() {
        assert_eq!(check("kjq7Wm2pXz", &MARIO), Ok(()));
    }

    #[test]
    fn length_is_counted_in_characters_not_bytes() {
        // Nine characters, eighteen bytes.
        assert_eq!(
            check("èèèèèèèèè", &[]),
            Err(PasswordProblem::TooShort { min: 10 })
        );
        assert_eq!(check("perchéòàùx", &[]), Ok(()));
    }

    #[test]
    fn passwords_over_1024_bytes_are_too_long() {
        assert_eq!(check(&"x".repeat(1025), &[]), Err(PasswordProblem::TooLong));
        // 513 two-byte characters.
        assert_eq!(check(&"è".repeat(513), &[]), Err(PasswordProblem::TooLong));
        assert_eq!(check(&"x".repeat(1024), &[]), Ok(()));
    }

    #[test]
    fn common_passwords_are_refused_whatever_their_case() {
        for p in [
            "password1234",
            "Password1234",
            "QWERTYUIOP",
            "1234567890",
            "ForzaJuventus",
            "forzanapoli",
            "Juventus1897",
            "tiamo12345",
            "Alessandro1985",
            "passwordpassword",
        ] {
            assert!(is_common(p), "{p}");
            assert_eq!(check(p, &[]), Err(PasswordProblem::Common), "{p}");
        }
        assert!(!is_common("kjq7Wm2pXz"));
    }

    #[test]
    fn the_common_list_is_large_lowercase_long_enough_and_without_duplicates() {
        let lines: Vec<&str> = include_str!("common_passwords.txt").lines().collect();
        assert!(lines.len() >= 1000, "only {} entries", lines.len());
        assert_eq!(COMMON.len(), lines.len(), "duplicate or blank lines");
        for line in lines {
            assert_eq!(line, line.trim(), "{line:?}");
            assert_eq!(line, line.to_lowercase(), "{line:?}");
            assert!(line.chars().count() >= MIN_LENGTH, "{line:?} is too short");
        }
    }

    #[test]
    fn a_password_containing_the_email_local_part_is_refused() {
        assert_eq!(
            check("Mario.Rossi85-casa", &MARIO),
            Err(PasswordProblem::SameAsPersonalData)
        );
        // The local part alone works too, and so does its spelling without the dot.
        assert_eq!(
            check("xxmariorossi85xx", &["mario.rossi85"]),
            Err(PasswordProblem::SameAsPersonalData)
        );
        // Equal to it.
        assert_eq!(
            check("marcobianchi77", &["marcobianchi77@example.it"]),
            Err(PasswordProblem::SameAsPersonalData)
        );
    }

    #[test]
    fn a_password_containing_the_first_or_last_name_is_refused() {
        assert_eq!(
            check("verdeMARIOtavolo", &MARIO),
            Err(PasswordProblem::SameAsPersonalData)
        );
        assert_eq!(
            check("tavolo-rossi-verde", &MARIO),
            Err(PasswordProblem::SameAsPersonalData)
        );
        assert_eq!(
            check("delucapioggiaverde", &["Anna", "De Luca"]),
            Err(PasswordProblem::SameAsPersonalData)
        );
    }

    #[test]
    fn personal_data_shorter_than_four_characters_is_not_looked_for() {
        assert_eq!(
            check("ugo-verde-tavolo", &["Ugo", "Bo", "al@example.it"]),
            Ok(())
        );
    }

    #[test]
    fn a_long_random_passphrase_is_accepted() {
        assert_eq!(check("cavallo batteria graffetta corretto", &MARIO), Ok(()));
        assert_eq!(check("Tz9#qLm!v2@Rw8$eYk", &MARIO), Ok(()));
    }

    #[test]
    fn every_problem_has_a_message_in_both_languages() {
        for p in [
            PasswordProblem::TooShort { min: MIN_LENGTH },
            PasswordProblem::Common,
            PasswordProblem::SameAsPersonalData,
            PasswordProblem::TooLong,
        ] {
            assert!(!p.message_it().is_empty());
            assert_ne!(p.message_it(), p.message_en());
            assert_eq!(p.to_string(), p.message_en());
        }
        assert!(PasswordProblem::TooShort { min: 10 }
            .message_it()
            .contains("almeno 10 caratteri"));
    }
}
