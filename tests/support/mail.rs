//! Real mail in and out for tests: send raw bytes over SMTP to the private MTA, read a
//! user's mailbox over IMAP from the private Dovecot. Blocking wrappers (each call runs its
//! own small tokio runtime) so tests stay plain `#[test]` functions.

use std::time::{Duration, Instant};

use futures::TryStreamExt;
use lettre::address::Envelope;
use lettre::{Address, AsyncSmtpTransport, AsyncTransport, Tokio1Executor};

use super::mailstack::MailStack;

fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
        .block_on(f)
}

/// Hands `raw` to the MTA for `to` (envelope sender `from`), returns the server's reply.
pub fn send(stack: &MailStack, from: &str, to: &[&str], raw: &[u8]) -> String {
    try_send(stack, from, to, raw).unwrap_or_else(|e| panic!("SMTP send failed: {e}"))
}

pub fn try_send(stack: &MailStack, from: &str, to: &[&str], raw: &[u8]) -> Result<String, String> {
    block_on(async {
        let t = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous("127.0.0.1")
            .port(stack.smtp_port)
            .timeout(Some(Duration::from_secs(30)))
            .build();
        // "" is the null reverse-path of bounces.
        let from: Option<Address> = if from.is_empty() {
            None
        } else {
            Some(from.parse().map_err(|e| format!("{e}"))?)
        };
        let to: Vec<Address> = to
            .iter()
            .map(|a| a.parse::<Address>().map_err(|e| format!("{e}")))
            .collect::<Result<_, _>>()?;
        let env = Envelope::new(from, to).map_err(|e| e.to_string())?;
        let resp = t.send_raw(&env, raw).await.map_err(|e| e.to_string())?;
        Ok(format!("{}", resp.code()))
    })
}

type TestSession = async_imap::Session<tokio::net::TcpStream>;

/// Logs in to `user`'s INBOX. Retries a few times: a test may read while Dovecot is being
/// restarted by the same test.
async fn open_inbox(stack: &MailStack, user: &str) -> TestSession {
    open_folder(stack, user, "INBOX").await
}

