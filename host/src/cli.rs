//! The command line: flags, their checks and defaults, and dispatch.

use crate::export::Lang;
use crate::recipe::{Rule, ScheduleKind};
use crate::shapes::{BATCH_SIZES, CONTEXTS, EMBED_WIDTHS, HIDDEN_WIDTHS, ModelShape};
use clap::{Args, Parser, Subcommand};
use std::path::{Path, PathBuf};

/// Default seed of every command: the same seed splits, trains and samples alike.
pub const DEFAULT_SEED: u64 = 42;

/// Default steps between evaluations of `train`.
pub const DEFAULT_EVAL_EVERY: u64 = 10_000;

#[derive(Debug, Parser)]
#[command(
    name = "charmlp",
    version,
    about = "makemore's character-level MLP: train it on a file of names, sample new ones",
    long_about = "makemore's character-level MLP (V → 10 → 30 → hidden → V, batch norm, tanh) \
                  with a hand-written backward pass: train it on a file of words (one a line, any \
                  characters; the vocabulary is the data's, up to 128 symbols), sample new ones, \
                  evaluate and export models for firmware."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Train a model on a words file, then calibrate it, report its losses, save it and sample names.
    Train(Box<TrainArgs>),
    /// Sample names from a trained model.
    Sample(SampleArgs),
    /// Print a model's train/val/test loss on a words file (same split rule and seed as train).
    Eval(EvalArgs),
    /// Write a model as Rust or C source that firmware compiles in.
    Export(ExportArgs),
    /// Pack a words file's train/val/test split into a compact file that firmware trains on
    /// from flash.
    Pack(PackArgs),
    /// Time the training step: latency min/median/p99, steps/s, GFLOP/s.
    Bench(BenchArgs),
    /// Compare every intermediate and gradient with PyTorch's, as the notebook's cmp table does.
    Check(CheckArgs),
    /// Train a grid of recipes on every core, ranked live by validation loss; keep the best
    /// model and every result; or rank results with --merge.
    Sweep(Box<SweepArgs>),
}

#[derive(Debug, Args)]
pub struct SweepArgs {
    /// Words file [default: the built-in names]
    #[arg(long, value_name = "FILE")]
    pub data: Option<PathBuf>,
    /// Lowercase every word first
    #[arg(long)]
    pub lowercase: bool,
    /// Directory for results.jsonl (a line per run) and best.safetensors, created if missing;
    /// a sweep started again there skips the runs it holds
    #[arg(long, value_name = "DIR")]
    pub work_dir: Option<PathBuf>,
    /// Steps of every run
    #[arg(long, default_value_t = 200_000, value_parser = positive_u64, allow_negative_numbers = true)]
    pub steps: u64,
    /// Runs to do: a random draw of this many from the grid (with --sweep-seed) when it holds
    /// more [default: the whole grid]
    #[arg(long, value_name = "N", value_parser = positive_u64, allow_negative_numbers = true)]
    pub runs: Option<u64>,
    /// Runs at once [default: every core]
    #[arg(long, value_name = "N", value_parser = positive_usize, allow_negative_numbers = true)]
    pub workers: Option<usize>,
    /// Do the K-th of N disjoint slices of the runs (K from 1), for a sweep spread over
    /// machines; rank the slices' results.jsonl with --merge
    #[arg(long, value_name = "K/N", value_parser = crate::sweep::shard, allow_hyphen_values = true)]
    pub shard: Option<(usize, usize)>,
    /// Seed of the random draw of --runs
    #[arg(long, default_value_t = DEFAULT_SEED, value_parser = whole_u64, allow_negative_numbers = true)]
    pub sweep_seed: u64,
    /// Update rules to try
    #[arg(long, value_enum, value_delimiter = ',', default_value = "sgd")]
    pub optimizer: Vec<Rule>,
    /// Learning rates to try (each ends at a tenth of itself)
    #[arg(long, value_delimiter = ',', default_value = "0.1", value_parser = positive_f32, allow_negative_numbers = true)]
    pub lr: Vec<f32>,
    /// Schedules to try
    #[arg(long, value_enum, value_delimiter = ',', default_value = "step")]
    pub schedule: Vec<ScheduleKind>,
    /// Warm-up lengths to try
    #[arg(long, value_delimiter = ',', default_value = "0", value_parser = whole_u64, allow_negative_numbers = true)]
    pub warmup: Vec<u64>,
    /// Embedding widths to try
    #[arg(long, value_delimiter = ',', default_value = "10", value_parser = one_of(EMBED_WIDTHS), allow_negative_numbers = true)]
    pub embed: Vec<usize>,
    /// Contexts to try
    #[arg(long, value_delimiter = ',', default_value = "3", value_parser = one_of(CONTEXTS), allow_negative_numbers = true)]
    pub context: Vec<usize>,
    /// Hidden widths to try
    #[arg(long, value_delimiter = ',', default_value = "64", value_parser = one_of(HIDDEN_WIDTHS), allow_negative_numbers = true)]
    pub hidden: Vec<usize>,
    /// Batch sizes to try
    #[arg(long, value_delimiter = ',', default_value = "32", value_parser = one_of(BATCH_SIZES), allow_negative_numbers = true)]
    pub batch: Vec<usize>,
    /// Initialisation seeds to try
    #[arg(long, value_delimiter = ',', default_value = "42", value_parser = whole_u64, allow_negative_numbers = true)]
    pub seed: Vec<u64>,
    /// Seed of the split, one for the whole sweep
    #[arg(long, default_value_t = DEFAULT_SEED, value_parser = whole_u64, allow_negative_numbers = true)]
    pub split_seed: u64,
    /// Print each result as a JSON line instead of the leaderboard
    #[arg(long)]
    pub json: bool,
    /// Rank the results of these results.jsonl files (of shards, say) and print them
    #[arg(long, value_name = "FILES", num_args = 1.., conflicts_with_all = ["work_dir", "runs", "shard"])]
    pub merge: Vec<PathBuf>,
}

