//! The provider signature check of intake's PEC step: verifies the S/MIME signature of a PEC
//! envelope or receipt against the configured trust store (a PEM file of CA certificates)
//! with the system `openssl` binary (OpenSSL 3.0 on Debian 12), and names the signer.
//!
//! The outcome is information recorded on the message, never a reason to drop it: every
//! failure, including openssl missing, hanging or crashing, becomes a [`SignatureCheck`]
//! value; nothing here panics on input, and the work runs in a child process so the async
//! runtime is never blocked. The pure part (is the message S/MIME signed at all, the outcome
//! type) is `mail::smime`; this module is the process it runs and the reading of its output.
//!
//! Does not: fetch CRLs or OCSP, or decide what an unverified envelope means for the ticket
//! (that is `intake::pec`).
//!
//! The command, and the traps it avoids (all checked on OpenSSL 3.0.19):
//!
//! ```text
//! openssl cms -verify -inform SMIME -CAfile <trust store> -no-CApath -no-CAstore \
//!     -purpose any -out /dev/null -signer /dev/stdout        < raw message on stdin
//! ```
//!
//! - `-no-CApath -no-CAstore`: without them `-CAfile` is *added to* the system default store
//!   (`/etc/ssl/certs`, or `$SSL_CERT_DIR`), so a message signed under any public CA would pass
//!   as "verified". Only the configured trust store may vouch for a PEC provider.
//! - SHA-1: real providers still sign with SHA-1 (and older hierarchies have SHA-1 signed
//!   certificates with 1024-bit keys). `cms -verify` accepts both because the CLI leaves the
//!   X.509 `-auth_level` unset; OpenSSL's "security level" only bites verification when
//!   `-auth_level 1` or more is given (then: "CA signature digest algorithm too weak", "EE
//!   certificate key too weak"). So never add `-auth_level`. Debian's openssl.cnf only sets TLS
//!   levels; distributions with a crypto policy that disables SHA-1 signatures globally (RHEL 9)
//!   would need that policy relaxed for SHA-1 providers.
//! - Line endings: the signature is over the CRLF canonical form (RFC 5751 §3.1.1). With
//!   `-inform SMIME` and without `-binary`, openssl canonicalises the signed part's line endings
//!   before hashing, so mail stored with LF endings (Dovecot Maildir) verifies too. Never pass
//!   `-binary`.
//! - `-purpose any`: PEC signing certificates are not always issued with the S/MIME extended key
//!   usage; issuer CA flags are still enforced (a leaf cannot act as a CA).
//! - `cms` rather than `smime`: both verify the same; `cms` also reads RFC 5751 mail. `-signer`
//!   writes the signer certificates (PEM) only after a successful verification; sending them to
//!   stdout avoids temporary files. `-out /dev/null` discards the verified content.
//! - The signer certificate's validity is checked at the current time: re-verifying archived
//!   mail after the provider certificate expired gives "certificate has expired".

use std::ffi::{OsStr, OsString};
use std::io;
use std::path::Path;
use std::process::{Output, Stdio};
use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::process::Command;

use crate::mail::smime::{clean, find, has_pem_certificate, smime_signed, SignatureCheck};

/// How long one openssl verification may take before the check gives up (`NotChecked`).
/// Verifying a small message takes a few milliseconds; this covers very large PEC messages on a
/// loaded machine while bounding a hung child.
pub const VERIFY_TIMEOUT: Duration = Duration::from_secs(10);

/// How long naming the signer (a second, tiny openssl run) may take; failure leaves it unnamed.
const SIGNER_NAME_TIMEOUT: Duration = Duration::from_secs(5);

/// The openssl binary, looked up on `PATH`.
const OPENSSL: &str = "openssl";

/// Verifies the S/MIME signature of the raw message `raw` (CRLF or LF line endings) against the
/// CA certificates in the PEM file `trust_store`.
///
/// Never fails and never panics: problems with the message give `NotVerified`, problems with
/// the check itself (no openssl, unreadable trust store, timeout) give `NotChecked`.
pub async fn verify(raw: &[u8], trust_store: &Path) -> SignatureCheck {
    Openssl::system().verify(raw, trust_store).await
}

