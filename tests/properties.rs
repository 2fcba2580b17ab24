//! Properties over random seeds, batches and hidden widths (proptest): the fused backward equals
//! the reference and finite differences, model bytes round-trip exactly and reject any
//! single-byte change, and sampling stays inside the vocabulary and the length bound.

use charmlp_core::bytes::{LoadError, reseal};
use charmlp_core::reference::ReferenceState;
use charmlp_core::{
    Alphabet, DefaultModel, Example, InferState, Model, Params, Temperature, TrainState,
};

/// Where a default model file's floats start.
const FLOATS_AT: usize = DefaultModel::shape(27).floats_at();
use charmlp_workspace::{
    FlatParams, bytes_of, load, max_abs, max_abs_diff, numeric_grad, random_batch, rng,
};
use proptest::prelude::*;

/// Fused vs reference vs central differences for one random model and batch: every tensor's
/// fused gradient within 1e-5·G of the reference (G its largest gradient), and `entries` random
/// entries of each within 2e-5·max|grad| + 2e-7 of the finite difference (the bounds of
/// tests/fused_vs_reference.rs and tests/gradcheck.rs).
fn check_gradients<const H: usize, const B: usize>(seed: u64, entries: usize) {
    let mut r = rng(seed);
    let mut params = Box::new(Params::<27, 10, 3, H>::zeroed());
    params.init(&mut r);
    let batch = random_batch::<3, B>(&mut r, 27);
    let mut fused = Box::new(Params::zeroed());
    let mut state = Box::new(TrainState::<32, H, B>::new());
    state.forward(&params, &batch).backward(&mut fused);
    let mut reference = Box::new(Params::zeroed());
    let mut rs = Box::new(ReferenceState::<27, 10, 3, H, B>::new());
    rs.forward(&params, &batch);
    rs.backward(&params, &batch, &mut reference);

    let g = reference
        .tensors()
        .iter()
        .map(|t| max_abs(t))
        .fold(0.0, f32::max);
    let mut flat = FlatParams::of(&params);
    for (ti, (f, rf)) in fused.tensors().iter().zip(reference.tensors()).enumerate() {
        let name = Params::<27, 10, 3, H>::NAMES[ti];
        let diff = max_abs_diff(f, rf);
        assert!(
            diff <= 1e-5 * g,
            "H{H} B{B} seed {seed} {name}: fused vs reference {diff:e}"
        );
        let scale = f64::from(max_abs(rf));
        for k in 0..entries {
            let i = (seed as usize)
                .wrapping_mul(2_654_435_761)
                .wrapping_add(k * 7_919)
                % f.len();
            let n = numeric_grad::<27, 10, 3, H, B>(&mut flat, &batch, ti, i, 1e-4);
            let err = (f64::from(f[i]) - n).abs();
            // b1's true gradient is 0 (batch norm subtracts it out again): what either path
            // computes is the rounding of a sum that cancels, bounded as fused against
            // reference is, by the gradients' scale (a seed gave |db1| 3.4e-7 with the
            // absolute 2e-7 below, and 3d6e98e, before this bound, the same value).
            let bound = if name == "b1" {
                1e-5 * f64::from(g)
            } else {
                2e-5 * scale.max(n.abs()) + 2e-7
            };
            assert!(
                err <= bound,
                "H{H} B{B} seed {seed} {name}[{i}]: fused {} vs numeric {n}",
                f[i]
            );
        }
    }
}

fn random_model<const H: usize>(seed: u64) -> Box<Model<27, 10, 3, H>> {
    let mut m = Box::new(Model::zeroed());
    m.init(&mut rng(seed));
    for (j, (mean, var)) in m.bn.mean.iter_mut().zip(m.bn.var.iter_mut()).enumerate() {
        *mean = (seed % 7) as f32 * 0.1 - 0.3 + j as f32 * 1e-3;
        *var = 0.5 + (seed % 5) as f32 * 0.2;
    }
    m
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn fused_backward_matches_reference_and_finite_differences(
        seed in any::<u64>(),
        shape in 0usize..4,
    ) {
        // Hidden widths 8 to 64, batches from 4 to 32. Not 2: with two rows batch norm outputs
        // ±1/√2 whatever its input, so the true gradient through it is ~ε/(2+ε) of the
        // upstream one, and what f32 computes there (either path) is cancellation noise
        // amplified by bnvar_inv; proptest found that case.
        match shape {
            0 => check_gradients::<8, 4>(seed, 6),
            1 => check_gradients::<16, 7>(seed, 6),
            2 => check_gradients::<24, 32>(seed, 4),
            _ => check_gradients::<64, 32>(seed, 3),
        }
    }
}

