//! The model file: alphabet, parameters and batch-norm statistics as bytes, with no allocation.
//!
//! Layout of version 2 (all integers and floats little-endian), for a model of v symbols:
//!
//! | offset       | size     | field                                                   |
//! |--------------|----------|---------------------------------------------------------|
//! | 0            | 4        | magic `CMLP`                                            |
//! | 4            | 2        | format version (2)                                      |
//! | 6            | 8        | shape: symbols v, embedding, context, hidden (u16 each) |
//! | 14           | 2        | reserved, zero                                          |
//! | 16           | 4·(v−1)  | alphabet: the characters of tokens 1..v, as u32 scalars |
//! | 12+4·v       | 4·n      | f32: C, W1, b1, gain, bias, W2ᵀ, b2, bn mean, bn var    |
//! | 12+4·v+4·n   | 4        | CRC-32 (ISO-HDLC, as zlib) of every byte before it      |
//!
//! Tensors are stored row-major in the shapes of [`Params`], with v rows for C, W2ᵀ and b2: a
//! model type of capacity V > v reads the file with its symbols v..V absent. Version 1 files
//! (no alphabet section; v = 27) still load, with makemore's alphabet. A CRC-32 detects every
//! change of up to 32 consecutive bits, so any single corrupted byte is caught.

use crate::alphabet::{Alphabet, AlphabetError};
use crate::bounds::Overflow;
use crate::model::Model;
use crate::params::Params;
use crate::shape::ShapeCheck;
use core::fmt;

pub const MAGIC: [u8; 4] = *b"CMLP";
/// The version written.
pub const VERSION: u16 = 2;
/// The first version, without an alphabet section: makemore's 27 symbols.
pub const VERSION_1: u16 = 1;
pub const HEADER_LEN: usize = 16;
const CRC32: crc::Crc<u32> = crc::Crc::<u32>::new(&crc::CRC_32_ISO_HDLC);

/// A model's dimensions as a file records them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Shape {
    /// Symbols, the boundary included.
    pub vocab: u16,
    pub embed: u16,
    pub context: u16,
    pub hidden: u16,
}

impl Shape {
    /// Where the floats start in a version-2 file: after the header and the alphabet.
    pub const fn floats_at(self) -> usize {
        HEADER_LEN + 4 * (self.vocab as usize).saturating_sub(1)
    }

    /// Bytes of a whole version-2 model file of this shape, or `None` where that does not fit
    /// in a `usize`. The shape comes from untrusted bytes: the count is formed in u64, where
    /// the largest u16 dimensions cannot overflow it (< 2⁵⁰), and converted with a check, so a
    /// 32-bit target (the firmware's) refuses rather than wraps.
    pub const fn file_len(self) -> Option<usize> {
        let (v, e, t, h) = (
            self.vocab as u64,
            self.embed as u64,
            self.context as u64,
            self.hidden as u64,
        );
        let floats = v * e + t * e * h + 3 * h + h * v + v + 2 * h;
        let alphabet = v.saturating_sub(1);
        let len = HEADER_LEN as u64 + 4 * alphabet + 4 * floats + 4;
        if len > usize::MAX as u64 {
            None
        } else {
            Some(len as usize)
        }
    }
}

impl fmt::Display for Shape {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} symbols, embedding {}, context {}, hidden {}",
            self.vocab, self.embed, self.context, self.hidden
        )
    }
}

