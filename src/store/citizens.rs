//! Citizens of the web page: accounts, sessions and single-use mail links,
//! and the read of "my tickets". Secrets never reach the database in the clear: sessions
//! and links are stored as the sha256 of the random value the citizen holds.

use sqlx::Row;

use super::read::ticket_from_row;
use super::{nul_free, parsed, Result, Store, TicketView, Tx};
use crate::domain::{EmailAddress, FiscalCode, TokenPurpose};

/// A citizen account as the web page uses it.
#[derive(Debug, Clone)]
pub struct CitizenRow {
    pub citizen_id: i64,
    pub email: EmailAddress,
    pub first_name: String,
    pub last_name: String,
    pub fiscal_code: FiscalCode,
    pub password_hash: String,
    pub verified_at: Option<i64>,
    pub created_at: i64,
}

/// A new account.
#[derive(Debug, Clone)]
pub struct NewCitizen<'a> {
    pub email: &'a EmailAddress,
    pub first_name: &'a str,
    pub last_name: &'a str,
    pub fiscal_code: &'a FiscalCode,
    pub password_hash: &'a str,
    pub at: i64,
}

/// Why an account could not be created.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AccountTaken {
    Email,
    FiscalCode,
}

/// The columns [`citizen_from_row`] reads, for a citizen aliased `c` (a macro, so that
/// queries stay `&'static str` through `concat!`).
macro_rules! citizen_columns {
    () => {
        "c.citizen_id, c.email, c.first_name, c.last_name, c.fiscal_code, c.password_hash, \
         c.verified_at, c.created_at"
    };
}

/// A stored email or codice fiscale that no longer parses is a decode error, never a panic.
fn citizen_from_row(r: &sqlx::any::AnyRow) -> Result<CitizenRow> {
    Ok(CitizenRow {
        citizen_id: r.try_get("citizen_id")?,
        email: parsed(r, "email")?,
        first_name: r.try_get("first_name")?,
        last_name: r.try_get("last_name")?,
        fiscal_code: parsed(r, "fiscal_code")?,
        password_hash: r.try_get("password_hash")?,
        verified_at: r.try_get("verified_at")?,
        created_at: r.try_get("created_at")?,
    })
}

/// Which datum of a new account a unique violation is about. The two backends report it
/// differently: PostgreSQL names the constraint (`citizen_email_key`, the default name of
/// `email TEXT NOT NULL UNIQUE` in migrations/postgres/0003), SQLite only says it in the
/// message (`UNIQUE constraint failed: citizen.email`).
fn taken_by(db: &dyn sqlx::error::DatabaseError) -> Option<AccountTaken> {
    if db.kind() != sqlx::error::ErrorKind::UniqueViolation {
        return None;
    }
    match db.constraint() {
        Some("citizen_email_key") => Some(AccountTaken::Email),
        Some("citizen_fiscal_code_key") => Some(AccountTaken::FiscalCode),
        Some(_) => None,
        None if db.message().contains("citizen.email") => Some(AccountTaken::Email),
        None if db.message().contains("citizen.fiscal_code") => Some(AccountTaken::FiscalCode),
        None => None,
    }
}

impl Store {
    /// Creates an account, unless its email or codice fiscale is already registered.
    ///
    /// The unique constraints of `citizen` decide, not a count before the insert: two
    /// registrations racing with the same data cannot both pass a count, and the loser gets
    /// [`AccountTaken`] here. On PostgreSQL the failed insert aborts `tx`: the caller drops it.
    pub async fn insert_citizen(
        tx: &mut Tx,
        c: &NewCitizen<'_>,
    ) -> Result<std::result::Result<i64, AccountTaken>> {
        let inserted = sqlx::query(
            "INSERT INTO citizen (email, first_name, last_name, fiscal_code, password_hash, \
             created_at) VALUES ($1, $2, $3, $4, $5, $6) RETURNING citizen_id",
        )
        .bind(c.email.as_str())
        .bind(nul_free(c.first_name))
        .bind(nul_free(c.last_name))
        .bind(c.fiscal_code.as_str())
        .bind(nul_free(c.password_hash))
        .bind(c.at)
        .fetch_one(&mut **tx)
        .await;
        match inserted {
            Ok(row) => Ok(Ok(row.try_get("citizen_id")?)),
            Err(sqlx::Error::Database(db)) => match taken_by(db.as_ref()) {
                Some(taken) => Ok(Err(taken)),
                None => Err(sqlx::Error::Database(db).into()),
            },
            Err(e) => Err(e.into()),
        }
    }

    pub async fn citizen_by_email(&self, email: &EmailAddress) -> Result<Option<CitizenRow>> {
        let row = sqlx::query(concat!(
            "SELECT ",
            citizen_columns!(),
            " FROM citizen c WHERE c.email = $1"
        ))
        .bind(email.as_str())
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(citizen_from_row).transpose()
    }

    /// The account registered with this codice fiscale.
    pub async fn citizen_by_fiscal_code(
        &self,
        fiscal_code: &FiscalCode,
    ) -> Result<Option<CitizenRow>> {
        let row = sqlx::query(concat!(
            "SELECT ",
            citizen_columns!(),
            " FROM citizen c WHERE c.fiscal_code = $1"
        ))
        .bind(fiscal_code.as_str())
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(citizen_from_row).transpose()
    }

    pub async fn citizen(&self, citizen_id: i64) -> Result<Option<CitizenRow>> {
        let row = sqlx::query(concat!(
            "SELECT ",
            citizen_columns!(),
            " FROM citizen c WHERE c.citizen_id = $1"
        ))
        .bind(citizen_id)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(citizen_from_row).transpose()
    }

