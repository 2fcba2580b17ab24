//! The gradient-buffer-free step against the ordinary one.

use charmlp_core::in_place::{
    Frozen, InPlaceScratch, train_step_in_place, train_step_in_place_frozen,
};
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

/// A frozen layer keeps its values to the bit; every other parameter and the running statistics
/// get the full step's update to the bit. Over several steps, so that the frozen layers'
/// old values feed later forwards.
#[test]
fn frozen_layers_stay_and_the_others_step_as_in_the_full_step() {
    let examples = examples_of::<3>(&load_names());
    let mut init = Box::new(DefaultModel::zeroed());
    init.init(&mut rng(22));
    for frozen in [
        Frozen::BELOW_BATCH_NORM,
        Frozen {
            embedding: true,
            linear1: false,
        },
        Frozen {
            embedding: false,
            linear1: true,
        },
    ] {
        let mut trained = init.clone();
        let mut state = Box::new(DefaultTrainState::new());
        let mut scratch = Box::new(InPlaceScratch::new());
        // The full step's own: a frozen step must not find the full step's demb or forward
        // left in the scratch and state it reads.
        let mut full_state = Box::new(DefaultTrainState::new());
        let mut full_scratch = Box::new(InPlaceScratch::new());
        let mut batch = DefaultBatch::new();
        let mut r = rng(23);
        for step in 0..5 {
            batch.sample(&mut r, &examples).unwrap();
            let before = trained.clone();
            let mut full = trained.clone();
            let full_loss =
                train_step_in_place(&mut full, &mut full_state, &mut full_scratch, &batch, 0.1);
            let loss = train_step_in_place_frozen(
                &mut trained,
                &mut state,
                &mut scratch,
                &batch,
                0.1,
                frozen,
            );
            assert_eq!(
                loss.to_bits(),
                full_loss.to_bits(),
                "{frozen:?}, step {step}"
            );
            for (((name, got), full), before) in DefaultParams::NAMES
                .iter()
                .zip(trained.params.tensors())
                .zip(full.params.tensors())
                .zip(before.params.tensors())
            {
                let stays = match *name {
                    "C" => frozen.embedding,
                    "W1" | "b1" => frozen.linear1,
                    _ => false,
                };
                let want = if stays { before } else { full };
                let same = got
                    .iter()
                    .zip(want)
                    .all(|(a, b)| a.to_bits() == b.to_bits());
                assert!(
                    same,
                    "{frozen:?}, step {step}: {name} is not the {} value",
                    if stays { "frozen" } else { "full step's" }
                );
                // b1's gradient is rounding noise (batch norm removes its effect): it may not move.
                if !stays && *name != "b1" {
                    assert_ne!(got, before, "{frozen:?}, step {step}: {name} did not move");
                }
            }
            assert_eq!(trained.bn.mean, full.bn.mean);
            assert_eq!(trained.bn.var, full.bn.var);
        }
    }
}
