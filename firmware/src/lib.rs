//! What the firmware images share: the training state, names compiled into flash as training
//! examples, a painted stack to measure how deep the stack went, and instructions counted
//! under QEMU's `-icount` ([`icount`]).
#![no_std]

pub mod icount;

mod common;
pub use common::*;

/// SysTick started and calibrated ([`icount::Counter`]), for an image that counts
/// instructions. Exits with a message naming `image` if the core peripherals are taken (as on a
/// second call) or SysTick does not run.
pub fn start_counter(image: &str) -> icount::Counter {
    use cortex_m_semihosting::hprintln;
    let Some(mut peripherals) = cortex_m::Peripherals::take() else {
        hprintln!("{}: the core peripherals are taken", image);
        exit(false)
    };
    let Some(counter) = icount::Counter::start(&mut peripherals.SYST) else {
        hprintln!("{}: SysTick does not run", image);
        exit(false)
    };
    counter
}

/// What a training image that counts instructions starts with: [`start_counter`], and the
/// training state in a static of its own, outside any critical section (SysTick's wraps are
/// counted by its interrupt, which a critical section would hold off). Exits with a message
/// naming `image` if any cannot be had.
pub fn start_counting(image: &str) -> (icount::Counter, &'static mut Training) {
    use cortex_m_semihosting::hprintln;
    let counter = start_counter(image);
    let Some(training) = cortex_m::singleton!(: Training = Training::new()) else {
        hprintln!("{}: the training state is taken", image);
        exit(false)
    };
    (counter, training)
}

/// Ends the program through semihosting with a success or failure status (QEMU exits with 0 or
/// 1); without a debugger to end it, the core sleeps.
pub fn exit(success: bool) -> ! {
    use cortex_m_semihosting::debug;
    debug::exit(if success {
        debug::EXIT_SUCCESS
    } else {
        debug::EXIT_FAILURE
    });
    loop {
        cortex_m::asm::wfi();
    }
}

unsafe extern "C" {
    /// cortex-m-rt: the lowest address the stack may reach (just above .bss and .uninit).
    static _stack_end: u32;
}

/// The word-aligned range [lowest stack address, current stack pointer − margin) of
/// cortex-m-rt's stack.
fn free_stack() -> stack::Free {
    // The address alone, with exposed provenance: the stack below `_stack_end` is no Rust
    // object, and a pointer derived from the 4-byte static could not reach past it.
    let bottom = core::ptr::with_exposed_provenance_mut((&raw const _stack_end) as usize);
    // Stay 64 words below the live frame of the caller.
    let top = (cortex_m::register::msp::read() as usize & !3) - 256;
    stack::Free {
        bottom,
        top: top as *mut u32,
    }
}

/// Fills the unused part of the stack with a pattern, for [`stack_high_water`] to find.
pub fn paint_stack() {
    // SAFETY: [_stack_end, msp − 256) is RAM that cortex-m-rt reserves for the stack and that no
    // frame occupies yet (the stack grows down from msp); both ends are word-aligned.
    unsafe { free_stack().paint() }
}

/// Bytes of stack used since [`paint_stack`]: from the top of RAM down to the lowest word that
/// no longer holds the paint. An upper bound by at most the 256-byte margin left unpainted.
pub fn stack_high_water() -> usize {
    // SAFETY: as in `paint_stack`.
    ram_top() - unsafe { free_stack().lowest_used() }
}

/// The top of RAM, where the stack starts (cortex-m-rt's `_stack_start`).
pub fn ram_top() -> usize {
    unsafe extern "C" {
        static _stack_start: u32;
    }
    // Only the symbol's address is taken, never its contents.
    (&raw const _stack_start) as usize
}
