//! The web server's accept loop: HTTP/1 on a TCP listener with a cap on connections served at
//! once, a deadline for each request's headers (which is also the keep-alive idle time) and
//! body, and a stop that waits a bounded time for requests in hand.
//!
//! Why not `axum::serve`: it has no timeouts and no connection limit, so a client that opens
//! connections and sends half a request holds one file descriptor each, forever. At the
//! process's limit (1,024 by default) attachments could not be written, IMAP could not
//! reconnect — the mail side stopped — and a stop request waited for those connections
//! without end. Here a connection is accepted only with a permit (the rest wait in the
//! kernel's listen queue, holding no descriptor of ours), the cap is lowered to keep
//! descriptors free for the mail side, and every phase of a request has a deadline.
//!
//! What it must not do: know any route. It serves whatever [`axum::Router`] it is given.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::ConnectInfo;
use axum::Router;
use hyper::body::{Frame, Incoming, SizeHint};
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;
use tokio::time::{sleep_until, Instant, Sleep};
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

/// How long a stop waits for requests in hand before it drops their connections.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);
/// After a failed accept (out of descriptors, most likely), wait this long before the next.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);
/// File descriptors kept free of web connections, at least: IMAP connections per mailbox,
/// SMTP, the database pool (SQLite: file, WAL, shared memory each), attachment files.
const MIN_FDS_FOR_THE_REST: u64 = 128;
/// The fewest connections served at once, whatever the descriptor limit says.
const MIN_CONNECTIONS: usize = 8;

/// The limits of one listener.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Connections served at once.
    pub max_connections: usize,
    /// For a request's headers, and for the next request on an idle keep-alive connection.
    pub header_timeout: Duration,
    /// For a request's body, from the moment its headers arrived.
    pub body_timeout: Duration,
}

/// `configured` connections, or fewer, so that at least a quarter of the process's file
/// descriptors (and never fewer than [`MIN_FDS_FOR_THE_REST`]) stay free for everything that
/// is not a web connection. `soft_limit` is the process's `RLIMIT_NOFILE` (None: unknown).
pub fn connection_cap(configured: usize, soft_limit: Option<u64>) -> usize {
    let Some(soft) = soft_limit else {
        return configured;
    };
    let reserve = (soft / 4).max(MIN_FDS_FOR_THE_REST);
    let room = usize::try_from(soft.saturating_sub(reserve)).unwrap_or(usize::MAX);
    configured.min(room).max(MIN_CONNECTIONS)
}

/// The soft limit on open files of this process, from `/proc/self/limits` (Linux). Read
/// rather than asked of the kernel so that the crate needs no `unsafe`; where the file is
/// missing the cap stays as configured. `unlimited` is `None` too.
pub fn open_files_limit() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/self/limits").ok()?;
    parse_open_files_limit(&text)
}

fn parse_open_files_limit(limits: &str) -> Option<u64> {
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line.trim_start_matches("Max open files")
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// Serves `app` on `listener` until `stop` is cancelled, then waits up to
/// [`SHUTDOWN_GRACE`] for the requests in hand and drops whatever is left.
pub async fn serve(listener: TcpListener, app: Router, limits: Limits, stop: CancellationToken) {
    let permits = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            _ = stop.cancelled() => break,
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
            accepted = accept_with_permit(&listener, &permits) => match accepted {
                Ok((stream, peer, permit)) => {
                    let app = app.clone();
                    let stop = stop.clone();
                    connections.spawn(async move {
                        serve_connection(stream, peer, app, limits, stop).await;
                        drop(permit);
                    });
                }
                Err(e) => {
                    metrics::counter!("ticketgate_web_accept_errors_total").increment(1);
                    tracing::warn!(error = %e, "web server: accepting a connection failed");
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                }
            },
        }
    }
    drop(listener);
    let drained = tokio::time::timeout(SHUTDOWN_GRACE, async {
        while connections.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        tracing::warn!(
            left = connections.len(),
            "web server: connections still open after the stop deadline are dropped"
        );
        connections.shutdown().await;
    }
}

/// Waits for a free connection slot, then for a connection. Cancel-safe: dropped while
/// waiting, it gives the slot back and leaves the connection in the listen queue.
async fn accept_with_permit(
    listener: &TcpListener,
    permits: &Arc<Semaphore>,
) -> std::io::Result<(tokio::net::TcpStream, SocketAddr, OwnedSemaphorePermit)> {
    let permit = permits
        .clone()
        .acquire_owned()
        .await
        .map_err(|_| std::io::Error::other("connection semaphore closed"))?;
    let (stream, peer) = listener.accept().await?;
    Ok((stream, peer, permit))
}

async fn serve_connection(
    stream: tokio::net::TcpStream,
    peer: SocketAddr,
    app: Router,
    limits: Limits,
    stop: CancellationToken,
) {
    let service = hyper::service::service_fn(move |mut request: hyper::Request<Incoming>| {
        // The peer address feeds the per-address limits (`ConnectInfo`, as axum::serve does).
        request.extensions_mut().insert(ConnectInfo(peer));
        let request = request.map(|body| {
            Body::new(TimedBody {
                inner: body,
                deadline: Box::pin(sleep_until(Instant::now() + limits.body_timeout)),
            })
        });
        app.clone().oneshot(request)
    });
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        .keep_alive(true);
    let connection = builder.serve_connection(TokioIo::new(stream), service);
    tokio::pin!(connection);
    tokio::select! {
        served = connection.as_mut() => {
            if let Err(e) = served {
                tracing::debug!(error = %e, %peer, "web connection ended");
            }
        }
        _ = stop.cancelled() => {
            // Finish the request in hand, take no other; the loop's deadline bounds the wait.
            connection.as_mut().graceful_shutdown();
            let _ = connection.await;
        }
    }
}

/// A request body that fails once its deadline passes: a client sending a body slowly (or
/// not at all) cannot hold a connection and a handler for ever.
struct TimedBody {
    inner: Incoming,
    deadline: Pin<Box<Sleep>>,
}

/// The error a body that arrived too slowly ends with.
#[derive(Debug, thiserror::Error)]
#[error("the request body did not arrive in time")]
struct BodyTimedOut;

impl hyper::body::Body for TimedBody {
    type Data = Bytes;
    type Error = axum::BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = self.get_mut();
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(frame) => Poll::Ready(frame.map(|f| f.map_err(Into::into))),
            Poll::Pending => match this.deadline.as_mut().poll(cx) {
                Poll::Ready(()) => Poll::Ready(Some(Err(BodyTimedOut.into()))),
                Poll::Pending => Poll::Pending,
            },
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_connection_cap_leaves_a_quarter_of_the_descriptors_for_the_mail_side() {
        assert_eq!(connection_cap(512, Some(1024)), 512);
        assert_eq!(connection_cap(2000, Some(1024)), 768);
        assert_eq!(connection_cap(512, Some(256)), 128);
        assert_eq!(connection_cap(512, Some(100)), MIN_CONNECTIONS);
        assert_eq!(connection_cap(512, None), 512);
        assert_eq!(connection_cap(512, Some(1_048_576)), 512);
    }

    #[test]
    fn the_open_files_limit_is_read_from_proc_limits() {
        let text = "Limit                     Soft Limit           Hard Limit           Units     \n\
                    Max processes             63422                63422                processes \n\
                    Max open files            1024                 524288               files     \n";
        assert_eq!(parse_open_files_limit(text), Some(1024));
        let unlimited =
            "Max open files            unlimited            unlimited            files\n";
        assert_eq!(parse_open_files_limit(unlimited), None);
    }
}
