//! Instructions per training step and per sampled name on the Cortex-M4F, counted under QEMU's
//! `-icount` (firmware/run.sh runs this image with `-icount shift=0`: virtual time advances a
//! fixed amount per instruction, and SysTick counts virtual time).
//!
//! SysTick's ticks per instruction are calibrated first, on a loop of known length (two
//! instructions an iteration), so nothing depends on the board's clock. Then the recipe's step
//! (batch drawn from the packed words, in-place step) runs `STEPS` times and `NAMES` names are
//! sampled, each timed in ticks. Without `-icount` the figures measure the host, not the
//! instructions: run.sh never runs it so.
#![no_std]
#![no_main]

use charmlp_core::in_place::train_step_in_place;
use charmlp_core::packed::Packed;
use charmlp_core::{Alphabet, CONTEXT, Sampling};
use charmlp_firmware::{Training, exit};
use core::sync::atomic::{AtomicU32, Ordering};
use cortex_m::peripheral::SYST;
use cortex_m::peripheral::syst::SystClkSource;
use cortex_m_rt::{entry, exception};
use cortex_m_semihosting::hprintln;
use panic_semihosting as _;
use rand_core::SeedableRng;
use rand_xoshiro::Xoshiro256PlusPlus;

static WORDS: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/words.cmlw"));
const STEPS: u32 = 200;
const NAMES: u32 = 200;
/// Iterations of the calibration loop (two instructions each).
const LOOP: u32 = 5_000_000;
const RELOAD: u32 = 0x00FF_FFFF;

/// SysTick wraps since it started.
static WRAPS: AtomicU32 = AtomicU32::new(0);

#[exception]
fn SysTick() {
    WRAPS.fetch_add(1, Ordering::Relaxed);
}

/// Ticks since SysTick started: wraps · 2²⁴ plus the count down from the reload, read again if
/// a wrap came in between.
fn ticks() -> u64 {
    loop {
        let before = WRAPS.load(Ordering::Relaxed);
        let current = SYST::get_current();
        if WRAPS.load(Ordering::Relaxed) == before {
            return u64::from(before) * (u64::from(RELOAD) + 1) + u64::from(RELOAD - current);
        }
    }
}

/// `n` iterations of `subs; bne`: 2n instructions and a few more.
fn spin(n: u32) {
    // SAFETY: the loop only counts r0 down to zero; it touches no memory and no other
    // register (r0 is declared clobbered), and the flags it sets are not preserved by the
    // asm! contract anyway.
    unsafe {
        core::arch::asm!(
            "2:",
            "subs {0}, {0}, #1",
            "bne 2b",
            inout(reg) n => _,
            options(nomem, nostack),
        );
    }
}

#[entry]
fn main() -> ! {
    let Some(mut peripherals) = cortex_m::Peripherals::take() else {
        hprintln!("count: the core peripherals are taken");
        exit(false)
    };
    let syst = &mut peripherals.SYST;
    syst.set_clock_source(SystClkSource::Core);
    syst.set_reload(RELOAD);
    syst.clear_current();
    syst.enable_interrupt();
    syst.enable_counter();

    let Ok(packed) = Packed::parse(WORDS) else {
        hprintln!("count: no packed words (build with CHARMLP_WORDS, as firmware/run.sh does)");
        exit(false)
    };
    let train = packed.split(0);

    let start = ticks();
    spin(LOOP);
    let loop_ticks = ticks() - start;
    hprintln!(
        "calibration: {} ticks for {} loop instructions",
        loop_ticks,
        2 * LOOP
    );
    if loop_ticks == 0 {
        hprintln!("count: SysTick did not move");
        exit(false)
    }
    let per_instruction = loop_ticks as f64 / (2.0 * f64::from(LOOP));

    // A static of its own, outside any critical section: SysTick's wraps are counted by its
    // interrupt, which a critical section would hold off.
    let Some(t) = cortex_m::singleton!(: Training = Training::new()) else {
        hprintln!("count: the training state is taken");
        exit(false)
    };
    let ok = (|| {
        t.model.init(&mut Xoshiro256PlusPlus::seed_from_u64(1));
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(2);
        let start = ticks();
        for _ in 0..STEPS {
            let example = |i| train.example::<CONTEXT>(i);
            if t.batch.sample_from(&mut rng, train.len(), example).is_err() {
                return false;
            }
            train_step_in_place(&mut t.model, &mut t.state, &mut t.scratch, &t.batch, 0.1);
        }
        let step = (ticks() - start) as f64 / per_instruction / f64::from(STEPS);
        let (start, mut chars) = (ticks(), 0usize);
        for _ in 0..NAMES {
            let name: heapless::String<64> = t.model.sample_name_with(
                &mut rng,
                &Sampling::PLAIN,
                &mut t.infer,
                &Alphabet::MAKEMORE,
            );
            chars += name.chars().count() + 1;
        }
        let names = (ticks() - start) as f64 / per_instruction;
        hprintln!("instructions per training step: {}", step as u64);
        hprintln!(
            "instructions per sampled name: {} ({} characters and ends in {} names)",
            (names / f64::from(NAMES)) as u64,
            chars,
            NAMES
        );
        hprintln!(
            "instructions per character drawn: {}",
            (names / chars as f64) as u64
        );
        true
    })();
    exit(ok)
}
