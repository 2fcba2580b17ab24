//! The one place where runtime shapes become const-generic instantiations (as candle's `Map1`
//! turns a dtype into a generic call): the shape menu this binary is built for (vocabulary
//! capacities, embedding widths, contexts, hidden widths and batch sizes, written once, in
//! [`menu!`]); a training run of any of its shapes behind the object-safe [`Training`] trait;
//! and a loaded model of any of them behind [`Loaded`].
//!
//! Only the model's own loops are generic: [`Training::steps`] runs a stretch of steps in one
//! monomorphic loop and hands back their losses, and [`Loaded`] evaluates and samples. Everything
//! that drives them (reporting, the curve, the plot, divergence, progress, files, export) is
//! written once and is not instantiated per shape. The step itself is shared by every batch size
//! of a model shape (`charmlp_core::step` runs one out-of-line copy per model shape, here with
//! `Transposed` copies of the weights), so a batch size costs a small loop, and a model shape one
//! step.
//!
//! The vocabulary capacity V is the smallest built-in one that holds the data's symbols:
//! makemore's 27 (a–z data: exactly the seed's model), then 32 (a–z and a few more: hyphen,
//! apostrophe, space) and 128, whole vectors of the fast path. A model of v < V symbols has its symbols v..V absent (see
//! [`charmlp_core::Params::init_with_symbols`]): it computes exactly what a model of v symbols
//! would, at the cost of V − v unused output rows.
//!
//! Each model shape of the menu (capacity × embedding × context × hidden) costs the release
//! build about 0.85 s and the binary about 50 KB (its step, inference and file code); a batch
//! size costs only a small loop. The menu is sized to keep the build within 1.5× and the binary
//! within 2× of the build before it (see the README's figures).

use crate::MAX_NAME_LEN;
use crate::data::{WordSplits, counted, examples};
use crate::memo::Memo;
use anyhow::{Result, anyhow, bail};
use charmlp_core::bytes::{Shape, peek_shape};
use charmlp_core::safetensors;
use charmlp_core::sample::sample_token;
use charmlp_core::{
    Alphabet, Batch, BnCalibration, CountedExample, Drawing, EmptySplit, Example, InferRows,
    Int8Loss, Int8Model, Int8State, Model, NoMarks, Optim, Optimizer, Params, Requant, Sampling,
    Schedule, Stage, Token, TrainState, Transposed, padded,
};
use rand_xoshiro::Xoshiro256PlusPlus;
use std::cell::RefCell;

/// The shape menu: every list of built-in sizes, written once. `$then!` receives them.
/// A capacity comes with its logits width padded to whole vectors. Exported so that tests can
/// instantiate every shape from the same lists (`tests/gradcheck.rs`).
#[macro_export]
macro_rules! menu {
    ($then:ident!($($args:tt)*)) => {
        $then! {
            $($args)*
            capacities [(27, 32), (32, 32), (128, 128)]
            embed [10, 24]
            context [3, 8]
            hidden [64, 200]
            batch [4, 8, 16, 32, 64, 128, 256]
        }
    };
}

macro_rules! lists {
    (
        capacities [$(($v:literal, $vp:literal)),*]
        embed [$($e:literal),*]
        context [$($t:literal),*]
        hidden [$($h:literal),*]
        batch [$($b:literal),*]
    ) => {
        /// Vocabulary capacities built in, smallest first; the last is the most symbols a model
        /// holds.
        pub const CAPACITIES: &[usize] = &[$($v),*];
        /// Embedding widths built in (`--embed`).
        pub const EMBED_WIDTHS: &[usize] = &[$($e),*];
        /// Context lengths built in (`--context`).
        pub const CONTEXTS: &[usize] = &[$($t),*];
        /// Hidden widths built in (`--hidden`).
        pub const HIDDEN_WIDTHS: &[usize] = &[$($h),*];
        /// Batch sizes built in (`--batch`).
        pub const BATCH_SIZES: &[usize] = &[$($b),*];
    };
}

menu!(lists!());

/// Examples evaluated side by side by `eval`, validation and calibration ([`InferRows`]).
const INFER_ROWS: usize = 32;

/// Names drawn side by side by `sample` and `train` (each with its own generator).
pub const SAMPLE_LANES: usize = 32;

/// The generator of name `index` of a sample stream whose first output is `base`: seeded by
/// SplitMix64 from base + index, so that a name does not depend on how many names are drawn
/// beside it or before it.
pub fn name_rng(base: u64, index: u64) -> Xoshiro256PlusPlus {
    use rand_core::SeedableRng;
    Xoshiro256PlusPlus::seed_from_u64(base.wrapping_add(index))
}

/// Runs `$make!(V, VP, E, T, H, $extra)` for the built-in capacity, embedding, context and
/// hidden width given (`None` for a shape not built in), over the lists of [`menu!`]:
/// `menu!(dispatch!((v, e, t, h) make (extra);))`.
#[macro_export]
macro_rules! dispatch {
    (
        ($v:expr, $e:expr, $t:expr, $h:expr) $make:ident $extra:tt;
        capacities [$(($cv:literal, $cvp:literal)),*]
        embed $es:tt context $ts:tt hidden $hs:tt batch $bs:tt
    ) => {
        match $v {
            $($cv => $crate::dispatch!(@e ($cv, $cvp) ($e, $t, $h) $make $extra; $es $ts $hs),)*
            _ => None,
        }
    };
    (@e ($cv:literal, $cvp:literal) ($e:expr, $t:expr, $h:expr) $make:ident $extra:tt;
     [$($ce:literal),*] $ts:tt $hs:tt) => {
        match $e {
            $($ce => $crate::dispatch!(@t ($cv, $cvp, $ce) ($t, $h) $make $extra; $ts $hs),)*
            _ => None,
        }
    };
    (@t ($cv:literal, $cvp:literal, $ce:literal) ($t:expr, $h:expr) $make:ident $extra:tt;
     [$($ct:literal),*] $hs:tt) => {
        match $t {
            $($ct => $crate::dispatch!(@h ($cv, $cvp, $ce, $ct) ($h) $make $extra; $hs),)*
            _ => None,
        }
    };
    (@h ($cv:literal, $cvp:literal, $ce:literal, $ct:literal) ($h:expr) $make:ident $extra:tt;
     [$($ch:literal),*]) => {
        match $h {
            $($ch => $make!($cv, $cvp, $ce, $ct, $ch, $extra),)*
            _ => None,
        }
    };
}

