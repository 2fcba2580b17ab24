//! The model file: a [safetensors] file with the makemore part 4 notebook's tensor names, read
//! and written with no allocation.
//!
//! A safetensors file is an 8-byte little-endian header length n, n bytes of JSON (padded with
//! spaces to a multiple of 8), then the tensors' bytes. The header maps each tensor name to its
//! dtype, shape and `[start, end)` offsets into those bytes, which must tile them exactly; the
//! optional `__metadata__` maps strings to strings. A model file holds, all `F32`:
//!
//! | name     | shape    | is                                                  |
//! |----------|----------|-----------------------------------------------------|
//! | `C`      | [v, E]   | the embedding                                       |
//! | `W1`     | [T·E, H] | the first linear layer (input t·E + e)              |
//! | `b1`     | [H]      | its bias                                            |
//! | `W2`     | [H, v]   | the output layer (the fast path's W2ᵀ, transposed)  |
//! | `b2`     | [v]      | its bias                                            |
//! | `bngain`, `bnbias`, `bnmean`, `bnvar` | [1, H] | batch norm; bnvar Bessel-corrected (÷ (n−1)), used with ε = 1e-5 |
//!
//! The reader also takes the vectors as [H] (or [1, H] for b1, [1, v] for b2), as PyTorch code
//! may keep them either way. charmlp's metadata (all values strings, as safetensors requires):
//! `format` "charmlp", `format_version` "1", `alphabet` (the characters of tokens 1..v, in
//! order), `embed`, `context`, `hidden`, `bn_eps` "1e-5", `bn_variance` "unbiased", `crc32`
//! (see [`crc32`]) and whatever the writer's caller adds (the host adds the seed, the split
//! rule and a hash of the data). A file without `format` "charmlp" (one saved by PyTorch, say)
//! has no checksum and takes its alphabet from the caller.
//!
//! The JSON is parsed by serde-json-core: no_std, no allocation, borrowing from the input. Only
//! `__metadata__`, the nine names and their three fields are accepted, each at most once, and no
//! value is skipped unparsed, so nothing recurses on hostile nesting; the header is refused
//! beyond [`HEADER_MAX`] bytes before it is parsed.
//!
//! [safetensors]: https://huggingface.co/docs/safetensors

use crate::alphabet::{Alphabet, MAX_SYMBOLS};
use crate::bytes::{BufferTooSmall, LoadError, Shape};
use crate::model::Model;
use core::fmt;
use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::ser::{SerializeMap, Serializer};
use serde::{Deserialize, Serialize};

/// The tensor names in the notebook's order, which is also the checksum's.
pub const NAMES: [&str; 9] = [
    "C", "W1", "b1", "W2", "b2", "bngain", "bnbias", "bnmean", "bnvar",
];
const C: usize = 0;
const W1: usize = 1;
const B1: usize = 2;
const W2: usize = 3;
const B2: usize = 4;
const GAIN: usize = 5;
const BIAS: usize = 6;
const MEAN: usize = 7;
const VAR: usize = 8;

/// The tensors in the order the writer lays out their bytes: by name, as the `safetensors`
/// crate and Python package order tensors of one dtype, so that they would write the same file.
const WRITE_ORDER: [usize; 9] = [C, W1, W2, B1, B2, BIAS, GAIN, MEAN, VAR];

/// The `format` metadata value of a charmlp file.
pub const FORMAT: &str = "charmlp";
/// The `format_version` written and read.
pub const FORMAT_VERSION: &str = "1";
/// The longest header read (64 KiB): charmlp's own are under 4 KiB, and a PyTorch file of these
/// nine tensors far smaller.
pub const HEADER_MAX: usize = 65_536;
/// The longest header written, caller's metadata included.
pub const HEADER_WRITE_MAX: usize = 8_192;
const LEN_PREFIX: usize = 8;
const CRC32: crc::Crc<u32> = crc::Crc::<u32>::new(&crc::CRC_32_ISO_HDLC);

/// Up to 32 bytes of a name from a file, for an error message that must stay `Copy`.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Quoted {
    bytes: [u8; 32],
    len: u8,
    truncated: bool,
}

impl Quoted {
    /// The first 32 bytes of `s` (cut at a character boundary).
    pub fn new(s: &str) -> Self {
        let mut len = s.len().min(32);
        while !s.is_char_boundary(len) {
            len -= 1;
        }
        let mut bytes = [0; 32];
        bytes[..len].copy_from_slice(&s.as_bytes()[..len]);
        Quoted {
            bytes,
            len: len as u8,
            truncated: len < s.len(),
        }
    }

    fn as_str(&self) -> &str {
        // Cut at a character boundary of a str in `new`.
        core::str::from_utf8(&self.bytes[..usize::from(self.len)]).unwrap_or("")
    }
}

impl fmt::Debug for Quoted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl fmt::Display for Quoted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let dots = if self.truncated { "…" } else { "" };
        write!(f, "\"{}{dots}\"", self.as_str().escape_debug())
    }
}

