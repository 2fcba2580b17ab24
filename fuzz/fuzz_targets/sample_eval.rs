//! `sample` and `eval` on a loaded model whose every value comes from the fuzzer (any finite
//! float: huge, tiny, subnormal): no panic, no hang, names inside the vocabulary and the bound.
#![no_main]

use charmlp_core::{DefaultModel, Example, InferState, Temperature, Token};
use libfuzzer_sys::fuzz_target;
use rand_core::SeedableRng;

fuzz_target!(|data: &[u8]| {
    if data.len() < 6 {
        return;
    }
    // The model's floats from the input's bytes (cycled); random bytes are NaN or infinite
    // one time in 256, which the loader would reject, so those become 0.
    let mut model = Box::new(DefaultModel::zeroed());
    let mut bytes = data[2..].iter().cycle();
    let mut next = || {
        let x = f32::from_le_bytes([0; 4].map(|_| *bytes.next().unwrap_or(&0)));
        if x.is_finite() { x } else { 0.0 }
    };
    for tensor in model.params.tensors_mut() {
        tensor.iter_mut().for_each(|x| *x = next());
    }
    model.bn.mean.iter_mut().for_each(|x| *x = next());
    model.bn.var.iter_mut().for_each(|x| *x = next());
    // Through the file format, as `charmlp sample --model` loads it.
    let mut file = vec![0u8; DefaultModel::BYTES];
    model.write_bytes(&mut file).unwrap();
    let mut loaded = Box::new(DefaultModel::zeroed());
    loaded.read_bytes(&file).unwrap();

    let temperature = Temperature::new(f32::from(data[0]) / 32.0 + 0.01).unwrap();
    let mut rng = rand_xoshiro::Xoshiro128PlusPlus::seed_from_u64(u64::from(data[1]));
    let mut state = InferState::new();
    for _ in 0..3 {
        let name: heapless::String<64> = loaded.sample_name(&mut rng, temperature, &mut state);
        assert!(
            name.len() <= 64 && name.chars().all(|c| c.is_ascii_lowercase()),
            "{name}"
        );
    }
    let examples: Vec<Example<3>> = data
        .chunks_exact(4)
        .map(|c| Example {
            context: [
                Token::wrapping(c[0]),
                Token::wrapping(c[1]),
                Token::wrapping(c[2]),
            ],
            target: Token::wrapping(c[3]),
        })
        .collect();
    let _ = loaded.loss(&examples, &mut state);
});
