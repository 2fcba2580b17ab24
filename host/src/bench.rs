//! `charmlp bench`: training-step latency without criterion.

use crate::cli::BenchArgs;
use crate::data::{read_words, split_words};
use crate::shapes::ModelShape;
use crate::shapes::{StageTimes, training};
use crate::stdout::Out;
use crate::words::Rules;
use crate::{Stream, stream};
use anyhow::Result;
use charmlp_core::{Optimizer, Schedule, Stage, VOCAB};
use std::time::Instant;

const B: usize = 32;
const WARM_UP: u64 = 2_000;

/// FLOPs of the six matrix products of a step of a model of makemore's 27 symbols (x·W1,
/// h·W2, hᵀ·dlogits, dlogits·W2ᵀ, xᵀ·dhprebn, dhprebn·W1ᵀ), 2 per multiply-add; element-wise
/// work is not counted.
pub const fn step_flops(shape: ModelShape) -> usize {
    let (e, t, h) = (shape.embed, shape.context, shape.hidden);
    3 * 2 * B * e * t * h + 3 * 2 * B * h * VOCAB
}

/// Times the training step of the flags' shape at batch 32 on the built-in names, through the
/// same [`Training`] object `train` uses (the shape is chosen in [`crate::shapes`]).
pub fn run(args: &BenchArgs) -> Result<()> {
    let shape = args.shape.shape();
    let words = read_words(None, &Rules::default())?;
    let splits = split_words(words.words, crate::cli::DEFAULT_SEED)?;
    let mut run = training(shape, &words.chars, B, Optimizer::Sgd, &splits)?;
    run.init(&mut stream(0, Stream::Init));
    let mut rng = stream(0, Stream::Batches);
    let schedule = Schedule::constant(0.1);
    if args.stages {
        let mut loss = [0.0f32];
        for step in 0..WARM_UP {
            run.steps(&mut rng, &schedule, step, &mut loss)?;
        }
        let times = run.stage_times(&mut rng, 0.1, args.steps)?;
        let mut out = Out::new(true);
        for line in stage_table(&times, args.steps, shape, args.peak).lines() {
            out.line(line)?;
        }
        return out.flush();
    }
    let mut micros = Vec::with_capacity(args.steps as usize);
    let mut loss = [0.0f32];
    for step in 0..WARM_UP + args.steps {
        // One step as training runs it: draw a batch, forward, fused backward, SGD.
        let t = Instant::now();
        run.steps(&mut rng, &schedule, step, &mut loss)?;
        let dt = t.elapsed();
        if step >= WARM_UP {
            micros.push(dt.as_secs_f64() * 1e6);
        }
    }
    micros.sort_by(f64::total_cmp);
    let at = |q: f64| micros[((micros.len() - 1) as f64 * q).round() as usize];
    let (min, median, p99) = (at(0.0), at(0.5), at(0.99));
    let flops = step_flops(shape);
    let mut out = Out::new(true);
    out.line(format_args!(
        "bench: train step, embedding {}, context {}, hidden {}, batch {B}, {} timed steps after {WARM_UP} warm-up, built-in names",
        shape.embed,
        shape.context,
        shape.hidden,
        args.steps
    ))?;
    out.line(format_args!(
        "latency per step: min {min:.2} µs, median {median:.2} µs, p99 {p99:.2} µs"
    ))?;
    out.line(format_args!(
        "throughput: {:.0} steps/s (at the median)",
        1e6 / median
    ))?;
    out.line(format_args!(
        "compute: {flops} FLOP/step (the six matrix products, 2 per multiply-add) = {:.1} GFLOP/s at the median",
        flops as f64 / median / 1e3
    ))?;
    out.flush()
}

/// The stage table: per stage the mean µs, the FLOP of its product, GFLOP/s, the share of the
/// step and, given the peak, the share of it.
pub fn stage_table(times: &StageTimes, steps: u64, shape: ModelShape, peak: Option<f64>) -> String {
    let per_step = |d: std::time::Duration| d.as_secs_f64() * 1e6 / steps.max(1) as f64;
    let total: f64 = per_step(times.draw) + times.stages.iter().map(|&d| per_step(d)).sum::<f64>();
    let mut text = format!(
        "bench --stages: embedding {}, context {}, hidden {}, batch {B}, {steps} steps, mean per step\n",
        shape.embed, shape.context, shape.hidden
    );
    text.push_str("stage                    µs       FLOP   GFLOP/s      %");
    if peak.is_some() {
        text.push_str("  of peak");
    }
    text.push('\n');
    let rows = std::iter::once(("batch draw", per_step(times.draw), 0)).chain(
        Stage::ALL.iter().zip(&times.stages).map(|(s, &d)| {
            let flops = s.flops(B, VOCAB, shape.embed, shape.context, shape.hidden);
            (s.name(), per_step(d), flops)
        }),
    );
    for (name, us, flops) in rows {
        let rate = flops as f64 / us.max(1e-9) / 1e3;
        let (flop_text, rate_text) = if flops == 0 {
            ("—".to_string(), "—".to_string())
        } else {
            (flops.to_string(), format!("{rate:.1}"))
        };
        text.push_str(&format!(
            "{name:<20} {us:>7.2} {flop_text:>10} {rate_text:>9} {:>6.1}",
            100.0 * us / total.max(1e-9)
        ));
        if let (Some(peak), true) = (peak, flops > 0) {
            text.push_str(&format!(" {:>7.0}%", 100.0 * rate / peak));
        }
        text.push('\n');
    }
    let all = step_flops(shape);
    text.push_str(&format!(
        "{:<20} {total:>7.2} {all:>10} {:>9.1} {:>6.1}\n",
        "step",
        all as f64 / total.max(1e-9) / 1e3,
        100.0
    ));
    text
}

#[cfg(test)]
mod tests {
    #[test]
    fn flop_count_is_the_six_products() {
        // 3 products of 32×30×64 and 3 of 32×64×27, 2 FLOPs per multiply-add.
        let default = crate::shapes::ModelShape::DEFAULT;
        assert_eq!(
            super::step_flops(default),
            6 * 32 * 30 * 64 + 6 * 32 * 64 * 27
        );
        assert_eq!(super::step_flops(default), 700_416);
    }
}