#[derive(Debug, Args)]
pub struct CheckArgs {
    /// A reference state written by scripts/torch_reference.py [default: the built-in one,
    /// made with PyTorch 2.15.0]
    #[arg(long, value_name = "FILE")]
    pub reference: Option<PathBuf>,
}

/// The words and how to read them, as `train` and `pack` take them.
#[derive(Debug, Args)]
pub struct ReadingArgs {
    /// Words file (- for standard input): one word a line, UTF-8; the vocabulary is its characters [default: the built-in 5,163 US Census 1990 first names]
    #[arg(long, value_name = "FILE")]
    pub data: Option<PathBuf>,
    /// Lowercase every word first (Unicode-aware: 'É' becomes 'é')
    #[arg(long)]
    pub lowercase: bool,
    /// Fix the alphabet to these characters instead of the data's (a word with others is an
    /// error, or left out with --skip-bad-words); ranges as `tr` writes them, e.g. "a-z'-" (a
    /// '-' first or last stands for itself)
    #[arg(long, value_name = "CHARS", value_parser = alphabet_chars, allow_hyphen_values = true)]
    pub alphabet: Option<AlphabetChars>,
    /// With --alphabet: leave out, and count, the words with other characters
    #[arg(long, requires = "alphabet")]
    pub skip_bad_words: bool,
}

impl ReadingArgs {
    /// The reading rules of these flags.
    pub fn rules(&self) -> crate::words::Rules {
        crate::words::Rules {
            lowercase: self.lowercase,
            alphabet: self.alphabet.as_ref().map(|chars| crate::words::Alphabet {
                chars: chars.0.clone(),
                source: crate::words::GIVEN,
            }),
            skip_bad_words: self.skip_bad_words,
        }
    }

    /// `--data` as an input path, for [`crate::outputs::check`]: none for the built-in names.
    pub fn inputs(&self) -> Vec<(&'static str, &Path)> {
        self.data.iter().map(|d| ("--data", d.as_path())).collect()
    }

    /// The words' source as messages name it: the file, or the built-in names.
    pub fn source(&self) -> String {
        self.data
            .as_ref()
            .map_or(crate::data::BUILTIN_NAME.to_string(), |p| {
                crate::data::input_name(p)
            })
    }
}

