//! Test support: a throwaway S/MIME PKI (a CA and a PEC provider's signing certificate) made
//! with the system `openssl` binary, and clear-signing of MIME entities the way a PEC provider
//! signs its envelopes (RFC 6109: a top-level detached `multipart/signed`).
//!
//! Self-contained (std and tempfile only) so both integration tests and the library's unit tests
//! can include it with `#[path]`. Failures panic with the openssl output: this is test setup.
#![allow(dead_code)]

use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};

/// A CA and one signing certificate issued by it, all files inside `dir`.
pub struct Pki {
    pub dir: tempfile::TempDir,
    /// The CA certificate alone: what a trust store configured for this provider holds.
    pub ca_pem: PathBuf,
    pub signer_cert: PathBuf,
    pub signer_key: PathBuf,
}

/// How the certificates are made.
#[derive(Debug, Clone, Copy)]
pub struct PkiOptions {
    /// Common name of the CA ("Test PEC CA").
    pub ca_cn: &'static str,
    /// Signature digest of both certificates ("sha256", "sha1").
    pub cert_md: &'static str,
    /// RSA key size of the signing certificate.
    pub signer_key_bits: u32,
}

impl Default for PkiOptions {
    fn default() -> Self {
        Self {
            ca_cn: "Test PEC CA",
            cert_md: "sha256",
            signer_key_bits: 2048,
        }
    }
}

/// A CA ("Test PEC CA") and a provider signing certificate with subject CN `cn`
/// (e.g. "posta-certificata@pec.example.it"), SHA-256 certificates, RSA 2048.
pub fn make_pki(cn: &str) -> Pki {
    make_pki_with(cn, PkiOptions::default())
}

/// Like [`make_pki`] with old-style certificates: SHA-1 signed CA and signer certificates and
/// a 1024-bit signer key, which OpenSSL 3 rejects at any X.509 security level above 0.
pub fn make_legacy_pki(cn: &str) -> Pki {
    make_pki_with(
        cn,
        PkiOptions {
            cert_md: "sha1",
            signer_key_bits: 1024,
            ..PkiOptions::default()
        },
    )
}

pub fn make_pki_with(cn: &str, options: PkiOptions) -> Pki {
    let dir = tempfile::tempdir().expect("create PKI temp dir");
    let path = |name: &str| dir.path().join(name);
    let ca_key = path("ca.key");
    let ca_pem = path("ca.pem");
    let signer_key = path("signer.key");
    let signer_csr = path("signer.csr");
    let signer_cert = path("signer.pem");
    let ext = path("signer.ext");
    let md = format!("-{}", options.cert_md);
    let ca_subject = format!("/C=IT/O=Test PEC/CN={}", escape_dn_value(options.ca_cn));

    run(Command::new("openssl")
        .arg("req")
        .arg("-x509")
        .arg(&md)
        .arg("-newkey")
        .arg("rsa:2048")
        .arg("-nodes")
        .arg("-keyout")
        .arg(&ca_key)
        .arg("-out")
        .arg(&ca_pem)
        .arg("-days")
        .arg("3650")
        .arg("-subj")
        .arg(&ca_subject)
        .arg("-addext")
        .arg("basicConstraints=critical,CA:TRUE")
        .arg("-addext")
        .arg("keyUsage=critical,keyCertSign,cRLSign"));

    let key_spec = format!("rsa:{}", options.signer_key_bits);
    let subject = format!("/C=IT/O=Gestore PEC di prova/CN={}", escape_dn_value(cn));
    run(Command::new("openssl")
        .arg("req")
        .arg("-newkey")
        .arg(&key_spec)
        .arg("-nodes")
        .arg("-keyout")
        .arg(&signer_key)
        .arg("-out")
        .arg(&signer_csr)
        .arg("-subj")
        .arg(&subject)
        .arg("-utf8"));

    // What a PEC provider's signing certificate carries: end entity, signing key usages,
    // e-mail protection, and the provider mailbox as subjectAltName when the CN is one.
    let mut extensions = String::from(
        "basicConstraints=critical,CA:FALSE\n\
         keyUsage=critical,digitalSignature,nonRepudiation\n\
         extendedKeyUsage=emailProtection\n",
    );
    if cn.contains('@') && !cn.contains([',', '\n', '\r']) {
        extensions.push_str(&format!("subjectAltName=email:{cn}\n"));
    }
    std::fs::write(&ext, extensions).expect("write signer extensions");
    run(Command::new("openssl")
        .arg("x509")
        .arg("-req")
        .arg(&md)
        .arg("-in")
        .arg(&signer_csr)
        .arg("-CA")
        .arg(&ca_pem)
        .arg("-CAkey")
        .arg(&ca_key)
        .arg("-set_serial")
        .arg("4660")
        .arg("-days")
        .arg("3650")
        .arg("-extfile")
        .arg(&ext)
        .arg("-out")
        .arg(&signer_cert));

    Pki {
        dir,
        ca_pem,
        signer_cert,
        signer_key,
    }
}

/// Clear-signs `entity` (a MIME entity: its Content-* headers, a blank line, its body) as a
/// detached `multipart/signed` with the given digest ("sha1" or "sha256"), the format of a PEC
/// envelope. Returns the whole signed entity, starting with its `MIME-Version` and
/// `Content-Type: multipart/signed; protocol="application/pkcs7-signature"; micalg=…` headers,
/// with CRLF line endings as on the wire.
pub fn sign(pki: &Pki, entity: &[u8], md: &str) -> Vec<u8> {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let input = pki.dir.path().join(format!(
        "entity-{}.txt",
        NEXT.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::write(&input, entity).expect("write entity to sign");
    // `cms -sign` (not `smime -sign`) writes the RFC 5751 types (application/pkcs7-signature)
    // that PEC providers use; without `-binary` it signs the CRLF canonical form of the text, and
    // `-crlfeol` makes the output CRLF throughout instead of openssl's default LF.
    let signed = run(Command::new("openssl")
        .arg("cms")
        .arg("-sign")
        .arg("-in")
        .arg(&input)
        .arg("-signer")
        .arg(&pki.signer_cert)
        .arg("-inkey")
        .arg(&pki.signer_key)
        .arg("-md")
        .arg(md)
        .arg("-crlfeol"));
    let _ = std::fs::remove_file(&input);
    signed
}

/// `raw` with every CRLF turned into LF, as Dovecot's Maildir stores mail.
pub fn to_lf(raw: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(raw.len());
    let mut i = 0;
    while i < raw.len() {
        if raw[i] == b'\r' && raw.get(i + 1) == Some(&b'\n') {
            i += 1;
            continue;
        }
        out.push(raw[i]);
        i += 1;
    }
    out
}

/// Runs an openssl command, panicking with its stderr when it fails; returns its stdout.
fn run(command: &mut Command) -> Vec<u8> {
    let output = command
        .output()
        .expect("run the openssl binary (is it installed?)");
    assert!(
        output.status.success(),
        "{:?} failed ({}):\n{}",
        command,
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    output.stdout
}

/// Escapes the characters `openssl req -subj` treats specially in a value.
fn escape_dn_value(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        if matches!(c, '/' | '+' | '=' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}
