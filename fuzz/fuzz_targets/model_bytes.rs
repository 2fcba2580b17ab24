//! The model-bytes loader on any bytes, three times: as they are (headers, lengths, checksums,
//! both format versions), and made into a file with a valid header and checksum, so that the
//! checks behind the checksum (alphabet, finite values, variances, activation bounds) are
//! reached too: once of makemore's 27 symbols, once of 2 to 128 symbols into the largest
//! capacity, with the rest absent. No panic; a failed load leaves the model and alphabet
//! untouched; what loads writes back the same bytes (a version-1 file, its version-2 form,
//! which loads to the same model), its loss is finite and its names stay in its alphabet.
#![no_main]

use charmlp_core::bytes::{HEADER_LEN, Shape, VERSION, peek_header, reseal};
use charmlp_core::{Alphabet, Model};
use libfuzzer_sys::fuzz_target;

type Loaded<const V: usize, const H: usize> = (Box<Model<V, 10, 3, H>>, Alphabet<V>);

fn check<const V: usize, const H: usize>(data: &[u8]) -> Option<Loaded<V, H>> {
    let mut model = Box::new(Model::<V, 10, 3, H>::zeroed());
    let mut alphabet = Alphabet::<V>::new(&['x']).unwrap();
    let untouched = (model.clone(), alphabet);
    match model.read_bytes(&mut alphabet, data) {
        Ok(()) => {
            let mut out = vec![0; Model::<V, 10, 3, H>::bytes_len(&alphabet)];
            assert_eq!(model.write_bytes(&alphabet, &mut out), Ok(out.len()));
            if peek_header(data).map(|(v, _)| v) == Ok(VERSION) {
                assert_eq!(out, data, "a loaded model must write back the same bytes");
            } else {
                let mut again = Box::new(Model::<V, 10, 3, H>::zeroed());
                let mut a = Alphabet::<V>::new(&[]).unwrap();
                again
                    .read_bytes(&mut a, &out)
                    .expect("the written form loads");
                assert!(again == model && a == alphabet, "the written form differs");
            }
            Some((model, alphabet))
        }
        Err(_) => {
            assert!(
                model == untouched.0 && alphabet == untouched.1,
                "a failed load changed the model"
            );
            None
        }
    }
}

/// A file of `symbols` symbols whose every byte past the header is the input's (the alphabet
/// section too), with a valid header and checksum.
fn crafted(data: &[u8], symbols: u16) -> Vec<u8> {
    let shape = Shape {
        vocab: symbols,
        embed: 10,
        context: 3,
        hidden: 64,
    };
    let len = shape.file_len().unwrap();
    let mut file = vec![0u8; len];
    file[..4].copy_from_slice(b"CMLP");
    file[4..6].copy_from_slice(&VERSION.to_le_bytes());
    for (i, d) in [shape.vocab, shape.embed, shape.context, shape.hidden]
        .into_iter()
        .enumerate()
    {
        file[6 + 2 * i..8 + 2 * i].copy_from_slice(&d.to_le_bytes());
    }
    let body = &mut file[HEADER_LEN..len - 4];
    let from = data.get(HEADER_LEN..).unwrap_or_default();
    let n = from.len().min(body.len());
    body[..n].copy_from_slice(&from[..n]);
    reseal(&mut file);
    file
}

fuzz_target!(|data: &[u8]| {
    let _ = peek_header(data);
    if let Some((m, a)) = check::<27, 64>(data) {
        charmlp_fuzz::behaves(&m, &a, data);
    }
    check::<27, 200>(data);
    check::<128, 64>(data);

    if let Some((m, a)) = check::<27, 64>(&crafted(data, 27)) {
        charmlp_fuzz::behaves(&m, &a, data);
    }
    let symbols = 2 + u16::from(data.first().copied().unwrap_or(0)) % 127;
    if let Some((m, a)) = check::<128, 64>(&crafted(data, symbols)) {
        assert_eq!(m.params.symbols(), usize::from(symbols));
        charmlp_fuzz::behaves(&m, &a, data);
    }
});
