//! What every fuzz target asserts of a model that loaded: the loader's promise that what it
//! accepts can be used.

use charmlp_core::{DefaultModel, Example, InferState, Temperature, Token};
use rand_core::SeedableRng;

/// A loaded model's loss over contexts drawn from `data` is finite and non-negative, and names
/// sampled at a temperature drawn from `data` (0, tiny, ordinary or huge) stay in a–z and within
/// their bound.
pub fn behaves(model: &DefaultModel, data: &[u8]) {
    let byte = |i: usize| data.get(i).copied().unwrap_or(0);
    let temperature = match byte(0) % 4 {
        0 => 0.0,
        1 => f32::from(byte(1)) * 1e-38,
        2 => f32::from(byte(1)) / 32.0 + 0.01,
        _ => f32::from(byte(1)) * 1e36,
    };
    let temperature = Temperature::new(temperature).expect("a temperature of at least 0");
    let mut rng = rand_xoshiro::Xoshiro128PlusPlus::seed_from_u64(u64::from(byte(2)));
    let mut state = InferState::new();
    for _ in 0..3 {
        let name: heapless::String<64> = model.sample_name(&mut rng, temperature, &mut state);
        assert!(
            name.len() <= 64 && name.chars().all(|c| c.is_ascii_lowercase()),
            "{name}"
        );
    }
    let examples: Vec<Example<3>> = data
        .chunks_exact(4)
        .take(256)
        .map(|c| Example {
            context: [
                Token::wrapping(c[0]),
                Token::wrapping(c[1]),
                Token::wrapping(c[2]),
            ],
            target: Token::wrapping(c[3]),
        })
        .collect();
    if let Some(loss) = model.loss(&examples, &mut state) {
        assert!(loss.is_finite() && loss >= 0.0, "loss {loss}");
    }
}
