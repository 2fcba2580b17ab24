//! From a words file to training examples: read, shuffle, split 80/10/10 by words, and build the
//! context windows, as makemore does.

use crate::shown;
use crate::words::{self, BadWords, Rules, Words, parse_words};
use anyhow::{Context, Result, bail};
use charmlp_core::{Contexts, CountedExample, Example, Token};
use rand_mt::Mt;
use std::fs::File;
use std::io::BufReader;
use std::path::Path;

/// Name of the built-in list, for messages.
pub const BUILTIN_NAME: &str = "built-in census names";

/// 5,163 US Census 1990 first names (public domain); see `data/README.md`.
pub const BUILTIN_NAMES: &str = include_str!("../../data/census-1990-first-names.txt");

/// Fewest words for which the 80/10/10 split leaves no split empty.
pub const MIN_WORDS: usize = 10;

/// An input's name for messages: `standard input` for `-`.
pub fn input_name(path: &Path) -> String {
    if path.as_os_str() == "-" {
        "standard input".into()
    } else {
        shown(path)
    }
}

/// An input file, or standard input for `-`, with its name for messages.
pub fn open_input(path: &Path) -> std::io::Result<(String, Box<dyn std::io::Read>)> {
    let reader: Box<dyn std::io::Read> = if path.as_os_str() == "-" {
        Box::new(std::io::stdin().lock())
    } else {
        Box::new(File::open(path)?)
    };
    Ok((input_name(path), reader))
}

/// Reads `path` (`-`: standard input) up to one byte past `max`, so that the caller can tell an
/// input longer than `max` without reading the rest of it (`/dev/zero` ends at once). Returns
/// the input's name for messages and the bytes; `what` names the file in an error.
pub fn read_at_most(path: &Path, max: u64, what: &str) -> anyhow::Result<(String, Vec<u8>)> {
    use anyhow::Context;
    use std::io::Read;
    let (name, file) = open_input(path)
        .with_context(|| format!("{}: cannot read the {what}", crate::shown(path)))?;
    let mut bytes = Vec::new();
    file.take(max.saturating_add(1))
        .read_to_end(&mut bytes)
        .with_context(|| format!("{name}: cannot read the {what}"))?;
    Ok((name, bytes))
}

/// The words of a file (`-`: standard input; `None`: the built-in list), checked, as tokens of
/// their alphabet. The file is read as a stream, its limits applied while reading (see
/// [`crate::words`]).
pub fn read_words(path: Option<&Path>, rules: &Rules) -> Result<Words> {
    let (name, words) = match path {
        None => (
            BUILTIN_NAME.to_string(),
            parse_words(BUILTIN_NAMES.as_bytes(), rules),
        ),
        Some(p) => {
            let (name, file) = open_input(p)
                .with_context(|| format!("{}: cannot read the words file", shown(p)))?;
            (name, words::read_words(BufReader::new(file), rules))
        }
    };
    words.map_err(|e: BadWords| anyhow::anyhow!("{}", e.at(&name)))
}

/// The three splits' words, in makemore's order: train, validation, test.
pub type WordSplits = [Vec<Vec<Token>>; 3];

/// The three splits' examples and how many words each came from.
pub struct Splits<const T: usize> {
    pub train: Vec<Example<T>>,
    pub val: Vec<Example<T>>,
    pub test: Vec<Example<T>>,
    pub words: [usize; 3],
}

/// Shuffles the words and splits them as makemore does: `random.seed(seed)`,
/// `random.shuffle(words)`, then the first 80% train, the next 10% validation, the rest test.
/// The shuffle is Python's, draw for draw, so with seed 42 the splits hold the very words of
/// makemore's (and the PyTorch peer's) splits, and their losses compare directly.
pub fn split_words(mut words: Vec<Vec<Token>>, seed: u64) -> Result<WordSplits> {
    let n = words.len();
    if n < MIN_WORDS {
        bail!(
            "{}; an 80/10/10 split needs at least {MIN_WORDS}",
            crate::count(n as u64, "word")
        );
    }
    python_shuffle(&mut words, seed);
    let (n1, n2) = (n * 8 / 10, n * 9 / 10);
    let test = words.split_off(n2);
    let val = words.split_off(n1);
    Ok([words, val, test])
}

