//! The model file: exact round trips, and every kind of corruption rejected with its own error.

use charmlp_core::bytes::{BufferTooSmall, HEADER_LEN, LoadError, Shape, peek_shape, reseal};
use charmlp_core::{Alphabet, AlphabetError, DefaultModel, Model, WideModel};
use charmlp_workspace::{bits, bytes_of, bytes_with, load, rng, test_alphabet};

/// Bytes of a whole default model file: header, 26 characters, floats, checksum.
const BYTES: usize = DefaultModel::MAX_BYTES;

fn trained_looking_model(seed: u64) -> Box<DefaultModel> {
    let mut m = Box::new(DefaultModel::zeroed());
    m.init(&mut rng(seed));
    // Statistics other than the initial 0/1, so that a swapped or dropped field would show.
    for j in 0..m.bn.mean.len() {
        m.bn.mean[j] = j as f32 * 0.25 - 3.0;
        m.bn.var[j] = 0.5 + j as f32;
    }
    m
}

#[test]
fn file_length_is_header_floats_and_checksum() {
    assert_eq!(DefaultModel::MAX_BYTES, 16 + 4 * 26 + 4 * (4_137 + 128) + 4);
    assert_eq!(WideModel::MAX_BYTES, 16 + 4 * 26 + 4 * (12_297 + 400) + 4);
}

#[test]
fn round_trip_is_bit_exact() {
    for seed in 0..3 {
        let m = trained_looking_model(seed);
        let bytes = bytes_of(&m);
        assert_eq!(&bytes[..4], b"CMLP");
        let mut back = Box::new(DefaultModel::zeroed());
        load(&mut back, &bytes).unwrap();
        assert!(bits(&m) == bits(&back));
        assert_eq!(bytes_of(&back), bytes);
    }
    let mut wide = Box::new(WideModel::zeroed());
    wide.init(&mut rng(9));
    let bytes = bytes_of(&wide);
    let mut back = Box::new(WideModel::zeroed());
    load(&mut back, &bytes).unwrap();
    assert!(bits(&wide) == bits(&back));
}

#[test]
fn the_alphabet_round_trips_and_absent_symbols_come_back_absent() {
    // 41 symbols (a–z and 14 accented letters) in a capacity-64 model.
    let alphabet = test_alphabet::<64>(41);
    let mut m = Box::new(Model::<64, 10, 3, 64>::zeroed());
    m.init_with_symbols(&mut rng(3), 41);
    let bytes = bytes_with(&m, &alphabet);
    assert_eq!(
        bytes.len(),
        16 + 4 * 40 + 4 * (41 * 10 + 30 * 64 + 3 * 64 + 64 * 41 + 41 + 128) + 4
    );
    assert_eq!(peek_shape(&bytes).map(|s| s.vocab), Ok(41));
    let mut back = Box::new(Model::<64, 10, 3, 64>::zeroed());
    let mut got = Alphabet::<64>::new(&['x']).unwrap();
    back.read_bytes(&mut got, &bytes).unwrap();
    assert_eq!(got, alphabet);
    assert_eq!(back.params.symbols(), 41);
    assert!(bits(&m) == bits(&back));
    // The same file in a capacity of 128, and in 41 exactly.
    let mut wider = Box::new(Model::<128, 10, 3, 64>::zeroed());
    let mut a128 = Alphabet::<128>::new(&[]).unwrap();
    wider.read_bytes(&mut a128, &bytes).unwrap();
    assert_eq!(a128.chars(), alphabet.chars());
    assert_eq!(wider.params.symbols(), 41);
    assert_eq!(bytes_with(&wider, &a128), bytes);
    let mut exact = Box::new(Model::<41, 10, 3, 64>::zeroed());
    let mut a41 = Alphabet::<41>::new(&[]).unwrap();
    exact.read_bytes(&mut a41, &bytes).unwrap();
    assert_eq!(bytes_with(&exact, &a41), bytes);
    // Not in a capacity of 27: the error names the count.
    let err = load(&mut DefaultModel::zeroed(), &bytes);
    assert_eq!(
        err,
        Err(LoadError::Symbols {
            found: 41,
            capacity: 27
        })
    );
    assert_eq!(
        err.unwrap_err().to_string(),
        "model has 41 symbols; this model type holds 2 to 27"
    );
}

