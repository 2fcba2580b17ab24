//! Training: the training-mode forward, the fused backward, and the SGD step.

use crate::batch::Batch;
use crate::layers;
use crate::model::{BN_MOMENTUM, Model};
use crate::params::Params;
use crate::shape::BatchCheck;
use crate::simd::VP;

/// The fast path's activations for one batch, owned by the caller so that nothing is on the
/// heap and no stack frame is large.
///
/// Size: 4·(2·B·H + B·VP + 3·H) bytes (VP = 32, the vocabulary padded to whole vectors):
/// 21,248 for hidden 64 and batch 32, 57,696 for hidden 200 (asserted in the tests below).
#[derive(Clone, Debug)]
pub struct TrainState<const H: usize, const B: usize> {
    /// hprebn after the first linear layer, normalised in place to bnraw by batch norm.
    pub bnraw: [[f32; H]; B],
    pub bnmeani: [f32; H],
    /// Bessel-corrected batch variance.
    pub bnvar: [f32; H],
    pub bnvar_inv: [f32; H],
    /// hpreact, then h = tanh(hpreact); the backward overwrites it with dhpreact, then dhprebn.
    pub h: [[f32; H]; B],
    /// logits, then probs; the backward overwrites them with dlogits. Columns 27..32 are
    /// padding (logit −∞) for whole-vector softmax.
    pub probs: [[f32; VP]; B],
}

impl<const H: usize, const B: usize> TrainState<H, B> {
    pub const fn new() -> Self {
        let () = BatchCheck::<B>::OK;
        TrainState {
            bnraw: [[0.0; H]; B],
            bnmeani: [0.0; H],
            bnvar: [0.0; H],
            bnvar_inv: [0.0; H],
            h: [[0.0; H]; B],
            probs: [[0.0; VP]; B],
        }
    }

    /// Training-mode forward of one batch (batch statistics, Bessel-corrected variance).
    ///
    /// The returned [`Forward`] holds the loss and is the only way to run the backward, which
    /// consumes it: the type system rules out a backward over stale or already-consumed
    /// activations.
    pub fn forward<'a, const E: usize, const T: usize>(
        &'a mut self,
        params: &'a Params<E, T, H>,
        batch: &'a Batch<T, B>,
    ) -> Forward<'a, E, T, H, B> {
        let p = params;
        layers::embed_linear_forward(&mut self.bnraw, &batch.x, &p.c, &p.w1, &p.b1);
        layers::batchnorm_forward(
            &mut self.bnraw,
            &mut self.h,
            &mut self.bnmeani,
            &mut self.bnvar,
            &mut self.bnvar_inv,
            &p.gain,
            &p.bias,
        );
        layers::tanh_forward(&mut self.h);
        layers::linear_forward(&mut self.probs, &self.h, &p.w2t, &p.b2);
        let loss = layers::softmax_cross_entropy_forward(&mut self.probs, &batch.y);
        Forward {
            state: self,
            params,
            batch,
            loss,
        }
    }
}

impl<const H: usize, const B: usize> Default for TrainState<H, B> {
    fn default() -> Self {
        Self::new()
    }
}

/// A finished forward pass, waiting for its backward.
pub struct Forward<'a, const E: usize, const T: usize, const H: usize, const B: usize> {
    state: &'a mut TrainState<H, B>,
    params: &'a Params<E, T, H>,
    batch: &'a Batch<T, B>,
    loss: f32,
}

impl<const E: usize, const T: usize, const H: usize, const B: usize> Forward<'_, E, T, H, B> {
    /// Mean cross-entropy over the batch.
    pub fn loss(&self) -> f32 {
        self.loss
    }

    /// The activations of the forward pass.
    pub fn state(&self) -> &TrainState<H, B> {
        self.state
    }

    /// The fused backward: writes all seven parameter gradients into `grads` (overwriting them),
    /// reusing the activation buffers for the activation gradients.
    pub fn backward(self, grads: &mut Params<E, T, H>) {
        let Forward {
            state,
            params: p,
            batch,
            ..
        } = self;
        grads.fill_zero();
        let dlogits = &mut state.probs;
        layers::softmax_cross_entropy_backward(dlogits, &batch.y);
        layers::linear_backward(&mut grads.w2t, &mut grads.b2, dlogits, &state.h);
        let dhpreact = &mut state.h;
        layers::linear_tanh_backward(dhpreact, dlogits, &p.w2t);
        layers::batchnorm_backward(
            dhpreact,
            &mut grads.gain,
            &mut grads.bias,
            &state.bnraw,
            &state.bnvar_inv,
            &p.gain,
        );
        let dhprebn = &state.h;
        layers::embed_linear_backward(
            &mut grads.c,
            &mut grads.w1,
            &mut grads.b1,
            dhprebn,
            &batch.x,
            &p.c,
            &p.w1,
        );
    }
}

/// Step-decay learning rate: `lr` before `decay_step`, `lr_final` from it on.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct StepDecay {
    pub lr: f32,
    pub decay_step: u64,
    pub lr_final: f32,
}

impl StepDecay {
    /// makemore part 4: 0.1, then 0.01 from step 100,000.
    pub const MAKEMORE: StepDecay = StepDecay {
        lr: 0.1,
        decay_step: 100_000,
        lr_final: 0.01,
    };

    pub fn at(&self, step: u64) -> f32 {
        if step < self.decay_step {
            self.lr
        } else {
            self.lr_final
        }
    }
}

impl Default for StepDecay {
    fn default() -> Self {
        Self::MAKEMORE
    }
}

/// One SGD step on one batch: forward, running-statistics update, fused backward, update.
/// Returns the batch loss before the update.
pub fn train_step<const E: usize, const T: usize, const H: usize, const B: usize>(
    model: &mut Model<E, T, H>,
    grads: &mut Params<E, T, H>,
    state: &mut TrainState<H, B>,
    batch: &Batch<T, B>,
    lr: f32,
) -> f32 {
    let forward = state.forward(&model.params, batch);
    let loss = forward.loss();
    let s = forward.state();
    model.bn.update_running(&s.bnmeani, &s.bnvar, BN_MOMENTUM);
    forward.backward(grads);
    model.params.sgd(grads, lr);
    loss
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::mem::size_of;

    #[test]
    fn sizes_are_as_documented() {
        assert_eq!(size_of::<TrainState<64, 32>>(), 21_248);
        assert_eq!(size_of::<TrainState<200, 32>>(), 57_696);
    }

    #[test]
    fn schedule_decays_at_the_step() {
        let s = StepDecay::MAKEMORE;
        assert_eq!(s.at(0), 0.1);
        assert_eq!(s.at(99_999), 0.1);
        assert_eq!(s.at(100_000), 0.01);
        assert_eq!(s.at(199_999), 0.01);
    }
}