/// Why bytes are not a safetensors file of the model schema.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum FileError {
    /// Shorter than the 8-byte header length.
    NoHeaderLength { got: usize },
    /// The header length is beyond [`HEADER_MAX`] or the file's end.
    HeaderLength { len: u64, file: usize },
    /// The header is not UTF-8.
    HeaderNotUtf8,
    /// The header is not JSON of the expected form (serde-json-core's reason).
    Json(serde_json_core::de::Error),
    /// A tensor name other than the nine.
    UnknownTensor(Quoted),
    /// A name given twice.
    Duplicate(&'static str),
    /// A tensor the model needs is not in the file.
    MissingTensor(&'static str),
    /// A dtype other than F32.
    Dtype { tensor: &'static str, found: Quoted },
    /// A shape of more than two dimensions.
    Rank { tensor: &'static str, rank: usize },
    /// A shape other than the model's (`expected` is its rank-2 form).
    Dims {
        tensor: &'static str,
        expected: [u64; 2],
        found: [u64; 2],
        rank: usize,
    },
    /// E does not divide W1's rows, or a dimension is beyond what a model can have.
    Layout { c: [u64; 2], w1: [u64; 2] },
    /// Offsets that do not tile the data exactly, or that disagree with the shape.
    Offsets { tensor: &'static str },
    /// The data is longer or shorter than the tensors.
    DataLength { tensors: u64, data: usize },
    /// A metadata value that is not what it must be.
    Metadata { key: &'static str },
    /// A charmlp file of a format version this build cannot read.
    FormatVersion(Quoted),
    /// No alphabet in the file, and none given for its symbol count.
    NoAlphabet { symbols: usize },
    /// An alphabet whose length is not the model's symbol count less the boundary.
    AlphabetLength { symbols: usize, chars: usize },
}

fn dims_text(f: &mut fmt::Formatter<'_>, dims: [u64; 2], rank: usize) -> fmt::Result {
    match rank {
        0 => f.write_str("[]"),
        1 => write!(f, "[{}]", dims[1]),
        _ => write!(f, "[{}, {}]", dims[0], dims[1]),
    }
}

impl fmt::Display for FileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FileError::NoHeaderLength { got } => write!(
                f,
                "{got} bytes: too short for a safetensors file (8-byte header length, header, tensors)"
            ),
            FileError::HeaderLength { len, file } => write!(
                f,
                "safetensors header length {len} is beyond {} (the file has {file} bytes; \
                 a model's header is at most {HEADER_MAX})",
                if *len as u128 + 8 > *file as u128 {
                    "the end of the file"
                } else {
                    "the largest header read"
                }
            ),
            FileError::HeaderNotUtf8 => f.write_str("safetensors header is not UTF-8"),
            FileError::Json(e) => write!(f, "safetensors header is not valid: {e}"),
            FileError::UnknownTensor(name) => write!(
                f,
                "tensor {name} is not one of the model's: C, W1, b1, W2, b2, bngain, bnbias, \
                 bnmean, bnvar"
            ),
            FileError::Duplicate(name) => write!(f, "{name} appears twice in the header"),
            FileError::MissingTensor(name @ ("bnmean" | "bnvar")) => write!(
                f,
                "no tensor {name}: save the batch-norm statistics calibrated over the training \
                 split (the notebook's bnmean and bnvar) with the parameters"
            ),
            FileError::MissingTensor(name) => write!(f, "no tensor {name} in the file"),
            FileError::Dtype { tensor, found } => {
                write!(f, "tensor {tensor} has dtype {found}; a model's are F32")
            }
            FileError::Rank { tensor, rank } => {
                write!(f, "tensor {tensor} has {rank} dimensions; at most 2")
            }
            FileError::Dims {
                tensor,
                expected,
                found,
                rank,
            } => {
                write!(f, "tensor {tensor} has shape ")?;
                dims_text(f, *found, *rank)?;
                f.write_str("; this model's is ")?;
                dims_text(f, *expected, 2)
            }
            FileError::Layout { c, w1 } => write!(
                f,
                "C [{}, {}] and W1 [{}, {}] are not a model: C is [symbols, embedding] and W1 \
                 [context·embedding, hidden], at most {MAX_SYMBOLS} symbols and 65535 wide",
                c[0], c[1], w1[0], w1[1]
            ),
            FileError::Offsets { tensor } => write!(
                f,
                "tensor {tensor}'s data_offsets do not follow the previous tensor's or do not \
                 match its shape"
            ),
            FileError::DataLength { tensors, data } if (*data as u64) < *tensors => write!(
                f,
                "truncated: the tensors take {tensors} bytes but the file has {data} after the header"
            ),
            FileError::DataLength { tensors, data } => write!(
                f,
                "{} bytes after the last tensor (the tensors take {tensors}, the file has {data} \
                 after the header)",
                *data as u64 - tensors
            ),
            FileError::Metadata { key } => write!(f, "metadata {key} is not valid"),
            FileError::FormatVersion(found) => write!(
                f,
                "charmlp format_version {found}; this build reads \"{FORMAT_VERSION}\""
            ),
            FileError::NoAlphabet { symbols } => write!(
                f,
                "the file has no charmlp alphabet and {symbols} symbols (makemore's is 27: the \
                 boundary and a-z); give the characters of tokens 1..{} in order with --alphabet",
                symbols - 1
            ),
            FileError::AlphabetLength { symbols, chars } => write!(
                f,
                "the alphabet has {chars} characters but the tensors {symbols} symbols (the \
                 boundary and {} characters)",
                symbols - 1
            ),
        }
    }
}

impl From<FileError> for LoadError {
    fn from(e: FileError) -> Self {
        LoadError::File(e)
    }
}

/// A shape as a header gives it: up to two dimensions kept, the rank counted.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
struct Dims {
    /// Right-aligned: [1, H] and [H] are `[1, H]` and `[?, H]` with rank 2 and 1.
    dims: [u64; 2],
    rank: usize,
    /// The product of all the dimensions, `None` where it overflows.
    numel: Option<u64>,
}

impl Dims {
    fn numel(self) -> Option<u64> {
        self.numel
    }
}

impl<'de> Deserialize<'de> for Dims {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct DimsVisitor;
        impl<'de> Visitor<'de> for DimsVisitor {
            type Value = Dims;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a list of dimensions")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Dims, A::Error> {
                let mut all = [0u64; 3];
                let mut rank = 0;
                let mut numel = Some(1u64);
                while let Some(d) = seq.next_element::<u64>()? {
                    if rank < 3 {
                        all[rank] = d;
                    }
                    rank += 1;
                    numel = numel.and_then(|n| n.checked_mul(d));
                }
                let dims = match rank {
                    0 => [1, 1],
                    1 => [1, all[0]],
                    _ => [all[0], all[1]],
                };
                Ok(Dims { dims, rank, numel })
            }
        }
        d.deserialize_seq(DimsVisitor)
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTensor<'a> {
    #[serde(borrow)]
    dtype: &'a str,
    shape: Dims,
    data_offsets: [u64; 2],
}

/// One tensor's place in the data, after the header's checks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct TensorAt {
    dims: Dims,
    start: usize,
    end: usize,
}

