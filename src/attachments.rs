//! Content-addressed attachment files: `ab/cd/<sha256>` in an object store — a directory all
//! instances share (`storage.dir`), through the `object_store` interface so that an
//! S3-compatible store can replace it later without touching callers.
//!
//! Files are written before the transaction that references them commits: a crash in between
//! leaves an unreferenced file, never a reference without a file. The local store writes to a
//! staging name, fsyncs, and renames, so a crash never leaves a half-written file under its
//! final name; the same content is written once however many messages carry it.

use std::path::Path;
use std::sync::Arc;

use anyhow::Context;
use object_store::local::LocalFileSystem;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};

use crate::store::raw_sha256_hex;

/// Where attachments live.
#[derive(Debug, Clone)]
pub struct AttachmentStore {
    store: Arc<dyn ObjectStore>,
}

impl AttachmentStore {
    /// The directory `dir` (created if missing), shared by every instance.
    pub fn new(dir: &Path) -> anyhow::Result<AttachmentStore> {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("creating storage.dir {}", dir.display()))?;
        let local = LocalFileSystem::new_with_prefix(dir)
            .with_context(|| format!("opening storage.dir {}", dir.display()))?
            .with_fsync(true);
        Ok(AttachmentStore {
            store: Arc::new(local),
        })
    }

    /// Any object store (an S3-compatible one, an in-memory one in tests).
    pub fn with_store(store: Arc<dyn ObjectStore>) -> AttachmentStore {
        AttachmentStore { store }
    }

    fn location(sha256: &str) -> ObjectPath {
        let a = sha256.get(0..2).unwrap_or("00");
        let b = sha256.get(2..4).unwrap_or("00");
        ObjectPath::from(format!("{a}/{b}/{sha256}"))
    }

    /// Stores `bytes`, returns their sha256 (hex).
    pub async fn put(&self, bytes: &[u8]) -> anyhow::Result<String> {
        let sha = raw_sha256_hex(bytes);
        let location = Self::location(&sha);
        if self.store.head(&location).await.is_ok() {
            return Ok(sha);
        }
        self.store
            .put(&location, PutPayload::from(bytes.to_vec()))
            .await
            .with_context(|| format!("writing attachment {sha}"))?;
        Ok(sha)
    }

    /// The content stored under `sha256`.
    pub async fn get(&self, sha256: &str) -> anyhow::Result<Vec<u8>> {
        let got = self
            .store
            .get(&Self::location(sha256))
            .await
            .with_context(|| format!("reading attachment {sha256}"))?;
        Ok(got.bytes().await?.to_vec())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn content_goes_in_once_under_its_hash_and_comes_back_the_same() {
        let dir = tempfile::tempdir().unwrap();
        let store = AttachmentStore::new(&dir.path().join("nested/attachments")).unwrap();
        let bytes: Vec<u8> = (0..=255u8).cycle().take(70_000).collect();
        let sha = store.put(&bytes).await.unwrap();
        assert_eq!(sha, raw_sha256_hex(&bytes));
        assert_eq!(
            store.put(&bytes).await.unwrap(),
            sha,
            "same content, same name"
        );
        assert_eq!(store.get(&sha).await.unwrap(), bytes);
        let file = dir
            .path()
            .join("nested/attachments")
            .join(&sha[0..2])
            .join(&sha[2..4])
            .join(&sha);
        assert_eq!(
            std::fs::read(file).unwrap(),
            bytes,
            "a plain file other instances read"
        );
        assert!(store.get(&"0".repeat(64)).await.is_err());
    }

    #[tokio::test]
    async fn any_object_store_can_stand_behind_it() {
        let store = AttachmentStore::with_store(Arc::new(object_store::memory::InMemory::new()));
        let sha = store.put(b"foto").await.unwrap();
        assert_eq!(store.get(&sha).await.unwrap(), b"foto");
    }
}
