//! Samples names from a model trained on the host and compiled in by
//! `charmlp export --lang rust` (run.sh writes `model.rs`): no parsing, the model is a `static`
//! in flash. Exits with success if the model beats a uniform guess on the names in flash.
#![no_std]
#![no_main]

mod model;

use charmlp_core::{Alphabet, HIDDEN, InferState, Params, Shape, Temperature, VOCAB};
use charmlp_firmware::{Fixed4, N_EXAMPLES, exit, name_examples, paint_stack, stack_high_water};
use core::cell::RefCell;
use cortex_m_rt::entry;
use cortex_m_semihosting::hprintln;
use critical_section::Mutex;
use panic_semihosting as _;
use rand_core::SeedableRng;
use rand_xoshiro::Xoshiro128PlusPlus;

static INFER: Mutex<RefCell<InferState<VOCAB, HIDDEN>>> =
    Mutex::new(RefCell::new(InferState::new()));

#[entry]
fn main() -> ! {
    paint_stack();
    let model = &model::MODEL;
    hprintln!(
        "charmlp firmware: inference with an exported model ({} parameters in flash)",
        Params::<VOCAB, 10, 3, HIDDEN>::COUNT
    );
    let loss = critical_section::with(|cs| {
        let infer = &mut INFER.borrow_ref_mut(cs);
        let loss = model.loss_each(name_examples(), infer).unwrap_or(f64::NAN);
        hprintln!(
            "loss over {} examples in flash: {}",
            N_EXAMPLES,
            Fixed4(loss)
        );
        let mut rng = Xoshiro128PlusPlus::seed_from_u64(7);
        for _ in 0..8 {
            let name: heapless::String<24> =
                model.sample_name(&mut rng, Temperature::ONE, infer, &model::ALPHABET);
            hprintln!("name: {}", name.as_str());
        }
        loss
    });
    // On this 32-bit target the file of the largest shape a header can claim (about 2⁵⁰ bytes)
    // does not fit in a usize: its length must be refused, not wrapped to a small number.
    let largest = Shape {
        vocab: u16::MAX,
        embed: u16::MAX,
        context: u16::MAX,
        hidden: u16::MAX,
    };
    let refused = largest.file_len().is_none();
    hprintln!(
        "largest shape's file length: {}",
        if refused {
            "refused (beyond 32 bits)"
        } else {
            "wrapped"
        }
    );
    hprintln!("stack high-water mark: {} bytes", stack_high_water());
    // The names in flash are tokens of makemore's alphabet: the model must have that one.
    let makemore = model::ALPHABET == Alphabet::MAKEMORE;
    hprintln!(
        "alphabet: {} symbols{}",
        model::ALPHABET.len(),
        if makemore {
            ", makemore's"
        } else {
            ", not makemore's"
        }
    );
    // A uniform guess costs ln 27 ≈ 3.30 a character.
    let beats_uniform = makemore && loss < 3.0;
    if beats_uniform {
        hprintln!("result: the model beats a uniform guess");
    } else {
        hprintln!("result: the model does not beat a uniform guess");
    }
    exit(beats_uniform && refused)
}
