//! The words-file reader on any bytes, with rules drawn from the first byte (lowercasing, a
//! fixed a–z alphabet, skipping): no panic; what it accepts are words of 1 to 64 tokens of an
//! alphabet of sorted, distinct, printable characters (the given one, if given) that fits a
//! model, and the split puts every word's examples in exactly one split.
#![no_main]

use charmlp::data::{MIN_WORDS, split};
use charmlp::words::{Alphabet, GIVEN, MAX_WORD_LEN, Rules, parse_words};
use charmlp_core::MAX_SYMBOLS;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let flags = data.first().copied().unwrap_or(0);
    let given: Vec<char> = ('a'..='z').collect();
    let rules = Rules {
        lowercase: flags & 1 != 0,
        alphabet: (flags & 2 != 0).then(|| Alphabet {
            chars: given.clone(),
            source: GIVEN,
        }),
        skip_bad_words: flags & 4 != 0,
    };
    let Ok(words) = parse_words(data, &rules) else {
        return;
    };
    assert!(!words.words.is_empty());
    assert!(words.symbols() <= MAX_SYMBOLS);
    assert!(words.chars.windows(2).all(|w| w[0] < w[1]));
    assert!(words.chars.iter().all(|c| !c.is_control()));
    if rules.alphabet.is_some() {
        assert_eq!(words.chars, given);
    } else {
        assert_eq!(words.skipped, 0);
    }
    for w in &words.words {
        assert!(!w.is_empty() && w.len() <= MAX_WORD_LEN);
        assert!(w.iter().all(|t| (1..words.symbols()).contains(&t.index())));
    }
    let examples: usize = words.words.iter().map(|w| w.len() + 1).sum();
    let n = words.words.len();
    match split::<3>(words.words, 42) {
        Ok(s) => {
            assert!(n >= MIN_WORDS);
            assert_eq!(s.train.len() + s.val.len() + s.test.len(), examples);
            assert_eq!(s.words.iter().sum::<usize>(), n);
        }
        Err(_) => assert!(n < MIN_WORDS),
    }
});
