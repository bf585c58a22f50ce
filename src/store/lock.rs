//! One poller per mailbox across instances: a PostgreSQL session advisory lock held on a
//! connection of its own. When the holder dies its connection closes and the server drops
//! the lock at once, so another instance takes over within its retry interval. SQLite runs
//! one `serve` per database, so there the lock is always granted.

use sqlx::pool::PoolConnection;
use sqlx::{Any, Connection, Row};

use super::{Result, Store};

/// A held mailbox lock. Dropping it closes its connection, which releases the lock.
#[derive(Debug)]
pub struct MailboxLock {
    conn: Option<sqlx::AnyConnection>,
}

/// The advisory lock key of a mailbox: the first 8 bytes of a sha256 of its name.
fn lock_key(mailbox: &str) -> i64 {
    use sha2::Digest;
    let digest = sha2::Sha256::digest(format!("ticketgate mailbox {mailbox}").as_bytes());
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    i64::from_be_bytes(first)
}

impl Store {
    /// Takes the lock of `mailbox` if nobody holds it; `None` when another instance does.
    pub async fn try_lock_mailbox(&self, mailbox: &str) -> Result<Option<MailboxLock>> {
        if self.sqlite {
            return Ok(Some(MailboxLock { conn: None }));
        }
        let conn: PoolConnection<Any> = self.pool.acquire().await?;
        // Out of the pool: the lock lives exactly as long as this connection.
        let mut conn = conn.detach();
        let got: i64 = sqlx::query(
            "SELECT CASE WHEN pg_try_advisory_lock($1) THEN 1 ELSE 0 END::BIGINT AS got",
        )
        .bind(lock_key(mailbox))
        .fetch_one(&mut conn)
        .await?
        .try_get("got")?;
        if got == 1 {
            Ok(Some(MailboxLock { conn: Some(conn) }))
        } else {
            conn.close().await.ok();
            Ok(None)
        }
    }
}

impl MailboxLock {
    /// Whether the lock is still ours: its connection answers. A holder whose database
    /// connection broke must stop polling, since another instance may have the lock now.
    pub async fn held(&mut self) -> bool {
        match &mut self.conn {
            None => true,
            Some(conn) => conn.ping().await.is_ok(),
        }
    }
}
