//! Citizens of the web page: accounts, sessions and single-use mail links,
//! and the read of "my tickets". Secrets never reach the database in the clear: sessions
//! and links are stored as the sha256 of the random value the citizen holds.

use sqlx::Row;

use super::read::ticket_from_row;
use super::{nul_free, Result, Store, TicketView, Tx};
use crate::domain::TokenPurpose;

/// A citizen account as the web page uses it.
#[derive(Debug, Clone)]
pub struct CitizenRow {
    pub citizen_id: i64,
    pub email: String,
    pub first_name: String,
    pub last_name: String,
    pub fiscal_code: String,
    pub password_hash: String,
    pub verified_at: Option<i64>,
    pub created_at: i64,
}

/// A new account.
#[derive(Debug, Clone)]
pub struct NewCitizen<'a> {
    pub email: &'a str,
    pub first_name: &'a str,
    pub last_name: &'a str,
    pub fiscal_code: &'a str,
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

fn citizen_from_row(r: &sqlx::any::AnyRow) -> CitizenRow {
    CitizenRow {
        citizen_id: r.get(0),
        email: r.get(1),
        first_name: r.get(2),
        last_name: r.get(3),
        fiscal_code: r.get(4),
        password_hash: r.get(5),
        verified_at: r.get(6),
        created_at: r.get(7),
    }
}

impl Store {
    /// Creates an account, unless its email or codice fiscale is already registered.
    pub async fn insert_citizen(
        tx: &mut Tx,
        c: &NewCitizen<'_>,
    ) -> Result<std::result::Result<i64, AccountTaken>> {
        let checks = [
            (
                "SELECT COUNT(*) FROM citizen WHERE email = $1",
                c.email,
                AccountTaken::Email,
            ),
            (
                "SELECT COUNT(*) FROM citizen WHERE fiscal_code = $1",
                c.fiscal_code,
                AccountTaken::FiscalCode,
            ),
        ];
        for (sql, value, taken) in checks {
            let n: i64 = sqlx::query(sql)
                .bind(nul_free(value))
                .fetch_one(&mut **tx)
                .await?
                .get(0);
            if n > 0 {
                return Ok(Err(taken));
            }
        }
        let row = sqlx::query(
            "INSERT INTO citizen (email, first_name, last_name, fiscal_code, password_hash, \
             created_at) VALUES ($1, $2, $3, $4, $5, $6) RETURNING citizen_id",
        )
        .bind(nul_free(c.email))
        .bind(nul_free(c.first_name))
        .bind(nul_free(c.last_name))
        .bind(nul_free(c.fiscal_code))
        .bind(nul_free(c.password_hash))
        .bind(c.at)
        .fetch_one(&mut **tx)
        .await?;
        Ok(Ok(row.get(0)))
    }

    pub async fn citizen_by_email(&self, email: &str) -> Result<Option<CitizenRow>> {
        let row = sqlx::query(concat!(
            "SELECT ",
            citizen_columns!(),
            " FROM citizen c WHERE c.email = $1"
        ))
        .bind(nul_free(email))
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.as_ref().map(citizen_from_row))
    }

    /// The account registered with this (normalised) codice fiscale.
    pub async fn citizen_by_fiscal_code(&self, fiscal_code: &str) -> Result<Option<CitizenRow>> {
        let row = sqlx::query(concat!(
            "SELECT ",
            citizen_columns!(),
            " FROM citizen c WHERE c.fiscal_code = $1"
        ))
        .bind(nul_free(fiscal_code))
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.as_ref().map(citizen_from_row))
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
        Ok(row.as_ref().map(citizen_from_row))
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
            "SELECT COUNT(*) FROM citizen_token WHERE citizen_id = $1 AND purpose = $2 \
             AND created_at >= $3",
        )
        .bind(citizen_id)
        .bind(purpose.as_str())
        .bind(since)
        .fetch_one(&self.pool)
        .await?;
        Ok(row.get(0))
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
        Ok(row.map(|r| r.get(0)))
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
        Ok(row.map(|r| r.get(0)))
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
        Ok(row.as_ref().map(citizen_from_row))
    }

    pub async fn delete_session(&self, session_hash: &str) -> Result<()> {
        sqlx::query("DELETE FROM web_session WHERE session_hash = $1")
            .bind(session_hash)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Every ticket of this address (as requester or reply address), newest first.
    pub async fn tickets_of(&self, email: &str) -> Result<Vec<TicketView>> {
        let rows = sqlx::query(concat!(
            "SELECT ",
            ticket_view_columns!(),
            " FROM ticket WHERE citizen = $1 OR reply_to = $1 ORDER BY ticket_id DESC"
        ))
        .bind(nul_free(email))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(ticket_from_row).collect()
    }
}
