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
mod memo;
pub mod modeldata;
pub mod modelfile;
pub mod names;
pub mod outputs;
pub mod pack;
pub mod plot;
pub mod progress;
pub mod provenance;
pub mod recipe;
pub mod shapes;
pub mod stdout;
pub mod sweep;
pub mod train;
pub mod words;
pub mod workdir;

use anyhow::{Result, anyhow, bail};
use charmlp_core::{Sampling, Temperature};
use cli::{Command, EvalArgs, ExportArgs, SampleArgs};
use export::Lang;
use modelfile::load;
use rand_core::SeedableRng;
use rand_xoshiro::Xoshiro256PlusPlus;
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

/// A SHA-256 digest in lowercase hex: the data hash, a checkpoint's digests.
pub fn sha256_hex(hash: sha2::Sha256) -> String {
    use sha2::Digest;
    hash.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

/// A number as JSON has it: itself, or null for NaN and infinities (JSON has neither).
pub fn json_number(x: f64) -> Option<f64> {
    x.is_finite().then_some(x)
}

/// An f32 as JSON has it: the shortest decimal that reads back as the f32 (0.1, not
/// 0.10000000149011612), or null for NaN and infinities.
pub fn json_f32(x: f32) -> Option<f64> {
    format!("{x}").parse().ok().and_then(json_number)
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

pub fn run(command: Command) -> Result<()> {
    match command {
        Command::Train(args) => train::run(&args),
        Command::Sample(args) => sample(&args),
        Command::Eval(args) => eval(&args),
        Command::Export(args) => export(&args),
        Command::Pack(args) => pack::run(&args),
        Command::Bench(args) => bench::run(&args),
        Command::Check(args) => check_command(&args),
        Command::Sweep(args) => sweep::run(&args),
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
    let (model, provenance) = modelfile::load_with_provenance(
        &args.model.model,
        args.model.alphabet.as_ref().map(|a| &a.0[..]),
    )?;
    let prefix = prefix_tokens(args.prefix.as_deref().unwrap_or(""), model.chars())?;
    let how = Sampling {
        temperature,
        top_k: args.top_k.map(|k| usize::try_from(k).unwrap_or(usize::MAX)),
        prefix: &prefix,
        max_len: args
            .max_len
            .map_or(usize::MAX, |n| usize::try_from(n).unwrap_or(usize::MAX)),
    };
    if let Some(n) = args.max_len
        && (n as usize) < prefix.len()
    {
        bail!(
            "--max-len {n} is shorter than --prefix ({} characters); give at least {}",
            prefix.len(),
            prefix.len()
        );
    }
    // The training data marks each name, when it is at hand: --data, or the built-in names
    // the model was trained on.
    let reading = modeldata::Reading {
        data: args.data.as_deref(),
        lowercase: args.words.lowercase,
        skip_bad_words: args.words.skip_bad_words,
        split_seed: None,
    };
    let marks = match modeldata::find(model.as_ref(), &provenance, &reading)? {
        modeldata::Found::Data(found) => {
            for note in &found.notes {
                eprintln!("note: {note}");
            }
            Some(names::Marks::new(&found.splits, model.chars()))
        }
        modeldata::Found::NotAtHand(why) if args.new_only => bail!(
            "--new-only tells new names from the training data's: {}: {why}; give its words \
             file with --data FILE",
            shown(&args.model.model)
        ),
        modeldata::Found::NotAtHand(_) => None,
    };
    let mut out = Out::new(false);
    let int8 = args.int8.then(|| model.quantized());
    let drawn = match &int8 {
        Some(int8) => names::Drawn::Int8(int8.as_ref()),
        None => names::Drawn::F32(model.as_ref(), &how),
    };
    let tally = names::print(
        &mut out,
        drawn,
        args.count,
        args.seed,
        marks.as_ref(),
        args.new_only,
    )?;
    out.flush()?;
    // The summary goes to stderr: stdout stays one name a line, for pipes.
    if marks.is_some() {
        eprintln!("{}", tally.summary());
    }
    if args.new_only && tally.printed < args.count && !stdout::closed() {
        eprintln!(
            "note: {} of the {} asked for in {} drawn, the last {} none new: the model \
             repeats its training words at these settings (a higher --temperature, or no \
             --top-k, draws more new ones)",
            count(tally.printed, "new name"),
            args.count,
            count(tally.drawn, "name"),
            names::MISSES_IN_A_ROW
        );
    }
    Ok(())
}

/// The tokens of `--prefix`: every character must be in the model's alphabet, and the whole
/// must fit a name.
fn prefix_tokens(prefix: &str, chars: &[char]) -> Result<Vec<charmlp_core::Token>> {
    if prefix.len() > MAX_NAME_LEN {
        bail!(
            "--prefix is {} bytes of UTF-8; a name holds at most {MAX_NAME_LEN}",
            prefix.len()
        );
    }
    let mut tokens = Vec::new();
    for (i, ch) in prefix.chars().enumerate() {
        let Some(at) = chars.iter().position(|&c| c == ch) else {
            bail!(
                "--prefix {prefix:?}: its character {} ({}) is not in the model's alphabet, {:?}",
                i + 1,
                words::describe(ch),
                words::shown_chars(chars)
            );
        };
        tokens.push(charmlp_core::Token::wrapping(
            (at + 1) as u8,
            charmlp_core::MAX_SYMBOLS,
        ));
    }
    Ok(tokens)
}

fn eval(args: &EvalArgs) -> Result<()> {
    let (model, provenance) = modelfile::load_with_provenance(
        &args.model.model,
        args.model.alphabet.as_ref().map(|a| &a.0[..]),
    )?;
    let how = modeldata::Reading {
        data: args.data.as_deref(),
        lowercase: args.words.lowercase,
        skip_bad_words: args.words.skip_bad_words,
        split_seed: args.split_seed,
    };
    let found = match modeldata::find(model.as_ref(), &provenance, &how)? {
        modeldata::Found::Data(found) => found,
        modeldata::Found::NotAtHand(why) => bail!(
            "{}: {why}; give its words file with --data FILE",
            shown(&args.model.model)
        ),
    };
    for note in &found.notes {
        eprintln!("note: {note}");
    }
    let (skipped, splits) = (found.skipped, found.splits);
    let mut out = Out::new(true).json(args.json);
    let losses: Vec<f64> = splits
        .iter()
        .map(|words| model.loss(words).unwrap_or(f64::NAN))
        .collect();
    let int8 = args.int8.then(|| {
        let q = model.quantized();
        splits.iter().map(|words| q.loss(words)).collect::<Vec<_>>()
    });
    let mut event = serde_json::json!({
        "event": "eval",
        "model": args.model.model.to_string_lossy(),
        "train": json_number(losses[0]),
        "val": json_number(losses[1]),
        "test": json_number(losses[2]),
        "skipped": skipped,
        "notes": found.notes,
    });
    if let Some(int8) = &int8 {
        // The fixed-point sums too: a device's integer loss equals them exactly.
        let split = |l: &charmlp_core::Int8Loss| {
            serde_json::json!({
                "loss": l.nats().and_then(json_number),
                "bits_q16": l.bits_q16,
                "n": l.n,
            })
        };
        event["int8"] = serde_json::json!({
            "train": split(&int8[0]),
            "val": split(&int8[1]),
            "test": split(&int8[2]),
        });
    }
    out.event(event)?;
    if skipped > 0 {
        out.line(format_args!(
            "skipped: {} with characters outside the model's alphabet",
            count(skipped as u64, "word")
        ))?;
    }
    let digits = usize::from(args.digits);
    for (i, name) in ["train", "val", "test"].into_iter().enumerate() {
        let loss = losses[i];
        match int8.as_ref().and_then(|q| q[i].nats()) {
            Some(q) => {
                // The difference of the printed figures, so that the line adds up.
                let (loss, q) = (format!("{loss:.digits$}"), format!("{q:.digits$}"));
                let shown = |s: &str| s.parse::<f64>().unwrap_or(f64::NAN);
                let d = shown(&q) - shown(&loss);
                out.line(format_args!("{name} {loss}  int8 {q} ({d:+.digits$})"))?
            }
            None => out.line(format_args!("{name} {loss:.digits$}"))?,
        }
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
    let source = match (args.lang, args.int8) {
        (Lang::Rust, false) => export::rust_source(model.as_ref(), &origin),
        (Lang::C, false) => export::c_source(model.as_ref(), &origin),
        (Lang::Rust, true) => export::rust_int8_source(model.as_ref(), &origin),
        (Lang::C, true) => export::c_int8_source(model.as_ref(), &origin),
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