#[derive(Debug, Args)]
pub struct TrainArgs {
    #[command(flatten)]
    pub reading: ReadingArgs,
    #[command(flatten)]
    pub shape: ShapeArgs,
    /// Number of SGD steps
    #[arg(long, default_value_t = 200_000, value_parser = positive_u64, allow_negative_numbers = true)]
    pub steps: u64,
    /// Batch size (4, 8, 16, 32, 64, 128 or 256)
    #[arg(long, default_value_t = 32, value_parser = one_of(BATCH_SIZES), allow_negative_numbers = true)]
    pub batch: usize,
    #[command(flatten)]
    pub optim: OptimArgs,
    /// Seed of the initialisation, the batches and the sampled names
    #[arg(long, default_value_t = DEFAULT_SEED, value_parser = whole_u64, allow_negative_numbers = true)]
    pub seed: u64,
    /// Seed of the 80/10/10 split (makemore's random.seed(42); random.shuffle(words) by
    /// default): the same for runs whose --seed differs compares initialisations on one split
    #[arg(long, default_value_t = DEFAULT_SEED, value_parser = whole_u64, allow_negative_numbers = true)]
    pub split_seed: u64,
    /// Steps between evaluations on the validation split (and checkpoints with --work-dir);
    /// the first and last step are always evaluated
    #[arg(long, value_name = "N", default_value_t = DEFAULT_EVAL_EVERY, value_parser = positive_u64, allow_negative_numbers = true)]
    pub eval_every: u64,
    /// Evaluate during training on this many validation examples, a fixed random subset
    /// (drawn with --split-seed), not all of them; the final losses use every example
    /// [default: all]
    #[arg(long, value_name = "N", value_parser = positive_u64, allow_negative_numbers = true)]
    pub eval_examples: Option<u64>,
    /// Keep the run's checkpoints (last.ckpt, and best.ckpt by validation loss, at every
    /// evaluation and on Ctrl-C) and its curve (curve.csv) in this directory, created if missing
    #[arg(long, value_name = "DIR")]
    pub work_dir: Option<PathBuf>,
    /// Continue the run in --work-dir from its last checkpoint, with the same flags: it ends
    /// bit for bit as the run would have without the stop
    #[arg(long, requires = "work_dir")]
    pub resume: bool,
    /// Where to write the model (atomically, last: the old file survives any failure)
    #[arg(long, value_name = "FILE", default_value = "model.safetensors")]
    pub out: PathBuf,
    /// Write the loss of every step and the periodic validation losses as CSV
    #[arg(long, value_name = "FILE")]
    pub curve: Option<PathBuf>,
    /// Draw the loss curve as an SVG
    #[arg(long, value_name = "FILE")]
    pub plot: Option<PathBuf>,
    /// Print one JSON object a line instead of text: "start", an "eval" per evaluation,
    /// "resumed", "done" (losses, model, time) and "names"
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct SampleArgs {
    #[command(flatten)]
    pub model: ModelIn,
    /// Number of names
    #[arg(short = 'n', long = "count", default_value_t = 20, value_parser = count_u64)]
    pub count: u64,
    /// Seed of the sampling (train prints the names of its own --seed)
    #[arg(long, default_value_t = DEFAULT_SEED, value_parser = whole_u64, allow_negative_numbers = true)]
    pub seed: u64,
    /// Softmax temperature: below 1 picks likelier names, above 1 stranger ones; 0 always
    /// picks the likeliest character (greedy)
    #[arg(long, default_value_t = 1.0, value_parser = non_negative_f32, allow_negative_numbers = true)]
    pub temperature: f32,
    /// Draw each character from the K likeliest only (makemore's --top-k)
    #[arg(long, value_name = "K", value_parser = positive_u64, allow_negative_numbers = true)]
    pub top_k: Option<u64>,
    /// Names that start with these characters (the model continues them)
    #[arg(long, value_name = "STR", allow_hyphen_values = true)]
    pub prefix: Option<String>,
    /// Most characters of a name, the prefix included (a name reaching it ends there)
    #[arg(long, value_name = "N", value_parser = positive_u64, allow_negative_numbers = true)]
    pub max_len: Option<u64>,
    /// The training data, to mark each name train, val, test or new (tab-separated) with a
    /// summary on stderr [default: the built-in names, if the model was trained on them]
    #[arg(long, value_name = "FILE")]
    pub data: Option<PathBuf>,
    /// Print only new names (in none of the training data's splits, and not empty), giving up
    /// after 1000 draws in a row without one
    #[arg(long)]
    pub new_only: bool,
    /// Draw from the model quantised to int8, by integer arithmetic alone, as a device without
    /// an FPU does (at temperature 1: no --temperature, --top-k, --prefix or --max-len)
    #[arg(long, conflicts_with_all = ["temperature", "top_k", "prefix", "max_len"])]
    pub int8: bool,
    #[command(flatten)]
    pub words: EvalWords,
}

#[derive(Debug, Args)]
pub struct EvalArgs {
    #[command(flatten)]
    pub model: ModelIn,
    /// Words file (split 80/10/10 as train does); its characters must be in the model's
    /// alphabet [default: the built-in names, if the model was trained on them]
    #[arg(long, value_name = "FILE")]
    pub data: Option<PathBuf>,
    #[command(flatten)]
    pub words: EvalWords,
    /// Seed of the split [default: the model's --split-seed, recorded in it; else 42]
    #[arg(long, alias = "seed", value_parser = whole_u64, allow_negative_numbers = true)]
    pub split_seed: Option<u64>,
    /// Decimal places of the losses (0 to 9)
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u8).range(0..=9))]
    pub digits: u8,
    /// Print the losses as one JSON object ({"train": …, "val": …, "test": …, …})
    #[arg(long)]
    pub json: bool,
    /// Also the losses of the model quantised to int8 (integer inference, as `export --int8`
    /// writes it), and their difference from the f32 model's
    #[arg(long)]
    pub int8: bool,
}