/// How openssl is run. Production uses [`Openssl::system`]; tests swap the program, the
/// deadline and the environment to reach the failure paths.
struct Openssl {
    program: OsString,
    timeout: Duration,
    extra_env: Vec<(OsString, OsString)>,
}

impl Openssl {
    fn system() -> Self {
        Openssl {
            program: OsString::from(OPENSSL),
            timeout: VERIFY_TIMEOUT,
            extra_env: Vec::new(),
        }
    }

    async fn verify(&self, raw: &[u8], trust_store: &Path) -> SignatureCheck {
        if let Err(reason) = smime_signed(raw) {
            return SignatureCheck::NotChecked { reason };
        }
        if let Err(reason) = check_trust_store(trust_store).await {
            return SignatureCheck::NotChecked { reason };
        }

        let args: [&OsStr; 14] = [
            "cms".as_ref(),
            "-verify".as_ref(),
            "-inform".as_ref(),
            "SMIME".as_ref(),
            "-CAfile".as_ref(),
            trust_store.as_os_str(),
            "-no-CApath".as_ref(),
            "-no-CAstore".as_ref(),
            "-purpose".as_ref(),
            "any".as_ref(),
            "-out".as_ref(),
            "/dev/null".as_ref(),
            "-signer".as_ref(),
            "/dev/stdout".as_ref(),
        ];
        let output = match tokio::time::timeout(self.timeout, self.run(&args, raw)).await {
            Ok(Ok(output)) => output,
            Ok(Err(e)) => return SignatureCheck::not_checked(spawn_failure(&e)),
            // Dropping the future dropped the child, and `kill_on_drop` killed it.
            Err(_) => {
                return SignatureCheck::not_checked(format!(
                    "openssl did not finish within {} s",
                    self.timeout.as_secs()
                ))
            }
        };

        let stderr = String::from_utf8_lossy(&output.stderr);
        match output.status.code() {
            Some(0) => SignatureCheck::Verified {
                signer: self.signer_name(&output.stdout).await,
            },
            // 5: the signature verified but writing the signer certificates failed.
            Some(5) if stderr.contains("Verification successful") => {
                SignatureCheck::Verified { signer: None }
            }
            // 1: openssl rejected the command line itself, so nothing about the message is known.
            Some(1) => SignatureCheck::not_checked(format!(
                "openssl rejected the command: {}",
                failure_reason(&stderr)
            )),
            // 2 is "cannot read input"; the trust store was checked above, but a file that is
            // PEM yet holds no usable certificate only shows up here.
            Some(2) if stderr.contains("Error loading file") => {
                SignatureCheck::not_checked(format!(
                    "trust store could not be loaded: {}",
                    failure_reason(&stderr)
                ))
            }
            // 2: the S/MIME structure is unreadable; 4: the signature does not verify; any other
            // failure is not a valid signature either.
            Some(code) => SignatureCheck::NotVerified {
                reason: reason_or_status(&stderr, &format!("exit status {code}")),
            },
            // Killed by a signal: a crash on crafted input must not read as "not checked".
            None => SignatureCheck::NotVerified {
                reason: reason_or_status(&stderr, "openssl was killed by a signal"),
            },
        }
    }

    /// Names the signer from the PEM certificates `cms -verify -signer` wrote, or `None`.
    async fn signer_name(&self, signer_pem: &[u8]) -> Option<String> {
        let pem = first_certificate(signer_pem)?;
        let args: [&OsStr; 6] = [
            "x509".as_ref(),
            "-noout".as_ref(),
            "-subject".as_ref(),
            "-email".as_ref(),
            // One RDN per line, UTF-8 as is, short names, control characters escaped so a
            // crafted name cannot forge extra lines.
            "-nameopt".as_ref(),
            "sep_multiline,utf8,sname,esc_ctrl".as_ref(),
        ];
        let output = tokio::time::timeout(SIGNER_NAME_TIMEOUT, self.run(&args, pem))
            .await
            .ok()?
            .ok()?;
        if !output.status.success() {
            return None;
        }
        signer_from_x509_text(&String::from_utf8_lossy(&output.stdout))
    }

