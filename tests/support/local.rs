//! What a test takes from this machine: a loopback port and a fresh directory. Every server
//! the support starts (gateway, mail stack, PostgreSQL, chromedriver) gets them here.

use std::net::TcpListener;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};

/// A loopback port for a listener, above the kernel's ephemeral range (32768–60999 here) and
/// scripts/mailstack's (10000–32000), each handed out once per test process. A port from
/// `bind(0)` was an ephemeral one: while a gateway restarted, the kernel could give it to an
/// outgoing connection (IMAP, SMTP, HTTP of a parallel test) and the restarted `serve`
/// failed to bind it (seen once under load). The start in the range depends on the process
/// id, so that parallel test binaries rarely try the same ports.
pub fn free_port() -> u16 {
    const FIRST: u32 = 61_000;
    const COUNT: u32 = 4_500;
    static NEXT: AtomicU32 = AtomicU32::new(u32::MAX);
    let _ = NEXT.compare_exchange(
        u32::MAX,
        std::process::id().wrapping_mul(7919) % COUNT,
        Ordering::SeqCst,
        Ordering::SeqCst,
    );
    for _ in 0..COUNT {
        let n = NEXT.fetch_add(1, Ordering::SeqCst) % COUNT;
        let port = u16::try_from(FIRST + n).expect("below 65536");
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free loopback port in {FIRST}..{}", FIRST + COUNT)
}

/// A new, empty, short directory `/tmp/<prefix>.<pid>.<n>`. Short: a unix socket path inside
/// it must stay under ~100 bytes. Under /tmp: the mail and database users must be able to
/// enter every parent, which rules out the build directory under /root. The pid in the name
/// lets scripts/test stop what a killed test binary left (`tgms.*`, `tgpg.*`).
pub fn fresh_dir(prefix: &str) -> PathBuf {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    loop {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let dir = PathBuf::from(format!("/tmp/{prefix}.{}.{n}", std::process::id()));
        match std::fs::create_dir(&dir) {
            Ok(()) => return dir,
            // Left by an earlier run whose pid was the same: take the next number.
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => panic!("cannot create {}: {e}", dir.display()),
        }
    }
}
