//! `ticketgate ingest --mailbox NAME`: one raw message on stdin through the same pipeline as
//! the pollers. The MTA retries on exit code 75 (EX_TEMPFAIL), so every failure to store is
//! reported as such; once stored, the message is never lost (an unprocessed one is picked up
//! by `serve` or by `quarantine retry`).

use tokio::io::AsyncReadExt;

use crate::intake::{Outcome, Pipeline};
use crate::store::RawIn;

/// Reads stdin (keeping only the header of an over-limit message), stores it raw, processes
/// it. Storing failures are `Err`; a processing failure after storage is reported in the
/// outcome text but the message is safe.
pub async fn ingest_stdin(pipeline: &Pipeline, mailbox: &str) -> anyhow::Result<(i64, Outcome)> {
    let limit = pipeline.max_message_bytes();
    let mut bytes = Vec::new();
    tokio::io::stdin().read_to_end(&mut bytes).await?;
    let raw = prepare(bytes, limit);
    // The MTA delivers again after a crash (a signal is a temporary failure to it): the row
    // stored by the crashed attempt is processed again rather than a new one, so its count
    // of attempts grows and the pipeline's poison rule quarantines it after two crashes.
    let sha256 = crate::store::raw_sha256_hex(&raw.bytes);
    let id = match pipeline
        .store()
        .pending_ingested_copy(mailbox, &sha256)
        .await?
    {
        Some(id) => id,
        None => pipeline.store().store_raw_ingested(mailbox, &raw).await?,
    };
    let outcome = pipeline.process(id).await?;
    Ok((id, outcome))
}

/// The header of an over-limit message, or the whole message.
pub fn prepare(bytes: Vec<u8>, limit: u64) -> RawIn {
    let size = bytes.len() as u64;
    if size <= limit {
        return RawIn {
            uid: None,
            bytes,
            size,
            complete: true,
        };
    }
    let end = header_end(&bytes).unwrap_or(bytes.len().min(64 * 1024));
    RawIn {
        uid: None,
        bytes: bytes[..end].to_vec(),
        size,
        complete: false,
    }
}

fn header_end(bytes: &[u8]) -> Option<usize> {
    let crlf = bytes
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|p| p + 4);
    let lf = bytes.windows(2).position(|w| w == b"\n\n").map(|p| p + 2);
    match (crlf, lf) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

#[cfg(test)]
mod tests {
    use super::prepare;

    #[test]
    fn an_oversize_message_keeps_only_its_header() {
        let mut m = b"Subject: big\r\nFrom: a@b.test\r\n\r\n".to_vec();
        m.extend(std::iter::repeat_n(b'x', 5000));
        let raw = prepare(m, 1024);
        assert!(!raw.complete);
        assert_eq!(raw.size, 5000 + 32);
        assert_eq!(raw.bytes, b"Subject: big\r\nFrom: a@b.test\r\n\r\n");
        let small = prepare(b"Subject: s\n\nbody".to_vec(), 1024);
        assert!(small.complete);
    }
}