    /// Runs openssl with `args`, feeding `input` on stdin while collecting stdout and stderr.
    async fn run(&self, args: &[&OsStr], input: &[u8]) -> io::Result<Output> {
        let mut child = Command::new(&self.program)
            .args(args)
            .envs(self.extra_env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()?;
        let stdin = child.stdin.take();
        let feed = async move {
            if let Some(mut stdin) = stdin {
                // openssl stops reading early on input it cannot parse; the broken pipe that
                // follows is expected and its exit status says what went wrong.
                let _ = stdin.write_all(input).await;
                let _ = stdin.shutdown().await;
            }
        };
        // Feed and drain at the same time: a child blocked writing a full stdout pipe while we
        // are blocked writing its stdin would deadlock.
        let ((), output) = tokio::join!(feed, child.wait_with_output());
        output
    }
}

/// Checks the trust store can be read and holds at least one PEM certificate, so that a
/// misconfiguration reads as "not checked" rather than as a bad signature on every message.
async fn check_trust_store(path: &Path) -> Result<(), String> {
    let pem = tokio::fs::read(path)
        .await
        .map_err(|e| format!("trust store {} unreadable: {e}", path.display()))?;
    if has_pem_certificate(&pem) {
        Ok(())
    } else {
        Err(format!(
            "trust store {} holds no PEM certificate",
            path.display()
        ))
    }
}

fn spawn_failure(e: &io::Error) -> String {
    if e.kind() == io::ErrorKind::NotFound {
        "openssl not found".to_string()
    } else {
        format!("could not run openssl: {e}")
    }
}

/// The first PEM certificate block in `pem`, markers included.
fn first_certificate(pem: &[u8]) -> Option<&[u8]> {
    const END: &[u8] = b"-----END CERTIFICATE-----";
    let start = find(pem, b"-----BEGIN CERTIFICATE-----")?;
    let end = start + find(pem.get(start..)?, END)? + END.len();
    pem.get(start..end)
}

/// The signer's name from `openssl x509 -subject -email -nameopt sep_multiline,…` output:
/// subject RDNs are indented `KEY=value` lines under `subject=`, e-mail addresses (subject and
/// subjectAltName) are unindented lines. Prefers the CN, then any e-mail address.
fn signer_from_x509_text(text: &str) -> Option<String> {
    let mut common_name = None;
    let mut email = None;
    for line in text.lines() {
        if line.starts_with(char::is_whitespace) {
            let rdn = line.trim();
            if let Some(cn) = rdn.strip_prefix("CN=") {
                common_name.get_or_insert(cn);
            } else if let Some(address) = rdn.strip_prefix("emailAddress=") {
                email.get_or_insert(address);
            }
        } else if !line.starts_with("subject=") && line.contains('@') {
            email.get_or_insert(line.trim());
        }
    }
    common_name
        .into_iter()
        .chain(email)
        .map(clean)
        .find(|name| !name.is_empty())
}

/// The openssl reasons in `stderr`, or `fallback` when there are none.
fn reason_or_status(stderr: &str, fallback: &str) -> String {
    let reason = failure_reason(stderr);
    if reason.is_empty() {
        fallback.to_string()
    } else {
        reason
    }
}

/// A one-line reason from openssl's stderr. Error-queue lines look like
/// `<thread>:error:<code>:<library>:<function>:<reason>:<file>:<line>:<data>`; the reason and
/// data fields say what happened ("certificate verify error: unable to get local issuer
/// certificate", "verification failure; content verify error" for altered content). Other
/// lines ("Error reading SMIME Content Info") are kept as they are.
fn failure_reason(stderr: &str) -> String {
    let mut reasons: Vec<String> = Vec::new();
    for line in stderr.lines().map(str::trim) {
        if line.is_empty() || line.ends_with("Verification failure") {
            continue;
        }
        let reason = error_queue_reason(line).unwrap_or_else(|| line.to_string());
        if !reasons.contains(&reason) {
            reasons.push(reason);
        }
    }
    clean(&reasons.join("; "))
}

fn error_queue_reason(line: &str) -> Option<String> {
    let fields: Vec<&str> = line.splitn(9, ':').collect();
    let [_, "error", _, _, _, reason, ..] = fields.as_slice() else {
        return None;
    };
    let reason = reason.trim();
    let data = fields.get(8).map_or("", |d| d.trim());
    let data = data.strip_prefix("Verify error:").unwrap_or(data).trim();
    Some(if data.is_empty() {
        reason.to_string()
    } else {
        format!("{reason}: {data}")
    })
}

#[cfg(test)]
#[path = "../../tests/support/pki.rs"]
mod pki;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mail::smime::MAX_TEXT_CHARS;
    use std::time::Instant;