/// The examples of `words` with context `T`, in order: a word of n characters gives n + 1.
pub fn examples<const T: usize>(words: &[Vec<Token>]) -> Vec<Example<T>> {
    words.iter().flat_map(|w| Contexts::<T>::new(w)).collect()
}

/// A split's distinct examples and how often each occurs, sorted by context and then target:
/// what evaluation and calibration run on, one forward per context
/// ([`charmlp_core::Model::loss_counted`]). The order depends on the examples alone, so a loss
/// does not depend on the order of the words.
pub fn counted<const T: usize>(examples: &[Example<T>]) -> Vec<CountedExample<T>> {
    // foldhash's seeds are per process: crafted words cannot pick colliding keys in advance.
    let mut counts = foldhash::HashMap::<Example<T>, u64>::default();
    for &example in examples {
        *counts.entry(example).or_insert(0) += 1;
    }
    let mut counted: Vec<_> = counts
        .into_iter()
        .map(|(example, count)| CountedExample { example, count })
        .collect();
    // Compared as one integer (exact for contexts of up to 15 tokens; longer ones fall back to
    // the tokens on ties): a tenth of eval's time went to comparing tuples of arrays.
    counted.sort_unstable_by(|a, b| {
        let (ka, kb) = (sort_key(&a.example), sort_key(&b.example));
        ka.cmp(&kb).then_with(|| {
            (a.example.context, a.example.target).cmp(&(b.example.context, b.example.target))
        })
    });
    counted
}

/// The example's tokens, context first, as the bytes of an integer (the last 16 only).
fn sort_key<const T: usize>(example: &Example<T>) -> u128 {
    let tokens = example.context.iter().chain([&example.target]);
    tokens.fold(0, |key, t| key << 8 | u128::from(t.as_u8()))
}

/// Examples `words` give, whatever the context: one per character and one for the end.
pub fn example_count(words: &[Vec<Token>]) -> usize {
    words.iter().map(|w| w.len() + 1).sum()
}

/// [`split_words`], then each split's examples with context `T`.
pub fn split<const T: usize>(words: Vec<Vec<Token>>, seed: u64) -> Result<Splits<T>> {
    let [train, val, test] = split_words(words, seed)?;
    Ok(Splits {
        train: examples(&train),
        val: examples(&val),
        test: examples(&test),
        words: [train.len(), val.len(), test.len()],
    })
}

