//! `charmlp train`: the default recipe, reported as it runs.
//!
//! Order of work, so that a failure anywhere loses nothing: every output path is checked
//! first; training stops at divergence (see [`crate::diverge`]); the trained model is written
//! to bytes and loaded back through the same loader `sample` uses before anything is replaced;
//! the curve and the plot are committed next, and the model last, so a failing secondary output
//! leaves the previous model intact.
//!
//! Nothing here is generic over the model's shape: the run is a `dyn Training` from
//! [`crate::shapes`], and the finished model is reported through the `dyn Loaded` read back.

use crate::cli::TrainArgs;
use crate::data::{BUILTIN_NAME, example_count, input_name, read_words, split_words};
use crate::diverge::{self, Watch};
use crate::modelfile::from_bytes;
use crate::outputs::{self, Output};
use crate::plot::LossSummary;
use crate::progress::Progress;
use crate::recipe::{self, Recipe};
use crate::shapes::training;
use crate::stdout::Out;
use crate::words::{self, Rules};
use crate::{Stream, count, fmt_num, print_names, shown, stream};
use anyhow::{Context, Result, anyhow};
use std::fmt::Write as _;
use std::time::{Duration, Instant};

/// A loss line every this many steps (and at the first and last step).
const REPORT_EVERY: u64 = 10_000;

/// Steps between checks of every parameter for NaN and infinity.
const PARAM_CHECK_EVERY: u64 = 1024;

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

/// How the words were split, for the model file's metadata.
pub const SPLIT_RULE: &str =
    "random.seed(split_seed); random.shuffle(words); 80/10/10 by words (makemore's)";

