//! The loss curve as an SVG: log10 of the loss against step, as makemore plots it, with the
//! axis labelled in loss values.

use anyhow::{Result, anyhow};
use plotters::prelude::*;
use std::path::Path;

/// Draws per-step losses, averaged over windows (makemore averages 1,000 steps), and the
/// periodic validation losses as points.
pub fn loss_svg(path: &Path, losses: &[f32], val: &[(u64, f64)]) -> Result<()> {
    let fail = |e: &dyn std::fmt::Display| anyhow!("{}: cannot draw the plot: {e}", path.display());
    let window = (losses.len() / 200).clamp(1, 1000);
    let means: Vec<(f64, f64)> = losses
        .chunks(window)
        .enumerate()
        .map(|(i, c)| {
            let mean = c.iter().map(|&x| f64::from(x)).sum::<f64>() / c.len() as f64;
            (((i * window) + c.len() / 2) as f64, mean.log10())
        })
        .collect();
    let val: Vec<(f64, f64)> = val.iter().map(|&(s, l)| (s as f64, l.log10())).collect();
    let ys = means.iter().chain(&val).map(|p| p.1);
    let (lo, hi) = ys.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), y| {
        (lo.min(y), hi.max(y))
    });
    if !(lo.is_finite() && hi.is_finite()) {
        return Err(fail(&"no positive finite losses to plot"));
    }
    let pad = ((hi - lo) * 0.05).max(1e-3);
    let root = SVGBackend::new(path, (960, 540)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| fail(&e))?;
    let mut chart = ChartBuilder::on(&root)
        .caption("charmlp training loss", ("sans-serif", 22))
        .margin(16)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(0f64..losses.len() as f64, lo - pad..hi + pad)
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
    Ok(())
}
