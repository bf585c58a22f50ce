//! Plain HTTP/1.0 over a loopback socket, for the tests that look at what the server writes
//! (status line, headers, `/healthz`, `/metrics`, a forged link) without a cookie session;
//! `support::web::Client` is the browser-like client with cookies and forms. HTTP/1.0: the
//! server closes the connection after the answer, so the answer is everything read.
#![allow(dead_code)] // not every test binary uses every item

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

/// How long a read may wait for the server: far above any answer of a healthy server, and a
/// test that hangs on one fails instead of hanging.
const READ_TIMEOUT: Duration = Duration::from_secs(60);

/// Sends `request` (a whole HTTP/1.0 request) to `port` of this host; the whole answer,
/// or the error of connecting or sending. A read that fails ends the answer (a server that
/// resets the connection still gave what came before).
pub fn try_exchange(port: u16, request: &str) -> std::io::Result<String> {
    let mut s = TcpStream::connect(("127.0.0.1", port))?;
    s.set_read_timeout(Some(READ_TIMEOUT))?;
    s.write_all(request.as_bytes())?;
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    Ok(String::from_utf8_lossy(&out).into_owned())
}

/// [`try_exchange`] that panics when nothing listens on `port`.
pub fn exchange(port: u16, request: &str) -> String {
    try_exchange(port, request).unwrap_or_else(|e| panic!("HTTP to 127.0.0.1:{port}: {e}"))
}

/// `method path` with `headers` and an optional form body
/// (`application/x-www-form-urlencoded`); (status code, body). The code is 0 when the answer
/// has no status line.
pub fn request(
    port: u16,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    form: Option<&str>,
) -> (u16, String) {
    let mut head = format!("{method} {path} HTTP/1.0\r\n");
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    let request = match form {
        Some(body) => format!(
            "{head}Content-Type: application/x-www-form-urlencoded\r\n\
             Content-Length: {}\r\n\r\n{body}",
            body.len()
        ),
        None => format!("{head}\r\n"),
    };
    let answer = exchange(port, &request);
    let code = answer
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = answer
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (code, body)
}

/// GET `path`; (status code, body).
pub fn get(port: u16, path: &str) -> (u16, String) {
    request(port, "GET", path, &[], None)
}
