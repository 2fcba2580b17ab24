//! The model file as safetensors: what the `safetensors` crate (the format's reference reader
//! and writer) makes of ours and ours of its, and every kind of bad file refused with its error.

use charmlp_core::safetensors::{FileError, Quoted, parse, reseal};
use charmlp_core::{Alphabet, LoadError, Model};
use charmlp_workspace::{bits, rng};
use safetensors::tensor::{Dtype, SafeTensors, TensorView};
use std::collections::HashMap;

type M = Model<32, 4, 2, 8>;

fn model(symbols: usize, seed: u64) -> Box<M> {
    let mut m = Box::new(M::zeroed());
    m.init_with_symbols(&mut rng(seed), symbols);
    for j in 0..8 {
        m.bn.mean[j] = j as f32 * 0.25 - 1.0;
        m.bn.var[j] = 0.5 + j as f32;
    }
    m
}

fn odd_alphabet() -> Alphabet<32> {
    Alphabet::new(&['"', '/', '\\', 'a', 'é', '€', '😀']).unwrap()
}

fn write(m: &M, alphabet: &Alphabet<32>) -> Vec<u8> {
    let mut out = vec![0; 16_384];
    let n = m
        .write_safetensors(alphabet, &[("seed", "7")], &mut out)
        .unwrap();
    out.truncate(n);
    out
}

fn read(bytes: &[u8], given: Option<&[char]>) -> Result<(Box<M>, Alphabet<32>), LoadError> {
    let mut m = Box::new(M::zeroed());
    let mut a = Alphabet::new(&[]).unwrap();
    m.read_safetensors(&mut a, bytes, given).map(|()| (m, a))
}

/// The notebook's tensors of `m` with `v` symbols: name, shape, f32 values.
fn notebook_tensors(m: &M, v: usize) -> Vec<(&'static str, Vec<usize>, Vec<f32>)> {
    let p = &m.params;
    let w2: Vec<f32> = (0..8)
        .flat_map(|j| (0..v).map(move |k| p.w2t[k][j]))
        .collect();
    vec![
        ("C", vec![v, 4], p.c[..v].as_flattened().to_vec()),
        (
            "W1",
            vec![8, 8],
            p.w1.as_flattened().as_flattened().to_vec(),
        ),
        ("b1", vec![8], p.b1.to_vec()),
        ("W2", vec![8, v], w2),
        ("b2", vec![v], p.b2[..v].to_vec()),
        ("bngain", vec![1, 8], p.gain.to_vec()),
        ("bnbias", vec![1, 8], p.bias.to_vec()),
        ("bnmean", vec![1, 8], m.bn.mean.to_vec()),
        ("bnvar", vec![1, 8], m.bn.var.to_vec()),
    ]
}

