//! A training step with no gradient buffer, for memory-tight targets: each parameter is updated
//! as soon as its gradient is complete and no later gradient needs its old value.
//!
//! The order the chain rule allows:
//! 1. dlogits; b2 ← b2 − lr·Σ_b dlogits.
//! 2. dhpreact from the old W2 (h is overwritten); then W2 ← W2 − lr·hᵀ·dlogits, with h
//!    recomputed from bnraw, gain and bias exactly as the forward computed it.
//! 3. dhprebn from the old gain; then gain and bias.
//! 4. demb from the old W1, kept in [`InPlaceScratch`]; W1 and b1 from the old C; then C.
//!
//! It computes the same step as [`crate::train_step`] up to rounding (the updates are
//! accumulated in a different order), with B·T·E floats of scratch instead of a whole
//! gradient `Params`.
//!
//! [`train_step_in_place_frozen`] leaves the embedding, the first layer or both as they are, as
//! fine-tuning a trained model on a few new words may want: their gradients are not computed at
//! all, and with both frozen the backward pass stops at batch norm's gain and bias.

use crate::batch::Batch;
use crate::layers;
use crate::model::{BN_MOMENTUM, Model};
use crate::simd::{self, Start, W, lanes, lanes_mut, rows_times_matrix};
use crate::train::TrainState;
use wide::f32x8;

/// demb of every row of a batch: B·T·E floats (3,840 bytes for the default model).
#[derive(Clone, Debug)]
pub struct InPlaceScratch<const E: usize, const T: usize, const B: usize> {
    pub demb: [[[f32; E]; T]; B],
}

impl<const E: usize, const T: usize, const B: usize> InPlaceScratch<E, T, B> {
    pub const fn new() -> Self {
        InPlaceScratch {
            demb: [[[0.0; E]; T]; B],
        }
    }
}

impl<const E: usize, const T: usize, const B: usize> Default for InPlaceScratch<E, T, B> {
    fn default() -> Self {
        Self::new()
    }
}

/// Layers a step leaves as they are. The other parameters get exactly the updates of the
/// step that trains everything, bit for bit: nothing they depend on is computed otherwise.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Frozen {
    /// The embedding table C.
    pub embedding: bool,
    /// The first linear layer, W1 and b1.
    pub linear1: bool,
}

impl Frozen {
    /// Every layer trained.
    pub const NONE: Frozen = Frozen {
        embedding: false,
        linear1: false,
    };
    /// The embedding and the first layer frozen: the backward pass ends at batch norm.
    pub const BELOW_BATCH_NORM: Frozen = Frozen {
        embedding: true,
        linear1: true,
    };
}

/// One SGD step on one batch without a gradient buffer. Returns the batch loss before the
/// update.
pub fn train_step_in_place<
    const V: usize,
    const VP: usize,
    const E: usize,
    const T: usize,
    const H: usize,
    const B: usize,
>(
    model: &mut Model<V, E, T, H>,
    state: &mut TrainState<VP, H, B>,
    scratch: &mut InPlaceScratch<E, T, B>,
    batch: &Batch<T, B>,
    lr: f32,
) -> f32 {
    train_step_in_place_frozen(model, state, scratch, batch, lr, Frozen::NONE)
}

/// [`train_step_in_place`] with the layers `frozen` names left as they are.
pub fn train_step_in_place_frozen<
    const V: usize,
    const VP: usize,
    const E: usize,
    const T: usize,
    const H: usize,
    const B: usize,
>(
    model: &mut Model<V, E, T, H>,
    state: &mut TrainState<VP, H, B>,
    scratch: &mut InPlaceScratch<E, T, B>,
    batch: &Batch<T, B>,
    lr: f32,
    frozen: Frozen,
) -> f32 {
    let loss = state.forward(&model.params, batch).loss();
    model
        .bn
        .update_running(&state.bnmeani, &state.bnvar, BN_MOMENTUM);
    let p = &mut model.params;
    let neg_lr = -lr;

    // 1. dlogits, and b2.
    let dlogits = &mut state.probs;
    layers::softmax_cross_entropy_backward(dlogits, &batch.y);
    for dy in dlogits.iter() {
        for (b2, d) in p.b2.iter_mut().zip(dy) {
            *b2 += neg_lr * d;
        }
    }

    // 2. dhpreact with the old W2, then W2 with h recomputed a pair of rows at a time.
    layers::linear_tanh_backward(&mut state.h, dlogits, &p.w2t);
    for (raw_pair, dy_pair) in state.bnraw.chunks(2).zip(dlogits.chunks(2)) {
        let mut h = [[0.0f32; H]; 2];
        for (h_row, raw_row) in h.iter_mut().zip(raw_pair) {
            for v in 0..H / W {
                let raw = f32x8::from(lanes(raw_row)[v]);
                let pre = layers::bn_affine(&p.gain, &p.bias, v * W, raw);
                lanes_mut(h_row)[v] = simd::tanh(pre).to_array();
            }
        }
        let a = |k: usize, i: usize| neg_lr * dy_pair[i][k];
        rows_times_matrix(&mut p.w2t, Start::Out, raw_pair.len(), a, |i| &h[i]);
    }

    // 3. dhprebn with the old gain, then gain and bias.
    let (mut dgain, mut dbias) = ([0.0f32; H], [0.0f32; H]);
    let needs_dhprebn = !(frozen.embedding && frozen.linear1);
    if needs_dhprebn {
        layers::batchnorm_backward(
            &mut state.h,
            &mut dgain,
            &mut dbias,
            &state.bnraw,
            &state.bnvar_inv,
            &p.gain,
        );
    } else {
        layers::batchnorm_params_backward(&mut dgain, &mut dbias, &state.h, &state.bnraw);
    }
    p.gain
        .iter_mut()
        .zip(&dgain)
        .for_each(|(g, d)| *g += neg_lr * d);
    p.bias
        .iter_mut()
        .zip(&dbias)
        .for_each(|(b, d)| *b += neg_lr * d);
    if !needs_dhprebn {
        return loss;
    }

    // 4. demb with the old W1; W1 and b1 with the old C; then C.
    let dhprebn = &state.h;
    let x = &batch.x;
    if !frozen.embedding {
        for (dy, demb) in dhprebn.iter().zip(scratch.demb.iter_mut()) {
            layers::demb_row(demb, dy, &p.w1);
        }
    }
    if !frozen.linear1 {
        let c = &p.c;
        let emb = |i: usize, b: usize| neg_lr * c[x[b][i / E].index()][i % E];
        rows_times_matrix(p.w1.as_flattened_mut(), Start::Out, B, emb, |b| &dhprebn[b]);
        rows_times_matrix(
            core::array::from_mut(&mut p.b1),
            Start::Out,
            B,
            |_, _| neg_lr,
            |b| &dhprebn[b],
        );
    }
    if !frozen.embedding {
        for (context, demb) in x.iter().zip(&scratch.demb) {
            layers::scatter_add(&mut p.c, context, demb, neg_lr);
        }
    }
    loss
}
