//! `charmlp sweep`: many training runs over a grid of recipes, one per core, ranked live by
//! validation loss; the best model and every run's result kept in the work directory.
//!
//! - The runs are the product of the lists given (`--lr 0.05,0.1 --hidden 64,200` is four), in
//!   a fixed order; `--runs N` keeps N of them, drawn with `--sweep-seed` (a random search) when
//!   the grid holds more.
//! - `--shard K/N` keeps the runs whose place in that order is K − 1 modulo N: N machines (a
//!   Slurm array, Kubernetes indexed jobs, GNU parallel) given K = 1..N share the sweep with no
//!   run done twice, and `charmlp sweep --merge` ranks their `results.jsonl` files together.
//! - A run is exactly `charmlp train` with its flags (same seeds, same numbers): its result
//!   line holds the command that retrains its model bit for bit.
//! - Results are appended to `results.jsonl` as runs end; a sweep started again in the same
//!   directory skips the runs it holds, so a stopped sweep (Ctrl-C: the runs under way stop, the
//!   finished ones are kept) goes on where it was.

use crate::cli::SweepArgs;
use crate::data::{BUILTIN_NAME, WordSplits, input_name, read_words, split_words};
use crate::diverge::Watch;
use crate::interrupt::{Interrupted, Stop};
use crate::modelfile::from_bytes;
use crate::outputs::{self, Output};
use crate::recipe::{Recipe, Rule, ScheduleKind};
use crate::shapes::{ModelShape, training};
use crate::stdout::Out;
use crate::train::{data_hash, provenance};
use crate::words::Rules;
use crate::{Stream, count, shown, stream};
use anyhow::{Context, Result, anyhow, bail};
use charmlp_core::{Decay, Optimizer, Schedule};
use serde_json::{Value, json};
use std::io::{BufRead, Write};
use std::path::Path;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

/// The file of results in a sweep's work directory, one JSON object a line.
pub const RESULTS: &str = "results.jsonl";
/// The best model of the sweep so far.
pub const BEST: &str = "best.safetensors";
/// Runs shown in the leaderboard.
const LEADERS: usize = 5;

/// The runs of a sweep: the product of the lists, in order (the last list varies fastest).
/// Each run's learning rate ends at a tenth of its start, halfway (step) or at the end
/// (cosine), as `charmlp train`'s defaults have it.
pub fn grid(args: &SweepArgs) -> Vec<Recipe> {
    let steps = args.steps;
    let base = Recipe {
        shape: ModelShape::DEFAULT,
        batch: charmlp_core::BATCH,
        steps,
        optimizer: Optimizer::Sgd,
        schedule: Schedule::step(0.1, steps.div_ceil(2), 0.01),
        seed: crate::cli::DEFAULT_SEED,
        split_seed: args.split_seed,
        eval_every: crate::cli::DEFAULT_EVAL_EVERY,
        eval_examples: None,
    };
    let mut recipes = vec![base];
    expand(&mut recipes, &args.optimizer, |r, rule| {
        r.optimizer = match rule {
            Rule::Sgd => Optimizer::Sgd,
            Rule::Momentum | Rule::Nesterov => Optimizer::Momentum {
                momentum: 0.9,
                nesterov: rule == Rule::Nesterov,
            },
            Rule::Adamw => Optimizer::ADAMW_MAKEMORE,
        }
    });
    expand(&mut recipes, &args.lr, |r, lr| {
        r.schedule.lr = lr;
        r.schedule.lr_final = lr / 10.0;
    });
    expand(&mut recipes, &args.schedule, |r, kind| {
        r.schedule.decay = match kind {
            ScheduleKind::Step => Decay::Step {
                at: steps.div_ceil(2),
            },
            ScheduleKind::Cosine => Decay::Cosine { steps },
        }
    });
    expand(&mut recipes, &args.warmup, |r, w| r.schedule.warmup = w);
    expand(&mut recipes, &args.embed, |r, e| r.shape.embed = e);
    expand(&mut recipes, &args.context, |r, t| r.shape.context = t);
    expand(&mut recipes, &args.hidden, |r, h| r.shape.hidden = h);
    expand(&mut recipes, &args.batch, |r, b| r.batch = b);
    expand(&mut recipes, &args.seed, |r, seed| r.seed = seed);
    recipes
}

/// Every recipe of `recipes` once for each of `values`, set by `set`.
fn expand<T: Copy>(recipes: &mut Vec<Recipe>, values: &[T], set: impl Fn(&mut Recipe, T)) {
    *recipes = recipes
        .iter()
        .flat_map(|r| {
            values.iter().map(|&v| {
                let mut r = *r;
                set(&mut r, v);
                r
            })
        })
        .collect();
}

