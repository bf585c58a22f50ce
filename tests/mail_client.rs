//! A real mail client answers a notification: NeoMutt (Debian's `neomutt`), run as the staff
//! member in a detached tmux session on a private socket, opens their INBOX over IMAP on the
//! private Dovecot, limits the index to the gateway's notification, replies to it (honouring
//! its Reply-To, the area address) with the original quoted below the new text, and sends
//! over SMTP through the private Postfix. The real `ticketgate serve` must recognise the
//! reply as the office's answer and forward only the new lines to the citizen.
//!
//! Nothing is typed into the terminal: the keys are `push`ed by the muttrc, and every
//! question NeoMutt could ask is answered by a setting. tmux only supplies the terminal
//! NeoMutt needs; the test reads the pane's screen and NeoMutt's debug log when it fails.
//! Needs the `neomutt` and `tmux` packages (scripts/install-deps).

mod support;

use std::path::PathBuf;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use serde_json::Value;
use support::gateway::*;
use support::mail::*;
use support::mailstack::MailStack;

const WAIT: Duration = Duration::from_secs(30);

/// How long NeoMutt may take to open the INBOX, reply, send and quit (it takes well under a
/// second): after that it is killed and the test fails with its screen and log.
const NEOMUTT_TIMEOUT: Duration = Duration::from_secs(30);

/// What the staff member writes above NeoMutt's quote of the notification.
const STAFF_TEXT: &str = "Buongiorno, abbiamo inviato una squadra.";

/// The editor NeoMutt runs on the reply: puts the staff member's text above the quote that
/// `include=yes` wrote into the file (top-posting), as a person would.
const EDITOR: &str = r#"#!/bin/sh
set -e
f="$1"
{ printf 'Buongiorno, abbiamo inviato una squadra.\n\n'; cat "$f"; } >"$f.tmp"
cat "$f.tmp" >"$f"
rm -f "$f.tmp"
"#;

/// A Message-ID without its angle brackets.
fn bare_id(id: &str) -> &str {
    id.trim().trim_start_matches('<').trim_end_matches('>')
}

/// NeoMutt in a detached tmux session, on a tmux socket and in a directory (HOME, muttrc,
/// editor, temporary files, debug log) of its own. Dropping it kills the tmux server, and
/// with it NeoMutt if it is still running.
struct Neomutt {
    dir: tempfile::TempDir,
    socket: PathBuf,
}

