//! The words-file reader on any bytes: no panic; what it accepts are words of 1 to 64 letters,
//! and the split puts every word's examples in exactly one split.
#![no_main]

use charmlp::data::{MIN_WORDS, split};
use charmlp::words::{MAX_WORD_LEN, parse_words};
use charmlp_core::Token;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(words) = parse_words(data) else { return };
    assert!(!words.is_empty());
    for w in &words {
        assert!(!w.is_empty() && w.len() <= MAX_WORD_LEN);
        assert!(w.iter().all(|&t| t != Token::DOT));
    }
    let examples: usize = words.iter().map(|w| w.len() + 1).sum();
    let n = words.len();
    match split::<3>(words, 42) {
        Ok(s) => {
            assert!(n >= MIN_WORDS);
            assert_eq!(s.train.len() + s.val.len() + s.test.len(), examples);
            assert_eq!(s.words.iter().sum::<usize>(), n);
        }
        Err(_) => assert!(n < MIN_WORDS),
    }
});
