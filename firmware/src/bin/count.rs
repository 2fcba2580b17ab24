//! Instructions per training step and per sampled name on the Cortex-M4F, counted under QEMU's
//! `-icount` (see `charmlp_firmware::icount`): the recipe's step (batch drawn from the packed
//! words, in-place step) runs `STEPS` times and `NAMES` names are sampled.
#![no_std]
#![no_main]

use charmlp_core::CONTEXT;
use charmlp_core::in_place::train_step_in_place;
use charmlp_core::packed::Packed;
use charmlp_firmware::{draw_names, exit, start_counting};
use cortex_m_rt::entry;
use cortex_m_semihosting::hprintln;
use panic_semihosting as _;
use rand_core::SeedableRng;
use rand_xoshiro::Xoshiro256PlusPlus;

charmlp_firmware::count_systick_wraps!();

static WORDS: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/words.cmlw"));
const STEPS: u32 = 200;
const NAMES: u32 = 200;

#[entry]
fn main() -> ! {
    let Ok(packed) = Packed::parse(WORDS) else {
        hprintln!("count: no packed words (build with CHARMLP_WORDS, as firmware/run.sh does)");
        exit(false)
    };
    let train = packed.split(0);
    let (counter, t) = start_counting("count");
    let ok = (|| {
        t.model.init(&mut Xoshiro256PlusPlus::seed_from_u64(1));
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(2);
        let start = counter.mark();
        for _ in 0..STEPS {
            let example = |i| train.example::<CONTEXT>(i);
            if t.batch.sample_from(&mut rng, train.len(), example).is_err() {
                return false;
            }
            train_step_in_place(&mut t.model, &mut t.state, &mut t.scratch, &t.batch, 0.1);
        }
        let step = counter.since(start) / u64::from(STEPS);
        let start = counter.mark();
        let chars = draw_names(t, &mut rng, u64::from(NAMES));
        let names = counter.since(start);
        hprintln!("instructions per training step: {}", step);
        hprintln!(
            "instructions per sampled name: {} ({} characters and ends in {} names)",
            names / u64::from(NAMES),
            chars,
            NAMES
        );
        hprintln!("instructions per character drawn: {}", names / chars);
        true
    })();
    exit(ok)
}