proptest! {
    #[test]
    fn model_bytes_round_trip_exactly(seed in any::<u64>(), wide in any::<bool>()) {
        if wide {
            let m = random_model::<200>(seed);
            let bytes = bytes_of(&m);
            let mut back = Box::new(Model::<27, 10, 3, 200>::zeroed());
            load(&mut back, &bytes).unwrap();
            prop_assert_eq!(bytes_of(&back), bytes);
        } else {
            let m = random_model::<64>(seed);
            let bytes = bytes_of(&m);
            let mut back = Box::new(Model::<27, 10, 3, 64>::zeroed());
            load(&mut back, &bytes).unwrap();
            prop_assert_eq!(bytes_of(&back), bytes);
        }
    }

    #[test]
    fn any_single_byte_change_is_rejected(
        seed in 0u64..8,
        at in 0usize..Model::<27, 10, 3, 64>::MAX_BYTES,
        flip in 1u8..=255,
    ) {
        let m = random_model::<64>(seed);
        let mut bytes = bytes_of(&m);
        bytes[at] ^= flip;
        let mut target = Box::new(Model::<27, 10, 3, 64>::zeroed());
        prop_assert!(load(&mut target, &bytes).is_err(), "byte {} ^ {:#04x} accepted", at, flip);
        prop_assert_eq!(bytes_of(&target), bytes_of(&Model::<27, 10, 3, 64>::zeroed()));
    }

    /// Crafted files: arbitrary bit patterns (NaN, ∞, subnormals, ±3e38, negatives) written
    /// over a real model's floats, the checksum made valid again. Each loads to a model whose
    /// loss is finite and whose names stay in a–z at any temperature, or is refused with one of
    /// the typed errors for values; the target is untouched then.
    #[test]
    fn crafted_files_with_valid_checksums_load_finite_or_are_refused(
        seed in 0u64..8,
        picks in proptest::collection::vec(
            (0usize..4_265, prop_oneof![
                any::<u32>(),
                (1e30f32..3.4e38).prop_map(f32::to_bits),
                (-3.4e38f32..-1e30).prop_map(f32::to_bits),
                (-10f32..10.0).prop_map(f32::to_bits),
            ]),
            1..6,
        ),
        temperature in prop_oneof![Just(0.0f32), 1e-30f32..1e-20, 0.05f32..5.0, 1e20f32..3e38],
    ) {
        let m = random_model::<64>(seed);
        let mut bytes = bytes_of(&m);
        for (at, value) in &picks {
            let at = FLOATS_AT + 4 * at;
            bytes[at..at + 4].copy_from_slice(&value.to_le_bytes());
        }
        reseal(&mut bytes);
        let mut loaded = Box::new(Model::<27, 10, 3, 64>::zeroed());
        match load(&mut loaded, &bytes) {
            Ok(()) => {
                let mut r = rng(seed);
                let examples: Vec<Example<3>> = (0..64)
                    .map(|_| {
                        let b = random_batch::<3, 2>(&mut r, 27);
                        Example { context: b.x[0], target: b.y[0] }
                    })
                    .collect();
                let mut st = InferState::new();
                let loss = loaded.loss(&examples, &mut st).unwrap();
                prop_assert!(loss.is_finite() && loss >= 0.0, "loss {}", loss);
                let t = Temperature::new(temperature).unwrap();
                let name: heapless::String<64> = loaded.sample_name(&mut r, t, &mut st, &Alphabet::MAKEMORE);
                prop_assert!(name.chars().all(|c| c.is_ascii_lowercase()), "{}", name);
            }
            Err(e) => {
                prop_assert!(
                    matches!(
                        e,
                        LoadError::NonFinite { .. }
                            | LoadError::NegativeVariance { .. }
                            | LoadError::Overflow(_)
                    ),
                    "{:?}",
                    e
                );
                prop_assert_eq!(bytes_of(&loaded), bytes_of(&Model::<27, 10, 3, 64>::zeroed()));
            }
        }
    }

    #[test]
    fn sampled_names_stay_in_the_vocabulary_and_the_bound(
        seed in any::<u64>(),
        temperature in 0.05f32..5.0,
    ) {
        let m = random_model::<64>(seed);
        let t = Temperature::new(temperature).unwrap();
        let mut st = InferState::new();
        let mut r = rng(seed ^ 0x5eed);
        for _ in 0..4 {
            let short: heapless::String<5> = m.sample_name(&mut r, t, &mut st, &Alphabet::MAKEMORE);
            prop_assert!(short.len() <= 5);
            prop_assert!(short.chars().all(|c| c.is_ascii_lowercase()), "{}", short);
            let long: heapless::String<64> = m.sample_name(&mut r, t, &mut st, &Alphabet::MAKEMORE);
            prop_assert!(long.chars().all(|c| c.is_ascii_lowercase()), "{}", long);
        }
    }
}

/// A seed whose db1, 0 in truth, came out −3.4e-7 in f32: within the bound of a cancelling sum.
#[test]
fn b1s_gradient_is_rounding_noise_within_bounds() {
    check_gradients::<8, 4>(1_190_950_971_970_870_208, 6);
}