    const ENTITY: &[u8] = b"Content-Type: text/plain; charset=utf-8\r\n\
        Content-Transfer-Encoding: 8bit\r\n\
        \r\n\
        Segnalazione: lampione spento in via Roma.\r\n";

    fn openssl_with(program: impl Into<OsString>, timeout: Duration) -> Openssl {
        Openssl {
            program: program.into(),
            timeout,
            extra_env: Vec::new(),
        }
    }

    #[test]
    fn reasons_come_from_openssl_error_queue_lines() {
        let tampered = "CMS Verification failure\n\
            4047AC85867F0000:error:1700009E:CMS routines:CMS_SignerInfo_verify_content:verification failure:../crypto/cms/cms_sd.c:1000:\n\
            4047AC85867F0000:error:1700006D:CMS routines:CMS_verify:content verify error:../crypto/cms/cms_smime.c:455:\n";
        assert_eq!(
            failure_reason(tampered),
            "verification failure; content verify error"
        );
        let untrusted = "CMS Verification failure\n\
            407732D4627F0000:error:17000064:CMS routines:cms_signerinfo_verify_cert:certificate verify error:../crypto/cms/cms_smime.c:289:Verify error: unable to get local issuer certificate\n";
        assert_eq!(
            failure_reason(untrusted),
            "certificate verify error: unable to get local issuer certificate"
        );
        let garbage = "Error reading SMIME Content Info\n\
            4017CAE2F67F0000:error:068000D1:asn1 encoding routines:SMIME_read_ASN1_ex:no content type:../crypto/asn1/asn_mime.c:433:\n";
        assert_eq!(
            failure_reason(garbage),
            "Error reading SMIME Content Info; no content type"
        );
        assert_eq!(failure_reason(""), "");
        assert_eq!(reason_or_status("", "exit status 3"), "exit status 3");
        assert!(failure_reason(&"x".repeat(10_000)).chars().count() <= MAX_TEXT_CHARS);
    }

    #[test]
    fn the_signer_is_the_subject_cn_else_an_email_address() {
        let with_cn = "subject=\n    C=IT\n    O=Gestore PEC di prova\n    CN=posta-certificata@pec.example.it\nposta-certificata@pec.example.it\n";
        assert_eq!(
            signer_from_x509_text(with_cn).as_deref(),
            Some("posta-certificata@pec.example.it")
        );
        let email_first =
            "firma@pec.example.it\nsubject=\n    O=Società PEC\n    CN=Gestore, \"PEC\" àèì\n";
        assert_eq!(
            signer_from_x509_text(email_first).as_deref(),
            Some("Gestore, \"PEC\" àèì")
        );
        let no_cn = "subject=\n    O=Ente\n    emailAddress=firma@pec.example.it\n";
        assert_eq!(
            signer_from_x509_text(no_cn).as_deref(),
            Some("firma@pec.example.it")
        );
        assert_eq!(signer_from_x509_text("subject=\n    O=Ente\n"), None);
        assert_eq!(signer_from_x509_text(""), None);
    }

    #[test]
    fn the_first_pem_certificate_is_cut_out_of_the_signer_output() {
        let pem = b"-----BEGIN CERTIFICATE-----\nAAA\n-----END CERTIFICATE-----\n\
            -----BEGIN CERTIFICATE-----\nBBB\n-----END CERTIFICATE-----\n";
        assert_eq!(
            first_certificate(pem),
            Some(&b"-----BEGIN CERTIFICATE-----\nAAA\n-----END CERTIFICATE-----"[..])
        );
        assert_eq!(first_certificate(b"-----BEGIN CERTIFICATE-----\nAAA"), None);
        assert_eq!(first_certificate(b""), None);
    }

