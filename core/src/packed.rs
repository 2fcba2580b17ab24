//! A words file's three splits packed for flash: one code of a few bits per example.
//!
//! makemore's examples of a word are its letters and then the boundary, each the target of the
//! T symbols before it. Written in split order (train, val, test), each word's letters followed
//! by code 0 (the boundary), the codes are exactly the examples' targets, one per example, and
//! example i's context is the codes before it back to the last boundary: nothing else needs
//! storing, and a device builds any example on the fly from its index, with RAM independent of
//! the data (`charmlp pack` writes the file; names.txt's 228,146 examples take 5 bits each,
//! 142,592 bytes).
//!
//! Layout, integers little-endian:
//!
//! | bytes | field |
//! |---|---|
//! | 0..4 | magic `CMLW` |
//! | 4 | version, 1 |
//! | 5 | bits per code: the fewest that code the symbols, 1..=7 |
//! | 6..8 | symbols (u16): the boundary and the alphabet's characters; every code is below it |
//! | 8..20 | codes of the train, val and test splits (3 × u32) |
//! | 20..24 | bytes of the alphabet (u32) |
//! | 24.. | the alphabet: the characters of tokens 1.., UTF-8 |
//! | then | the codes, code k at bits k·bits.. of the little-endian bit stream, padded with 0 bits to a byte |
//! | last 4 | CRC-32 (ISO-HDLC) of everything before it |
//!
//! [`Packed::parse`] checks every field and every code, so a file crafted to pass the checksum
//! still cannot index out of bounds or name a symbol the alphabet lacks.

use crate::alphabet::MAX_SYMBOLS;
use crate::vocab::{Example, Token};

pub const MAGIC: [u8; 4] = *b"CMLW";
pub const VERSION: u8 = 1;
/// Bytes before the alphabet.
pub const HEADER_LEN: usize = 24;
const CRC: crc::Crc<u32> = crc::Crc::<u32>::new(&crc::CRC_32_ISO_HDLC);

/// What is wrong with a packed file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PackError {
    /// Shorter than its header, alphabet, codes and checksum.
    Truncated,
    /// Longer than its header says.
    TrailingBytes,
    BadMagic,
    UnsupportedVersion(u8),
    /// Bits per code other than the fewest that code the symbols.
    BadBits(u8),
    /// Fewer than 2 symbols, more than [`MAX_SYMBOLS`], or more than the bits can code.
    BadSymbols(u16),
    /// The alphabet is not UTF-8, or does not hold symbols − 1 characters.
    BadAlphabet,
    ChecksumMismatch,
    /// Code `at` (counting from the first of the train split) is not below the symbols.
    BadCode {
        at: u32,
        code: u8,
    },
    /// A split does not end with the boundary, or a word is empty (two boundaries in a row).
    BadWord {
        at: u32,
    },
    /// 2³² codes or more in all.
    TooManyCodes,
    /// Bits set after the last code.
    NonZeroPadding,
}

impl core::fmt::Display for PackError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            PackError::Truncated => f.write_str("truncated"),
            PackError::TrailingBytes => f.write_str("bytes after the checksum"),
            PackError::BadMagic => f.write_str("not a packed words file (no CMLW magic)"),
            PackError::UnsupportedVersion(v) => write!(f, "version {v}; this build reads 1"),
            PackError::BadBits(b) => write!(f, "{b} bits per code, not the fewest for its symbols"),
            PackError::BadSymbols(s) => write!(f, "{s} symbols for its bits per code"),
            PackError::BadAlphabet => f.write_str("an alphabet that does not fit its symbols"),
            PackError::ChecksumMismatch => f.write_str("checksum mismatch"),
            PackError::BadCode { at, code } => write!(f, "code {at} is {code}, not a symbol"),
            PackError::BadWord { at } => write!(f, "code {at}: an empty or unfinished word"),
            PackError::TooManyCodes => f.write_str("2^32 codes or more"),
            PackError::NonZeroPadding => f.write_str("bits set after the last code"),
        }
    }
}

impl core::error::Error for PackError {}

