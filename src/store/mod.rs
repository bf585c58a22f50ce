//! All SQL of ticketgate, and nothing else: the `Store` and the rows it reads and writes.
//!
//! One code path serves SQLite and PostgreSQL through sqlx's `Any` driver, so columns keep to
//! BIGINT/INTEGER/TEXT/BLOB and times are unix millis. Every statement is a `&'static str`
//! with `$N` placeholders. Writes that belong together take a [`Tx`] so the caller decides the
//! transaction's extent (docs/design-notes.md, "One transaction per change").

#[macro_use]
mod read;
mod attempts;
mod citizens;
mod digest;
mod lock;
mod outbox;
mod pec;
mod raw;
mod reminders;
mod stats;
mod tickets;

use std::str::FromStr;
use std::time::Duration;

use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::{Any, AnyPool, ConnectOptions, Connection, Transaction};

pub use attempts::AttemptCount;
pub use citizens::{AccountTaken, CitizenRow, NewCitizen};
pub use lock::MailboxLock;
pub use outbox::{Attempt, DueOutbox, OutboxBacklog, OutboxItem, OutboxLease};
pub use pec::{InboundPec, ReceiptEffect};
pub use raw::{sha256_hex as raw_sha256_hex, RawIn, RawRow};
pub use read::{
    AttachmentView, EventView, MessageView, NotificationAttachment, QuarantineDrop, QuarantineView,
    TicketFilter, TicketTimeline, TicketView, QUARANTINE_HEAD_BYTES,
};
pub use reminders::Unanswered;
pub use tickets::{
    HistoryEntry, MessageTicket, NewAttachment, NewMessage, NewTicket, OurMessage, TicketText,
};

/// A transaction on the store.
pub type Tx = Transaction<'static, Any>;

/// Errors of the storage layer.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database error: {0}")]
    Db(#[from] sqlx::Error),
    #[error("migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("cannot create the SQLite database file {0}: {1}")]
    CreateFile(String, std::io::Error),
    #[error("unsupported database url {0:?}: use sqlite:// or postgres://")]
    UnsupportedUrl(String),
    /// [`Store::open_existing`]: the SQLite file or the PostgreSQL database is not there.
    #[error("the database does not exist ({0})")]
    Missing(String),
    /// [`Store::open_existing`]: the database is older than this binary's migrations.
    #[error("the database is not migrated to this version ({0})")]
    NotMigrated(String),
    /// `outbound::queue::queue_mail`: a recipient is the reserved no-address of a citizen who
    /// gave none (`domain::NO_ADDRESS`); the caller should have recorded instead of mailing.
    #[error("refusing to queue mail to a citizen who gave no address")]
    NoAddress,
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

static SQLITE_MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");
static POSTGRES_MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

/// The database behind ticketgate.
#[derive(Clone, Debug)]
pub struct Store {
    pool: AnyPool,
    sqlite: bool,
}

/// Creates a missing SQLite database file readable by its owner only (0600): it holds every
/// citizen's mail and account. SQLite creates the `-wal` and `-shm` files with the mode of
/// the database file, so they follow. An existing file is left as the operator set it.
fn create_private_sqlite_file(url: &str) -> Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let path = sqlite_path(url);
    let query = url.split_once('?').map(|(_, q)| q).unwrap_or("");
    if path.is_empty() || path == ":memory:" || query.contains("mode=memory") {
        return Ok(());
    }
    match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
    {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(StoreError::CreateFile(path.to_owned(), e)),
    }
}

/// The file path of a `sqlite://PATH?…` (or `sqlite:PATH`) URL.
fn sqlite_path(url: &str) -> &str {
    let rest = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))
        .unwrap_or_default();
    rest.split_once('?').map(|(p, _)| p).unwrap_or(rest)
}

