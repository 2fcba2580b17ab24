//! The one place where runtime shape flags become const-generic instantiations (as candle's
//! `Map1` turns a dtype into a generic call): the hidden widths and batch sizes this binary is
//! built for, and a training run of any of them behind the object-safe [`Training`] trait.
//!
//! Only the step loop is generic: [`Training::steps`] runs a stretch of steps in one
//! monomorphic loop and hands back their losses. Everything that drives it (reporting, the
//! curve, the plot, divergence, progress, files) is written once, in `train.rs`, and is not
//! instantiated per shape. A width or a batch size is added in one place: the lists in
//! [`training`] (and, for a width, `HIDDEN_WIDTHS` and the model file's `AnyModel`).

use crate::modelfile::to_bytes;
use charmlp_core::{
    Batch, BnCalibration, CONTEXT, EMBED, EmptySplit, Example, InferState, Model, Params,
    StepDecay, TrainState, train_step,
};
use rand_xoshiro::Xoshiro256PlusPlus;

/// Hidden widths built in, for messages and flag parsing.
pub const HIDDEN_WIDTHS: [usize; 2] = [charmlp_core::HIDDEN, charmlp_core::HIDDEN_WIDE];

/// Batch sizes built in.
pub const BATCH_SIZES: [usize; 7] = [4, 8, 16, 32, 64, 128, 256];

/// A training run of one built-in shape, as the shape-free driver sees it.
pub trait Training {
    /// Scalars in the seven parameter tensors.
    fn param_count(&self) -> usize;

    /// Fresh parameters (makemore's initialisation) from `rng`.
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

    /// The first parameter tensor holding a NaN or an infinity, if any.
    fn non_finite_tensor(&self) -> Option<&'static str>;

    /// Mean loss over `examples` with the running batch-norm statistics, as they stand.
    fn loss(&mut self, examples: &[Example<CONTEXT>]) -> Option<f64>;

    /// Replaces the batch-norm statistics with those of the whole training split.
    fn calibrate(&mut self, train: &[Example<CONTEXT>]) -> anyhow::Result<()>;

    /// A hidden unit whose batch-norm mean or variance is not finite: (unit, mean, var).
    fn non_finite_statistic(&self) -> Option<(usize, f32, f32)>;

    /// The model file's bytes.
    fn model_bytes(&self) -> Vec<u8>;
}

/// Everything one training run keeps, on the heap.
struct Run<const H: usize, const B: usize> {
    model: Box<Model<EMBED, CONTEXT, H>>,
    grads: Box<Params<EMBED, CONTEXT, H>>,
    state: Box<TrainState<H, B>>,
    batch: Box<Batch<CONTEXT, B>>,
    infer: Box<InferState<H>>,
}

impl<const H: usize, const B: usize> Run<H, B> {
    fn new() -> Self {
        Run {
            model: Box::new(Model::zeroed()),
            grads: Box::new(Params::zeroed()),
            state: Box::new(TrainState::new()),
            batch: Box::new(Batch::new()),
            infer: Box::new(InferState::new()),
        }
    }
}

impl<const H: usize, const B: usize> Training for Run<H, B> {
    fn param_count(&self) -> usize {
        Params::<EMBED, CONTEXT, H>::COUNT
    }

    fn init(&mut self, rng: &mut Xoshiro256PlusPlus) {
        self.model.init(rng);
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
        let tensors = self.model.params.tensors();
        let bad = tensors
            .iter()
            .position(|t| t.iter().any(|x| !x.is_finite()))?;
        Some(Params::<EMBED, CONTEXT, H>::NAMES[bad])
    }

    fn loss(&mut self, examples: &[Example<CONTEXT>]) -> Option<f64> {
        self.model.loss(examples, &mut self.infer)
    }

    fn calibrate(&mut self, train: &[Example<CONTEXT>]) -> anyhow::Result<()> {
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
        to_bytes(&self.model)
    }
}

/// A training run of hidden width `hidden` and batch size `batch`, if both are built in.
pub fn training(hidden: usize, batch: usize) -> Option<Box<dyn Training>> {
    macro_rules! by_batch {
        ($h:literal, [$($b:literal),*]) => {
            match batch {
                $($b => Some(Box::new(Run::<$h, $b>::new()) as Box<dyn Training>),)*
                _ => None,
            }
        };
    }
    match hidden {
        64 => by_batch!(64, [4, 8, 16, 32, 64, 128, 256]),
        200 => by_batch!(200, [4, 8, 16, 32, 64, 128, 256]),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_listed_shape_is_built_and_no_other() {
        for h in HIDDEN_WIDTHS {
            for b in BATCH_SIZES {
                assert!(training(h, b).is_some(), "hidden {h}, batch {b}");
            }
            assert!(training(h, 5).is_none());
        }
        assert!(training(65, 32).is_none());
    }
}
