//! The one place where runtime shapes become const-generic instantiations (as candle's `Map1`
//! turns a dtype into a generic call): the vocabulary capacities, hidden widths and batch sizes
//! this binary is built for; a training run of any of them behind the object-safe [`Training`]
//! trait; and a loaded model of any of them behind [`Loaded`].
//!
//! Only the model's own loops are generic: [`Training::steps`] runs a stretch of steps in one
//! monomorphic loop and hands back their losses, and [`Loaded`] evaluates and samples. Everything
//! that drives them (reporting, the curve, the plot, divergence, progress, files, export) is
//! written once and is not instantiated per shape. A width, a batch size or a capacity is added
//! in one place: its list below and the matching list in [`instantiate!`].
//!
//! The vocabulary capacity V is the smallest built-in one that holds the data's symbols:
//! makemore's 27 (a–z data, exactly today's model), then 32, 64 and 128, whole vectors of the
//! fast path. A model of v < V symbols has its symbols v..V absent (see
//! [`charmlp_core::Params::init_with_symbols`]): it computes exactly what a model of v symbols
//! would, at the cost of V − v unused output rows.

use crate::MAX_NAME_LEN;
use anyhow::{Result, anyhow, bail};
use charmlp_core::bytes::{Shape, peek_shape};
use charmlp_core::{
    Alphabet, Batch, BnCalibration, CONTEXT, EMBED, EmptySplit, Example, InferState, Model, Params,
    StepDecay, Temperature, TrainState, train_step,
};
use rand_xoshiro::Xoshiro256PlusPlus;

/// Vocabulary capacities built in, smallest first; the last is the most symbols a model holds.
pub const CAPACITIES: [usize; 4] = [27, 32, 64, 128];

/// Hidden widths built in, for messages and flag parsing.
pub const HIDDEN_WIDTHS: [usize; 2] = [charmlp_core::HIDDEN, charmlp_core::HIDDEN_WIDE];

/// Batch sizes built in.
pub const BATCH_SIZES: [usize; 7] = [4, 8, 16, 32, 64, 128, 256];

/// The capacity a vocabulary of `symbols` trains in: the smallest built-in one that holds it.
pub fn capacity(symbols: usize) -> Option<usize> {
    CAPACITIES.into_iter().find(|&v| v >= symbols)
}

/// Runs `$make!(V, VP, H, $($extra)*)` for the built-in capacity `$v` and width `$h`, or gives
/// `None`. The lists here are [`CAPACITIES`] and [`HIDDEN_WIDTHS`] (with VP = padded(V)); the
/// tests check that they agree.
macro_rules! instantiate {
    ($v:expr, $h:expr, $make:ident!($($extra:tt)*)) => {
        match ($v, $h) {
            (27, 64) => $make!(27, 32, 64, $($extra)*),
            (27, 200) => $make!(27, 32, 200, $($extra)*),
            (32, 64) => $make!(32, 32, 64, $($extra)*),
            (32, 200) => $make!(32, 32, 200, $($extra)*),
            (64, 64) => $make!(64, 64, 64, $($extra)*),
            (64, 200) => $make!(64, 64, 200, $($extra)*),
            (128, 64) => $make!(128, 128, 64, $($extra)*),
            (128, 200) => $make!(128, 128, 200, $($extra)*),
            _ => None,
        }
    };
}

/// The alphabet of `chars` in a structure of capacity V.
fn alphabet<const V: usize>(chars: &[char]) -> Result<Alphabet<V>> {
    Alphabet::new(chars).map_err(|e| anyhow!("{e}"))
}

/// A training run of one built-in shape, as the shape-free driver sees it.
pub trait Training {
    /// Scalars in the seven parameter tensors of the present symbols.
    fn param_count(&self) -> usize;

    /// Fresh parameters (makemore's initialisation of the alphabet's symbols) from `rng`.
    fn init(&mut self, rng: &mut Xoshiro256PlusPlus);

