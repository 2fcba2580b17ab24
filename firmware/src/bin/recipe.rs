//! makemore's whole recipe on the device: a words file's train/val/test split packed in flash
//! (`charmlp pack`, one 5-bit code per example for names.txt), every example built on the fly
//! from its index, so RAM does not depend on the data. The host's run of `charmlp train`
//! step for step: the same initialisation and batches (the seed's streams, as the host derives
//! them), batch 32, lr 0.1 then 0.01 from half the steps, then batch norm calibrated over the
//! training split, the three losses and five names. Only the step's float sums are ordered
//! otherwise (the in-place step), so the losses agree to about the fourth decimal, not to the bit.
//!
//! Steps: `CHARMLP_RECIPE_STEPS` at build time (200,000 by default); words: `CHARMLP_WORDS`
//! (see build.rs). `bash firmware/run.sh recipe` runs the whole recipe on names.txt.
#![no_std]
#![no_main]

use charmlp_core::in_place::{InPlaceScratch, train_step_in_place};
use charmlp_core::packed::{Packed, PackedSplit};
use charmlp_core::{
    Alphabet, BATCH, BnCalibration, CONTEXT, DefaultBatch, DefaultModel, DefaultTrainState, EMBED,
    HIDDEN, InferState, Sampling, Schedule, VOCAB,
};
use charmlp_firmware::{Training, exit, paint_stack, stack_high_water, stream};
use core::cell::RefCell;
use core::mem::size_of;
use cortex_m_rt::entry;
use cortex_m_semihosting::hprintln;
use critical_section::Mutex;
use panic_semihosting as _;
use rand_core::{Rng, SeedableRng};
use rand_xoshiro::Xoshiro256PlusPlus;

/// The words, in flash: `CHARMLP_WORDS` as build.rs copied it (empty without it).
static WORDS: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/words.cmlw"));
const STEPS: u64 = include!(concat!(env!("OUT_DIR"), "/recipe_steps.rs"));
/// The host's default seed, for the initialisation, the batches and the names.
const SEED: u64 = 42;
/// Loss lines printed during training.
const REPORTS: u64 = 20;

static RECIPE: Mutex<RefCell<Training>> = Mutex::new(RefCell::new(Training::new()));

#[entry]
fn main() -> ! {
    paint_stack();
    if WORDS.is_empty() {
        hprintln!(
            "recipe: no words built in: build with CHARMLP_WORDS=FILE, a file `charmlp pack` \
             wrote (firmware/run.sh does)"
        );
        exit(false)
    }
    let packed = match Packed::parse(WORDS) {
        Ok(p) => p,
        Err(e) => {
            hprintln!(
                "recipe: the packed words in flash: {} (build with CHARMLP_WORDS=FILE from \
                 `charmlp pack`; firmware/run.sh does)",
                e
            );
            exit(false)
        }
    };
    if packed.alphabet() != "abcdefghijklmnopqrstuvwxyz" {
        hprintln!(
            "recipe: this image trains makemore's alphabet, a-z; the packed words have {:?}",
            packed.alphabet()
        );
        exit(false);
    }
    let [train, val, test] = [0, 1, 2].map(|s| packed.split(s));
    hprintln!(
        "charmlp recipe: {} steps on {} packed bytes in flash: examples train {}, val {}, test {}",
        STEPS,
        WORDS.len(),
        train.len(),
        val.len(),
        test.len()
    );
    hprintln!(
        "state bytes: model {}, in-place scratch {}, train state {}, batch {}, infer {}, \
         calibration {}, packed split {}",
        size_of::<DefaultModel>(),
        size_of::<InPlaceScratch<EMBED, CONTEXT, BATCH>>(),
        size_of::<DefaultTrainState>(),
        size_of::<DefaultBatch>(),
        size_of::<InferState<VOCAB, HIDDEN>>(),
        size_of::<BnCalibration<HIDDEN>>(),
        size_of::<PackedSplit<'_>>()
    );
    let ok = critical_section::with(|cs| run(&mut RECIPE.borrow_ref_mut(cs), [train, val, test]));
    hprintln!("stack high-water mark: {} bytes", stack_high_water());
    hprintln!("result: {}", if ok { "done" } else { "failed" });
    exit(ok)
}

fn run(r: &mut Training, [train, val, test]: [PackedSplit<'_>; 3]) -> bool {
    r.model.init(&mut stream(SEED, 1));
    let mut batches = stream(SEED, 2);
    // The host's `--steps N` schedule: 0.1, then 0.01 from half the run.
    let schedule = Schedule::step(0.1, STEPS.div_ceil(2), 0.01);
    for step in 0..STEPS {
        let example = |i| train.example::<CONTEXT>(i);
        if r.batch
            .sample_from(&mut batches, train.len(), example)
            .is_err()
        {
            hprintln!("recipe: the training split is empty");
            return false;
        }
        let lr = schedule.at(step);
        let loss = train_step_in_place(&mut r.model, &mut r.state, &mut r.scratch, &r.batch, lr);
        if step % (STEPS / REPORTS).max(1) == 0 || step + 1 == STEPS {
            hprintln!("step {}: loss {} (lr {})", step, loss, lr);
        }
    }
    if r.model
        .calibrate_each(train.examples(), &mut r.calibration, &mut r.infer)
        .is_err()
    {
        hprintln!("recipe: calibration needs 2 training examples");
        return false;
    }
    hprintln!(
        "calibrated batch norm over {} training examples",
        train.len()
    );
    for (name, split) in [("train", train), ("val", val), ("test", test)] {
        match r.model.loss_each(split.examples(), &mut r.infer) {
            Some(loss) => hprintln!("{} loss {}", name, loss as f32),
            None => hprintln!("{} loss: no examples", name),
        }
    }
    // Names as the host's `sample` draws them: name i from the sample stream's first output
    // plus i, at most 64 bytes as there.
    let base = stream(SEED, 3).next_u64();
    for i in 0..5u64 {
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(base.wrapping_add(i));
        let name: heapless::String<64> = r.model.sample_name_with(
            &mut rng,
            &Sampling::PLAIN,
            &mut r.infer,
            &Alphabet::MAKEMORE,
        );
        hprintln!("name: {}", name.as_str());
    }
    true
}
