//! The fuzz targets' short run on stable Rust, as part of `cargo test`: every harness function
//! of `fuzz/harness.rs` (the same code the libFuzzer targets run) over its committed corpus
//! `fuzz/corpus/<target>/`, then over a bounded number of random inputs and of corpus inputs
//! mutated the way a fuzzer would. Bounded by case count, not time, so it is deterministic in
//! what it covers for a given seed; the long runs are `cargo +nightly fuzz run` (docs/fuzzing.md).

#[path = "../fuzz/harness.rs"]
mod harness;

use std::path::{Path, PathBuf};

use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};

/// Random and mutated inputs per target and strategy. Each target's run stays within a few
/// seconds in a debug build on two cores (mime_parse, the slowest, parses each input twice more
/// for the LF/CRLF comparison).
const CASES: u32 = 2500;

/// Longest random input, in bytes.
const MAX_RANDOM_BYTES: usize = 2048;

fn corpus_dir(target: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/corpus")
        .join(target)
}

/// The committed corpus of `target`, file names sorted, so a failure names the same file.
fn corpus(target: &str) -> Vec<(String, Vec<u8>)> {
    let dir = corpus_dir(target);
    let mut files: Vec<(String, Vec<u8>)> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| {
            let path = entry
                .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
                .path();
            let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            (path.display().to_string(), bytes)
        })
        .collect();
    files.sort();
    files
}

/// What a fuzzer does to an input, in small steps.
#[derive(Debug, Clone)]
enum Mutation {
    Truncate(prop::sample::Index),
    Flip(prop::sample::Index, u8),
    Insert(prop::sample::Index, Vec<u8>),
    Remove(prop::sample::Index, usize),
    /// Repeat a slice many times: the deep and the long inputs that find quadratic paths.
    Repeat(prop::sample::Index, usize, usize),
}

/// Bytes that steer the targets into their interesting paths: MIME structure, encodings,
/// address and header punctuation, quotes, tags, commands.
fn interesting_bytes() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        prop::collection::vec(any::<u8>(), 1..16),
        prop::sample::select(vec![
            &b"\r\n"[..],
            b"\n\n",
            b"\n--b\n",
            b"--\n",
            b"=?utf-8?b?",
            b"=?iso-8859-1?q?=E0",
            b"?=",
            b"=\n",
            b"<",
            b">",
            b",",
            b"\"",
            b";",
            b":",
            b"@",
            b"\xff\xfe\xc3",
            b"Content-Type: multipart/mixed; boundary=\"b\"\n",
            b"Content-Type: message/rfc822\n\n",
            b"Content-Transfer-Encoding: base64\n",
            b"Reply-To: <a@x.test,b@y.test>\n",
            b"X-Trasporto: posta-certificata\n",
            b"X-Ricevuta: accettazione\n",
            b"<postacert tipo=\"",
            b"<![CDATA[",
            b"&#x0;",
            b"&lt;",
            b"\n> ",
            b"\nIl giorno lun 7 dic 2026 alle 10:15 Mario <m@x.test> ha scritto:\n",
            b"\n-----Messaggio originale-----\n",
            b"\n-- \n",
            b"[Ticket #2026-000123]",
            b"Re: ",
            b"\n#presa\n",
            b"\n#assegna ambiente\n",
            b"RSSMRA85T10A562S",
            b"dmarc=fail",
        ])
        .prop_map(<[u8]>::to_vec),
    ]
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        any::<prop::sample::Index>().prop_map(Mutation::Truncate),
        (any::<prop::sample::Index>(), 1..=255u8).prop_map(|(i, m)| Mutation::Flip(i, m)),
        (any::<prop::sample::Index>(), interesting_bytes())
            .prop_map(|(i, b)| Mutation::Insert(i, b)),
        (any::<prop::sample::Index>(), 1..64usize).prop_map(|(i, n)| Mutation::Remove(i, n)),
        (any::<prop::sample::Index>(), 1..40usize, 2..200usize)
            .prop_map(|(i, len, times)| Mutation::Repeat(i, len, times)),
    ]
}

