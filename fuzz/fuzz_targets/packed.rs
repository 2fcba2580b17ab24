//! The packed words reader (`charmlp_core::packed`, what firmware trains from) on any bytes,
//! twice: as they are, and resealed (the checksum made right) so that the checks behind it are
//! reached. No panic; what parses gives, in every split, examples whose tokens are below its
//! symbols, contexts that are a word's last letters, and, written again from its words, the
//! same bytes (one packed form per split of words).
#![no_main]

use charmlp_core::Token;
use charmlp_core::packed::{Packed, file_len, reseal, write};
use libfuzzer_sys::fuzz_target;

fn check(data: &[u8]) {
    let Ok(packed) = Packed::parse(data) else {
        return;
    };
    let symbols = packed.symbols();
    let splits = [0, 1, 2].map(|s| packed.split(s));
    // Each split's words, from its examples' targets (context 1: a boundary starts a word).
    let mut words: [Vec<Vec<Token>>; 3] = Default::default();
    for (split, words) in splits.iter().zip(&mut words) {
        let mut word = Vec::new();
        for ex in split.examples::<3>() {
            assert!(ex.target.index() < symbols && ex.context.iter().all(|t| t.index() < symbols));
            let want: Vec<Token> = word.iter().rev().take(3).rev().copied().collect();
            let have: Vec<Token> = ex
                .context
                .iter()
                .copied()
                .skip_while(|t| *t == Token::BOUNDARY)
                .collect();
            assert_eq!(have, want, "a context is its word's last letters");
            if ex.target == Token::BOUNDARY {
                words.push(std::mem::take(&mut word));
            } else {
                word.push(ex.target);
            }
        }
        assert!(word.is_empty(), "every split ends with a whole word");
    }
    let total: usize = splits.iter().map(|s| s.len()).sum();
    let alphabet = packed.alphabet();
    let mut out = vec![0; file_len(total as u64, symbols as u16, alphabet.len()) as usize];
    let [a, b, c] = words.each_ref().map(|w| w.iter().map(|w| &w[..]));
    let (mut a, mut b, mut c) = (a, b, c);
    let n = write([&mut a, &mut b, &mut c], symbols as u16, alphabet, &mut out)
        .expect("what parses can be written");
    assert_eq!(&out[..n], data, "written again, the same bytes");
}

fuzz_target!(|data: &[u8]| {
    check(data);
    let mut sealed = data.to_vec();
    reseal(&mut sealed);
    check(&sealed);
});