/// The metadata a reader uses, as the raw (still JSON-escaped) strings of the header.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Metadata<'a> {
    pub format: Option<&'a str>,
    pub format_version: Option<&'a str>,
    /// JSON-escaped; see [`Header::alphabet_chars`].
    pub alphabet: Option<&'a str>,
    pub crc32: Option<&'a str>,
    pub seed: Option<&'a str>,
    pub data_sha256: Option<&'a str>,
}

impl<'a> Metadata<'a> {
    fn slot(&mut self, key: &str) -> Option<&mut Option<&'a str>> {
        Some(match key {
            "format" => &mut self.format,
            "format_version" => &mut self.format_version,
            "alphabet" => &mut self.alphabet,
            "crc32" => &mut self.crc32,
            "seed" => &mut self.seed,
            "data_sha256" => &mut self.data_sha256,
            _ => return None,
        })
    }

    /// Whether this is charmlp's metadata (else the file is foreign: no checksum, no alphabet).
    pub fn is_charmlp(&self) -> bool {
        self.format == Some(FORMAT)
    }
}

impl<'de> Deserialize<'de> for Metadata<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct MetaVisitor;
        impl<'de> Visitor<'de> for MetaVisitor {
            type Value = Metadata<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a map of strings to strings")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut meta = Metadata::default();
                while let Some(key) = map.next_key::<&'de str>()? {
                    // Every value is parsed as a string, as safetensors requires, even those
                    // not read: nothing is skipped unparsed.
                    let value = map.next_value::<&'de str>()?;
                    if let Some(slot) = meta.slot(key)
                        && slot.replace(value).is_some()
                    {
                        return Err(de::Error::custom("duplicate metadata key"));
                    }
                }
                Ok(meta)
            }
        }
        d.deserialize_map(MetaVisitor)
    }
}

/// The header's content before its offsets are checked.
struct RawHeader<'a> {
    tensors: [Option<(Dims, [u64; 2], &'a str)>; 9],
    meta: Option<Metadata<'a>>,
}

/// Parses the top-level map, keeping the first error of our own (an unknown name, a duplicate)
/// outside serde-json-core's error type, which cannot carry it.
struct HeaderSeed<'e>(&'e mut Option<FileError>);

impl<'de> de::DeserializeSeed<'de> for HeaderSeed<'_> {
    type Value = RawHeader<'de>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for HeaderSeed<'_> {
    type Value = RawHeader<'de>;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a safetensors header")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut header = RawHeader {
            tensors: [None; 9],
            meta: None,
        };
        let mut fail = |e: FileError| {
            *self.0 = Some(e);
            de::Error::custom("")
        };
        while let Some(key) = map.next_key::<&'de str>()? {
            if key == "__metadata__" {
                if header.meta.is_some() {
                    return Err(fail(FileError::Duplicate("__metadata__")));
                }
                header.meta = Some(map.next_value()?);
                continue;
            }
            let Some(i) = NAMES.iter().position(|&n| n == key) else {
                return Err(fail(FileError::UnknownTensor(Quoted::new(key))));
            };
            if header.tensors[i].is_some() {
                return Err(fail(FileError::Duplicate(NAMES[i])));
            }
            let t: RawTensor<'de> = map.next_value()?;
            header.tensors[i] = Some((t.shape, t.data_offsets, t.dtype));
        }
        Ok(header)
    }
}

