//! Content-addressed attachment files: `ab/cd/<sha256>` in an object store — a directory all
//! instances share (`storage.dir`), through the `object_store` interface so that an
//! S3-compatible store can replace it later without touching callers.
//!
//! Files are written before the transaction that references them commits: a crash in between
//! leaves an unreferenced file, never a reference without a file. The local store writes to a
//! staging name, fsyncs, and renames, so a crash never leaves a half-written file under its
//! final name; the same content is written once however many messages carry it.

use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};
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
    /// The local directory behind `store`, when it is one: files and directories written
    /// there are made private (0600/0700) after object_store created them.
    local_dir: Option<PathBuf>,
}

/// Mode of attachment files: the owner (the gateway's user) only.
const PRIVATE_FILE_MODE: u32 = 0o600;
/// Mode of storage.dir and every directory under it.
const PRIVATE_DIR_MODE: u32 = 0o700;

impl AttachmentStore {
    /// The directory `dir` (created if missing, 0700), shared by every instance.
    ///
    /// Citizens' attachments are personal data: the directories are 0700 and the files 0600,
    /// whatever the process umask. storage.dir itself is created 0700 before anything is
    /// written, so the moment between object_store creating a file and its chmod here
    /// exposes nothing to other local users.
    pub fn new(dir: &Path) -> anyhow::Result<AttachmentStore> {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(PRIVATE_DIR_MODE)
            .create(dir)
            .with_context(|| format!("creating storage.dir {}", dir.display()))?;
        let local = LocalFileSystem::new_with_prefix(dir)
            .with_context(|| format!("opening storage.dir {}", dir.display()))?
            .with_fsync(true);
        Ok(AttachmentStore {
            store: Arc::new(local),
            local_dir: Some(dir.to_owned()),
        })
    }

    /// Any object store (an S3-compatible one, an in-memory one in tests).
    pub fn with_store(store: Arc<dyn ObjectStore>) -> AttachmentStore {
        AttachmentStore {
            store,
            local_dir: None,
        }
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
        self.make_private(&location)
            .await
            .with_context(|| format!("restricting the modes of attachment {sha}"))?;
        Ok(sha)
    }

    /// 0600 on a file just written to the local directory, 0700 on the directories above it
    /// up to storage.dir (object_store creates them with the process umask, often 0755).
    async fn make_private(&self, location: &ObjectPath) -> std::io::Result<()> {
        let Some(root) = &self.local_dir else {
            return Ok(());
        };
        let file = location
            .parts()
            .fold(root.clone(), |p, part| p.join(part.as_ref()));
        let perm = |mode| std::fs::Permissions::from_mode(mode);
        tokio::fs::set_permissions(&file, perm(PRIVATE_FILE_MODE)).await?;
        let mut dir = file.parent();
        while let Some(d) = dir.filter(|d| d.starts_with(root) && *d != root.as_path()) {
            tokio::fs::set_permissions(d, perm(PRIVATE_DIR_MODE)).await?;
            dir = d.parent();
        }
        Ok(())
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
    async fn files_and_directories_are_private_to_the_owner() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("attachments");
        let store = AttachmentStore::new(&root).unwrap();
        let sha = store.put(b"foto privata").await.unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        let sub = root.join(&sha[0..2]);
        assert_eq!(mode(&root), 0o700);
        assert_eq!(mode(&sub), 0o700);
        assert_eq!(mode(&sub.join(&sha[2..4])), 0o700);
        assert_eq!(mode(&sub.join(&sha[2..4]).join(&sha)), 0o600);
    }

    #[tokio::test]
    async fn any_object_store_can_stand_behind_it() {
        let store = AttachmentStore::with_store(Arc::new(object_store::memory::InMemory::new()));
        let sha = store.put(b"foto").await.unwrap();
        assert_eq!(store.get(&sha).await.unwrap(), b"foto");
    }
}
