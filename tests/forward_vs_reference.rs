//! The fast path's forward against the step-by-step reference's, stage by stage: the batch
//! statistics, bnraw, h, the probabilities and the loss. The backward is compared in
//! tests/fused_vs_reference.rs; with both, every tensor the fast path computes is checked.

use charmlp_core::Batch;
use charmlp_core::reference::ReferenceState;
use charmlp_core::{Params, TrainState};
use charmlp_workspace::{
    examples_of, load_names, max_abs, max_abs_diff, random_batch, rng, trained_default_model,
};

/// Fast and reference forward of one model and batch; every stage within `tol` of the
/// reference, relative to that stage's largest magnitude (at least 1).
///
/// Both are f32 and differ in the order of operations only (fused softmax and batch-norm
/// formulas, vector exp and tanh within 1.2e-7 and 3.6e-7 of libm), so they agree to a few
/// roundings of the values they sum: seen ≤ 4e-7 relative (h and probs of a trained model);
/// a wrong term errs by 1e-3 or more.
fn assert_forward_agrees<
    const V: usize,
    const VP: usize,
    const E: usize,
    const T: usize,
    const H: usize,
    const B: usize,
>(
    label: &str,
    params: &Params<V, E, T, H>,
    batch: &Batch<T, B>,
) {
    const TOL: f32 = 2e-5;
    let mut state = Box::new(TrainState::<VP, H, B>::new());
    let forward = state.forward(params, batch);
    let loss = forward.loss();
    let fast = forward.state();
    let mut rs = Box::new(ReferenceState::<V, E, T, H, B>::new());
    rs.forward(params, batch);

    // The fast path pads each row of probabilities to whole vectors; the padding must be 0.
    let fast_probs: Vec<f32> = fast
        .probs
        .iter()
        .flat_map(|row| row[..V].to_vec())
        .collect();
    let padding = fast.probs.iter().flat_map(|row| row[V..].to_vec());
    assert!(
        padding.into_iter().all(|p| p == 0.0),
        "{label}: padding holds probability"
    );
    let stages: [(&str, &[f32], &[f32]); 6] = [
        ("bnmeani", &fast.bnmeani, &rs.bnmeani),
        ("bnvar", &fast.bnvar, &rs.bnvar),
        ("bnvar_inv", &fast.bnvar_inv, &rs.bnvar_inv),
        ("bnraw", fast.bnraw.as_flattened(), rs.bnraw.as_flattened()),
        ("h", fast.h.as_flattened(), rs.h.as_flattened()),
        ("probs", &fast_probs, rs.probs.as_flattened()),
    ];
    for (name, f, r) in stages {
        let scale = max_abs(r).max(1.0);
        let diff = max_abs_diff(f, r);
        eprintln!("{label} {name:>9}: max|diff| {diff:.2e} (scale {scale:.2e})");
        assert!(
            diff <= TOL * scale,
            "{label} {name}: fast and reference differ by {diff:e}"
        );
    }
    let diff = (loss - rs.loss).abs();
    eprintln!("{label}      loss: {loss} vs {} ({diff:.2e})", rs.loss);
    assert!(diff <= TOL * rs.loss, "{label} loss: {loss} vs {}", rs.loss);
}

#[test]
fn forward_matches_reference_on_random_models() {
    for seed in 0..3 {
        let mut r = rng(seed);
        let mut p = Box::new(Params::<27, 10, 3, 64>::zeroed());
        p.init(&mut r);
        assert_forward_agrees::<27, 32, 10, 3, 64, 32>(
            &format!("H64 B32 seed {seed}"),
            &p,
            &random_batch(&mut r, 27),
        );
        let mut p = Box::new(Params::<27, 4, 3, 8>::zeroed());
        p.init(&mut r);
        assert_forward_agrees::<27, 32, 4, 3, 8, 8>(
            &format!("E4 H8 B8 seed {seed}"),
            &p,
            &random_batch(&mut r, 27),
        );
        let mut p = Box::new(Params::<100, 4, 3, 8>::zeroed());
        p.init(&mut r);
        assert_forward_agrees::<100, 104, 4, 3, 8, 8>(
            &format!("V100 E4 H8 B8 seed {seed}"),
            &p,
            &random_batch(&mut r, 100),
        );
    }
    let mut r = rng(7);
    let mut p = Box::new(Params::<27, 10, 3, 200>::zeroed());
    p.init(&mut r);
    assert_forward_agrees::<27, 32, 10, 3, 200, 32>("H200 B32", &p, &random_batch(&mut r, 27));
}

#[test]
fn forward_matches_reference_after_training_on_names() {
    // Trained parameters have larger weights and sharper distributions than fresh ones.
    let examples = examples_of::<3>(&load_names()[..2000]);
    let mut r = rng(11);
    let model = trained_default_model(&examples, 2000, &mut r);
    let mut batch = Box::new(Batch::<3, 32>::new());
    batch.sample(&mut r, &examples).unwrap();
    assert_forward_agrees::<27, 32, 10, 3, 64, 32>("trained H64", &model.params, &batch);
}
