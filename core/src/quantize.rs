//! Post-training quantisation: a [`Model`] (f32, batch-norm statistics calibrated) → an
//! [`Int8Model`]. Computed in f64 on the host that exports the model; the device only runs the
//! integers this produces.
//!
//! - Batch norm is folded into the first layer: with s_j = gain_j·(var_j + ε)^−½,
//!   W1'[t][e][j] = W1[t][e][j]·s_j and b1'_j = (b1_j − mean_j)·s_j + bias_j.
//! - Weights are symmetric int8, a scale per output channel (hidden unit j of W1', symbol k of
//!   W2ᵀ): s = max |w| / 127, q = round(w / s). The embedding, the first layer's input, has one
//!   scale s_C for the table.
//! - Biases are int32 in their products' scales: b1 in s_C·s1_j, b2 in s2_k/127.
//! - tanh's input is int8 in steps of s_tanh = atanh(126.5/127)/127: the 256 codes span the
//!   inputs whose tanh, rounded to 127ths, is not yet ±1, so none is wasted on the flat tails.
//! - Requantisation multipliers are the ratios of scales in fixed point ([`Requant`]).

use crate::int8::{Int8Model, LOGIT_STEPS_PER_HALVING, Requant};
use crate::model::{BN_EPS, Model};

/// Largest magnitude of a quantised bias. A scale is raised, if need be, so that its bias fits;
/// a bias plus n products of at most 128·127 then stays in i32 while n < 66,000 (the menu's
/// widest sums: T·E = 192 inputs, H = 200 hidden units). Past that, sums wrap, and never panic.
const BIAS_LIMIT: f64 = (1u32 << 30) as f64;

/// The tanh input step: the code 127 maps to the input where 127·tanh first rounds to 127.
pub fn tanh_step() -> f64 {
    libm::atanh(126.5 / 127.0) / 127.0
}

impl Requant {
    /// The fixed-point form of `real` ≥ 0: `multiplier · 2^(shift − 31)` to 31 significant bits.
    /// Below 2⁻³² it is [`Requant::ZERO`]; from 2³⁰ on (infinity included), [`Requant::LARGEST`],
    /// just below 2³⁰. A NaN is ZERO.
    pub fn from_real(real: f64) -> Requant {
        if real.is_nan() || real < libm::ldexp(1.0, -32) {
            return Requant::ZERO;
        }
        if real >= libm::ldexp(1.0, 30) {
            return Requant::LARGEST;
        }
        let (fraction, exponent) = libm::frexp(real); // real = fraction · 2^exponent, fraction in [0.5, 1)
        let mut multiplier = libm::round(fraction * 2_147_483_648.0) as i64;
        let mut shift = exponent;
        if multiplier == 1 << 31 {
            multiplier >>= 1;
            shift += 1;
        }
        if shift > 30 {
            // Just below 2³⁰, rounded up to it.
            return Requant::LARGEST;
        }
        Requant {
            multiplier: multiplier as i32,
            shift: shift as i8,
        }
    }

    /// The real multiplier this stands for.
    pub fn to_real(self) -> f64 {
        libm::ldexp(f64::from(self.multiplier), i32::from(self.shift) - 31)
    }
}

/// Symmetric int8 of `x` at `scale`: round(x / scale), clamped to ±127.
fn to_i8(x: f64, scale: f64) -> i8 {
    libm::round(x / scale).clamp(-127.0, 127.0) as i8
}

/// int32 of a bias at `scale` (which [`channel_scale`] made large enough).
fn to_i32(x: f64, scale: f64) -> i32 {
    libm::round(x / scale).clamp(-BIAS_LIMIT, BIAS_LIMIT) as i32
}

/// A channel's weight scale: max |w| / 127, raised so that its bias, in the scale
/// `input_scale · weight scale`, fits in [`BIAS_LIMIT`]; 1 for a channel of zeros.
fn channel_scale(max_abs: f64, bias: f64, input_scale: f64) -> f64 {
    let scale = (max_abs / 127.0).max(libm::fabs(bias) / (input_scale * BIAS_LIMIT));
    if scale > 0.0 && scale.is_finite() {
        scale
    } else {
        1.0
    }
}

