//! Training: the training-mode forward, the fused backward, and the step (SGD, or any
//! [`Optim`]).

use crate::batch::Batch;
use crate::layers;
use crate::model::{BN_MOMENTUM, Model};
use crate::optim::Optim;
use crate::params::Params;
use crate::shape::{BatchCheck, PadCheck};
use crate::vocab::Token;

/// The fast path's activations for one batch, owned by the caller so that nothing is on the
/// heap and no stack frame is large.
///
/// VP is the vocabulary capacity padded to whole vectors, [`crate::padded`]`(V)`: 32 for
/// makemore's 27. Size: 4·(2·B·H + B·VP + 3·H) bytes: 21,248 for hidden 64 and batch 32,
/// 57,696 for hidden 200 (asserted in the tests below).
#[derive(Clone, Debug)]
pub struct TrainState<const VP: usize, const H: usize, const B: usize> {
    /// hprebn after the first linear layer, normalised in place to bnraw by batch norm.
    pub bnraw: [[f32; H]; B],
    pub bnmeani: [f32; H],
    /// Bessel-corrected batch variance.
    pub bnvar: [f32; H],
    pub bnvar_inv: [f32; H],
    /// hpreact, then h = tanh(hpreact); the backward overwrites it with dhpreact, then dhprebn.
    pub h: [[f32; H]; B],
    /// logits, then probs; the backward overwrites them with dlogits. Columns V..VP are
    /// padding (logit −∞) for whole-vector softmax.
    pub probs: [[f32; VP]; B],
}

impl<const VP: usize, const H: usize, const B: usize> TrainState<VP, H, B> {
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
    pub fn forward<'a, const V: usize, const E: usize, const T: usize>(
        &'a mut self,
        params: &'a Params<V, E, T, H>,
        batch: &'a Batch<T, B>,
    ) -> Forward<'a, V, VP, E, T, H, B> {
        let () = PadCheck::<V, VP>::OK;
        let loss = forward_rows(self.rows(), params, &batch.x, &batch.y);
        Forward {
            state: self,
            params,
            batch,
            loss,
        }
    }

    /// The buffers as slices of rows, for the code that does not depend on the batch size.
    fn rows(&mut self) -> Rows<'_, VP, H> {
        Rows {
            bnraw: &mut self.bnraw,
            bnmeani: &mut self.bnmeani,
            bnvar: &mut self.bnvar,
            bnvar_inv: &mut self.bnvar_inv,
            h: &mut self.h,
            probs: &mut self.probs,
        }
    }
}

/// A [`TrainState`]'s buffers with the batch as a slice of rows.
struct Rows<'a, const VP: usize, const H: usize> {
    bnraw: &'a mut [[f32; H]],
    bnmeani: &'a mut [f32; H],
    bnvar: &'a mut [f32; H],
    bnvar_inv: &'a mut [f32; H],
    h: &'a mut [[f32; H]],
    probs: &'a mut [[f32; VP]],
}

impl<const VP: usize, const H: usize> Rows<'_, VP, H> {
    fn reborrow(&mut self) -> Rows<'_, VP, H> {
        Rows {
            bnraw: self.bnraw,
            bnmeani: self.bnmeani,
            bnvar: self.bnvar,
            bnvar_inv: self.bnvar_inv,
            h: self.h,
            probs: self.probs,
        }
    }
}

/// The forward of [`TrainState::forward`] on rows, whatever the batch size. Inlined where it is
/// used: into each [`TrainState::forward`] (firmware's single shape, with the batch size known)
/// and into [`step_rows`], which the batch sizes share.
#[inline(always)]
fn forward_rows<const V: usize, const VP: usize, const E: usize, const T: usize, const H: usize>(
    s: Rows<'_, VP, H>,
    p: &Params<V, E, T, H>,
    x: &[[Token; T]],
    y: &[Token],
) -> f32 {
    layers::embed_linear_forward(s.bnraw, x, &p.c, &p.w1, &p.b1);
    layers::batchnorm_forward(
        s.bnraw,
        s.h,
        s.bnmeani,
        s.bnvar,
        s.bnvar_inv,
        &p.gain,
        &p.bias,
    );
    layers::tanh_forward(s.h);
    layers::linear_forward(s.probs, s.h, &p.w2t, &p.b2);
    layers::softmax_cross_entropy_forward(s.probs, y)
}

/// The fused backward of [`Forward::backward`] on rows, inlined as [`forward_rows`] is.
#[inline(always)]
fn backward_rows<
    const V: usize,
    const VP: usize,
    const E: usize,
    const T: usize,
    const H: usize,
