//! Training progress: a live bar on a terminal, nothing extra otherwise (the periodic loss
//! lines on stdout carry the same figures).

use crate::stdout::Out;
use anyhow::Result;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::io::IsTerminal;

pub struct Progress {
    bar: Option<ProgressBar>,
}

impl Progress {
    pub fn new(steps: u64) -> Self {
        if !std::io::stderr().is_terminal() {
            return Progress { bar: None };
        }
        let bar = ProgressBar::with_draw_target(Some(steps), ProgressDrawTarget::stderr());
        let style = ProgressStyle::with_template("{bar:30} {pos:>7}/{len} {msg} ETA {eta}")
            .unwrap_or_else(|_| ProgressStyle::default_bar());
        bar.set_style(style);
        Progress { bar: Some(bar) }
    }

    /// Shows `steps` done at `steps_per_s`, with the current and the smoothed batch loss.
    pub fn update(&self, steps: u64, steps_per_s: f64, loss: f32, smoothed: f32) {
        if let Some(bar) = &self.bar {
            bar.set_position(steps);
            bar.set_message(format!(
                "{steps_per_s:>6.0} steps/s  loss {loss:.4} (smoothed {smoothed:.4})"
            ));
        }
    }

    /// Prints a line on stdout without tearing the bar.
    pub fn println(&self, out: &mut Out, line: &str) -> Result<()> {
        match &self.bar {
            Some(bar) => bar.suspend(|| out.line(line)),
            None => out.line(line),
        }
    }

    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}
