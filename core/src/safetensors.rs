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
//! beyond [`HEADER_MAX`] bytes before it is parsed. Keys, and the metadata values read as plain
//! text, are compared as written: one with a JSON escape is refused rather than misread.
//!
//! This module is the container: [`parse`], [`find_tensor`] for files of any tensors (the
//! conformance reference), the checksum. A model's reader and writer,
//! `Model::read_safetensors` and `Model::write_safetensors`, are in `model_file.rs`.
//!
//! [safetensors]: https://huggingface.co/docs/safetensors

use crate::alphabet::MAX_SYMBOLS;
use crate::bytes::{LoadError, Shape};
use core::fmt;
use serde::Deserialize;
use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};

/// The tensor names in the notebook's order, which is also the checksum's.
pub const NAMES: [&str; 9] = [
    "C", "W1", "b1", "W2", "b2", "bngain", "bnbias", "bnmean", "bnvar",
];
pub(crate) const C: usize = 0;
pub(crate) const W1: usize = 1;
pub(crate) const B1: usize = 2;
pub(crate) const W2: usize = 3;
pub(crate) const B2: usize = 4;
pub(crate) const GAIN: usize = 5;
pub(crate) const BIAS: usize = 6;
pub(crate) const MEAN: usize = 7;
pub(crate) const VAR: usize = 8;

/// The tensors in the order the writer lays out their bytes: by name, as the `safetensors`
/// crate and Python package order tensors of one dtype, so that they would write the same file.
pub(crate) const WRITE_ORDER: [usize; 9] = [C, W1, W2, B1, B2, BIAS, GAIN, MEAN, VAR];