/// Why bytes are not a model of the asked-for shape.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum LoadError {
    /// Fewer bytes than the header, or than the header's shape needs.
    Truncated { needed: usize, got: usize },
    /// Does not start with `CMLP`: not a charmlp model file.
    BadMagic,
    /// A charmlp file of a format version this build cannot read.
    UnsupportedVersion { found: u16, supported: u16 },
    /// The header's reserved field is not zero.
    BadHeader,
    /// A model of other dimensions than the caller's type (its `vocab` is the type's capacity).
    ShapeMismatch { expected: Shape, found: Shape },
    /// More symbols than the caller's type holds, or fewer than two.
    Symbols { found: u16, capacity: usize },
    /// A version-1 file (makemore's 27 symbols, no alphabet) claiming another count.
    Version1Symbols { found: u16 },
    /// The alphabet section is not an alphabet (the u32 at `index` is not a character, or the
    /// characters are not increasing, or one is a control character).
    BadAlphabet {
        index: usize,
        error: Option<AlphabetError>,
    },
    /// More bytes than the shape needs.
    TrailingBytes { expected: usize, got: usize },
    /// A tensor given as values ([`Model::read_tensors`]) of another length than its shape's.
    TensorLength {
        tensor: &'static str,
        expected: usize,
        got: usize,
    },
    /// The bytes were changed after they were written.
    ChecksumMismatch { stored: u32, computed: u32 },
    /// A NaN or infinity in a tensor (index into the flattened tensor).
    NonFinite { tensor: &'static str, index: usize },
    /// A negative batch-norm variance (its square root would be NaN).
    NegativeVariance { index: usize, value: f32 },
    /// Finite weights that can still overflow f32 on some input (see [`crate::bounds`]).
    Overflow(Overflow),
    /// Not a safetensors model file (see [`crate::safetensors`]).
    File(crate::safetensors::FileError),
}

impl fmt::Display for LoadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LoadError::Truncated { needed, got } => {
                write!(f, "truncated model: {got} bytes, a whole one has {needed}")
            }
            LoadError::BadMagic => f.write_str("not a charmlp model (it does not start with CMLP)"),
            LoadError::UnsupportedVersion { found, supported } => write!(
                f,
                "model format version {found}; this build reads versions 1 to {supported}"
            ),
            LoadError::BadHeader => f.write_str("corrupt model header (reserved field not zero)"),
            LoadError::ShapeMismatch { expected, found } => write!(
                f,
                "model has {found}; expected embedding {}, context {}, hidden {}",
                expected.embed, expected.context, expected.hidden
            ),
            LoadError::Symbols { found, capacity } if *found < 2 => write!(
                f,
                "model has {found} symbols; a model has at least 2 (the boundary and a \
                 character), and this model type at most {capacity}"
            ),
            LoadError::Symbols { found, capacity } => write!(
                f,
                "model has {found} symbols; this model type holds 2 to {capacity}"
            ),
            LoadError::Version1Symbols { found } => write!(
                f,
                "model of format version 1 has {found} symbols; version 1 models have \
                 makemore's 27"
            ),
            LoadError::BadAlphabet { index, error } => match error {
                Some(e) => write!(f, "corrupt model alphabet: {e}"),
                None => write!(
                    f,
                    "corrupt model alphabet: entry {index} is not a Unicode scalar value"
                ),
            },
            LoadError::TrailingBytes { expected, got } => {
                write!(
                    f,
                    "model has {got} bytes, {} more than its shape needs",
                    got - expected
                )
            }
            LoadError::TensorLength {
                tensor,
                expected,
                got,
            } => write!(
                f,
                "model tensor {tensor} has {got} values; its shape has {expected}"
            ),
            LoadError::ChecksumMismatch { stored, computed } => write!(
                f,
                "model checksum mismatch (stored {stored:#010x}, computed {computed:#010x}): the file is corrupt"
            ),
            LoadError::NonFinite { tensor, index } => {
                write!(
                    f,
                    "model tensor {tensor} holds a NaN or infinity at index {index}"
                )
            }
            LoadError::NegativeVariance { index, value } => write!(
                f,
                "model batch-norm variance {index} is negative ({value:e}); a variance is at least 0"
            ),
            LoadError::Overflow(Overflow { layer, unit }) => write!(
                f,
                "model weights are so large that {layer} can overflow f32 (unit {unit}): \
                 no loss or name computed from them would be a number"
            ),
            LoadError::File(e) => e.fmt(f),
        }
    }
}

impl core::error::Error for LoadError {}

/// The output buffer cannot hold the model.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BufferTooSmall {
    pub needed: usize,
    pub got: usize,
}

impl fmt::Display for BufferTooSmall {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "buffer of {} bytes cannot hold a model of {} bytes",
            self.got, self.needed
        )
    }
}

impl core::error::Error for BufferTooSmall {}