/// The tensors serialized by the `safetensors` crate, with `metadata`.
fn crate_file(
    tensors: &[(&'static str, Vec<usize>, Vec<f32>)],
    metadata: Option<HashMap<String, String>>,
) -> Vec<u8> {
    let bytes: Vec<Vec<u8>> = tensors
        .iter()
        .map(|(_, _, xs)| xs.iter().flat_map(|x| x.to_le_bytes()).collect())
        .collect();
    let views: Vec<(&str, TensorView)> = tensors
        .iter()
        .zip(&bytes)
        .map(|((name, shape, _), b)| {
            (
                *name,
                TensorView::new(Dtype::F32, shape.clone(), b).unwrap(),
            )
        })
        .collect();
    safetensors::serialize(views, metadata).unwrap()
}

#[test]
fn the_safetensors_crate_reads_our_file_as_the_notebook_names_it() {
    let alphabet = odd_alphabet();
    let m = model(alphabet.len(), 1);
    let file = write(&m, &alphabet);
    let st = SafeTensors::deserialize(&file).unwrap();
    for (name, shape, values) in notebook_tensors(&m, alphabet.len()) {
        let t = st.tensor(name).unwrap();
        assert_eq!(t.dtype(), Dtype::F32, "{name}");
        assert_eq!(t.shape(), &shape[..], "{name}");
        let got: Vec<f32> = t
            .data()
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
            .collect();
        assert_eq!(got, values, "{name}");
    }
    assert_eq!(st.len(), 9);
    let (_, meta) = SafeTensors::read_metadata(&file).unwrap();
    let meta = meta.metadata().clone().unwrap();
    let chars: String = alphabet.chars().iter().collect();
    assert_eq!(meta["alphabet"], chars);
    assert_eq!(meta["format"], "charmlp");
    assert_eq!(
        (
            &meta["embed"][..],
            &meta["context"][..],
            &meta["hidden"][..]
        ),
        ("4", "2", "8")
    );
    assert_eq!(meta["seed"], "7");
    // The crate writes the same tensors and metadata to the same layout: only the order of
    // the metadata's keys (a hash map's) may differ, so the data sections are equal.
    let theirs = crate_file(&notebook_tensors(&m, alphabet.len()), Some(meta));
    let data = |f: &[u8]| f[8 + u64::from_le_bytes(f[..8].try_into().unwrap()) as usize..].to_vec();
    assert_eq!(data(&theirs), data(&file));
    // And ours reads theirs back to the same model, checksum included.
    let (back, a) = read(&theirs, None).unwrap();
    assert_eq!(bits(&back), bits(&m));
    assert_eq!(a, alphabet);
    let (back, _) = read(&file, None).unwrap();
    assert_eq!(bits(&back), bits(&m));
}

#[test]
fn a_file_saved_without_our_metadata_takes_makemores_or_the_given_alphabet() {
    let m = model(27, 2);
    let mut tensors = notebook_tensors(&m, 27);
    // PyTorch code may keep b1 as [1, H] and the statistics as [H]: both are read.
    tensors[2].1 = vec![1, 8];
    tensors[7].1 = vec![8];
    let file = crate_file(&tensors, None);
    let (back, a) = read(&file, None).unwrap();
    assert_eq!(bits(&back), bits(&m));
    assert_eq!(a.chars(), Alphabet::MAKEMORE.chars());

    let m = model(6, 3);
    let file = crate_file(&notebook_tensors(&m, 6), None);
    assert_eq!(
        read(&file, None).unwrap_err(),
        LoadError::File(FileError::NoAlphabet { symbols: 6 })
    );
    let (back, a) = read(&file, Some(&['a', 'b', 'c', 'd', 'e'])).unwrap();
    assert_eq!(bits(&back), bits(&m));
    assert_eq!(a.chars(), ['a', 'b', 'c', 'd', 'e']);
    assert_eq!(
        read(&file, Some(&['a', 'b'])).unwrap_err(),
        LoadError::File(FileError::AlphabetLength {
            symbols: 6,
            chars: 2
        })
    );
    // A file of our format with its alphabet ignores the given one.
    let alphabet = odd_alphabet();
    let ours = write(&model(alphabet.len(), 4), &alphabet);
    assert_eq!(read(&ours, Some(&['x'])).unwrap().1, alphabet);
}

/// A file of `header` JSON and `data` bytes.
fn raw(header: &str, data: &[u8]) -> Vec<u8> {
    let mut f = (header.len() as u64).to_le_bytes().to_vec();
    f.extend(header.as_bytes());
    f.extend(data);
    f
}

#[test]
fn every_malformed_container_is_a_typed_error() {
    let t = |name: &str, shape: &str, from: usize, to: usize| {
        format!(r#""{name}":{{"dtype":"F32","shape":{shape},"data_offsets":[{from},{to}]}}"#)
    };
    let c = t("C", "[2,1]", 0, 8);
    let deep = format!(
        r#"{{"C":{{"dtype":"F32","shape":{}1{},"data_offsets":[0,4]}}}}"#,
        "[".repeat(32_000),
        "]".repeat(32_000)
    );
    let cases: Vec<(Vec<u8>, FileError)> = vec![
        (vec![1, 2, 3], FileError::NoHeaderLength { got: 3 }),
        (
            u64::MAX.to_le_bytes().to_vec(),
            FileError::HeaderLength {
                len: u64::MAX,
                file: 8,
            },
        ),
        (
            raw(&" ".repeat(70_000), &[]),
            FileError::HeaderLength {
                len: 70_000,
                file: 70_008,
            },
        ),
        (
            [&2u64.to_le_bytes()[..], b"{\xff"].concat(),
            FileError::HeaderNotUtf8,
        ),
        (
            raw(&format!("{{{c},\"W9\":{{}}}}"), &[0; 8]),
            FileError::UnknownTensor(quoted("W9")),
        ),
        (
            raw(&format!("{{{c},{c}}}"), &[0; 8]),
            FileError::Duplicate("C"),
        ),
        (
            raw(&format!("{{{}}}", t("C", "[2,1]", 0, 4)), &[0; 4]),
            FileError::Offsets { tensor: "C" },
        ),
        (
            raw(&format!("{{{}}}", t("C", "[1,1,1]", 0, 4)), &[0; 4]),
            FileError::Rank {
                tensor: "C",
                rank: 3,
            },
        ),
        (
            raw(&format!("{{{c}}}"), &[0; 12]),
            FileError::DataLength {
                tensors: 8,
                data: 12,
            },
        ),
        (
            raw(
                r#"{"C":{"dtype":"F16","shape":[2],"data_offsets":[0,4]}}"#,
                &[0; 4],
            ),
            FileError::Dtype {
                tensor: "C",
                found: quoted("F16"),
            },
        ),
        (
            raw(&format!("{{{c}}}"), &[0; 8]),
            FileError::MissingTensor("W1"),
        ),
        (
            raw(
                &format!(
                    "{{{},{}}}",
                    t("C", "[2,2]", 0, 16),
                    t("W1", "[3,8]", 16, 112)
                ),
                &[0; 112],
            ),
            FileError::Layout {
                c: [2, 2],
                w1: [3, 8],
            },
        ),
    ];
    for (i, (file, want)) in cases.into_iter().enumerate() {
        let got = parse(&file).and_then(|h| h.shape().map(|_| ()));
        assert_eq!(got, Err(want), "case {i}");
    }
    // Not JSON of the form, however deep: serde-json-core's reason, without recursing.
    for bad in [
        deep.as_str(),
        "[]",
        "{\"C\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4],\"x\":[[[]]]}}",
        "{\"__metadata__\":{\"k\":1}}",
        "{} x",
    ] {
        assert!(
            matches!(parse(&raw(bad, &[0; 4])), Err(FileError::Json(_))),
            "{}",
            &bad[..bad.len().min(40)]
        );
    }
}

fn quoted(s: &str) -> Quoted {
    Quoted::new(s)
}

/// Offset in `file` of the bytes of element `index` of tensor `name`.
fn element_at(file: &[u8], name: &str, index: usize) -> usize {
    let st = SafeTensors::deserialize(file).unwrap();
    let t = st.tensor(name).unwrap();
    t.data().as_ptr() as usize - file.as_ptr() as usize + 4 * index
}

#[test]
fn files_crafted_to_pass_the_checksum_are_still_checked() {
    let alphabet = odd_alphabet();
    let good = write(&model(alphabet.len(), 5), &alphabet);
    let set = |name: &str, index: usize, x: f32| {
        let mut f = good.clone();
        let at = element_at(&f, name, index);
        f[at..at + 4].copy_from_slice(&x.to_le_bytes());
        f
    };
    let mut unsealed = set("W1", 3, 0.5);
    assert!(matches!(
        read(&unsealed, None),
        Err(LoadError::ChecksumMismatch { .. })
    ));
    assert!(reseal(&mut unsealed));
    assert!(read(&unsealed, None).is_ok());
    for (name, index, x, want) in [
        ("W2", 5, f32::NAN, "NonFinite"),
        ("bnvar", 2, -1.0, "NegativeVariance"),
        ("W1", 0, 3e38, "Overflow"),
    ] {
        let mut f = set(name, index, x);
        assert!(reseal(&mut f));
        let err = read(&f, None).unwrap_err();
        assert!(format!("{err:?}").starts_with(want), "{name}: {err:?}");
    }
    // The checksum covers the alphabet: a changed character is caught.
    let mut f = good.clone();
    let at = f
        .windows(2)
        .position(|w| w == "€".as_bytes()[..2].as_ref())
        .unwrap();
    f[at + 2] ^= 1;
    assert!(read(&f, None).is_err());
}

#[test]
fn every_truncation_is_refused_and_every_byte_flip_refused_or_harmless() {
    let alphabet = odd_alphabet();
    let m = model(alphabet.len(), 6);
    let good = write(&m, &alphabet);
    for len in 0..good.len() {
        assert!(read(&good[..len], None).is_err(), "prefix {len}");
    }
    for at in 0..good.len() {
        for bit in [0, 3, 7] {
            let mut f = good.clone();
            f[at] ^= 1 << bit;
            if let Ok((back, a)) = read(&f, None) {
                // Only a change the format ignores, such as one space of padding to another
                // whitespace character, may pass.
                assert_eq!(bits(&back), bits(&m), "byte {at} bit {bit}");
                assert_eq!(a, alphabet, "byte {at} bit {bit}");
                assert!(
                    SafeTensors::deserialize(&f).is_ok(),
                    "byte {at} bit {bit}: we read what the reference reader refuses"
                );
            }
        }
    }
}

/// The model file with `from` replaced by `to` in its JSON header (offsets are relative to the
/// data, which stays as it is).
fn header_edit(file: &[u8], from: &str, to: &str) -> Vec<u8> {
    let header_len = u64::from_le_bytes(file[..8].try_into().unwrap()) as usize;
    let json = std::str::from_utf8(&file[8..8 + header_len]).unwrap();
    assert!(json.contains(from), "{from} not in {json}");
    raw(&json.replacen(from, to, 1), &file[8 + header_len..])
}

#[test]
fn metadata_is_read_as_written_or_refused() {
    let alphabet = odd_alphabet();
    let good = write(&model(alphabet.len(), 7), &alphabet);
    assert!(read(&header_edit(&good, "\"seed\"", "\"seed\""), None).is_ok());
    let err = |f: &[u8]| read(f, None).unwrap_err();
    // A key or a value read as plain text written with a JSON escape: Python would unescape
    // it, so reading it raw could make a charmlp file look foreign and skip its checksum.
    for (from, to) in [
        ("\"format\":", "\"\\u0066ormat\":"),
        ("\"C\":{", "\"\\u0043\":{"),
        ("\"format_version\":\"1\"", "\"format_version\":\"\\u0031\""),
    ] {
        let f = header_edit(&good, from, to);
        assert!(SafeTensors::deserialize(&f).is_ok(), "{to}");
        assert!(
            matches!(err(&f), LoadError::File(FileError::Escaped(_))),
            "{to}: {:?}",
            err(&f)
        );
    }
    // Metadata that disagrees with the tensors or with the format is refused, not ignored.
    for (from, to, key) in [
        ("\"embed\":\"4\"", "\"embed\":\"99\"", "embed"),
        ("\"hidden\":\"8\"", "\"hidden\":\"7\"", "hidden"),
        ("\"bn_eps\":\"1e-5\"", "\"bn_eps\":\"0.1\"", "bn_eps"),
        (
            "\"bn_variance\":\"unbiased\"",
            "\"bn_variance\":\"biased\"",
            "bn_variance",
        ),
    ] {
        match err(&header_edit(&good, from, to)) {
            LoadError::File(FileError::MetadataValue { key: k, .. }) => assert_eq!(k, key),
            other => panic!("{key}: {other:?}"),
        }
    }
    // Compared as numbers: Python's str(1e-5) is "1e-05".
    for (from, to) in [
        ("\"bn_eps\":\"1e-5\"", "\"bn_eps\":\"1e-05\""),
        ("\"bn_eps\":\"1e-5\"", "\"bn_eps\":\"0.00001\""),
        ("\"embed\":\"4\"", "\"embed\":\"04\""),
    ] {
        assert!(read(&header_edit(&good, from, to), None).is_ok(), "{to}");
    }
    // A charmlp file without its checksum is refused; a key given twice is named.
    let f = header_edit(&good, "\"crc32\":", "\"crc33\":");
    assert_eq!(
        err(&f),
        LoadError::File(FileError::MissingMetadata("crc32"))
    );
    let f = header_edit(&good, "\"seed\":\"7\"", "\"embed\":\"4\"");
    assert_eq!(err(&f), LoadError::File(FileError::Duplicate("embed")));
    // A changed format would turn off the checksum and the stored alphabet: a file with
    // charmlp's keys must say it is charmlp's.
    let f = header_edit(&good, "\"format\":\"charmlp\"", "\"format\":\"charmlq\"");
    assert!(matches!(
        err(&f),
        LoadError::File(FileError::NotCharmlp {
            key: "format_version",
            ..
        })
    ));
    let f = header_edit(&good, "\"format\":", "\"formau\":");
    assert!(matches!(
        err(&f),
        LoadError::File(FileError::NotCharmlp { format: None, .. })
    ));
    // Another program's metadata may hold escapes, even under a key charmlp reads in its own
    // files: a Windows path, a quote.
    let m27 = model(27, 9);
    let foreign = |pairs: &[(&str, &str)]| {
        let meta = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        crate_file(&notebook_tensors(&m27, 27), Some(meta))
    };
    for pairs in [
        &[
            ("format", "pt"),
            ("context", "trained on C:\\data\\names.txt"),
        ][..],
        &[("note \"x\"", "a\\b"), ("seed", "\"42\"")],
    ] {
        let (back, a) = read(&foreign(pairs), None).unwrap();
        assert_eq!(bits(&back), bits(&m27), "{pairs:?}");
        assert_eq!(a.chars(), Alphabet::MAKEMORE.chars());
    }
    // `"__metadata__": null` is no metadata, as the safetensors crate reads it.
    let m = model(27, 8);
    let plain = crate_file(&notebook_tensors(&m, 27), None);
    let with_null = header_edit(&plain, "{", "{\"__metadata__\":null,");
    assert!(SafeTensors::deserialize(&with_null).is_ok());
    assert_eq!(bits(&read(&with_null, None).unwrap().0), bits(&m));
}

#[test]
fn the_lookup_of_any_tensor_finds_checks_and_refuses() {
    use charmlp_core::safetensors::find_tensor;
    let x =
        |offsets: &str| format!(r#""x":{{"dtype":"I64","shape":[2],"data_offsets":{offsets}}}"#);
    let file = raw(
        &format!("{{{},\"__metadata__\":null}}", x("[0,16]")),
        &[7; 16],
    );
    let t = find_tensor(&file, "x").unwrap().unwrap();
    assert_eq!((t.dtype, t.numel, t.data), ("I64", 2, &[7u8; 16][..]));
    assert_eq!(find_tensor(&file, "y"), Ok(None));
    // Reversed, past the end, or not the shape's size: an error, never a panic.
    for offsets in ["[16,0]", "[0,24]", "[0,8]"] {
        let file = raw(&format!("{{{}}}", x(offsets)), &[0; 16]);
        assert_eq!(find_tensor(&file, "x"), Err(FileError::Bounds), "{offsets}");
    }
    let twice = raw(&format!("{{{},{}}}", x("[0,16]"), x("[0,16]")), &[0; 16]);
    assert_eq!(
        find_tensor(&twice, "x"),
        Err(FileError::DuplicateName(Quoted::new("x")))
    );
}

#[test]
fn a_control_character_or_a_bad_escape_in_a_header_string_is_refused_as_json_does() {
    let alphabet = odd_alphabet();
    let good = write(&model(alphabet.len(), 10), &alphabet);
    // Found by the safetensors fuzz target: NUL bytes inside a metadata value.
    for bad in ["\u{0}", "\t", "\n"] {
        let f = header_edit(&good, "\"seed\":\"7\"", &format!("\"seed\":\"7{bad}\""));
        assert!(SafeTensors::deserialize(&f).is_err(), "{bad:?}");
        assert!(
            matches!(
                read(&f, None),
                Err(LoadError::File(FileError::ControlInString { .. }))
            ),
            "{bad:?}"
        );
    }
    // So is an escape JSON does not have, even in a value charmlp never reads.
    let m = model(27, 12);
    let foreign = crate_file(&notebook_tensors(&m, 27), None);
    for (escape, json) in [
        ("\\x41", false),
        ("\\u12", false),
        ("\\ud800", false),
        ("\\udc00", false),
        ("\\ud800\\u0041", false),
        ("\\ud83d\\ude00", true),
        ("\\u00e9\\/\\b", true),
    ] {
        let f = header_edit(
            &foreign,
            "{",
            &format!("{{\"__metadata__\":{{\"n\":\"{escape}\"}},"),
        );
        assert_eq!(SafeTensors::deserialize(&f).is_ok(), json, "{escape}");
        match read(&f, None) {
            Ok(_) => assert!(json, "{escape}"),
            Err(e) => assert!(
                !json && matches!(e, LoadError::File(FileError::BadEscape { .. })),
                "{escape}: {e:?}"
            ),
        }
    }
    // As whitespace between values, and escaped inside a string, they are JSON.
    let f = header_edit(&good, ",\"seed\"", ",\n\t\"seed\"");
    assert!(read(&f, None).is_ok());
    let m = model(27, 11);
    let note = [("note".to_string(), "a\tb\n".to_string())]
        .into_iter()
        .collect();
    let f = crate_file(&notebook_tensors(&m, 27), Some(note));
    assert_eq!(bits(&read(&f, None).unwrap().0), bits(&m));
}
