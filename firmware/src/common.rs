//! What every firmware image shares whatever its architecture (Arm here, RISC-V in
//! `firmware-riscv/`, which includes this file): the training state, the names compiled into
//! flash as examples, the training run of the train image, and integer number printing.
//! Nothing here touches a core's registers or its semihosting.

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
/// image that only evaluates. That they are the table's is checked on the device (the train
/// image's `examples:` line, which run.sh requires) and on the host
/// (`name_examples_are_the_tables`, tests/firmware_common.rs).
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
/// f64 with `{}` links about 18 KB of float-to-decimal code; this links none. Only [0, 10¹⁵)
/// prints in digits: NaN prints `NaN`, a negative value `negative`, and 10¹⁵ or more `inf`
/// (a loss is never negative, and never near 10¹⁵ unless infinite).
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

/// The train image's run: `STEPS` SGD steps at lr 0.1 on [`EXAMPLES`] from seed 42, the loss
/// every 50 steps, batch-norm calibration, the loss over the names and 5 names, each line given
/// to `print`. Returns whether the mean loss of the last 50 steps is below the first step's by
/// 0.5. Every core runs this same function, so their lines can be compared.
pub fn train_run(t: &mut Training, print: &mut dyn FnMut(core::fmt::Arguments<'_>)) -> bool {
    use charmlp_core::{Alphabet, Temperature};
    use rand_core::SeedableRng;
    const STEPS: u64 = 600;
    const REPORT_EVERY: u64 = 50;
    const LR: f32 = 0.1;
    let mut rng = rand_xoshiro::Xoshiro128PlusPlus::seed_from_u64(42);
    t.model.init(&mut rng);
    let (mut first, mut recent) = (f32::NAN, 0.0f32);
    for step in 0..STEPS {
        if t.batch.sample(&mut rng, &EXAMPLES).is_err() {
            return false;
        }
        let loss = charmlp_core::in_place::train_step_in_place(
            &mut t.model,
            &mut t.state,
            &mut t.scratch,
            &t.batch,
            LR,
        );
        if step == 0 {
            first = loss;
        }
        if step >= STEPS - REPORT_EVERY {
            recent += loss / REPORT_EVERY as f32;
        }
        if step % REPORT_EVERY == 0 || step + 1 == STEPS {
            print(format_args!("step {}: loss {}", step, loss));
        }
    }
    print(format_args!(
        "loss: first step {}, mean of the last {} steps {}",
        first, REPORT_EVERY, recent
    ));
    if t.model
        .calibrate(&EXAMPLES, &mut t.calibration, &mut t.infer)
        .is_err()
    {
        return false;
    }
    let loss = t.model.loss(&EXAMPLES, &mut t.infer).unwrap_or(f64::NAN);
    print(format_args!(
        "calibrated batch norm; loss over the training names {}",
        loss as f32
    ));
    for _ in 0..5 {
        let name: heapless::String<24> = t.model.sample_name(
            &mut rng,
            Temperature::ONE,
            &mut t.infer,
            &Alphabet::MAKEMORE,
        );
        print(format_args!("name: {}", name.as_str()));
    }
    recent < first - 0.5
}

/// Stream `which` of a seed, as the host's `charmlp::stream` derives it: the seed's generator
/// advanced by `which` jumps (1: initialisation, 2: batches, 3: names; name i of `charmlp
/// sample` is drawn by the generator seeded with the names stream's first output plus i).
pub fn stream(seed: u64, which: u32) -> rand_xoshiro::Xoshiro256PlusPlus {
    use rand_core::SeedableRng;
    let mut rng = rand_xoshiro::Xoshiro256PlusPlus::seed_from_u64(seed);
    for _ in 0..which {
        rng.jump();
    }
    rng
}

/// Draws `n` names from `t.model` at temperature 1 (`charmlp sample`'s rule), for an image that
/// counts their instructions; returns their characters and ends.
pub fn draw_names<R: rand_core::Rng>(t: &mut Training, rng: &mut R, n: u64) -> u64 {
    use charmlp_core::{Alphabet, Sampling};
    let mut chars = 0u64;
    for _ in 0..n {
        let name: heapless::String<64> =
            t.model
                .sample_name_with(rng, &Sampling::PLAIN, &mut t.infer, &Alphabet::MAKEMORE);
        chars += name.chars().count() as u64 + 1;
    }
    chars
}

/// A stack painted at start and read at the end, to measure how deep it went, on any core:
/// the caller gives the free range, from its runtime's symbols and its stack pointer.
pub mod stack {
    const PAINT: u32 = 0xDEAD_BEEF;

    /// The word-aligned range [bottom, top) of the stack below the live frames.
    pub struct Free {
        pub bottom: *mut u32,
        pub top: *mut u32,
    }

    impl Free {
        /// Fills the range with a pattern.
        ///
        /// # Safety
        /// [bottom, top) must be word-aligned RAM reserved for the stack that no frame occupies
        /// (below the caller's stack pointer), so that nothing else reads or writes it.
        pub unsafe fn paint(&self) {
            let mut p = self.bottom;
            while p < self.top {
                // SAFETY: `p` is word-aligned and in [bottom, top), which the caller vouches for.
                unsafe { p.write_volatile(PAINT) };
                p = p.wrapping_add(1);
            }
        }

        /// The lowest address whose word no longer holds the paint (`top` if all do).
        ///
        /// # Safety
        /// As for [`Free::paint`]; a word a live frame owns reads as a value that is not the
        /// paint.
        pub unsafe fn lowest_used(&self) -> usize {
            let mut p = self.bottom;
            // SAFETY: every word read lies in [bottom, top), which the caller vouches for.
            while p < self.top && unsafe { p.read_volatile() } == PAINT {
                p = p.wrapping_add(1);
            }
            p as usize
        }
    }
}
