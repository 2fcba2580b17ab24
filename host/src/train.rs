//! `charmlp train`: the default recipe, reported as it runs.
//!
//! Order of work, so that a failure anywhere loses nothing: every output path is checked
//! first; training stops at divergence (see [`crate::diverge`]); the trained model is written
//! to bytes and loaded back through the same loader `sample` uses before anything is replaced;
//! the curve and the plot are committed next, and the model last, so a failing secondary output
//! leaves the previous model intact.
//!
//! With `--work-dir` the run keeps checkpoints there at every evaluation ([`crate::workdir`]);
//! Ctrl-C or SIGTERM stops it at the next stretch of steps with a checkpoint
//! ([`crate::interrupt`]), and `--resume` continues it exactly.
//!
//! Nothing here is generic over the model's shape: the run is a `dyn Training` from
//! [`crate::shapes`], and the finished model is reported through the `dyn Loaded` read back.

use crate::checkpoint::Checkpoint;
use crate::cli::TrainArgs;
use crate::data::{example_count, read_words, split_words};
use crate::diverge::{self, Watch};
use crate::interrupt::{Interrupted, Signal, Stop};
use crate::modelfile::from_bytes;
use crate::outputs::{self, Output};
use crate::plot::LossSummary;
use crate::progress::{Progress, eta_text};
use crate::recipe::{self, Recipe};
use crate::shapes::{Training, training};
use crate::stdout::Out;
use crate::words;
use crate::workdir::{self, CURVE_HEADER, Curve, WorkDir};
use crate::{Stream, count, fmt_num, json_f32, json_number, shown, stream};
use anyhow::{Context, Result, anyhow, bail};
use serde_json::json;
use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// Steps between checks of every parameter for NaN and infinity.
const PARAM_CHECK_EVERY: u64 = 1024;

/// The checked output paths of a run: the model, the curve and plot if asked for, and the
/// work directory's files.
struct Targets {
    model: Output,
    curve: Option<Output>,
    plot: Option<Output>,
    work: Option<WorkDir>,
}

fn targets(args: &TrainArgs) -> Result<Targets> {
    let inputs = args.reading.inputs();
    let mut outs = vec![("--out", args.out.as_path())];
    outs.extend(args.curve.iter().map(|p| ("--curve", p.as_path())));
    outs.extend(args.plot.iter().map(|p| ("--plot", p.as_path())));
    let work_paths = args.work_dir.as_deref().map(workdir::paths);
    if let Some(dir) = &args.work_dir {
        workdir::prepare(dir, args.resume)?;
    }
    for path in work_paths.iter().flatten() {
        outs.push(("--work-dir", path.as_path()));
    }
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
        work: match &args.work_dir {
            Some(dir) => Some(WorkDir {
                dir: dir.clone(),
                last: next()?,
                best: next()?,
                curve: next()?,
                _lock: workdir::lock(dir)?,
            }),
            None => None,
        },
    })
}

/// Where a run's curve goes as it runs: the work directory's, or `--curve`'s temporary file.
enum CurveSink<'a> {
    None,
    Pending(crate::outputs::Pending<'a>),
    Work(Curve),
}

impl CurveSink<'_> {
    fn write(&mut self, row: &str) -> Result<()> {
        match self {
            CurveSink::None => Ok(()),
            CurveSink::Pending(p) => p.write_all(row.as_bytes()),
            CurveSink::Work(c) => c.write(row),
        }
    }
}

/// What watches a run, rebuilt on resume by replaying its curve: the divergence watch and the
/// plot's summary.
fn replay(rows: &str, watch: &mut Watch, summary: &mut LossSummary, steps: u64) -> Result<()> {
    let mut lines = rows.lines();
    if lines.next() != Some(CURVE_HEADER.trim_end()) {
        bail!(
            "its curve does not start with the header {:?}",
            CURVE_HEADER.trim_end()
        );
    }
    let mut expected = 0;
    for line in lines {
        let Some((step, loss, val)) = workdir::parse_row(line) else {
            let start: String = line.chars().take(40).collect();
            bail!("its curve has a row that is not step,loss,val_loss: {start:?}…");
        };
        if step != expected {
            bail!(
                "its curve skips from step {} to {step}",
                expected.wrapping_sub(1)
            );
        }
        watch
            .step(step, loss)
            .map_err(|why| anyhow!("its curve's loss at step {step}: {why}"))?;
        summary.push(loss);
        if let Some(v) = val {
            summary.push_val(step, v);
        }
        expected += 1;
    }
    if expected != steps {
        bail!("its curve holds {expected} steps; the checkpoint holds {steps}");
    }
    Ok(())
}