async fn open_folder(stack: &MailStack, user: &str, folder: &str) -> TestSession {
    let mut last = String::new();
    for _ in 0..50 {
        match try_open_folder(stack, user, folder).await {
            Ok(s) => return s,
            Err(e) => last = e,
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("cannot open the INBOX of {user}: {last}");
}

async fn try_open_folder(
    stack: &MailStack,
    user: &str,
    folder: &str,
) -> Result<TestSession, String> {
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", stack.imap_port))
        .await
        .map_err(|e| format!("connect: {e}"))?;
    let mut client = async_imap::Client::new(tcp);
    client
        .read_response()
        .await
        .map_err(|e| format!("greeting: {e}"))?
        .ok_or("no greeting")?;
    let mut session = client
        .login(user, &stack.password)
        .await
        .map_err(|(e, _)| format!("login: {e}"))?;
    session
        .select(folder)
        .await
        .map_err(|e| format!("select {folder}: {e}"))?;
    Ok(session)
}

/// Every message in `user`'s INBOX, as raw bytes, oldest first.
pub fn fetch_all(stack: &MailStack, user: &str) -> Vec<Vec<u8>> {
    fetch_folder(stack, user, "INBOX")
}

/// Every message in one of `user`'s folders, as raw bytes, oldest first.
pub fn fetch_folder(stack: &MailStack, user: &str, folder: &str) -> Vec<Vec<u8>> {
    block_on(async {
        let mut session = open_folder(stack, user, folder).await;
        let fetches: Vec<_> = session
            .uid_fetch("1:*", "(UID BODY.PEEK[])")
            .await
            .expect("fetch")
            .try_collect()
            .await
            .unwrap_or_default();
        let mut out: Vec<(u32, Vec<u8>)> = fetches
            .iter()
            .filter_map(|f| Some((f.uid?, f.body()?.to_vec())))
            .collect();
        out.sort_by_key(|m| m.0);
        let _ = session.logout().await;
        out.into_iter().map(|m| m.1).collect()
    })
}

/// Puts `raw` into `user`'s INBOX with IMAP APPEND, byte for byte, as if an Internet sender's
/// mail had been delivered: the private Postfix rewrites some headers of mail it receives
/// from loopback, so hostile header bytes go in this way. Returns once Dovecot has stored it.
pub fn append(stack: &MailStack, user: &str, raw: &[u8]) {
    block_on(async {
        let mut session = open_inbox(stack, user).await;
        session
            .append("INBOX", None, None, raw)
            .await
            .expect("IMAP APPEND");
        let _ = session.logout().await;
    })
}

/// Whether `user`'s INBOX holds at least `n` messages and all of them are flagged `\Seen`.
pub fn all_seen(stack: &MailStack, user: &str, n: usize) -> bool {
    let f = flags(stack, user);
    f.len() >= n
        && f.iter()
            .all(|(_, fl)| fl.iter().any(|x| x.contains("Seen")))
}

/// UIDs in `user`'s INBOX with their flags (e.g. `\Seen`), to check what the gateway did.
pub fn flags(stack: &MailStack, user: &str) -> Vec<(u32, Vec<String>)> {
    block_on(async {
        let mut session = open_inbox(stack, user).await;
        let fetches: Vec<_> = session
            .uid_fetch("1:*", "(UID FLAGS)")
            .await
            .expect("fetch")
            .try_collect()
            .await
            .unwrap_or_default();
        let out = fetches
            .iter()
            .filter_map(|f| {
                Some((
                    f.uid?,
                    f.flags().map(|fl| format!("{fl:?}")).collect::<Vec<_>>(),
                ))
            })
            .collect();
        let _ = session.logout().await;
        out
    })
}

/// Waits until `user` has a message for which `pred` holds; returns it.
pub fn wait_for_mail(
    stack: &MailStack,
    user: &str,
    timeout: Duration,
    pred: impl Fn(&str) -> bool,
) -> String {
    let deadline = Instant::now() + timeout;
    loop {
        for m in fetch_all(stack, user) {
            let text = String::from_utf8_lossy(&m).into_owned();
            if pred(&text) {
                return text;
            }
        }
        if Instant::now() > deadline {
            let have: Vec<String> = fetch_all(stack, user)
                .iter()
                .map(|m| header(&String::from_utf8_lossy(m), "Subject").unwrap_or_default())
                .collect();
            panic!("no matching mail for {user} within {timeout:?}; subjects there: {have:?}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Value of the first header `name` (unfolded), if present.
pub fn header(raw: &str, name: &str) -> Option<String> {
    let msg = mail_parser::MessageParser::default().parse(raw.as_bytes())?;
    msg.header_raw(name)
        .map(|v| v.split_whitespace().collect::<Vec<_>>().join(" "))
}

/// Decoded subject and text body.
pub fn subject_and_text(raw: &str) -> (String, String) {
    let msg = mail_parser::MessageParser::default()
        .parse(raw.as_bytes())
        .expect("parseable mail");
    (
        msg.subject().unwrap_or_default().to_owned(),
        msg.body_text(0).map(|t| t.into_owned()).unwrap_or_default(),
    )
}

/// A simple citizen mail with a unique Message-ID.
pub fn citizen_mail(from: &str, to: &str, subject: &str, body: &str) -> (String, Vec<u8>) {
    let id = unique_id();
    let raw = format!(
        "From: Anna Verdi <{from}>\r\nTo: {to}\r\nSubject: {subject}\r\nMessage-ID: <{id}>\r\n\
         Date: Thu, 26 Nov 2026 10:00:00 +0100\r\nMIME-Version: 1.0\r\n\
         Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n{body}\r\n"
    );
    (id, raw.into_bytes())
}

/// A Message-ID no other test uses.
pub fn unique_id() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    let n = N.fetch_add(1, Ordering::Relaxed);
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!("{t}.{n}.{}@citizen.test", std::process::id())
}

/// The address inside a header value like `Name <a@b>` (or the value itself).
pub fn address_in(value: &str) -> String {
    match (value.rfind('<'), value.rfind('>')) {
        (Some(a), Some(b)) if a < b => value[a + 1..b].trim().to_lowercase(),
        _ => value.trim().to_lowercase(),
    }
}

/// A reply to `original` as a mail client builds it: to its Reply-To (else From),
/// `Re:` subject, In-Reply-To/References to its Message-ID, the new text on top and the
/// original quoted below a Gmail-style attribution line.
pub fn reply_to_mail(original: &str, from: &str, new_text: &str) -> (String, Vec<u8>) {
    let id = header(original, "Message-ID").expect("original has a Message-ID");
    let to = header(original, "Reply-To")
        .or_else(|| header(original, "From"))
        .map(|v| address_in(&v))
        .expect("original has a sender");
    let (subject, text) = subject_and_text(original);
    let quoted: String = text.lines().map(|l| format!("> {l}\r\n")).collect();
    let my_id = unique_id();
    let raw = format!(
        "From: <{from}>\r\nTo: <{to}>\r\nSubject: Re: {subject}\r\nIn-Reply-To: {id}\r\n\
         References: {id}\r\nMessage-ID: <{my_id}>\r\nMIME-Version: 1.0\r\n\
         Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n\
         {new_text}\r\n\r\nIl giorno gio 26 nov 2026 alle ore 10:00 Comune <{to}> ha scritto:\r\n\r\n{quoted}"
    );
    (to, raw.into_bytes())
}

/// A Postfix-style DSN to `to`: delivery to `recipient` of the message `original_id`
/// (with angle brackets) failed with 5.1.1.
pub fn dsn(to: &str, recipient: &str, original_id: &str) -> String {
    format!(
        "From: MAILER-DAEMON@citizen.test\r\nTo: <{to}>\r\nSubject: Undelivered Mail Returned to Sender\r\n\
         Message-ID: <{}>\r\nAuto-Submitted: auto-replied\r\nMIME-Version: 1.0\r\n\
         Content-Type: multipart/report; report-type=delivery-status; boundary=\"B\"\r\n\r\n\
         --B\r\nContent-Type: text/plain\r\n\r\nI'm sorry to have to inform you...\r\n\
         --B\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mx.citizen.test\r\n\r\n\
         Final-Recipient: rfc822; {recipient}\r\nAction: failed\r\nStatus: 5.1.1\r\n\
         Diagnostic-Code: smtp; 550 5.1.1 user unknown\r\n\r\n\
         --B\r\nContent-Type: text/rfc822-headers\r\n\r\nMessage-ID: {original_id}\r\nSubject: x\r\n\r\n--B--\r\n",
        unique_id()
    )
}
