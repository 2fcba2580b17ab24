//! A model as a safetensors file (see [`crate::safetensors`] for the schema): the writer, and
//! the reader that checks everything before it writes into the model.

use crate::alphabet::{Alphabet, MAX_SYMBOLS};
use crate::bytes::{BufferTooSmall, LoadError, Shape};
use crate::model::{BN_EPS, Model};
use crate::safetensors::{
    B1, B2, BIAS, C, FORMAT, FORMAT_VERSION, FileError, GAIN, HEADER_WRITE_MAX, LEN_PREFIX, MEAN,
    NAMES, Quoted, VAR, W1, W2, WRITE_ORDER, crc32, parse,
};
use core::fmt::{self, Write};
use serde::Serialize;
use serde::ser::{SerializeMap, Serializer};

/// A formatted dimension or checksum. Five digits hold any u16 dimension and eight hex digits
/// a u32: the write cannot fail.
fn short_text(args: fmt::Arguments) -> heapless::String<8> {
    let mut s = heapless::String::<8>::new();
    let _ = s.write_fmt(args);
    s
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
        let (e, t, h) = (
            short_text(format_args!("{E}")),
            short_text(format_args!("{T}")),
            short_text(format_args!("{H}")),
        );
        let crc_hex = short_text(format_args!("{crc:08x}"));
        let header = HeaderOut {
            meta: [
                ("format", FORMAT),
                ("format_version", FORMAT_VERSION),
                ("alphabet", alphabet_text),
                ("embed", &e),
                ("context", &t),
                ("hidden", &h),
                ("bn_eps", "1e-5"),
                ("bn_variance", "unbiased"),
                ("crc32", &crc_hex),
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

    /// charmlp's metadata agrees with the tensors' shape `found` and with the format: the
    /// dimensions, ε and the variance convention are what this reader computes with.
    fn check_metadata(
        meta: &crate::safetensors::Metadata<'_>,
        found: Shape,
    ) -> Result<(), FileError> {
        let (e, t, h) = (
            short_text(format_args!("{}", found.embed)),
            short_text(format_args!("{}", found.context)),
            short_text(format_args!("{}", found.hidden)),
        );
        // Compared as numbers, not text: Python's str(1e-5) is "1e-05".
        let dim = |d: u16| move |v: &str| v.parse::<u16>() == Ok(d);
        let (shapes, format) = ("the tensors' shapes say", "charmlp computes with");
        type Agrees<'f> = &'f dyn Fn(&str) -> bool;
        let checks: [(&str, Option<&str>, &str, &str, Agrees); 5] = [
            ("embed", meta.embed, &e, shapes, &dim(found.embed)),
            ("context", meta.context, &t, shapes, &dim(found.context)),
            ("hidden", meta.hidden, &h, shapes, &dim(found.hidden)),
            ("bn_eps", meta.bn_eps, "1e-5", format, &|v| {
                v.parse::<f32>() == Ok(BN_EPS)
            }),
            ("bn_variance", meta.bn_variance, "unbiased", format, &|v| {
                v == "unbiased"
            }),
        ];
        for (key, value, expected, source, agrees) in checks {
            match value {
                None => return Err(FileError::MissingMetadata(key)),
                Some(v) if !agrees(v) => {
                    return Err(FileError::MetadataValue {
                        key,
                        found: Quoted::new(v),
                        expected: Quoted::new(expected),
                        source,
                    });
                }
                Some(_) => {}
            }
        }
        Ok(())
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
            match meta.format_version {
                Some(FORMAT_VERSION) => {}
                Some(found) => return Err(FileError::FormatVersion(Quoted::new(found)).into()),
                None => return Err(FileError::MissingMetadata("format_version").into()),
            }
            Self::check_metadata(meta, found)?;
            let mut count = 0;
            for ch in file
                .alphabet_chars()
                .ok_or(FileError::MissingMetadata("alphabet"))?
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
            let stored = meta.crc32.ok_or(FileError::MissingMetadata("crc32"))?;
            let stored = hex_u32(stored).ok_or(FileError::MetadataValue {
                key: "crc32",
                found: Quoted::new(stored),
                expected: Quoted::new("00000000"),
                source: "it is 8 hex digits, zero-padded, like",
            })?;
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
