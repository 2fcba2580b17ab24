//! What the firmware images share: the training state, names compiled into flash as training
//! examples, a painted stack to measure how deep the stack went, and instructions counted
//! under QEMU's `-icount` ([`icount`]).
#![no_std]

pub mod icount;

use charmlp_core::in_place::InPlaceScratch;
use charmlp_core::{
    BATCH, BnCalibration, BnStats, CONTEXT, DefaultBatch, DefaultModel, DefaultTrainState, EMBED,
    Example, HIDDEN, InferState, Model, Params, Token, VOCAB,
};

/// Everything a training image keeps, for one static: no heap, no large stack frame. No
/// gradient buffer: the in-place step updates each parameter as soon as its gradient is
/// complete.
pub struct Training {
    pub model: DefaultModel,
    pub scratch: InPlaceScratch<EMBED, CONTEXT, BATCH>,
    pub state: DefaultTrainState,
    pub batch: DefaultBatch,
    pub infer: InferState<VOCAB, HIDDEN>,
    pub calibration: BnCalibration<HIDDEN>,
}

impl Training {
    /// All zeros, so that its static lands in .bss (no copy in flash); `Model::init` sets the
    /// statistics.
    pub const fn new() -> Self {
        Training {
            model: Model {
                params: Params::zeroed(),
                bn: BnStats {
                    mean: [0.0; HIDDEN],
                    var: [0.0; HIDDEN],
                },
            },
            scratch: InPlaceScratch::new(),
            state: DefaultTrainState::new(),
            batch: DefaultBatch::new(),
            infer: InferState::new(),
            calibration: BnCalibration::new(),
        }
    }
}

impl Default for Training {
    fn default() -> Self {
        Self::new()
    }
}

/// What an image that counts instructions starts with: SysTick started and calibrated
/// ([`icount::Counter`]), and the training state in a static of its own, outside any critical
/// section (SysTick's wraps are counted by its interrupt, which a critical section would hold
/// off). Exits with a message naming `image` if either cannot be had, as on a second call.
pub fn start_counting(image: &str) -> (icount::Counter, &'static mut Training) {
    use cortex_m_semihosting::hprintln;
    let Some(mut peripherals) = cortex_m::Peripherals::take() else {
        hprintln!("{}: the core peripherals are taken", image);
        exit(false)
    };
    let Some(counter) = icount::Counter::start(&mut peripherals.SYST) else {
        hprintln!("{}: SysTick does not run", image);
        exit(false)
    };
    let Some(training) = cortex_m::singleton!(: Training = Training::new()) else {
        hprintln!("{}: the training state is taken", image);
        exit(false)
    };
    (counter, training)
}

/// The first `WORDS` names of the built-in census list (see `data/README.md`).
const NAMES: &[u8] = include_bytes!("../../data/census-1990-first-names.txt");
pub const WORDS: usize = 300;

/// Examples of the first `WORDS` names: one per letter and one for the end of each name.
const fn count_examples() -> usize {
    let (mut i, mut words, mut n) = (0, 0, 0);
    while i < NAMES.len() && words < WORDS {
        n += 1;
        if NAMES[i] == b'\n' {
            words += 1;
        }
        i += 1;
    }
    n
}

pub const N_EXAMPLES: usize = count_examples();

/// The training examples, built by the compiler: they live in flash, not RAM.
pub static EXAMPLES: [Example<CONTEXT>; N_EXAMPLES] = build_examples();

const fn build_examples() -> [Example<CONTEXT>; N_EXAMPLES] {
    let mut out = [Example {
        context: [Token::BOUNDARY; CONTEXT],
        target: Token::BOUNDARY,
    }; N_EXAMPLES];
    let mut context = [Token::BOUNDARY; CONTEXT];
    let mut n = 0;
    while n < N_EXAMPLES {
        let byte = NAMES[n];
        let target = if byte == b'\n' {
            Token::BOUNDARY
        } else {
            // makemore's alphabet (charmlp_core::Alphabet::MAKEMORE): a–z are tokens 1..=26.
            match byte {
                b'a'..=b'z' => match Token::from_index(byte - b'a' + 1) {
                    Some(t) => t,
                    None => panic!("a-z are tokens 1..=26"),
                },
                _ => panic!("the built-in names hold only a-z"),
            }
        };
        out[n] = Example { context, target };
        if byte == b'\n' {
            context = [Token::BOUNDARY; CONTEXT];
        } else {
            let mut k = 0;
            while k + 1 < CONTEXT {
                context[k] = context[k + 1];
                k += 1;
            }
            context[CONTEXT - 1] = target;
        }
        n += 1;
    }
    out
}