/// A checked packed file, borrowed (from flash, say). Size: 32 bytes on a 32-bit target, 48 on
/// a 64-bit host.
#[derive(Clone, Copy, Debug)]
pub struct Packed<'a> {
    codes: &'a [u8],
    bits: u8,
    symbols: u16,
    splits: [u32; 3],
    alphabet: &'a str,
}

/// One split of a [`Packed`] file: its examples, built on the fly. Size: 40 bytes on a 32-bit
/// target, 56 on a 64-bit host.
#[derive(Clone, Copy, Debug)]
pub struct PackedSplit<'a> {
    packed: Packed<'a>,
    /// Index of its first code in the file's stream.
    start: u32,
    len: u32,
}

fn le_u32(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(*b.get(at..)?.first_chunk::<4>()?))
}

impl<'a> Packed<'a> {
    /// Checks a packed file: header, alphabet, checksum, and every code (below the symbols;
    /// every split a run of non-empty words, each ending with the boundary).
    pub fn parse(bytes: &'a [u8]) -> Result<Self, PackError> {
        let header = bytes
            .first_chunk::<HEADER_LEN>()
            .ok_or(PackError::Truncated)?;
        if header[..4] != MAGIC {
            return Err(PackError::BadMagic);
        }
        if header[4] != VERSION {
            return Err(PackError::UnsupportedVersion(header[4]));
        }
        let bits = header[5];
        if !(1..=7).contains(&bits) {
            return Err(PackError::BadBits(bits));
        }
        let symbols = u16::from_le_bytes([header[6], header[7]]);
        if symbols < 2 || usize::from(symbols) > MAX_SYMBOLS {
            return Err(PackError::BadSymbols(symbols));
        }
        // One width per symbol count, so that a file's words have one packed form.
        if bits != bits_for(symbols) {
            return Err(PackError::BadBits(bits));
        }
        let field = |at| le_u32(header, at).ok_or(PackError::Truncated);
        let splits = [field(8)?, field(12)?, field(16)?];
        let alphabet_len = field(20)? as usize;
        let total = splits.iter().map(|&n| u64::from(n)).sum::<u64>();
        if total > u64::from(u32::MAX) {
            return Err(PackError::TooManyCodes);
        }
        let code_bytes = (total * u64::from(bits)).div_ceil(8);
        let code_bytes = usize::try_from(code_bytes).map_err(|_| PackError::Truncated)?;
        let end = HEADER_LEN
            .checked_add(alphabet_len)
            .and_then(|n| n.checked_add(code_bytes))
            .ok_or(PackError::Truncated)?;
        let len = end.checked_add(4).ok_or(PackError::Truncated)?;
        match bytes.len().cmp(&len) {
            core::cmp::Ordering::Less => return Err(PackError::Truncated),
            core::cmp::Ordering::Greater => return Err(PackError::TrailingBytes),
            core::cmp::Ordering::Equal => {}
        }
        if le_u32(bytes, end) != Some(CRC.checksum(&bytes[..end])) {
            return Err(PackError::ChecksumMismatch);
        }
        let alphabet = core::str::from_utf8(&bytes[HEADER_LEN..HEADER_LEN + alphabet_len])
            .map_err(|_| PackError::BadAlphabet)?;
        if alphabet.chars().count() + 1 != usize::from(symbols) {
            return Err(PackError::BadAlphabet);
        }
        let packed = Packed {
            codes: &bytes[HEADER_LEN + alphabet_len..end],
            bits,
            symbols,
            splits,
            alphabet,
        };
        packed.check_codes()?;
        let used = (total * u64::from(bits)) % 8;
        if used != 0 && packed.codes.last().is_some_and(|&b| b >> used != 0) {
            return Err(PackError::NonZeroPadding);
        }
        Ok(packed)
    }

