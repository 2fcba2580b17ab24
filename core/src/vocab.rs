//! The 27-character vocabulary and the context windows a word becomes.

/// Vocabulary size: `.` (start and end of a word) and `a`..`z`.
pub const V: usize = 27;

const ALPHABET: &[u8; V] = b".abcdefghijklmnopqrstuvwxyz";

/// One character of the vocabulary, as its index 0..27.
///
/// Only the constructors make one, so every `Token` indexes a `[_; V]` array in range: a
/// batch built from tokens cannot index past the embedding table.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
#[repr(transparent)]
pub struct Token(u8);

impl Token {
    /// `.`: pads the context before a word's first letter and is the target after its last.
    pub const DOT: Token = Token(0);

    /// The token with index `ix`, if `ix < 27`.
    pub const fn from_index(ix: u8) -> Option<Token> {
        if (ix as usize) < V {
            Some(Token(ix))
        } else {
            None
        }
    }

    /// `.` → 0, `a`..`z` → 1..26; anything else (uppercase too) is not in the vocabulary.
    pub const fn from_char(ch: char) -> Option<Token> {
        match ch {
            '.' => Some(Token::DOT),
            'a'..='z' => Some(Token(ch as u8 - b'a' + 1)),
            _ => None,
        }
    }

    /// The token with index `ix mod 27`: for generators of test data and fuzzers, which need a
    /// valid token from any byte.
    pub const fn wrapping(ix: u8) -> Token {
        Token(ix % V as u8)
    }

    pub const fn index(self) -> usize {
        self.0 as usize
    }

    pub const fn as_u8(self) -> u8 {
        self.0
    }

    pub const fn to_char(self) -> char {
        ALPHABET[self.0 as usize] as char
    }

    /// All 27 tokens in index order.
    pub fn all() -> impl Iterator<Item = Token> {
        (0..V as u8).map(Token)
    }
}

/// One training example: `T` tokens of context and the token that follows them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Example<const T: usize> {
    pub context: [Token; T],
    pub target: Token,
}

/// The examples of one word, as makemore builds them: the context starts as `T` dots, each
/// letter is a target and then joins the context, and a final `.` is the target after the
/// last letter. A word of `n` letters gives `n + 1` examples.
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
            context: [Token::DOT; T],
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
                Token::DOT
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
    fn chars_round_trip_and_nothing_else_maps() {
        for t in Token::all() {
            assert_eq!(Token::from_char(t.to_char()), Some(t));
        }
        assert_eq!(Token::from_char('.').map(Token::index), Some(0));
        assert_eq!(Token::from_char('a').map(Token::index), Some(1));
        assert_eq!(Token::from_char('z').map(Token::index), Some(26));
        for bad in ['A', 'Z', '`', '{', ' ', '-', 'é', '\n', '0'] {
            assert_eq!(Token::from_char(bad), None, "{bad:?}");
        }
        assert_eq!(Token::from_index(26).map(Token::to_char), Some('z'));
        assert_eq!(Token::from_index(27), None);
        assert_eq!(Token::wrapping(27), Token::DOT);
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
