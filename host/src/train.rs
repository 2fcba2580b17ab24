//! `charmlp train`: the default recipe, reported as it runs.
//!
//! Order of work, so that a failure anywhere loses nothing: every output path is checked
//! first; training stops at divergence (see [`crate::diverge`]); the trained model is written
//! to bytes and loaded back through the same loader `sample` uses before anything is replaced;
//! the curve and the plot are committed next, and the model last, so a failing secondary output
//! leaves the previous model intact.

use crate::cli::{BATCH_SIZES, TrainArgs};
use crate::data::{BUILTIN_NAME, Splits, input_name, read_words, split};
use crate::diverge::{self, Watch};
use crate::modelfile::{from_bytes, to_bytes};
use crate::outputs::{self, Output};
use crate::plot::LossSummary;
use crate::progress::Progress;
use crate::stdout::Out;
use crate::{Stream, count, fmt_num, print_names, shown, stream};
use anyhow::{Context, Result, anyhow, bail};
use charmlp_core::{
    Batch, BnCalibration, CONTEXT, EMBED, InferState, Model, Params, StepDecay, TrainState, V,
    train_step,
};
use std::fmt::Write as _;
use std::time::{Duration, Instant};

/// A loss line every this many steps (and at the first and last step).
const REPORT_EVERY: u64 = 10_000;

/// Steps between checks of every parameter for NaN and infinity.
const PARAM_CHECK_EVERY: u64 = 1024;

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

/// The checked output paths of a run: the model, and the curve and plot if asked for.
struct Targets {
    model: Output,
    curve: Option<Output>,
    plot: Option<Output>,
}

fn targets(args: &TrainArgs) -> Result<Targets> {
    let inputs: Vec<(&str, &std::path::Path)> =
        args.data.iter().map(|d| ("--data", d.as_path())).collect();
    let mut outs = vec![("--out", args.out.as_path())];
    outs.extend(args.curve.iter().map(|p| ("--curve", p.as_path())));
    outs.extend(args.plot.iter().map(|p| ("--plot", p.as_path())));
    let mut checked = outputs::check(&inputs, &outs)?.into_iter();
    let mut next = || {
        checked
            .next()
            .ok_or_else(|| anyhow!("an output went missing"))
    };
    Ok(Targets {
        model: next()?,
        curve: args.curve.as_ref().map(|_| next()).transpose()?,
        plot: args.plot.as_ref().map(|_| next()).transpose()?,
    })
}