/// A model file's header, checked as a safetensors container: every tensor F32 of at most two
/// dimensions, offsets tiling the data exactly.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Header<'a> {
    tensors: [Option<TensorAt>; 9],
    pub metadata: Metadata<'a>,
    data: &'a [u8],
}

/// Parses and checks a safetensors header (see the module docs); the tensors' values are not
/// read.
pub fn parse(bytes: &[u8]) -> Result<Header<'_>, FileError> {
    let (json, data) = split_header(bytes)?;
    let mut ours = None;
    let mut de = serde_json_core::de::Deserializer::new(json.as_bytes(), None);
    let raw = match de::DeserializeSeed::deserialize(HeaderSeed(&mut ours), &mut de) {
        Ok(raw) => raw,
        Err(e) => return Err(ours.unwrap_or(FileError::Json(e))),
    };
    de.end().map_err(FileError::Json)?;

    // Offsets must tile the data from 0 in some order, as the safetensors crate requires.
    let mut tensors = [None; 9];
    let mut next = 0u64;
    let mut order = [0usize; 9];
    let mut present = 0;
    for (i, t) in raw.tensors.iter().enumerate() {
        if t.is_some() {
            order[present] = i;
            present += 1;
        }
    }
    let order = &mut order[..present];
    order.sort_unstable_by_key(|&i| raw.tensors[i].map(|(_, [start, _], _)| start));
    for &i in order.iter() {
        let Some((dims, [start, end], dtype)) = raw.tensors[i] else {
            continue;
        };
        if dtype != "F32" {
            return Err(FileError::Dtype {
                tensor: NAMES[i],
                found: Quoted::new(dtype),
            });
        }
        if dims.rank > 2 {
            return Err(FileError::Rank {
                tensor: NAMES[i],
                rank: dims.rank,
            });
        }
        let bytes = dims.numel().and_then(|n| n.checked_mul(4));
        if start != next || end < start || Some(end - start) != bytes {
            return Err(FileError::Offsets { tensor: NAMES[i] });
        }
        next = end;
        // Within the data (checked below) and so within usize.
        tensors[i] = Some((dims, start, end));
    }
    if next != data.len() as u64 {
        return Err(FileError::DataLength {
            tensors: next,
            data: data.len(),
        });
    }
    let tensors = tensors.map(|t| {
        t.map(|(dims, start, end)| TensorAt {
            dims,
            start: start as usize,
            end: end as usize,
        })
    });
    Ok(Header {
        tensors,
        metadata: raw.meta.unwrap_or_default(),
        data,
    })
}

impl<'a> Header<'a> {
    fn tensor(&self, i: usize) -> Result<TensorAt, FileError> {
        self.tensors[i].ok_or(FileError::MissingTensor(NAMES[i]))
    }

    /// The model's shape, from C [v, E] and W1 [T·E, H].
    pub fn shape(&self) -> Result<Shape, FileError> {
        let (c, w1) = (self.tensor(C)?.dims, self.tensor(W1)?.dims);
        let layout = FileError::Layout {
            c: c.dims,
            w1: w1.dims,
        };
        if c.rank != 2 || w1.rank != 2 {
            return Err(layout);
        }
        let [v, e] = c.dims;
        let [te, h] = w1.dims;
        if e == 0 || te % e != 0 || v > MAX_SYMBOLS as u64 {
            return Err(layout);
        }
        let dim = |x: u64| u16::try_from(x).map_err(|_| layout);
        Ok(Shape {
            vocab: dim(v)?,
            embed: dim(e)?,
            context: dim(te / e)?,
            hidden: dim(h)?,
        })
    }

    /// The alphabet's characters (tokens 1..), unescaped from the metadata's JSON string, or
    /// `None` in a file without charmlp metadata.
    pub fn alphabet_chars(
        &self,
    ) -> Option<impl Iterator<Item = Result<char, FileError>> + use<'a>> {
        let raw = self
            .metadata
            .alphabet
            .filter(|_| self.metadata.is_charmlp())?;
        let fragments = serde_json_core::str::EscapedStr(raw).fragments();
        Some(fragments.flat_map(|fragment| {
            let (plain, escaped) = match fragment {
                Ok(serde_json_core::str::EscapedStringFragment::NotEscaped(s)) => (s, None),
                Ok(serde_json_core::str::EscapedStringFragment::Escaped(c)) => ("", Some(Ok(c))),
                Err(_) => (
                    "",
                    Some(Err(FileError::Metadata {
                        key: "alphabet (an escape other than JSON's, or a \\u surrogate pair: \
                              write such characters as UTF-8)",
                    })),
                ),
            };
            plain.chars().map(Ok).chain(escaped)
        }))
    }

    /// The bytes of the tensor called `name`, if the file has it.
    pub fn tensor_bytes(&self, name: &str) -> Option<&'a [u8]> {
        let i = NAMES.iter().position(|&n| n == name)?;
        self.tensors[i].map(|t| &self.data[t.start..t.end])
    }

    /// The f32 values of tensor `i`, in its row-major order.
    fn values(&self, i: usize) -> impl Iterator<Item = f32> + use<'a> {
        let at = self.tensors[i].map_or(0..0, |t| t.start..t.end);
        self.data[at]
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }
}

