//! A training step, an inference and a sampled name allocate nothing: a counting global
//! allocator around them.

use charmlp_core::{
    Alphabet, BnCalibration, DefaultBatch, DefaultModel, DefaultParams, DefaultTrainState,
    InferRows, InferState, NoMarks, Temperature, Transposed, step, train_step,
};
use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

thread_local! {
    // `const` initialisation: no lazy set-up, so reading it inside the allocator cannot allocate.
    static ALLOCATIONS: Cell<usize> = const { Cell::new(0) };
}

struct Counting;

// SAFETY: every method forwards its arguments unchanged to `System`, whose `GlobalAlloc`
// implementation upholds the trait's contract; counting touches only a thread-local `Cell`
// (no allocation, no re-entry). `alloc_zeroed` and `realloc` keep their default
// implementations, which call `alloc` and so are counted too.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.with(|n| n.set(n.get() + 1));
        // SAFETY: the caller's guarantees about `layout` are passed on as they are.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from `System.alloc` above with this `layout`.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static COUNTING: Counting = Counting;

fn allocations() -> usize {
    ALLOCATIONS.with(Cell::get)
}

#[test]
fn steps_inference_and_sampling_do_not_allocate() {
    let words = charmlp::data::read_words(None, &Default::default()).unwrap();
    let splits = charmlp::data::split::<3>(words.words, 42).unwrap();
    let mut rng = charmlp::stream(1, charmlp::Stream::Batches);
    let mut model = Box::new(DefaultModel::zeroed());
    model.init(&mut rng);
    let mut grads = Box::new(DefaultParams::zeroed());
    let mut state = Box::new(DefaultTrainState::new());
    let mut batch = Box::new(DefaultBatch::new());
    let mut infer = Box::new(InferState::new());
    let mut copies = Box::new(Transposed::<32, 32, 64>::new());
    let mut rows = Box::new(InferRows::<27, 32, 64, 32>::new());
    let mut acc = Box::new(BnCalibration::new());

    let counted = charmlp::data::counted::<3>;
    let (train_counted, val_counted) = (counted(&splits.train), counted(&splits.val));
    let before = allocations();
    // The counter sees this thread's allocations: an allocation here would show.
    let probe = Box::new(1u8);
    assert_eq!(allocations(), before + 1, "the counter does not count");
    drop(probe);

    let before = allocations();
    for i in 0..1_000 {
        batch.sample(&mut rng, &splits.train).unwrap();
        let loss = train_step(&mut model, &mut grads, &mut state, &batch, 0.1);
        assert!(loss.is_finite(), "step {i}");
        // The host's step: with transposed copies of the weights.
        let (copies, marks) = (&mut *copies, &mut NoMarks);
        let loss = step(
            &mut model, &mut grads, None, &mut state, copies, &batch, 0.1, marks,
        );
        assert!(loss.is_finite(), "step {i}");
    }
    let loss = model.loss(&splits.val, &mut infer).unwrap();
    // The host's evaluation, calibration and sampling: distinct contexts side by side (the
    // counting itself, a host's hash map, is done before).
    let by_counts = model.loss_counted(&val_counted, &mut rows).unwrap();
    assert!(
        (by_counts - loss).abs() <= 1e-12 * loss,
        "{by_counts} {loss}"
    );
    model
        .calibrate_counted(&train_counted, &mut acc, &mut rows)
        .unwrap();
    model.probs_rows(&[batch.x[0]; 32], Temperature::ONE, None, &mut rows);
    let name: heapless::String<64> =
        model.sample_name(&mut rng, Temperature::ONE, &mut infer, &Alphabet::MAKEMORE);
    let after = allocations();
    assert_eq!(
        after,
        before,
        "{} allocations in 1,000 steps",
        after - before
    );
    assert!(loss < 3.0 && name.len() <= 64);
}
