//! `sample` and `eval` on a model whose every value comes from the fuzzer (any bit pattern:
//! NaN, ∞, huge, tiny, subnormal, negative variances), passed through the safetensors model
//! file as `charmlp sample --model` loads it: either the loader refuses it, or its loss is
//! finite and its names stay inside the vocabulary and the bound, at any temperature.
#![no_main]

use charmlp_core::{Alphabet, DefaultModel};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if data.len() < 6 {
        return;
    }
    let mut model = Box::new(DefaultModel::zeroed());
    let mut bytes = data[3..].iter().cycle();
    let mut next = || f32::from_le_bytes([0; 4].map(|_| *bytes.next().unwrap_or(&0)));
    for tensor in model.params.tensors_mut() {
        tensor.iter_mut().for_each(|x| *x = next());
    }
    model.bn.mean.iter_mut().for_each(|x| *x = next());
    model.bn.var.iter_mut().for_each(|x| *x = next());
    let alphabet = Alphabet::MAKEMORE;
    let mut file = vec![0u8; 8 + 8192 + DefaultModel::MAX_BYTES];
    let n = model.write_safetensors(&alphabet, &[], &mut file).unwrap();
    let mut loaded = Box::new(DefaultModel::zeroed());
    let mut loaded_alphabet = Alphabet::MAKEMORE;
    if loaded
        .read_safetensors(&mut loaded_alphabet, &file[..n], None)
        .is_ok()
    {
        assert_eq!(loaded_alphabet, alphabet);
        charmlp_fuzz::behaves(&loaded, &loaded_alphabet, data);
    }
});