/// A tensor of any name and dtype, for files other than models (the conformance reference
/// state): its dtype as the header names it, its element count and its bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AnyTensor<'a> {
    pub dtype: &'a str,
    pub numel: u64,
    pub data: &'a [u8],
}

/// Looks for the tensor `name` in a safetensors file of any tensors. Its bytes must lie in the
/// data and match its shape for F32 and I64; other tensors are parsed but not checked.
pub fn find_tensor<'a>(bytes: &'a [u8], name: &str) -> Result<Option<AnyTensor<'a>>, FileError> {
    let (json, data) = split_header(bytes)?;
    let mut de = serde_json_core::de::Deserializer::new(json.as_bytes(), None);
    let found =
        de::DeserializeSeed::deserialize(FindSeed(name), &mut de).map_err(FileError::Json)?;
    de.end().map_err(FileError::Json)?;
    let Some((dtype, dims, [start, end])) = found else {
        return Ok(None);
    };
    let width = match dtype {
        "F32" => Some(4),
        "I64" => Some(8),
        _ => None,
    };
    let within = start <= end && end <= data.len() as u64;
    let sized =
        width.is_none_or(|w| dims.numel.and_then(|n| n.checked_mul(w)) == Some(end - start));
    let (Some(numel), true, true) = (dims.numel, within, sized) else {
        return Err(FileError::Offsets {
            tensor: "looked up",
        });
    };
    Ok(Some(AnyTensor {
        dtype,
        numel,
        data: &data[start as usize..end as usize],
    }))
}

/// Finds one named tensor among any: every other entry is parsed (as a tensor, or as string
/// metadata), so nothing is skipped unparsed.
struct FindSeed<'n>(&'n str);

/// The found tensor's dtype, shape and offsets.
type Found<'de> = Option<(&'de str, Dims, [u64; 2])>;

impl<'de> de::DeserializeSeed<'de> for FindSeed<'_> {
    type Value = Found<'de>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for FindSeed<'_> {
    type Value = Found<'de>;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a safetensors header")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut found = None;
        while let Some(key) = map.next_key::<&'de str>()? {
            if key == "__metadata__" {
                map.next_value::<Metadata<'de>>()?;
                continue;
            }
            let t: RawTensor<'de> = map.next_value()?;
            if key == self.0 {
                found = Some((t.dtype, t.shape, t.data_offsets));
            }
        }
        Ok(found)
    }
}

/// The JSON header and the data after it.
fn split_header(bytes: &[u8]) -> Result<(&str, &[u8]), FileError> {
    let Some((len, rest)) = bytes.split_first_chunk::<LEN_PREFIX>() else {
        return Err(FileError::NoHeaderLength { got: bytes.len() });
    };
    let len = u64::from_le_bytes(*len);
    let header_len = usize::try_from(len)
        .ok()
        .filter(|&n| n <= HEADER_MAX && n <= rest.len())
        .ok_or(FileError::HeaderLength {
            len,
            file: bytes.len(),
        })?;
    let (json, data) = rest.split_at(header_len);
    let json = core::str::from_utf8(json).map_err(|_| FileError::HeaderNotUtf8)?;
    Ok((json, data))
}

/// The file's checksum: CRC-32 (ISO-HDLC, as zlib's) of the alphabet's UTF-8 bytes followed by
/// the nine tensors' little-endian bytes in [`NAMES`] order. In Python:
/// `zlib.crc32(alphabet.encode() + b"".join(t[n].numpy().tobytes() for n in NAMES))`.
pub fn crc32<'t>(
    alphabet: impl IntoIterator<Item = char>,
    tensors: impl IntoIterator<Item = f32> + 't,
) -> u32 {
    let mut digest = CRC32.digest();
    for ch in alphabet {
        digest.update(ch.encode_utf8(&mut [0; 4]).as_bytes());
    }
    for x in tensors {
        digest.update(&x.to_le_bytes());
    }
    digest.finalize()
}

/// `x` (< 100,000: a model dimension) in decimal, in `buf`.
fn decimal(x: usize, buf: &mut [u8; 5]) -> &str {
    let mut at = buf.len();
    let mut x = x;
    loop {
        at -= 1;
        buf[at] = b'0' + (x % 10) as u8;
        x /= 10;
        if x == 0 || at == 0 {
            break;
        }
    }
    core::str::from_utf8(&buf[at..]).unwrap_or("")
}

fn hex_u32(s: &str) -> Option<u32> {
    (s.len() == 8 && s.bytes().all(|b| b.is_ascii_hexdigit()))
        .then(|| u32::from_str_radix(s, 16).ok())
        .flatten()
}