impl Neomutt {
    /// Starts NeoMutt as `user`, with `push` keys that limit the index to the message whose
    /// Message-ID is `message_id`, reply to it, send the reply and quit.
    fn reply_to(stack: &MailStack, user: &str, message_id: &str) -> Neomutt {
        let dir = tempfile::Builder::new()
            .prefix("tg-neomutt-")
            .tempdir()
            .expect("temp dir");
        let path = dir.path();
        let home = path.join("home");
        let tmp = path.join("tmp");
        std::fs::create_dir_all(&home).expect("home dir");
        std::fs::create_dir_all(&tmp).expect("tmp dir");
        let editor = path.join("editor.sh");
        std::fs::write(&editor, EDITOR).expect("write editor");
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&editor, std::fs::Permissions::from_mode(0o755))
                .expect("chmod editor");
        }
        let user_in_url = user.replace('@', "%40");
        let (imap, smtp, pw) = (stack.imap_port, stack.smtp_port, &stack.password);
        // `~i` is a regex on the Message-ID: its dots match themselves too, and the id is
        // unique in the mailbox.
        let id = bare_id(message_id);
        let muttrc = format!(
            r#"# Written by tests/mail_client.rs
set imap_user="{user}"
set imap_pass="{pw}"
set folder="imap://{user_in_url}@127.0.0.1:{imap}/"
set spoolfile="imap://{user_in_url}@127.0.0.1:{imap}/INBOX"
set smtp_url="smtp://127.0.0.1:{smtp}"
set from="{user}"
set realname="Mario Rossi"
set hostname="comune.test"
# Plaintext on loopback, as the private stack serves it.
set ssl_starttls=no
set ssl_force_tls=no
unset header_cache
unset message_cachedir
set tmpdir="{tmp}"
# The reply: original quoted below the attribution (default format), headers not edited,
# the text written by the editor above the quote.
set include=yes
set edit_headers=no
set editor="{editor}"
# Reply to the notification's Reply-To (the area address) without asking.
set reply_to=yes
# No other questions: recipients and subject as NeoMutt proposes them, no postponed
# messages, no attachment reminder, no Cc/Bcc prompts, no copy saved, no crypto.
set fast_reply=yes
set recall=no
set postpone=no
set abort_noattach=no
set abort_unmodified=no
set askcc=no
set askbcc=no
set copy=no
set crypt_autosign=no
set crypt_autoencrypt=no
set crypt_replysign=no
set crypt_replyencrypt=no
set crypt_replysignencrypted=no
set crypt_opportunistic_encrypt=no
# Quit without asking, deleting or moving anything (the notification keeps the \Seen and
# \Answered flags any client sets).
set quit=yes
set delete=no
set move=no
set mark_old=no
set sleep_time=0
set wait_key=no
set beep=no
push "<limit>~i {id}<enter><reply><send-message><quit>"
"#,
            tmp = tmp.display(),
            editor = editor.display(),
        );
        let muttrc_path = path.join("muttrc");
        std::fs::write(&muttrc_path, muttrc).expect("write muttrc");
        // The shell around NeoMutt records its exit status: tmux does not always reap a
        // pane's process promptly, so its #{pane_dead_status} cannot be relied on.
        // remain-on-exit keeps the pane (NeoMutt's last screen) for the failure message.
        let run = path.join("run.sh");
        std::fs::write(
            &run,
            format!(
                "#!/bin/sh\nneomutt -n -F {muttrc} -d 2 -l {log}\n\
                 echo $? >{status}.tmp && mv {status}.tmp {status}\n",
                muttrc = muttrc_path.display(),
                log = path.join("neomutt.log").display(),
                status = path.join("status").display(),
            ),
        )
        .expect("write run.sh");
        let tmux_conf = path.join("tmux.conf");
        std::fs::write(&tmux_conf, "set -g remain-on-exit on\n").expect("write tmux.conf");

        let nm = Neomutt {
            socket: path.join("tmux.sock"),
            dir,
        };
        let out = Command::new("tmux")
            .arg("-S")
            .arg(&nm.socket)
            .arg("-f")
            .arg(&tmux_conf)
            .args([
                "new-session",
                "-d",
                "-s",
                "neomutt",
                "-x",
                "160",
                "-y",
                "50",
            ])
            .arg(format!("sh {}", run.display()))
            .env("HOME", &home)
            .env("TMPDIR", &tmp)
            .env_remove("TMUX")
            .env_remove("MAIL")
            .env_remove("EMAIL")
            .output()
            .expect("run tmux (scripts/install-deps installs it)");
        assert!(
            out.status.success(),
            "tmux new-session failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        nm
    }

    fn tmux(&self, args: &[&str]) -> Output {
        Command::new("tmux")
            .arg("-S")
            .arg(&self.socket)
            .args(args)
            .output()
            .expect("run tmux")
    }

    /// The pane's screen as text.
    fn screen(&self) -> String {
        String::from_utf8_lossy(&self.tmux(&["capture-pane", "-p", "-t", "neomutt"]).stdout)
            .trim_end()
            .to_owned()
    }

    /// NeoMutt's debug log (`-l FILE` writes FILE0, the previous run's FILE1…); its last
    /// lines.
    fn log_tail(&self) -> String {
        let mut text = String::new();
        if let Ok(entries) = std::fs::read_dir(self.dir.path()) {
            for e in entries.flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                if name.starts_with("neomutt.log") {
                    text.push_str(&std::fs::read_to_string(e.path()).unwrap_or_default());
                }
            }
        }
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(60)..].join("\n")
    }

    /// Waits until NeoMutt has quit; its exit status. Kills it and panics with its screen
    /// and log after `timeout`.
    fn wait(&self, timeout: Duration) -> i32 {
        let status_file = self.dir.path().join("status");
        let deadline = Instant::now() + timeout;
        loop {
            if let Ok(status) = std::fs::read_to_string(&status_file) {
                return status.trim().parse().unwrap_or(-1);
            }
            let alive = self.tmux(&["has-session", "-t", "neomutt"]);
            if !alive.status.success() {
                panic!(
                    "the tmux session of neomutt is gone ({}):\n--- neomutt log ---\n{}",
                    String::from_utf8_lossy(&alive.stderr).trim(),
                    self.log_tail()
                );
            }
            if Instant::now() > deadline {
                let screen = self.screen();
                self.kill();
                panic!(
                    "neomutt did not finish within {timeout:?}; killed.\n--- screen ---\n\
                     {screen}\n--- neomutt log ---\n{}",
                    self.log_tail()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn kill(&self) {
        let _ = self.tmux(&["kill-server"]);
    }
}

impl Drop for Neomutt {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The one message in `list` of `direction` and `kind`, from `ticket show`.
fn message<'a>(shown: &'a Value, direction: &str, kind: &str) -> &'a Value {
    let found: Vec<&Value> = shown["messages"]
        .as_array()
        .expect("messages")
        .iter()
        .filter(|m| m["direction"] == direction && m["kind"] == kind)
        .collect();
    assert_eq!(found.len(), 1, "one {direction} {kind} message: {shown:#}");
    found[0]
}

#[test]
fn a_reply_written_in_neomutt_to_the_notification_reaches_the_citizen_threaded_and_stripped() {
    let started = Instant::now();
    let stack = MailStack::start();
    let gw = Gateway::start(&stack);

    // The citizen's report, the ticket, and the office's notification in the staff INBOX.
    let (citizen_id, raw) = citizen_mail(
        CITIZEN,
        LAVORI,
        "Buca in via Roma",
        "C'è una buca profonda davanti al civico 12.",
    );
    send(&stack, CITIZEN, &[LAVORI], &raw);
    let ack = wait_for_mail(&stack, CITIZEN, WAIT, |m| m.contains(&citizen_id));
    let (ack_subject, _) = subject_and_text(&ack);
    let reference = ack_subject
        .split_once("[Ticket #")
        .and_then(|(_, rest)| rest.split_once(']'))
        .map(|(r, _)| r.to_owned())
        .unwrap_or_else(|| panic!("no ticket tag in the acknowledgment: {ack_subject}"));
    let tag = format!("[Ticket #{reference}]");
    let note = wait_for_mail(&stack, STAFF_LAVORI, WAIT, |m| m.contains(&reference));
    let note_id = header(&note, "Message-ID").expect("the notification has a Message-ID");
    assert!(
        header(&note, "Reply-To")
            .unwrap_or_default()
            .contains(LAVORI),
        "the notification asks for replies to the area address:\n{note}"
    );

    // The staff member answers it in NeoMutt.
    let client_started = Instant::now();
    let neomutt = Neomutt::reply_to(&stack, STAFF_LAVORI, &note_id);
    let status = neomutt.wait(NEOMUTT_TIMEOUT);
    let client_took = client_started.elapsed();
    assert_eq!(
        status,
        0,
        "neomutt exited with {status}\n--- screen ---\n{}\n--- neomutt log ---\n{}",
        neomutt.screen(),
        neomutt.log_tail()
    );

    // What NeoMutt sent, as delivered to the area mailbox (the gateway leaves it there,
    // flagged \Seen).
    let sent = wait_for_mail(&stack, LAVORI, WAIT, |m| {
        header(m, "From").is_some_and(|f| f.contains(STAFF_LAVORI))
    });
    eprintln!("--- the reply neomutt sent (took {client_took:?}) ---\n{sent}");
    let (sent_subject, sent_text) = subject_and_text(&sent);
    assert_eq!(
        header(&sent, "In-Reply-To").as_deref().map(bare_id),
        Some(bare_id(&note_id)),
        "neomutt replied to the notification:\n{sent}"
    );
    assert!(
        header(&sent, "References")
            .unwrap_or_default()
            .contains(&note_id),
        "{sent}"
    );
    assert!(
        header(&sent, "To").unwrap_or_default().contains(LAVORI),
        "neomutt honoured the Reply-To:\n{sent}"
    );
    assert!(sent_subject.contains(&tag), "{sent_subject}");
    assert!(
        sent_text.starts_with(STAFF_TEXT)
            && sent_text.lines().any(|l| l.trim_end().ends_with(" wrote:"))
            && sent_text.lines().any(|l| l.starts_with("> ")),
        "the reply is top-posted above neomutt's quote of the notification:\n{sent}"
    );
    let sent_id = header(&sent, "Message-ID").expect("neomutt's Message-ID");

    // The citizen receives only the new text, from the area, threaded under their report.
    let answer = wait_for_mail(&stack, CITIZEN, WAIT, |m| {
        subject_and_text(m).1.contains("abbiamo inviato")
    });
    let (subject, text) = subject_and_text(&answer);
    assert_eq!(
        text.trim(),
        STAFF_TEXT,
        "only the staff's new lines reach the citizen; neomutt sent:\n{sent}"
    );
    assert!(!text.contains("wrote:"), "{text}");
    assert!(
        !text.lines().any(|l| l.trim_start().starts_with('>')),
        "{text}"
    );
    assert!(subject.contains(&tag), "{subject}");
    let from = header(&answer, "From").unwrap_or_default();
    assert!(
        from.contains(LAVORI) && !from.contains(STAFF_LAVORI),
        "{from}"
    );
    assert!(
        !answer.contains(STAFF_LAVORI),
        "the staff member's address never reaches the citizen:\n{answer}"
    );
    assert_eq!(
        header(&answer, "In-Reply-To").as_deref().map(bare_id),
        Some(citizen_id.as_str())
    );
    assert!(
        header(&answer, "References")
            .unwrap_or_default()
            .contains(&citizen_id),
        "{answer}"
    );

    // On record: the staff message verified (it answers the notification), the ticket
    // answered, the answer sent.
    let shown = gw.wait_for("the answer recorded as sent", WAIT, || {
        let s = gw.show(&reference);
        (message(&s, "out", "answer")["delivery"]["state"] == "sent").then_some(s)
    });
    assert_eq!(shown["ticket"]["status"], "answered", "{shown:#}");
    let staff = message(&shown, "in", "staff_reply");
    assert_eq!(staff["from"], STAFF_LAVORI);
    assert_eq!(
        staff["message_id"].as_str().map(bare_id),
        Some(bare_id(&sent_id))
    );
    assert_eq!(
        staff["in_reply_to"].as_str().map(bare_id),
        Some(bare_id(&note_id))
    );
    eprintln!(
        "neomutt took {client_took:?}; the whole test {:?}",
        started.elapsed()
    );
}
