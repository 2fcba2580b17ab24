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
use crate::outputs::{self, Output};
use crate::recipe::{Recipe, Rule, ScheduleKind};
use crate::shapes::{ModelShape, training};
use crate::stdout::Out;
use crate::train::{Finished, data_hash, finish, provenance};
use crate::words::Rules;
use crate::{Stream, count, shown, stream};
use anyhow::{Context, Result, anyhow, bail};
use charmlp_core::{Decay, Optimizer, Schedule};
use serde_json::{Value, json};
use std::io::Write;
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
pub fn grid(args: &SweepArgs) -> Result<Vec<Recipe>> {
    let steps = args.steps;
    let size = [
        args.optimizer.len(),
        args.lr.len(),
        args.schedule.len(),
        args.warmup.len(),
        args.embed.len(),
        args.context.len(),
        args.hidden.len(),
        args.batch.len(),
        args.seed.len(),
    ]
    .iter()
    .fold(1usize, |n, &k| n.saturating_mul(k));
    if size > MAX_GRID {
        bail!(
            "the lists give a grid of {size} runs; at most {MAX_GRID}: give fewer values (a \
             random search draws --runs N of a grid)"
        );
    }
    if let Some(&w) = args.warmup.iter().find(|&&w| w >= steps) {
        bail!(
            "--warmup {w} is not below --steps {steps}: that run would never reach its --lr; \
             give warm-ups below --steps"
        );
    }
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
        r.schedule.lr_final = crate::recipe::tenth(lr);
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
    // A value given twice is one run, not two.
    let mut seen = std::collections::HashSet::new();
    recipes.retain(|r| seen.insert(r.flags_json().to_string()));
    Ok(recipes)
}