#[test]
fn a_version_1_file_loads_with_makemores_alphabet() {
    let m = trained_looking_model(8);
    let v2 = bytes_of(&m);
    let mut v1 = v2[..HEADER_LEN].to_vec();
    v1[4] = 1;
    v1.extend_from_slice(&v2[HEADER_LEN + 4 * 26..]);
    reseal(&mut v1);
    let mut back = Box::new(DefaultModel::zeroed());
    let mut alphabet = Alphabet::<27>::new(&['q']).unwrap();
    back.read_bytes(&mut alphabet, &v1).unwrap();
    assert_eq!(alphabet, Alphabet::MAKEMORE);
    assert!(bits(&m) == bits(&back));
    // A version-1 file has makemore's 27 symbols and no other count.
    let mut bad = v1.clone();
    bad[6] = 26;
    reseal(&mut bad);
    let err = load(&mut back, &bad);
    assert_eq!(err, Err(LoadError::Version1Symbols { found: 26 }));
    assert!(
        err.unwrap_err()
            .to_string()
            .contains("version 1 models have makemore's 27")
    );
    // And a version-2 file of fewer than two symbols says what a model has.
    let mut one = bytes_of(&m);
    one[6] = 1;
    reseal(&mut one);
    let err = load(&mut back, &one).unwrap_err();
    assert_eq!(
        err,
        LoadError::Symbols {
            found: 1,
            capacity: 27
        }
    );
    assert!(
        err.to_string()
            .contains("at least 2 (the boundary and a character)"),
        "{err}"
    );
}

#[test]
fn a_crafted_alphabet_with_a_valid_checksum_is_rejected() {
    let m = trained_looking_model(9);
    let bytes = bytes_of(&m);
    let put = |at: usize, scalar: u32| {
        let mut b = bytes.clone();
        b[HEADER_LEN + 4 * at..HEADER_LEN + 4 * at + 4].copy_from_slice(&scalar.to_le_bytes());
        reseal(&mut b);
        b
    };
    let mut back = Box::new(DefaultModel::zeroed());
    assert_eq!(
        load(&mut back, &put(3, 0xD800)),
        Err(LoadError::BadAlphabet {
            index: 3,
            error: None
        })
    );
    assert_eq!(
        load(&mut back, &put(0, 'z' as u32)),
        Err(LoadError::BadAlphabet {
            index: 0,
            error: Some(AlphabetError::NotIncreasing {
                previous: 'z',
                found: 'b'
            })
        })
    );
    assert_eq!(
        load(&mut back, &put(0, '\n' as u32)),
        Err(LoadError::BadAlphabet {
            index: 0,
            error: Some(AlphabetError::Control('\n'))
        })
    );
}

#[test]
fn writing_into_a_short_buffer_is_an_error() {
    let m = trained_looking_model(0);
    let mut out = vec![0u8; BYTES - 1];
    assert_eq!(
        m.write_bytes(&Alphabet::MAKEMORE, &mut out),
        Err(BufferTooSmall {
            needed: BYTES,
            got: BYTES - 1
        })
    );
    assert!(
        out.iter().all(|&b| b == 0),
        "a failed write must not touch the buffer"
    );
    // A longer buffer is fine: the model goes at its start.
    let mut out = vec![0u8; BYTES + 10];
    assert_eq!(m.write_bytes(&Alphabet::MAKEMORE, &mut out), Ok(BYTES));
}

#[test]
fn every_truncation_is_rejected_as_truncated() {
    let bytes = bytes_of(&trained_looking_model(1));
    let mut m = trained_looking_model(2);
    let before = bits(&m);
    for len in 0..bytes.len() {
        let needed = if len < HEADER_LEN { HEADER_LEN } else { BYTES };
        assert_eq!(
            load(&mut m, &bytes[..len]),
            Err(LoadError::Truncated { needed, got: len }),
            "length {len}"
        );
    }
    assert!(bits(&m) == before, "a failed load changed the model");
}

#[test]
fn trailing_bytes_are_rejected() {
    let mut bytes = bytes_of(&trained_looking_model(1));
    bytes.push(0);
    assert_eq!(
        load(&mut DefaultModel::zeroed(), &bytes),
        Err(LoadError::TrailingBytes {
            expected: BYTES,
            got: BYTES + 1
        })
    );
}

#[test]
fn every_flipped_byte_is_rejected_by_the_field_it_hits() {
    let bytes = bytes_of(&trained_looking_model(3));
    let mut m = trained_looking_model(4);
    let before = bits(&m);
    let mut corrupt = bytes.clone();
    for at in 0..bytes.len() {
        for flip in [0x01u8, 0x80, 0xff] {
            corrupt[at] ^= flip;
            let err = load(&mut m, &corrupt).unwrap_err();
            let ok = match at {
                0..4 => err == LoadError::BadMagic,
                4..6 => matches!(err, LoadError::UnsupportedVersion { supported: 2, .. }),
                // 27 ^ 1 = 26 symbols is a shorter file; other counts do not fit.
                6..8 => matches!(
                    err,
                    LoadError::Symbols { .. } | LoadError::TrailingBytes { .. }
                ),
                8..14 => matches!(err, LoadError::ShapeMismatch { .. }),
                14..16 => err == LoadError::BadHeader,
                _ => matches!(err, LoadError::ChecksumMismatch { .. }),
            };
            assert!(ok, "byte {at} ^ {flip:#04x}: {err:?}");
            corrupt[at] = bytes[at];
        }
    }
    assert!(bits(&m) == before, "a failed load changed the model");
}