/// The `format` metadata value of a charmlp file.
pub const FORMAT: &str = "charmlp";
/// The `format_version` written and read.
pub const FORMAT_VERSION: &str = "1";
/// The longest header read (64 KiB): charmlp's own are under 4 KiB, and a PyTorch file of these
/// nine tensors far smaller.
pub const HEADER_MAX: usize = 65_536;
/// The longest header written, caller's metadata included.
pub const HEADER_WRITE_MAX: usize = 8_192;
pub(crate) const LEN_PREFIX: usize = 8;
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
    /// A control character inside a JSON string of the header, at this byte of it.
    ControlInString { at: usize },
    /// An escape JSON does not have, inside a string of the header, at this byte of it.
    BadEscape { at: usize },
    /// The header is not JSON of the expected form (serde-json-core's reason).
    Json(serde_json_core::de::Error),
    /// A tensor name other than the nine.
    UnknownTensor(Quoted),
    /// A name given twice.
    Duplicate(&'static str),
    /// A looked-up tensor name given twice.
    DuplicateName(Quoted),
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
    /// charmlp metadata without a key it must have.
    MissingMetadata(&'static str),
    /// A charmlp metadata value other than what the tensors or the format say.
    MetadataValue {
        key: &'static str,
        found: Quoted,
        expected: Quoted,
        /// What says so: the tensors' shapes, or charmlp's format.
        source: &'static str,
    },
    /// A header key, or a charmlp metadata value read as plain text, with a JSON escape.
    Escaped(Quoted),
    /// A looked-up tensor whose data_offsets leave the data or disagree with its shape.
    Bounds,
    /// charmlp metadata in a file whose `format` is not "charmlp".
    NotCharmlp {
        key: &'static str,
        format: Option<Quoted>,
    },
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
            FileError::BadEscape { at } => write!(
                f,
                "safetensors header has an escape JSON does not allow (byte {at} of the \
                 header): JSON escapes are \\\" \\\\ \\/ \\b \\f \\n \\r \\t and \\u with four hex \
                 digits, a surrogate only in a pair"
            ),
            FileError::ControlInString { at } => write!(
                f,
                "safetensors header has a control character inside a string (byte {at} of the \
                 header), which JSON does not allow"
            ),
            FileError::Json(e) => write!(f, "safetensors header is not valid: {e}"),
            FileError::UnknownTensor(name) => write!(
                f,
                "tensor {name} is not one of the model's: C, W1, b1, W2, b2, bngain, bnbias, \
                 bnmean, bnvar"
            ),
            FileError::Duplicate(name) => write!(f, "{name} appears twice in the header"),
            FileError::DuplicateName(name) => write!(f, "{name} appears twice in the header"),
            FileError::MissingTensor(name @ ("bnmean" | "bnvar")) => write!(
                f,
                "no tensor {name}: save the batch-norm statistics calibrated over the training \
                 split (the notebook's bnmean and bnvar) with the parameters"
            ),
            FileError::MissingTensor(name) => write!(f, "no tensor {name} in the file"),
            FileError::Dtype { tensor, found } => write!(
                f,
                "tensor {tensor} has dtype {found}; a model's are F32 (save them as float32, \
                 e.g. `t.float()`)"
            ),
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
                dims_text(f, *expected, 2)?;
                if *rank == 2 && found[0] == expected[1] && found[1] == expected[0] {
                    f.write_str(
                        ": it is transposed (save the matrix the notebook multiplies by, \
                         `x @ W`, not nn.Linear's `weight`, which is its transpose)",
                    )?;
                }
                Ok(())
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
            FileError::MissingMetadata(key) => write!(
                f,
                "charmlp metadata without {key}: a file of format \"charmlp\" has it (a file \
                 of another format, or none, is read as one saved from PyTorch)"
            ),
            FileError::MetadataValue {
                key,
                found,
                expected,
                source,
            } => write!(f, "metadata {key} is {found}, but {source} {expected}"),
            FileError::Escaped(text) => write!(
                f,
                "{text} in the header is written with a JSON escape; charmlp reads header keys \
                 and its metadata values as plain text (write them unescaped, as charmlp and the \
                 safetensors libraries do)"
            ),
            FileError::NotCharmlp { key, format } => {
                write!(f, "metadata {key} is charmlp's, but format is ")?;
                match format {
                    Some(found) => write!(f, "{found}")?,
                    None => f.write_str("missing")?,
                }
                write!(
                    f,
                    ", not \"{FORMAT}\": a charmlp file whose format was changed (its checksum \
                     and alphabet would go unchecked)"
                )
            }
            FileError::Bounds => f.write_str(
                "the tensor's data_offsets leave the data or disagree with its shape and dtype",
            ),
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
                "the alphabet has {chars} character{} but the tensors have {symbols} symbols, \
                 which need {} (the boundary is token 0 and not a character)",
                if *chars == 1 { "" } else { "s" },
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
pub(crate) struct Dims {
    /// Right-aligned: [1, H] and [H] are `[1, H]` and `[?, H]` with rank 2 and 1.
    pub(crate) dims: [u64; 2],
    pub(crate) rank: usize,
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
pub(crate) struct TensorAt {
    pub(crate) dims: Dims,
    pub(crate) start: usize,
    pub(crate) end: usize,
}

/// The metadata a reader uses, as the raw (still JSON-escaped) strings of the header.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Metadata<'a> {
    pub format: Option<&'a str>,
    pub format_version: Option<&'a str>,
    /// JSON-escaped; see [`Header::alphabet_chars`].
    pub alphabet: Option<&'a str>,
    pub embed: Option<&'a str>,
    pub context: Option<&'a str>,
    pub hidden: Option<&'a str>,
    pub bn_eps: Option<&'a str>,
    pub bn_variance: Option<&'a str>,
    pub crc32: Option<&'a str>,
    pub seed: Option<&'a str>,
    pub data_sha256: Option<&'a str>,
    /// The first key given twice, or written with a JSON escape, or the first value read as
    /// plain text that has one: reported by the header's parser.
    problem: Option<FileError>,
}

impl<'a> Metadata<'a> {
    /// The field for `key`, and whether its value is read as plain text (all but the alphabet,
    /// which is unescaped character by character).
    fn slot(&mut self, key: &str) -> Option<(&'static str, &mut Option<&'a str>, bool)> {
        Some(match key {
            "format" => ("format", &mut self.format, true),
            "format_version" => ("format_version", &mut self.format_version, true),
            "alphabet" => ("alphabet", &mut self.alphabet, false),
            "embed" => ("embed", &mut self.embed, true),
            "context" => ("context", &mut self.context, true),
            "hidden" => ("hidden", &mut self.hidden, true),
            "bn_eps" => ("bn_eps", &mut self.bn_eps, true),
            "bn_variance" => ("bn_variance", &mut self.bn_variance, true),
            "crc32" => ("crc32", &mut self.crc32, true),
            "seed" => ("seed", &mut self.seed, true),
            "data_sha256" => ("data_sha256", &mut self.data_sha256, true),
            _ => return None,
        })
    }

    /// The keys charmlp reads.
    const KEYS: [&'static str; 11] = [
        "format",
        "format_version",
        "alphabet",
        "embed",
        "context",
        "hidden",
        "bn_eps",
        "bn_variance",
        "crc32",
        "seed",
        "data_sha256",
    ];

    /// Whether this is charmlp's metadata (else the file is foreign: no checksum, no alphabet).
    pub fn is_charmlp(&self) -> bool {
        self.format == Some(FORMAT)
    }

    /// A key only charmlp's files have, in a file whose `format` is not "charmlp": a changed
    /// or corrupted `format` would otherwise turn off the checksum and the stored alphabet.
    pub fn orphan(&self) -> Option<&'static str> {
        if self.is_charmlp() {
            return None;
        }
        [
            ("format_version", self.format_version),
            ("alphabet", self.alphabet),
            ("crc32", self.crc32),
        ]
        .into_iter()
        .find_map(|(key, value)| value.map(|_| key))
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
                let mut problem = None;
                let mut escaped_value = None;
                while let Some(key) = map.next_key::<&'de str>()? {
                    // Every value is parsed as a string, as safetensors requires, even those
                    // not read: nothing is skipped unparsed.
                    let value = map.next_value::<&'de str>()?;
                    // Another program's keys and values may hold escapes; one of charmlp's keys
                    // written with one would be misread (Python reads "\u0066ormat" as format).
                    if key.contains('\\') && Metadata::KEYS.iter().any(|k| unescapes_to(key, k)) {
                        problem = problem.or(Some(FileError::Escaped(Quoted::new(key))));
                    }
                    if let Some((name, slot, plain)) = meta.slot(key) {
                        if slot.replace(value).is_some() {
                            problem = problem.or(Some(FileError::Duplicate(name)));
                        }
                        if plain && value.contains('\\') {
                            escaped_value = escaped_value.or(Some(value));
                        }
                    }
                }
                // A value with an escape matters in charmlp's own files, where it is read as
                // plain text, and in `format`, which decides whether a file is one.
                if let Some(value) = escaped_value
                    && (meta.is_charmlp() || meta.format.is_some_and(|f| unescapes_to(f, FORMAT)))
                {
                    problem = problem.or(Some(FileError::Escaped(Quoted::new(value))));
                }
                meta.problem = problem;
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
        let mut meta_seen = false;
        while let Some(key) = map.next_key::<&'de str>()? {
            // Python reads "\u0043" as C: one of the names written with an escape would be
            // misread, where another name with an escape is just not one of the nine.
            let ours = || {
                NAMES
                    .iter()
                    .chain(&["__metadata__"])
                    .any(|n| unescapes_to(key, n))
            };
            if key.contains('\\') && ours() {
                return Err(fail(FileError::Escaped(Quoted::new(key))));
            }
            if key == "__metadata__" {
                if meta_seen {
                    return Err(fail(FileError::Duplicate("__metadata__")));
                }
                meta_seen = true;
                // `null` is no metadata, as the safetensors crate reads it.
                header.meta = map.next_value::<Option<Metadata<'de>>>()?;
                if let Some(problem) = header.meta.and_then(|m| m.problem) {
                    return Err(fail(problem));
                }
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

/// Whether the JSON string body `raw` (escapes not yet undone) reads as `target`. An invalid
/// escape reads as nothing.
fn unescapes_to(raw: &str, target: &str) -> bool {
    use serde_json_core::str::{EscapedStr, EscapedStringFragment};
    let mut want = target.chars();
    for fragment in EscapedStr(raw).fragments() {
        let ok = match fragment {
            Ok(EscapedStringFragment::NotEscaped(s)) => s.chars().all(|c| want.next() == Some(c)),
            Ok(EscapedStringFragment::Escaped(c)) => want.next() == Some(c),
            Err(_) => false,
        };
        if !ok {
            return false;
        }
    }
    want.next().is_none()
}

/// A model file's header, checked as a safetensors container: every tensor F32 of at most two
/// dimensions, offsets tiling the data exactly.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Header<'a> {
    pub(crate) tensors: [Option<TensorAt>; 9],
    pub metadata: Metadata<'a>,
    pub(crate) data: &'a [u8],
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
    if let Some(meta) = raw.meta
        && let Some(key) = meta.orphan()
    {
        return Err(FileError::NotCharmlp {
            key,
            format: meta.format.map(Quoted::new),
        });
    }

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
    pub(crate) fn tensor(&self, i: usize) -> Result<TensorAt, FileError> {
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
    pub(crate) fn values(&self, i: usize) -> impl Iterator<Item = f32> + use<'a> {
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
    let mut duplicate = false;
    let seed = FindSeed {
        name,
        duplicate: &mut duplicate,
    };
    let found = de::DeserializeSeed::deserialize(seed, &mut de).map_err(|e| {
        if duplicate {
            FileError::DuplicateName(Quoted::new(name))
        } else {
            FileError::Json(e)
        }
    })?;
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
    // `end − start` only once it is known not to wrap.
    let sized = within
        && width.is_none_or(|w| dims.numel.and_then(|n| n.checked_mul(w)) == Some(end - start));
    let (Some(numel), true) = (dims.numel, sized) else {
        return Err(FileError::Bounds);
    };
    Ok(Some(AnyTensor {
        dtype,
        numel,
        data: &data[start as usize..end as usize],
    }))
}

/// Finds one named tensor among any: every other entry is parsed (as a tensor, or as string
/// metadata), so nothing is skipped unparsed.
struct FindSeed<'n, 'e> {
    name: &'n str,
    /// The looked-up name given twice: which entry is meant would be a guess.
    duplicate: &'e mut bool,
}

/// The found tensor's dtype, shape and offsets.
type Found<'de> = Option<(&'de str, Dims, [u64; 2])>;

impl<'de> de::DeserializeSeed<'de> for FindSeed<'_, '_> {
    type Value = Found<'de>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for FindSeed<'_, '_> {
    type Value = Found<'de>;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a safetensors header")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut found = None;
        while let Some(key) = map.next_key::<&'de str>()? {
            if key == "__metadata__" {
                map.next_value::<Option<Metadata<'de>>>()?;
                continue;
            }
            let t: RawTensor<'de> = map.next_value()?;
            if key == self.name {
                if found.is_some() {
                    *self.duplicate = true;
                    return Err(de::Error::custom(""));
                }
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
    if let Some(problem) = string_problem(json) {
        return Err(problem);
    }
    Ok((json, data))
}

/// The first thing inside a JSON string of `json` that JSON forbids, which serde-json-core
/// would take as it is but the safetensors libraries (serde_json) refuse: a control character
/// (a tab or a newline must be written `\t`, `\n`), or an escape that is not one of JSON's
/// (`\x`, a `\u` without four hex digits, a surrogate without its other half).
fn string_problem(json: &str) -> Option<FileError> {
    let bytes = json.as_bytes();
    let hex4 = |at: usize| -> Option<u16> {
        let digits = core::str::from_utf8(bytes.get(at..at + 4)?).ok()?;
        if digits.bytes().all(|b| b.is_ascii_hexdigit()) {
            u16::from_str_radix(digits, 16).ok()
        } else {
            None
        }
    };
    let mut in_string = false;
    let mut at = 0;
    while let Some(&b) = bytes.get(at) {
        if !in_string {
            in_string = b == b'"';
            at += 1;
            continue;
        }
        match b {
            0..0x20 => return Some(FileError::ControlInString { at }),
            b'"' => in_string = false,
            b'\\' => {
                let bad = Some(FileError::BadEscape { at });
                match bytes.get(at + 1) {
                    Some(b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't') => at += 1,
                    Some(b'u') => {
                        let Some(unit) = hex4(at + 2) else {
                            return bad;
                        };
                        at += 5;
                        if (0xDC00..0xE000).contains(&unit) {
                            return bad;
                        }
                        // A high surrogate needs a low one right after it.
                        if (0xD800..0xDC00).contains(&unit) {
                            let low = (bytes.get(at + 1..at + 3) == Some(b"\\u"))
                                .then(|| hex4(at + 3))
                                .flatten();
                            if !low.is_some_and(|low| (0xDC00..0xE000).contains(&low)) {
                                return bad;
                            }
                            at += 6;
                        }
                    }
                    _ => return bad,
                }
            }
            _ => {}
        }
        at += 1;
    }
    None
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

/// Rewrites the `crc32` metadata of a charmlp safetensors file in place to match its alphabet
/// and tensors; returns whether there was one to rewrite. For fuzzers and tests that craft
/// files which must get past the checksum to reach the checks behind it.
pub fn reseal(file: &mut [u8]) -> bool {
    let Some((at, computed)) = crc_site(file) else {
        return false;
    };
    let mut hex = heapless::String::<8>::new();
    // Eight hex digits fill the eight bytes exactly; the write cannot fail.
    let _ = fmt::Write::write_fmt(&mut hex, format_args!("{computed:08x}"));
    file[at..at + 8].copy_from_slice(hex.as_bytes());
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

/// Whether `bytes` start as a safetensors file: a header length no longer than the rest, then
/// JSON whitespace and `{` (a header beyond [`HEADER_MAX`] looks like one, so that the reader's
/// error can say why it is refused).
pub fn looks_like_safetensors(bytes: &[u8]) -> bool {
    let Some((len, rest)) = bytes.split_first_chunk::<LEN_PREFIX>() else {
        return false;
    };
    let first = rest
        .iter()
        .find(|b| !matches!(b, b' ' | b'\t' | b'\n' | b'\r'));
    u64::from_le_bytes(*len) <= rest.len() as u64 && first == Some(&b'{')
}

/// Whether `bytes` start as a legacy `.cmlp` file rather than a safetensors one (whose first
/// eight bytes are a header length far below `CMLP` read as a number).
pub fn is_cmlp(bytes: &[u8]) -> bool {
    bytes.starts_with(&crate::bytes::MAGIC)
}