/// Runs `$make!(B, $extra)` for the built-in batch size given, or gives `None`.
macro_rules! dispatch_batch {
    (($b:expr) $make:ident $extra:tt; capacities $cs:tt embed $es:tt context $ts:tt hidden $hs:tt
     batch [$($cb:literal),*]) => {
        match $b {
            $($cb => $make!($cb, $extra),)*
            _ => None,
        }
    };
}

/// The capacity a vocabulary of `symbols` trains in: the smallest built-in one that holds it.
pub fn capacity(symbols: usize) -> Option<usize> {
    CAPACITIES.iter().copied().find(|&v| v >= symbols)
}

/// The largest vocabulary a model holds.
pub fn most_symbols() -> usize {
    CAPACITIES.iter().copied().max().unwrap_or(0)
}

/// A model's shape as the flags give it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ModelShape {
    pub embed: usize,
    pub context: usize,
    pub hidden: usize,
}

impl ModelShape {
    /// makemore part 4's: embedding 10, context 3, hidden 64.
    pub const DEFAULT: ModelShape = ModelShape {
        embed: charmlp_core::EMBED,
        context: charmlp_core::CONTEXT,
        hidden: charmlp_core::HIDDEN,
    };

    /// Whether every size is on the menu.
    pub fn is_built(self) -> bool {
        EMBED_WIDTHS.contains(&self.embed)
            && CONTEXTS.contains(&self.context)
            && HIDDEN_WIDTHS.contains(&self.hidden)
    }
}

/// The menu as messages state it: `embedding 10 or 24; context 3 or 8; hidden 64 or 200`.
pub fn menu_text() -> String {
    let list = |xs: &[usize]| {
        let xs: Vec<String> = xs.iter().map(usize::to_string).collect();
        match xs.split_last() {
            Some((last, [])) => last.clone(),
            Some((last, rest)) => format!("{} or {last}", rest.join(", ")),
            None => String::new(),
        }
    };
    format!(
        "embedding {}; context {}; hidden {}",
        list(EMBED_WIDTHS),
        list(CONTEXTS),
        list(HIDDEN_WIDTHS)
    )
}

/// The alphabet of `chars` in a structure of capacity V.
fn alphabet<const V: usize>(chars: &[char]) -> Result<Alphabet<V>> {
    Alphabet::new(chars).map_err(|e| anyhow!("{e}"))
}

/// A value at a cache-line boundary (64 bytes): the f32x8 loads of the step then never split a
/// line, wherever the allocator would have put it (a misaligned `TrainState` made a step 7%
/// slower).
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

/// A training run of one built-in shape on its data, as the shape-free driver sees it.
pub trait Training {
    /// Scalars in the seven parameter tensors of the present symbols.
    fn param_count(&self) -> usize;

    /// Fresh parameters (makemore's initialisation of the alphabet's symbols) from `rng`.
    fn init(&mut self, rng: &mut Xoshiro256PlusPlus);

    /// Runs `losses.len()` steps from step `from` (batch draw from the training split, forward,
    /// fused backward, the optimizer's update at the schedule's rate), each step's batch loss
    /// into `losses`.
    fn steps(
        &mut self,
        rng: &mut Xoshiro256PlusPlus,
        schedule: &Schedule,
        from: u64,
        losses: &mut [f32],
    ) -> Result<(), EmptySplit>;

    /// Runs `steps` SGD steps at rate `lr` as [`Training::steps`] does, timing each stage
    /// (`charmlp bench --stages`): the batch draw, then [`Stage::ALL`], summed over the steps.
    fn stage_times(
        &mut self,
        rng: &mut Xoshiro256PlusPlus,
        lr: f32,
        steps: u64,
    ) -> Result<StageTimes, EmptySplit>;

    /// The first parameter tensor holding a NaN or an infinity among the present symbols' rows.
    fn non_finite_tensor(&self) -> Option<&'static str>;

    /// Mean loss over the validation split (or the examples [`Training::keep_val_examples`]
    /// kept) with the running batch-norm statistics.
    fn val_loss(&mut self) -> Option<f64>;

    /// Keeps `n` of the validation split's examples, drawn without replacement with `rng`, for
    /// [`Training::val_loss`] (a fixed subset: every evaluation sees the same examples).
    /// Returns how many the split has.
    fn keep_val_examples(&mut self, n: usize, rng: &mut Xoshiro256PlusPlus) -> usize;

    /// Replaces the batch-norm statistics with those of the whole training split.
    fn calibrate(&mut self) -> Result<()>;

    /// A hidden unit whose batch-norm mean or variance is not finite: (unit, mean, var).
    fn non_finite_statistic(&self) -> Option<(usize, f32, f32)>;

