//! `charmlp pack`: a words file's train/val/test split as a compact file for flash
//! (`charmlp_core::packed`): one code of a few bits per example, in split order, so that
//! firmware trains on the same examples as `train` from their indices alone.

use crate::cli::PackArgs;
use crate::data::{example_count, read_words, split_words};
use crate::stdout::Out;
use crate::{count, outputs, shown};
use anyhow::{Context, Result, anyhow};
use charmlp_core::packed;

pub fn run(args: &PackArgs) -> Result<()> {
    let inputs = args.reading.inputs();
    let [target] = outputs::check(&inputs, &[("--out", &args.out)])?
        .try_into()
        .map_err(|_| anyhow!("one output expected"))?;
    let rules = args.reading.rules();
    let words = read_words(args.reading.data.as_deref(), &rules)?;
    let source = args.reading.source();
    // Below MAX_SYMBOLS (128) by the reader's rule, so within u16 and 7 bits.
    let symbols = u16::try_from(words.symbols()).context("too many symbols")?;
    let alphabet: String = words.chars.iter().collect();
    let mut splits = split_words(words.words, args.split_seed).with_context(|| source.clone())?;
    if let Some(only) = args.only {
        for (i, split) in splits.iter_mut().enumerate() {
            if i != only as usize {
                split.clear();
            }
        }
    }
    let examples = splits.each_ref().map(|s| example_count(s));
    let total: usize = examples.iter().sum();
    let len = packed::file_len(total as u64, symbols, alphabet.len());
    let mut bytes = vec![0; usize::try_from(len).context("too many examples to pack")?];
    let [mut train, mut val, mut test] = splits.each_ref().map(|s| s.iter().map(|w| &w[..]));
    let n = packed::write(
        [&mut train, &mut val, &mut test],
        symbols,
        &alphabet,
        &mut bytes,
    )
    .ok_or_else(|| {
        anyhow!("{source}: {total} examples; a packed file holds fewer than 2^32 in a split")
    })?;
    bytes.truncate(n);
    target.write(&bytes)?;
    let mut out = Out::new(true);
    out.line(format_args!(
        "pack: wrote {} ({} bytes): {} of {source} (split seed {}), {} {} / {} / {} \
         (train/val/test), {} symbols at {} bits",
        shown(&args.out),
        n,
        count(splits.iter().map(Vec::len).sum::<usize>() as u64, "word"),
        args.split_seed,
        "examples",
        examples[0],
        examples[1],
        examples[2],
        symbols,
        packed::bits_for(symbols),
    ))?;
    out.flush()
}
