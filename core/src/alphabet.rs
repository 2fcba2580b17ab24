//! The alphabet: which character each token stands for, in a fixed-capacity structure.
//!
//! Token 0 is the boundary (start and end of a word); it is not a character of the data, so a
//! `.` inside a word is an ordinary character. Tokens 1.. are the data's characters (Unicode
//! scalar values) in increasing order, as makemore's `sorted(set(''.join(words)))`: on a–z data
//! that is makemore's 27 symbols in makemore's order.
//!
//! A model type of vocabulary capacity `V` holds alphabets of up to `V` symbols; the symbols
//! past the alphabet are absent (see [`crate::Params::init_with_symbols`]).

use crate::vocab::Token;
use core::fmt;

/// The largest vocabulary (boundary included) a token can index: the largest capacity built.
pub const MAX_SYMBOLS: usize = 128;

/// Up to `V` symbols: the boundary and the data's characters, sorted.
/// Size: 4·V + 4 bytes (112 for makemore's 27).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Alphabet<const V: usize> {
    /// `chars[1..len]` are the characters of tokens 1..len; `chars[0]` and the rest are `'\0'`.
    chars: [char; V],
    len: u32,
}

/// Why a list of characters is not an alphabet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AlphabetError {
    /// With the boundary, more symbols than the capacity.
    TooMany { symbols: usize, capacity: usize },
    /// Characters must be strictly increasing (sorted, each once): `previous` then `found`.
    NotIncreasing { previous: char, found: char },
    /// A control character (NUL, tab, newline, …) cannot be part of a word.
    Control(char),
}

impl fmt::Display for AlphabetError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AlphabetError::TooMany { symbols, capacity } => write!(
                f,
                "{symbols} symbols (the boundary and {} characters); at most {capacity} fit",
                symbols - 1
            ),
            AlphabetError::NotIncreasing { previous, found } => write!(
                f,
                "characters out of order or repeated: {:?} after {:?}",
                found, previous
            ),
            AlphabetError::Control(ch) => {
                write!(f, "control character U+{:04X} in the alphabet", *ch as u32)
            }
        }
    }
}

impl core::error::Error for AlphabetError {}

impl Alphabet<27> {
    /// makemore's vocabulary: the boundary, then a–z.
    pub const MAKEMORE: Alphabet<27> = {
        let mut chars = ['\0'; 27];
        let mut i = 1;
        while i < 27 {
            chars[i] = (b'a' + (i as u8 - 1)) as char;
            i += 1;
        }
        Alphabet { chars, len: 27 }
    };
}

impl<const V: usize> Alphabet<V> {
    /// The alphabet of `chars`, the data's characters: strictly increasing, no control
    /// characters, and with the boundary at most `V` symbols. `const`, so that firmware can
    /// hold an exported alphabet in a `static`.
    pub const fn new(chars: &[char]) -> Result<Self, AlphabetError> {
        let symbols = chars.len() + 1;
        if symbols > V || symbols > MAX_SYMBOLS {
            let capacity = if V < MAX_SYMBOLS { V } else { MAX_SYMBOLS };
            return Err(AlphabetError::TooMany { symbols, capacity });
        }
        let mut out = Alphabet {
            chars: ['\0'; V],
            len: symbols as u32,
        };
        let mut i = 0;
        while i < chars.len() {
            let ch = chars[i];
            if is_control(ch) {
                return Err(AlphabetError::Control(ch));
            }
            if i > 0 && chars[i - 1] as u32 >= ch as u32 {
                return Err(AlphabetError::NotIncreasing {
                    previous: chars[i - 1],
                    found: ch,
                });
            }
            out.chars[i + 1] = ch;
            i += 1;
        }
        Ok(out)
    }

    /// Symbols, the boundary included: the model's vocabulary size.
    pub const fn len(&self) -> usize {
        self.len as usize
    }

    /// Never: every alphabet has the boundary.
    pub const fn is_empty(&self) -> bool {
        false
    }

    /// The data's characters, in token order (token i + 1 is `chars()[i]`).
    pub fn chars(&self) -> &[char] {
        &self.chars[1..self.len()]
    }