/// How `eval` reads its words file.
#[derive(Debug, Args)]
pub struct EvalWords {
    /// Lowercase every word first (Unicode-aware); on by itself for a model trained with
    /// --lowercase
    #[arg(long)]
    pub lowercase: bool,
    /// Leave out, and count, the words with characters outside the model's alphabet (on by
    /// itself for a model trained with --skip-bad-words)
    #[arg(long)]
    pub skip_bad_words: bool,
}

#[derive(Debug, Args)]
pub struct PackArgs {
    #[command(flatten)]
    pub reading: ReadingArgs,
    /// Seed of the 80/10/10 split, as `train --split-seed`
    #[arg(long, default_value_t = DEFAULT_SEED, value_parser = whole_u64, allow_negative_numbers = true)]
    pub split_seed: u64,
    /// Pack this split alone (the others empty): an evaluation set for a device with little
    /// flash
    #[arg(long, value_enum)]
    pub only: Option<Split>,
    /// Where to write the packed file
    #[arg(long, value_name = "FILE")]
    pub out: PathBuf,
}

/// One of the three splits.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Split {
    Train,
    Val,
    Test,
}

#[derive(Debug, Args)]
pub struct ExportArgs {
    #[command(flatten)]
    pub model: ModelIn,
    /// Source language: rust (a `static MODEL: charmlp_core::Model`) or c (a header of arrays)
    #[arg(long, value_enum)]
    pub lang: Lang,
    /// Write the model quantised to int8 (a `static MODEL: charmlp_core::Int8Model`): int8
    /// weights with a scale per channel, batch norm folded in, integer-only inference
    #[arg(long)]
    pub int8: bool,
    /// Where to write the source
    #[arg(long, value_name = "FILE")]
    pub out: PathBuf,
}

