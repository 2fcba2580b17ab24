//! Tokens and the context windows a word becomes.

use crate::alphabet::MAX_SYMBOLS;

/// makemore's vocabulary size: the boundary and `a`..`z` (see [`crate::Alphabet::MAKEMORE`]).
pub const VOCAB: usize = 27;

/// One symbol of a vocabulary, as its index: 0 is the boundary, 1.. the alphabet's characters.
///
/// Below [`MAX_SYMBOLS`] by construction. A model of capacity V indexes its `[_; V]` rows with
/// it (bounds-checked): the tokens a program feeds a model come from the model's
/// [`crate::Alphabet`], which holds at most V symbols.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
#[repr(transparent)]
pub struct Token(u8);

impl Token {
    /// The boundary: pads the context before a word's first character and is the target after
    /// its last. Not a character of the data.
    pub const BOUNDARY: Token = Token(0);

    /// The token with index `ix`, if `ix < MAX_SYMBOLS`.
    pub const fn from_index(ix: u8) -> Option<Token> {
        if (ix as usize) < MAX_SYMBOLS {
            Some(Token(ix))
        } else {
            None
        }
    }

    /// The token with index `ix mod symbols` (`symbols` in 1..=MAX_SYMBOLS): for generators of
    /// test data and fuzzers, which need a valid token from any byte.
    pub const fn wrapping(ix: u8, symbols: usize) -> Token {
        Token((ix as usize % symbols) as u8)
    }

    pub const fn index(self) -> usize {
        self.0 as usize
    }

    pub const fn as_u8(self) -> u8 {
        self.0
    }
}

/// One training example: `T` tokens of context and the token that follows them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Example<const T: usize> {
    pub context: [Token; T],
    pub target: Token,
}

/// An example and how many times a split holds it. A split as its distinct examples, grouped
/// by context, is what a host evaluates and calibrates on: names.txt's 228,146 examples are
/// 24,783 distinct ones in 5,686 contexts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CountedExample<const T: usize> {
    pub example: Example<T>,
    pub count: u64,
}

/// The examples of one word, as makemore builds them: the context starts as `T` boundaries,
/// each letter is a target and then joins the context, and the boundary is the target after
/// the last letter. A word of `n` letters gives `n + 1` examples.
#[derive(Clone, Debug)]
pub struct Contexts<'a, const T: usize> {
    letters: core::slice::Iter<'a, Token>,
    context: [Token; T],
    done: bool,
}

impl<'a, const T: usize> Contexts<'a, T> {
    pub fn new(letters: &'a [Token]) -> Self {
        Contexts {
            letters: letters.iter(),
            context: [Token::BOUNDARY; T],
            done: false,
        }
    }
}

impl<const T: usize> Iterator for Contexts<'_, T> {
    type Item = Example<T>;

    fn next(&mut self) -> Option<Example<T>> {
        if self.done {
            return None;
        }
        let target = match self.letters.next() {
            Some(&letter) => letter,
            None => {
                self.done = true;
                Token::BOUNDARY
            }
        };
        let example = Example {
            context: self.context,
            target,
        };
        if T > 0 {
            self.context.rotate_left(1);
            self.context[T - 1] = target;
        }
        Some(example)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_stay_below_the_largest_vocabulary() {
        assert_eq!(Token::from_index(0), Some(Token::BOUNDARY));
        assert_eq!(Token::from_index(127).map(Token::index), Some(127));
        assert_eq!(Token::from_index(128), None);
        assert_eq!(Token::wrapping(27, 27), Token::BOUNDARY);
        assert_eq!(Token::wrapping(255, 128).index(), 127);
    }

    #[test]
    fn contexts_of_a_word_are_makemores() {
        // "emma" → ... → e, ..e → m, .em → m, emm → a, mma → .
        let word: [Token; 4] = [5, 13, 13, 1].map(|i| Token::from_index(i).unwrap());
        let mut got = [([0u8; 3], 0u8); 5];
        let mut n = 0;
        for (slot, ex) in got.iter_mut().zip(Contexts::<3>::new(&word)) {
            *slot = (ex.context.map(Token::as_u8), ex.target.as_u8());
            n += 1;
        }
        assert_eq!(n, 5);
        assert_eq!(
            got,
            [
                ([0, 0, 0], 5),
                ([0, 0, 5], 13),
                ([0, 5, 13], 13),
                ([5, 13, 13], 1),
                ([13, 13, 1], 0),
            ]
        );
        assert_eq!(Contexts::<3>::new(&word).count(), 5);
        assert_eq!(Contexts::<3>::new(&[]).count(), 1);
    }
}