/// Rewrites the CRC-32 in the last four bytes of `file` to match the bytes before it. For
/// fuzzers and tests that craft files which must get past the checksum to reach the checks
/// behind it; a file shorter than the checksum is left as it is.
pub fn reseal(file: &mut [u8]) {
    if let Some(body_len) = file.len().checked_sub(4) {
        let (body, crc) = file.split_at_mut(body_len);
        crc.copy_from_slice(&CRC32.checksum(body).to_le_bytes());
    }
}

fn u16_at(bytes: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([bytes[at], bytes[at + 1]])
}

/// Reads and checks the header alone: magic, version, reserved field. Lets a reader learn the
/// version and shape of a file before choosing the type to load it into.
pub fn peek_header(bytes: &[u8]) -> Result<(u16, Shape), LoadError> {
    let magic_seen = bytes.len().min(MAGIC.len());
    if bytes[..magic_seen] != MAGIC[..magic_seen] {
        return Err(LoadError::BadMagic);
    }
    if bytes.len() < HEADER_LEN {
        return Err(LoadError::Truncated {
            needed: HEADER_LEN,
            got: bytes.len(),
        });
    }
    let version = u16_at(bytes, 4);
    if version != VERSION && version != VERSION_1 {
        return Err(LoadError::UnsupportedVersion {
            found: version,
            supported: VERSION,
        });
    }
    if u16_at(bytes, 14) != 0 {
        return Err(LoadError::BadHeader);
    }
    let shape = Shape {
        vocab: u16_at(bytes, 6),
        embed: u16_at(bytes, 8),
        context: u16_at(bytes, 10),
        hidden: u16_at(bytes, 12),
    };
    Ok((version, shape))
}

/// The shape in a file's header (see [`peek_header`]).
pub fn peek_shape(bytes: &[u8]) -> Result<Shape, LoadError> {
    peek_header(bytes).map(|(_, shape)| shape)
}

/// The length of a file of `shape` in `version`, and where its floats start.
fn layout(version: u16, shape: Shape) -> Option<(usize, usize)> {
    let len = shape.file_len()?;
    let alphabet = shape.floats_at() - HEADER_LEN;
    if version == VERSION_1 {
        Some((len - alphabet, HEADER_LEN))
    } else {
        Some((len, shape.floats_at()))
    }
}

impl<const V: usize, const E: usize, const T: usize, const H: usize> Model<V, E, T, H> {
    /// The shape of this model type's files with `symbols` symbols.
    pub const fn shape(symbols: usize) -> Shape {
        let () = ShapeCheck::<V, E, T, H>::OK;
        Shape {
            vocab: symbols as u16,
            embed: E as u16,
            context: T as u16,
            hidden: H as u16,
        }
    }

    /// Bytes of the largest file this type reads or writes: all V symbols present.
    pub const MAX_BYTES: usize = match Self::shape(V).file_len() {
        Some(n) => n,
        None => panic!("this model's file does not fit in memory on this target"),
    };

    /// Bytes of this model's file with `alphabet`.
    pub const fn bytes_len(alphabet: &Alphabet<V>) -> usize {
        match Self::shape(alphabet.len()).file_len() {
            Some(n) => n,
            // Not reached: at most MAX_BYTES, which fits.
            None => Self::MAX_BYTES,
        }
    }