    /// Runs `losses.len()` steps from step `from` (batch draw from `train`, forward, fused
    /// backward, SGD at the schedule's rate), each step's batch loss into `losses`.
    fn steps(
        &mut self,
        rng: &mut Xoshiro256PlusPlus,
        train: &[Example<CONTEXT>],
        schedule: &StepDecay,
        from: u64,
        losses: &mut [f32],
    ) -> Result<(), EmptySplit>;

    /// The first parameter tensor holding a NaN or an infinity among the present symbols' rows.
    fn non_finite_tensor(&self) -> Option<&'static str>;

    /// Mean loss over `examples` with the running batch-norm statistics, as they stand.
    fn loss(&mut self, examples: &[Example<CONTEXT>]) -> Option<f64>;

    /// Replaces the batch-norm statistics with those of the whole training split.
    fn calibrate(&mut self, train: &[Example<CONTEXT>]) -> Result<()>;

    /// A hidden unit whose batch-norm mean or variance is not finite: (unit, mean, var).
    fn non_finite_statistic(&self) -> Option<(usize, f32, f32)>;

    /// The model file's bytes, alphabet included.
    fn model_bytes(&self) -> Vec<u8>;
}

/// A value at a cache-line boundary (64 bytes): the f32x8 loads of the step then never split a
/// line, wherever the allocator would have put it (at 16 mod 64, a step is ~3% slower).
#[repr(C, align(64))]
struct Aligned<T>(T);

impl<T> std::ops::Deref for Aligned<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.0
    }
}

impl<T> std::ops::DerefMut for Aligned<T> {
    fn deref_mut(&mut self) -> &mut T {
        &mut self.0
    }
}

/// Everything one training run keeps, on the heap.
struct Run<const V: usize, const VP: usize, const H: usize, const B: usize> {
    model: Box<Aligned<Model<V, EMBED, CONTEXT, H>>>,
    grads: Box<Aligned<Params<V, EMBED, CONTEXT, H>>>,
    state: Box<Aligned<TrainState<VP, H, B>>>,
    batch: Box<Batch<CONTEXT, B>>,
    infer: Box<InferState<V, H>>,
    alphabet: Alphabet<V>,
}

impl<const V: usize, const VP: usize, const H: usize, const B: usize> Run<V, VP, H, B> {
    fn new(chars: &[char]) -> Result<Self> {
        Ok(Run {
            model: Box::new(Aligned(Model::zeroed())),
            grads: Box::new(Aligned(Params::zeroed())),
            state: Box::new(Aligned(TrainState::new())),
            batch: Box::new(Batch::new()),
            infer: Box::new(InferState::new()),
            alphabet: alphabet(chars)?,
        })
    }
}

impl<const V: usize, const VP: usize, const H: usize, const B: usize> Training
    for Run<V, VP, H, B>
{
    fn param_count(&self) -> usize {
        self.model
            .file_tensors(self.alphabet.len())
            .iter()
            .take(7)
            .map(|(_, t)| t.len())
            .sum()
    }

    fn init(&mut self, rng: &mut Xoshiro256PlusPlus) {
        self.model.init_with_symbols(rng, self.alphabet.len());
    }

    fn steps(
        &mut self,
        rng: &mut Xoshiro256PlusPlus,
        train: &[Example<CONTEXT>],
        schedule: &StepDecay,
        from: u64,
        losses: &mut [f32],
    ) -> Result<(), EmptySplit> {
        for (step, loss) in (from..).zip(losses.iter_mut()) {
            self.batch.sample(rng, train)?;
            let lr = schedule.at(step);
            *loss = train_step(
                &mut self.model,
                &mut self.grads,
                &mut self.state,
                &self.batch,
                lr,
            );
        }
        Ok(())
    }

    fn non_finite_tensor(&self) -> Option<&'static str> {
        let tensors = self.model.file_tensors(self.alphabet.len());
        tensors
            .iter()
            .take(7)
            .find(|(_, t)| t.iter().any(|x| !x.is_finite()))
            .map(|(name, _)| *name)
    }

    fn loss(&mut self, examples: &[Example<CONTEXT>]) -> Option<f64> {
        self.model.loss(examples, &mut self.infer)
    }

    fn calibrate(&mut self, train: &[Example<CONTEXT>]) -> Result<()> {
        let mut acc = Box::new(BnCalibration::new());
        self.model.calibrate(train, &mut acc, &mut self.infer)?;
        Ok(())
    }

    fn non_finite_statistic(&self) -> Option<(usize, f32, f32)> {
        let bn = &self.model.bn;
        (0..H)
            .find(|&j| !(bn.mean[j].is_finite() && bn.var[j].is_finite()))
            .map(|j| (j, bn.mean[j], bn.var[j]))
    }

    fn model_bytes(&self) -> Vec<u8> {
        let mut bytes = vec![0; Model::<V, EMBED, CONTEXT, H>::bytes_len(&self.alphabet)];
        let written = self.model.write_bytes(&self.alphabet, &mut bytes);
        debug_assert_eq!(written, Ok(bytes.len()));
        bytes
    }
}