>(
    s: Rows<'_, VP, H>,
    p: &Params<V, E, T, H>,
    x: &[[Token; T]],
    y: &[Token],
    grads: &mut Params<V, E, T, H>,
) {
    grads.fill_zero();
    let dlogits = s.probs;
    layers::softmax_cross_entropy_backward(dlogits, y);
    layers::linear_backward(&mut grads.w2t, &mut grads.b2, dlogits, s.h);
    let dhpreact = s.h;
    layers::linear_tanh_backward(dhpreact, dlogits, &p.w2t);
    layers::batchnorm_backward(
        dhpreact,
        &mut grads.gain,
        &mut grads.bias,
        s.bnraw,
        s.bnvar_inv,
        &p.gain,
    );
    let dhprebn = dhpreact;
    layers::embed_linear_backward(
        &mut grads.c,
        &mut grads.w1,
        &mut grads.b1,
        dhprebn,
        x,
        &p.c,
        &p.w1,
    );
}

impl<const VP: usize, const H: usize, const B: usize> Default for TrainState<VP, H, B> {
    fn default() -> Self {
        Self::new()
    }
}

/// A finished forward pass, waiting for its backward.
pub struct Forward<
    'a,
    const V: usize,
    const VP: usize,
    const E: usize,
    const T: usize,
    const H: usize,
    const B: usize,
> {
    state: &'a mut TrainState<VP, H, B>,
    params: &'a Params<V, E, T, H>,
    batch: &'a Batch<T, B>,
    loss: f32,
}

impl<
    const V: usize,
    const VP: usize,
    const E: usize,
    const T: usize,
    const H: usize,
    const B: usize,
> Forward<'_, V, VP, E, T, H, B>
{
    /// Mean cross-entropy over the batch.
    pub fn loss(&self) -> f32 {
        self.loss
    }

    /// The activations of the forward pass.
    pub fn state(&self) -> &TrainState<VP, H, B> {
        self.state
    }

    /// The fused backward: writes all seven parameter gradients into `grads` (overwriting them),
    /// reusing the activation buffers for the activation gradients.
    pub fn backward(self, grads: &mut Params<V, E, T, H>) {
        let Forward {
            state,
            params,
            batch,
            ..
        } = self;
        backward_rows(state.rows(), params, &batch.x, &batch.y, grads);
    }
}

/// One SGD step on one batch: forward, running-statistics update, fused backward, update.
/// Returns the batch loss before the update.
pub fn train_step<
    const V: usize,
    const VP: usize,
    const E: usize,
    const T: usize,
    const H: usize,
    const B: usize,
>(
    model: &mut Model<V, E, T, H>,
    grads: &mut Params<V, E, T, H>,
    state: &mut TrainState<VP, H, B>,
    batch: &Batch<T, B>,
    lr: f32,
) -> f32 {
    let () = PadCheck::<V, VP>::OK;
    let loss = gradient_rows(model, grads, state.rows(), &batch.x, &batch.y);
    model.params.sgd(grads, lr);
    loss
}

/// [`train_step`] with another update rule: forward, running statistics, fused backward, then
/// `optim`'s update at rate `lr`. Returns the batch loss before the update.
pub fn train_step_with<
    const V: usize,
    const VP: usize,
    const E: usize,
    const T: usize,
    const H: usize,
    const B: usize,
>(
    model: &mut Model<V, E, T, H>,
    grads: &mut Params<V, E, T, H>,
    optim: &mut Optim<V, E, T, H>,
    state: &mut TrainState<VP, H, B>,
    batch: &Batch<T, B>,
    lr: f32,
) -> f32 {
    let () = PadCheck::<V, VP>::OK;
    let loss = gradient_rows(model, grads, state.rows(), &batch.x, &batch.y);
    optim.update(&mut model.params, grads, lr);
    loss
}

/// A step up to its update, on rows: [`TrainState::forward`] and [`Forward::backward`]'s code,
/// with the running statistics between. Out of line and independent of the batch size, so that
/// every batch size a host builds for a model shape shares one copy of the step (a copy per
/// batch size made the host's build 2.3× slower; one copy costs no speed).
#[inline(never)]
fn gradient_rows<
    const V: usize,
    const VP: usize,
    const E: usize,
    const T: usize,
    const H: usize,
>(
    model: &mut Model<V, E, T, H>,
    grads: &mut Params<V, E, T, H>,
    mut s: Rows<'_, VP, H>,
    x: &[[Token; T]],
    y: &[Token],
) -> f32 {
    let loss = forward_rows(s.reborrow(), &model.params, x, y);
    model.bn.update_running(s.bnmeani, s.bnvar, BN_MOMENTUM);
    backward_rows(s, &model.params, x, y, grads);
    loss
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::mem::size_of;

    #[test]
    fn sizes_are_as_documented() {
        assert_eq!(size_of::<TrainState<32, 64, 32>>(), 21_248);
        assert_eq!(size_of::<TrainState<32, 200, 32>>(), 57_696);
        assert_eq!(
            size_of::<TrainState<128, 64, 32>>(),
            4 * (2 * 32 * 64 + 32 * 128 + 3 * 64)
        );
    }
}
