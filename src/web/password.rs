//! Citizen passwords: the policy a new password must meet, and hashing and verifying them.
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
//! hash below and rate limiting elsewhere deal with the rest. Shorter passwords are not in
//! it because the length check already refuses them.
//!
//! Hashes are Argon2id PHC strings with the OWASP minimum parameters (19 MiB, two passes, one
//! lane), which are also the `argon2` crate's defaults; they are spelled out here so that an
//! upgrade of the crate cannot change them silently. Hashing takes tens of milliseconds of
//! CPU, so it runs on tokio's blocking pool, never on a runtime worker — and at most one hash
//! per core at a time ([`HASHING`]): the blocking pool grows to hundreds of threads, and 128
//! parallel registrations once took the process from 150 MB to 2.5 GB that the allocator never
//! gave back (issue 10, finding 5). Waiting for a permit costs nothing but time.
//!
//! This module does not store, log or compare passwords in any other way, and knows nothing
//! of accounts: callers pass the data to check against and the PHC string they stored.

use std::collections::HashSet;
use std::fmt;
use std::sync::{Arc, LazyLock};

use anyhow::{anyhow, bail, Context};
use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::SaltString;
use argon2::{Algorithm, Argon2, Params, PasswordHash, PasswordHasher, PasswordVerifier, Version};
use secrecy::zeroize::Zeroizing;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Shortest acceptable password, in characters (not bytes: "perché" is six).
pub const MIN_LENGTH: usize = 10;

/// Longest acceptable password, in bytes. Far beyond any passphrase, and it keeps someone
/// from making the server hash megabytes per login attempt.
pub const MAX_BYTES: usize = 1024;

/// A name or e-mail local part shorter than this is not looked for in the password: "Ugo"
/// or "al" would refuse too many good passwords by accident.
const PERSONAL_DATUM_MIN_CHARS: usize = 4;

/// The most memory (KiB) and passes a stored hash may ask `verify` to spend. A corrupted or
/// tampered row must not make the server allocate gigabytes or spin for minutes; these are
/// far above the parameters `hash` uses.
const VERIFY_MAX_M_COST_KIB: u32 = 256 * 1024;
/// See [`VERIFY_MAX_M_COST_KIB`].
const VERIFY_MAX_T_COST: u32 = 16;

/// An Argon2id hash with the same parameters `hash` uses, of a password nobody needs to know:
/// `verify_dummy` checks against it so that a login for an unknown account costs the same as
/// one for a real account. A test keeps its parameters equal to `hasher()`'s.
const DUMMY_PHC: &str = "$argon2id$v=19$m=19456,t=2,p=1$\
                         JHFr3RK6ynWSvYgrHA/e0g$FV7ZflruXXaDndx71F0k2k0Jnnq1H9DpCzX49j0fkR0";

/// One permit per core: hashes (and verifications) running at once, each with its 19 MiB.
static HASHING: LazyLock<Arc<Semaphore>> = LazyLock::new(|| {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    Arc::new(Semaphore::new(cores))
});

/// Waits for a hashing permit. The permit moves into the blocking task, so a request that is
/// dropped while its hash runs (the client went away) still holds it until the hash ends.
async fn hashing_permit() -> anyhow::Result<OwnedSemaphorePermit> {
    Arc::clone(&HASHING)
        .acquire_owned()
        .await
        .context("the password hashing semaphore was closed")
}

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

/// Hashes a password into an Argon2id PHC string with a fresh random salt. Refuses passwords
/// longer than [`MAX_BYTES`] (`check` has already told the citizen).
pub async fn hash(password: String) -> anyhow::Result<String> {
    // Wiped from memory when dropped, whichever way this returns.
    let password = Zeroizing::new(password);
    if password.len() > MAX_BYTES {
        bail!("refusing to hash a password longer than {MAX_BYTES} bytes");
    }
    let permit = hashing_permit().await?;
    tokio::task::spawn_blocking(move || {
        let _permit = permit;
        let salt = SaltString::generate(&mut OsRng);
        hasher()
            .hash_password(password.as_bytes(), &salt)
            .map(|phc| phc.to_string())
            .map_err(|e| anyhow!("hashing a password with Argon2id: {e}"))
    })
    .await
    .context("the password hashing task did not finish")?
}

/// Whether `password` matches the stored PHC string. False, never a panic, for a PHC string
/// that does not parse, names an unknown algorithm or asks for absurd costs.
pub async fn verify(password: String, phc: String) -> bool {
    let password = Zeroizing::new(password);
    // Nothing longer was ever hashed, so it cannot match.
    if password.len() > MAX_BYTES {
        return false;
    }
    let Ok(permit) = hashing_permit().await else {
        return false;
    };
    tokio::task::spawn_blocking(move || {
        let _permit = permit;
        let Ok(parsed) = PasswordHash::new(&phc) else {
            return false;
        };
        match Params::try_from(&parsed) {
            Ok(p) if p.m_cost() <= VERIFY_MAX_M_COST_KIB && p.t_cost() <= VERIFY_MAX_T_COST => {}
            _ => return false,
        }
        // Algorithm, version and parameters come from the PHC string itself; the comparison
        // of the outputs is constant-time.
        hasher()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok()
    })
    .await
    .unwrap_or(false)
}

