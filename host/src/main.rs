//! `charmlp`: train, sample, evaluate and export makemore's MLP. Errors are one line on stderr
//! and exit status 1; usage errors are clap's, with status 2.

use clap::Parser;
use std::io::Write;
use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = charmlp::cli::Cli::parse();
    let is_train = matches!(cli.command, charmlp::cli::Command::Train(_));
    match charmlp::run(cli.command) {
        // A reader that went away ends `sample`, `eval` and the like as SIGPIPE would; `train`
        // finished its work (the model is saved), so it succeeded.
        Ok(()) if charmlp::stdout::closed() && !is_train => {
            ExitCode::from(charmlp::stdout::CLOSED_EXIT)
        }
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // `{:#}` prints the whole chain of causes on one line, and never a backtrace. A
            // stderr that cannot be written to leaves nothing else to tell: no panic either.
            let _ = writeln!(std::io::stderr(), "error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