/// SHA-256 (hex) of the words as trained on (after trimming and --lowercase, without skipped
/// words), one a line with `\n` after each: names the data a model came from.
pub fn data_hash(words: &[Vec<charmlp_core::Token>], chars: &[char]) -> String {
    use sha2::Digest;
    let mut hasher = sha2::Sha256::new();
    let mut utf8 = [0; 4];
    for word in words {
        for t in word {
            let ch = chars
                .get(t.index().wrapping_sub(1))
                .copied()
                .unwrap_or('\0');
            hasher.update(ch.encode_utf8(&mut utf8).as_bytes());
        }
        hasher.update(b"\n");
    }
    hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Trains with the flags' recipe. Not generic: the shape is chosen once, in
/// [`crate::shapes::training`], and only [`Training::steps`] runs per shape.
pub fn run(args: &TrainArgs) -> Result<()> {
    let started = Instant::now();
    let recipe = Recipe::from_args(args)?;
    let (shape, batch) = (recipe.shape, recipe.batch);
    let targets = targets(args)?;
    let mut out = Out::new(true);
    let source = args
        .data
        .as_ref()
        .map_or(BUILTIN_NAME.to_string(), |p| input_name(p));
    let rules = Rules {
        lowercase: args.lowercase,
        alphabet: args.alphabet.as_ref().map(|chars| words::Alphabet {
            chars: chars.0.clone(),
            source: words::GIVEN,
        }),
        skip_bad_words: args.skip_bad_words,
    };
    let words = read_words(args.data.as_deref(), &rules)?;
    let symbols = words.symbols();
    let n_words = words.words.len();
    let skipped = words.skipped;
    let alphabet = words::shown_chars(&words.chars);
    let chars = words.chars;
    let data_sha256 = data_hash(&words.words, &chars);
    let splits = split_words(words.words, recipe.split_seed).with_context(|| source.clone())?;
    let mut run = training(shape, &chars, batch, recipe.optimizer, &splits)?;
    let [w_train, w_val, w_test] = splits.each_ref().map(|s| s.len());
    let [e_train, e_val, e_test] = splits.each_ref().map(|s| example_count(s));
    out.line(format_args!(
        "data: {source}: {}; train/val/test {w_train}/{w_val}/{w_test} words, \
         {e_train}/{e_val}/{e_test} examples",
        count(n_words as u64, "word"),
    ))?;
    if skipped > 0 {
        out.line(format_args!(
            "skipped: {} with characters outside --alphabet",
            count(skipped as u64, "word")
        ))?;
    }
    out.line(format_args!(
        "alphabet: {symbols} symbols, the boundary and {alphabet}"
    ))?;

    run.init(&mut stream(args.seed, Stream::Init));
    let schedule = recipe.schedule;
    out.line(format_args!(
        "model: {symbols} → {} → {} → {} → {symbols}, {} parameters; batch {batch}, {}, {}",
        shape.embed,
        shape.embed * shape.context,
        shape.hidden,
        run.param_count(),
        count(args.steps, "step"),
        recipe.describe()
    ))?;

    let mut batch_rng = stream(args.seed, Stream::Batches);
    // The curve streams to its temporary file; the plot keeps a bounded summary.
    let mut curve = targets.curve.as_ref().map(Output::begin).transpose()?;
    if let Some(c) = &mut curve {
        c.write_all(b"step,loss,val_loss\n")?;
    }
    let mut summary = LossSummary::new();
    let progress = Progress::new(args.steps);
    let mut watch = Watch::new(symbols);
    let mut report_time = Duration::ZERO;
    let mut row = String::new();
    let mut losses = vec![0.0f32; PARAM_CHECK_EVERY as usize];
    let loop_started = Instant::now();
    // Steps per second of training time: the validation passes are not steps.
    let steps_per_s = |done: u64, report_time: Duration| {
        let training = loop_started.elapsed().saturating_sub(report_time);
        done as f64 / training.as_secs_f64().max(1e-9)
    };
    let diverged = |step: u64, blamed: u64, why: &str| {
        progress.finish();
        anyhow!(diverge::message(
            step,
            blamed,
            why,
            &schedule,
            recipe::default_lr(&recipe.optimizer)
        ))
    };
    let checked = |step: u64| step.is_multiple_of(PARAM_CHECK_EVERY) || step + 1 == args.steps;
    let reported = |step: u64| step.is_multiple_of(REPORT_EVERY) || step + 1 == args.steps;
    let mut first = 0;
    while first < args.steps {
        // Steps up to and including the next one that is checked or reported run in one call
        // of the shape's own loop; their losses are then taken in order.
        let mut last = first;
        while !checked(last) && !reported(last) {
            last += 1;
        }
        let chunk = &mut losses[..(last - first + 1) as usize];
        run.steps(&mut batch_rng, &schedule, first, chunk)?;
        for (step, &loss) in (first..).zip(chunk.iter()) {
            if let Err(why) = watch.step(step, loss) {
                return Err(diverged(step, watch.blamed_step(step), &why));
            }
            summary.push(loss);
            let mut val = None;
            if step == last {
                if checked(step) {
                    let smoothed = watch.smoothed();
                    progress.update(step + 1, steps_per_s(step + 1, report_time), loss, smoothed);
                    // A blown-up model can keep a finite loss (softmax and tanh saturate), so
                    // the parameters themselves are checked too.
                    if let Some(name) = run.non_finite_tensor() {
                        let why = format!("{name} holds NaN or infinity");
                        return Err(diverged(step, watch.blamed_update(step), &why));
                    }
                }
                if reported(step) {
                    let t = Instant::now();
                    let v = run.val_loss().unwrap_or(f64::NAN);
                    summary.push_val(step, v);
                    val = Some(v);
                    let mut line = format!(
                        "{step:>7}/{}: loss {loss:.4} (smoothed {:.4}), val {v:.4}, lr {}",
                        args.steps,
                        watch.smoothed(),
                        fmt_num(schedule.at(step))
                    );
                    if step > 0 {
                        let rate = steps_per_s(step + 1, report_time);
                        let eta = (args.steps - step - 1) as f64 / rate;
                        write!(line, ", {rate:.0} steps/s, ETA {eta:.1} s")?;
                    }
                    progress.println(&mut out, &line)?;
                    report_time += t.elapsed();
                }
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
        first = last + 1;
    }
    progress.finish();
    let train_time = loop_started.elapsed().saturating_sub(report_time);
    let last_step = args.steps - 1;

    // makemore part 4: after training, batch-norm statistics over the whole training split.
    run.calibrate()?;
    if let Some((j, mean, var)) = run.non_finite_statistic() {
        return Err(diverged(
            last_step,
            watch.blamed_step(last_step),
            &format!(
                "calibration gives batch-norm statistics beyond f32 (unit {j}: mean {mean:e}, variance {var:e})"
            ),
        ));
    }
    // The model as it will be written, loaded back through the loader `sample` uses: what is
    // written is a model charmlp itself accepts, and what is reported below is that model.
    let (seed, split_seed) = (args.seed.to_string(), recipe.split_seed.to_string());
    let provenance = [
        ("seed", seed.as_str()),
        ("split_seed", split_seed.as_str()),
        ("split", SPLIT_RULE),
        ("data_sha256", data_sha256.as_str()),
    ];
    let bytes = run.model_bytes(&provenance);
    let model = from_bytes(&bytes, None).map_err(|e| {
        let why = format!("the trained model is unusable: {e:#}");
        diverged(last_step, watch.blamed_step(last_step), &why)
    })?;
    let [train_loss, val_loss, test_loss]: [f64; 3] = splits
        .each_ref()
        .map(|split| model.loss(split).unwrap_or(f64::NAN));
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
    out.line(format_args!(
        "loss: train {train_loss:.4} val {val_loss:.4} test {test_loss:.4}"
    ))?;

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
        model.as_ref(),
        20,
        args.seed,
        charmlp_core::Temperature::ONE,
    )?;
    out.line(format_args!(
        "time: {:.2} s in all; training {:.2} s, {:.2} µs/step",
        started.elapsed().as_secs_f64(),
        train_time.as_secs_f64(),
        train_time.as_secs_f64() * 1e6 / args.steps as f64
    ))?;
    out.flush()
}