impl<const V: usize, const E: usize, const T: usize, const H: usize> Int8Model<V, E, T, H> {
    /// Quantises `model`, of which `symbols` (≤ V) are present; symbols the model marks absent
    /// ([`crate::Params::ABSENT_BIAS`]) stay absent whatever `symbols` says. The model's values
    /// should be finite (a trained, calibrated model's are); a NaN becomes 0.
    pub fn quantize(model: &Model<V, E, T, H>, symbols: usize) -> Self {
        let p = &model.params;
        // No more than the model has: an absent symbol's bias is −∞ and must stay absent.
        let n = symbols.min(p.symbols()).min(crate::alphabet::MAX_SYMBOLS);
        let mut q = Int8Model::zeroed();
        q.symbols = n as u8;
        let f = f64::from;

        // The embedding: one scale over the present symbols' rows.
        let c_max = p.c[..n]
            .iter()
            .flatten()
            .fold(0.0f64, |m, &x| m.max(libm::fabs(f(x))));
        let c_scale = channel_scale(c_max, 0.0, 1.0);
        for (row, qrow) in p.c[..n].iter().zip(&mut q.c) {
            for (&x, qx) in row.iter().zip(qrow) {
                *qx = to_i8(f(x), c_scale);
            }
        }

        // The first layer with batch norm folded in, a scale per hidden unit.
        let s_tanh = tanh_step();
        for j in 0..H {
            let s = f(p.gain[j]) / libm::sqrt(f(model.bn.var[j]) + f(BN_EPS));
            let b1 = (f(p.b1[j]) - f(model.bn.mean[j])) * s + f(p.bias[j]);
            let w_max =
                p.w1.iter()
                    .flatten()
                    .fold(0.0f64, |m, w| m.max(libm::fabs(f(w[j]) * s)));
            let w_scale = channel_scale(w_max, b1, c_scale);
            for (w1t, qt) in p.w1.iter().zip(&mut q.w1) {
                for (w1te, qte) in w1t.iter().zip(qt) {
                    qte[j] = to_i8(f(w1te[j]) * s, w_scale);
                }
            }
            q.b1[j] = to_i32(b1, c_scale * w_scale);
            q.to_tanh[j] = Requant::from_real(c_scale * w_scale / s_tanh);
        }
        for (i, t) in q.tanh.iter_mut().enumerate() {
            let x = (i as f64 - 128.0) * s_tanh;
            *t = libm::round(127.0 * libm::tanh(x)).clamp(-127.0, 127.0) as i8;
        }

        // The output layer, a scale per symbol; logits in steps of ln 2 / 64.
        let h_scale = 1.0 / 127.0;
        let logit_step = core::f64::consts::LN_2 / f64::from(LOGIT_STEPS_PER_HALVING);
        for k in 0..n {
            let w_max = p.w2t[k]
                .iter()
                .fold(0.0f64, |m, &w| m.max(libm::fabs(f(w))));
            let w_scale = channel_scale(w_max, f(p.b2[k]), h_scale);
            for (&w, qw) in p.w2t[k].iter().zip(&mut q.w2t[k]) {
                *qw = to_i8(f(w), w_scale);
            }
            q.b2[k] = to_i32(f(p.b2[k]), h_scale * w_scale);
            q.to_logit[k] = Requant::from_real(h_scale * w_scale / logit_step);
        }
        q
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_multiplier_holds_31_significant_bits() {
        for real in [
            1e-9,
            3.3e-5,
            0.001,
            0.0123,
            0.5,
            0.999_999_999_9,
            1.0,
            7.25,
            1e9,
        ] {
            let r = Requant::from_real(real);
            assert!(
                (1 << 30..=i32::MAX).contains(&r.multiplier),
                "{real}: {r:?}"
            );
            assert!((r.to_real() / real - 1.0).abs() < 1e-9, "{real}: {r:?}");
        }
        assert_eq!(Requant::from_real(0.0), Requant::ZERO);
        assert_eq!(Requant::from_real(f64::NAN), Requant::ZERO);
        assert_eq!(Requant::from_real(1e-12), Requant::ZERO);
        for huge in [
            1_073_741_823.999_999_9,
            1_073_741_824.0,
            2_147_483_647.0,
            1e30,
            f64::MAX,
            f64::INFINITY,
        ] {
            assert_eq!(Requant::from_real(huge), Requant::LARGEST, "{huge}");
        }
        // Every shift that can come out is in range.
        for e in -40..40 {
            for f in [0.5, 0.75, 0.999_999_999_9] {
                let r = Requant::from_real(libm::ldexp(f, e));
                assert!((-31..=30).contains(&r.shift), "{f}·2^{e}: {r:?}");
            }
        }
        let big = Requant::from_real(5e8);
        assert!((big.to_real() / 5e8 - 1.0).abs() < 1e-9, "{big:?}");
    }

    #[test]
    fn the_tanh_codes_reach_saturation_at_the_last_code() {
        let s = tanh_step();
        assert!((127.0 * libm::tanh(127.0 * s) - 126.5).abs() < 1e-9);
        assert!(127.0 * libm::tanh(126.0 * s) < 126.5);
    }
}