#[test]
fn other_shapes_are_named_in_the_error() {
    let mut wide = Box::new(WideModel::zeroed());
    wide.init(&mut rng(5));
    let bytes = bytes_of(&wide);
    let expected = Shape {
        vocab: 27,
        embed: 10,
        context: 3,
        hidden: 64,
    };
    let found = Shape {
        hidden: 200,
        ..expected
    };
    assert_eq!(peek_shape(&bytes), Ok(found));
    assert_eq!(DefaultModel::shape(27), expected);
    let err = load(&mut DefaultModel::zeroed(), &bytes).unwrap_err();
    assert_eq!(err, LoadError::ShapeMismatch { expected, found });
    assert_eq!(
        err.to_string(),
        "model has 27 symbols, embedding 10, context 3, hidden 200; \
         expected embedding 10, context 3, hidden 64"
    );
}

#[test]
fn foreign_files_are_not_models() {
    for junk in [
        &b"hello, world, this is not a model"[..],
        b"PK\x03\x04",
        b"\x7fELF",
        b"CMLQ",
    ] {
        assert_eq!(
            load(&mut DefaultModel::zeroed(), junk),
            Err(LoadError::BadMagic),
            "{junk:?}"
        );
    }
    // A prefix of the magic is a truncated file, not a foreign one.
    assert!(matches!(
        peek_shape(b"CML"),
        Err(LoadError::Truncated { .. })
    ));
}

#[test]
fn negative_variances_and_overflowing_weights_with_a_valid_checksum_are_rejected() {
    let mut m = trained_looking_model(6);
    m.bn.var[5] = -0.5;
    assert_eq!(
        load(&mut DefaultModel::zeroed(), &bytes_of(&m)),
        Err(LoadError::NegativeVariance {
            index: 5,
            value: -0.5
        })
    );
    // −0 is a variance of zero.
    m.bn.var[5] = -0.0;
    assert_eq!(load(&mut DefaultModel::zeroed(), &bytes_of(&m)), Ok(()));

    let mut m = trained_looking_model(6);
    m.params.w2t[4][3] = 3e38;
    let err = load(&mut DefaultModel::zeroed(), &bytes_of(&m)).unwrap_err();
    assert!(
        matches!(err, LoadError::Overflow(o) if o.layer == "the output layer" && o.unit == 4),
        "{err:?}"
    );
    assert!(err.to_string().contains("overflow"), "{err}");
}

#[test]
fn a_shape_too_large_for_the_target_has_no_file_length() {
    let max = Shape {
        vocab: u16::MAX,
        embed: u16::MAX,
        context: u16::MAX,
        hidden: u16::MAX,
    };
    // 16 + 4·(v − 1) + 4·(v·e + t·e·h + 3h + h·v + v + 2h) + 4 in exact arithmetic: 2⁵⁰ and
    // more, beyond any 32-bit usize, where the unchecked sum used to wrap.
    let m = 65_535u128;
    let exact = 16 + 4 * (m - 1) + 4 * (m * m + m * m * m + 3 * m + m * m + m + 2 * m) + 4;
    assert_eq!(max.file_len(), usize::try_from(exact).ok());
    assert_eq!(
        max.file_len().is_none(),
        usize::BITS < 64,
        "on this {}-bit target",
        usize::BITS
    );
}

#[test]
fn non_finite_values_with_a_valid_checksum_are_rejected() {
    for (value, tensor, at) in [(f32::NAN, "W2T", 4 * 64 + 3), (f32::INFINITY, "bn var", 7)] {
        let mut m = trained_looking_model(6);
        if tensor == "W2T" {
            m.params.w2t[4][3] = value;
        } else {
            m.bn.var[7] = value;
        }
        let bytes = bytes_of(&m);
        assert_eq!(
            load(&mut DefaultModel::zeroed(), &bytes),
            Err(LoadError::NonFinite { tensor, index: at })
        );
    }
}

#[test]
fn errors_read_as_sentences() {
    let e = LoadError::Truncated {
        needed: 17_080,
        got: 100,
    };
    assert_eq!(
        e.to_string(),
        "truncated model: 100 bytes, a whole one has 17080"
    );
    let e = LoadError::UnsupportedVersion {
        found: 7,
        supported: 2,
    };
    assert_eq!(
        e.to_string(),
        "model format version 7; this build reads versions 1 to 2"
    );
    assert!(
        LoadError::ChecksumMismatch {
            stored: 1,
            computed: 2
        }
        .to_string()
        .contains("corrupt")
    );
}
