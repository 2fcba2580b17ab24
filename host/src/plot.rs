//! The loss curve as an SVG: log10 of the loss against step, as makemore plots it, with the
//! axis labelled in loss values.

use crate::shown;
use anyhow::{Result, anyhow};
use plotters::prelude::*;
use std::path::Path;

/// Points of the plotted curve at most: beyond this the windows double.
pub const MAX_POINTS: usize = 400;

/// Per-step losses reduced to at most [`MAX_POINTS`] window means, however many steps a run
/// takes: windows start at 1 step and double (pairs of means merge) whenever the points would
/// exceed the bound. Memory is fixed; `--steps 10^12 --plot` allocates no more than 100.
#[derive(Clone, Debug, Default)]
pub struct LossSummary {
    /// Sums of the full windows so far.
    sums: Vec<f64>,
    window: u64,
    partial: f64,
    partial_n: u64,
    steps: u64,
    /// Validation losses kept for the plot (every `val_stride`-th), thinned the same way.
    val: Vec<(u64, f64)>,
    val_seen: u64,
    val_stride: u64,
}

impl LossSummary {
    pub fn new() -> Self {
        LossSummary {
            window: 1,
            val_stride: 1,
            ..Default::default()
        }
    }

    pub fn push(&mut self, loss: f32) {
        self.steps += 1;
        self.partial += f64::from(loss);
        self.partial_n += 1;
        if self.partial_n == self.window {
            self.sums.push(self.partial);
            (self.partial, self.partial_n) = (0.0, 0);
            if self.sums.len() == MAX_POINTS {
                let merged: Vec<f64> = self.sums.chunks(2).map(|c| c.iter().sum()).collect();
                self.sums = merged;
                self.window *= 2;
            }
        }
    }

    /// A validation loss measured at `step`.
    pub fn push_val(&mut self, step: u64, loss: f64) {
        if self.val_seen.is_multiple_of(self.val_stride) {
            self.val.push((step, loss));
            if self.val.len() == MAX_POINTS {
                let kept: Vec<(u64, f64)> = self.val.iter().step_by(2).copied().collect();
                self.val = kept;
                self.val_stride *= 2;
            }
        }
        self.val_seen += 1;
    }

    /// Steps taken.
    pub fn steps(&self) -> u64 {
        self.steps
    }

    /// Steps a point averages.
    pub fn window(&self) -> u64 {
        self.window
    }

    /// (middle step, mean loss) of every window, the last one partial.
    pub fn means(&self) -> Vec<(f64, f64)> {
        let w = self.window as f64;
        let mut points: Vec<(f64, f64)> = self
            .sums
            .iter()
            .enumerate()
            .map(|(i, s)| (i as f64 * w + w / 2.0, s / w))
            .collect();
        if self.partial_n > 0 {
            let n = self.partial_n as f64;
            points.push((self.sums.len() as f64 * w + n / 2.0, self.partial / n));
        }
        points
    }
}

/// The loss curve as SVG text: window means of the training batch loss (see [`LossSummary`])
/// and the periodic validation losses as points. `path` names the file in messages.
pub fn loss_svg(path: &Path, losses: &LossSummary) -> Result<String> {
    let val = &losses.val;
    let fail = |e: &dyn std::fmt::Display| anyhow!("{}: cannot draw the plot: {e}", shown(path));
    let window = losses.window();
    let means: Vec<(f64, f64)> = losses
        .means()
        .into_iter()
        // A loss of exactly 0 (a model that memorised its batches) sits at the floor.
        .map(|(x, mean)| (x, mean.max(1e-12).log10()))
        .collect();
    let val: Vec<(f64, f64)> = val
        .iter()
        .map(|&(s, l)| (s as f64, l.max(1e-12).log10()))
        .collect();
    let ys = means.iter().chain(&val).map(|p| p.1);
    let (lo, hi) = ys.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), y| {
        (lo.min(y), hi.max(y))
    });
    if !(lo.is_finite() && hi.is_finite()) {
        return Err(fail(&"no positive finite losses to plot"));
    }
    let pad = ((hi - lo) * 0.05).max(1e-3);
    let mut svg = String::new();
    let root = SVGBackend::with_string(&mut svg, (960, 540)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| fail(&e))?;
    let mut chart = ChartBuilder::on(&root)
        .caption("charmlp training loss", ("sans-serif", 22))
        .margin(16)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(0f64..losses.steps() as f64, lo - pad..hi + pad)
        .map_err(|e| fail(&e))?;
    chart
        .configure_mesh()
        .x_desc("step")
        .y_desc("loss (log scale)")
        .x_label_formatter(&|x| format!("{x:.0}"))
        .y_label_formatter(&|y| format!("{:.2}", 10f64.powf(*y)))
        .draw()
        .map_err(|e| fail(&e))?;
    chart
        .draw_series(LineSeries::new(means, BLUE.stroke_width(2)))
        .map_err(|e| fail(&e))?
        .label(format!("training batch loss, mean of {window} steps"))
        .legend(|(x, y)| PathElement::new([(x, y), (x + 20, y)], BLUE.stroke_width(2)));
    chart
        .draw_series(val.iter().map(|&p| Circle::new(p, 4, RED.filled())))
        .map_err(|e| fail(&e))?
        .label("validation loss")
        .legend(|(x, y)| Circle::new((x + 10, y), 4, RED.filled()));
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()
        .map_err(|e| fail(&e))?;
    root.present().map_err(|e| fail(&e))?;
    drop(chart);
    drop(root);
    Ok(svg)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_summary_stays_bounded_and_keeps_the_mean() {
        let mut s = LossSummary::new();
        let n = 1_000_003u64;
        for i in 0..n {
            s.push((i % 10) as f32);
            if i % 100 == 0 {
                s.push_val(i, 2.0);
            }
        }
        assert!(s.val.len() < MAX_POINTS && s.val.len() > MAX_POINTS / 4);
        let means = s.means();
        assert!(means.len() <= MAX_POINTS + 1, "{}", means.len());
        assert!(s.sums.capacity() <= 2 * MAX_POINTS);
        assert_eq!(s.steps(), n);
        // Every full window of a power of two ≥ 10 steps averages close to 4.5.
        assert!(
            means[..means.len() - 1]
                .iter()
                .all(|&(_, m)| (m - 4.5).abs() < 0.5)
        );
        let total: f64 = means.iter().map(|&(_, m)| m).sum();
        assert!(total.is_finite());
    }
}