/// The runs this invocation does: `--runs` of the grid (all of it, or a random draw without
/// replacement, kept in grid order), then this shard's.
pub fn chosen(args: &SweepArgs, recipes: Vec<Recipe>) -> Vec<(usize, Recipe)> {
    let mut picked: Vec<(usize, Recipe)> = recipes.into_iter().enumerate().collect();
    if let Some(n) = args.runs.map(|n| usize::try_from(n).unwrap_or(usize::MAX))
        && n < picked.len()
    {
        let mut rng = stream(args.sweep_seed, Stream::Init);
        for i in 0..n {
            let j = i + crate::below(&mut rng, (picked.len() - i) as u64) as usize;
            picked.swap(i, j);
        }
        picked.truncate(n);
        picked.sort_by_key(|(i, _)| *i);
    }
    let (k, of) = args.shard.unwrap_or((1, 1));
    picked
        .into_iter()
        .enumerate()
        .filter(|(place, _)| place % of == k - 1)
        .map(|(_, run)| run)
        .collect()
}

/// The `charmlp train` command of a recipe (with the sweep's data flags).
fn command(recipe: &Recipe, args: &SweepArgs) -> String {
    let mut words = vec!["charmlp".to_string(), "train".to_string()];
    if let Some(data) = &args.data {
        words.push("--data".into());
        words.push(data.to_string_lossy().into_owned());
    }
    if args.lowercase {
        words.push("--lowercase".into());
    }
    for (flag, value) in recipe.flags() {
        words.push(flag.to_string());
        words.push(value);
    }
    shell_words::join(words)
}

/// One run's outcome.
struct Outcome {
    losses: Option<[f64; 3]>,
    /// Why the run has no model (divergence, an unusable model).
    failed: Option<String>,
    bytes: Vec<u8>,
    seconds: f64,
}

/// Trains `recipe` as `charmlp train` would, stopping early if `stop` asks.
fn train_one(
    recipe: &Recipe,
    chars: &[char],
    splits: &WordSplits,
    provenance: &[(&str, &str)],
    stop: &Stop,
) -> Result<Option<Outcome>> {
    let started = Instant::now();
    let mut run = training(recipe.shape, chars, recipe.batch, recipe.optimizer, splits)?;
    run.init(&mut stream(recipe.seed, Stream::Init));
    let mut rng = stream(recipe.seed, Stream::Batches);
    let mut watch = Watch::new(chars.len() + 1);
    let mut losses = vec![0.0f32; 1024];
    let mut first = 0;
    let failed = |why: String| Outcome {
        losses: None,
        failed: Some(why),
        bytes: Vec::new(),
        seconds: started.elapsed().as_secs_f64(),
    };
    while first < recipe.steps {
        if stop.requested().is_some() {
            return Ok(None);
        }
        let n = (recipe.steps - first).min(losses.len() as u64) as usize;
        run.steps(&mut rng, &recipe.schedule, first, &mut losses[..n])?;
        for (step, &loss) in (first..).zip(&losses[..n]) {
            if let Err(why) = watch.step(step, loss) {
                return Ok(Some(failed(format!("diverged at step {step}: {why}"))));
            }
        }
        if let Some(name) = run.non_finite_tensor() {
            return Ok(Some(failed(format!(
                "diverged: {name} holds NaN or infinity"
            ))));
        }
        first += n as u64;
    }
    run.calibrate()?;
    if run.non_finite_statistic().is_some() {
        return Ok(Some(failed(
            "calibration gives statistics beyond f32".into(),
        )));
    }
    let bytes = run.model_bytes(provenance);
    let model = match from_bytes(&bytes, None) {
        Ok(model) => model,
        Err(e) => {
            return Ok(Some(failed(format!(
                "the trained model is unusable: {e:#}"
            ))));
        }
    };
    let losses = splits
        .each_ref()
        .map(|split| model.loss(split).unwrap_or(f64::NAN));
    Ok(Some(Outcome {
        losses: Some(losses),
        failed: None,
        bytes,
        seconds: started.elapsed().as_secs_f64(),
    }))
}

/// The validation loss of a result line, for ranking (a failed run ranks last).
fn val_of(result: &Value) -> f64 {
    result["val"].as_f64().unwrap_or(f64::INFINITY)
}

/// The leaderboard: the best `LEADERS` results by validation loss.
fn leaderboard(results: &[Value], total: usize) -> String {
    let mut ranked: Vec<&Value> = results.iter().collect();
    ranked.sort_by(|a, b| val_of(a).total_cmp(&val_of(b)));
    let mut text = format!("leaderboard, {} of {total} runs:", results.len());
    for (place, r) in ranked.iter().take(LEADERS).enumerate() {
        let val = r["val"]
            .as_f64()
            .map_or_else(|| "  —   ".to_string(), |v| format!("{v:.4}"));
        text.push_str(&format!(
            "\n  {}. val {val}  {}",
            place + 1,
            r["summary"].as_str().unwrap_or("")
        ));
    }
    text
}

