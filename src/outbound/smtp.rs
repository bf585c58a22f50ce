//! The SMTP transport (lettre), built from `[smtp]`; sends pre-built bytes unchanged. A send
//! can be abandoned midway (the outbox worker does when its lease could run out): its pool is
//! then replaced, never reused with a connection left inside a command.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use lettre::address::Envelope;
use lettre::transport::smtp::authentication::Credentials;
use lettre::{Address, AsyncSmtpTransport, AsyncTransport, Tokio1Executor};
use secrecy::ExposeSecret;

use crate::config::{SmtpConfig, TlsMode};
use crate::domain::EmailAddress;

/// What the server said about one message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SendResult {
    /// Accepted (2xx), with the server's reply.
    Accepted(String),
    /// Temporary failure (4xx, connection trouble): try again later.
    Temporary(String),
    /// Permanent failure (5xx): retrying will not help.
    Permanent(String),
}

/// Sends raw messages through the configured SMTP server.
#[derive(Clone)]
pub struct SmtpSender {
    /// The pooled transport, replaced by a fresh pool when a send is abandoned midway
    /// ([`SmtpSender::send_until`]).
    transport: Arc<Mutex<AsyncSmtpTransport<Tokio1Executor>>>,
    /// To build that fresh pool.
    cfg: Arc<SmtpConfig>,
    label: String,
}

impl std::fmt::Debug for SmtpSender {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SmtpSender({})", self.label)
    }
}

impl SmtpSender {
    pub fn new(cfg: &SmtpConfig) -> anyhow::Result<SmtpSender> {
        Ok(SmtpSender {
            transport: Arc::new(Mutex::new(build(cfg)?)),
            cfg: Arc::new(cfg.clone()),
            label: format!("{}:{}", cfg.host, cfg.port),
        })
    }

    /// The current pool (a clone shares it).
    fn transport(&self) -> AsyncSmtpTransport<Tokio1Executor> {
        self.transport
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Opens a connection and says EHLO (and logs in): `check-config --connect`.
    pub async fn test(&self) -> anyhow::Result<()> {
        let ok = self
            .transport()
            .test_connection()
            .await
            .with_context(|| format!("SMTP server {}", self.label))?;
        anyhow::ensure!(ok, "SMTP server {} did not answer NOOP", self.label);
        Ok(())
    }

    /// Sends `bytes` exactly as they are.
    pub async fn send(&self, from: &str, to: &[EmailAddress], bytes: &[u8]) -> SendResult {
        send_on(&self.transport(), from, to, bytes).await
    }

    /// [`SmtpSender::send`], abandoned when `stop` completes first: `None` then, and the mail
    /// was not sent — unless the server had already received the final dot, the one moment no
    /// client can close (RFC 1047); the outbox is at-least-once for that reason.
    ///
    /// An abandoned send leaves its connection in the middle of a command, maybe inside DATA.
    /// The pool would take it back as healthy (lettre marks a connection broken only after an
    /// error) and the next mail would read the previous mail's replies — or be written into
    /// its body. So the whole pool is shut down, which closes that connection without the
    /// final dot (the server discards the partial mail), and later sends get a fresh pool.
    pub async fn send_until(
        &self,
        from: &str,
        to: &[EmailAddress],
        bytes: &[u8],
        stop: impl std::future::Future<Output = ()>,
    ) -> Option<SendResult> {
        let transport = self.transport();
        tokio::select! {
            // A finished send wins over a stop that became due at the same moment: its
            // result is known and must be recorded.
            biased;
            result = send_on(&transport, from, to, bytes) => Some(result),
            () = stop => {
                self.discard_pool(transport);
                None
            }
        }
    }

    /// Puts a fresh pool in place of the current one and shuts `used` (the abandoned send's
    /// pool) down.
    fn discard_pool(&self, used: AsyncSmtpTransport<Tokio1Executor>) {
        match build(&self.cfg) {
            Ok(fresh) => {
                // Several sends abandoned together each call this; a pool already replaced
                // by one of them is shut down again, which is harmless.
                *self.transport.lock().unwrap_or_else(|e| e.into_inner()) = fresh;
            }
            // Cannot happen with a configuration that built once; keep the old pool rather
            // than none, and let its connections fail and be dropped.
            Err(e) => {
                tracing::error!(smtp = %self.label, error = format!("{e:#}"), "cannot rebuild the SMTP pool")
            }
        }
        // The abandoned connection goes back to the pool from a spawned task (lettre's
        // drop); after shutdown the pool aborts what it is given back instead of keeping it.
        tokio::spawn(async move { used.shutdown().await });
    }
}

/// The transport for `cfg` (a pool of connections).
fn build(cfg: &SmtpConfig) -> anyhow::Result<AsyncSmtpTransport<Tokio1Executor>> {
    let builder = match cfg.tls {
        TlsMode::None => AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&cfg.host),
        TlsMode::Starttls => AsyncSmtpTransport::<Tokio1Executor>::starttls_relay(&cfg.host)
            .with_context(|| format!("smtp.host {:?}", cfg.host))?,
        TlsMode::Tls => AsyncSmtpTransport::<Tokio1Executor>::relay(&cfg.host)
            .with_context(|| format!("smtp.host {:?}", cfg.host))?,
    };
    let mut builder = builder
        .port(cfg.port)
        .timeout(Some(Duration::from_secs(cfg.timeout_seconds)));
    if let (Some(user), Some(pass)) = (&cfg.username, &cfg.password) {
        builder = builder.credentials(Credentials::new(
            user.clone(),
            pass.expose_secret().to_owned(),
        ));
    }
    Ok(builder.build())
}

async fn send_on(
    transport: &AsyncSmtpTransport<Tokio1Executor>,
    from: &str,
    to: &[EmailAddress],
    bytes: &[u8],
) -> SendResult {
    let envelope = match make_envelope(from, to) {
        Ok(e) => e,
        Err(e) => return SendResult::Permanent(format!("bad envelope: {e}")),
    };
    match transport.send_raw(&envelope, bytes).await {
        Ok(resp) => {
            let text: Vec<&str> = resp.message().collect();
            SendResult::Accepted(format!("{} {}", resp.code(), text.join(" ")))
        }
        Err(e) if e.is_permanent() => SendResult::Permanent(error_text(&e)),
        Err(e) => SendResult::Temporary(error_text(&e)),
    }
}

fn error_text(e: &lettre::transport::smtp::Error) -> String {
    let mut s = e.to_string();
    let mut src = std::error::Error::source(e);
    while let Some(inner) = src {
        s.push_str(": ");
        s.push_str(&inner.to_string());
        src = inner.source();
    }
    s
}

fn make_envelope(from: &str, to: &[EmailAddress]) -> anyhow::Result<Envelope> {
    let from: Address = from.parse().with_context(|| format!("sender {from:?}"))?;
    let to = to
        .iter()
        .map(|t| {
            t.as_str()
                .parse::<Address>()
                .with_context(|| format!("recipient {t:?}"))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    Ok(Envelope::new(Some(from), to)?)
}