    /// The model file's bytes (safetensors), alphabet included, with `extra` metadata.
    fn model_bytes(&self, extra: &[(&str, &str)]) -> Vec<u8>;

    /// The optimizer's state for a checkpoint: updates taken, and its buffers flattened
    /// (`m`, then `v` for AdamW; none for plain SGD), every symbol of the capacity.
    fn optim_state(&self) -> (u64, Vec<(&'static str, Vec<f32>)>);

    /// Puts back a checkpoint's model (a model file's bytes, read with every check) and
    /// optimizer state, as [`Training::model_bytes`] and [`Training::optim_state`] gave them:
    /// the run then continues exactly as it would have.
    fn restore(&mut self, model: &[u8], updates: u64, buffers: &[(String, Vec<f32>)])
    -> Result<()>;
}

/// Time spent in the batch draw and in each [`Stage`] of a step, summed over steps.
#[derive(Clone, Debug, Default)]
pub struct StageTimes {
    pub draw: std::time::Duration,
    pub stages: [std::time::Duration; Stage::ALL.len()],
}

/// What a batch size adds to a training run: its activations and batch, and the step loop.
/// The only code instantiated per batch size (the step it calls is one per model shape).
trait Stepper<const V: usize, const E: usize, const T: usize, const H: usize> {
    #[allow(clippy::too_many_arguments)]
    fn steps(
        &mut self,
        model: &mut Model<V, E, T, H>,
        grads: &mut Params<V, E, T, H>,
        optim: Option<&mut Optim<V, E, T, H>>,
        train: &[Example<T>],
        rng: &mut Xoshiro256PlusPlus,
        schedule: &Schedule,
        from: u64,
        losses: &mut [f32],
    ) -> Result<(), EmptySplit>;

    /// [`Training::stage_times`] for this batch size.
    fn stage_times(
        &mut self,
        model: &mut Model<V, E, T, H>,
        grads: &mut Params<V, E, T, H>,
        train: &[Example<T>],
        rng: &mut Xoshiro256PlusPlus,
        lr: f32,
        steps: u64,
    ) -> Result<StageTimes, EmptySplit>;
}

struct BatchRun<const VP: usize, const TEP: usize, const T: usize, const H: usize, const B: usize> {
    state: Box<Aligned<TrainState<VP, H, B>>>,
    copies: Box<Aligned<Transposed<VP, TEP, H>>>,
    batch: Box<Batch<T, B>>,
}

impl<const VP: usize, const TEP: usize, const T: usize, const H: usize, const B: usize>
    BatchRun<VP, TEP, T, H, B>
{
    fn new() -> Self {
        BatchRun {
            state: Box::new(Aligned(TrainState::new())),
            copies: Box::new(Aligned(Transposed::new())),
            batch: Box::new(Batch::new()),
        }
    }
}

impl<
    const V: usize,
    const VP: usize,
    const E: usize,
    const T: usize,
    const H: usize,
    const B: usize,
    const TEP: usize,
> Stepper<V, E, T, H> for BatchRun<VP, TEP, T, H, B>
{
    fn steps(
        &mut self,
        model: &mut Model<V, E, T, H>,
        grads: &mut Params<V, E, T, H>,
        optim: Option<&mut Optim<V, E, T, H>>,
        train: &[Example<T>],
        rng: &mut Xoshiro256PlusPlus,
        schedule: &Schedule,
        from: u64,
        losses: &mut [f32],
    ) -> Result<(), EmptySplit> {
        let mut optim = optim;
        for (step, loss) in (from..).zip(losses.iter_mut()) {
            self.batch.sample(rng, train)?;
            let lr = schedule.at(step);
            *loss = charmlp_core::step(
                model,
                grads,
                optim.as_deref_mut(),
                &mut self.state,
                &mut **self.copies,
                &self.batch,
                lr,
                &mut NoMarks,
            );
        }
        Ok(())
    }

    fn stage_times(
        &mut self,
        model: &mut Model<V, E, T, H>,
        grads: &mut Params<V, E, T, H>,
        train: &[Example<T>],
        rng: &mut Xoshiro256PlusPlus,
        lr: f32,
        steps: u64,
    ) -> Result<StageTimes, EmptySplit> {
        use std::time::Instant;
        let mut times = StageTimes::default();
        for _ in 0..steps {
            let start = Instant::now();
            self.batch.sample(rng, train)?;
            let mut last = Instant::now();
            times.draw += last - start;
            let mut marks = |stage: Stage| {
                let now = Instant::now();
                if let Some(i) = Stage::ALL.iter().position(|&s| s == stage) {
                    times.stages[i] += now - last;
                }
                last = now;
            };
            let (state, copies) = (&mut self.state, &mut **self.copies);
            charmlp_core::step(
                model,
                grads,
                None,
                state,
                copies,
                &self.batch,
                lr,
                &mut marks,
            );
        }
        Ok(times)
    }
}

/// Everything one training run keeps, on the heap.
struct Run<const V: usize, const VP: usize, const E: usize, const T: usize, const H: usize> {
    model: Box<Aligned<Model<V, E, T, H>>>,
    grads: Box<Aligned<Params<V, E, T, H>>>,
    /// The optimizer's state; `None` for plain SGD, which keeps none.
    optim: Option<Box<Aligned<Optim<V, E, T, H>>>>,
    stepper: Box<dyn Stepper<V, E, T, H>>,
    infer: Box<InferRows<V, VP, H, INFER_ROWS>>,
    alphabet: Alphabet<V>,
    train: Vec<Example<T>>,
    val: Vec<Example<T>>,
    /// `val` as distinct examples with counts, what [`Training::val_loss`] evaluates.
    val_counted: Vec<CountedExample<T>>,
}

impl<const V: usize, const VP: usize, const E: usize, const T: usize, const H: usize>
    Run<V, VP, E, T, H>
{
    fn new(
        chars: &[char],
        splits: &WordSplits,
        optimizer: Optimizer,
        stepper: Box<dyn Stepper<V, E, T, H>>,
    ) -> Result<Self> {
        Ok(Run {
            model: Box::new(Aligned(Model::zeroed())),
            grads: Box::new(Aligned(Params::zeroed())),
            optim: (optimizer != Optimizer::Sgd).then(|| Box::new(Aligned(Optim::new(optimizer)))),
            stepper,
            infer: Box::new(InferRows::new()),
            alphabet: alphabet(chars)?,
            train: examples(&splits[0]),
            val_counted: counted(&examples(&splits[1])),
            val: examples(&splits[1]),
        })
    }
}

impl<const V: usize, const VP: usize, const E: usize, const T: usize, const H: usize> Training
    for Run<V, VP, E, T, H>
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
        schedule: &Schedule,
        from: u64,
        losses: &mut [f32],
    ) -> Result<(), EmptySplit> {
        self.stepper.steps(
            &mut self.model,
            &mut self.grads,
            self.optim.as_deref_mut().map(|o| &mut o.0),
            &self.train,
            rng,
            schedule,
            from,
            losses,
        )
    }