/// Most runs a grid may hold: a million recipes are a few hundred megabytes.
pub const MAX_GRID: usize = 1_000_000;

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
///
/// The data's path is made absolute, so that the command works from any directory; the decay
/// step is left to `train`'s default (half the steps) where it is that, which `train` accepts
/// for every step count.
fn command(recipe: &Recipe, args: &SweepArgs) -> String {
    let mut words = vec!["charmlp".to_string(), "train".to_string()];
    if let Some(data) = &args.data {
        // `-` (standard input) stays itself; anything else becomes absolute.
        let absolute = if data.as_os_str() == "-" {
            data.clone()
        } else {
            std::path::absolute(data).unwrap_or_else(|_| data.clone())
        };
        words.push("--data".into());
        words.push(absolute.to_string_lossy().into_owned());
    }
    if args.lowercase {
        words.push("--lowercase".into());
    }
    let default_decay = recipe.steps.div_ceil(2).to_string();
    for (flag, value) in recipe.flags() {
        if flag == "--lr-decay-step" && value == default_decay {
            continue;
        }
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
    /// Steps taken (fewer than the recipe's if it diverged).
    steps: u64,
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
    let failed = |why: String, steps: u64| Outcome {
        losses: None,
        failed: Some(why),
        bytes: Vec::new(),
        seconds: started.elapsed().as_secs_f64(),
        steps,
    };
    while first < recipe.steps {
        if stop.requested().is_some() {
            return Ok(None);
        }
        let n = (recipe.steps - first).min(losses.len() as u64) as usize;
        run.steps(&mut rng, &recipe.schedule, first, &mut losses[..n])?;
        for (step, &loss) in (first..).zip(&losses[..n]) {
            if let Err(why) = watch.step(step, loss) {
                return Ok(Some(failed(
                    format!("diverged at step {step}: {why}"),
                    step + 1,
                )));
            }
        }
        if let Some(name) = run.non_finite_tensor() {
            let why = format!("diverged: {name} holds NaN or infinity");
            return Ok(Some(failed(why, first + n as u64)));
        }
        first += n as u64;
    }
    // The end `charmlp train` gives it, divergence checks included: a model the sweep keeps
    // is one its command makes.
    match finish(run.as_mut(), splits, provenance, watch.limit())? {
        Ok(Finished { bytes, losses, .. }) => Ok(Some(Outcome {
            losses: Some(losses),
            failed: None,
            bytes,
            seconds: started.elapsed().as_secs_f64(),
            steps: recipe.steps,
        })),
        Err(why) => Ok(Some(failed(why, recipe.steps))),
    }
}

/// The validation loss of a result line, for ranking (a failed run ranks last).
fn val_of(result: &Value) -> f64 {
    result["val"].as_f64().unwrap_or(f64::INFINITY)
}

/// The leaderboard: the best `LEADERS` results by validation loss.
fn leaderboard(results: &[Value], done: usize, total: usize) -> String {
    let mut ranked: Vec<&Value> = results.iter().collect();
    ranked.sort_by(|a, b| val_of(a).total_cmp(&val_of(b)));
    let mut text = format!("leaderboard, {done} of {total} runs:");
    for (place, r) in ranked.iter().take(LEADERS).enumerate() {
        let val = r["val"]
            .as_f64()
            .map_or_else(|| "  —   ".to_string(), |v| format!("{v:.4}"));
        let failed = r["failed"].as_str().map_or(String::new(), |why| {
            format!(" (failed: {})", printable(why))
        });
        text.push_str(&format!(
            "\n  {}. val {val}  {}{failed}",
            place + 1,
            printable(r["summary"].as_str().unwrap_or(""))
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

/// Most bytes of a results file read: a million results of a kilobyte.
const MAX_RESULTS_BYTES: u64 = 1 << 30;
/// Longest result line read.
const MAX_LINE: usize = 1 << 16;

/// The results of a file.
struct Results {
    lines: Vec<Value>,
    /// Bytes of the file up to its last whole line: a line cut short (a sweep stopped while it
    /// wrote it) is left out and, in a work directory, cut off before the next is appended.
    whole: u64,
}

/// Reads the result lines of `path` (`-`: standard input); a missing file is no results if
/// `missing_ok` (a work directory's first sweep).
fn read_results(path: &Path, missing_ok: bool) -> Result<Results> {
    if missing_ok && path.symlink_metadata().is_err() {
        return Ok(Results {
            lines: Vec::new(),
            whole: 0,
        });
    }
    let (name, bytes) = crate::data::read_at_most(path, MAX_RESULTS_BYTES, "results file")?;
    if bytes.len() as u64 > MAX_RESULTS_BYTES {
        bail!("{name}: longer than {MAX_RESULTS_BYTES} bytes; not a sweep's results.jsonl");
    }
    let text = String::from_utf8_lossy(&bytes);
    let mut lines = Vec::new();
    let mut whole = 0;
    for (i, line) in text.split_inclusive('\n').enumerate() {
        let complete = line.ends_with('\n');
        let body = line.trim();
        let at = || format!("{name}:{}", i + 1);
        if body.len() > MAX_LINE {
            bail!(
                "{}: a line of more than {MAX_LINE} bytes; not a result line",
                at()
            );
        }
        let parsed = serde_json::from_str::<Value>(body);
        if !complete && parsed.is_err() {
            eprintln!(
                "note: {}: the last line was cut short (a sweep stopped while writing it); it is \
                 left out",
                at()
            );
            break;
        }
        whole += line.len() as u64;
        if body.is_empty() {
            continue;
        }
        let value = parsed.map_err(|e| {
            anyhow!(
                "{}: not a result line ({e}); a sweep's results.jsonl holds one JSON object a \
                 line: remove this one",
                at()
            )
        })?;
        if !value.is_object() || value["command"].as_str().is_none() {
            bail!(
                "{}: not a result line of charmlp sweep (no \"command\"); remove it",
                at()
            );
        }
        lines.push(value);
    }
    Ok(Results { lines, whole })
}

/// Text from a results file as the terminal may show it: control characters escaped.
fn printable(text: &str) -> String {
    shown(Path::new(text))
}

/// `charmlp sweep --merge FILES…`: every result of the files, ranked by validation loss. A
/// file named twice is read once.
fn merge(args: &SweepArgs) -> Result<()> {
    let mut results = Vec::new();
    let mut seen = Vec::new();
    for path in &args.merge {
        let identity = std::fs::canonicalize(path).ok();
        if identity.is_some() && seen.contains(&identity) {
            eprintln!("note: {} is named twice; read once", shown(path));
            continue;
        }
        seen.push(identity);
        for mut r in read_results(path, false)?.lines {
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
        let text = |key: &str| printable(r[key].as_str().unwrap_or(""));
        out.line(format_args!(
            "{:>3}. val {val}  {}  ({})\n     {}",
            place + 1,
            text("summary"),
            text("file"),
            text("command")
        ))?;
    }
    out.flush()
}

/// The validation loss of the model file at `path` on `splits`, if it is a model of this data
/// (its data hash); what a new run must beat to replace it.
fn best_on_disk(path: &Path, data_sha256: &str, splits: &WordSplits) -> Option<f64> {
    let (model, provenance) = crate::modelfile::load_with_provenance(path, None).ok()?;
    (provenance.data_sha256.as_deref() == Some(data_sha256))
        .then(|| model.loss(&splits[1]))
        .flatten()
}

/// What identifies a run across sweeps: its data and its recipe (not the path the data was
/// given by, which can name other words another day).
fn key(data_sha256: &str, flags: &Value) -> String {
    format!("{data_sha256} {flags}")
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
    let recipes = grid(args)?;
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
    let grid_size = recipes.len();
    let shown_flags = varying(&recipes);
    let mut todo = chosen(args, recipes);
    let previous = read_results(&results_path, true)?;
    // A line cut short by a stop is cut off, so that the next one starts on a line of its own.
    if let Ok(m) = results_path.metadata()
        && m.len() > previous.whole
    {
        std::fs::OpenOptions::new()
            .write(true)
            .open(&results_path)
            .and_then(|f| f.set_len(previous.whole))
            .with_context(|| format!("{}: cannot cut its last line", shown(&results_path)))?;
    }
    let previous = previous.lines;
    let done: std::collections::HashSet<String> = previous
        .iter()
        .filter_map(|r| Some(key(r["data_sha256"].as_str()?, &r["flags"])))
        .collect();
    let planned = todo.len();
    todo.retain(|(_, recipe)| !done.contains(&key(&data_sha256, &recipe.flags_json())));
    let already = planned - todo.len();
    let workers = args
        .workers
        .unwrap_or_else(|| {
            std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
        })
        .min(todo.len())
        .max(1);
    let mut out = Out::new(true).json(args.json);
    out.line(format_args!(
        "sweep: {source}; {} of a grid of {grid_size}{}, {already} already done; {} on {}",
        count(planned as u64, "run"),
        args.shard
            .map_or(String::new(), |(k, n)| format!(" (shard {k}/{n})")),
        count(todo.len() as u64, "run"),
        count(workers as u64, "worker")
    ))?;
    // The model to beat is the one on disk, measured: not a val a results line claims.
    let best = best_on_disk(&best_path, &data_sha256, &splits).unwrap_or(f64::INFINITY);
    let stop = Stop::install().context("cannot install the Ctrl-C handler")?;
    let next = AtomicUsize::new(0);
    let state = Mutex::new(State {
        results: previous,
        out,
        best,
        finished: already,
    });
    let failure: Mutex<Option<anyhow::Error>> = Mutex::new(None);
    std::thread::scope(|scope| {
        for _ in 0..workers {
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
                        let result = json!({
                            "run": index,
                            "shard": args.shard.map(|(k, n)| format!("{k}/{n}")),
                            "train": crate::json_number(train),
                            "val": crate::json_number(val),
                            "test": crate::json_number(test),
                            "failed": outcome.failed,
                            "seconds": outcome.seconds,
                            "steps_per_s": outcome.steps as f64 / outcome.seconds.max(1e-9),
                            "summary": summary(recipe, &shown_flags),
                            "flags": recipe.flags_json(),
                            "data_sha256": data_sha256,
                            "command": command(recipe, args),
                        });
                        let mut s = state.lock().map_err(|_| anyhow!("a worker failed"))?;
                        // The best model first, then the result that names it.
                        if val < s.best {
                            best_out.write(&outcome.bytes)?;
                            s.best = val;
                        }
                        append_line(&results_path, &result)?;
                        s.results.push(result.clone());
                        s.finished += 1;
                        let board = leaderboard(&s.results, s.finished, planned);
                        s.out.event(result)?;
                        s.out.line(board)?;
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
    let State {
        results,
        mut out,
        best,
        finished,
    } = state.into_inner().map_err(|_| anyhow!("a worker failed"))?;
    if let Some(signal) = stop.requested() {
        return Err(Interrupted {
            signal,
            message: format!(
                "interrupted by {}: {finished} of {planned} runs are in {}; run the same command \
                 again to go on",
                signal.name(),
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
    } else if !results.is_empty() {
        eprintln!(
            "note: no run ended with a usable model (each result's \"failed\" says why): try \
             lower learning rates"
        );
    }
    // A result that claims better than the model on disk (a run whose model was lost, or a
    // line written by hand) is named, with the command that makes its model.
    if let Some(r) = results
        .iter()
        .filter(|r| r["data_sha256"].as_str() == Some(data_sha256.as_str()))
        .min_by(|a, b| val_of(a).total_cmp(&val_of(b)))
        && val_of(r) < best - 1e-9
    {
        eprintln!(
            "note: {} records a val of {:.4}, below what {} holds; its model is made by\n  {}",
            shown(&results_path),
            val_of(r),
            shown(&best_path),
            printable(r["command"].as_str().unwrap_or(""))
        );
    }
    out.flush()
}

/// What the workers share.
struct State {
    results: Vec<Value>,
    out: Out,
    /// Validation loss of the model in best.safetensors.
    best: f64,
    /// Runs of this sweep's plan with a result.
    finished: usize,
}

/// Appends one result line in one write (a stop never leaves half of it written but at the
/// end, where the next sweep cuts it off), synced.
fn append_line(path: &Path, result: &Value) -> Result<()> {
    let line = format!("{result}\n");
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .with_context(|| format!("{}: cannot write", shown(path)))?;
    file.write_all(line.as_bytes())
        .and_then(|()| file.sync_data())
        .with_context(|| format!("{}: cannot write", shown(path)))
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
