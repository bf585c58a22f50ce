//! Citizen passwords: hashing and verifying them (the policy a new one must meet is
//! [`crate::domain::password`]).
//!
//! Hashes are Argon2id PHC strings with the OWASP minimum parameters (19 MiB, two passes, one
//! lane), which are also the `argon2` crate's defaults; they are spelled out here so that an
//! upgrade of the crate cannot change them silently. Hashing takes tens of milliseconds of
//! CPU, so it runs on tokio's blocking pool, never on a runtime worker — and at most one hash
//! per core at a time ([`HASHING`]): the blocking pool grows to hundreds of threads, and 128
//! parallel registrations once took the process from 150 MB to 2.5 GB that the allocator never
//! gave back (docs/design-notes.md, "Web accounts under attack"). Waiting for a permit costs
//! nothing but time.
//!
//! This module does not store, log or compare passwords in any other way, and knows nothing
//! of accounts: callers pass the PHC string they stored.

use std::sync::{Arc, LazyLock};

use anyhow::{anyhow, bail, Context};
use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::SaltString;
use argon2::{Algorithm, Argon2, Params, PasswordHash, PasswordHasher, PasswordVerifier, Version};
use secrecy::zeroize::Zeroizing;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::domain::password::MAX_BYTES;

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
