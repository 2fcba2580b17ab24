//! The model file: parameters and batch-norm statistics as bytes, with no allocation.
//!
//! Layout (all integers and floats little-endian):
//!
//! | offset | size | field                                                    |
//! |--------|------|----------------------------------------------------------|
//! | 0      | 4    | magic `CMLP`                                             |
//! | 4      | 2    | format version (1)                                       |
//! | 6      | 8    | shape: vocabulary, embedding, context, hidden (u16 each) |
//! | 14     | 2    | reserved, zero                                           |
//! | 16     | 4·n  | f32: C, W1, b1, gain, bias, W2ᵀ, b2, bn mean, bn var     |
//! | 16+4·n | 4    | CRC-32 (ISO-HDLC, as zlib) of every byte before it       |
//!
//! Tensors are stored row-major in the shapes of [`Params`]. A CRC-32 detects every change of
//! up to 32 consecutive bits, so any single corrupted byte is caught.

use crate::bounds::Overflow;
use crate::model::Model;
use crate::params::Params;
use crate::shape::ShapeCheck;
use crate::vocab::V;
use core::fmt;

pub const MAGIC: [u8; 4] = *b"CMLP";
pub const VERSION: u16 = 1;
pub const HEADER_LEN: usize = 16;
const CRC32: crc::Crc<u32> = crc::Crc::<u32>::new(&crc::CRC_32_ISO_HDLC);

/// A model's dimensions as a file records them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Shape {
    pub vocab: u16,
    pub embed: u16,
    pub context: u16,
    pub hidden: u16,
}

