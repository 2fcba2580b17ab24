//! Standard output that survives its reader: buffered, a closed pipe ends printing quietly, any
//! other write error is one clear error.
//!
//! Rust's `println!` panics when stdout fails, so `charmlp sample | head -1` used to die with a
//! panic (exit 101) and `charmlp train | head -1` lost the whole run. Here a closed pipe
//! (EPIPE) marks stdout closed and every later line is dropped: `train` goes on to save its
//! model (the model is the product, the lines are commentary) and `sample`/`eval` stop early
//! and exit 141, as a command killed by SIGPIPE does in a shell. A full disk or any other
//! error is reported once, with what failed.

use anyhow::{Result, anyhow};
use std::fmt::Display;
use std::io::{BufWriter, ErrorKind, Stdout, Write};
use std::sync::atomic::{AtomicBool, Ordering};

/// Set once a write to stdout found the reading end closed.
static CLOSED: AtomicBool = AtomicBool::new(false);

/// Exit status of a command that stopped because its reader went away: 128 + SIGPIPE.
pub const CLOSED_EXIT: u8 = 141;

/// Whether stdout's reader has gone away (a write met EPIPE).
pub fn closed() -> bool {
    CLOSED.load(Ordering::Relaxed)
}

/// Buffered stdout. `line` writes one line; with `live` set each line is flushed at once (for
/// training reports, which a reader wants as they come), otherwise at [`Out::flush`] or when
/// the buffer fills.
///
/// With `--json` ([`Out::json`]), stdout carries JSON lines alone: [`Out::line`]'s text is
/// dropped and [`Out::event`]'s objects are written.
pub struct Out {
    w: BufWriter<Stdout>,
    live: bool,
    json: bool,
}

impl Out {
    pub fn new(live: bool) -> Self {
        Out {
            w: BufWriter::with_capacity(64 * 1024, std::io::stdout()),
            live,
            json: false,
        }
    }

    /// This output in JSON-lines mode if `json`.
    pub fn json(mut self, json: bool) -> Self {
        self.json = json;
        self
    }

    /// Whether stdout carries JSON lines.
    pub fn is_json(&self) -> bool {
        self.json
    }

    /// Writes one JSON object on a line, in JSON-lines mode (nothing otherwise).
    pub fn event(&mut self, value: serde_json::Value) -> Result<()> {
        if !self.json {
            return Ok(());
        }
        self.write_line(value)
    }

    /// Writes `text` and a newline, unless stdout is closed or carries JSON lines.
    pub fn line(&mut self, text: impl Display) -> Result<()> {
        if self.json {
            return Ok(());
        }
        self.write_line(text)
    }

    fn write_line(&mut self, text: impl Display) -> Result<()> {
        if closed() {
            return Ok(());
        }
        let written = writeln!(self.w, "{text}");
        let flushed = written.and_then(|()| if self.live { self.w.flush() } else { Ok(()) });
        Self::settle(flushed)
    }

    /// Writes out what is buffered.
    pub fn flush(&mut self) -> Result<()> {
        if closed() {
            return Ok(());
        }
        Self::settle(self.w.flush())
    }

    fn settle(result: std::io::Result<()>) -> Result<()> {
        match result {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == ErrorKind::BrokenPipe => {
                CLOSED.store(true, Ordering::Relaxed);
                Ok(())
            }
            Err(e) => Err(anyhow!("cannot write to standard output: {e}")),
        }
    }
}

impl Drop for Out {
    fn drop(&mut self) {
        // Whatever is left after an error path; its own errors were reported or do not matter.
        if !closed() {
            let _ = self.w.flush();
        }
    }
}
