//! `charmlp train`: the default recipe, reported as it runs.

use crate::cli::{BATCH_SIZES, TrainArgs};
use crate::data::{BUILTIN_NAME, Splits, read_words, split};
use crate::modelfile::{to_bytes, write_atomic};
use crate::progress::Progress;
use crate::{Stream, print_names, stream};
use anyhow::{Context, Result, bail};
use charmlp_core::{
    Batch, BnCalibration, CONTEXT, EMBED, InferState, Model, Params, StepDecay, TrainState,
    train_step,
};
use std::fmt::Write as _;
use std::time::{Duration, Instant};

/// A loss line every this many steps (and at the first and last step).
const REPORT_EVERY: u64 = 10_000;

pub fn run(args: &TrainArgs) -> Result<()> {
    match args.hidden {
        64 => by_batch::<64>(args),
        200 => by_batch::<200>(args),
        h => bail!("--hidden {h}: not built in; choose 64 or 200"),
    }
}

fn by_batch<const H: usize>(args: &TrainArgs) -> Result<()> {
    match args.batch {
        4 => train::<H, 4>(args),
        8 => train::<H, 8>(args),
        16 => train::<H, 16>(args),
        32 => train::<H, 32>(args),
        64 => train::<H, 64>(args),
        128 => train::<H, 128>(args),
        256 => train::<H, 256>(args),
        b => bail!("--batch {b}: not built in; choose one of {BATCH_SIZES:?}"),
    }
}

/// Everything one training run keeps, on the heap.
struct Run<const H: usize, const B: usize> {
    model: Box<Model<EMBED, CONTEXT, H>>,
    grads: Box<Params<EMBED, CONTEXT, H>>,
    state: Box<TrainState<H, B>>,
    batch: Box<Batch<CONTEXT, B>>,
}