/// The pool both doors use ([`Store::connect`], [`Store::open_existing`]): SQLite's PRAGMAs on
/// every new connection, and no connection reused while still inside a transaction.
fn pool_options(max_connections: u32, sqlite: bool) -> AnyPoolOptions {
    AnyPoolOptions::new()
        .max_connections(max_connections.max(1))
        .acquire_timeout(Duration::from_secs(30))
        .after_connect(move |conn, _meta| {
            Box::pin(async move {
                if sqlite {
                    // busy_timeout: a second process (`ingest`, the CLI) waits its turn
                    // instead of failing. WAL lets readers run beside the writer.
                    sqlx::query("PRAGMA busy_timeout = 10000")
                        .execute(&mut *conn)
                        .await?;
                    sqlx::query("PRAGMA journal_mode = WAL")
                        .execute(&mut *conn)
                        .await?;
                    sqlx::query("PRAGMA synchronous = FULL")
                        .execute(&mut *conn)
                        .await?;
                    sqlx::query("PRAGMA foreign_keys = ON")
                        .execute(&mut *conn)
                        .await?;
                }
                Ok(())
            })
        })
        // A connection goes back to the pool, and out of it, only outside a transaction.
        // sqlx counts the depth itself and SQLite's worker lowers it only when a
        // ROLLBACK/COMMIT succeeds. A COMMIT that fails with a disk I/O error (a full or
        // read-only file system) makes SQLite roll the transaction back on its own; the
        // ROLLBACK the dropped `Transaction` then queues fails ("no transaction is
        // active") and the connection stays at depth 1, so every later `BEGIN
        // IMMEDIATE` on it fails with "attempted to call begin_with at non-zero
        // transaction depth": the fault rehearsal saw the outbox worker wedged that way
        // (docs/design-notes.md, "Fault rehearsal"). Such a
        // connection is closed (closing rolls back whatever SQLite still holds) and
        // the pool opens a fresh one.
        .after_release(move |conn, _meta| {
            Box::pin(async move {
                // SQLite's worker only queues the rollback of a dropped transaction
                // and lowers the depth when it ran; the ping (a round trip to that
                // thread, not to a server) waits for it, so the depth read below is
                // its outcome. PostgreSQL lowers the depth when it queues the
                // rollback: no round trip needed there.
                if sqlite {
                    conn.ping().await?;
                }
                Ok(connection_is_clean(conn))
            })
        })
        // The pool pings an idle connection before handing it out (flushing any
        // queued rollback), then this check: the same guard for a connection that
        // reached the idle queue another way.
        .before_acquire(|conn, _meta| Box::pin(async move { Ok(connection_is_clean(conn)) }))
}

impl Store {
    /// Connects; a missing SQLite file is created. SQLite runs in WAL mode with full sync,
    /// because "raw first" means a committed message survives a power cut.
    pub async fn connect(url: &str, max_connections: u32) -> Result<Store> {
        sqlx::any::install_default_drivers();
        let sqlite = url.starts_with("sqlite:");
        if !sqlite && !url.starts_with("postgres") {
            return Err(StoreError::UnsupportedUrl(url.to_owned()));
        }
        let url = if sqlite && !url.contains("mode=") {
            let sep = if url.contains('?') { '&' } else { '?' };
            format!("{url}{sep}mode=rwc")
        } else {
            url.to_owned()
        };
        if sqlite {
            create_private_sqlite_file(&url)?;
        }
        let pool = pool_options(max_connections, sqlite)
            .connect_with(AnyConnectOptions::from_str(&url)?.disable_statement_logging())
            .await?;
        Ok(Store { pool, sqlite })
    }

    /// Connects to a database that must already exist and be migrated, for the commands that
    /// only read or change what is there (`ticket`, `quarantine`): a typo in `database.url`
    /// must not create a new, empty database that then says "no tickets" (docs/design-notes.md,
    /// "A configuration that says everything at once").
    pub async fn open_existing(url: &str, max_connections: u32) -> Result<Store> {
        sqlx::any::install_default_drivers();
        let sqlite = url.starts_with("sqlite:");
        if !sqlite && !url.starts_with("postgres") {
            return Err(StoreError::UnsupportedUrl(url.to_owned()));
        }
        let url = if sqlite {
            let path = sqlite_path(url);
            if !path.is_empty() && path != ":memory:" && !std::path::Path::new(path).is_file() {
                return Err(StoreError::Missing(format!("no file {path}")));
            }
            // mode=rw: SQLite itself must not create the file either (its default is rwc).
            if url.contains("mode=") {
                url.to_owned()
            } else {
                let sep = if url.contains('?') { '&' } else { '?' };
                format!("{url}{sep}mode=rw")
            }
        } else {
            url.to_owned()
        };
        let pool = pool_options(max_connections, sqlite)
            .connect_with(AnyConnectOptions::from_str(&url)?.disable_statement_logging())
            .await
            .map_err(|e| match &e {
                // 3D000 invalid_catalog_name: PostgreSQL has no database of that name.
                sqlx::Error::Database(db) if db.code().as_deref() == Some("3D000") => {
                    StoreError::Missing(db.message().to_owned())
                }
                _ => StoreError::Db(e),
            })?;
        let store = Store { pool, sqlite };
        store.check_migrated().await?;
        Ok(store)
    }

