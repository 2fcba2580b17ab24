//! The gradient-buffer-free step against the ordinary one.

use charmlp_core::in_place::{InPlaceScratch, train_step_in_place};
use charmlp_core::{DefaultBatch, DefaultModel, DefaultParams, DefaultTrainState, train_step};
use charmlp_workspace::{examples_of, load_names, max_abs, max_abs_diff, rng};

#[test]
fn in_place_step_equals_the_ordinary_step() {
    let examples = examples_of::<3>(&load_names());
    let mut r = rng(21);
    let mut a = Box::new(DefaultModel::zeroed());
    a.init(&mut r);
    let mut b = a.clone();
    let mut grads = Box::new(DefaultParams::zeroed());
    let mut state = Box::new(DefaultTrainState::new());
    let mut scratch = Box::new(InPlaceScratch::new());
    let mut batch = DefaultBatch::new();
    for step in 0..300 {
        batch.sample(&mut r, &examples).unwrap();
        let la = train_step(&mut a, &mut grads, &mut state, &batch, 0.1);
        let lb = train_step_in_place(&mut b, &mut state, &mut scratch, &batch, 0.1);
        // Same parameters going in (up to the drift checked below), so the same loss.
        assert!((la - lb).abs() < 1e-4, "step {step}: loss {la} vs {lb}");
        if step == 0 {
            // One step from identical parameters: the updates differ only by rounding.
            for ((name, x), y) in DefaultParams::NAMES
                .iter()
                .zip(a.params.tensors())
                .zip(b.params.tensors())
            {
                let d = max_abs_diff(x, y);
                assert!(
                    d <= 1e-6 * max_abs(x).max(1.0),
                    "{name}: {d:e} after one step"
                );
            }
        }
    }
    // After 300 steps the two runs have drifted by rounding only (seen ≤ 4.3e-6).
    for ((name, x), y) in DefaultParams::NAMES
        .iter()
        .zip(a.params.tensors())
        .zip(b.params.tensors())
    {
        let d = max_abs_diff(x, y);
        eprintln!("{name}: max |difference| after 300 steps {d:e}");
        assert!(d <= 1e-3 * max_abs(x).max(1.0), "{name}: {d:e}");
    }
    // The running statistics follow the same parameters, so they drift as little.
    assert!(max_abs_diff(&a.bn.mean, &b.bn.mean) <= 1e-4);
    assert!(max_abs_diff(&a.bn.var, &b.bn.var) <= 1e-4);
}
