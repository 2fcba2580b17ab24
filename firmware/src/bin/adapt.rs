//! Adapting a host-trained model on the device to new words: the model `charmlp export --lang
//! rust` wrote (`infer/model.rs`, in flash) is copied into RAM and trained on the training split
//! of new words packed in flash (`charmlp pack`, built in with `CHARMLP_NEW_WORDS`). Twice from
//! the same start and with the same batches: every layer trained, then the embedding and the
//! first layer frozen (the backward pass ends at batch norm). Each run ends with batch norm
//! calibrated over the new training split, as `charmlp train` ends.
//!
//! Printed for the model before and after each run: its loss on the new words' train, val and
//! test splits and on the 300 built-in names (`old`), and five names drawn with the same random
//! numbers, so that they differ only by the model. Instructions per step are counted as the
//! count image counts them: run it under `-icount shift=0` (firmware/run.sh does).
#![no_std]
#![no_main]

#[path = "infer/model.rs"]
mod model;

use charmlp_core::in_place::{Frozen, train_step_in_place_frozen};
use charmlp_core::packed::{Packed, PackedSplit};
use charmlp_core::{CONTEXT, DefaultModel, Sampling};
use charmlp_firmware::icount::Counter;
use charmlp_firmware::{EXAMPLES, Training, exit, paint_stack, stack_high_water, start_counting};
use cortex_m_rt::entry;
use cortex_m_semihosting::hprintln;
use panic_semihosting as _;
use rand_core::SeedableRng;
use rand_xoshiro::Xoshiro256PlusPlus;

charmlp_firmware::count_systick_wraps!();

/// The new words, in flash: `CHARMLP_NEW_WORDS` as build.rs copied it (empty without it).
static NEW_WORDS: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/new_words.cmlw"));
const STEPS: u32 = 500;
/// Half the recipe's 0.1: the model is trained already, and the new words are few.
const LR: f32 = 0.05;
const SEED: u64 = 42;
const NAMES: u64 = 5;

/// The runs after the model as it came: a label without spaces for each.
const RUNS: [(&str, Frozen); 2] = [
    ("all-layers", Frozen::NONE),
    ("frozen-below-batch-norm", Frozen::BELOW_BATCH_NORM),
];

#[entry]
fn main() -> ! {
    paint_stack();
    if NEW_WORDS.is_empty() {
        hprintln!(
            "adapt: no new words built in: build with CHARMLP_NEW_WORDS=FILE, a file `charmlp \
             pack` wrote (firmware/run.sh does)"
        );
        exit(false)
    }
    let packed = match Packed::parse(NEW_WORDS) {
        Ok(p) => p,
        Err(e) => {
            hprintln!(
                "adapt: the packed new words in flash: {} (build with CHARMLP_NEW_WORDS=FILE from \
                 `charmlp pack`; firmware/run.sh does)",
                e
            );
            exit(false)
        }
    };
    // Tokens are indices into the packed alphabet: it must be the model's, token for token.
    if !packed
        .alphabet()
        .chars()
        .eq(model::ALPHABET.chars().iter().copied())
    {
        let mut model_chars = heapless::String::<128>::new();
        for &ch in model::ALPHABET.chars() {
            // The model's alphabet has at most 127 characters, most of them one byte; a
            // longer one is cut short in this message only.
            let _ = model_chars.push(ch);
        }
        hprintln!(
            "adapt: the new words are packed with the alphabet {:?}, not the model's {:?}: pack \
             them with `charmlp pack --alphabet` and the model's characters",
            packed.alphabet(),
            model_chars.as_str()
        );
        exit(false)
    }
    let splits = [0, 1, 2].map(|s| packed.split(s));
    hprintln!(
        "charmlp adapt: a host-trained model, {} steps at lr {} on {} new examples in flash \
         (val {}, test {})",
        STEPS,
        LR,
        splits[0].len(),
        splits[1].len(),
        splits[2].len()
    );
    let (counter, t) = start_counting("adapt");
    let ok = run(t, splits, &counter);
    hprintln!("stack high-water mark: {} bytes", stack_high_water());
    hprintln!("result: {}", if ok { "done" } else { "failed" });
    exit(ok)
}

fn run(t: &mut Training, splits: [PackedSplit<'_>; 3], counter: &Counter) -> bool {
    copy_exported(&mut t.model);
    report("before", t, splits);
    let train = splits[0];
    for (label, frozen) in RUNS {
        copy_exported(&mut t.model);
        let mut batches = Xoshiro256PlusPlus::seed_from_u64(SEED);
        let start = counter.mark();
        for _ in 0..STEPS {
            let example = |i| train.example::<CONTEXT>(i);
            if t.batch
                .sample_from(&mut batches, train.len(), example)
                .is_err()
            {
                hprintln!("adapt: the new words' training split is empty");
                return false;
            }
            step(t, frozen);
        }
        let per_step = counter.since(start) / u64::from(STEPS);
        hprintln!("instructions per step {}: {}", label, per_step);
        if t.model
            .calibrate_each(train.examples(), &mut t.calibration, &mut t.infer)
            .is_err()
        {
            hprintln!("adapt: calibration needs 2 training examples");
            return false;
        }
        report(label, t, splits);
    }
    true
}

/// One step, out of line: both runs execute the same code, with only the flags differing, and
/// `run` stays a frame of its own.
#[inline(never)]
fn step(t: &mut Training, frozen: Frozen) -> f32 {
    train_step_in_place_frozen(
        &mut t.model,
        &mut t.state,
        &mut t.scratch,
        &t.batch,
        LR,
        frozen,
    )
}

/// The exported model into RAM, tensor by tensor: no model-sized temporary on the stack.
fn copy_exported(to: &mut DefaultModel) {
    let from = &model::MODEL;
    for (to, from) in to
        .params
        .tensors_mut()
        .into_iter()
        .zip(from.params.tensors())
    {
        to.copy_from_slice(from);
    }
    to.bn.mean = from.bn.mean;
    to.bn.var = from.bn.var;
}

/// The losses on the new words' splits and the old words, and the names, as one line each.
fn report(label: &str, t: &mut Training, splits: [PackedSplit<'_>; 3]) {
    let [train, val, test] = splits.map(|s| {
        t.model
            .loss_each(s.examples::<CONTEXT>(), &mut t.infer)
            .unwrap_or(f64::NAN) as f32
    });
    let old = t.model.loss(&EXAMPLES, &mut t.infer).unwrap_or(f64::NAN) as f32;
    hprintln!(
        "losses {}: train {} val {} test {} old {}",
        label,
        train,
        val,
        test,
        old
    );
    for i in 0..NAMES {
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(SEED + i);
        let name: heapless::String<64> =
            t.model
                .sample_name_with(&mut rng, &Sampling::PLAIN, &mut t.infer, &model::ALPHABET);
        hprintln!("name {}: {}", label, name.as_str());
    }
}