impl<const V: usize, const E: usize, const T: usize, const H: usize> Model<V, E, T, H> {
    /// The expected [rows, cols] of tensor `i` with `v` symbols.
    const fn expected_dims(i: usize, v: usize) -> [u64; 2] {
        let (v, e, te, h) = (v as u64, E as u64, (T * E) as u64, H as u64);
        match i {
            C => [v, e],
            W1 => [te, h],
            W2 => [h, v],
            B2 => [1, v],
            _ => [1, h],
        }
    }

    /// Tensor `i`'s dimensions as written (b1 and b2 as vectors, the batch norm's as [1, H], as
    /// the notebook keeps them), rank and element count, with `v` symbols.
    const fn written_dims(i: usize, v: usize) -> ([u64; 2], usize, usize) {
        let [rows, cols] = Self::expected_dims(i, v);
        let numel = (rows * cols) as usize;
        match i {
            B1 | B2 => ([cols, 0], 1, numel),
            _ => ([rows, cols], 2, numel),
        }
    }

    /// The values of tensor `i` in the file's layout, from this model's `v` present symbols.
    fn file_values(&self, i: usize, v: usize) -> impl Iterator<Item = f32> + '_ {
        let p = &self.params;
        let flat: &[f32] = match i {
            C => p.c[..v].as_flattened(),
            W1 => p.w1.as_flattened().as_flattened(),
            B1 => &p.b1,
            B2 => &p.b2[..v],
            GAIN => &p.gain,
            BIAS => &p.bias,
            MEAN => &self.bn.mean,
            VAR => &self.bn.var,
            _ => &[],
        };
        // W2 [H, v] is the stored W2ᵀ [v][H] read column by column.
        let w2 = (i == W2).then(|| (0..H).flat_map(move |j| (0..v).map(move |k| p.w2t[k][j])));
        flat.iter().copied().chain(w2.into_iter().flatten())
    }

    /// Writes this model as a safetensors file into the start of `out` and returns its length.
    /// `extra` is more metadata (key, value), such as the host's seed and data hash; its keys
    /// must not be charmlp's own. The alphabet's and the model's symbols must agree, as
    /// [`Model::init_with_symbols`] leaves them.
    pub fn write_safetensors(
        &self,
        alphabet: &Alphabet<V>,
        extra: &[(&str, &str)],
        out: &mut [u8],
    ) -> Result<usize, BufferTooSmall> {
        let v = alphabet.len();
        let mut utf8 = [0u8; 4 * MAX_SYMBOLS];
        let mut n = 0;
        for ch in alphabet.chars() {
            n += ch.encode_utf8(&mut utf8[n..]).len();
        }
        let alphabet_text = core::str::from_utf8(&utf8[..n]).unwrap_or("");
        let crc = crc32(
            alphabet.chars().iter().copied(),
            (0..9).flat_map(|i| self.file_values(i, v)),
        );
        let mut crc_hex = [0u8; 8];
        for (d, nibble) in crc_hex.iter_mut().zip((0..8).rev()) {
            *d = b"0123456789abcdef"[(crc >> (4 * nibble)) as usize & 15];
        }
        let mut numbers = [[0u8; 5]; 3];
        let [e, t, h] = &mut numbers;
        let (e, t, h) = (decimal(E, e), decimal(T, t), decimal(H, h));
        let header = HeaderOut {
            meta: [
                ("format", FORMAT),
                ("format_version", FORMAT_VERSION),
                ("alphabet", alphabet_text),
                ("embed", e),
                ("context", t),
                ("hidden", h),
                ("bn_eps", "1e-5"),
                ("bn_variance", "unbiased"),
                ("crc32", core::str::from_utf8(&crc_hex).unwrap_or("")),
            ],
            extra,
            shapes: core::array::from_fn(|i| Self::written_dims(i, v)),
        };
        let got = out.len();
        let data_len: usize = header.shapes.iter().map(|&(_, _, n)| 4 * n).sum();
        let room = out.len().min(LEN_PREFIX + HEADER_WRITE_MAX);
        let json_len = out
            .get_mut(LEN_PREFIX..room)
            .and_then(|buf| serde_json_core::to_slice(&header, buf).ok())
            .ok_or(BufferTooSmall {
                needed: LEN_PREFIX + HEADER_WRITE_MAX + data_len,
                got,
            })?;
        let header_len = json_len.next_multiple_of(8);
        let len = LEN_PREFIX + header_len + data_len;
        let out = out
            .get_mut(..len)
            .ok_or(BufferTooSmall { needed: len, got })?;
        out[LEN_PREFIX + json_len..LEN_PREFIX + header_len].fill(b' ');
        out[..LEN_PREFIX].copy_from_slice(&(header_len as u64).to_le_bytes());
        let mut at = LEN_PREFIX + header_len;
        for i in WRITE_ORDER {
            for x in self.file_values(i, v) {
                out[at..at + 4].copy_from_slice(&x.to_le_bytes());
                at += 4;
            }
        }
        Ok(len)
    }

    /// Replaces this model and `alphabet` with the ones in the safetensors file `bytes` (see
    /// the module docs), which must have this type's embedding, context and hidden width and at
    /// most V symbols; symbols past the file's are absent. A file without charmlp metadata takes
    /// `default_alphabet` (the characters of tokens 1..), or makemore's a–z if it has 27
    /// symbols. Everything is checked before anything is written: on error `self` and
    /// `alphabet` are unchanged.
    pub fn read_safetensors(
        &mut self,
        alphabet: &mut Alphabet<V>,
        bytes: &[u8],
        default_alphabet: Option<&[char]>,
    ) -> Result<(), LoadError> {
        let file = parse(bytes)?;
        let found = file.shape()?;
        let expected = Self::shape(V);
        if (found.embed, found.context, found.hidden)
            != (expected.embed, expected.context, expected.hidden)
        {
            return Err(LoadError::ShapeMismatch { expected, found });
        }
        let v = usize::from(found.vocab);
        if !(2..=V).contains(&v) {
            return Err(LoadError::Symbols {
                found: found.vocab,
                capacity: V,
            });
        }
        for (i, tensor) in NAMES.into_iter().enumerate() {
            let t = file.tensor(i)?;
            let want = Self::expected_dims(i, v);
            // A vector may be [n] or [1, n]; a matrix has both dimensions.
            let fits = t.dims.dims == want && (t.dims.rank == 2 || want[0] == 1);
            if !fits {
                return Err(FileError::Dims {
                    tensor,
                    expected: want,
                    found: t.dims.dims,
                    rank: t.dims.rank,
                }
                .into());
            }
        }

        let meta = &file.metadata;
        let mut chars = ['\0'; V];
        let count = if meta.is_charmlp() {
            if meta.format_version != Some(FORMAT_VERSION) {
                let found = meta.format_version.unwrap_or("");
                return Err(FileError::FormatVersion(Quoted::new(found)).into());
            }
            let mut count = 0;
            for ch in file
                .alphabet_chars()
                .ok_or(FileError::Metadata { key: "alphabet" })?
            {
                let ch = ch?;
                if let Some(slot) = chars.get_mut(count) {
                    *slot = ch;
                }
                count += 1;
            }
            count
        } else if let Some(given) = default_alphabet {
            chars.iter_mut().zip(given).for_each(|(c, g)| *c = *g);
            given.len()
        } else if v == crate::vocab::VOCAB {
            let makemore = Alphabet::MAKEMORE;
            chars
                .iter_mut()
                .zip(makemore.chars())
                .for_each(|(c, g)| *c = *g);
            makemore.chars().len()
        } else {
            return Err(FileError::NoAlphabet { symbols: v }.into());
        };
        if count != v - 1 {
            return Err(FileError::AlphabetLength {
                symbols: v,
                chars: count,
            }
            .into());
        }
        let read_alphabet =
            Alphabet::<V>::new(&chars[..count]).map_err(|e| LoadError::BadAlphabet {
                index: 0,
                error: Some(e),
            })?;

        if meta.is_charmlp() {
            let stored = meta
                .crc32
                .and_then(hex_u32)
                .ok_or(FileError::Metadata { key: "crc32" })?;
            let computed = crc32(
                read_alphabet.chars().iter().copied(),
                (0..9).flat_map(|i| file.values(i)),
            );
            if stored != computed {
                return Err(LoadError::ChecksumMismatch { stored, computed });
            }
        }
        for (i, tensor) in NAMES.into_iter().enumerate() {
            if let Some(index) = file.values(i).position(|x| !x.is_finite()) {
                return Err(LoadError::NonFinite { tensor, index });
            }
        }
        if let Some((index, value)) = file.values(VAR).enumerate().find(|&(_, x)| x < 0.0) {
            return Err(LoadError::NegativeVariance { index, value });
        }
        let value = |i: usize, flat: usize| -> f32 {
            let at = file.tensors[i].map_or(0, |t| t.start) + 4 * flat;
            let b = &file.data[at..at + 4];
            f32::from_le_bytes([b[0], b[1], b[2], b[3]])
        };
        // The bounds read the v2 order, with W2ᵀ: element k·H + j is W2[j][k].
        let v2_order = [C, W1, B1, GAIN, BIAS, W2, B2, MEAN, VAR];
        crate::bounds::check::<E, T, H>(v, |tensor, flat| {
            let i = v2_order[tensor];
            if i == W2 {
                value(W2, (flat % H) * v + flat / H)
            } else {
                value(i, flat)
            }
        })
        .map_err(LoadError::Overflow)?;

        self.params.init_absent(v);
        let p = &mut self.params;
        let copy = |dst: &mut [f32], i: usize| {
            dst.iter_mut().zip(file.values(i)).for_each(|(d, x)| *d = x);
        };
        copy(p.c[..v].as_flattened_mut(), C);
        copy(p.w1.as_flattened_mut().as_flattened_mut(), W1);
        copy(&mut p.b1, B1);
        copy(&mut p.b2[..v], B2);
        copy(&mut p.gain, GAIN);
        copy(&mut p.bias, BIAS);
        copy(&mut self.bn.mean, MEAN);
        copy(&mut self.bn.var, VAR);
        for (flat, x) in file.values(W2).enumerate() {
            self.params.w2t[flat % v][flat / v] = x;
        }
        *alphabet = read_alphabet;
        Ok(())
    }
}