/// The update rule and the learning-rate schedule.
#[derive(Clone, Copy, Debug, Args)]
pub struct OptimArgs {
    /// Update rule
    #[arg(long, value_enum, default_value_t = Rule::Sgd)]
    pub optimizer: Rule,
    /// Momentum of --optimizer momentum and nesterov
    #[arg(long, default_value_t = 0.9, value_parser = unit_interval, allow_negative_numbers = true)]
    pub momentum: f64,
    /// AdamW's β₁
    #[arg(long, default_value_t = 0.9, value_parser = unit_interval, allow_negative_numbers = true)]
    pub beta1: f64,
    /// AdamW's β₂
    #[arg(long, default_value_t = 0.99, value_parser = unit_interval, allow_negative_numbers = true)]
    pub beta2: f64,
    /// AdamW's ε
    #[arg(long, default_value = "1e-8", value_parser = positive_f64_in_f32, allow_negative_numbers = true)]
    pub eps: f64,
    /// AdamW's decoupled weight decay
    #[arg(long, default_value_t = 0.01, value_parser = non_negative_f64, allow_negative_numbers = true)]
    pub weight_decay: f64,
    /// Learning rate (until --lr-decay-step, or the cosine's start) [default: 0.1; 5e-4 with
    /// --optimizer adamw, makemore.py's]
    #[arg(long, value_parser = positive_f32, allow_negative_numbers = true)]
    pub lr: Option<f32>,
    /// Learning rate from --lr-decay-step on, or the cosine's end [default: a tenth of --lr]
    #[arg(long, value_parser = positive_f32, allow_negative_numbers = true)]
    pub lr_final: Option<f32>,
    /// Learning-rate schedule after the warm-up
    #[arg(long, value_enum, default_value_t = ScheduleKind::Step)]
    pub schedule: ScheduleKind,
    /// Step from which --lr-final applies (--schedule step) [default: half of --steps, rounded
    /// up: makemore's 100000 of 200000]
    #[arg(long, value_name = "STEP", value_parser = whole_u64, allow_negative_numbers = true)]
    pub lr_decay_step: Option<u64>,
    /// Steps of linear warm-up from --lr/N to --lr before the schedule
    #[arg(long, value_name = "N", default_value_t = 0, value_parser = whole_u64, allow_negative_numbers = true)]
    pub warmup: u64,
}

/// The model's shape, from the menu built in (`charmlp_core` types are instantiated for each).
#[derive(Clone, Copy, Debug, Args)]
pub struct ShapeArgs {
    /// Embedding width: 10 (makemore parts 3-4) or 24 (part 5)
    #[arg(long, default_value_t = 10, value_parser = one_of(EMBED_WIDTHS), allow_negative_numbers = true)]
    pub embed: usize,
    /// Context: characters the model sees, 3 (makemore parts 2-4) or 8 (part 5)
    #[arg(long, default_value_t = 3, value_parser = one_of(CONTEXTS), allow_negative_numbers = true)]
    pub context: usize,
    /// Hidden width: 64 or 200 (makemore part 4's exercise)
    #[arg(long, default_value_t = 64, value_parser = one_of(HIDDEN_WIDTHS), allow_negative_numbers = true)]
    pub hidden: usize,
}

impl ShapeArgs {
    pub fn shape(&self) -> ModelShape {
        ModelShape {
            embed: self.embed,
            context: self.context,
            hidden: self.hidden,
        }
    }
}

#[derive(Debug, Args)]
pub struct BenchArgs {
    #[command(flatten)]
    pub shape: ShapeArgs,
    /// Number of timed steps (after 2,000 untimed warm-up steps), at most 10,000,000: each
    /// step's time is kept for the percentiles
    #[arg(long, default_value_t = 20_000, value_parser = bench_steps, allow_negative_numbers = true)]
    pub steps: u64,
    /// Time each stage of the step (a clock read between stages, about 20 ns each) and print
    /// where the time goes: µs, FLOP, GFLOP/s and share of the step per stage
    #[arg(long)]
    pub stages: bool,
    /// The machine's single-core FMA peak in GFLOP/s (as ../shared/tools/peak prints it), to
    /// show each product's share of it
    #[arg(long, value_name = "GFLOPS", value_parser = positive_f64, allow_negative_numbers = true)]
    pub peak: Option<f64>,
}

/// A model file to read.
#[derive(Debug, Args)]
pub struct ModelIn {
    /// Model file: a safetensors file written by `charmlp train` or saved from PyTorch with
    /// the notebook's tensor names, or a `.cmlp` file of earlier versions
    #[arg(long, value_name = "FILE")]
    pub model: PathBuf,
    /// The characters of tokens 1.. of a safetensors file saved without charmlp's metadata, in
    /// increasing order (makemore's a-z when it has 27 symbols)
    #[arg(long, value_name = "CHARS", value_parser = model_alphabet, allow_hyphen_values = true)]
    pub alphabet: Option<AlphabetChars>,
}

/// The characters of `--alphabet`, sorted and each once.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AlphabetChars(pub Vec<char>);

