//! The `charmlp` command line as a library: words files, splits, model files, export, and the
//! commands themselves (the binary is a thin `main`).

pub mod bench;
pub mod check;
pub mod checkpoint;
pub mod cli;
pub mod data;
pub mod diverge;
pub mod export;
pub mod interrupt;
pub mod modelfile;
pub mod outputs;
pub mod plot;
pub mod progress;
pub mod provenance;
pub mod recipe;
pub mod shapes;
pub mod stdout;
pub mod train;
pub mod words;
pub mod workdir;

use anyhow::{Result, anyhow, bail};
use charmlp_core::Temperature;
use cli::{Command, EvalArgs, ExportArgs, SampleArgs};
use data::{read_words, split_words};
use export::Lang;
use modelfile::load;
use rand_core::SeedableRng;
use rand_xoshiro::Xoshiro256PlusPlus;
use shapes::Loaded;
use stdout::Out;

/// The independent random streams one seed gives (the split uses Python's generator; see
/// [`data::python_shuffle`]).
#[derive(Clone, Copy, Debug)]
pub enum Stream {
    Init = 1,
    Batches = 2,
    Samples = 3,
    /// The validation examples `--eval-examples` keeps (from the split seed: a property of
    /// the split, the same for every initialisation).
    EvalExamples = 4,
}

/// A number below `n` (> 0) from `rng`, by Lemire's multiply-shift: the bias is below n/2⁶⁴.
pub fn below(rng: &mut impl rand_core::Rng, n: u64) -> u64 {
    ((u128::from(rng.next_u64()) * u128::from(n)) >> 64) as u64
}

/// Stream `k` of a seed: the seed's generator advanced by k jumps of 2¹²⁸ draws, so no stream
/// ever overlaps another.
pub fn stream(seed: u64, which: Stream) -> Xoshiro256PlusPlus {
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
    for _ in 0..which as u32 {
        rng.jump();
    }
    rng
}

/// Longest sampled name; a name reaching it ends there.
pub const MAX_NAME_LEN: usize = words::MAX_WORD_LEN;

/// A number as people write it: `0.1`, `250`, `1e30`, `1e-7`; never 31 digits, and to six
/// significant digits, so that f32 noise such as 0.0009999999 (0.01 / 10) reads 0.001.
pub fn fmt_num(x: f32) -> String {
    let x: f64 = format!("{x:.5e}").parse().unwrap_or(f64::from(x));
    if x == 0.0 || (1e-4..1e6).contains(&x.abs()) {
        format!("{x}")
    } else {
        format!("{x:e}")
    }
}

/// A path as messages show it: control characters (a newline, an escape sequence that would
/// recolour the terminal) and invisible direction or width controls escaped as `\u{1b}`, so
/// that a hostile file name can neither split an error line nor hide in one.
pub fn shown(path: &std::path::Path) -> String {
    let invisible = |c: char| {
        c.is_control()
            || ('\u{200b}'..='\u{200f}').contains(&c)
            || ('\u{2028}'..='\u{202e}').contains(&c)
            || ('\u{2060}'..='\u{206f}').contains(&c)
            || c == '\u{feff}'
    };
    path.to_string_lossy()
        .chars()
        .map(|c| {
            if invisible(c) {
                c.escape_unicode().to_string()
            } else {
                c.to_string()
            }
        })
        .collect()
}

/// `1 word`, `2 words`.
pub fn count(n: impl Into<u64>, noun: &str) -> String {
    let n = n.into();
    if n == 1 {
        format!("1 {noun}")
    } else {
        format!("{n} {noun}s")
    }
}

/// Prints `count` names sampled with the seed's sample stream, one a line; stops early once
/// stdout's reader has gone.
pub fn print_names(
    out: &mut Out,
    model: &dyn Loaded,
    count: u64,
    seed: u64,
    temperature: Temperature,
) -> Result<()> {
    let mut rng = stream(seed, Stream::Samples);
    for _ in 0..count {
        if stdout::closed() {
            break;
        }
        out.line(model.sample(&mut rng, temperature))?;
    }
    Ok(())
}

pub fn run(command: Command) -> Result<()> {
    match command {
        Command::Train(args) => train::run(&args),
        Command::Sample(args) => sample(&args),
        Command::Eval(args) => eval(&args),
        Command::Export(args) => export(&args),
        Command::Bench(args) => bench::run(&args),
        Command::Check(args) => check_command(&args),
    }
}

