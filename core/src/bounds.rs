//! Interval bounds proving that a model's activations stay finite for every context.
//!
//! A model file can pass its checksum and hold only finite numbers and still be poison: weights
//! near f32::MAX make hprebn or the logits overflow to ±∞, and ∞ − ∞ turns the loss and the
//! sampling distribution into NaN. The loader therefore bounds every layer's output over all
//! inputs, in f64, and refuses a model whose bound reaches [`LIMIT`]:
//!
//! - hprebn_j ≤ |b1_j| + Σ_t Σ_e max_c |C[c][e]| · |W1[t][e][j]|
//! - |hprebn_j − mean_j| ≤ hprebn_j + |mean_j|, a value the f32 forward forms on its own
//! - hpreact_j ≤ s_j · (hprebn_j + |mean_j|) + |bias_j|, with s_j = |gain_j| / √(var_j + ε)
//! - h = tanh(hpreact) ∈ [−1, 1]
//! - logit_k ≤ |b2_k| + Σ_j |W2[j][k]|
//!
//! Every partial sum the f32 kernels form is bounded by the same sums, so with bounds below
//! LIMIT (a quarter of f32::MAX, leaving room for rounding) no intermediate overflows, and the
//! loss, a difference of two logits plus ln Σ exp(…) ≤ ln V, is finite.

use crate::model::{BN_EPS, Model};

/// Largest activation bound accepted: f32::MAX / 4.
pub const LIMIT: f64 = f32::MAX as f64 / 4.0;

/// The layer whose bound reached [`LIMIT`], and the unit (hidden or output index).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Overflow {
    pub layer: &'static str,
    pub unit: usize,
}

/// `bound < LIMIT`; false for a NaN too, should one come from ∞·0.
fn within(bound: f64) -> bool {
    bound < LIMIT
}

/// The nine tensors in file order, read through `at(tensor, flat index)`: C [v][E],
/// W1 [T][E][H], b1, gain, bias [H], W2ᵀ [v][H], b2 [v], bn mean, bn var [H], for the v
/// present symbols (an absent one's logit is −∞ and its row unused). One accessor serves a
/// loaded [`Model`] and a model file's bytes, so the loader can check before it writes.
pub(crate) fn check<const E: usize, const T: usize, const H: usize>(
    symbols: usize,
    at: impl Fn(usize, usize) -> f32,
) -> Result<(), Overflow> {
    let [c, w1, b1, gain, bias, w2t, b2, mean, var] = [0, 1, 2, 3, 4, 5, 6, 7, 8];
    let abs = |tensor, i| f64::from(at(tensor, i)).abs();
    let mut cmax = [0.0f64; E];
    for v in 0..symbols {
        for (e, m) in cmax.iter_mut().enumerate() {
            *m = m.max(abs(c, v * E + e));
        }
    }
    for j in 0..H {
        let mut hprebn = abs(b1, j);
        for t in 0..T {
            for (e, cmax_e) in cmax.iter().enumerate() {
                hprebn += cmax_e * abs(w1, (t * E + e) * H + j);
            }
        }
        let scale = abs(gain, j) / libm::sqrt(f64::from(at(var, j)) + f64::from(BN_EPS));
        // hprebn − mean is an f32 value of its own, whatever the scale it is then multiplied
        // by (a gain of 0 does not save ∞ − ∞ or 0·∞).
        let centred = hprebn + abs(mean, j);
        let hpreact = scale * centred + abs(bias, j);
        for (layer, bound) in [
            ("the first linear layer", hprebn),
            ("batch norm", centred),
            ("batch norm", scale),
            ("batch norm", hpreact),
        ] {
            if !within(bound) {
                return Err(Overflow { layer, unit: j });
            }
        }
    }
    // |h_j| ≤ 1 after tanh.
    for k in 0..symbols {
        let logit = abs(b2, k) + (0..H).map(|j| abs(w2t, k * H + j)).sum::<f64>();
        if !within(logit) {
            return Err(Overflow {
                layer: "the output layer",
                unit: k,
            });
        }
    }
    Ok(())
}

impl<const V: usize, const E: usize, const T: usize, const H: usize> Model<V, E, T, H> {
    /// `Ok` when every activation of every context of the present symbols is provably finite
    /// (see the module docs). Expects finite parameters and non-negative variances, which the
    /// loader checks first.
    pub fn check_activation_bounds(&self) -> Result<(), Overflow> {
        let symbols = self.params.symbols();
        let tensors = self.file_tensors(symbols);
        check::<E, T, H>(symbols, |tensor, i| tensors[tensor].1[i])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand_core::SeedableRng;

    fn model() -> Model<27, 4, 3, 8> {
        let mut m = Model::zeroed();
        m.init(&mut rand_xoshiro::Xoshiro256PlusPlus::seed_from_u64(3));
        m
    }

    #[test]
    fn an_ordinary_model_is_within_bounds() {
        assert_eq!(model().check_activation_bounds(), Ok(()));
    }

    #[test]
    fn each_layer_that_can_overflow_is_named() {
        let mut m = model();
        m.params.w1[2][1][5] = 3e38;
        let e = m.check_activation_bounds().unwrap_err();
        assert_eq!(
            e,
            Overflow {
                layer: "the first linear layer",
                unit: 5
            }
        );

        let mut m = model();
        m.params.gain[3] = 1e37; // ×316 from 1/√ε
        assert_eq!(m.check_activation_bounds().unwrap_err().unit, 3);
        assert_eq!(m.check_activation_bounds().unwrap_err().layer, "batch norm");

        // A gain of 0 hides nothing: hprebn − mean overflows before it is scaled.
        let mut m = model();
        m.params.b1[2] = 1e32;
        m.params.gain[2] = 0.0;
        m.bn.mean[2] = -f32::MAX;
        let e = m.check_activation_bounds().unwrap_err();
        assert_eq!((e.layer, e.unit), ("batch norm", 2));

        let mut m = model();
        m.params.w2t[7][0] = 2e38;
        m.params.w2t[7][1] = 2e38;
        let e = m.check_activation_bounds().unwrap_err();
        assert_eq!(
            e,
            Overflow {
                layer: "the output layer",
                unit: 7
            }
        );
    }

    #[test]
    fn a_model_just_inside_the_bound_gives_finite_logits() {
        // Output weights summing to just under LIMIT: the bound holds, and the f32 forward of
        // the worst case (h = ±1 everywhere) stays finite.
        let mut m = model();
        let w = (LIMIT * 0.99 / 8.0) as f32;
        m.params.w2t[0] = [w; 8];
        m.params.b2[0] = 0.0;
        assert_eq!(m.check_activation_bounds(), Ok(()));
        let sum: f32 = m.params.w2t[0].iter().sum();
        assert!(sum.is_finite());
    }
}