fn train<const H: usize, const B: usize>(args: &TrainArgs) -> Result<()> {
    let started = Instant::now();
    let targets = targets(args)?;
    let mut out = Out::new(true);
    let source = args
        .data
        .as_ref()
        .map_or(BUILTIN_NAME.to_string(), |p| input_name(p));
    let words = read_words(args.data.as_deref())?;
    let n_words = words.len();
    let splits: Splits<CONTEXT> = split(words, args.seed).with_context(|| source.clone())?;
    let [w_train, w_val, w_test] = splits.words;
    out.line(format_args!(
        "data: {source}: {}; train/val/test {w_train}/{w_val}/{w_test} words, {}/{}/{} examples",
        count(n_words as u64, "word"),
        splits.train.len(),
        splits.val.len(),
        splits.test.len()
    ))?;

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
    out.line(format_args!(
        "model: {V} → {EMBED} → {} → {H} → {V}, {} parameters; batch {B}, {}, lr {} then {} from step {}",
        EMBED * CONTEXT,
        Params::<EMBED, CONTEXT, H>::COUNT,
        count(args.steps, "step"),
        fmt_num(schedule.lr),
        fmt_num(schedule.lr_final),
        schedule.decay_step
    ))?;

    let mut batch_rng = stream(args.seed, Stream::Batches);
    // The curve streams to its temporary file; the plot keeps a bounded summary.
    let mut curve = targets.curve.as_ref().map(Output::begin).transpose()?;
    if let Some(c) = &mut curve {
        c.write_all(b"step,loss,val_loss\n")?;
    }
    let mut summary = LossSummary::new();
    let mut infer = InferState::<H>::new();
    let progress = Progress::new(args.steps);
    let mut watch = Watch::new();
    let mut report_time = Duration::ZERO;
    let mut row = String::new();
    let loop_started = Instant::now();
    // Steps per second of training time: the validation passes are not steps.
    let steps_per_s = |done: u64, report_time: Duration| {
        let training = loop_started.elapsed().saturating_sub(report_time);
        done as f64 / training.as_secs_f64().max(1e-9)
    };
    let diverged = |step: u64, blamed: u64, why: &str| {
        progress.finish();
        anyhow!(diverge::message(step, blamed, why, &schedule))
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
        if let Err(why) = watch.step(step, loss) {
            return Err(diverged(step, watch.blamed_step(step), &why));
        }
        summary.push(loss);
        let last = step + 1 == args.steps;
        if step % PARAM_CHECK_EVERY == 0 || last {
            let smoothed = watch.smoothed();
            progress.update(step + 1, steps_per_s(step + 1, report_time), loss, smoothed);
            // A blown-up model can keep a finite loss (softmax and tanh saturate), so the
            // parameters themselves are checked too.
            if let Some(name) = non_finite_tensor(&run.model.params) {
                let why = format!("{name} holds NaN or infinity");
                return Err(diverged(step, watch.blamed_update(step), &why));
            }
        }
        let mut val = None;
        if step % REPORT_EVERY == 0 || last {
            let t = Instant::now();
            // Validation loss with the running batch-norm statistics, as they stand.
            let v = run.model.loss(&splits.val, &mut infer).unwrap_or(f64::NAN);
            summary.push_val(step, v);
            val = Some(v);
            let mut line = format!(
                "{step:>7}/{}: loss {loss:.4} (smoothed {:.4}), val {v:.4}, lr {}",
                args.steps,
                watch.smoothed(),
                fmt_num(lr)
            );
            if step > 0 {
                let rate = steps_per_s(step + 1, report_time);
                let eta = (args.steps - step - 1) as f64 / rate;
                write!(line, ", {rate:.0} steps/s, ETA {eta:.1} s")?;
            }
            progress.println(&mut out, &line)?;
            report_time += t.elapsed();
        }
        if let Some(c) = &mut curve {
            row.clear();
            write!(row, "{step},{loss},")?;
            if let Some(v) = val {
                write!(row, "{v}")?;
            }
            row.push('\n');
            c.write_all(row.as_bytes())?;
        }
    }
    progress.finish();
    let train_time = loop_started.elapsed().saturating_sub(report_time);
    let last_step = args.steps - 1;

    // makemore part 4: after training, batch-norm statistics over the whole training split.
    let model = &mut run.model;
    model.calibrate(&splits.train, &mut BnCalibration::new(), &mut infer)?;
    if let Some(j) =
        (0..H).find(|&j| !(model.bn.mean[j].is_finite() && model.bn.var[j].is_finite()))
    {
        return Err(diverged(
            last_step,
            watch.blamed_step(last_step),
            &format!(
                "calibration gives batch-norm statistics beyond f32 (unit {j}: mean {:e}, variance {:e})",
                model.bn.mean[j], model.bn.var[j]
            ),
        ));
    }
    // The model as it will be written, loaded back through the loader `sample` uses: what is
    // written is a model charmlp itself accepts.
    let bytes = to_bytes(model);
    from_bytes(&bytes).map_err(|e| {
        let why = format!("the trained model is unusable: {e:#}");
        diverged(last_step, watch.blamed_step(last_step), &why)
    })?;
    let mut line = String::from("loss:");
    let mut train_loss = f64::NAN;
    for (name, split) in [
        ("train", &splits.train),
        ("val", &splits.val),
        ("test", &splits.test),
    ] {
        let l = model.loss(split, &mut infer).unwrap_or(f64::NAN);
        if name == "train" {
            train_loss = l;
        }
        write!(line, " {name} {l:.4}")?;
    }
    if train_loss.is_nan() || train_loss > f64::from(watch.limit()) {
        return Err(diverged(
            last_step,
            watch.blamed_step(last_step),
            &format!(
                "the calibrated model's training loss is {train_loss:.4}, above {:.2}",
                watch.limit()
            ),
        ));
    }
    out.line(&line)?;

    // Everything that can fail without touching a file comes first: drawing the plot.
    let svg = match &targets.plot {
        Some(plot) => Some(crate::plot::loss_svg(plot.path(), &summary)?),
        None => None,
    };
    if let (Some(c), Some(target)) = (curve, &targets.curve) {
        c.commit()?;
        out.line(format_args!("curve: wrote {}", shown(target.path())))?;
    }
    if let (Some(plot), Some(svg)) = (&targets.plot, svg) {
        plot.write(svg.as_bytes())?;
        out.line(format_args!("plot: wrote {}", shown(plot.path())))?;
    }
    targets.model.write(&bytes)?;
    out.line(format_args!(
        "model: wrote {} ({} bytes)",
        shown(&args.out),
        bytes.len()
    ))?;

    out.line("names:")?;
    print_names(
        &mut out,
        model,
        20,
        args.seed,
        charmlp_core::Temperature::ONE,
        &mut infer,
    )?;
    out.line(format_args!(
        "time: {:.2} s in all; training {:.2} s, {:.2} µs/step",
        started.elapsed().as_secs_f64(),
        train_time.as_secs_f64(),
        train_time.as_secs_f64() * 1e6 / args.steps as f64
    ))?;
    out.flush()
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
