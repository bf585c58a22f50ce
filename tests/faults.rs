//! Fault rehearsal (issue 11, item 5): every error path returns its connection clean.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;

use ticketgate::store::Store;

/// `chattr +i` on a file while alive, `chattr -i` on drop (even when the test fails), so a
/// failed assertion never leaves an undeletable file in /tmp.
struct Immutable(PathBuf);

impl Immutable {
    fn set(path: &Path) -> Immutable {
        let ok = Command::new("chattr")
            .arg("+i")
            .arg(path)
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "chattr +i {} (needs root on ext4)", path.display());
        Immutable(path.to_owned())
    }
}

impl Drop for Immutable {
    fn drop(&mut self) {
        let _ = Command::new("chattr").arg("-i").arg(&self.0).status();
    }
}

/// A migrated SQLite store in `dir` with ONE connection, so the connection that saw the
/// error is the one every later call gets (as the outbox worker's did in issue 11).
async fn one_connection_store(dir: &Path) -> Store {
    let url = format!("sqlite://{}", dir.join("ticketgate.db").display());
    let store = Store::connect(&url, 1).await.expect("connect");
    store.migrate().await.expect("migrate");
    store
}

/// The write-ahead log of the SQLite file in `dir`: where a commit writes first.
fn wal_of(dir: &Path) -> PathBuf {
    dir.join("ticketgate.db-wal")
}

/// Issue 11's wedge: a COMMIT failing with a disk I/O error (the WAL made immutable for a
/// moment). SQLite rolls such a transaction back by itself, so the ROLLBACK sqlx queues on
/// drop fails and its depth counter stayed at 1: every later `begin` on that pooled
/// connection failed with "attempted to call begin_with at non-zero transaction depth".
#[tokio::test]
async fn a_commit_that_failed_on_a_disk_error_leaves_no_connection_inside_a_transaction() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let store = one_connection_store(dir.path()).await;

    let mut tx = store.begin().await.expect("begin");
    assert_eq!(
        Store::next_ticket_seq(&mut tx, 2026).await.expect("write"),
        1
    );
    let frozen = Immutable::set(&wal_of(dir.path()));
    let failed = tx.commit().await;
    assert!(failed.is_err(), "a commit into an immutable WAL must fail");
    drop(frozen);

    // Writable again: the next transactions work, and the failed one left nothing.
    for expected in [1, 2] {
        let mut tx = store
            .begin()
            .await
            .expect("a transaction after the disk error");
        let seq = Store::next_ticket_seq(&mut tx, 2026).await.expect("write");
        tx.commit().await.expect("commit after the disk error");
        assert_eq!(seq, expected, "the failed commit must have left nothing");
    }
}

/// The other way into the same state: a statement inside the transaction fails on the disk
/// (a big write spills to the WAL), the caller gives up and drops the transaction.
#[tokio::test]
async fn a_transaction_dropped_after_a_disk_error_leaves_no_connection_inside_a_transaction() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let store = one_connection_store(dir.path()).await;

    let frozen = Immutable::set(&wal_of(dir.path()));
    let attempt = async {
        let mut tx = store.begin().await?;
        Store::next_ticket_seq(&mut tx, 2026).await?;
        tx.commit().await?;
        Ok::<_, ticketgate::store::StoreError>(())
    }
    .await;
    assert!(attempt.is_err(), "a write into an immutable WAL must fail");
    drop(frozen);

    let mut tx = store
        .begin()
        .await
        .expect("a transaction after the disk error");
    let seq = Store::next_ticket_seq(&mut tx, 2026).await.expect("write");
    tx.commit().await.expect("commit after the disk error");
    assert_eq!(seq, 1, "the failed transaction must have left nothing");
}
