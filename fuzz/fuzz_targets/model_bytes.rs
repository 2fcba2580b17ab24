//! The model-bytes loader on any bytes, twice: as they are (headers, lengths, checksums), and
//! made into a file of the default shape with a valid header and checksum, so that the checks
//! behind the checksum (finite values, variances, activation bounds) are reached too. No panic;
//! a failed load leaves the model untouched; what loads writes back the same bytes, and its
//! loss is finite and its names stay in a–z.
#![no_main]

use charmlp_core::bytes::{HEADER_LEN, peek_shape, reseal};
use charmlp_core::{DefaultModel, Model};
use libfuzzer_sys::fuzz_target;

fn check<const E: usize, const T: usize, const H: usize>(data: &[u8]) -> Option<Box<Model<E, T, H>>> {
    let mut model = Box::new(Model::<E, T, H>::zeroed());
    let untouched = model.clone();
    match model.read_bytes(data) {
        Ok(()) => {
            let mut out = vec![0; Model::<E, T, H>::BYTES];
            assert_eq!(model.write_bytes(&mut out), Ok(out.len()));
            assert_eq!(out, data, "a loaded model must write back the same bytes");
            Some(model)
        }
        Err(_) => {
            assert!(model == untouched, "a failed load changed the model");
            None
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let _ = peek_shape(data);
    if let Some(m) = check::<10, 3, 64>(data) {
        charmlp_fuzz::behaves(&m, data);
    }
    check::<10, 3, 200>(data);

    // Crafted: the input's bytes as the body of a default-shape file, header and checksum valid.
    let mut file = vec![0u8; DefaultModel::BYTES];
    DefaultModel::zeroed().write_bytes(&mut file).unwrap();
    let body = &mut file[HEADER_LEN..DefaultModel::BYTES - 4];
    let from = data.get(HEADER_LEN..).unwrap_or_default();
    let n = from.len().min(body.len());
    body[..n].copy_from_slice(&from[..n]);
    reseal(&mut file);
    if let Some(m) = check::<10, 3, 64>(&file) {
        charmlp_fuzz::behaves(&m, data);
    }
});