    fn stage_times(
        &mut self,
        rng: &mut Xoshiro256PlusPlus,
        lr: f32,
        steps: u64,
    ) -> Result<StageTimes, EmptySplit> {
        self.stepper.stage_times(
            &mut self.model,
            &mut self.grads,
            &self.train,
            rng,
            lr,
            steps,
        )
    }

    fn non_finite_tensor(&self) -> Option<&'static str> {
        let tensors = self.model.file_tensors(self.alphabet.len());
        tensors
            .iter()
            .take(7)
            .find(|(_, t)| t.iter().any(|x| !x.is_finite()))
            .map(|(name, _)| *name)
    }

    fn val_loss(&mut self) -> Option<f64> {
        self.model.loss_counted(&self.val_counted, &mut self.infer)
    }

    fn keep_val_examples(&mut self, n: usize, rng: &mut Xoshiro256PlusPlus) -> usize {
        let total = self.val.len();
        // A partial Fisher–Yates shuffle: the first n places hold n distinct examples.
        for i in 0..n.min(total) {
            let j = i + crate::below(rng, (total - i) as u64) as usize;
            self.val.swap(i, j);
        }
        self.val.truncate(n);
        self.val_counted = counted(&self.val);
        total
    }

    fn calibrate(&mut self) -> Result<()> {
        let mut acc = Box::new(BnCalibration::new());
        self.model
            .calibrate_counted(&counted(&self.train), &mut acc, &mut self.infer)?;
        Ok(())
    }

    fn non_finite_statistic(&self) -> Option<(usize, f32, f32)> {
        let bn = &self.model.bn;
        (0..H)
            .find(|&j| !(bn.mean[j].is_finite() && bn.var[j].is_finite()))
            .map(|j| (j, bn.mean[j], bn.var[j]))
    }

    fn model_bytes(&self, extra: &[(&str, &str)]) -> Vec<u8> {
        write_safetensors(&self.model, &self.alphabet, extra)
    }

    fn optim_state(&self) -> (u64, Vec<(&'static str, Vec<f32>)>) {
        let Some(optim) = &self.optim else {
            return (0, Vec::new());
        };
        let flat = |p: &Params<V, E, T, H>| p.tensors().concat();
        let mut buffers = vec![("m", flat(&optim.m))];
        if optim.rule.buffers() == 2 {
            buffers.push(("v", flat(&optim.v)));
        }
        (optim.updates, buffers)
    }

    fn restore(
        &mut self,
        model: &[u8],
        updates: u64,
        buffers: &[(String, Vec<f32>)],
    ) -> Result<()> {
        let mut alphabet = self.alphabet;
        let mut restored = Box::new(Aligned(Model::zeroed()));
        restored
            .read_safetensors(&mut alphabet, model, None)
            .map_err(|e| anyhow!("its model: {e}"))?;
        if alphabet.chars() != self.alphabet.chars() {
            bail!(
                "its model's alphabet, {:?}, is not the one these flags read from the data, \
                 {:?}: resume with the --data, --alphabet and --lowercase the run started with",
                crate::words::shown_chars(alphabet.chars()),
                crate::words::shown_chars(self.alphabet.chars())
            );
        }
        let wanted: &[&str] = match &self.optim {
            None => &[],
            Some(o) if o.rule.buffers() == 2 => &["m", "v"],
            Some(_) => &["m"],
        };
        let names: Vec<&str> = buffers.iter().map(|(n, _)| n.as_str()).collect();
        if names != wanted {
            bail!("it holds optimizer buffers {names:?}; this run's optimizer keeps {wanted:?}");
        }
        for (name, values) in buffers {
            if values.len() != Params::<V, E, T, H>::COUNT {
                bail!(
                    "its optimizer buffer {name} holds {} numbers; this run's holds {}",
                    values.len(),
                    Params::<V, E, T, H>::COUNT
                );
            }
            if values.iter().any(|x| !x.is_finite())
                || (name == "v" && values.iter().any(|&x| x < 0.0))
            {
                bail!(
                    "its optimizer buffer {name} holds NaN, infinity or a negative second moment"
                );
            }
        }
        self.model = restored;
        if let Some(optim) = &mut self.optim {
            optim.updates = updates;
            let Optim { m, v, .. } = &mut optim.0;
            for ((_, values), buffer) in buffers.iter().zip([m, v]) {
                let mut rest = &values[..];
                for t in buffer.tensors_mut() {
                    let (head, tail) = rest.split_at(t.len());
                    t.copy_from_slice(head);
                    rest = tail;
                }
            }
        }
        Ok(())
    }
}

