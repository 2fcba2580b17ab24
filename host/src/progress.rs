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
        // 8 + 1 + the message (at most 70, counts included): within 80 columns for any run.
        let style = ProgressStyle::with_template("{bar:8} {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar());
        bar.set_style(style);
        Progress { bar: Some(bar) }
    }

    /// Shows `steps` done of `total` at `steps_per_s`, with the smoothed batch loss and the
    /// time left, as the log lines give them.
    pub fn update(&self, steps: u64, total: u64, steps_per_s: f64, smoothed: f32) {
        if let Some(bar) = &self.bar {
            // The message first: the position redraws the bar, which should show the new one.
            bar.set_message(message(steps, total, steps_per_s, smoothed));
            bar.set_position(steps);
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

/// The bar's message: `120000/200000 smoothed 2.1034, 65860 steps/s, ETA 5.3 s`.
pub fn message(steps: u64, total: u64, steps_per_s: f64, smoothed: f32) -> String {
    let eta = total.saturating_sub(steps) as f64 / steps_per_s.max(1e-9);
    format!(
        "{}/{} smoothed {smoothed:.4}, {steps_per_s:.0} steps/s, ETA {}",
        count_text(steps),
        count_text(total),
        eta_text(eta)
    )
}

/// A step count in at most 9 characters: exact below 10⁹, else 3 significant digits
/// (`1.84e19`).
pub fn count_text(n: u64) -> String {
    if n < 1_000_000_000 {
        n.to_string()
    } else {
        format!("{:.2e}", n as f64)
    }
}

/// Time left as the bar and the log lines both write it: `5.3 s`, `4 min 05 s`, `2 h 03 min`.
pub fn eta_text(seconds: f64) -> String {
    if !seconds.is_finite() || seconds < 0.0 {
        return "?".into();
    }
    if seconds < 60.0 {
        return format!("{seconds:.1} s");
    }
    let whole = seconds.round() as u64;
    if whole < 3600 {
        format!("{} min {:02} s", whole / 60, whole % 60)
    } else if whole < 100 * 3600 {
        format!("{} h {:02} min", whole / 3600, whole % 3600 / 60)
    } else {
        "over 99 h".into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The bar's line fits 80 columns for any run up to 10⁸ steps, and its ETA is written
    /// one way, as the log lines write it.
    #[test]
    fn the_bar_fits_80_columns_and_writes_the_eta_one_way() {
        // The widest figures: a loss of two digits, ten million steps/s, the longest ETA.
        let widest = message(999_999_999, 999_999_999, 9_999_999.0, 12.345_6)
            .replace("0.0 s", "99 h 59 min");
        let line = 8 + 1 + widest.chars().count();
        assert!(line <= 80, "{line}: {widest}");
        for steps in [1u64 << 40, u64::MAX] {
            let m = message(steps - 1, steps, 1.0, 12.345_6);
            assert!(8 + 1 + m.chars().count() <= 80, "{m}");
        }
        assert_eq!(count_text(200_000), "200000");
        assert_eq!(count_text(u64::MAX), "1.84e19");
        assert_eq!(eta_text(5.26), "5.3 s");
        assert_eq!(eta_text(245.0), "4 min 05 s");
        assert_eq!(eta_text(7380.0), "2 h 03 min");
        assert_eq!(eta_text(360_000.0), "over 99 h");
        assert_eq!(eta_text(f64::INFINITY), "?");
    }
}