fn apply(bytes: &mut Vec<u8>, mutation: &Mutation) {
    let len = bytes.len();
    match mutation {
        Mutation::Truncate(at) if len > 0 => bytes.truncate(at.index(len)),
        Mutation::Flip(at, mask) if len > 0 => {
            if let Some(b) = bytes.get_mut(at.index(len)) {
                *b ^= mask;
            }
        }
        Mutation::Insert(at, inserted) => {
            let at = if len > 0 { at.index(len + 1) } else { 0 };
            bytes.splice(at..at, inserted.iter().copied());
        }
        Mutation::Remove(at, n) if len > 0 => {
            let start = at.index(len);
            bytes.drain(start..(start + n).min(len));
        }
        Mutation::Repeat(at, n, times) if len > 0 => {
            let start = at.index(len);
            let piece = bytes
                .get(start..(start + n).min(len))
                .unwrap_or_default()
                .to_vec();
            let repeated = piece.repeat(*times);
            bytes.splice(start..start, repeated);
        }
        _ => {}
    }
}

/// Runs `target` over its corpus, then over random and mutated inputs; a failing case is
/// shrunk by proptest and reported with the target's name.
fn smoke(name: &str) {
    let run = harness::TARGETS
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, run)| *run)
        .unwrap_or_else(|| panic!("no target {name}"));
    let seeds = corpus(name);
    assert!(!seeds.is_empty(), "the corpus of {name} is empty");
    for (file, bytes) in &seeds {
        // A panic here names the file: that is the reproducer.
        eprintln!("{name}: {file}");
        run(bytes);
    }

    // A fixed seed per target: the smoke run covers the same inputs on every machine, and a
    // failure here fails again on the next run.
    let config = Config {
        cases: CASES,
        failure_persistence: None,
        rng_algorithm: proptest::test_runner::RngAlgorithm::ChaCha,
        ..Config::default()
    };
    let seed = name.bytes().fold([7u8; 32], |mut s, b| {
        s[usize::from(b) % 32] ^= b;
        s
    });
    let algorithm = config.rng_algorithm;
    let rng = || proptest::test_runner::TestRng::from_seed(algorithm, &seed);

    let mut runner = TestRunner::new_with_rng(config.clone(), rng());
    runner
        .run(
            &prop::collection::vec(any::<u8>(), 0..MAX_RANDOM_BYTES),
            |bytes| {
                run(&bytes);
                Ok(())
            },
        )
        .unwrap_or_else(|e| panic!("{name}, random input: {e}"));

    let inputs: Vec<Vec<u8>> = seeds.into_iter().map(|(_, bytes)| bytes).collect();
    let mut runner = TestRunner::new_with_rng(config, rng());
    let strategy = (
        prop::sample::select(inputs),
        prop::collection::vec(mutation(), 1..8),
    );
    runner
        .run(&strategy, |(mut bytes, mutations)| {
            for m in &mutations {
                apply(&mut bytes, m);
            }
            run(&bytes);
            Ok(())
        })
        .unwrap_or_else(|e| panic!("{name}, mutated corpus input: {e}"));
}

#[test]
fn every_target_has_a_corpus_and_a_test_below() {
    for (name, _) in harness::TARGETS {
        assert!(corpus_dir(name).is_dir(), "fuzz/corpus/{name} is missing");
        let target = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("fuzz/fuzz_targets")
            .join(format!("{name}.rs"));
        assert!(target.is_file(), "{} is missing", target.display());
    }
    assert_eq!(
        harness::TARGETS.len(),
        9,
        "a new target needs its test below"
    );
}

#[test]
fn the_mime_parser_holds_its_promises_on_hostile_mail() {
    smoke("mime_parse");
}

#[test]
fn the_nesting_pre_scan_refuses_every_mail_nested_past_its_bound() {
    smoke("mime_prescan");
}

#[test]
fn pec_classification_holds_its_promises_on_hostile_envelopes() {
    smoke("pec_classify");
}

#[test]
fn daticert_reading_holds_its_promises_on_hostile_xml() {
    smoke("pec_daticert");
}

#[test]
fn quote_stripping_only_ever_removes_text() {
    smoke("quote_strip");
}

#[test]
fn a_subject_tag_found_round_trips_and_survives_cleaning() {
    smoke("subject_tag");
}

#[test]
fn staff_commands_come_only_from_the_lines_at_the_top() {
    smoke("staff_command");
}

#[test]
fn an_accepted_codice_fiscale_is_normalised_and_round_trips() {
    smoke("fiscal_code");
}

#[test]
fn authentication_results_reading_reports_only_real_failures() {
    smoke("auth_results");
}
