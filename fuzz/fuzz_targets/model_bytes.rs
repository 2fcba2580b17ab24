//! The model-bytes loader on any bytes: no panic, and whatever loads writes back the same bytes.
#![no_main]

use charmlp_core::Model;
use charmlp_core::bytes::peek_shape;
use libfuzzer_sys::fuzz_target;

fn check<const E: usize, const T: usize, const H: usize>(data: &[u8]) {
    let mut model = Box::new(Model::<E, T, H>::zeroed());
    let untouched = model.clone();
    match model.read_bytes(data) {
        Ok(()) => {
            let mut out = vec![0; Model::<E, T, H>::BYTES];
            assert_eq!(model.write_bytes(&mut out), Ok(out.len()));
            assert_eq!(out, data, "a loaded model must write back the same bytes");
        }
        Err(_) => assert!(model == untouched, "a failed load changed the model"),
    }
}

fuzz_target!(|data: &[u8]| {
    let _ = peek_shape(data);
    check::<10, 3, 64>(data);
    check::<10, 3, 200>(data);
});