    #[tokio::test]
    async fn a_missing_openssl_binary_is_not_checked() {
        let pki = pki::make_pki("posta-certificata@pec.example.it");
        let signed = pki::sign(&pki, ENTITY, "sha256");
        let check = openssl_with("/nonexistent/bin/openssl", VERIFY_TIMEOUT)
            .verify(&signed, &pki.ca_pem)
            .await;
        assert_eq!(check, SignatureCheck::not_checked("openssl not found"));
    }

    #[tokio::test]
    async fn a_hung_openssl_is_killed_at_the_deadline_and_not_checked() {
        let pki = pki::make_pki("posta-certificata@pec.example.it");
        let signed = pki::sign(&pki, ENTITY, "sha256");
        let script = pki.dir.path().join("hang.sh");
        std::fs::write(&script, "#!/bin/sh\nexec sleep 30\n").expect("write script");
        let mut permissions = std::fs::metadata(&script).expect("stat").permissions();
        std::os::unix::fs::PermissionsExt::set_mode(&mut permissions, 0o755);
        std::fs::set_permissions(&script, permissions).expect("chmod");

        let started = Instant::now();
        let check = openssl_with(script.as_os_str(), Duration::from_millis(300))
            .verify(&signed, &pki.ca_pem)
            .await;
        assert_eq!(
            check.as_str(),
            "not checked",
            "unexpected outcome: {check:?}"
        );
        assert!(check.detail().is_some_and(|d| d.contains("did not finish")));
        assert!(started.elapsed() < Duration::from_secs(5));
    }

    /// The system CA directory must not vouch for a PEC provider: only the trust store may.
    /// `SSL_CERT_DIR` stands in for `/etc/ssl/certs` holding the signer's CA.
    #[tokio::test]
    async fn a_signer_trusted_only_by_the_system_store_is_not_verified() {
        // A CA name of its own: openssl looks in the CA directory only for issuer names it has
        // not already found in the CA file, so a shared name would hide the directory.
        let provider = pki::make_pki_with(
            "posta-certificata@pec.example.it",
            pki::PkiOptions {
                ca_cn: "Public S/MIME CA",
                ..pki::PkiOptions::default()
            },
        );
        let configured = pki::make_pki("posta-certificata@pec.other.example.it");
        let signed = pki::sign(&provider, ENTITY, "sha256");

        let system_dir = tempfile::tempdir().expect("temp dir");
        std::fs::copy(&provider.ca_pem, system_dir.path().join("provider-ca.pem"))
            .expect("copy CA");
        let rehash = std::process::Command::new("openssl")
            .arg("rehash")
            .arg(system_dir.path())
            .status()
            .expect("run openssl rehash");
        assert!(rehash.success());

        let openssl = Openssl {
            extra_env: vec![("SSL_CERT_DIR".into(), system_dir.path().into())],
            ..Openssl::system()
        };
        // Sanity: the environment does reach openssl (the provider's own CA verifies).
        assert_eq!(
            openssl.verify(&signed, &provider.ca_pem).await.as_str(),
            "verified"
        );
        let check = openssl.verify(&signed, &configured.ca_pem).await;
        assert_eq!(
            check,
            SignatureCheck::NotVerified {
                reason: "certificate verify error: unable to get local issuer certificate".into()
            }
        );
    }

    #[tokio::test]
    async fn a_trust_store_without_certificates_is_not_checked() {
        let pki = pki::make_pki("posta-certificata@pec.example.it");
        let signed = pki::sign(&pki, ENTITY, "sha256");
        let empty = pki.dir.path().join("empty.pem");
        std::fs::write(&empty, "no certificates here\n").expect("write");
        let check = verify(&signed, &empty).await;
        assert_eq!(check.as_str(), "not checked", "{check:?}");
        assert!(check
            .detail()
            .is_some_and(|d| d.contains("holds no PEM certificate")));
    }
}
