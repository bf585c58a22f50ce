//! `ticketgate`: parse the command line, set up logging and TLS, run the command.

use std::io::IsTerminal;
use std::process::ExitCode;

use clap::Parser;
use ticketgate::cli::{self, Cli};
use tracing_subscriber::EnvFilter;

fn main() -> ExitCode {
    let cli = Cli::parse();
    // ring is the one crypto provider we build with; installing it explicitly keeps rustls
    // from panicking should a dependency ever bring a second one (docs/design-notes.md, "ring
    // is the one TLS crypto provider").
    let _ = rustls::crypto::ring::default_provider().install_default();
    init_logging();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_stack_size(ticketgate::app::THREAD_STACK_BYTES)
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("ticketgate: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    // On a worker thread, not this main thread: every parse then runs on a stack of
    // THREAD_STACK_BYTES, whatever `ulimit -s` the process was started with.
    let run = runtime.block_on(async { tokio::spawn(cli::run(cli)).await });
    match run.map_err(anyhow::Error::from).and_then(|r| r) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("ticketgate: {e:#}");
            // 78 (EX_CONFIG) for a bad configuration: systemd's RestartPreventExitStatus=78
            // then stops restarting a unit that cannot start anyway.
            ExitCode::from(cli::exit_code(&e))
        }
    }
}

/// Logs to stderr (journald keeps them under systemd): plain text by default, one JSON object
/// per line with `TICKETGATE_LOG_FORMAT=json` (for a log shipper), filtered by
/// `TICKETGATE_LOG` (`info` by default).
fn init_logging() {
    let filter =
        EnvFilter::try_from_env("TICKETGATE_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    let format = std::env::var("TICKETGATE_LOG_FORMAT").unwrap_or_default();
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format.trim().to_ascii_lowercase().as_str() {
        "json" => builder.json().init(),
        other => {
            // Colour codes only on a terminal: log files and journald get plain text.
            builder.with_ansi(std::io::stderr().is_terminal()).init();
            if !matches!(other, "" | "text") {
                tracing::warn!(
                    value = other,
                    "TICKETGATE_LOG_FORMAT is neither \"text\" nor \"json\": logging as text"
                );
            }
        }
    }
}