    /// Stores a mailed link (its sha256) for `purpose`.
    pub async fn insert_token(
        tx: &mut Tx,
        token_hash: &str,
        citizen_id: i64,
        purpose: TokenPurpose,
        at: i64,
        expires_at: i64,
    ) -> Result<()> {
        sqlx::query(
            "INSERT INTO citizen_token (token_hash, citizen_id, purpose, created_at, expires_at) \
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(token_hash)
        .bind(citizen_id)
        .bind(purpose.as_str())
        .bind(at)
        .bind(expires_at)
        .execute(&mut **tx)
        .await?;
        Ok(())
    }

    /// Links for `purpose` sent to `citizen_id` since `since` (for the resend limit).
    pub async fn tokens_since(
        &self,
        citizen_id: i64,
        purpose: TokenPurpose,
        since: i64,
    ) -> Result<i64> {
        let row = sqlx::query(
            "SELECT COUNT(*) AS n FROM citizen_token WHERE citizen_id = $1 AND purpose = $2 \
             AND created_at >= $3",
        )
        .bind(citizen_id)
        .bind(purpose.as_str())
        .bind(since)
        .fetch_one(&self.pool)
        .await?;
        Ok(row.try_get("n")?)
    }

    /// The citizen a still-valid, unused link belongs to (the GET page: nothing changes).
    pub async fn token_citizen(
        &self,
        token_hash: &str,
        purpose: TokenPurpose,
        now: i64,
    ) -> Result<Option<i64>> {
        let row = sqlx::query(
            "SELECT citizen_id FROM citizen_token WHERE token_hash = $1 AND purpose = $2 \
             AND used_at IS NULL AND expires_at > $3",
        )
        .bind(token_hash)
        .bind(purpose.as_str())
        .bind(now)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| r.try_get("citizen_id"))
            .transpose()
            .map_err(Into::into)
    }

    /// Uses a link: only one caller ever gets its citizen back.
    pub async fn use_token(
        tx: &mut Tx,
        token_hash: &str,
        purpose: TokenPurpose,
        now: i64,
    ) -> Result<Option<i64>> {
        let row = sqlx::query(
            "UPDATE citizen_token SET used_at = $3 WHERE token_hash = $1 AND purpose = $2 \
             AND used_at IS NULL AND expires_at > $3 RETURNING citizen_id",
        )
        .bind(token_hash)
        .bind(purpose.as_str())
        .bind(now)
        .fetch_optional(&mut **tx)
        .await?;
        row.map(|r| r.try_get("citizen_id"))
            .transpose()
            .map_err(Into::into)
    }

    pub async fn set_citizen_verified(tx: &mut Tx, citizen_id: i64, at: i64) -> Result<()> {
        sqlx::query(
            "UPDATE citizen SET verified_at = COALESCE(verified_at, $1) WHERE citizen_id = $2",
        )
        .bind(at)
        .bind(citizen_id)
        .execute(&mut **tx)
        .await?;
        Ok(())
    }

    /// New password; every session of the account ends.
    pub async fn set_citizen_password(tx: &mut Tx, citizen_id: i64, phc: &str) -> Result<()> {
        sqlx::query("UPDATE citizen SET password_hash = $1 WHERE citizen_id = $2")
            .bind(phc)
            .bind(citizen_id)
            .execute(&mut **tx)
            .await?;
        sqlx::query("DELETE FROM web_session WHERE citizen_id = $1")
            .bind(citizen_id)
            .execute(&mut **tx)
            .await?;
        Ok(())
    }

    /// Starts a session; expired sessions of anybody are deleted on the way (housekeeping
    /// that needs no timer).
    pub async fn insert_session(
        &self,
        session_hash: &str,
        citizen_id: i64,
        at: i64,
        expires_at: i64,
    ) -> Result<()> {
        sqlx::query("DELETE FROM web_session WHERE expires_at <= $1")
            .bind(at)
            .execute(&self.pool)
            .await?;
        sqlx::query(
            "INSERT INTO web_session (session_hash, citizen_id, created_at, expires_at) \
             VALUES ($1, $2, $3, $4)",
        )
        .bind(session_hash)
        .bind(citizen_id)
        .bind(at)
        .bind(expires_at)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// The account behind a live session.
    pub async fn session_citizen(
        &self,
        session_hash: &str,
        now: i64,
    ) -> Result<Option<CitizenRow>> {
        let row = sqlx::query(concat!(
            "SELECT ",
            citizen_columns!(),
            " FROM web_session s JOIN citizen c ON c.citizen_id = s.citizen_id \
             WHERE s.session_hash = $1 AND s.expires_at > $2"
        ))
        .bind(session_hash)
        .bind(now)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(citizen_from_row).transpose()
    }

    pub async fn delete_session(&self, session_hash: &str) -> Result<()> {
        sqlx::query("DELETE FROM web_session WHERE session_hash = $1")
            .bind(session_hash)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Every ticket of this address (as requester or reply address), newest first.
    pub async fn tickets_of(&self, email: &EmailAddress) -> Result<Vec<TicketView>> {
        let rows = sqlx::query(concat!(
            "SELECT ",
            ticket_view_columns!(),
            " FROM ticket WHERE citizen = $1 OR reply_to = $1 ORDER BY ticket_id DESC"
        ))
        .bind(email.as_str())
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(ticket_from_row).collect()
    }
}