/// CPython's `random.seed(seed); random.shuffle(xs)`.
///
/// `seed` keys MT19937's `init_by_array` with its 32-bit words, least significant first (one
/// word for seeds below 2³²); `shuffle` swaps each `xs[i]`, from the last down, with
/// `xs[randbelow(i + 1)]`, and `randbelow(n)` draws `getrandbits(bit_length(n))` (the top
/// bits of one 32-bit output) until the value is below n.
pub fn python_shuffle<X>(xs: &mut [X], seed: u64) {
    let key: &[u32] = if seed >> 32 == 0 {
        &[seed as u32]
    } else {
        &[seed as u32, (seed >> 32) as u32]
    };
    let mut mt = Mt::new_with_key(key.iter().copied());
    for i in (1..xs.len()).rev() {
        let n = i as u64 + 1;
        let bits = 64 - n.leading_zeros();
        // Words beyond 2³² would need getrandbits over several outputs; read_words cannot
        // produce that many from memory anyway.
        let j = loop {
            let r = u64::from(mt.next_u32() >> (32 - bits.min(32)));
            if r < n {
                break r;
            }
        };
        xs.swap(i, j as usize);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The built-in names' examples counted: each distinct example once, with its count, in
    /// order of context and target (as an ordered map counts them), whatever the order of the
    /// words; for contexts of 3 and 8.
    #[test]
    fn counted_examples_are_each_distinct_one_once() {
        fn by_map<const T: usize>(all: &[Example<T>]) -> Vec<CountedExample<T>> {
            let mut map = std::collections::BTreeMap::new();
            for e in all {
                *map.entry((e.context, e.target)).or_insert(0u64) += 1;
            }
            let example = |(context, target)| Example { context, target };
            map.into_iter()
                .map(|(k, count)| CountedExample {
                    example: example(k),
                    count,
                })
                .collect()
        }
        let words = read_words(None, &Rules::default()).unwrap().words;
        let all = examples::<3>(&words);
        let c = counted(&all);
        assert_eq!(c, by_map(&all));
        assert!(c.len() * 4 < all.len(), "{} of {}", c.len(), all.len());
        let mut reversed = words.clone();
        reversed.reverse();
        assert_eq!(counted(&examples::<3>(&reversed)), c);
        let all = examples::<8>(&words);
        assert_eq!(counted(&all), by_map(&all));
    }

    #[test]
    fn builtin_list_is_the_census_names() {
        let words = read_words(None, &Rules::default()).unwrap();
        assert_eq!(words.words.len(), 5_163);
        assert_eq!(words.symbols(), 27);
        let first: String = words.words[0]
            .iter()
            .map(|t| words.chars[t.index() - 1])
            .collect();
        assert_eq!(first, "mary");
    }

    #[test]
    fn split_is_80_10_10_of_the_words_and_every_word_lands_once() {
        let words: Vec<Vec<Token>> = (0..1000u32)
            .map(|i| vec![Token::wrapping((i % 26 + 1) as u8, 27); (i % 7 + 1) as usize])
            .collect();
        let total_examples: usize = words.iter().map(|w| w.len() + 1).sum();
        let s = split::<3>(words, 1).unwrap();
        assert_eq!(s.words, [800, 100, 100]);
        assert_eq!(s.train.len() + s.val.len() + s.test.len(), total_examples);
        // Each word ends with exactly one example whose target is the boundary.
        let ends = |xs: &[Example<3>]| xs.iter().filter(|e| e.target == Token::BOUNDARY).count();
        assert_eq!(
            [ends(&s.train), ends(&s.val), ends(&s.test)],
            [800, 100, 100]
        );
    }

    #[test]
    fn shuffle_is_pythons() {
        // Printed by CPython 3.11: `random.seed(s); x = list(range(20)); random.shuffle(x)`.
        let cases: [(u64, [u8; 20]); 3] = [
            (
                7,
                [
                    17, 15, 11, 18, 7, 6, 19, 3, 14, 0, 9, 5, 16, 8, 13, 2, 1, 12, 4, 10,
                ],
            ),
            (
                0,
                [
                    10, 18, 16, 14, 0, 17, 11, 2, 3, 9, 5, 7, 4, 19, 6, 15, 8, 1, 13, 12,
                ],
            ),
            (
                (1 << 40) + 5,
                [
                    9, 7, 17, 13, 4, 18, 5, 6, 10, 11, 3, 14, 12, 15, 2, 1, 0, 8, 19, 16,
                ],
            ),
        ];
        for (seed, want) in cases {
            let mut x: Vec<u8> = (0..20).collect();
            python_shuffle(&mut x, seed);
            assert_eq!(x, want, "seed {seed}");
        }
    }

    #[test]
    fn seed_42_splits_names_txt_as_makemore_does() {
        // CPython 3.11: `w = open("names.txt").read().splitlines(); random.seed(42);
        // random.shuffle(w)`, then w[:3], w[25626:25629] (validation starts) and w[-3:].
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/data/names.txt");
        let Words {
            mut words, chars, ..
        } = read_words(Some(&path), &Rules::default()).unwrap();
        python_shuffle(&mut words, 42);
        let text = |ws: &[Vec<Token>]| -> Vec<String> {
            ws.iter()
                .map(|w| w.iter().map(|t| chars[t.index() - 1]).collect())
                .collect()
        };
        assert_eq!(text(&words[..3]), ["yuheng", "diondre", "xavien"]);
        assert_eq!(text(&words[25626..25629]), ["amay", "aytana", "jenevi"]);
        assert_eq!(
            text(&words[words.len() - 3..]),
            ["opal", "zaylynn", "yovani"]
        );
    }

    #[test]
    fn too_few_words_is_an_error() {
        let words = vec![vec![Token::wrapping(1, 27)]; MIN_WORDS - 1];
        let e = split::<3>(words, 1).err().unwrap();
        assert_eq!(
            e.to_string(),
            "9 words; an 80/10/10 split needs at least 10"
        );
        let words = vec![vec![Token::wrapping(1, 27)]; MIN_WORDS];
        let s = split::<3>(words, 1).unwrap();
        assert_eq!(s.words, [8, 1, 1]);
    }
}