    /// The tensors in file order with `symbols` rows of C, W2ᵀ and b2: the seven parameters,
    /// then the statistics.
    pub fn file_tensors(&self, symbols: usize) -> [(&'static str, &[f32]); 9] {
        let [c, w1, b1, gain, bias, w2, b2] = self.params.tensors();
        let n = Self::FILE_NAMES;
        [
            (n[0], &c[..symbols * E]),
            (n[1], w1),
            (n[2], b1),
            (n[3], gain),
            (n[4], bias),
            (n[5], &w2[..symbols * H]),
            (n[6], &b2[..symbols]),
            (n[7], &self.bn.mean),
            (n[8], &self.bn.var),
        ]
    }

    /// The names of [`Model::file_tensors`]: the parameters', then the statistics'.
    const FILE_NAMES: [&'static str; 9] = {
        let n = Params::<V, E, T, H>::NAMES;
        [
            n[0], n[1], n[2], n[3], n[4], n[5], n[6], "bn mean", "bn var",
        ]
    };

    /// Writes the model and its alphabet into the start of `out`; returns the number of bytes
    /// written ([`Model::bytes_len`]). The model's symbols past the alphabet must be absent
    /// and those in it present, as [`Model::init_with_symbols`] leaves them; a file written
    /// otherwise holds −∞ or fails to mean what it says, and the loader refuses the first.
    pub fn write_bytes(
        &self,
        alphabet: &Alphabet<V>,
        out: &mut [u8],
    ) -> Result<usize, BufferTooSmall> {
        let len = Self::bytes_len(alphabet);
        let got = out.len();
        let out = out
            .get_mut(..len)
            .ok_or(BufferTooSmall { needed: len, got })?;
        let s = Self::shape(alphabet.len());
        let mut at = 0;
        let mut put = |field: &[u8]| {
            out[at..at + field.len()].copy_from_slice(field);
            at += field.len();
        };
        put(&MAGIC);
        put(&VERSION.to_le_bytes());
        for d in [s.vocab, s.embed, s.context, s.hidden, 0] {
            put(&d.to_le_bytes());
        }
        for &ch in alphabet.chars() {
            put(&u32::from(ch).to_le_bytes());
        }
        for (_, tensor) in self.file_tensors(alphabet.len()) {
            for x in tensor {
                put(&x.to_le_bytes());
            }
        }
        let crc = CRC32.checksum(&out[..len - 4]);
        out[len - 4..].copy_from_slice(&crc.to_le_bytes());
        Ok(len)
    }

    /// Replaces this model and `alphabet` with the ones in `bytes`, which must be exactly one
    /// model file of this embedding, context and hidden width with at most V symbols; symbols
    /// past the file's are absent. Everything is checked before anything is written: on error
    /// `self` and `alphabet` are unchanged.
    pub fn read_bytes(
        &mut self,
        alphabet: &mut Alphabet<V>,
        bytes: &[u8],
    ) -> Result<(), LoadError> {
        let (version, found) = peek_header(bytes)?;
        let expected = Self::shape(V);
        if (found.embed, found.context, found.hidden)
            != (expected.embed, expected.context, expected.hidden)
        {
            return Err(LoadError::ShapeMismatch { expected, found });
        }
        let symbols = found.vocab as usize;
        if version == VERSION_1 && symbols != crate::vocab::VOCAB {
            return Err(LoadError::Version1Symbols { found: found.vocab });
        }
        if !(2..=V).contains(&symbols) {
            return Err(LoadError::Symbols {
                found: found.vocab,
                capacity: V,
            });
        }
        // Within MAX_BYTES, which fits: the shape is this type's with fewer symbols.
        let (len, floats_at) = layout(version, found).ok_or(LoadError::Symbols {
            found: found.vocab,
            capacity: V,
        })?;
        if bytes.len() < len {
            return Err(LoadError::Truncated {
                needed: len,
                got: bytes.len(),
            });
        }
        if bytes.len() > len {
            return Err(LoadError::TrailingBytes {
                expected: len,
                got: bytes.len(),
            });
        }
        let (body, stored) = bytes.split_at(len - 4);
        let stored = u32::from_le_bytes([stored[0], stored[1], stored[2], stored[3]]);
        let computed = CRC32.checksum(body);
        if stored != computed {
            return Err(LoadError::ChecksumMismatch { stored, computed });
        }
        let read_alphabet = if version == VERSION_1 {
            let makemore = Alphabet::MAKEMORE;
            Alphabet::new(makemore.chars())
        } else {
            let mut chars = ['\0'; V];
            let entries = body[HEADER_LEN..floats_at].chunks_exact(4);
            for (index, (slot, b)) in chars.iter_mut().zip(entries).enumerate() {
                let scalar = u32::from_le_bytes([b[0], b[1], b[2], b[3]]);
                *slot =
                    char::from_u32(scalar).ok_or(LoadError::BadAlphabet { index, error: None })?;
            }
            Alphabet::new(&chars[..symbols - 1])
        };
        let read_alphabet = read_alphabet.map_err(|e| LoadError::BadAlphabet {
            index: 0,
            error: Some(e),
        })?;
        let floats = || {
            body[floats_at..]
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        };
        let mut starts = [0; 9];
        let mut start = 0;
        for (tensor_start, len) in starts.iter_mut().zip(Self::file_lens(symbols)) {
            *tensor_start = start;
            start += len;
        }
        Self::check_values(symbols, |tensor: usize, i: usize| {
            let b = floats_at + 4 * (starts[tensor] + i);
            f32::from_le_bytes([body[b], body[b + 1], body[b + 2], body[b + 3]])
        })?;
        // Absent symbols first (zero rows, bias −∞), then the file's rows over the present ones.
        self.params.init_absent(symbols);
        let mut values = floats();
        for tensor in self.file_tensors_mut(symbols) {
            for (x, v) in tensor.iter_mut().zip(&mut values) {
                *x = v;
            }
        }
        *alphabet = read_alphabet;
        Ok(())
    }

    /// Replaces this model and `alphabet` with `chars` (the characters of tokens 1..) and the
    /// nine tensors in file order ([`Model::file_tensors`]: C, W1, b1, gain, bias, W2ᵀ, b2,
    /// bn mean, bn var, row-major), with `chars.len() + 1` rows of C, W2ᵀ and b2: what a C
    /// header written by `charmlp export --lang c` holds. The same checks as
    /// [`Model::read_bytes`] (symbols, alphabet, every value finite, variances non-negative,
    /// activations bounded) come before anything is written: on error `self` and `alphabet`
    /// are unchanged.
    pub fn read_tensors(
        &mut self,
        alphabet: &mut Alphabet<V>,
        chars: &[char],
        tensors: [&[f32]; 9],
    ) -> Result<(), LoadError> {
        let symbols = chars.len() + 1;
        if !(2..=V).contains(&symbols) {
            return Err(LoadError::Symbols {
                found: u16::try_from(symbols).unwrap_or(u16::MAX),
                capacity: V,
            });
        }
        let read_alphabet = Alphabet::new(chars).map_err(|e| LoadError::BadAlphabet {
            index: 0,
            error: Some(e),
        })?;
        let expected_lens = Self::FILE_NAMES.into_iter().zip(Self::file_lens(symbols));
        for ((tensor, expected), given) in expected_lens.zip(tensors) {
            if given.len() != expected {
                return Err(LoadError::TensorLength {
                    tensor,
                    expected,
                    got: given.len(),
                });
            }
        }
        Self::check_values(symbols, |tensor, i| tensors[tensor][i])?;
        self.params.init_absent(symbols);
        for (to, from) in self.file_tensors_mut(symbols).into_iter().zip(tensors) {
            to.copy_from_slice(from);
        }
        *alphabet = read_alphabet;
        Ok(())
    }

    /// The lengths of the tensors of [`Model::file_tensors`] with `symbols` rows.
    const fn file_lens(symbols: usize) -> [usize; 9] {
        [symbols * E, T * E * H, H, H, H, symbols * H, symbols, H, H]
    }

    /// The loader's checks of a model's values, given as `at(tensor, index)` in file order
    /// with `symbols` rows: every value finite, every variance at least 0, and activations
    /// bounded for every context ([`crate::bounds`]).
    fn check_values(symbols: usize, at: impl Fn(usize, usize) -> f32) -> Result<(), LoadError> {
        let names = Self::FILE_NAMES.into_iter();
        for (t, (tensor, len)) in names.zip(Self::file_lens(symbols)).enumerate() {
            if let Some(index) = (0..len).find(|&i| !at(t, i).is_finite()) {
                return Err(LoadError::NonFinite { tensor, index });
            }
        }
        for index in 0..H {
            let value = at(8, index);
            // −0.0 is a variance of zero, not a negative one.
            if value < 0.0 {
                return Err(LoadError::NegativeVariance { index, value });
            }
        }
        crate::bounds::check::<E, T, H>(symbols, at).map_err(LoadError::Overflow)
    }

    fn file_tensors_mut(&mut self, symbols: usize) -> [&mut [f32]; 9] {
        let [c, w1, b1, gain, bias, w2, b2] = self.params.tensors_mut();
        [
            &mut c[..symbols * E],
            w1,
            b1,
            gain,
            bias,
            &mut w2[..symbols * H],
            &mut b2[..symbols],
            &mut self.bn.mean,
            &mut self.bn.var,
        ]
    }
}
