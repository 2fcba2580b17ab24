//! Ctrl-C and SIGTERM during training: the first asks the run to stop at the next step
//! boundary (it writes its checkpoint, says how to resume and exits 130 or 143, as a shell
//! reports a process those signals ended); a second exits at once, with that status, leaving
//! the files as they are (every file is replaced atomically, so the last checkpoint is whole).

use signal_hook::consts::{SIGINT, SIGTERM};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// A signal that asked the run to stop.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Signal {
    Int,
    Term,
}

impl Signal {
    /// The exit status a shell gives a process the signal ended: 128 + its number.
    pub fn exit_code(self) -> u8 {
        match self {
            Signal::Int => 130,
            Signal::Term => 143,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Signal::Int => "SIGINT",
            Signal::Term => "SIGTERM",
        }
    }
}

/// The run's stop request, set by the signal handlers.
pub struct Stop {
    int: Arc<AtomicBool>,
    term: Arc<AtomicBool>,
}

impl Stop {
    /// Installs the handlers (signal-hook's flags: nothing but an atomic store runs in the
    /// handler). For each signal the exit-at-once handler is registered first, so that it sees
    /// the flag the first signal sets only from the second on.
    pub fn install() -> std::io::Result<Stop> {
        let any = Arc::new(AtomicBool::new(false));
        let stop = Stop {
            int: Arc::new(AtomicBool::new(false)),
            term: Arc::new(AtomicBool::new(false)),
        };
        for (signal, flag) in [(SIGINT, &stop.int), (SIGTERM, &stop.term)] {
            let code = if signal == SIGINT { 130 } else { 143 };
            signal_hook::flag::register_conditional_shutdown(signal, code, Arc::clone(&any))?;
            signal_hook::flag::register(signal, Arc::clone(flag))?;
            signal_hook::flag::register(signal, Arc::clone(&any))?;
        }
        Ok(stop)
    }

    /// The signal that asked to stop, if one has.
    pub fn requested(&self) -> Option<Signal> {
        if self.int.load(Ordering::Relaxed) {
            Some(Signal::Int)
        } else if self.term.load(Ordering::Relaxed) {
            Some(Signal::Term)
        } else {
            None
        }
    }
}

/// A run stopped by a signal: its message, and the exit status `main` gives.
#[derive(Debug)]
pub struct Interrupted {
    pub signal: Signal,
    pub message: String,
}

impl std::fmt::Display for Interrupted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Interrupted {}