/// The command that resumes this run: the one given, with `--resume`.
fn resume_command() -> String {
    // Arguments that are not UTF-8 (a path, say) are shown with U+FFFD: a hint, not a panic.
    let mut args: Vec<String> = std::env::args_os()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    if let Some(first) = args.first_mut() {
        *first = "charmlp".into();
    }
    if !args.iter().any(|a| a == "--resume") {
        args.push("--resume".into());
    }
    shell_words::join(args)
}

/// How the words were split, for the model file's metadata.
pub const SPLIT_RULE: &str =
    "random.seed(split_seed); random.shuffle(words); 80/10/10 by words (makemore's)";

/// The model file's metadata that says where the model came from: its seeds, how its words were
/// read and split, and their hash (see [`crate::provenance`], which reads it back).
pub fn provenance(
    recipe: &Recipe,
    lowercase: bool,
    skip_bad_words: bool,
    data_sha256: &str,
) -> Vec<(&'static str, String)> {
    vec![
        ("seed", recipe.seed.to_string()),
        ("split_seed", recipe.split_seed.to_string()),
        ("lowercase", lowercase.to_string()),
        ("skip_bad_words", skip_bad_words.to_string()),
        ("split", SPLIT_RULE.to_string()),
        ("data_sha256", data_sha256.to_string()),
    ]
}

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
    crate::sha256_hex(hasher)
}