fn train<const H: usize, const B: usize>(args: &TrainArgs) -> Result<()> {
    let started = Instant::now();
    let source = args
        .data
        .as_ref()
        .map_or(BUILTIN_NAME.to_string(), |p| p.display().to_string());
    let words = read_words(args.data.as_deref())?;
    let n_words = words.len();
    let splits: Splits<CONTEXT> = split(words, args.seed).with_context(|| source.clone())?;
    let [w_train, w_val, w_test] = splits.words;
    println!(
        "data: {source}: {n_words} words; train/val/test {w_train}/{w_val}/{w_test} words, {}/{}/{} examples",
        splits.train.len(),
        splits.val.len(),
        splits.test.len()
    );

    let mut run = Run::<H, B> {
        model: Box::new(Model::zeroed()),
        grads: Box::new(Params::zeroed()),
        state: Box::new(TrainState::new()),
        batch: Box::new(Batch::new()),
    };
    run.model.init(&mut stream(args.seed, Stream::Init));
    let schedule = StepDecay {
        lr: args.lr,
        decay_step: args.lr_decay_step,
        lr_final: args.lr_final,
    };
    println!(
        "model: 27 → {EMBED} → {} → {H} → 27, {} parameters; batch {B}, {} steps, lr {} then {} from step {}",
        EMBED * CONTEXT,
        Params::<EMBED, CONTEXT, H>::COUNT,
        args.steps,
        schedule.lr,
        schedule.lr_final,
        schedule.decay_step
    );

    let mut batch_rng = stream(args.seed, Stream::Batches);
    let keep_curve = args.curve.is_some() || args.plot.is_some();
    let mut losses = Vec::with_capacity(if keep_curve { args.steps as usize } else { 0 });
    let mut val_points = Vec::new();
    let mut infer = InferState::<H>::new();
    let progress = Progress::new(args.steps);
    let mut smoothed = f32::NAN;
    let mut report_time = Duration::ZERO;
    let loop_started = Instant::now();
    // Steps per second of training time: the validation passes are not steps.
    let steps_per_s = |done: u64, report_time: Duration| {
        let training = loop_started.elapsed().saturating_sub(report_time);
        done as f64 / training.as_secs_f64().max(1e-9)
    };
    for step in 0..args.steps {
        run.batch.sample(&mut batch_rng, &splits.train)?;
        let lr = schedule.at(step);
        let loss = train_step(
            &mut run.model,
            &mut run.grads,
            &mut run.state,
            &run.batch,
            lr,
        );
        if !loss.is_finite() {
            progress.finish();
            bail!(
                "training diverged at step {step}: the loss is {loss} (lr {lr}); \
                 try a lower learning rate, e.g. --lr {}. No model was written.",
                lr / 10.0
            );
        }
        smoothed = if smoothed.is_nan() {
            loss
        } else {
            0.99 * smoothed + 0.01 * loss
        };
        if keep_curve {
            losses.push(loss);
        }
        let last = step + 1 == args.steps;
        if step % 1024 == 0 || last {
            progress.update(step + 1, steps_per_s(step + 1, report_time), loss, smoothed);
            // A blown-up model can keep a finite loss (softmax and tanh saturate), so the
            // parameters themselves are checked too.
            if let Some(name) = non_finite_tensor(&run.model.params) {
                progress.finish();
                bail!(
                    "training diverged by step {step}: {name} holds NaN or infinity (lr {lr}); \
                     try a lower learning rate, e.g. --lr {}. No model was written.",
                    lr / 10.0
                );
            }
        }
        if step % REPORT_EVERY == 0 || last {
            let t = Instant::now();
            // Validation loss with the running batch-norm statistics, as they stand.
            let val = run.model.loss(&splits.val, &mut infer).unwrap_or(f64::NAN);
            val_points.push((step, val));
            let mut line = format!(
                "{step:>7}/{}: loss {loss:.4} (smoothed {smoothed:.4}), val {val:.4}, lr {lr}",
                args.steps
            );
            if step > 0 {
                let rate = steps_per_s(step + 1, report_time);
                let eta = (args.steps - step - 1) as f64 / rate;
                write!(line, ", {rate:.0} steps/s, ETA {eta:.1} s")?;
            }
            progress.println(&line);
            report_time += t.elapsed();
        }
    }
    progress.finish();
    let train_time = loop_started.elapsed().saturating_sub(report_time);

    // makemore part 4: after training, batch-norm statistics over the whole training split.
    let model = &mut run.model;
    model.calibrate(&splits.train, &mut BnCalibration::new(), &mut infer)?;
    let mut line = String::from("loss:");
    for (name, split) in [
        ("train", &splits.train),
        ("val", &splits.val),
        ("test", &splits.test),
    ] {
        match model.loss(split, &mut infer) {
            Some(l) => write!(line, " {name} {l:.4}")?,
            None => write!(line, " {name} -")?,
        }
    }
    println!("{line}");

    write_atomic(&args.out, &to_bytes(model))?;
    println!(
        "model: wrote {} ({} bytes)",
        args.out.display(),
        Model::<EMBED, CONTEXT, H>::BYTES
    );
    if let Some(path) = &args.curve {
        write_curve(path, &losses, &val_points)?;
        println!("curve: wrote {}", path.display());
    }
    if let Some(path) = &args.plot {
        crate::plot::loss_svg(path, &losses, &val_points)?;
        println!("plot: wrote {}", path.display());
    }

    println!("names:");
    print_names(
        model,
        20,
        args.seed,
        charmlp_core::Temperature::ONE,
        &mut infer,
    );
    println!(
        "time: {:.2} s in all; training {:.2} s, {:.2} µs/step",
        started.elapsed().as_secs_f64(),
        train_time.as_secs_f64(),
        train_time.as_secs_f64() * 1e6 / args.steps as f64
    );
    Ok(())
}

/// The first tensor holding a NaN or an infinity, if any.
fn non_finite_tensor<const H: usize>(p: &Params<EMBED, CONTEXT, H>) -> Option<&'static str> {
    let names = Params::<EMBED, CONTEXT, H>::NAMES;
    let tensors = p.tensors();
    let bad = tensors
        .iter()
        .position(|t| t.iter().any(|x| !x.is_finite()))?;
    Some(names[bad])
}

/// CSV: `step,loss,val_loss`, one row a step; val_loss where it was measured.
fn write_curve(path: &std::path::Path, losses: &[f32], val: &[(u64, f64)]) -> Result<()> {
    let mut out = String::with_capacity(losses.len() * 16);
    out.push_str("step,loss,val_loss\n");
    let mut val = val.iter().peekable();
    for (step, loss) in losses.iter().enumerate() {
        write!(out, "{step},{loss}")?;
        if let Some((_, v)) = val.next_if(|(s, _)| *s == step as u64) {
            write!(out, ",{v}")?;
        } else {
            out.push(',');
        }
        out.push('\n');
    }
    write_atomic(path, out.as_bytes())
}
