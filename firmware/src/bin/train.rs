//! Trains the default 27→10→30→64→27 model on 300 names compiled into flash, batch 32, then
//! calibrates batch norm, samples names, and exits (semihosting) with success if the loss fell.
#![no_std]
#![no_main]

use charmlp_core::in_place::InPlaceScratch;
use charmlp_core::{
    BATCH, BnCalibration, CONTEXT, DefaultBatch, DefaultModel, DefaultTrainState, EMBED, HIDDEN,
    InferState, VOCAB,
};
use charmlp_firmware::{
    EXAMPLES, N_EXAMPLES, Training, WORDS, exit, paint_stack, stack_high_water, train_run,
};
use core::cell::RefCell;
use core::mem::size_of;
use cortex_m_rt::entry;
use cortex_m_semihosting::hprintln;
use critical_section::Mutex;
use panic_semihosting as _;

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
    let fell = critical_section::with(|cs| {
        train_run(&mut TRAINING.borrow_ref_mut(cs), &mut |line| {
            hprintln!("{}", line)
        })
    });
    hprintln!("stack high-water mark: {} bytes", stack_high_water());
    if fell {
        hprintln!("result: the loss fell");
    } else {
        hprintln!("result: the loss did not fall");
    }
    exit(fell)
}
