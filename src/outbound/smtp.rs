//! The SMTP transport (lettre), built from `[smtp]`; sends pre-built bytes unchanged.

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
    transport: AsyncSmtpTransport<Tokio1Executor>,
    label: String,
}

impl std::fmt::Debug for SmtpSender {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SmtpSender({})", self.label)
    }
}

impl SmtpSender {
    pub fn new(cfg: &SmtpConfig) -> anyhow::Result<SmtpSender> {
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
        Ok(SmtpSender {
            transport: builder.build(),
            label: format!("{}:{}", cfg.host, cfg.port),
        })
    }

    /// Opens a connection and says EHLO (and logs in): `check-config --connect`.
    pub async fn test(&self) -> anyhow::Result<()> {
        let ok = self
            .transport
            .test_connection()
            .await
            .with_context(|| format!("SMTP server {}", self.label))?;
        anyhow::ensure!(ok, "SMTP server {} did not answer NOOP", self.label);
        Ok(())
    }

    /// Sends `bytes` exactly as they are.
    pub async fn send(&self, from: &str, to: &[EmailAddress], bytes: &[u8]) -> SendResult {
        let envelope = match make_envelope(from, to) {
            Ok(e) => e,
            Err(e) => return SendResult::Permanent(format!("bad envelope: {e}")),
        };
        match self.transport.send_raw(&envelope, bytes).await {
            Ok(resp) => {
                let text: Vec<&str> = resp.message().collect();
                SendResult::Accepted(format!("{} {}", resp.code(), text.join(" ")))
            }
            Err(e) if e.is_permanent() => SendResult::Permanent(error_text(&e)),
            Err(e) => SendResult::Temporary(error_text(&e)),
        }
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
