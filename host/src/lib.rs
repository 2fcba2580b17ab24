//! The `charmlp` command line as a library: words files, splits, model files, export, and the
//! commands themselves (the binary is a thin `main`).

pub mod bench;
pub mod cli;
pub mod data;
pub mod export;
pub mod modelfile;
pub mod plot;
pub mod progress;
pub mod train;
pub mod words;

use anyhow::{Result, anyhow};
use charmlp_core::{CONTEXT, EMBED, InferState, Model, Temperature};
use cli::{Command, EvalArgs, ExportArgs, SampleArgs};
use data::{read_words, split};
use export::Lang;
use modelfile::{load, write_atomic};
use rand_core::SeedableRng;
use rand_xoshiro::Xoshiro256PlusPlus;

/// The independent random streams one seed gives (the split uses Python's generator; see
/// [`data::python_shuffle`]).
#[derive(Clone, Copy, Debug)]
pub enum Stream {
    Init = 1,
    Batches = 2,
    Samples = 3,
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

/// Prints `count` names sampled with the seed's sample stream, one a line.
pub fn print_names<const H: usize>(
    model: &Model<EMBED, CONTEXT, H>,
    count: usize,
    seed: u64,
    temperature: Temperature,
    state: &mut InferState<H>,
) {
    let mut rng = stream(seed, Stream::Samples);
    for _ in 0..count {
        let name: heapless::String<MAX_NAME_LEN> = model.sample_name(&mut rng, temperature, state);
        println!("{name}");
    }
}

pub fn run(command: Command) -> Result<()> {
    match command {
        Command::Train(args) => train::run(&args),
        Command::Sample(args) => sample(&args),
        Command::Eval(args) => eval(&args),
        Command::Export(args) => export(&args),
        Command::Bench(args) => bench::run(&args),
    }
}

fn sample(args: &SampleArgs) -> Result<()> {
    let temperature = Temperature::new(args.temperature)
        .ok_or_else(|| anyhow!("--temperature {}: must be positive", args.temperature))?;
    with_model!(load(&args.model)?, m => {
        print_names(&m, args.count, args.seed, temperature, &mut InferState::new());
    });
    Ok(())
}

fn eval(args: &EvalArgs) -> Result<()> {
    let model = load(&args.model)?;
    let words = read_words(Some(&args.data))?;
    let splits =
        split::<CONTEXT>(words, args.seed).map_err(|e| anyhow!("{}: {e}", args.data.display()))?;
    with_model!(model, m => {
        let mut state = InferState::new();
        for (name, examples) in [("train", &splits.train), ("val", &splits.val), ("test", &splits.test)] {
            let loss = m.loss(examples, &mut state).unwrap_or(f64::NAN);
            println!("{name} {loss:.4}");
        }
    });
    Ok(())
}

fn export(args: &ExportArgs) -> Result<()> {
    let origin = args.model.file_name().map_or_else(
        || args.model.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    );
    let source = with_model!(load(&args.model)?, m => match args.lang {
        Lang::Rust => export::rust_source(&m, &origin),
        Lang::C => export::c_source(&m, &origin),
    });
    write_atomic(&args.out, source.as_bytes())?;
    println!(
        "export: wrote {} ({} bytes)",
        args.out.display(),
        source.len()
    );
    Ok(())
}
