//! Inference on one context at a time, with the stored batch-norm statistics.
//!
//! It reuses the fast path's layers with a batch of one: the same code computes a training
//! step's activations and a sampled name's.

use crate::layers;
use crate::model::Model;
use crate::vocab::{Example, Token};
use core::array::{from_mut, from_ref};

/// Activations of one inference. Size: 4·(H + V) bytes: 364 for hidden 64 and makemore's 27.
#[derive(Clone, Debug)]
pub struct InferState<const V: usize, const H: usize> {
    /// hprebn, then hpreact, then h, in place.
    pub h: [f32; H],
    /// logits, or probabilities after [`Model::probs`].
    pub logits: [f32; V],
}

impl<const V: usize, const H: usize> InferState<V, H> {
    pub const fn new() -> Self {
        InferState {
            h: [0.0; H],
            logits: [0.0; V],
        }
    }
}

impl<const V: usize, const H: usize> Default for InferState<V, H> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const V: usize, const E: usize, const T: usize, const H: usize> Model<V, E, T, H> {
    /// The first linear layer's output for one context, before batch norm: what calibration
    /// accumulates. context [T] → hprebn [H].
    pub fn hprebn(&self, context: &[Token; T], hprebn: &mut [f32; H]) {
        let p = &self.params;
        layers::embed_linear_forward(from_mut(hprebn), from_ref(context), &p.c, &p.w1, &p.b1);
    }

    /// Logits of the next character after `context`, in `state.logits`.
    pub fn logits<'s>(
        &self,
        context: &[Token; T],
        state: &'s mut InferState<V, H>,
    ) -> &'s [f32; V] {
        let p = &self.params;
        self.hprebn(context, &mut state.h);
        layers::batchnorm_inference(&mut state.h, &self.bn, &p.gain, &p.bias);
        layers::tanh_forward(from_mut(&mut state.h));
        layers::linear_forward_row(&mut state.logits, &state.h, &p.w2t, &p.b2);
        &state.logits
    }

    /// −ln p(target | context) = (max − logit_y) + ln Σ_k exp(logit_k − max), in f64: the
    /// difference of two finite f32 logits can exceed f32::MAX, and forming it first keeps the
    /// small ln Σ from being rounded away beside a huge max.
    pub fn nll(&self, example: &Example<T>, state: &mut InferState<V, H>) -> f64 {
        self.logits(&example.context, state);
        let logit_y = state.logits[example.target.index()];
        let (max, sum) = layers::softmax_row(&mut state.logits);
        (f64::from(max) - f64::from(logit_y)) + libm::log(f64::from(sum))
    }

    /// Mean cross-entropy over a split (accumulated in f64), or `None` for an empty split.
    pub fn loss(&self, examples: &[Example<T>], state: &mut InferState<V, H>) -> Option<f64> {
        if examples.is_empty() {
            return None;
        }
        let total: f64 = examples.iter().map(|ex| self.nll(ex, state)).sum();
        Some(total / examples.len() as f64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::VOCAB;

    #[test]
    fn the_loss_is_right_for_extreme_finite_logits() {
        // Every logit 1e30: the distribution is uniform and the loss ln 27. Formed as
        // max + ln Σ − logit_y in f32, 1e30 + 3.3 rounds to 1e30 and the loss came out 0.
        let mut m = crate::DefaultModel::zeroed();
        m.params.b2 = [1e30; VOCAB];
        let ex = Example {
            context: [Token::BOUNDARY; 3],
            target: Token::wrapping(5, VOCAB),
        };
        let nll = m.nll(&ex, &mut InferState::new());
        assert!((nll - libm::log(VOCAB as f64)).abs() < 1e-6, "{nll}");
        // Two logits 6e37 apart: all the mass on one, the loss is their difference.
        m.params.b2 = [-3e37; VOCAB];
        m.params.b2[0] = 3e37;
        let nll = m.nll(&ex, &mut InferState::new());
        assert_eq!(nll, 6e37f32 as f64);
    }

    #[test]
    fn size_is_as_documented() {
        assert_eq!(core::mem::size_of::<InferState<27, 64>>(), 364);
        assert_eq!(core::mem::size_of::<InferState<27, 200>>(), 908);
    }
}
