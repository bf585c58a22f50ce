//! Content-addressed attachment files under `storage.dir`: `ab/cd/<sha256>`.
//!
//! A file is written to a temporary name, synced and renamed, so a crash never leaves a
//! half-written file under its final name; the same content is written once however many
//! messages carry it. Files are written before the transaction that references them commits:
//! a crash in between leaves an unreferenced file, never a reference without a file.

use std::path::{Path, PathBuf};

use tokio::io::AsyncWriteExt;

use crate::store::raw_sha256_hex;

/// The attachment directory.
#[derive(Debug, Clone)]
pub struct AttachmentStore {
    dir: PathBuf,
}

impl AttachmentStore {
    pub fn new(dir: impl Into<PathBuf>) -> AttachmentStore {
        AttachmentStore { dir: dir.into() }
    }

    /// Where the content with this sha256 lives.
    pub fn path_of(&self, sha256: &str) -> PathBuf {
        let a = sha256.get(0..2).unwrap_or("00");
        let b = sha256.get(2..4).unwrap_or("00");
        self.dir.join(a).join(b).join(sha256)
    }

    /// Stores `bytes`, returns their sha256 (hex).
    pub async fn put(&self, bytes: &[u8]) -> std::io::Result<String> {
        let sha = raw_sha256_hex(bytes);
        let path = self.path_of(&sha);
        if tokio::fs::try_exists(&path).await.unwrap_or(false) {
            return Ok(sha);
        }
        let parent = path.parent().unwrap_or(Path::new("."));
        tokio::fs::create_dir_all(parent).await?;
        let tmp = parent.join(format!(".{sha}.{}.tmp", std::process::id()));
        let mut f = tokio::fs::File::create(&tmp).await?;
        f.write_all(bytes).await?;
        f.sync_all().await?;
        drop(f);
        tokio::fs::rename(&tmp, &path).await?;
        Ok(sha)
    }
}