/// Trains with the flags' recipe. Not generic: the shape is chosen once, in
/// [`crate::shapes::training`], and only [`Training::steps`] runs per shape.
pub fn run(args: &TrainArgs) -> Result<()> {
    let started = Instant::now();
    let recipe = Recipe::from_args(args)?;
    let (shape, batch) = (recipe.shape, recipe.batch);
    let targets = targets(args)?;
    if let Some(work) = &targets.work
        && !args.resume
        && work.holds_a_run()
    {
        bail!(
            "--work-dir {} already holds a run; give --resume to continue it, or another \
             --work-dir to start a new one",
            shown(&work.dir)
        );
    }
    let resumed = match &targets.work {
        Some(work) if args.resume => Some(work.read_last()?),
        _ => None,
    };
    if let (Some(ckpt), Some(work)) = (&resumed, &targets.work) {
        // The counts must agree with the recipe: a checkpoint past its run, or an optimizer
        // that took another number of updates, would not continue this run.
        let updates = if recipe.optimizer == charmlp_core::Optimizer::Sgd {
            0
        } else {
            ckpt.step
        };
        if ckpt.step > recipe.steps || ckpt.optim_updates != updates {
            bail!(
                "{}: its step ({}) or optimizer updates ({}) do not fit a run of {} steps; put \
                 back a copy, or start again with another --work-dir",
                shown(work.last.path()),
                ckpt.step,
                ckpt.optim_updates,
                recipe.steps
            );
        }
    }
    if let (Some(ckpt), Some(work)) = (&resumed, &targets.work)
        && let Some(diff) = ckpt.recipe.differences(&recipe)
    {
        bail!(
            "{}: the run was started with other flags ({diff}); resume it with the flags it \
             was started with",
            shown(work.last.path())
        );
    }
    let mut out = Out::new(true).json(args.json);
    let source = args.reading.source();
    let rules = args.reading.rules();
    let words = read_words(args.reading.data.as_deref(), &rules)?;
    let symbols = words.symbols();
    let n_words = words.words.len();
    let skipped = words.skipped;
    let alphabet = words::shown_chars(&words.chars);
    let chars = words.chars;
    let data_sha256 = data_hash(&words.words, &chars);
    if let (Some(ckpt), Some(work)) = (&resumed, &targets.work)
        && ckpt.data_sha256 != data_sha256
    {
        bail!(
            "{}: the run was trained on other words than {source} gives (their SHA-256 \
             differs); resume it with its own --data and reading flags",
            shown(work.last.path())
        );
    }
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

    if let Some(n) = args.eval_examples {
        let n = usize::try_from(n).unwrap_or(usize::MAX);
        let total = run.keep_val_examples(n, &mut stream(recipe.split_seed, Stream::EvalExamples));
        if n < total {
            out.line(format_args!(
                "evaluating during training on {n} of the {total} validation examples (--eval-examples)"
            ))?;
        }
    }
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
    out.event(json!({
        "event": "start",
        "data": source,
        "words": n_words,
        "skipped": skipped,
        "split_words": [w_train, w_val, w_test],
        "split_examples": [e_train, e_val, e_test],
        "symbols": symbols,
        "parameters": run.param_count(),
        "recipe": recipe.flags_json(),
    }))?;
    // The model file's provenance: how to find its data and split again.
    let provenance_values = provenance(
        &recipe,
        args.reading.lowercase,
        args.reading.skip_bad_words,
        &data_sha256,
    );
    let provenance: Vec<(&str, &str)> = provenance_values
        .iter()
        .map(|(k, v)| (*k, v.as_str()))
        .collect();

    let mut summary = LossSummary::new();
    let mut watch = Watch::new(symbols);
    let mut best: Option<(u64, f64)> = None;
    let (mut batch_rng, mut first, mut curve) = match (&resumed, &targets.work) {
        (Some(ckpt), Some(work)) => {
            run.restore(&ckpt.model, ckpt.optim_updates, &ckpt.optim)
                .with_context(|| shown(work.last.path()))?;
            let (curve, rows) =
                Curve::resume(work.curve.path(), ckpt.curve_len, &ckpt.curve_sha256)?;
            replay(&rows, &mut watch, &mut summary, ckpt.step)
                .with_context(|| shown(work.last.path()))?;
            best = ckpt.best;
            out.event(json!({"event": "resumed", "step": ckpt.step}))?;
            out.line(format_args!(
                "resumed: {} at step {} of {}",
                shown(work.last.path()),
                ckpt.step,
                args.steps
            ))?;
            (ckpt.rng.clone(), ckpt.step, CurveSink::Work(curve))
        }
        (_, work) => {
            run.init(&mut stream(args.seed, Stream::Init));
            let mut curve = match (work, &targets.curve) {
                (Some(work), _) => CurveSink::Work(Curve::create(work.curve.path())?),
                (None, Some(target)) => CurveSink::Pending(target.begin()?),
                (None, None) => CurveSink::None,
            };
            curve.write(CURVE_HEADER)?;
            (stream(args.seed, Stream::Batches), 0, curve)
        }
    };
    let stop = Stop::install().context("cannot install the Ctrl-C handler")?;
    let progress = Progress::new(args.steps);
    let mut report_time = Duration::ZERO;
    let mut row = String::new();
    let mut losses = vec![0.0f32; PARAM_CHECK_EVERY as usize];
    let loop_started = Instant::now();
    let resumed_at = first;
    // Steps per second of training time: the validation passes are not steps.
    let steps_per_s = |done: u64, report_time: Duration| {
        let training = loop_started.elapsed().saturating_sub(report_time);
        (done - resumed_at) as f64 / training.as_secs_f64().max(1e-9)
    };
    let default_lr = recipe::default_lr(&recipe.optimizer);
    let diverged = |step: u64, blamed: u64, why: &str| {
        progress.finish();
        let mut message = diverge::message(step, blamed, why, &schedule, default_lr);
        if let Some(work) = &targets.work {
            // The work directory keeps the run as it was before it blew up: a run with another
            // learning rate is another run, in another directory.
            message.push_str(&format!(
                " {} keeps the run up to its last checkpoint; start the new one with another \
                 --work-dir.",
                shown(&work.dir)
            ));
        }
        anyhow!(message)
    };
    let checked = |step: u64| step.is_multiple_of(PARAM_CHECK_EVERY) || step + 1 == args.steps;
    let reported = |step: u64| step.is_multiple_of(args.eval_every) || step + 1 == args.steps;
    // A checkpoint of the run after `done` steps, written as the last one (and the best one).
    let checkpoint = |run: &dyn Training,
                      rng: &rand_xoshiro::Xoshiro256PlusPlus,
                      curve: &mut CurveSink,
                      done: u64,
                      best: Option<(u64, f64)>,
                      is_best: bool|
     -> Result<()> {
        let (Some(work), CurveSink::Work(c)) = (&targets.work, curve) else {
            return Ok(());
        };
        let (optim_updates, buffers) = run.optim_state();
        let (curve_len, curve_sha256) = c.sync()?;
        let ckpt = Checkpoint {
            step: done,
            recipe,
            data_sha256: data_sha256.clone(),
            rng: rng.clone(),
            curve_len,
            curve_sha256,
            best,
            model: run.model_bytes(&provenance),
            optim_updates,
            optim: buffers
                .into_iter()
                .map(|(n, v)| (n.to_string(), v))
                .collect(),
        };
        work.write(&ckpt, is_best)
    };
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
                if checked(step) || reported(step) {
                    let smoothed = watch.smoothed();
                    progress.update(
                        step + 1,
                        args.steps,
                        steps_per_s(step + 1, report_time),
                        smoothed,
                    );
                    // A blown-up model can keep a finite loss (softmax and tanh saturate), so
                    // the parameters themselves are checked too, and before every checkpoint.
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
                    // makemore's i/steps, but the last line reads steps/steps: the run is
                    // done, and its validation loss is that of the finished model.
                    let shown_step = if step + 1 == args.steps {
                        args.steps
                    } else {
                        step
                    };
                    let mut line = format!(
                        "{shown_step:>7}/{}: loss {loss:.4} (smoothed {:.4}), val {v:.4}, lr {}",
                        args.steps,
                        watch.smoothed(),
                        fmt_num(schedule.at(step))
                    );
                    let mut rate = None;
                    if step > resumed_at {
                        let r = steps_per_s(step + 1, report_time);
                        let eta = (args.steps - step - 1) as f64 / r;
                        write!(line, ", {r:.0} steps/s, ETA {}", eta_text(eta))?;
                        rate = Some(r);
                    }
                    progress.println(&mut out, &line)?;
                    out.event(json!({
                        "event": "eval",
                        "step": step,
                        "loss": json_f32(loss),
                        "smoothed": json_f32(watch.smoothed()),
                        "val": json_number(v),
                        "lr": json_f32(schedule.at(step)),
                        "steps_per_s": rate,
                    }))?;
                    report_time += t.elapsed();
                }
            }
            row.clear();
            write!(row, "{step},{loss},")?;
            if let Some(v) = val {
                write!(row, "{v}")?;
            }
            row.push('\n');
            curve.write(&row)?;
            if let Some(v) = val {
                let t = Instant::now();
                let is_best = best.is_none_or(|(_, b)| v < b);
                if is_best {
                    best = Some((step + 1, v));
                }
                checkpoint(
                    run.as_ref(),
                    &batch_rng,
                    &mut curve,
                    step + 1,
                    best,
                    is_best,
                )?;
                report_time += t.elapsed();
            }
        }
        first = last + 1;
        if let Some(signal) = stop.requested() {
            progress.finish();
            return Err(interrupted(signal, &targets, first, args.steps, |done| {
                checkpoint(run.as_ref(), &batch_rng, &mut curve, done, best, false)
            }));
        }
    }
    progress.finish();
    let train_time = loop_started.elapsed().saturating_sub(report_time);
    let last_step = args.steps - 1;

    let Finished {
        bytes,
        model,
        losses: [train_loss, val_loss, test_loss],
    } = finish(run.as_mut(), &splits, &provenance, watch.limit())?
        .map_err(|why| diverged(last_step, watch.blamed_step(last_step), &why))?;
    out.line(format_args!(
        "loss: train {train_loss:.4} val {val_loss:.4} test {test_loss:.4}"
    ))?;
    let done = json!({
        "event": "done",
        "train": json_number(train_loss),
        "val": json_number(val_loss),
        "test": json_number(test_loss),
        "model": args.out.to_string_lossy(),
        "bytes": bytes.len(),
        "best": best.map(|(done, val)| json!({"steps_done": done, "val": json_number(val)})),
        "train_seconds": train_time.as_secs_f64(),
        "us_per_step": train_time.as_secs_f64() * 1e6 / (args.steps - resumed_at).max(1) as f64,
    });

    // Everything that can fail without touching a file comes first: drawing the plot.
    let svg = match &targets.plot {
        Some(plot) => Some(crate::plot::loss_svg(plot.path(), &summary)?),
        None => None,
    };
    match (curve, &targets.curve) {
        (CurveSink::Pending(c), Some(target)) => {
            c.commit()?;
            out.line(format_args!("curve: wrote {}", shown(target.path())))?;
        }
        (CurveSink::Work(mut c), Some(target)) => {
            c.sync()?;
            let rows = std::fs::read(c_path(&targets))?;
            target.write(&rows)?;
            out.line(format_args!("curve: wrote {}", shown(target.path())))?;
        }
        _ => {}
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
    if let (Some(work), Some((step, v))) = (&targets.work, best) {
        out.line(format_args!(
            "checkpoints: {} (best: val {v:.4} after {step} steps), {}",
            shown(work.best.path()),
            shown(work.last.path())
        ))?;
    }

    // makemore's report: which sampled names are words of the data, and of which split.
    out.line("names:")?;
    let marks = crate::names::Marks::new(&splits, &chars);
    let tally = crate::names::print(
        &mut out,
        crate::names::Drawn::F32(model.as_ref(), &charmlp_core::Sampling::PLAIN),
        20,
        args.seed,
        Some(&marks),
        false,
    )?;
    out.line(tally.summary())?;
    out.event(done)?;
    out.event(json!({
        "event": "names",
        "names": tally.names.iter().map(|(name, mark)| json!({"name": name, "mark": mark})).collect::<Vec<_>>(),
        "new": tally.new,
        "drawn": tally.drawn,
    }))?;
    out.line(format_args!(
        "time: {:.2} s in all; training {:.2} s, {:.2} µs/step",
        started.elapsed().as_secs_f64(),
        train_time.as_secs_f64(),
        train_time.as_secs_f64() * 1e6 / (args.steps - resumed_at).max(1) as f64
    ))?;
    out.flush()?;
    if let Some(signal) = stop.requested() {
        // Past the last step a stop has nothing left to save: the run finished its outputs.
        eprintln!(
            "note: {} came after the last step; the run finished and wrote its outputs",
            signal.name()
        );
    }
    Ok(())
}

