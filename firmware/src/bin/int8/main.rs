//! int8 inference by integer arithmetic alone ([`charmlp_core::Int8Model`]): the inference
//! image's model, quantised by `charmlp export --int8` (run.sh writes `model.rs`), measures its
//! loss on the built-in names' validation split in flash (`charmlp pack --only val`) and samples
//! the names `charmlp sample --int8` draws. Built for the Cortex-M0 (QEMU's micro:bit, linked
//! into a 32 KB-flash, 8 KB-RAM budget) and the Cortex-M4F; under `-icount` it also counts the
//! instructions of an example's forward pass and of a name.
//!
//! The loss is printed as its fixed-point sum, which the host's `eval --int8 --json` gives too:
//! run.sh requires them equal, as it requires the names equal.
#![no_std]
#![no_main]

mod model;

use charmlp_core::Int8State;
use charmlp_core::packed::Packed;
use charmlp_firmware::{exit, paint_stack, stack_high_water, start_counter, stream};
use cortex_m_rt::entry;
use cortex_m_semihosting::hprintln;
use panic_semihosting as _;
use rand_core::{Rng, SeedableRng};
use rand_xoshiro::Xoshiro256PlusPlus;

charmlp_firmware::count_systick_wraps!();

static WORDS: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/words.cmlw"));

/// Names drawn, as `charmlp sample --int8 -n 8 --seed 42` draws them.
const NAMES: u64 = 8;
const SEED: u64 = 42;
/// `charmlp sample`'s longest name, in bytes.
const MAX_NAME_LEN: usize = 64;

#[entry]
fn main() -> ! {
    paint_stack();
    let model = &model::MODEL;
    let Ok(packed) = Packed::parse(WORDS) else {
        hprintln!("int8: no packed words (build with CHARMLP_WORDS, as firmware/run.sh does)");
        exit(false)
    };
    if !packed
        .alphabet()
        .chars()
        .eq(model::ALPHABET.chars().iter().copied())
    {
        hprintln!("int8: the packed words' alphabet is not the model's");
        exit(false)
    }
    let counter = start_counter("int8");
    hprintln!(
        "charmlp firmware: int8 inference, integer arithmetic only ({} bytes of model in flash)",
        core::mem::size_of_val(model)
    );
    let mut state = Int8State::new();

    let val = packed.split(1);
    let start = counter.mark();
    let loss = model.loss_each(val.examples(), &mut state);
    let loss_instructions = counter.since(start);
    let Some(nats_e4) = loss.nats_e4() else {
        hprintln!("int8: the validation split is empty");
        exit(false)
    };
    hprintln!(
        "int8 val loss: {}.{:04} (bits_q16 {} over {} examples)",
        nats_e4 / 10_000,
        nats_e4 % 10_000,
        loss.bits_q16,
        loss.n
    );

    // charmlp's sample stream: its first output plus i seeds name i's generator.
    let base = stream(SEED, 3).next_u64();
    let (start, mut chars) = (counter.mark(), 0u64);
    for i in 0..NAMES {
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(base.wrapping_add(i));
        let name: heapless::String<MAX_NAME_LEN> =
            model.sample_name(&mut rng, &mut state, &model::ALPHABET);
        chars += name.chars().count() as u64 + 1;
        hprintln!("name: {}", name.as_str());
    }
    let name_instructions = counter.since(start);
    hprintln!(
        "instructions per example (forward and loss): {}",
        loss_instructions / loss.n
    );
    hprintln!(
        "instructions per sampled name: {} ({} characters and ends in {} names)",
        name_instructions / NAMES,
        chars,
        NAMES
    );
    hprintln!("stack high-water mark: {} bytes", stack_high_water());
    // A uniform guess costs ln 27 ≈ 3.2958 a character.
    let beats_uniform = nats_e4 < 32_958;
    hprintln!(
        "result: {}",
        if beats_uniform {
            "done"
        } else {
            "the model does not beat a uniform guess"
        }
    );
    exit(beats_uniform)
}