    /// Every code a symbol; in each split, no word empty and the last one finished.
    fn check_codes(&self) -> Result<(), PackError> {
        let mut start = 0u32;
        for &len in &self.splits {
            let mut last = 0u8;
            for at in start..start + len {
                let code = self.code(at);
                if u16::from(code) >= self.symbols {
                    return Err(PackError::BadCode { at, code });
                }
                // A boundary right after another (or at a split's start) ends an empty word.
                if code == 0 && (last == 0 || at == start) {
                    return Err(PackError::BadWord { at });
                }
                last = code;
            }
            if len > 0 && last != 0 {
                return Err(PackError::BadWord {
                    at: start + len - 1,
                });
            }
            start += len;
        }
        Ok(())
    }

    /// Code `at` of the stream (0 past its end).
    fn code(&self, at: u32) -> u8 {
        // In u64: 2³² codes of 7 bits pass a 32-bit usize.
        let bit = u64::from(at) * u64::from(self.bits);
        let (byte, shift) = (usize::try_from(bit / 8).unwrap_or(usize::MAX), bit % 8);
        let lo = self.codes.get(byte).copied().unwrap_or(0);
        let hi = self.codes.get(byte.saturating_add(1)).copied().unwrap_or(0);
        let window = u16::from_le_bytes([lo, hi]);
        ((window >> shift) & ((1 << self.bits) - 1)) as u8
    }

    /// The boundary and the alphabet's characters: every token is below it.
    pub fn symbols(&self) -> usize {
        usize::from(self.symbols)
    }

    /// The characters of tokens 1.., in order.
    pub fn alphabet(&self) -> &'a str {
        self.alphabet
    }

    /// Split 0 (train), 1 (val) or 2 (test); any other index gives an empty split.
    pub fn split(&self, which: usize) -> PackedSplit<'a> {
        let start = self.splits.iter().take(which).sum();
        let len = self.splits.get(which).copied().unwrap_or(0);
        PackedSplit {
            packed: *self,
            start,
            len,
        }
    }
}

impl PackedSplit<'_> {
    /// Its examples: one per code.
    pub fn len(&self) -> usize {
        self.len as usize
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Example `i` (below [`PackedSplit::len`]; past it, the boundary's): its code is the
    /// target, and the codes before it back to its word's start, the context.
    pub fn example<const T: usize>(&self, i: usize) -> Example<T> {
        let Ok(i) = u32::try_from(i) else {
            return Example {
                context: [Token::BOUNDARY; T],
                target: Token::BOUNDARY,
            };
        };
        let at = self.start.saturating_add(i.min(self.len));
        let token = |code| Token::wrapping(code, MAX_SYMBOLS);
        let target = if i < self.len {
            token(self.packed.code(at))
        } else {
            Token::BOUNDARY
        };
        let mut context = [Token::BOUNDARY; T];
        // Back from the code before, up to the previous word's boundary or the split's start.
        for (k, slot) in context.iter_mut().rev().enumerate() {
            let Some(j) = (at - self.start).checked_sub(k as u32 + 1) else {
                break;
            };
            let code = self.packed.code(self.start + j);
            if code == 0 {
                break;
            }
            *slot = token(code);
        }
        Example { context, target }
    }

    /// Every example, in order.
    pub fn examples<const T: usize>(&self) -> impl Iterator<Item = Example<T>> + '_ {
        (0..self.len()).map(|i| self.example(i))
    }
}