/// The work directory's curve path (there is one whenever the curve goes there).
fn c_path(targets: &Targets) -> PathBuf {
    targets
        .work
        .as_ref()
        .map_or_else(PathBuf::new, |w| w.curve.path().to_path_buf())
}

/// A finished run's model: written, read back, and scored on the splits.
pub struct Finished {
    /// The model file's bytes.
    pub bytes: Vec<u8>,
    /// The model as the loader `sample` uses reads them back.
    pub model: Box<dyn crate::shapes::Loaded>,
    /// Train, val and test loss.
    pub losses: [f64; 3],
}

/// Ends a run as `train` and every sweep run end it: makemore part 4's batch-norm statistics
/// over the whole training split, then the model written with `provenance` and read back
/// through the loader `sample` uses (what is written is a model charmlp accepts, and what is
/// reported is that model), scored on `splits`. `Ok(Err(why))`: the run diverged after all
/// (statistics beyond f32, an unusable model, a training loss above `limit`).
pub fn finish(
    run: &mut dyn Training,
    splits: &crate::data::WordSplits,
    provenance: &[(&str, &str)],
    limit: f32,
) -> Result<std::result::Result<Finished, String>> {
    run.calibrate()?;
    if let Some((j, mean, var)) = run.non_finite_statistic() {
        return Ok(Err(format!(
            "calibration gives batch-norm statistics beyond f32 (unit {j}: mean {mean:e}, \
             variance {var:e})"
        )));
    }
    let bytes = run.model_bytes(provenance);
    let model = match from_bytes(&bytes, None) {
        Ok(model) => model,
        Err(e) => return Ok(Err(format!("the trained model is unusable: {e:#}"))),
    };
    let losses = splits
        .each_ref()
        .map(|split| model.loss(split).unwrap_or(f64::NAN));
    if losses[0].is_nan() || losses[0] > f64::from(limit) {
        return Ok(Err(format!(
            "the calibrated model's training loss is {:.4}, above {limit:.2}",
            losses[0]
        )));
    }
    Ok(Ok(Finished {
        bytes,
        model,
        losses,
    }))
}

/// The error of a run stopped by `signal` after `done` steps: with a work directory, a
/// checkpoint is written first and the message says how to resume.
fn interrupted(
    signal: Signal,
    targets: &Targets,
    done: u64,
    steps: u64,
    checkpoint: impl FnOnce(u64) -> Result<()>,
) -> anyhow::Error {
    let message = match &targets.work {
        Some(work) => match checkpoint(done) {
            Ok(()) => format!(
                "interrupted by {} with {done} of {steps} steps done: the run is in {}; resume \
                 it with\n  {}",
                signal.name(),
                shown(work.last.path()),
                resume_command()
            ),
            Err(e) => format!(
                "interrupted by {} with {done} of {steps} steps done, and the checkpoint could \
                 not be written ({e:#}): {} holds the run as of its last evaluation",
                signal.name(),
                shown(work.last.path())
            ),
        },
        None => format!(
            "interrupted by {} with {done} of {steps} steps done; nothing was written (with \
             --work-dir DIR a run keeps checkpoints, and --resume continues it)",
            signal.name()
        ),
    };
    Interrupted { signal, message }.into()
}