    /// Errs unless every migration this binary knows was applied (a newer schema is fine).
    async fn check_migrated(&self) -> Result<()> {
        let migrator = if self.sqlite {
            &SQLITE_MIGRATOR
        } else {
            &POSTGRES_MIGRATOR
        };
        let wanted = migrator.iter().map(|m| m.version).max().unwrap_or(0);
        let applied: Option<i64> =
            match sqlx::query_scalar("SELECT MAX(version) FROM _sqlx_migrations WHERE success")
                .fetch_one(&self.pool)
                .await
            {
                Ok(v) => v,
                // No migrations table (42P01 undefined_table): an empty database nobody
                // migrated. Any other error (not a database file at all…) is an error.
                Err(sqlx::Error::Database(db))
                    if db.code().as_deref() == Some("42P01")
                        || db.message().contains("no such table") =>
                {
                    None
                }
                Err(e) => return Err(e.into()),
            };
        match applied {
            Some(v) if v >= wanted => Ok(()),
            Some(v) => Err(StoreError::NotMigrated(format!(
                "schema version {v}, this binary needs {wanted}"
            ))),
            None => Err(StoreError::NotMigrated("no schema at all".into())),
        }
    }

    /// Applies the migrations of this backend.
    pub async fn migrate(&self) -> Result<()> {
        let migrator = if self.sqlite {
            &SQLITE_MIGRATOR
        } else {
            &POSTGRES_MIGRATOR
        };
        migrator.run(&self.pool).await?;
        Ok(())
    }

    /// Starts a write transaction. On SQLite it takes the write lock at once (`BEGIN
    /// IMMEDIATE`): a deferred transaction that reads then writes can fail with SQLITE_BUSY
    /// without waiting when another connection wrote in between.
    pub async fn begin(&self) -> Result<Tx> {
        let stmt = if self.sqlite {
            "BEGIN IMMEDIATE"
        } else {
            "BEGIN"
        };
        Ok(self.pool.begin_with(stmt).await?)
    }

    /// True for the embedded SQLite backend (one `serve` process per database).
    pub fn is_sqlite(&self) -> bool {
        self.sqlite
    }

    /// Cheap liveness check for `/healthz`.
    pub async fn ping(&self) -> Result<()> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    pub async fn close(&self) {
        self.pool.close().await;
    }
}

/// False (and a warning) when `conn` is still inside a transaction after its last user let
/// it go: it must not be reused (see `Store::connect`).
fn connection_is_clean(conn: &sqlx::AnyConnection) -> bool {
    if conn.is_in_transaction() {
        tracing::warn!(
            "a database connection was left inside a transaction after an error \
             (its rollback failed); closing it, the pool opens a new one"
        );
        return false;
    }
    true
}

/// The clock, where the store's callers have always found it.
pub use crate::domain::now_millis;

/// Reads the text column `column` of `r` into its domain type with `FromStr`: a stored word
/// the type does not know is a decode error of that column, never a panic nor a guess.
pub(super) fn parsed<T>(r: &sqlx::any::AnyRow, column: &str) -> Result<T>
where
    T: FromStr,
    T::Err: std::error::Error + Send + Sync + 'static,
{
    use sqlx::Row;
    let text: String = r.try_get(column)?;
    text.parse().map_err(|e: T::Err| {
        sqlx::Error::ColumnDecode {
            index: column.to_owned(),
            source: Box::new(e),
        }
        .into()
    })
}

/// `s` as both backends store it: U+0000 replaced by U+FFFD.
///
/// PostgreSQL refuses NUL in TEXT (`invalid byte sequence for encoding "UTF8": 0x00`, and the
/// whole transaction with it) while SQLite keeps it, and untrusted mail can carry one (a
/// quoted-printable `=00`, a raw NUL in a header or a file name). Every caller-supplied string
/// the store binds, written or looked up, goes through here, so both backends store and find
/// the same text. The exact bytes of the mail stay in `raw_message.bytes` (BLOB/BYTEA).
///
/// It returns a `String` because that is what the `Any` driver binds anyway (it copies a
/// `&str` into an owned value), and it has no `Encode` for `Cow<str>`.
fn nul_free(s: &str) -> String {
    s.replace('\0', "\u{FFFD}")
}