/// A training run for the alphabet `chars` (the boundary not included), hidden width `hidden`
/// and batch size `batch`, if the shape is built in.
pub fn training(chars: &[char], hidden: usize, batch: usize) -> Result<Box<dyn Training>> {
    let symbols = chars.len() + 1;
    let Some(v) = capacity(symbols) else {
        bail!(
            "{symbols} symbols; a model holds at most {}",
            CAPACITIES[CAPACITIES.len() - 1]
        );
    };
    macro_rules! run {
        ($v:literal, $vp:literal, $h:literal, $chars:expr, $batch:expr) => {
            match $batch {
                4 => Some(
                    Run::<$v, $vp, $h, 4>::new($chars).map(|r| Box::new(r) as Box<dyn Training>),
                ),
                8 => Some(
                    Run::<$v, $vp, $h, 8>::new($chars).map(|r| Box::new(r) as Box<dyn Training>),
                ),
                16 => Some(
                    Run::<$v, $vp, $h, 16>::new($chars).map(|r| Box::new(r) as Box<dyn Training>),
                ),
                32 => Some(
                    Run::<$v, $vp, $h, 32>::new($chars).map(|r| Box::new(r) as Box<dyn Training>),
                ),
                64 => Some(
                    Run::<$v, $vp, $h, 64>::new($chars).map(|r| Box::new(r) as Box<dyn Training>),
                ),
                128 => Some(
                    Run::<$v, $vp, $h, 128>::new($chars).map(|r| Box::new(r) as Box<dyn Training>),
                ),
                256 => Some(
                    Run::<$v, $vp, $h, 256>::new($chars).map(|r| Box::new(r) as Box<dyn Training>),
                ),
                _ => None,
            }
        };
    }
    instantiate!(v, hidden, run!(chars, batch)).unwrap_or_else(|| {
        Err(anyhow!(
            "--hidden {hidden} --batch {batch}: not built in; widths {HIDDEN_WIDTHS:?}, batches {BATCH_SIZES:?}"
        ))
    })
}

/// A loaded model of one built-in shape, as the shape-free commands see it.
pub trait Loaded {
    /// The alphabet's characters (token i + 1 is `chars()[i]`).
    fn chars(&self) -> &[char];

    /// The file's shape: symbols, embedding, context, hidden.
    fn shape(&self) -> Shape;

    /// Mean loss over `examples` (`None` for none), with the model's statistics.
    fn loss(&self, examples: &[Example<CONTEXT>]) -> Option<f64>;

    /// One sampled name.
    fn sample(
        &self,
        rng: &mut Xoshiro256PlusPlus,
        temperature: Temperature,
    ) -> heapless::String<MAX_NAME_LEN>;

