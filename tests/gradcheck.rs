//! Every gradient of the fused and of the reference backward against central finite differences
//! of an independent f64 forward (`charmlp_workspace::loss_f64`).

use charmlp_core::reference::ReferenceState;
use charmlp_core::{Params, TrainState};
use charmlp_workspace::{FlatParams, numeric_grad, random_batch, random_params, rng};

/// Per tensor: largest |analytic − numeric| and largest |numeric|, for fused and reference.
struct TensorErrors {
    name: &'static str,
    fused: f64,
    reference: f64,
    scale: f64,
}

/// Checks every `stride`-th entry of every tensor of one random model on one random batch.
fn gradient_errors<const E: usize, const T: usize, const H: usize, const B: usize>(
    seed: u64,
    stride: usize,
) -> Vec<TensorErrors> {
    let mut rng = rng(seed);
    let params = random_params::<E, T, H>(&mut rng);
    let batch = random_batch::<T, B>(&mut rng);

    let mut state = Box::new(TrainState::<H, B>::new());
    let mut fused = Box::new(Params::<E, T, H>::zeroed());
    state.forward(&params, &batch).backward(&mut fused);

    let mut reference_state = Box::new(ReferenceState::<E, T, H, B>::new());
    let mut reference = Box::new(Params::<E, T, H>::zeroed());
    reference_state.forward(&params, &batch);
    reference_state.backward(&params, &batch, &mut reference);

    let mut flat = FlatParams::of(&params);
    let mut out = Vec::new();
    for (ti, name) in Params::<E, T, H>::NAMES.into_iter().enumerate() {
        let (f, r) = (fused.tensors()[ti], reference.tensors()[ti]);
        let mut e = TensorErrors {
            name,
            fused: 0.0,
            reference: 0.0,
            scale: 0.0,
        };
        // Offset the stride by the seed so that sampled checks cover different entries.
        for i in (seed as usize % stride..f.len()).step_by(stride) {
            let n = numeric_grad::<E, T, H, B>(&mut flat, &batch, ti, i, 1e-4);
            e.fused = e.fused.max((f64::from(f[i]) - n).abs());
            e.reference = e.reference.max((f64::from(r[i]) - n).abs());
            e.scale = e.scale.max(n.abs());
        }
        out.push(e);
    }
    out
}

/// Tolerance per tensor: |analytic − numeric| ≤ RTOL·max|numeric| + ATOL.
///
/// The analytic gradients are f32 sums of up to B·H terms, so their rounding error is about
/// √(B·H)·2⁻²⁴ ≈ 3e-6 of the largest gradient at worst; the f64 central differences with step
/// 1e-4 are good to ~1e-8. Seen: at most 3.2e-6 relative (usually ~3e-7) and 5e-8 absolute
/// for b1, whose true gradient is zero (batch norm cancels it). A wrong derivation (a dropped
/// Bessel factor, a missing term of dcounts) errs by 1e-2 or more.
const RTOL: f64 = 2e-5;
const ATOL: f64 = 2e-7;

fn assert_close(label: &str, errs: &[TensorErrors]) {
    for e in errs {
        let bound = RTOL * e.scale + ATOL;
        eprintln!(
            "{label} {:>4}: max|grad| {:.3e}  max err fused {:.2e}, reference {:.2e}  (bound {:.2e})",
            e.name, e.scale, e.fused, e.reference, bound
        );
        assert!(
            e.fused <= bound,
            "{label} {}: fused gradient off by {:.3e}",
            e.name,
            e.fused
        );
        assert!(
            e.reference <= bound,
            "{label} {}: reference gradient off by {:.3e}",
            e.name,
            e.reference
        );
    }
    // A check against an all-zero gradient would prove nothing.
    assert!(
        errs.iter().filter(|e| e.scale > 1e-3).count() >= 6,
        "{label}: gradients vanish"
    );
}

#[test]
fn small_models_every_entry() {
    for seed in 0..4 {
        assert_close("E4 T3 H8 B8", &gradient_errors::<4, 3, 8, 8>(seed, 1));
        // An odd batch and a two-character context.
        assert_close(
            "E2 T2 H16 B5",
            &gradient_errors::<2, 2, 16, 5>(100 + seed, 1),
        );
    }
}

#[test]
fn default_model_every_entry() {
    for seed in [7, 8] {
        assert_close("E10 T3 H64 B32", &gradient_errors::<10, 3, 64, 32>(seed, 1));
    }
}

#[test]
fn hidden_200_every_23rd_entry() {
    assert_close("E10 T3 H200 B32", &gradient_errors::<10, 3, 200, 32>(9, 23));
}