/// The flags whose values differ between the runs of `recipes` (all of them if none does):
/// what tells the runs of a leaderboard apart.
fn varying(recipes: &[Recipe]) -> Vec<&'static str> {
    let all: Vec<Vec<(&'static str, String)>> = recipes.iter().map(Recipe::flags).collect();
    let Some(first) = all.first() else {
        return Vec::new();
    };
    let differ: Vec<&'static str> = first
        .iter()
        .map(|(flag, _)| *flag)
        .filter(|flag| {
            let value = |flags: &Vec<(&str, String)>| {
                flags
                    .iter()
                    .find(|(f, _)| f == flag)
                    .map(|(_, v)| v.clone())
            };
            all.iter().any(|flags| value(flags) != value(first))
        })
        .collect();
    if differ.is_empty() {
        first.iter().map(|(flag, _)| *flag).collect()
    } else {
        differ
    }
}

/// A recipe in a few words for the leaderboard: its values of the `shown` flags.
fn summary(recipe: &Recipe, shown: &[&str]) -> String {
    recipe
        .flags()
        .iter()
        .filter(|(f, _)| shown.contains(f))
        .map(|(f, v)| format!("{f} {v}"))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Reads the result lines of `path` (none if it does not exist).
fn read_results(path: &Path) -> Result<Vec<Value>> {
    let file = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e).with_context(|| format!("{}: cannot read it", shown(path))),
    };
    let mut results = Vec::new();
    for (i, line) in std::io::BufReader::new(file).lines().enumerate() {
        let line = line.with_context(|| format!("{}: cannot read it", shown(path)))?;
        if line.trim().is_empty() {
            continue;
        }
        let value: Value = serde_json::from_str(&line).map_err(|e| {
            anyhow!(
                "{}:{}: not a result line ({e}); a sweep's results.jsonl holds one JSON object a line",
                shown(path),
                i + 1
            )
        })?;
        if !value.is_object() || value["command"].as_str().is_none() {
            bail!(
                "{}:{}: not a result line of charmlp sweep (no \"command\")",
                shown(path),
                i + 1
            );
        }
        results.push(value);
    }
    Ok(results)
}

/// `charmlp sweep --merge FILES…`: every result of the files, ranked by validation loss.
fn merge(args: &SweepArgs) -> Result<()> {
    let mut results = Vec::new();
    for path in &args.merge {
        for mut r in read_results(path)? {
            r["file"] = json!(path.to_string_lossy());
            results.push(r);
        }
    }
    results.sort_by(|a, b| val_of(a).total_cmp(&val_of(b)));
    let mut out = Out::new(false).json(args.json);
    for (place, r) in results.iter().enumerate() {
        out.event(r.clone())?;
        let val = r["val"]
            .as_f64()
            .map_or_else(|| "—".to_string(), |v| format!("{v:.4}"));
        out.line(format_args!(
            "{:>3}. val {val}  {}  ({})\n     {}",
            place + 1,
            r["summary"].as_str().unwrap_or(""),
            r["file"].as_str().unwrap_or(""),
            r["command"].as_str().unwrap_or("")
        ))?;
    }
    out.flush()
}