    /// The token of a character, if the alphabet has it.
    pub fn token(&self, ch: char) -> Option<Token> {
        let i = self.chars().binary_search(&ch).ok()?;
        Token::from_index((i + 1) as u8)
    }

    /// The character of a token; `None` for the boundary and for tokens past the alphabet.
    pub fn char_of(&self, token: Token) -> Option<char> {
        let i = token.index();
        (i > 0 && i < self.len()).then(|| self.chars[i])
    }

    /// The same alphabet in a structure of another capacity, if it fits.
    pub fn resized<const W: usize>(&self) -> Result<Alphabet<W>, AlphabetError> {
        Alphabet::new(self.chars())
    }
}

/// Unicode's control characters (category Cc: U+0000–U+001F and U+007F–U+009F), as
/// `char::is_control`, in a `const fn`.
pub const fn is_control(ch: char) -> bool {
    let c = ch as u32;
    c <= 0x1f || (c >= 0x7f && c <= 0x9f)
}

impl<const V: usize> fmt::Debug for Alphabet<V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Alphabet").field(&self.chars()).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn makemores_alphabet_is_its_27_symbols_in_order() {
        let a = Alphabet::MAKEMORE;
        assert_eq!(a.len(), 27);
        assert_eq!(a.chars().len(), 26);
        assert_eq!(a.token('a').map(Token::index), Some(1));
        assert_eq!(a.token('z').map(Token::index), Some(26));
        assert_eq!(a.char_of(Token::BOUNDARY), None);
        for bad in ['.', 'A', '`', '{', ' ', 'é', '\0'] {
            assert_eq!(a.token(bad), None, "{bad:?}");
        }
        let letters: [char; 26] = core::array::from_fn(|i| (b'a' + i as u8) as char);
        assert_eq!(Alphabet::<27>::new(&letters), Ok(a));
    }

    #[test]
    fn any_sorted_characters_round_trip() {
        let chars = [' ', '\'', '-', '.', 'a', 'ß', 'é', 'я', '中'];
        let a = Alphabet::<16>::new(&chars).unwrap();
        assert_eq!(a.len(), 10);
        for (i, &ch) in chars.iter().enumerate() {
            let t = a.token(ch).unwrap();
            assert_eq!(t.index(), i + 1);
            assert_eq!(a.char_of(t), Some(ch));
        }
        assert_eq!(a.char_of(Token::from_index(10).unwrap()), None);
        assert_eq!(a.resized::<10>().map(|b| b.len()), Ok(10));
        assert_eq!(
            a.resized::<9>(),
            Err(AlphabetError::TooMany {
                symbols: 10,
                capacity: 9
            })
        );
    }

    #[test]
    fn unsorted_repeated_and_control_characters_are_refused() {
        assert_eq!(
            Alphabet::<8>::new(&['b', 'a']),
            Err(AlphabetError::NotIncreasing {
                previous: 'b',
                found: 'a'
            })
        );
        assert!(Alphabet::<8>::new(&['a', 'a']).is_err());
        assert_eq!(
            Alphabet::<8>::new(&['\t']),
            Err(AlphabetError::Control('\t'))
        );
        assert_eq!(Alphabet::<8>::new(&[]).map(|a| a.len()), Ok(1));
    }

    #[test]
    fn the_const_control_test_is_unicodes() {
        for c in (0..0x3000).filter_map(char::from_u32) {
            assert_eq!(is_control(c), c.is_control(), "{c:?}");
        }
        // An alphabet built at compile time, as exported firmware sources build theirs.
        const A: Alphabet<4> = match Alphabet::new(&['a', 'é', '中']) {
            Ok(a) => a,
            Err(_) => panic!(),
        };
        assert_eq!(A.char_of(Token::from_index(3).unwrap()), Some('中'));
    }

    #[test]
    fn size_is_as_documented() {
        assert_eq!(core::mem::size_of::<Alphabet<27>>(), 112);
        assert_eq!(core::mem::size_of::<Alphabet<128>>(), 516);
    }
}
