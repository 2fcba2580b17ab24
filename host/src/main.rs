//! `charmlp`: train, sample, evaluate and export makemore's MLP. Errors are one line on stderr
//! and exit status 1; usage errors are clap's, with status 2.

use clap::Parser;

/// An error message with every control character but the newline escaped: text from outside
/// (an OS message quoting a path) cannot recolour or rewrite the terminal.
fn printable(message: &str) -> String {
    message
        .chars()
        .map(|c| {
            if c.is_control() && c != '\n' {
                c.escape_unicode().to_string()
            } else {
                c.to_string()
            }
        })
        .collect()
}
use std::io::Write;
use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = match charmlp::cli::Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            // Help and version go to stdout, usage errors to stderr; a failed write of either
            // (`--help > /dev/full`) is an error, not a silent success.
            let code = e.exit_code();
            // Usage errors quote what was typed: escaped like every other message.
            let printed = if e.use_stderr() {
                let text = printable(&e.render().to_string());
                write!(std::io::stderr(), "{text}")
            } else {
                e.print()
            };
            return match printed {
                Ok(()) => ExitCode::from(code as u8),
                Err(io) if io.kind() == std::io::ErrorKind::BrokenPipe => {
                    ExitCode::from(charmlp::stdout::CLOSED_EXIT)
                }
                Err(io) => {
                    let _ = writeln!(std::io::stderr(), "error: cannot write the help: {io}");
                    ExitCode::FAILURE
                }
            };
        }
    };
    // Commands whose product is a file: a reader of their commentary going away is no failure.
    let makes_a_file = matches!(
        cli.command,
        charmlp::cli::Command::Train(_)
            | charmlp::cli::Command::Export(_)
            | charmlp::cli::Command::Sweep(_)
    );
    match charmlp::run(cli.command) {
        // A reader that went away ends `sample`, `eval` and the like as SIGPIPE would; `train`
        // and `export` finished their work (the file is written), so they succeeded.
        Ok(()) if charmlp::stdout::closed() && !makes_a_file => {
            ExitCode::from(charmlp::stdout::CLOSED_EXIT)
        }
        Ok(()) => ExitCode::SUCCESS,
        // Stopped by Ctrl-C or SIGTERM: what was kept and how to go on, and the status a
        // shell gives a process the signal ended.
        Err(e)
            if e.downcast_ref::<charmlp::interrupt::Interrupted>()
                .is_some() =>
        {
            let code = e
                .downcast_ref::<charmlp::interrupt::Interrupted>()
                .map_or(1, |i| i.signal.exit_code());
            let _ = writeln!(std::io::stderr(), "{}", printable(&format!("{e:#}")));
            ExitCode::from(code)
        }
        Err(e) => {
            // `{:#}` prints the whole chain of causes on one line, and never a backtrace. A
            // stderr that cannot be written to leaves nothing else to tell: no panic either.
            let _ = writeln!(std::io::stderr(), "error: {}", printable(&format!("{e:#}")));
            ExitCode::FAILURE
        }
    }
}