/// The header as written: charmlp's metadata and the caller's, then the tensors in
/// [`WRITE_ORDER`], as the `safetensors` crate writes them.
struct HeaderOut<'a> {
    meta: [(&'static str, &'a str); 9],
    extra: &'a [(&'a str, &'a str)],
    /// Each tensor's written dimensions (the first `rank` of them) and element count.
    shapes: [([u64; 2], usize, usize); 9],
}

#[derive(Serialize)]
struct TensorOut<'a> {
    dtype: &'static str,
    shape: &'a [u64],
    data_offsets: [u64; 2],
}

struct MetaOut<'a>(&'a HeaderOut<'a>);

impl Serialize for MetaOut<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(None)?;
        for (k, v) in self.0.meta.iter().chain(self.0.extra) {
            map.serialize_entry(k, v)?;
        }
        map.end()
    }
}

impl Serialize for HeaderOut<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(None)?;
        map.serialize_entry("__metadata__", &MetaOut(self))?;
        let mut start = 0u64;
        for i in WRITE_ORDER {
            let (dims, rank, numel) = self.shapes[i];
            let end = start + 4 * numel as u64;
            let t = TensorOut {
                dtype: "F32",
                shape: &dims[..rank],
                data_offsets: [start, end],
            };
            map.serialize_entry(NAMES[i], &t)?;
            start = end;
        }
        map.end()
    }
}