pub fn run(args: &SweepArgs) -> Result<()> {
    if !args.merge.is_empty() {
        return merge(args);
    }
    let Some(dir) = &args.work_dir else {
        bail!(
            "give --work-dir DIR for the results and the best model, or --merge FILES to rank results"
        );
    };
    crate::workdir::prepare(dir, false)?;
    let _lock = crate::workdir::lock(dir)?;
    let (results_path, best_path) = (dir.join(RESULTS), dir.join(BEST));
    let inputs: Vec<(&str, &Path)> = args.data.iter().map(|d| ("--data", d.as_path())).collect();
    let [best_out, _results_out]: [Output; 2] = outputs::check(
        &inputs,
        &[("--work-dir", &best_path), ("--work-dir", &results_path)],
    )?
    .try_into()
    .map_err(|_| anyhow!("two outputs expected"))?;
    let rules = Rules {
        lowercase: args.lowercase,
        ..Rules::default()
    };
    let words = read_words(args.data.as_deref(), &rules)?;
    let source = args
        .data
        .as_ref()
        .map_or(BUILTIN_NAME.to_string(), |p| input_name(p));
    let chars = words.chars.clone();
    let data_sha256 = data_hash(&words.words, &chars);
    let splits = split_words(words.words, args.split_seed).with_context(|| source.clone())?;
    let recipes = grid(args);
    let grid_size = recipes.len();
    let shown_flags = varying(&recipes);
    let mut todo = chosen(args, recipes);
    let previous = read_results(&results_path)?;
    let done: Vec<String> = previous
        .iter()
        .filter_map(|r| r["command"].as_str().map(str::to_string))
        .collect();
    let planned = todo.len();
    todo.retain(|(_, recipe)| !done.contains(&command(recipe, args)));
    let workers = args.workers.unwrap_or_else(|| {
        std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
    });
    let mut out = Out::new(true).json(args.json);
    out.line(format_args!(
        "sweep: {source}; {} of a grid of {grid_size}{}, {} already done; {} on {}",
        count(planned as u64, "run"),
        args.shard
            .map_or(String::new(), |(k, n)| format!(" (shard {k}/{n})")),
        planned - todo.len(),
        count(todo.len() as u64, "run"),
        count(workers as u64, "worker")
    ))?;
    let stop = Stop::install().context("cannot install the Ctrl-C handler")?;
    let next = AtomicUsize::new(0);
    let state = Mutex::new((previous, out, f64::INFINITY));
    {
        let mut s = state.lock().map_err(|_| anyhow!("a worker failed"))?;
        s.2 = s.0.iter().map(val_of).fold(f64::INFINITY, f64::min);
    }
    let failure: Mutex<Option<anyhow::Error>> = Mutex::new(None);
    std::thread::scope(|scope| {
        for _ in 0..workers.min(todo.len()).max(1) {
            scope.spawn(|| {
                let work = || -> Result<()> {
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        let Some((index, recipe)) = todo.get(i) else {
                            return Ok(());
                        };
                        let values = provenance(recipe, args.lowercase, false, &data_sha256);
                        let prov: Vec<(&str, &str)> =
                            values.iter().map(|(k, v)| (*k, v.as_str())).collect();
                        let Some(outcome) = train_one(recipe, &chars, &splits, &prov, &stop)?
                        else {
                            return Ok(());
                        };
                        let [train, val, test] = outcome.losses.unwrap_or([f64::NAN; 3]);
                        let finite = |x: f64| x.is_finite().then_some(x);
                        let result = json!({
                            "run": index,
                            "shard": args.shard.map(|(k, n)| format!("{k}/{n}")),
                            "train": finite(train),
                            "val": finite(val),
                            "test": finite(test),
                            "failed": outcome.failed,
                            "seconds": outcome.seconds,
                            "steps_per_s": recipe.steps as f64 / outcome.seconds.max(1e-9),
                            "summary": summary(recipe, &shown_flags),
                            "flags": recipe.flags_json(),
                            "command": command(recipe, args),
                        });
                        let mut s = state.lock().map_err(|_| anyhow!("a worker failed"))?;
                        // The best model first, then the result that names it.
                        if val < s.2 {
                            best_out.write(&outcome.bytes)?;
                            s.2 = val;
                        }
                        let mut file = std::fs::OpenOptions::new()
                            .create(true)
                            .append(true)
                            .open(&results_path)
                            .with_context(|| format!("{}: cannot write", shown(&results_path)))?;
                        writeln!(file, "{result}")
                            .and_then(|()| file.sync_data())
                            .with_context(|| format!("{}: cannot write", shown(&results_path)))?;
                        s.0.push(result.clone());
                        let board = leaderboard(&s.0, planned + done.len().min(s.0.len()));
                        s.1.event(result)?;
                        s.1.line(board)?;
                    }
                };
                if let Err(e) = work() {
                    stop_all(&next, todo.len());
                    if let Ok(mut f) = failure.lock() {
                        f.get_or_insert(e);
                    }
                }
            });
        }
    });
    if let Some(e) = failure.lock().ok().and_then(|mut f| f.take()) {
        return Err(e);
    }
    let (results, mut out, best) = state.into_inner().map_err(|_| anyhow!("a worker failed"))?;
    if let Some(signal) = stop.requested() {
        return Err(Interrupted {
            signal,
            message: format!(
                "interrupted by {}: {} of {planned} runs are in {}; run the same command again to \
                 go on",
                signal.name(),
                results.len(),
                shown(&results_path)
            ),
        }
        .into());
    }
    if best.is_finite() {
        out.line(format_args!(
            "best: val {best:.4}, model {}",
            shown(&best_path)
        ))?;
    }
    out.flush()
}

/// Makes every worker's next fetch find no run.
fn stop_all(next: &AtomicUsize, runs: usize) {
    next.fetch_max(runs, Ordering::Relaxed);
}

/// `--shard K/N`: K from 1 to N.
pub fn shard(s: &str) -> Result<(usize, usize), String> {
    let bad = || format!("{s:?}: give K/N with 1 ≤ K ≤ N, e.g. 3/8 for the third of eight");
    let (k, n) = s.split_once('/').ok_or_else(bad)?;
    let (k, n): (usize, usize) = (k.parse().map_err(|_| bad())?, n.parse().map_err(|_| bad())?);
    if k == 0 || n == 0 || k > n {
        return Err(bad());
    }
    Ok((k, n))
}