/// A training run of `shape` for the alphabet `chars` (the boundary not included) with batch
/// size `batch` and update rule `optimizer`, on `splits`, if the shape is built in.
pub fn training(
    shape: ModelShape,
    chars: &[char],
    batch: usize,
    optimizer: Optimizer,
    splits: &WordSplits,
) -> Result<Box<dyn Training>> {
    let symbols = chars.len() + 1;
    let Some(v) = capacity(symbols) else {
        bail!(
            "{symbols} symbols; a model holds at most {}",
            most_symbols()
        );
    };
    macro_rules! stepper {
        ($b:literal, ($v:literal, $vp:literal, $e:literal, $t:literal, $h:literal)) => {
            Some(
                Box::new(BatchRun::<$vp, { padded($t * $e) }, $t, $h, $b>::new())
                    as Box<dyn Stepper<$v, $e, $t, $h>>,
            )
        };
    }
    macro_rules! run {
        ($v:literal, $vp:literal, $e:literal, $t:literal, $h:literal, ()) => {
            menu!(dispatch_batch!((batch) stepper ($v, $vp, $e, $t, $h);)).map(|stepper| {
                Run::<$v, $vp, $e, $t, $h>::new(chars, splits, optimizer, stepper)
                    .map(|r| Box::new(r) as Box<dyn Training>)
            })
        };
    }
    let ModelShape {
        embed,
        context,
        hidden,
    } = shape;
    menu!(dispatch!((v, embed, context, hidden) run ();)).unwrap_or_else(|| {
        Err(anyhow!(
            "--embed {embed} --context {context} --hidden {hidden} --batch {batch}: not built in; \
             {}; batch {}",
            menu_text(),
            BATCH_SIZES
                .iter()
                .map(usize::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        ))
    })
}

/// A loaded model of one built-in shape, as the shape-free commands see it.
pub trait Loaded {
    /// The alphabet's characters (token i + 1 is `chars()[i]`).
    fn chars(&self) -> &[char];

    /// The file's shape: symbols, embedding, context, hidden.
    fn shape(&self) -> Shape;

    /// Mean loss over the examples of `words` (`None` for none), with the model's statistics.
    fn loss(&self, words: &[Vec<Token>]) -> Option<f64>;

    /// Names `first..first + count` of the sample stream whose generators [`name_rng`] derives
    /// from `base`: each name depends on its index alone, so names are drawn
    /// [`SAMPLE_LANES`] at a time, with one batched forward per round for the contexts whose
    /// distributions the model has not yet computed ([`Memo`], kept across calls).
    fn sample_names(
        &self,
        base: u64,
        first: u64,
        count: usize,
        how: &Sampling<'_>,
    ) -> Vec<heapless::String<MAX_NAME_LEN>>;

    /// The nine tensors in file order, with the present symbols' rows: name and values.
    fn tensors(&self) -> [(&'static str, &[f32]); 9];

    /// The model quantised to int8 ([`Int8Model::quantize`]).
    fn quantized(&self) -> Box<dyn Quantized>;
}

/// A loaded model quantised to int8, as the shape-free commands see it: integer inference
/// ([`Int8Model`]), exactly what a device computes.
pub trait Quantized {
    /// The loss over the examples of `words`, in fixed point (`n` 0 for none).
    fn loss(&self, words: &[Vec<Token>]) -> Int8Loss;

    /// Names `first..first + count` of the sample stream whose generators [`name_rng`] derives
    /// from `base`, at temperature 1 ([`Int8Model::sample_name`]).
    fn sample_names(
        &self,
        base: u64,
        first: u64,
        count: usize,
    ) -> Vec<heapless::String<MAX_NAME_LEN>>;

    /// The model's fields in [`Int8Model`]'s order, with the present symbols' rows: field name,
    /// dimensions, values.
    fn arrays(&self) -> Vec<(&'static str, Vec<usize>, IntValues)>;
}

/// The values of one of [`Int8Model`]'s arrays.
#[derive(Clone, Debug, PartialEq)]
pub enum IntValues {
    I8(Vec<i8>),
    I32(Vec<i32>),
    Requant(Vec<Requant>),
}

struct QuantizedModel<const V: usize, const E: usize, const T: usize, const H: usize> {
    model: Box<Int8Model<V, E, T, H>>,
    alphabet: Alphabet<V>,
}

impl<const V: usize, const E: usize, const T: usize, const H: usize> Quantized
    for QuantizedModel<V, E, T, H>
{
    fn loss(&self, words: &[Vec<Token>]) -> Int8Loss {
        self.model
            .loss_counted(&counted(&examples::<T>(words)), &mut Int8State::new())
    }

    fn sample_names(
        &self,
        base: u64,
        first: u64,
        count: usize,
    ) -> Vec<heapless::String<MAX_NAME_LEN>> {
        let mut state = Int8State::new();
        (first..first + count as u64)
            .map(|i| {
                self.model
                    .sample_name(&mut name_rng(base, i), &mut state, &self.alphabet)
            })
            .collect()
    }

    fn arrays(&self) -> Vec<(&'static str, Vec<usize>, IntValues)> {
        let m = &*self.model;
        let n = m.symbols();
        vec![
            (
                "c",
                vec![n, E],
                IntValues::I8(m.c[..n].as_flattened().to_vec()),
            ),
            (
                "w1",
                vec![T, E, H],
                IntValues::I8(m.w1.as_flattened().as_flattened().to_vec()),
            ),
            ("b1", vec![H], IntValues::I32(m.b1.to_vec())),
            ("to_tanh", vec![H], IntValues::Requant(m.to_tanh.to_vec())),
            ("tanh", vec![256], IntValues::I8(m.tanh.to_vec())),
            (
                "w2t",
                vec![n, H],
                IntValues::I8(m.w2t[..n].as_flattened().to_vec()),
            ),
            ("b2", vec![n], IntValues::I32(m.b2[..n].to_vec())),
            (
                "to_logit",
                vec![n],
                IntValues::Requant(m.to_logit[..n].to_vec()),
            ),
        ]
    }
}

struct LoadedModel<const V: usize, const VP: usize, const E: usize, const T: usize, const H: usize>
{
    model: Box<Model<V, E, T, H>>,
    alphabet: Alphabet<V>,
    /// Distributions `sample_names` computed, kept across its calls (blocks of names).
    memo: RefCell<Memo<V, T>>,
}

impl<const V: usize, const VP: usize, const E: usize, const T: usize, const H: usize> Loaded
    for LoadedModel<V, VP, E, T, H>
{
    fn chars(&self) -> &[char] {
        self.alphabet.chars()
    }

    fn shape(&self) -> Shape {
        Model::<V, E, T, H>::shape(self.alphabet.len())
    }

    fn loss(&self, words: &[Vec<Token>]) -> Option<f64> {
        let mut rows = Box::new(InferRows::<V, VP, H, INFER_ROWS>::new());
        self.model
            .loss_counted(&counted(&examples::<T>(words)), &mut rows)
    }

    fn sample_names(
        &self,
        base: u64,
        first: u64,
        count: usize,
        how: &Sampling<'_>,
    ) -> Vec<heapless::String<MAX_NAME_LEN>> {
        let mut names = vec![heapless::String::new(); count];
        let mut rows = Box::new(InferRows::<V, VP, H, SAMPLE_LANES>::new());
        let mut memo = self.memo.borrow_mut();
        memo.settle(how.temperature, how.top_k);
        // The names in progress: index, drawing, generator.
        let new_lane = |i: usize| {
            (
                i,
                Drawing::<T, MAX_NAME_LEN>::new(),
                name_rng(base, first + i as u64),
            )
        };
        let mut lanes: Vec<_> = (0..count.min(SAMPLE_LANES)).map(new_lane).collect();
        let mut next = lanes.len();
        loop {
            // Each name takes its prefix's characters; a finished one gives its lane to the next
            // name, or, with none left, the lane goes (order does not matter: a name is its own).
            let mut lane = 0;
            while lane < lanes.len() {
                let (i, drawing, _) = &mut lanes[lane];
                let mut open = drawing.is_open(how);
                while open {
                    match drawing.next_from_prefix(how) {
                        Some(given) => drawing.take(given, &self.alphabet),
                        None => break,
                    }
                    open = drawing.is_open(how);
                }
                if open {
                    lane += 1;
                    continue;
                }
                names[*i] = std::mem::take(&mut drawing.name);
                if next < count {
                    lanes[lane] = new_lane(next);
                    next += 1;
                } else {
                    lanes.swap_remove(lane);
                }
            }
            if lanes.is_empty() {
                return names;
            }
            memo.judge();
            // The lanes' contexts not yet in the memo, each once, side by side.
            let mut fresh = [[Token::BOUNDARY; T]; SAMPLE_LANES];
            let mut n = 0;
            for (_, drawing, _) in &lanes {
                let c = drawing.context;
                if !memo.contains(&c) && !fresh[..n].contains(&c) {
                    fresh[n] = c;
                    n += 1;
                }
            }
            if n > 0 {
                let fresh = &fresh[..n];
                self.model
                    .probs_rows(fresh, how.temperature, how.top_k, &mut rows);
                for (r, &c) in fresh.iter().enumerate() {
                    memo.insert(c, rows.row(r));
                }
            }
            for (_, drawing, rng) in lanes.iter_mut() {
                let c = drawing.context;
                let token = match memo.get(&c) {
                    Some(probs) => sample_token(rng, probs),
                    // A full memo: the row computed this round.
                    None => {
                        let r = fresh[..n].iter().position(|f| *f == c);
                        sample_token(rng, rows.row(r.expect("computed above")))
                    }
                };
                drawing.take(token, &self.alphabet);
            }
        }
    }

    fn tensors(&self) -> [(&'static str, &[f32]); 9] {
        self.model.file_tensors(self.alphabet.len())
    }

    fn quantized(&self) -> Box<dyn Quantized> {
        Box::new(QuantizedModel {
            model: Box::new(Int8Model::quantize(&self.model, self.alphabet.len())),
            alphabet: self.alphabet,
        })
    }
}

/// `model` as a safetensors file with `extra` metadata.
pub(crate) fn write_safetensors<const V: usize, const E: usize, const T: usize, const H: usize>(
    model: &Model<V, E, T, H>,
    alphabet: &Alphabet<V>,
    extra: &[(&str, &str)],
) -> Vec<u8> {
    let mut bytes = vec![0; 8 + safetensors::HEADER_WRITE_MAX + Model::<V, E, T, H>::MAX_BYTES];
    // The buffer holds the largest header and more than the tensors: only the caller's
    // metadata could overflow it, and the host's is a few short strings.
    let len = model
        .write_safetensors(alphabet, extra, &mut bytes)
        .expect("a model fits a buffer of the largest header and all its floats");
    bytes.truncate(len);
    bytes
}

/// Bytes of the largest model file this build reads: the largest menu shape's with every
/// symbol present and the largest header read.
pub fn max_model_bytes() -> usize {
    max_cmlp_bytes().saturating_add(8 + safetensors::HEADER_MAX)
}

/// Bytes of the largest `.cmlp` file this build reads.
fn max_cmlp_bytes() -> usize {
    let (v, e, t, h) = (
        most_symbols(),
        EMBED_WIDTHS.iter().max(),
        CONTEXTS.iter().max(),
        HIDDEN_WIDTHS.iter().max(),
    );
    let dim = |x: Option<&usize>| x.map_or(0, |&x| x as u16);
    let shape = Shape {
        vocab: v as u16,
        embed: dim(e),
        context: dim(t),
        hidden: dim(h),
    };
    shape.file_len().unwrap_or(usize::MAX)
}

/// A model from a file's bytes, of whichever built-in shape they hold, in the smallest capacity
/// that holds its symbols; the loader's checks (checksum, alphabet, finite values, variances,
/// activation bounds) are all applied.
///
/// A safetensors file without charmlp's metadata takes `default_alphabet` (the characters of
/// tokens 1..), or makemore's if it has 27 symbols; a legacy `.cmlp` file carries its own.
pub fn load(bytes: &[u8], default_alphabet: Option<&[char]>) -> Result<Box<dyn Loaded>> {
    let cmlp = safetensors::is_cmlp(bytes);
    if !cmlp && !safetensors::looks_like_safetensors(bytes) {
        bail!(
            "not a model file: neither safetensors (8-byte header length, then a JSON header) \
             nor an earlier version's .cmlp (starting with CMLP)"
        );
    }
    // A given alphabet where the file has its own must be that one: ignoring another, or
    // letting it override the file's, would give tokens other characters than either meant.
    let own_alphabet = cmlp || safetensors::parse(bytes).is_ok_and(|h| h.metadata.is_charmlp());
    let given = default_alphabet.filter(|_| !own_alphabet);
    let shape = if cmlp {
        peek_shape(bytes)
    } else {
        safetensors::peek_shape(bytes)
    }
    .map_err(|e| anyhow!("{e}"))?;
    let flags = ModelShape {
        embed: usize::from(shape.embed),
        context: usize::from(shape.context),
        hidden: usize::from(shape.hidden),
    };
    if !flags.is_built() {
        bail!("model has {shape}; this build reads {}", menu_text());
    }
    let symbols = usize::from(shape.vocab);
    let Some(v) = capacity(symbols) else {
        bail!(
            "model has {symbols} symbols; this build reads at most {}",
            most_symbols()
        );
    };
    macro_rules! read {
        ($v:literal, $vp:literal, $e:literal, $t:literal, $h:literal, ()) => {{
            let mut model = Box::new(Model::<$v, $e, $t, $h>::zeroed());
            let mut alphabet = alphabet::<$v>(&[])?;
            if cmlp {
                model.read_bytes(&mut alphabet, bytes)
            } else {
                model.read_safetensors(&mut alphabet, bytes, given)
            }
            .map_err(|e| anyhow!("{e}"))?;
            let loaded = LoadedModel::<$v, $vp, $e, $t, $h> {
                model,
                alphabet,
                memo: RefCell::new(Memo::new()),
            };
            Some(Box::new(loaded) as Box<dyn Loaded>)
        }};
    }
    let loaded = menu!(dispatch!((v, flags.embed, flags.context, flags.hidden) read ();))
        .ok_or_else(|| anyhow!("model has {shape}; not built in"))?;
    if let Some(chars) = default_alphabet
        && own_alphabet
        && chars != loaded.chars()
    {
        bail!(
            "the model file has its own alphabet, {:?}, and --alphabet gives another; \
             --alphabet is for a safetensors file saved without charmlp's metadata (from \
             PyTorch, say): leave it out",
            crate::words::shown_chars(loaded.chars())
        );
    }
    Ok(loaded)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chars(symbols: usize) -> Vec<char> {
        ('\u{100}'..).take(symbols - 1).collect()
    }

    /// Ten words of every character of `chars`, split 8/1/1.
    fn splits(chars: &[char]) -> WordSplits {
        let word: Vec<Token> = (1..=chars.len())
            .map(|i| Token::wrapping(i as u8, 128))
            .collect();
        let words = vec![word; 10];
        [
            words[..8].to_vec(),
            words[8..9].to_vec(),
            words[9..].to_vec(),
        ]
    }

    #[test]
    fn every_listed_shape_is_built_and_no_other() {
        for &v in CAPACITIES {
            let c = chars(v);
            let data = splits(&c);
            for &embed in EMBED_WIDTHS {
                for &context in CONTEXTS {
                    for &hidden in HIDDEN_WIDTHS {
                        let shape = ModelShape {
                            embed,
                            context,
                            hidden,
                        };
                        for &b in BATCH_SIZES {
                            assert!(
                                training(shape, &c, b, Optimizer::Sgd, &data).is_ok(),
                                "{shape:?} V {v} B {b}"
                            );
                        }
                        assert!(training(shape, &c, 5, Optimizer::Sgd, &data).is_err());
                    }
                }
            }
        }
        let data = splits(&chars(27));
        let odd = ModelShape {
            hidden: 65,
            ..ModelShape::DEFAULT
        };
        let e = training(odd, &chars(27), 32, Optimizer::Sgd, &data)
            .err()
            .unwrap();
        assert!(
            e.to_string().contains(
                "not built in; embedding 10 or 24; context 3 or 8; hidden 64 or 200; batch 4,"
            ),
            "{e}"
        );
        let e = training(ModelShape::DEFAULT, &chars(129), 32, Optimizer::Sgd, &data)
            .err()
            .unwrap();
        assert_eq!(e.to_string(), "129 symbols; a model holds at most 128");
    }

    /// Every shape of the menu, in every capacity, trains: 300 steps on the built-in names (with
    /// an alphabet of a–z and characters the data lacks, up to the capacity) take the validation
    /// loss down by more than half a nat from the initialisation's (about ln V: 3.3 to 4.9).
    #[test]
    fn every_menu_shape_trains_a_few_hundred_steps() {
        use crate::words::Rules;
        let words = crate::data::read_words(None, &Rules::default()).unwrap();
        let splits = crate::data::split_words(words.words, 1).unwrap();
        let schedule = Schedule::MAKEMORE;
        let mut losses = vec![0.0; 300];
        for &v in CAPACITIES {
            // a–z, then other characters up to the capacity (none of them in the data).
            let chars: Vec<char> = ('a'..='z').chain('\u{100}'..).take(v - 1).collect();
            for &embed in EMBED_WIDTHS {
                for &context in CONTEXTS {
                    for &hidden in HIDDEN_WIDTHS {
                        let shape = ModelShape {
                            embed,
                            context,
                            hidden,
                        };
                        let mut run = training(shape, &chars, 32, Optimizer::Sgd, &splits).unwrap();
                        run.init(&mut crate::stream(3, crate::Stream::Init));
                        let before = run.val_loss().unwrap();
                        let mut rng = crate::stream(3, crate::Stream::Batches);
                        run.steps(&mut rng, &schedule, 0, &mut losses).unwrap();
                        let after = run.val_loss().unwrap();
                        assert!(run.non_finite_tensor().is_none(), "{shape:?} V {v}");
                        assert!(
                            after < before - 0.5,
                            "{shape:?} V {v}: val loss {before} → {after}"
                        );
                    }
                }
            }
        }
    }

    /// Names drawn side by side with a memory of distributions of any size (none; three rows,
    /// full within the first round; the default) are those drawn one at a time with each
    /// name's generator: across calls (blocks), and as the temperature, top-k and prefix
    /// change (the memory is forgotten when the temperature or top-k do).
    #[test]
    fn names_are_the_same_with_any_memory() {
        use charmlp_core::{InferState, Temperature};
        let mut model = Box::new(Model::<27, 10, 3, 64>::zeroed());
        // Fresh parameters: nearly uniform distributions, so names visit many contexts.
        model.init(&mut crate::stream(5, crate::Stream::Init));
        let prefix = [Token::wrapping(1, 27), Token::wrapping(13, 27)];
        let hows = [
            Sampling::PLAIN,
            Sampling {
                temperature: Temperature::new(0.7).unwrap(),
                top_k: Some(5),
                ..Sampling::PLAIN
            },
            Sampling {
                temperature: Temperature::GREEDY,
                prefix: &prefix,
                ..Sampling::PLAIN
            },
            Sampling {
                temperature: Temperature::new(1.5).unwrap(),
                max_len: 4,
                ..Sampling::PLAIN
            },
        ];
        let base = 77;
        // No memory (which never finds a row, so gives up after its trial), three rows, and
        // unbounded (which pays here, so stays).
        for max_rows in [0, 3, usize::MAX] {
            let loaded = LoadedModel::<27, 32, 10, 3, 64> {
                model: model.clone(),
                alphabet: Alphabet::MAKEMORE,
                memo: RefCell::new(Memo::with_max_rows(max_rows)),
            };
            for (h, how) in hows.iter().enumerate() {
                let mut names = loaded.sample_names(base, 0, 50, how);
                names.extend(loaded.sample_names(base, 50, 150, how));
                let mut state = InferState::new();
                for (i, name) in names.iter().enumerate() {
                    let mut rng = name_rng(base, i as u64);
                    let alone: heapless::String<MAX_NAME_LEN> =
                        model.sample_name_with(&mut rng, how, &mut state, &Alphabet::MAKEMORE);
                    assert_eq!(*name, alone, "memory of {max_rows} rows, name {i}");
                }
                // The plain names, long on fresh parameters, go past the trial's contexts.
                let off = loaded.memo.borrow().is_off();
                assert!(off || max_rows != 0 || h > 0, "an empty memo gives up");
                assert!(!off || max_rows != usize::MAX, "a memo that pays stays");
            }
        }
    }

    #[test]
    fn the_capacity_is_the_smallest_that_holds_the_symbols() {
        assert_eq!(capacity(2), Some(27));
        assert_eq!(capacity(27), Some(27));
        assert_eq!(capacity(28), Some(32));
        assert_eq!(capacity(33), Some(128));
        assert_eq!(capacity(128), Some(128));
        assert_eq!(capacity(129), None);
        assert_eq!(most_symbols(), charmlp_core::MAX_SYMBOLS);
    }

    #[test]
    fn the_largest_file_is_the_largest_shapes() {
        let largest = Model::<128, 24, 8, 200>::MAX_BYTES;
        assert_eq!(max_model_bytes(), largest + 8 + safetensors::HEADER_MAX);
    }
}