/// Writes a packed file of `splits` (each a list of words, a word its tokens 1.. without the
/// boundary) into `out`; returns its length, or `None` for what [`Packed::parse`] would refuse
/// (symbols outside 2..=MAX_SYMBOLS, an alphabet of other than symbols − 1 characters, an
/// empty word, a token that is the boundary or not below `symbols`, 2³² codes or more) or an
/// `out` too short. For hosts and tests: firmware only reads.
pub fn write(
    splits: [&mut dyn Iterator<Item = &[Token]>; 3],
    symbols: u16,
    alphabet: &str,
    out: &mut [u8],
) -> Option<usize> {
    if !(2..=MAX_SYMBOLS).contains(&usize::from(symbols))
        || alphabet.chars().count() + 1 != usize::from(symbols)
    {
        return None;
    }
    let bits = bits_for(symbols);
    let alphabet_end = HEADER_LEN.checked_add(alphabet.len())?;
    out.get_mut(..alphabet_end)?.fill(0);
    out[..4].copy_from_slice(&MAGIC);
    out[4] = VERSION;
    out[5] = bits;
    out[6..8].copy_from_slice(&symbols.to_le_bytes());
    out[20..24].copy_from_slice(&u32::try_from(alphabet.len()).ok()?.to_le_bytes());
    out[HEADER_LEN..alphabet_end].copy_from_slice(alphabet.as_bytes());
    let (header, codes) = out.split_at_mut(alphabet_end);
    let mut stream = BitWriter {
        codes,
        bits,
        written: 0,
    };
    for (s, words) in splits.into_iter().enumerate() {
        let before = stream.written;
        for word in words {
            if word.is_empty() {
                return None;
            }
            for &t in word {
                if t.index() >= usize::from(symbols) || t == Token::BOUNDARY {
                    return None;
                }
                stream.put(t.as_u8())?;
            }
            stream.put(0)?;
        }
        let count = u32::try_from(stream.written - before).ok()?;
        header[8 + 4 * s..12 + 4 * s].copy_from_slice(&count.to_le_bytes());
    }
    if stream.written > u64::from(u32::MAX) {
        return None;
    }
    let code_bytes = usize::try_from((stream.written * u64::from(bits)).div_ceil(8)).ok()?;
    let end = alphabet_end.checked_add(code_bytes)?;
    let crc = CRC.checksum(out.get(..end)?);
    out.get_mut(end..end.checked_add(4)?)?
        .copy_from_slice(&crc.to_le_bytes());
    Some(end + 4)
}

/// Sets the checksum of a packed file (its last 4 bytes) to that of the rest: for fuzzing and
/// tests that craft files which pass it.
pub fn reseal(bytes: &mut [u8]) {
    if let Some(end) = bytes.len().checked_sub(4) {
        let crc = CRC.checksum(&bytes[..end]).to_le_bytes();
        bytes[end..].copy_from_slice(&crc);
    }
}

/// Codes appended to a little-endian bit stream.
struct BitWriter<'o> {
    codes: &'o mut [u8],
    bits: u8,
    written: u64,
}

impl BitWriter<'_> {
    fn put(&mut self, code: u8) -> Option<()> {
        let bit = usize::try_from(self.written * u64::from(self.bits)).ok()?;
        let (byte, shift) = (bit / 8, bit % 8);
        let [lo, hi] = (u16::from(code) << shift).to_le_bytes();
        // A byte is first written whole (a code starting at its bit 0, or the spill of the code
        // before), then or-ed into: nothing stale survives from the buffer.
        let first = self.codes.get_mut(byte)?;
        *first = if shift == 0 { lo } else { *first | lo };
        if shift + usize::from(self.bits) > 8 {
            *self.codes.get_mut(byte + 1)? = hi;
        }
        self.written += 1;
        Some(())
    }
}

/// Bits per code for `symbols` symbols: enough for codes 0..symbols, at least 1.
pub const fn bits_for(symbols: u16) -> u8 {
    let largest = if symbols < 2 { 1 } else { symbols - 1 };
    (u16::BITS - largest.leading_zeros()) as u8
}