impl Shape {
    /// Bytes of a whole model file of this shape, or `None` where that does not fit in a
    /// `usize`. The shape comes from untrusted bytes: the count is formed in u64, where the
    /// largest u16 dimensions cannot overflow it (< 2⁵⁰), and converted with a check, so a
    /// 32-bit target (the firmware's) refuses rather than wraps.
    pub const fn file_len(self) -> Option<usize> {
        let (v, e, t, h) = (
            self.vocab as u64,
            self.embed as u64,
            self.context as u64,
            self.hidden as u64,
        );
        let floats = v * e + t * e * h + 3 * h + h * v + v + 2 * h;
        let len = HEADER_LEN as u64 + 4 * floats + 4;
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
            "vocabulary {}, embedding {}, context {}, hidden {}",
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
    /// A model of other dimensions than the caller's type.
    ShapeMismatch { expected: Shape, found: Shape },
    /// More bytes than the shape needs.
    TrailingBytes { expected: usize, got: usize },
    /// The bytes were changed after they were written.
    ChecksumMismatch { stored: u32, computed: u32 },
    /// A NaN or infinity in a tensor (index into the flattened tensor).
    NonFinite { tensor: &'static str, index: usize },
    /// A negative batch-norm variance (its square root would be NaN).
    NegativeVariance { index: usize, value: f32 },
    /// Finite weights that can still overflow f32 on some input (see [`crate::bounds`]).
    Overflow(Overflow),
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
                "model format version {found}; this build reads version {supported}"
            ),
            LoadError::BadHeader => f.write_str("corrupt model header (reserved field not zero)"),
            LoadError::ShapeMismatch { expected, found } => {
                write!(f, "model has {found}; expected {expected}")
            }
            LoadError::TrailingBytes { expected, got } => {
                write!(
                    f,
                    "model has {got} bytes, {} more than its shape needs",
                    got - expected
                )
            }
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
/// shape of a file before choosing the type to load it into.
pub fn peek_shape(bytes: &[u8]) -> Result<Shape, LoadError> {
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
    if version != VERSION {
        return Err(LoadError::UnsupportedVersion {
            found: version,
            supported: VERSION,
        });
    }
    if u16_at(bytes, 14) != 0 {
        return Err(LoadError::BadHeader);
    }
    Ok(Shape {
        vocab: u16_at(bytes, 6),
        embed: u16_at(bytes, 8),
        context: u16_at(bytes, 10),
        hidden: u16_at(bytes, 12),
    })
}

impl<const E: usize, const T: usize, const H: usize> Model<E, T, H> {
    pub const SHAPE: Shape = {
        let () = ShapeCheck::<E, T, H>::OK;
        Shape {
            vocab: V as u16,
            embed: E as u16,
            context: T as u16,
            hidden: H as u16,
        }
    };

    /// Bytes of this model's file.
    pub const BYTES: usize = match Self::SHAPE.file_len() {
        Some(n) => n,
        None => panic!("this model's file does not fit in memory on this target"),
    };

    /// The tensors in file order: the seven parameters, then the statistics.
    pub(crate) fn file_tensors(&self) -> [(&'static str, &[f32]); 9] {
        let [c, w1, b1, gain, bias, w2, b2] = self.params.tensors();
        let n = Params::<E, T, H>::NAMES;
        [
            (n[0], c),
            (n[1], w1),
            (n[2], b1),
            (n[3], gain),
            (n[4], bias),
            (n[5], w2),
            (n[6], b2),
            ("bn mean", &self.bn.mean),
            ("bn var", &self.bn.var),
        ]
    }

    fn file_tensors_mut(&mut self) -> [&mut [f32]; 9] {
        let [c, w1, b1, gain, bias, w2, b2] = self.params.tensors_mut();
        [
            c,
            w1,
            b1,
            gain,
            bias,
            w2,
            b2,
            &mut self.bn.mean,
            &mut self.bn.var,
        ]
    }

    /// Writes the model into the start of `out`; returns the number of bytes written
    /// ([`Model::BYTES`]).
    pub fn write_bytes(&self, out: &mut [u8]) -> Result<usize, BufferTooSmall> {
        let got = out.len();
        let out = out.get_mut(..Self::BYTES).ok_or(BufferTooSmall {
            needed: Self::BYTES,
            got,
        })?;
        let s = Self::SHAPE;
        let header = [
            MAGIC.as_slice(),
            &VERSION.to_le_bytes(),
            &s.vocab.to_le_bytes(),
        ];
        let dims = [s.embed, s.context, s.hidden, 0];
        let mut at = 0;
        for field in header {
            out[at..at + field.len()].copy_from_slice(field);
            at += field.len();
        }
        for d in dims {
            out[at..at + 2].copy_from_slice(&d.to_le_bytes());
            at += 2;
        }
        for (_, tensor) in self.file_tensors() {
            for x in tensor {
                out[at..at + 4].copy_from_slice(&x.to_le_bytes());
                at += 4;
            }
        }
        let crc = CRC32.checksum(&out[..at]);
        out[at..].copy_from_slice(&crc.to_le_bytes());
        Ok(Self::BYTES)
    }

    /// Replaces this model with the one in `bytes`, which must be exactly one model file of this
    /// shape. Everything is checked before anything is written: on error `self` is unchanged.
    pub fn read_bytes(&mut self, bytes: &[u8]) -> Result<(), LoadError> {
        let found = peek_shape(bytes)?;
        if found != Self::SHAPE {
            return Err(LoadError::ShapeMismatch {
                expected: Self::SHAPE,
                found,
            });
        }
        if bytes.len() < Self::BYTES {
            return Err(LoadError::Truncated {
                needed: Self::BYTES,
                got: bytes.len(),
            });
        }
        if bytes.len() > Self::BYTES {
            return Err(LoadError::TrailingBytes {
                expected: Self::BYTES,
                got: bytes.len(),
            });
        }
        let (body, stored) = bytes.split_at(Self::BYTES - 4);
        let stored = u32::from_le_bytes([stored[0], stored[1], stored[2], stored[3]]);
        let computed = CRC32.checksum(body);
        if stored != computed {
            return Err(LoadError::ChecksumMismatch { stored, computed });
        }
        let floats = || {
            body[HEADER_LEN..]
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        };
        let mut values = floats();
        let mut starts = [0; 9];
        let mut start = 0;
        for ((name, tensor), tensor_start) in self.file_tensors().into_iter().zip(&mut starts) {
            *tensor_start = start;
            start += tensor.len();
            for index in 0..tensor.len() {
                if !values.next().is_some_and(f32::is_finite) {
                    return Err(LoadError::NonFinite {
                        tensor: name,
                        index,
                    });
                }
            }
        }
        let at = |tensor: usize, i: usize| {
            let b = HEADER_LEN + 4 * (starts[tensor] + i);
            f32::from_le_bytes([body[b], body[b + 1], body[b + 2], body[b + 3]])
        };
        for index in 0..H {
            let value = at(8, index);
            // −0.0 is a variance of zero, not a negative one.
            if value < 0.0 {
                return Err(LoadError::NegativeVariance { index, value });
            }
        }
        crate::bounds::check::<E, T, H>(at).map_err(LoadError::Overflow)?;
        let mut values = floats();
        for tensor in self.file_tensors_mut() {
            for (x, v) in tensor.iter_mut().zip(&mut values) {
                *x = v;
            }
        }
        Ok(())
    }
}
