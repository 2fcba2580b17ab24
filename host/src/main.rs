//! `charmlp`: train, sample, evaluate and export makemore's MLP. Errors are one line on stderr
//! and exit status 1; usage errors are clap's, with status 2.

use clap::Parser;
use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = charmlp::cli::Cli::parse();
    match charmlp::run(cli.command) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // `{:#}` prints the whole chain of causes on one line, and never a backtrace.
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
