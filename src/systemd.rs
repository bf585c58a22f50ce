//! What `serve` tells systemd (`sd_notify(3)`): `READY=1` once it can do its work,
//! `WATCHDOG=1` while its main loop turns, `STOPPING=1` when a stop begins.
//!
//! The protocol is one datagram per message on the unix socket named by `$NOTIFY_SOCKET`,
//! so a few lines of `std` do it (no crate, and no `unsafe`: the crate forbids it). Outside
//! systemd (no `$NOTIFY_SOCKET`) every call does nothing. A failed send is logged, never
//! fatal: the gateway works the same whether or not anybody listens.

use std::os::unix::net::UnixDatagram;
use std::time::Duration;

/// Where notifications go, read once from the environment at start.
#[derive(Debug)]
pub struct Notifier {
    socket: Option<(UnixDatagram, Target)>,
    watchdog: Option<Duration>,
}

/// The address in `$NOTIFY_SOCKET`: a path, or (leading `@`) a Linux abstract name.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Target {
    Path(std::path::PathBuf),
    Abstract(Vec<u8>),
}

impl Notifier {
    /// Reads `$NOTIFY_SOCKET`, `$WATCHDOG_USEC` and `$WATCHDOG_PID` of this process.
    pub fn from_env() -> Notifier {
        let target = std::env::var_os("NOTIFY_SOCKET").and_then(|s| parse_target(&s));
        let watchdog = watchdog_interval(
            std::env::var("WATCHDOG_USEC").ok().as_deref(),
            std::env::var("WATCHDOG_PID").ok().as_deref(),
            std::process::id(),
        );
        let socket = target.and_then(|t| match UnixDatagram::unbound() {
            Ok(s) => Some((s, t)),
            Err(e) => {
                tracing::warn!(error = %e, "cannot open a socket to notify systemd");
                None
            }
        });
        Notifier {
            socket,
            // Without a socket there is nobody to ping.
            watchdog: watchdog.filter(|_| std::env::var_os("NOTIFY_SOCKET").is_some()),
        }
    }

    /// How often to send `WATCHDOG=1`: half the interval systemd asked for (the margin
    /// `sd_watchdog_enabled(3)` recommends), or `None` when no watchdog is set.
    pub fn watchdog_period(&self) -> Option<Duration> {
        self.watchdog.map(|w| w / 2)
    }

    /// The pollers, the outbox worker and the web server are up.
    pub fn ready(&self) {
        self.send("READY=1\nSTATUS=serving");
    }

    /// The main loop is alive.
    pub fn watchdog(&self) {
        self.send("WATCHDOG=1");
    }

    /// A stop began: systemd shows "deactivating" and waits for the exit.
    pub fn stopping(&self) {
        self.send("STOPPING=1\nSTATUS=finishing the work in hand");
    }

    fn send(&self, message: &str) {
        let Some((socket, target)) = &self.socket else {
            return;
        };
        let sent = match target {
            Target::Path(path) => socket.send_to(message.as_bytes(), path),
            Target::Abstract(name) => {
                abstract_addr(name).and_then(|addr| socket.send_to_addr(message.as_bytes(), &addr))
            }
        };
        if let Err(e) = sent {
            tracing::warn!(error = %e, message, "cannot notify systemd");
        }
    }
}

fn abstract_addr(name: &[u8]) -> std::io::Result<std::os::unix::net::SocketAddr> {
    use std::os::linux::net::SocketAddrExt;
    std::os::unix::net::SocketAddr::from_abstract_name(name)
}

/// `$NOTIFY_SOCKET` as an address; `None` when empty or of a kind we cannot reach (systemd
/// also accepts `vsock:`, which only a VM's init uses).
fn parse_target(value: &std::ffi::OsStr) -> Option<Target> {
    use std::os::unix::ffi::OsStrExt;
    let bytes = value.as_bytes();
    match bytes.first()? {
        b'/' => Some(Target::Path(value.into())),
        b'@' => Some(Target::Abstract(bytes[1..].to_vec())),
        _ => None,
    }
}

/// The watchdog interval systemd set for this process: `$WATCHDOG_USEC` (microseconds), only
/// when `$WATCHDOG_PID` is unset or names `pid` (it is meant for the main process alone, not
/// for a child that inherited the environment).
fn watchdog_interval(usec: Option<&str>, for_pid: Option<&str>, pid: u32) -> Option<Duration> {
    let usec: u64 = usec?.trim().parse().ok().filter(|&u| u > 0)?;
    if let Some(p) = for_pid {
        if p.trim().parse::<u32>().ok() != Some(pid) {
            return None;
        }
    }
    Some(Duration::from_micros(usec))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::OsStr;

    #[test]
    fn the_watchdog_runs_only_for_the_process_it_was_set_for() {
        let half_minute = Some(Duration::from_secs(30));
        assert_eq!(watchdog_interval(Some("30000000"), None, 7), half_minute);
        assert_eq!(
            watchdog_interval(Some("30000000"), Some("7"), 7),
            half_minute
        );
        assert_eq!(watchdog_interval(Some("30000000"), Some("8"), 7), None);
        assert_eq!(watchdog_interval(None, Some("7"), 7), None);
        for bad in ["", "0", "-5", "soon", "30s"] {
            assert_eq!(watchdog_interval(Some(bad), None, 7), None, "{bad:?}");
        }
    }

    #[test]
    fn a_notify_socket_is_a_path_or_an_abstract_name() {
        assert_eq!(
            parse_target(OsStr::new("/run/systemd/notify")),
            Some(Target::Path("/run/systemd/notify".into()))
        );
        assert_eq!(
            parse_target(OsStr::new("@/org/freedesktop/systemd1/notify/42")),
            Some(Target::Abstract(
                b"/org/freedesktop/systemd1/notify/42".to_vec()
            ))
        );
        assert_eq!(parse_target(OsStr::new("")), None);
        assert_eq!(parse_target(OsStr::new("vsock:2:1234")), None);
        assert_eq!(parse_target(OsStr::new("relative/path")), None);
    }
}