/// The first `WORDS` names' text (one byte per example), copied at compile time: only these
/// 2 KB reach flash, not the whole 36 KB list `NAMES` includes.
static NAMES_TEXT: [u8; N_EXAMPLES] = first_bytes();

const fn first_bytes() -> [u8; N_EXAMPLES] {
    let mut out = [0; N_EXAMPLES];
    let mut i = 0;
    while i < N_EXAMPLES {
        out[i] = NAMES[i];
        i += 1;
    }
    out
}

/// The examples of [`EXAMPLES`], one by one from the names' text: no table in flash, for an
/// image that only evaluates (`name_examples_are_the_tables`, printed by the train image, checks
/// that they are the table's).
pub fn name_examples() -> impl Iterator<Item = Example<CONTEXT>> {
    let mut context = [Token::BOUNDARY; CONTEXT];
    NAMES_TEXT.iter().map(move |&byte| {
        // Bytes other than a–z and newline are refused when EXAMPLES is built, at compile time.
        let target = match byte {
            b'a'..=b'z' => Token::wrapping(byte - b'a' + 1, VOCAB),
            _ => Token::BOUNDARY,
        };
        let example = Example { context, target };
        if target == Token::BOUNDARY {
            context = [Token::BOUNDARY; CONTEXT];
        } else {
            context.rotate_left(1);
            context[CONTEXT - 1] = target;
        }
        example
    })
}

/// A number printed with four decimals by integer arithmetic: `2.1013`. Formatting an f32 or
/// f64 with `{}` links about 18 KB of float-to-decimal code; this links none. Non-finite and
/// negative values print as such, without digits.
pub struct Fixed4(pub f64);

impl core::fmt::Display for Fixed4 {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let x = self.0;
        if x.is_nan() {
            return f.write_str("NaN");
        }
        if !(0.0..1e15).contains(&x) {
            return f.write_str(if x < 0.0 { "negative" } else { "inf" });
        }
        let e4 = (x * 1e4 + 0.5) as u64;
        write!(f, "{}.{:04}", e4 / 10_000, e4 % 10_000)
    }
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

const PAINT: u32 = 0xDEAD_BEEF;

unsafe extern "C" {
    /// cortex-m-rt: the lowest address the stack may reach (just above .bss and .uninit).
    static _stack_end: u32;
}

/// The word-aligned range [lowest stack address, current stack pointer − margin).
fn free_stack() -> (*mut u32, *mut u32) {
    let bottom = (&raw const _stack_end).cast_mut();
    // Stay 64 words below the live frame of the caller.
    let top = (cortex_m::register::msp::read() as usize & !3) - 256;
    (bottom, top as *mut u32)
}

/// Fills the unused part of the stack with a pattern, for [`stack_high_water`] to find.
pub fn paint_stack() {
    let (mut p, top) = free_stack();
    while p < top {
        // SAFETY: [_stack_end, msp − 256) is RAM that cortex-m-rt reserves for the stack and
        // that no frame occupies yet (the stack grows down from msp), so nothing else reads or
        // writes it while we paint; `p` stays word-aligned (both ends are) and in bounds.
        unsafe { p.write_volatile(PAINT) };
        p = p.wrapping_add(1);
    }
}

/// Bytes of stack used since [`paint_stack`]: from the top of RAM down to the lowest word that
/// no longer holds the paint. An upper bound by at most the 256-byte margin left unpainted.
pub fn stack_high_water() -> usize {
    let (bottom, top) = free_stack();
    let mut p = bottom;
    // SAFETY: as in `paint_stack`, every word read lies in the stack's reserved range below
    // the live frames; a read of a word a frame owns just sees a value that is not PAINT.
    while p < top && unsafe { p.read_volatile() } == PAINT {
        p = p.wrapping_add(1);
    }
    ram_top() - p as usize
}

/// The top of RAM, where the stack starts (cortex-m-rt's `_stack_start`).
pub fn ram_top() -> usize {
    unsafe extern "C" {
        static _stack_start: u32;
    }
    // Only the symbol's address is taken, never its contents.
    (&raw const _stack_start) as usize
}