/// Rewrites the `crc32` metadata of a charmlp safetensors file in place to match its alphabet
/// and tensors; returns whether there was one to rewrite. For fuzzers and tests that craft
/// files which must get past the checksum to reach the checks behind it.
pub fn reseal(file: &mut [u8]) -> bool {
    let Some((at, computed)) = crc_site(file) else {
        return false;
    };
    for (k, nibble) in (0..8).rev().enumerate() {
        file[at + k] = b"0123456789abcdef"[(computed >> (4 * nibble)) as usize & 15];
    }
    true
}

/// Where a file's 8 stored checksum digits start, and the checksum its content has.
fn crc_site(file: &[u8]) -> Option<(usize, u32)> {
    let header = parse(file).ok()?;
    let stored = header.metadata.crc32.filter(|s| s.len() == 8)?;
    if !header.alphabet_chars()?.all(|c| c.is_ok()) {
        return None;
    }
    let computed = crc32(
        header.alphabet_chars().into_iter().flatten().flatten(),
        (0..9).flat_map(|i| header.values(i)),
    );
    // The stored digits lie inside `file`: the header borrows from it.
    Some((stored.as_ptr() as usize - file.as_ptr() as usize, computed))
}

/// The shape recorded in a safetensors model file's tensors (see [`Header::shape`]).
pub fn peek_shape(bytes: &[u8]) -> Result<Shape, LoadError> {
    Ok(parse(bytes)?.shape()?)
}

/// Whether `bytes` start as a safetensors file: a header length up to [`HEADER_MAX`], then `{`.
pub fn looks_like_safetensors(bytes: &[u8]) -> bool {
    match bytes.split_first_chunk::<LEN_PREFIX>() {
        Some((len, rest)) => {
            u64::from_le_bytes(*len) <= HEADER_MAX as u64 && rest.first() == Some(&b'{')
        }
        None => false,
    }
}

/// Whether `bytes` start as a legacy `.cmlp` file rather than a safetensors one (whose first
/// eight bytes are a header length far below `CMLP` read as a number).
pub fn is_cmlp(bytes: &[u8]) -> bool {
    bytes.starts_with(&crate::bytes::MAGIC)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand_core::SeedableRng;
    use rand_xoshiro::Xoshiro256PlusPlus;

    #[test]
    fn a_written_model_reads_back_exactly_with_its_alphabet() {
        let mut m = Model::<32, 4, 2, 8>::zeroed();
        let alphabet = Alphabet::<32>::new(&['"', '\\', 'a', 'é', '€', '😀']).unwrap();
        m.init_with_symbols(&mut Xoshiro256PlusPlus::seed_from_u64(3), alphabet.len());
        m.bn.var[3] = 0.0;
        let mut out = [0u8; 4096];
        let n = m
            .write_safetensors(&alphabet, &[("seed", "42")], &mut out)
            .unwrap();
        let file = &out[..n];
        let header_len = u64::from_le_bytes(file[..8].try_into().unwrap()) as usize;
        assert_eq!(header_len % 8, 0);
        let mut back = Model::<32, 4, 2, 8>::zeroed();
        let mut a = Alphabet::<32>::new(&[]).unwrap();
        back.read_safetensors(&mut a, file, None).unwrap();
        assert_eq!(back, m);
        assert_eq!(a, alphabet);
        assert_eq!(parse(file).unwrap().metadata.seed, Some("42"));
        assert!(matches!(
            out[..n - 1].len(),
            _ if Model::<32, 4, 2, 8>::zeroed()
                .read_safetensors(&mut a, &out[..n - 1], None)
                .is_err()
        ));
    }
}