/// `--alphabet` of a model file: the characters of tokens 1.., which must already be in
/// increasing order, each once (ranges as for [`alphabet_chars`]): sorting them would silently
/// give tokens other characters than the user meant.
///
/// A literal '-' can only be written first or last, so its place says nothing about order: it
/// is left out of the comparison.
fn model_alphabet(s: &str) -> Result<AlphabetChars, String> {
    let chars = alphabet_chars(s)?;
    let not_dash = |c: &&char| **c != '-';
    let given: Vec<char> = expand(s)?.iter().filter(not_dash).copied().collect();
    let sorted: Vec<char> = chars.0.iter().filter(not_dash).copied().collect();
    if given != sorted {
        return Err(format!(
            "tokens 1.. are the characters in increasing order, each once (as makemore's \
             sorted(set(...)) gives them): give them as '{}'",
            as_flag(&chars.0)
        ));
    }
    Ok(chars)
}

/// `chars` (sorted) as `--alphabet` reads them back: runs of four or more consecutive
/// characters as ranges, a '-' last, where it stands for itself.
pub fn as_flag(chars: &[char]) -> String {
    let mut out = String::new();
    let rest: Vec<char> = chars.iter().copied().filter(|&c| c != '-').collect();
    let mut i = 0;
    while i < rest.len() {
        let mut j = i;
        while j + 1 < rest.len() && u32::from(rest[j + 1]) == u32::from(rest[j]) + 1 {
            j += 1;
        }
        if j - i >= 3 {
            out.extend([rest[i], '-', rest[j]]);
        } else {
            out.extend(&rest[i..=j]);
        }
        i = j + 1;
    }
    if chars.contains(&'-') {
        out.push('-');
    }
    out
}

/// `--alphabet`: its characters, sorted and each once; not empty, no control characters.
/// `X-Y` is the range from X to Y, as `tr` reads it; a '-' first or last is itself.
fn alphabet_chars(s: &str) -> Result<AlphabetChars, String> {
    sorted_alphabet(expand(s)?)
}

/// `--alphabet`'s characters as given, ranges expanded; none a control character.
fn expand(s: &str) -> Result<Vec<char>, String> {
    let given: Vec<char> = s.chars().collect();
    let mut chars = Vec::new();
    let mut i = 0;
    while i < given.len() {
        match given.get(i..i + 3) {
            Some(&[lo, '-', hi]) => {
                if lo > hi && (hi == '-' || lo == '-') {
                    return Err(format!(
                        "'{lo}-{hi}' reads as a range; a '-' stands for itself only first or \
                         last: write it as '-{}'",
                        if lo == '-' { hi } else { lo }
                    ));
                }
                if lo > hi {
                    return Err(format!(
                        "the range {lo}-{hi} runs backwards; write it as {hi}-{lo}"
                    ));
                }
                // A range beyond the capacity is refused below, after at most that many.
                chars.extend((lo..=hi).take(charmlp_core::MAX_SYMBOLS));
                i += 3;
            }
            _ => {
                chars.push(given[i]);
                i += 1;
            }
        }
    }
    // One check of the characters as expanded: a typed one, or one a range between printable
    // ends covers ('~-¡' holds DEL).
    if let Some(&c) = chars.iter().find(|c| c.is_control()) {
        return Err(format!(
            "{} is a control character; an alphabet holds printable characters",
            crate::words::describe(c)
        ));
    }
    Ok(chars)
}

/// Continues [`alphabet_chars`]: sorted, each once, within the capacity.
fn sorted_alphabet(mut chars: Vec<char>) -> Result<AlphabetChars, String> {
    chars.sort_unstable();
    chars.dedup();
    let most = charmlp_core::MAX_SYMBOLS - 1;
    match chars.len() {
        0 => Err(
            "empty; give the characters words may hold, e.g. --alphabet abcdefghijklmnopqrstuvwxyz"
                .into(),
        ),
        n if n > most => Err(format!(
            "{n} characters; at most {most} fit (with the boundary, {} symbols)",
            most + 1
        )),
        _ => Ok(AlphabetChars(chars)),
    }
}

/// A whole number from 0, with what is allowed said for a negative one.
fn whole_u64(s: &str) -> Result<u64, String> {
    match s.parse::<i128>() {
        Ok(n) if (0..=i128::from(u64::MAX)).contains(&n) => Ok(n as u64),
        _ => Err(format!(
            "{s:?} is not a whole number from 0 to {}",
            u64::MAX
        )),
    }
}