/// Does the work of [`verify`] against a fixed hash and throws the answer away: call it when
/// the account does not exist, so that "no such account" and "wrong password" take the same
/// time and an attacker cannot find out which e-mail addresses have accounts.
pub async fn verify_dummy(password: String) {
    let _ = verify(password, DUMMY_PHC.to_string()).await;
}

/// Argon2id, version 0x13 (19), m = 19456 KiB, t = 2, p = 1: the OWASP minimum.
fn hasher() -> Argon2<'static> {
    Argon2::new(Algorithm::Argon2id, Version::V0x13, Params::DEFAULT)
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

    #[tokio::test]
    async fn a_hashed_password_verifies_and_a_wrong_one_does_not() {
        let phc = hash("cavallo batteria graffetta".into()).await.unwrap();
        assert!(phc.starts_with("$argon2id$"), "{phc}");
        assert!(phc.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{phc}");
        assert!(verify("cavallo batteria graffetta".into(), phc.clone()).await);
        assert!(!verify("cavallo batteria graffettA".into(), phc.clone()).await);
        assert!(!verify(String::new(), phc).await);
    }

    #[tokio::test]
    async fn the_same_password_hashes_differently_each_time() {
        let a = hash("cavallo batteria graffetta".into()).await.unwrap();
        let b = hash("cavallo batteria graffetta".into()).await.unwrap();
        assert_ne!(a, b, "the salt must be random");
    }

    #[tokio::test]
    async fn a_garbage_phc_string_does_not_verify_and_does_not_panic() {
        for phc in [
            "",
            "not a hash",
            "$argon2id$",
            "$argon2id$v=19$m=19456,t=2,p=1$",
            "$argon2id$v=19$m=19456,t=2,p=1$JHFr3RK6ynWSvYgrHA/e0g$",
            "$argon2id$v=19$m=19456,t=2,p=1$!!!$FV7ZflruXXaDndx71F0k2k0Jnnq1H9DpCzX49j0fkR0",
            "$argon2id$v=99$m=19456,t=2,p=1$JHFr3RK6ynWSvYgrHA/e0g$FV7ZflruXXaDndx71F0k2k0Jnnq1H9DpCzX49j0fkR0",
            "$argon2id$v=19$m=0,t=0,p=0$JHFr3RK6ynWSvYgrHA/e0g$FV7ZflruXXaDndx71F0k2k0Jnnq1H9DpCzX49j0fkR0",
            // Would allocate 4 TiB if it were believed.
            "$argon2id$v=19$m=4294967295,t=2,p=1$JHFr3RK6ynWSvYgrHA/e0g$FV7ZflruXXaDndx71F0k2k0Jnnq1H9DpCzX49j0fkR0",
            "$argon2id$v=19$m=19456,t=4294967295,p=1$JHFr3RK6ynWSvYgrHA/e0g$FV7ZflruXXaDndx71F0k2k0Jnnq1H9DpCzX49j0fkR0",
            "$2b$12$R9h/cIPz0gi.URNNX3kh2OPST9/PgBkqquzi.Ss7KIUgO2t0jWMUW",
            "$scrypt$ln=16,r=8,p=1$aM15713r3Xsvxbi31lqr1Q$nFNh2CVHVjNldFVKDHDlm4CbdRSCdEBsjjJxD+iCs5E",
        ] {
            assert!(!verify("cavallo batteria graffetta".into(), phc.into()).await, "{phc}");
        }
    }

    #[tokio::test]
    async fn passwords_over_the_limit_are_neither_hashed_nor_verified() {
        assert!(hash("x".repeat(MAX_BYTES + 1)).await.is_err());
        assert!(!verify("x".repeat(MAX_BYTES + 1), DUMMY_PHC.into()).await);
    }

    #[test]
    fn the_dummy_hash_has_the_parameters_of_real_hashes() {
        // If it had cheaper parameters (or did not parse), unknown accounts would answer
        // faster than real ones.
        let parsed = PasswordHash::new(DUMMY_PHC).unwrap();
        assert_eq!(parsed.algorithm, argon2::ARGON2ID_IDENT);
        assert_eq!(parsed.version, Some(Version::V0x13 as u32));
        let params = Params::try_from(&parsed).unwrap();
        let ours = Params::DEFAULT;
        assert_eq!(
            (params.m_cost(), params.t_cost(), params.p_cost()),
            (ours.m_cost(), ours.t_cost(), ours.p_cost())
        );
        assert_eq!(
            parsed.hash.map(|h| h.len()),
            Some(Params::DEFAULT_OUTPUT_LEN)
        );
    }

    #[tokio::test]
    async fn the_dummy_hash_is_verified_in_full() {
        // verify_dummy only costs as much as a real check if the dummy hash gets all the way
        // through Argon2: it does, because its own password matches it.
        assert!(
            verify(
                "dummy-password-for-unknown-accounts".into(),
                DUMMY_PHC.into()
            )
            .await
        );
        verify_dummy("cavallo batteria graffetta".into()).await;
    }
}