fn check_command(args: &cli::CheckArgs) -> Result<()> {
    let (name, bytes) = match &args.reference {
        Some(path) => (shown(path), check::read_reference(path)?),
        None => (
            "the built-in reference".to_string(),
            check::BUILTIN.to_vec(),
        ),
    };
    let rows = check::rows(&bytes).map_err(|e| anyhow!("{name}: {e:#}"))?;
    let mut out = Out::new(true);
    out.line(format_args!("check: charmlp against PyTorch, {name}"))?;
    for line in check::table(&rows).lines() {
        out.line(line)?;
    }
    let count =
        |f: fn(&charmlp_core::conformance::Cmp) -> bool| rows.iter().filter(|r| f(r)).count();
    let (approximate, exact, allclose) = (
        count(|r| r.approximate),
        count(|r| r.exact),
        count(|r| r.allclose),
    );
    out.line(format_args!(
        "{approximate} of {} tensors approximate (maxdiff ≤ {:e} × scale), {exact} exact, \
         {allclose} within torch.allclose element by element",
        rows.len(),
        check::TOLERANCE
    ))?;
    out.flush()?;
    if approximate < rows.len() {
        let off: Vec<String> = rows
            .iter()
            .filter(|r| !r.approximate)
            .map(|r| format!("{}{}", if r.fast { "fast " } else { "" }, r.name))
            .collect();
        bail!(
            "{name}: {} from PyTorch's by more than {:e} of {} scale: {}",
            if off.len() == 1 {
                "1 tensor differs".to_string()
            } else {
                format!("{} tensors differ", off.len())
            },
            check::TOLERANCE,
            if off.len() == 1 { "its" } else { "their" },
            off.join(", ")
        );
    }
    Ok(())
}

fn sample(args: &SampleArgs) -> Result<()> {
    let temperature = Temperature::new(args.temperature)
        .ok_or_else(|| anyhow!("--temperature {}: must be 0 or more", args.temperature))?;
    let model = load(
        &args.model.model,
        args.model.alphabet.as_ref().map(|a| &a.0[..]),
    )?;
    let mut out = Out::new(false);
    print_names(&mut out, model.as_ref(), args.count, args.seed, temperature)?;
    out.flush()
}

fn eval(args: &EvalArgs) -> Result<()> {
    let (model, provenance) = modelfile::load_with_provenance(
        &args.model.model,
        args.model.alphabet.as_ref().map(|a| &a.0[..]),
    )?;
    // The model's alphabet, fixed: a character it does not know is an error (or, with
    // --skip-bad-words, its word is left out and counted). The model's own reading rules
    // apply by themselves, so that its data reads as the words it was trained on.
    let rules = words::Rules {
        lowercase: args.words.lowercase || provenance.lowercase,
        alphabet: Some(words::Alphabet {
            chars: model.chars().to_vec(),
            source: words::MODELS,
        }),
        skip_bad_words: args.words.skip_bad_words || provenance.skip_bad_words,
    };
    // Without --data: the built-in names, if they are what the model was trained on.
    let not_builtin = |why: &str| {
        anyhow!(
            "{}: {why}; give its words file with --data FILE",
            shown(&args.model.model)
        )
    };
    let words = match &args.data {
        Some(path) => read_words(Some(path), &rules)?,
        None if provenance.data_sha256.is_none() => {
            return Err(not_builtin("the model records no training data"));
        }
        None => read_words(None, &rules)
            .map_err(|_| not_builtin("trained on other words than the built-in names"))?,
    };
    let source = args
        .data
        .as_deref()
        .map_or(data::BUILTIN_NAME.to_string(), data::input_name);
    let hash = train::data_hash(&words.words, model.chars());
    let own_data = provenance.data_sha256.as_deref() == Some(hash.as_str());
    if args.data.is_none() && !own_data {
        return Err(not_builtin(
            "trained on other words than the built-in names",
        ));
    }
    let model_split = provenance.split_seed();
    let split_seed = args.split_seed.or(model_split).unwrap_or(cli::DEFAULT_SEED);
    let mut notes = Vec::new();
    if provenance.data_sha256.is_some() && !own_data {
        notes.push(format!(
            "{source} is not the data this model was trained on (its words' SHA-256 is not the \
             model's data_sha256): this split is not the model's, and its val and test words \
             may be training words"
        ));
    } else if let (Some(given), Some(own)) = (args.split_seed, model_split)
        && given != own
    {
        notes.push(format!(
            "--split-seed {given} is not the model's ({own}): this split's val and test words \
             include words the model was trained on; leave --split-seed out to use its own"
        ));
    }
    let skipped = words.skipped;
    let splits = split_words(words.words, split_seed).map_err(|e| anyhow!("{source}: {e}"))?;
    for note in &notes {
        eprintln!("note: {note}");
    }
    let mut out = Out::new(true);
    if skipped > 0 {
        out.line(format_args!(
            "skipped: {} with characters outside the model's alphabet",
            count(skipped as u64, "word")
        ))?;
    }
    for (name, words) in ["train", "val", "test"].into_iter().zip(&splits) {
        let loss = model.loss(words).unwrap_or(f64::NAN);
        let digits = usize::from(args.digits);
        out.line(format_args!("{name} {loss:.digits$}"))?;
    }
    out.flush()
}

fn export(args: &ExportArgs) -> Result<()> {
    let [target] = outputs::check(&[("--model", &args.model.model)], &[("--out", &args.out)])?
        .try_into()
        .map_err(|_| anyhow!("one output expected"))?;
    let origin = args.model.model.file_name().map_or_else(
        || args.model.model.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    );
    let model = load(
        &args.model.model,
        args.model.alphabet.as_ref().map(|a| &a.0[..]),
    )?;
    let source = match args.lang {
        Lang::Rust => export::rust_source(model.as_ref(), &origin),
        Lang::C => export::c_source(model.as_ref(), &origin),
    };
    target.write(source.as_bytes())?;
    let mut out = Out::new(true);
    out.line(format_args!(
        "export: wrote {} ({} bytes)",
        shown(&args.out),
        source.len()
    ))?;
    out.flush()
}