    /// The nine tensors in file order, with the present symbols' rows: name and values.
    fn tensors(&self) -> [(&'static str, &[f32]); 9];
}

struct LoadedModel<const V: usize, const H: usize> {
    model: Box<Model<V, EMBED, CONTEXT, H>>,
    alphabet: Alphabet<V>,
    chars: Vec<char>,
}

impl<const V: usize, const H: usize> Loaded for LoadedModel<V, H> {
    fn chars(&self) -> &[char] {
        &self.chars
    }

    fn shape(&self) -> Shape {
        Model::<V, EMBED, CONTEXT, H>::shape(self.alphabet.len())
    }

    fn loss(&self, examples: &[Example<CONTEXT>]) -> Option<f64> {
        self.model.loss(examples, &mut InferState::new())
    }

    fn sample(
        &self,
        rng: &mut Xoshiro256PlusPlus,
        temperature: Temperature,
    ) -> heapless::String<MAX_NAME_LEN> {
        self.model
            .sample_name(rng, temperature, &mut InferState::new(), &self.alphabet)
    }

    fn tensors(&self) -> [(&'static str, &[f32]); 9] {
        self.model.file_tensors(self.alphabet.len())
    }
}

/// Largest model file this build reads: the widest built-in shape's with every symbol present.
pub const MAX_MODEL_BYTES: usize = Model::<128, EMBED, CONTEXT, 200>::MAX_BYTES;

/// A model from a file's bytes, of whichever built-in shape they hold, in the smallest capacity
/// that holds its symbols; the loader's checks (checksum, alphabet, finite values, variances,
/// activation bounds) are all applied.
pub fn load(bytes: &[u8]) -> Result<Box<dyn Loaded>> {
    let shape = peek_shape(bytes).map_err(|e| anyhow!("{e}"))?;
    let built = |s: &Shape| {
        usize::from(s.embed) == EMBED
            && usize::from(s.context) == CONTEXT
            && HIDDEN_WIDTHS.contains(&usize::from(s.hidden))
    };
    if !built(&shape) {
        bail!(
            "model has {shape}; this build reads embedding {EMBED}, context {CONTEXT}, hidden {}",
            HIDDEN_WIDTHS.map(|h| h.to_string()).join(" or ")
        );
    }
    let symbols = usize::from(shape.vocab);
    let Some(v) = capacity(symbols) else {
        bail!(
            "model has {symbols} symbols; this build reads at most {}",
            CAPACITIES[CAPACITIES.len() - 1]
        );
    };
    macro_rules! read {
        ($v:literal, $vp:literal, $h:literal, $bytes:expr) => {{
            let mut model = Box::new(Model::<$v, EMBED, CONTEXT, $h>::zeroed());
            let mut alphabet = Alphabet::<$v>::new(&[]).map_err(|e| anyhow!("{e}"))?;
            model
                .read_bytes(&mut alphabet, $bytes)
                .map_err(|e| anyhow!("{e}"))?;
            let chars = alphabet.chars().to_vec();
            Some(Box::new(LoadedModel {
                model,
                alphabet,
                chars,
            }) as Box<dyn Loaded>)
        }};
    }
    instantiate!(v, usize::from(shape.hidden), read!(bytes))
        .ok_or_else(|| anyhow!("model has {shape}; not built in"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chars(symbols: usize) -> Vec<char> {
        ('\u{100}'..).take(symbols - 1).collect()
    }

    #[test]
    fn every_listed_shape_is_built_and_no_other() {
        for v in CAPACITIES {
            assert_eq!(capacity(v), Some(v));
            for h in HIDDEN_WIDTHS {
                for b in BATCH_SIZES {
                    assert!(
                        training(&chars(v), h, b).is_ok(),
                        "V {v}, hidden {h}, batch {b}"
                    );
                }
                assert!(training(&chars(v), h, 5).is_err());
            }
        }
        assert!(training(&chars(27), 65, 32).is_err());
        let e = training(&chars(129), 64, 32).err().unwrap();
        assert_eq!(e.to_string(), "129 symbols; a model holds at most 128");
    }

    #[test]
    fn the_capacity_is_the_smallest_that_holds_the_symbols() {
        assert_eq!(capacity(2), Some(27));
        assert_eq!(capacity(27), Some(27));
        assert_eq!(capacity(28), Some(32));
        assert_eq!(capacity(33), Some(64));
        assert_eq!(capacity(65), Some(128));
        assert_eq!(capacity(128), Some(128));
        assert_eq!(capacity(129), None);
        for v in CAPACITIES {
            assert_eq!(charmlp_core::padded(v) % 8, 0);
        }
    }
}