/// Bytes of the packed file of `examples` codes with `symbols` symbols and an alphabet of
/// `alphabet_bytes` bytes.
pub const fn file_len(examples: u64, symbols: u16, alphabet_bytes: usize) -> u64 {
    (HEADER_LEN + alphabet_bytes) as u64 + (examples * bits_for(symbols) as u64).div_ceil(8) + 4
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use crate::vocab::Contexts;
    use std::vec::Vec;

    fn t(ix: u8) -> Token {
        Token::wrapping(ix, MAX_SYMBOLS)
    }

    /// Three splits of words over `symbols` symbols, every token used.
    fn words(symbols: u8) -> [Vec<Vec<Token>>; 3] {
        let word = |n: usize, k: usize| -> Vec<Token> {
            (0..n)
                .map(|i| t(1 + ((i * 7 + k * 3) % (symbols as usize - 1)) as u8))
                .collect()
        };
        [
            (0..40).map(|k| word(1 + k % 9, k)).collect(),
            (0..5).map(|k| word(2 + k, k + 40)).collect(),
            (0..3).map(|k| word(12 - k, k + 50)).collect(),
        ]
    }

    fn pack(splits: &[Vec<Vec<Token>>; 3], symbols: u16, alphabet: &str) -> Vec<u8> {
        let mut its = splits.each_ref().map(|s| s.iter().map(|w| &w[..]));
        let [a, b, c] = &mut its;
        let examples: usize = splits.iter().flatten().map(|w| w.len() + 1).sum();
        let mut out = std::vec![0xAA; file_len(examples as u64, symbols, alphabet.len()) as usize];
        let n = write([a, b, c], symbols, alphabet, &mut out).unwrap();
        assert_eq!(n, out.len());
        out
    }

    /// Each split's examples are the words' examples as makemore builds them, in order, for
    /// every code width (2 to 128 symbols: 1, 2, 3, 4, 5, 6 and 7 bits), contexts of 1, 3 and 8.
    #[test]
    fn examples_are_the_words_examples() {
        for symbols in [2u8, 3, 5, 9, 16, 27, 28, 64, 65, 128] {
            let alphabet: std::string::String = ('\u{100}'..).take(symbols as usize - 1).collect();
            let splits = words(symbols);
            let bytes = pack(&splits, u16::from(symbols), &alphabet);
            let packed = Packed::parse(&bytes).unwrap();
            assert_eq!(packed.symbols(), symbols as usize);
            assert_eq!(packed.alphabet(), alphabet);
            fn check<const T: usize>(packed: &Packed<'_>, splits: &[Vec<Vec<Token>>; 3]) {
                for (s, words) in splits.iter().enumerate() {
                    let want: Vec<Example<T>> =
                        words.iter().flat_map(|w| Contexts::<T>::new(w)).collect();
                    let split = packed.split(s);
                    let got: Vec<Example<T>> = split.examples().collect();
                    assert_eq!(got, want, "split {s}");
                    let past = split.example::<T>(split.len());
                    assert_eq!(past.target, Token::BOUNDARY);
                }
                assert!(packed.split(3).is_empty());
            }
            check::<1>(&packed, &splits);
            check::<3>(&packed, &splits);
            check::<8>(&packed, &splits);
        }
    }

    /// Every field checked, even in a file whose checksum is right.
    #[test]
    fn crafted_files_are_refused() {
        let splits = words(27);
        let good = pack(&splits, 27, "abcdefghijklmnopqrstuvwxyz");
        Packed::parse(&good).unwrap();
        let resealed = |f: &dyn Fn(&mut Vec<u8>)| {
            let mut b = good.clone();
            f(&mut b);
            reseal(&mut b);
            Packed::parse(&b).err()
        };
        let code_start = HEADER_LEN + 26;
        type Corruption<'c> = &'c dyn Fn(&mut Vec<u8>);
        let cases: [(Corruption<'_>, PackError); 10] = [
            (&|b| b[0] = b'X', PackError::BadMagic),
            (&|b| b[4] = 2, PackError::UnsupportedVersion(2)),
            (&|b| b[5] = 0, PackError::BadBits(0)),
            (&|b| b[5] = 8, PackError::BadBits(8)),
            (&|b| b[6] = 33, PackError::BadBits(5)),
            (&|b| b[6] = 129, PackError::BadSymbols(129)),
            (&|b| b[6] = 1, PackError::BadSymbols(1)),
            (&|b| b[HEADER_LEN] = 0xFF, PackError::BadAlphabet),
            // The first code 31: not one of 27 symbols.
            (
                &|b| b[code_start] |= 0x1F,
                PackError::BadCode { at: 0, code: 31 },
            ),
            // The first code 0: an empty first word.
            (&|b| b[code_start] &= !0x1F, PackError::BadWord { at: 0 }),
        ];
        for (i, (corrupt, want)) in cases.iter().enumerate() {
            assert_eq!(resealed(corrupt), Some(*want), "case {i}");
        }
        // The alphabet one character short of the symbols.
        assert_eq!(resealed(&|b| b[6] = 28), Some(PackError::BadAlphabet));
        // A bit set past the last code (the codes end inside their last byte here).
        let used = (Packed::parse(&good).unwrap().split(0).len()
            + Packed::parse(&good).unwrap().split(1).len()
            + Packed::parse(&good).unwrap().split(2).len())
            * 5
            % 8;
        assert_ne!(used, 0, "the test needs padding");
        let last = good.len() - 5;
        assert_eq!(
            resealed(&|b| b[last] |= 0x80),
            Some(PackError::NonZeroPadding)
        );
        // Split counts that add up past 2³², or past the bytes there are.
        assert_eq!(
            resealed(&|b| b[8..12].copy_from_slice(&u32::MAX.to_le_bytes())),
            Some(PackError::TooManyCodes)
        );
        assert_eq!(
            resealed(&|b| b[12..16].copy_from_slice(&1000u32.to_le_bytes())),
            Some(PackError::Truncated)
        );
        // The train split one code shorter: it ends inside a word.
        let mut short = good.clone();
        let field = |b: &[u8], at: usize| u32::from_le_bytes(b[at..at + 4].try_into().unwrap());
        let (train, val) = (field(&short, 8), field(&short, 12));
        short[8..12].copy_from_slice(&(train - 1).to_le_bytes());
        short[12..16].copy_from_slice(&(val + 1).to_le_bytes());
        reseal(&mut short);
        assert!(matches!(
            Packed::parse(&short),
            Err(PackError::BadWord { .. })
        ));
        let mut flipped = good.clone();
        flipped[code_start + 3] ^= 4;
        assert_eq!(
            Packed::parse(&flipped).err(),
            Some(PackError::ChecksumMismatch)
        );
        let mut long = good.clone();
        long.push(0);
        assert_eq!(Packed::parse(&long).err(), Some(PackError::TrailingBytes));
        for cut in [0, 10, HEADER_LEN, good.len() - 1] {
            assert_eq!(
                Packed::parse(&good[..cut]).err(),
                Some(PackError::Truncated)
            );
        }
    }

    #[test]
    fn write_refuses_what_it_cannot_pack() {
        let words = [std::vec![t(1), t(27)]];
        let mut buf = [0u8; 64];
        let mut it = words.iter().map(|w| &w[..]);
        let (mut e1, mut e2) = (core::iter::empty(), core::iter::empty());
        assert_eq!(write([&mut it, &mut e1, &mut e2], 27, "", &mut buf), None);
        let alphabet = "abcdefghijklmnopqrstuvwxyz";
        let words = [std::vec![t(1), t(2)]];
        let mut it = words.iter().map(|w| &w[..]);
        let (mut e1, mut e2) = (core::iter::empty(), core::iter::empty());
        let short = &mut buf[..20];
        assert_eq!(
            write([&mut it, &mut e1, &mut e2], 27, alphabet, short),
            None
        );
        // An empty word, an alphabet short of the symbols, too few or too many symbols.
        let words = [std::vec![t(1)], std::vec![]];
        let mut it = words.iter().map(|w| &w[..]);
        let (mut e1, mut e2) = (core::iter::empty(), core::iter::empty());
        assert_eq!(
            write([&mut it, &mut e1, &mut e2], 27, alphabet, &mut buf),
            None
        );
        for (symbols, alphabet) in [(27, "abc"), (1, ""), (129, alphabet)] {
            let mut it = core::iter::empty();
            let (mut e1, mut e2) = (core::iter::empty(), core::iter::empty());
            assert_eq!(
                write([&mut it, &mut e1, &mut e2], symbols, alphabet, &mut buf),
                None
            );
        }
    }

    #[test]
    fn size_is_as_documented() {
        // Two slices (two words each), three u32, a u16 and a u8, padded to a word: 48 bytes
        // on a 64-bit host, 32 on a 32-bit target; a split adds two u32.
        let expected = 4 * size_of::<usize>() + 16;
        assert_eq!(size_of::<Packed<'_>>(), expected);
        assert_eq!(size_of::<PackedSplit<'_>>(), expected + 8);
    }
}
