//! Instructions counted under QEMU's `-icount shift=0`: virtual time advances a fixed amount per
//! instruction, and SysTick counts virtual time. firmware/run.sh runs the images that count
//! (`count`, `adapt`) so; without `-icount` the figures measure the host, not instructions.
//!
//! SysTick's ticks per instruction are calibrated first, on a loop of known length (two
//! instructions an iteration), so nothing depends on the board's clock. SysTick's wraps are
//! counted by its interrupt: time only code that runs outside critical sections, and define the
//! handler with [`count_systick_wraps!`] in the image (here, it would be linked into every image,
//! counting ones or not: exported symbols survive link-time optimisation).

use core::sync::atomic::{AtomicU32, Ordering};
use cortex_m::peripheral::SYST;
use cortex_m::peripheral::syst::SystClkSource;

/// Iterations of the calibration loop (two instructions each).
const LOOP: u32 = 5_000_000;
const RELOAD: u32 = 0x00FF_FFFF;

/// SysTick wraps since it started.
static WRAPS: AtomicU32 = AtomicU32::new(0);

/// Counts one SysTick wrap: the handler [`count_systick_wraps!`] defines calls it.
///
/// A load and a store, not `fetch_add`, which ARMv6-M (Cortex-M0) lacks: the handler is the only
/// writer and cannot preempt itself, and the main thread only reads, so no increment is lost.
pub fn wrapped() {
    WRAPS.store(
        WRAPS.load(Ordering::Relaxed).wrapping_add(1),
        Ordering::Relaxed,
    );
}

/// Defines the SysTick exception handler, counting wraps for [`Counter`]. Once, in an image that
/// counts instructions; without it a wrap goes to cortex-m-rt's default handler, which halts.
#[macro_export]
macro_rules! count_systick_wraps {
    () => {
        #[cortex_m_rt::exception]
        fn SysTick() {
            $crate::icount::wrapped();
        }
    };
}

/// Ticks since SysTick started: wraps · 2²⁴ plus the count down from the reload, read again if
/// a wrap came in between, or while the counter reads 0: QEMU counts a wrap as the count goes
/// from 1 to 0 and reloads a tick later, so a 0 read with the new wrap counted would be a whole
/// period ahead.
fn ticks() -> u64 {
    loop {
        let before = WRAPS.load(Ordering::Relaxed);
        let current = SYST::get_current();
        if current != 0 && WRAPS.load(Ordering::Relaxed) == before {
            return u64::from(before) * (u64::from(RELOAD) + 1) + u64::from(RELOAD - current);
        }
    }
}

/// Polls of a SysTick that reads 0 before it is taken for stopped: at 40 instructions a tick
/// under `-icount shift=0`, a few ticks.
const STOPPED_AFTER: u32 = 1_000;

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

/// SysTick running, with the ticks of the calibration loop. Integer arithmetic only, so that an
/// image for a core without an FPU links no floating-point code for it.
pub struct Counter {
    loop_ticks: u64,
}

/// A point in time to count instructions from.
#[derive(Clone, Copy)]
pub struct Mark(u64);

impl Counter {
    /// Starts SysTick from the core clock and calibrates it; prints the calibration. None if
    /// SysTick does not run.
    pub fn start(syst: &mut SYST) -> Option<Counter> {
        syst.set_clock_source(SystClkSource::Core);
        syst.set_reload(RELOAD);
        syst.clear_current();
        syst.enable_interrupt();
        syst.enable_counter();
        // Cleared, the counter reads 0 until its first reload, and `ticks` waits for that.
        if !(0..STOPPED_AFTER).any(|_| SYST::get_current() != 0) {
            return None;
        }
        let start = ticks();
        spin(LOOP);
        let loop_ticks = ticks() - start;
        cortex_m_semihosting::hprintln!(
            "calibration: {} ticks for {} loop instructions",
            loop_ticks,
            2 * LOOP
        );
        (loop_ticks > 0).then_some(Counter { loop_ticks })
    }

    /// Now, to count from.
    pub fn mark(&self) -> Mark {
        Mark(ticks())
    }

    /// Instructions since `mark`: ticks · (2 · LOOP) / loop ticks. Below 2⁶⁴ for any run
    /// shorter than 2⁶⁴ / 10⁷ ticks (a year of SysTick at 25 MHz).
    pub fn since(&self, mark: Mark) -> u64 {
        (ticks() - mark.0).saturating_mul(2 * u64::from(LOOP)) / self.loop_ticks
    }
}
