//! Trains the default 27→10→30→64→27 model on 300 names compiled into flash, batch 32, then
//! calibrates batch norm, samples names, and exits (semihosting) with success if the loss fell.
#![no_std]
#![no_main]

use charmlp_core::in_place::{InPlaceScratch, train_step_in_place};
use charmlp_core::{
    Alphabet, BATCH, BnCalibration, CONTEXT, DefaultBatch, DefaultModel, DefaultTrainState, EMBED,
    HIDDEN, InferState, Temperature, VOCAB,
};
use charmlp_firmware::{
    EXAMPLES, N_EXAMPLES, Training, WORDS, exit, paint_stack, stack_high_water,
};
use core::cell::RefCell;
use core::mem::size_of;
use cortex_m_rt::entry;
use cortex_m_semihosting::hprintln;
use critical_section::Mutex;
use panic_semihosting as _;
use rand_core::SeedableRng;
use rand_xoshiro::Xoshiro128PlusPlus;

const STEPS: u64 = 600;
const REPORT_EVERY: u64 = 50;
const LR: f32 = 0.1;

static TRAINING: Mutex<RefCell<Training>> = Mutex::new(RefCell::new(Training::new()));

#[entry]
fn main() -> ! {
    paint_stack();
    hprintln!(
        "charmlp firmware: training on {} names ({} examples in flash)",
        WORDS,
        N_EXAMPLES
    );
    hprintln!(
        "state bytes: model {}, in-place scratch {}, train state {}, batch {}, infer {}, calibration {}",
        size_of::<DefaultModel>(),
        size_of::<InPlaceScratch<EMBED, CONTEXT, BATCH>>(),
        size_of::<DefaultTrainState>(),
        size_of::<DefaultBatch>(),
        size_of::<InferState<VOCAB, HIDDEN>>(),
        size_of::<BnCalibration<HIDDEN>>()
    );
    // The examples an evaluating image builds one by one are this table's.
    let same = charmlp_firmware::name_examples().eq(EXAMPLES.iter().copied());
    hprintln!(
        "examples: the names' text gives {} table's",
        if same { "the" } else { "not the" }
    );
    let fell = critical_section::with(|cs| train(&mut TRAINING.borrow_ref_mut(cs)));
    hprintln!("stack high-water mark: {} bytes", stack_high_water());
    if fell {
        hprintln!("result: the loss fell");
    } else {
        hprintln!("result: the loss did not fall");
    }
    exit(fell)
}

/// Returns whether the mean loss of the last 50 steps is below the first step's by 0.5.
fn train(t: &mut Training) -> bool {
    let mut rng = Xoshiro128PlusPlus::seed_from_u64(42);
    t.model.init(&mut rng);
    let (mut first, mut recent) = (f32::NAN, 0.0f32);
    for step in 0..STEPS {
        if t.batch.sample(&mut rng, &EXAMPLES).is_err() {
            return false;
        }
        let loss = train_step_in_place(&mut t.model, &mut t.state, &mut t.scratch, &t.batch, LR);
        if step == 0 {
            first = loss;
        }
        if step >= STEPS - REPORT_EVERY {
            recent += loss / REPORT_EVERY as f32;
        }
        if step % REPORT_EVERY == 0 || step + 1 == STEPS {
            hprintln!("step {}: loss {}", step, loss);
        }
    }
    hprintln!(
        "loss: first step {}, mean of the last {} steps {}",
        first,
        REPORT_EVERY,
        recent
    );
    if t.model
        .calibrate(&EXAMPLES, &mut t.calibration, &mut t.infer)
        .is_err()
    {
        return false;
    }
    let loss = t.model.loss(&EXAMPLES, &mut t.infer).unwrap_or(f64::NAN);
    hprintln!(
        "calibrated batch norm; loss over the training names {}",
        loss as f32
    );
    for _ in 0..5 {
        let name: heapless::String<24> = t.model.sample_name(
            &mut rng,
            Temperature::ONE,
            &mut t.infer,
            &Alphabet::MAKEMORE,
        );
        hprintln!("name: {}", name.as_str());
    }
    recent < first - 0.5
}