fn positive_usize(s: &str) -> Result<usize, String> {
    positive_u64(s).and_then(|n| usize::try_from(n).map_err(|_| format!("{n} is too large")))
}

fn positive_u64(s: &str) -> Result<u64, String> {
    match s.parse::<i128>() {
        Ok(n) if n >= 1 && n <= i128::from(u64::MAX) => Ok(n as u64),
        Ok(n) if n < 1 => Err(format!(
            "{n} is not positive; give a whole number of at least 1"
        )),
        _ => Err(format!(
            "{s:?} is not a whole number from 1 to {}",
            u64::MAX
        )),
    }
}

/// Most timed steps of `bench`: their times are kept (8 bytes each) for the percentiles.
pub const MAX_BENCH_STEPS: u64 = 10_000_000;

fn bench_steps(s: &str) -> Result<u64, String> {
    match positive_u64(s)? {
        n if n <= MAX_BENCH_STEPS => Ok(n),
        n => Err(format!(
            "{n} is more than {MAX_BENCH_STEPS}, the most bench times"
        )),
    }
}

fn positive_f32(s: &str) -> Result<f32, String> {
    match s.parse::<f32>() {
        Ok(x) if x.is_finite() && x > 0.0 => Ok(x),
        Ok(x) => Err(format!(
            "{s} is not a positive finite number{} (an f32 holds about 1.2e-38 to 3.4e38)",
            reads_as(s, x)
        )),
        Err(_) => Err(format!("{s:?} is not a number")),
    }
}

/// ", which reads as 0" where an f32 rounds what was typed to something else (1e-46 to 0,
/// 1e39 to inf); nothing where it is the same.
fn reads_as(s: &str, x: f32) -> String {
    let typed: f64 = s.parse().unwrap_or(f64::NAN);
    if f64::from(x) == typed || typed.is_nan() {
        String::new()
    } else {
        format!(": it reads as {x} in f32")
    }
}

fn count_u64(s: &str) -> Result<u64, String> {
    s.parse::<u64>()
        .map_err(|_| format!("{s:?} is not a whole number from 0 to {}", u64::MAX))
}

fn positive_f64(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(x) if x.is_finite() && x > 0.0 => Ok(x),
        Ok(_) => Err(format!("{s} is not a positive finite number")),
        Err(_) => Err(format!("{s:?} is not a number")),
    }
}

/// A positive number that stays one in f32, where the optimizer uses it (1e-300 would be 0).
fn positive_f64_in_f32(s: &str) -> Result<f64, String> {
    let x = positive_f64(s)?;
    let f = x as f32;
    if f.is_finite() && f >= f32::MIN_POSITIVE {
        Ok(x)
    } else {
        Err(format!(
            "{s} is not a positive number an f32 holds (about 1.2e-38 to 3.4e38); it reads as {f}"
        ))
    }
}

fn non_negative_f64(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(x) if x.is_finite() && x >= 0.0 => Ok(x),
        Ok(_) => Err(format!("{s} is not a finite number of at least 0")),
        Err(_) => Err(format!("{s:?} is not a number")),
    }
}

/// A momentum or a β: at least 0 and below 1 (at 1 the average never forgets).
fn unit_interval(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(x) if (0.0..1.0).contains(&x) => Ok(x),
        Ok(_) => Err(format!("{s} is not in [0, 1): give e.g. 0.9")),
        Err(_) => Err(format!("{s:?} is not a number")),
    }
}

fn non_negative_f32(s: &str) -> Result<f32, String> {
    match s.parse::<f32>() {
        Ok(x) if x.is_finite() && x >= 0.0 => Ok(x),
        Ok(x) => Err(format!(
            "{s} is not a finite number of at least 0{}",
            reads_as(s, x)
        )),
        Err(_) => Err(format!("{s:?} is not a number")),
    }
}

