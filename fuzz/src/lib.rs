//! What every fuzz target asserts of a model that loaded: the loader's promise that what it
//! accepts can be used.

use charmlp_core::{
    Alphabet, Example, InferState, Int8Model, Int8State, Model, Temperature, Token,
};
use rand_core::SeedableRng;

/// A loaded model's loss over contexts of its alphabet's tokens drawn from `data` is finite
/// and non-negative, and names sampled at a temperature drawn from `data` (0, tiny, ordinary or
/// huge) hold only the alphabet's characters and stay within their bound.
pub fn behaves<const V: usize, const H: usize>(
    model: &Model<V, 10, 3, H>,
    alphabet: &Alphabet<V>,
    data: &[u8],
) {
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
        let name: heapless::String<64> =
            model.sample_name(&mut rng, temperature, &mut state, alphabet);
        assert!(
            name.len() <= 64 && name.chars().all(|c| alphabet.token(c).is_some()),
            "{name}"
        );
    }
    let symbols = alphabet.len();
    let token = |b: u8| Token::wrapping(b, symbols);
    let examples: Vec<Example<3>> = data
        .chunks_exact(4)
        .take(256)
        .map(|c| Example {
            context: [token(c[0]), token(c[1]), token(c[2])],
            target: token(c[3]),
        })
        .collect();
    if let Some(loss) = model.loss(&examples, &mut state) {
        assert!(loss.is_finite() && loss >= 0.0, "loss {loss}");
    }

    // Its int8 form (what `export --int8` writes): names in the alphabet, a finite loss, and
    // weights only on the present symbols, each at least 1.
    let q = Int8Model::quantize(model, symbols);
    let mut q_state = Int8State::new();
    for _ in 0..3 {
        let name: heapless::String<64> = q.sample_name(&mut rng, &mut q_state, alphabet);
        assert!(name.chars().all(|c| alphabet.token(c).is_some()), "{name}");
    }
    for ex in &examples {
        let sum = q.weights(&ex.context, &mut q_state).get();
        assert_eq!(
            q_state.weights.iter().map(|&w| u64::from(w)).sum::<u64>(),
            u64::from(sum)
        );
        assert!(q_state.weights[..symbols].iter().all(|&w| w >= 1));
        assert!(q_state.weights[symbols..].iter().all(|&w| w == 0));
    }
    let loss = q.loss_each(examples.iter().copied(), &mut q_state);
    if let Some(nats) = loss.nats() {
        assert!(nats.is_finite() && nats >= 0.0, "int8 loss {nats}");
    }
}
