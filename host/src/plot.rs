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

/// The y range of the plot: from the lowest loss to the highest past the first 2% of the run
/// (the first steps' losses, far above the rest, would flatten the curve: they run off the
/// top), with a fifth more above for the legend, which so never covers a point.
pub fn y_range(means: &[(f64, f64)], val: &[(f64, f64)], steps: u64) -> Option<(f64, f64)> {
    let early = steps as f64 * 0.02;
    let all = || means.iter().chain(val).map(|p| p.1);
    let later: Vec<f64> = means
        .iter()
        .chain(val)
        .filter(|p| p.0 > early)
        .map(|p| p.1)
        .collect();
    let lo = all().fold(f64::INFINITY, f64::min);
    let hi = if later.is_empty() {
        all().fold(f64::NEG_INFINITY, f64::max)
    } else {
        later.iter().copied().fold(f64::NEG_INFINITY, f64::max)
    };
    if !(lo.is_finite() && hi.is_finite()) {
        return None;
    }
    // At least 0.2 nats, so that the ticks are round hundredths at the finest.
    let span = (hi - lo).max(0.2);
    Some((lo - 0.05 * span, hi + 0.25 * span))
}

/// A step count for an axis label: 0, 500, 20k, 1.5M.
pub fn step_label(x: f64) -> String {
    let x = x.round();
    if x.abs() >= 1e6 {
        format!("{}M", x / 1e6)
    } else if x.abs() >= 1e4 {
        format!("{}k", x / 1e3)
    } else {
        format!("{x}")
    }
}

/// The loss curve as SVG text: window means of the training batch loss (see [`LossSummary`])
/// and the periodic validation losses as points. `path` names the file in messages.
pub fn loss_svg(path: &Path, losses: &LossSummary) -> Result<String> {
    let fail = |e: &dyn std::fmt::Display| anyhow!("{}: cannot draw the plot: {e}", shown(path));
    let window = losses.window();
    let finite = |p: &(f64, f64)| p.1.is_finite();
    let means: Vec<(f64, f64)> = losses.means().into_iter().filter(finite).collect();
    let val: Vec<(f64, f64)> = losses
        .val
        .iter()
        .map(|&(s, l)| (s as f64, l))
        .filter(finite)
        .collect();
    let Some((lo, hi)) = y_range(&means, &val, losses.steps()) else {
        return Err(fail(&"no finite losses to plot"));
    };
    // Points above the range run off the top: left out, not pinned to its edge.
    let inside = |p: &(f64, f64)| p.1 <= hi;
    let means: Vec<(f64, f64)> = means.into_iter().filter(inside).collect();
    let val: Vec<(f64, f64)> = val.into_iter().filter(inside).collect();
    // A line of one point draws nothing: a lone mean is a dot.
    let lone = (means.len() == 1).then(|| means[0]);
    let mut svg = String::new();
    let root = SVGBackend::with_string(&mut svg, (960, 540)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| fail(&e))?;
    let mut chart = ChartBuilder::on(&root)
        .caption("charmlp training loss", ("sans-serif", 22))
        .margin(20)
        .x_label_area_size(48)
        .y_label_area_size(72)
        // At least ten steps wide, so that step labels are whole numbers, each once.
        .build_cartesian_2d(0f64..losses.steps().max(10) as f64, lo..hi)
        .map_err(|e| fail(&e))?;
    chart
        .configure_mesh()
        .x_desc("step")
        .y_desc("loss")
        .x_label_formatter(&|x| step_label(*x))
        .draw()
        .map_err(|e| fail(&e))?;
    chart
        .draw_series(lone.map(|p| Circle::new(p, 3, BLUE.filled())))
        .map_err(|e| fail(&e))?;
    chart
        .draw_series(LineSeries::new(means, BLUE.stroke_width(2)))
        .map_err(|e| fail(&e))?
        .label(format!(
            "training batch loss, mean of {}",
            crate::count(window, "step")
        ))
        .legend(|(x, y)| PathElement::new([(x, y), (x + 20, y)], BLUE.stroke_width(2)));
    chart
        .draw_series(val.iter().map(|&p| Circle::new(p, 4, RED.filled())))
        .map_err(|e| fail(&e))?
        .label("validation loss")
        .legend(|(x, y)| Circle::new((x + 10, y), 4, RED.filled()));
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperRight)
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

    /// The first steps' high losses do not set the top of the plot; the legend's fifth above
    /// the highest later point is kept free; the range is never empty.
    #[test]
    fn the_y_range_ignores_the_first_steps_and_leaves_room_for_the_legend() {
        let means: Vec<(f64, f64)> = (0..100)
            .map(|i| {
                (
                    i as f64 * 100.0,
                    if i == 0 { 30.0 } else { 3.0 - i as f64 / 100.0 },
                )
            })
            .collect();
        let (lo, hi) = y_range(&means, &[(0.0, 3.3)], 10_000).unwrap();
        assert!(lo < 2.01 && lo > 1.9, "{lo}");
        assert!(hi > 2.99 + 0.2 * (2.99 - 2.01) && hi < 3.3, "{hi}");
        let (lo, hi) = y_range(&[(0.5, 3.3)], &[(0.0, 3.3)], 1).unwrap();
        assert!(lo < 3.3 && hi > 3.3);
        assert_eq!(y_range(&[], &[], 5), None);
        assert_eq!(step_label(0.0), "0");
        assert_eq!(step_label(2500.0), "2500");
        assert_eq!(step_label(20000.0), "20k");
        assert_eq!(step_label(1.5e6), "1.5M");
        assert_eq!(step_label(1e7), "10M");
    }

    /// Plots of 1 step and of ten million draw, with every tick label readable: y ticks round
    /// (at most two decimals), step labels short.
    #[test]
    fn plots_from_one_step_to_ten_million_draw_with_round_labels() {
        for steps in [1u64, 7, 1000, 10_000_000] {
            let mut s = LossSummary::new();
            for i in 0..steps {
                s.push(3.3 - 1.2 * (i as f32 / steps as f32));
                if i % (steps / 10).max(1) == 0 || i + 1 == steps {
                    s.push_val(i, 3.4 - 1.2 * f64::from(i as f32 / steps as f32));
                }
            }
            let svg = loss_svg(Path::new("x.svg"), &s).unwrap();
            let labels: Vec<&str> = svg
                .split("<text")
                .skip(1)
                .filter_map(|t| t.split_once('>').map(|(_, rest)| rest))
                .filter_map(|t| t.split_once("</text>").map(|(label, _)| label.trim()))
                .collect();
            assert!(labels.contains(&"validation loss"), "{labels:?}");
            let steps_shown: Vec<&&str> =
                labels.iter().filter(|l| l.parse::<f64>().is_ok()).collect();
            let mut unique = steps_shown.clone();
            unique.sort();
            unique.dedup();
            assert_eq!(unique.len(), steps_shown.len(), "steps {steps}: {labels:?}");
            for label in &labels {
                if let Ok(y) = label.parse::<f64>() {
                    let decimals = label.split_once('.').map_or(0, |(_, d)| d.len());
                    assert!(decimals <= 2, "steps {steps}: tick {label}");
                    assert!(y.is_finite());
                }
                assert!(label.len() <= 48, "steps {steps}: {label}");
            }
        }
    }
}
