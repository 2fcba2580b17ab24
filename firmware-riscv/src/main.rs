//! The train image of `firmware/` on a RISC-V core (rv32imac: no FPU, f32 in software), QEMU's
//! virt machine: the same training run (`firmware/src/common.rs`, included as it is), whose
//! lines `firmware/run.sh` requires to be the Cortex-M4F's exactly.
#![no_std]
#![no_main]

// The Arm images use the rest of it (the examples one by one, integer printing).
#[allow(dead_code)]
#[path = "../../firmware/src/common.rs"]
mod common;

use core::cell::RefCell;
use critical_section::Mutex;
use riscv_semihosting::{debug, hprintln};

static TRAINING: Mutex<RefCell<common::Training>> =
    Mutex::new(RefCell::new(common::Training::new()));

unsafe extern "C" {
    /// riscv-rt: the low end of the stack region (just above .bss and the heap).
    static __estack: u32;
    /// riscv-rt: the top of the stack, the end of RAM.
    static _stack_start: u32;
}

/// The stack region below the live frames: [__estack, sp − 256).
fn free_stack() -> common::stack::Free {
    let sp: usize;
    // SAFETY: copies the stack pointer into a register; no memory is read or written.
    unsafe { core::arch::asm!("mv {}, sp", out(reg) sp, options(nomem, nostack)) };
    common::stack::Free {
        // The address alone, with exposed provenance: the stack is no Rust object.
        bottom: core::ptr::with_exposed_provenance_mut((&raw const __estack) as usize),
        top: ((sp & !3) - 256) as *mut u32,
    }
}

#[riscv_rt::entry]
fn main() -> ! {
    // SAFETY: [__estack, sp − 256) is RAM riscv-rt reserves for the stack, below every live
    // frame; both ends are word-aligned.
    unsafe { free_stack().paint() };
    hprintln!(
        "charmlp firmware (RISC-V): training on {} names ({} examples in flash)",
        common::WORDS,
        common::N_EXAMPLES
    );
    let fell = critical_section::with(|cs| {
        common::train_run(&mut TRAINING.borrow_ref_mut(cs), &mut |line| {
            hprintln!("{}", line)
        })
    });
    if fell {
        critical_section::with(|cs| count(&mut TRAINING.borrow_ref_mut(cs)));
    }
    // SAFETY: as for the paint above.
    let lowest = unsafe { free_stack().lowest_used() };
    hprintln!(
        "stack high-water mark: {} bytes",
        (&raw const _stack_start) as usize - lowest
    );
    hprintln!(
        "result: {}",
        if fell {
            "the loss fell"
        } else {
            "the loss did not fall"
        }
    );
    exit(fell)
}

/// Ends the program through semihosting with a success or failure status (QEMU exits with 0 or
/// 1); without a debugger to end it, the hart waits.
fn exit(success: bool) -> ! {
    debug::exit(if success {
        debug::EXIT_SUCCESS
    } else {
        debug::EXIT_FAILURE
    });
    loop {
        riscv::asm::wfi();
    }
}

/// Instructions per training step and per sampled name, as the Cortex-M `count` image counts
/// them: `minstret`, the instructions retired, which QEMU counts exactly under `-icount` (without
/// it, the figures are the host's ticks). 20 steps from a fresh model on batches of
/// [`common::EXAMPLES`], then 50 names.
fn count(t: &mut common::Training) {
    use rand_core::SeedableRng;
    use riscv::register::minstret;
    // Fewer than the Cortex-M count's 200: in software, a step is 54 million instructions,
    // and CI's time is bounded. The mean of 20 is within a fraction of a percent of 200's.
    const STEPS: u64 = 20;
    const NAMES: u64 = 50;
    // The Cortex-M count's seeds: 1 for the model, 2 for the batches and names.
    t.model
        .init(&mut rand_xoshiro::Xoshiro256PlusPlus::seed_from_u64(1));
    let mut rng = rand_xoshiro::Xoshiro256PlusPlus::seed_from_u64(2);
    let start = minstret::read64();
    for _ in 0..STEPS {
        if t.batch.sample(&mut rng, &common::EXAMPLES).is_err() {
            return;
        }
        charmlp_core::in_place::train_step_in_place(
            &mut t.model,
            &mut t.state,
            &mut t.scratch,
            &t.batch,
            0.1,
        );
    }
    let steps = minstret::read64() - start;
    let start = minstret::read64();
    let chars = common::draw_names(t, &mut rng, NAMES);
    let names = minstret::read64() - start;
    hprintln!("instructions per training step: {}", steps / STEPS);
    hprintln!(
        "instructions per sampled name: {} ({} characters and ends in {} names)",
        names / NAMES,
        chars,
        NAMES
    );
    // After 20 steps rather than the Cortex-M count's 200, names run longer: a character is
    // the figure to compare.
    hprintln!("instructions per character drawn: {}", names / chars);
}

#[panic_handler]
fn panic(info: &core::panic::PanicInfo<'_>) -> ! {
    hprintln!("panic: {}", info);
    exit(false)
}