/// A parser accepting only the listed sizes, naming them when it refuses.
fn one_of(allowed: &'static [usize]) -> impl Fn(&str) -> Result<usize, String> + Clone {
    move |s: &str| {
        let list = allowed
            .iter()
            .map(|n| n.to_string())
            .collect::<Vec<_>>()
            .join(", ");
        match s.parse::<i128>() {
            // Checked: `as usize` would wrap 2⁶⁴ + 4 to a built-in 4.
            Ok(n) if usize::try_from(n).is_ok_and(|n| allowed.contains(&n)) => Ok(n as usize),
            Ok(n) => Err(format!("{n} is not built in; choose one of {list}")),
            Err(_) => Err(format!("{s:?} is not a number; choose one of {list}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn a_model_alphabet_is_in_token_order_and_its_suggestion_reads_back() {
        for chars in [
            " '-abcdefghijklmnopqrstuvwxyz",
            "-abc",
            "+-ab",
            "abcdefghijklmnopqrstuvwxyzàé",
            "\"',-./0123456789",
        ] {
            let sorted: Vec<char> = chars.chars().collect();
            let flag = as_flag(&sorted);
            assert_eq!(
                model_alphabet(&flag).map(|a| a.0),
                Ok(sorted),
                "{chars}: {flag}"
            );
        }
        assert_eq!(
            as_flag(&" '-abcdefghijklmnopqrstuvwxyz".chars().collect::<Vec<_>>()),
            " 'a-z-"
        );
        let e = model_alphabet("zyx").unwrap_err();
        assert!(e.contains("increasing order") && e.contains("'xyz'"), "{e}");
        // A '-' first or last is itself, wherever it sorts; one between two characters ranges.
        assert!(model_alphabet("- 'a-z").is_ok());
        assert!(model_alphabet(" 'a-z-").is_ok());
        assert!(
            model_alphabet("a--")
                .unwrap_err()
                .contains("write it as '-a'")
        );
    }

    #[test]
    fn flag_parsers_name_what_is_allowed() {
        assert_eq!(positive_u64("5"), Ok(5));
        assert!(positive_u64("0").unwrap_err().contains("not positive"));
        assert!(positive_u64("-3").unwrap_err().contains("not positive"));
        assert!(
            positive_u64("x")
                .unwrap_err()
                .contains("not a whole number")
        );
        assert_eq!(positive_f32("0.5"), Ok(0.5));
        for bad in ["0", "-0.1", "inf", "NaN"] {
            assert!(positive_f32(bad).is_err(), "{bad}");
        }
        let e = positive_f32("1e-46").unwrap_err();
        assert!(
            e.starts_with("1e-46 is not") && e.contains("reads as 0"),
            "{e}"
        );
        assert!(positive_f32("3.5e38").unwrap_err().contains("reads as inf"));
        assert!(count_u64("1e1").unwrap_err().contains("not a whole number"));
        let chars = |s| alphabet_chars(s).map(|a| a.0);
        assert_eq!(chars("cabé b"), Ok(vec![' ', 'a', 'b', 'c', 'é']));
        let az: Vec<char> = ('a'..='z').collect();
        assert_eq!(chars("a-z"), Ok(az));
        assert_eq!(
            alphabet_chars("z-aa-z").unwrap_err(),
            "the range z-a runs backwards; write it as a-z"
        );
        assert_eq!(chars("-a-z'").unwrap().len(), 28);
        assert_eq!(chars("a-c-"), Ok(vec!['-', 'a', 'b', 'c']));
        assert!(
            alphabet_chars("\u{100}-\u{10ffff}")
                .unwrap_err()
                .contains("at most 127")
        );
        assert!(
            alphabet_chars("a-z~-\u{a1}")
                .unwrap_err()
                .contains("U+007F DELETE")
        );
        assert_eq!(
            one_of(BATCH_SIZES)("18446744073709551620"),
            Err(
                "18446744073709551620 is not built in; choose one of 4, 8, 16, 32, 64, 128, 256"
                    .into()
            )
        );
        assert!(alphabet_chars("").unwrap_err().contains("empty"));
        assert!(alphabet_chars("a\tb").unwrap_err().contains("U+0009"));
        let many: String = ('\u{100}'..).take(128).collect();
        assert!(alphabet_chars(&many).unwrap_err().contains("at most 127"));
        let hidden = one_of(HIDDEN_WIDTHS);
        assert_eq!(hidden("200"), Ok(200));
        assert_eq!(
            hidden("100"),
            Err("100 is not built in; choose one of 64, 200".into())
        );
    }
}
