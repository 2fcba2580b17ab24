//! Sampled names as makemore reports them: each marked `train`, `val`, `test` (a word of that
//! split of the training data) or `new`, with a summary of how many are new; `--new-only`
//! keeps drawing until it has the names asked for, all new.

use crate::shapes::{Loaded, Quantized};
use crate::stdout::{self, Out};
use crate::{Stream, count, stream};
use anyhow::Result;
use charmlp_core::{Sampling, Token};
use std::collections::HashMap;

/// The split each word of the training data is in.
pub struct Marks {
    split: HashMap<String, usize>,
}

/// The splits' names, in `WordSplits` order.
pub const SPLITS: [&str; 3] = ["train", "val", "test"];

impl Marks {
    /// The words of `splits` (tokens of the model's alphabet `chars`).
    pub fn new(splits: &[Vec<Vec<Token>>; 3], chars: &[char]) -> Marks {
        let mut split = HashMap::new();
        for (i, words) in splits.iter().enumerate() {
            for word in words {
                let text: String = word
                    .iter()
                    .filter_map(|t| chars.get(t.index().wrapping_sub(1)))
                    .collect();
                // A word in two splits (a repeated line) is marked by the first: train.
                split.entry(text).or_insert(i);
            }
        }
        Marks { split }
    }

    /// `train`, `val`, `test` or `new`.
    pub fn of(&self, name: &str) -> &'static str {
        self.split.get(name).map_or("new", |&i| SPLITS[i])
    }
}

/// Draws in a row without a new name after which `--new-only` gives up: a model that only ever
/// repeats its training words (greedy decoding, say) must not loop forever, and one that finds
/// new names now and then goes on as long as it does.
pub const MISSES_IN_A_ROW: u64 = 1000;

/// What a run of [`print`] drew.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Tally {
    pub printed: u64,
    pub drawn: u64,
    /// Names drawn in each split (train, val, test) and new ones.
    pub in_split: [u64; 3],
    pub new: u64,
    /// The names printed and their marks, kept for a JSON report (`--json`) only.
    pub names: Vec<(String, &'static str)>,
}

impl Tally {
    /// The summary line: `new: 15 of 20 names (75%); 3 in train, 1 in val, 1 in test`.
    pub fn summary(&self) -> String {
        let pct = |n: u64| 100.0 * n as f64 / self.drawn.max(1) as f64;
        format!(
            "new: {} of {} ({:.0}%); {} in train, {} in val, {} in test",
            self.new,
            count(self.drawn, "name"),
            pct(self.new),
            self.in_split[0],
            self.in_split[1],
            self.in_split[2]
        )
    }
}

/// The model [`print`] draws from: the f32 model with makemore's options, or its int8 form.
#[derive(Clone, Copy)]
pub enum Drawn<'a> {
    F32(&'a dyn Loaded, &'a Sampling<'a>),
    Int8(&'a dyn Quantized),
}

/// Names drawn at once by [`print`].
const BLOCK: u64 = 4096;

/// Prints `n` names drawn from the seed's sample stream (name i with the generator
/// [`crate::shapes::name_rng`] derives from the stream's first output and i), one a line, each
/// followed by a tab and its mark when `marks` is given; with `new_only`, only new names (not empty ones),
/// giving up after [`MISSES_IN_A_ROW`] draws without one. Stops early once stdout's reader has
/// gone.
pub fn print(
    out: &mut Out,
    model: Drawn<'_>,
    n: u64,
    seed: u64,
    marks: Option<&Marks>,
    new_only: bool,
) -> Result<Tally> {
    use rand_core::Rng;
    let base = stream(seed, Stream::Samples).next_u64();
    let mut tally = Tally::default();
    let mut misses = 0;
    // Names are drawn a block at a time (each depends on its index alone) and printed in order.
    let mut block = std::collections::VecDeque::new();
    let mut drawn = 0u64;
    while tally.printed < n && !(new_only && misses >= MISSES_IN_A_ROW) {
        if stdout::closed() {
            break;
        }
        if block.is_empty() {
            // Enough for the names still wanted (a --new-only run skips some): at least a name
            // for every lane side by side, at most 4,096.
            let wanted = (n - tally.printed).saturating_mul(if new_only { 2 } else { 1 });
            let count = wanted.clamp(crate::shapes::SAMPLE_LANES as u64, BLOCK) as usize;
            block.extend(match model {
                Drawn::F32(model, how) => model.sample_names(base, drawn, count, how),
                Drawn::Int8(model) => model.sample_names(base, drawn, count),
            });
            drawn += count as u64;
        }
        let Some(name) = block.pop_front() else {
            break;
        };
        tally.drawn += 1;
        let mark = marks.map(|m| m.of(&name));
        match mark {
            Some("new") => tally.new += 1,
            Some(split) => {
                if let Some(i) = SPLITS.iter().position(|s| *s == split) {
                    tally.in_split[i] += 1;
                }
            }
            None => {}
        }
        if new_only && (mark != Some("new") || name.is_empty()) {
            misses += 1;
            continue;
        }
        misses = 0;
        tally.printed += 1;
        if out.is_json() {
            tally.names.push((name.to_string(), mark.unwrap_or("")));
        }
        match mark {
            Some(mark) => out.line(format_args!("{name}\t{mark}"))?,
            None => out.line(name)?,
        }
    }
    Ok(tally)
}
