//! Optimizers, written by hand as the backward is: SGD, SGD with momentum (Nesterov optional)
//! and AdamW, each in PyTorch's order of operations (`torch.optim`'s single-tensor CPU path), so
//! that a few steps agree with PyTorch's to rounding (`tests/optim.rs`, against numbers written
//! by `scripts/torch_optim.py`).
//!
//! Each rule with state is one function over a tensor's flat slices ([`momentum`], [`adamw`];
//! plain SGD is [`Params::sgd`]), its formula written once over a [`Lane`] (eight floats at a
//! time, then the tail one by one); [`Optim`] applies it to the seven tensors of a [`Params`]
//! with the state it keeps.

use crate::params::Params;
use crate::simd::Lane;
use wide::f32x8;

/// An update rule and its hyperparameters (the learning rate comes from the schedule).
///
/// Hyperparameters are `f64` because PyTorch keeps them as Python floats and rounds what it
/// derives from them (1 − β, β^t, 1 − lr·λ) to `f32` only at the end.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub enum Optimizer {
    /// p ← p − lr·g: makemore part 4's, the default.
    Sgd,
    /// PyTorch's SGD with momentum μ (no dampening): b ← μ·b + g, then p ← p − lr·b, or with
    /// Nesterov p ← p − lr·(g + μ·b).
    Momentum { momentum: f64, nesterov: bool },
    /// PyTorch's AdamW: decoupled weight decay p ← p·(1 − lr·λ), then Adam with bias correction.
    AdamW {
        beta1: f64,
        beta2: f64,
        eps: f64,
        weight_decay: f64,
    },
}

impl Optimizer {
    /// makemore.py's AdamW (its learning rate is 5e-4): β 0.9/0.99, ε 1e-8, weight decay 0.01.
    pub const ADAMW_MAKEMORE: Optimizer = Optimizer::AdamW {
        beta1: 0.9,
        beta2: 0.99,
        eps: 1e-8,
        weight_decay: 0.01,
    };

    /// Parameter-sized buffers the rule keeps: 0 (SGD), 1 (momentum) or 2 (AdamW's moments).
    pub const fn buffers(&self) -> usize {
        match self {
            Optimizer::Sgd => 0,
            Optimizer::Momentum { .. } => 1,
            Optimizer::AdamW { .. } => 2,
        }
    }
}

/// An optimizer and its state for a model of shape V, E, T, H.
///
/// Size: `2·size_of::<Params>() + 48` bytes (33,144 for the default model), asserted below.
/// Plain SGD touches neither buffer; firmware that trains with SGD alone calls [`Params::sgd`]
/// and keeps no `Optim` at all.
#[derive(Clone, Debug, PartialEq)]
pub struct Optim<const V: usize, const E: usize, const T: usize, const H: usize> {
    pub rule: Optimizer,
    /// The momentum buffer, or AdamW's first moment (`exp_avg`).
    pub m: Params<V, E, T, H>,
    /// AdamW's second moment (`exp_avg_sq`).
    pub v: Params<V, E, T, H>,
    /// Updates taken: AdamW's bias correction uses t = `updates` + 1 for the next.
    pub updates: u64,
}

impl<const V: usize, const E: usize, const T: usize, const H: usize> Optim<V, E, T, H> {
    /// Fresh state: zero buffers, no updates taken. A zero momentum buffer is PyTorch's first
    /// step exactly (μ·0 + g = g, its `clone(g)`).
    pub const fn new(rule: Optimizer) -> Self {
        Optim {
            rule,
            m: Params::zeroed(),
            v: Params::zeroed(),
            updates: 0,
        }
    }

    /// One update of `params` against `grads` at learning rate `lr`.
    pub fn update(&mut self, params: &mut Params<V, E, T, H>, grads: &Params<V, E, T, H>, lr: f32) {
        let t = self.updates.saturating_add(1);
        match self.rule {
            Optimizer::Sgd => params.sgd(grads, lr),
            Optimizer::Momentum {
                momentum: mu,
                nesterov,
            } => {
                let tensors = params.tensors_mut().into_iter().zip(grads.tensors());
                for ((p, g), b) in tensors.zip(self.m.tensors_mut()) {
                    momentum(p, g, b, lr, mu, nesterov);
                }
            }
            Optimizer::AdamW {
                beta1,
                beta2,
                eps,
                weight_decay,
            } => {
                let h = AdamW::at(lr, t, beta1, beta2, eps, weight_decay);
                let tensors = params.tensors_mut().into_iter().zip(grads.tensors());
                let moments = self.m.tensors_mut().into_iter().zip(self.v.tensors_mut());
                for ((p, g), (m, v)) in tensors.zip(moments) {
                    adamw(p, g, m, v, &h);
                }
            }
        }
        self.updates = t;
    }
}

/// The constants PyTorch's AdamW derives from its hyperparameters at step t, computed in `f64`
/// and rounded to `f32` where it rounds them.
#[derive(Clone, Copy, Debug)]
pub struct AdamW {
    /// 1 − lr·λ, the decoupled weight decay's factor.
    pub decay: f32,
    /// 1 − β₁, `exp_avg.lerp_(grad, 1 − β₁)`'s weight.
    pub one_minus_beta1: f32,
    pub beta2: f32,
    /// 1 − β₂, `addcmul_`'s value.
    pub one_minus_beta2: f32,
    /// √(1 − β₂ᵗ).
    pub bias_correction2_sqrt: f32,
    pub eps: f32,
    /// −lr / (1 − β₁ᵗ), `addcdiv_`'s value.
    pub neg_step_size: f32,
}

impl AdamW {
    pub fn at(lr: f32, t: u64, beta1: f64, beta2: f64, eps: f64, weight_decay: f64) -> Self {
        let lr = f64::from(lr);
        // β^t as Python's float power computes it (t is exact in f64 far beyond any run).
        let t = t as f64;
        let bias_correction1 = 1.0 - libm::pow(beta1, t);
        let bias_correction2 = 1.0 - libm::pow(beta2, t);
        AdamW {
            decay: (1.0 - lr * weight_decay) as f32,
            one_minus_beta1: (1.0 - beta1) as f32,
            beta2: beta2 as f32,
            one_minus_beta2: (1.0 - beta2) as f32,
            bias_correction2_sqrt: libm::sqrt(bias_correction2) as f32,
            eps: eps as f32,
            neg_step_size: (-(lr / bias_correction1)) as f32,
        }
    }
}

/// Eight floats of `s` from `i`.
fn load(s: &[f32], i: usize) -> f32x8 {
    let mut x = [0.0; 8];
    x.copy_from_slice(&s[i..i + 8]);
    f32x8::from(x)
}

/// Writes eight floats to `s` from `i`.
fn store(s: &mut [f32], i: usize, x: f32x8) {
    s[i..i + 8].copy_from_slice(&x.to_array());
}

/// PyTorch's SGD with momentum μ, no dampening and no weight decay, on one tensor:
/// b ← μ·b + g; d = g + μ·b (Nesterov) or b; p ← p − lr·d.
pub fn momentum(p: &mut [f32], g: &[f32], b: &mut [f32], lr: f32, mu: f64, nesterov: bool) {
    fn rule<L: Lane>([p, g, b]: &mut [L; 3], lr: f32, mu: f32, nesterov: bool) {
        // buf.mul_(μ).add_(grad): two roundings, as PyTorch does them.
        *b = *b * L::splat(mu) + *g;
        // grad.add(buf, alpha=μ), then param.add_(d, alpha=−lr): ATen's fused a + α·b.
        let d = if nesterov {
            b.mul_add(L::splat(mu), *g)
        } else {
            *b
        };
        *p = d.mul_add(L::splat(-lr), *p);
    }
    let mu = mu as f32;
    let len = p.len().min(g.len()).min(b.len());
    let whole = len - len % 8;
    for i in (0..whole).step_by(8) {
        let mut x = [load(p, i), load(g, i), load(b, i)];
        rule(&mut x, lr, mu, nesterov);
        store(p, i, x[0]);
        store(b, i, x[2]);
    }
    for i in whole..len {
        let mut x = [p[i], g[i], b[i]];
        rule(&mut x, lr, mu, nesterov);
        (p[i], b[i]) = (x[0], x[2]);
    }
}

/// PyTorch's AdamW on one tensor, at the step whose constants `h` holds:
/// p ← p·(1 − lr·λ); m ← lerp(m, g, 1 − β₁); v ← β₂·v + (1 − β₂)·g²;
/// p ← p − lr/(1 − β₁ᵗ) · m / (√v / √(1 − β₂ᵗ) + ε).
pub fn adamw(p: &mut [f32], g: &[f32], m: &mut [f32], v: &mut [f32], h: &AdamW) {
    fn rule<L: Lane>([p, g, m, v]: &mut [L; 4], h: &AdamW) {
        *p = *p * L::splat(h.decay);
        // lerp with a weight below ½: m + w·(g − m), fused as ATen's vectorised lerp.
        *m = L::splat(h.one_minus_beta1).mul_add(*g - *m, *m);
        // exp_avg_sq.mul_(β₂).addcmul_(g, g, value=1 − β₂): v·β₂, then + (value·g)·g.
        *v = *v * L::splat(h.beta2);
        *v = *v + L::splat(h.one_minus_beta2) * *g * *g;
        let denom = v.sqrt() / L::splat(h.bias_correction2_sqrt) + L::splat(h.eps);
        // param.addcdiv_(m, denom, value): p + (value·m)/denom.
        *p = *p + L::splat(h.neg_step_size) * *m / denom;
    }
    let len = p.len().min(g.len()).min(m.len()).min(v.len());
    let whole = len - len % 8;
    for i in (0..whole).step_by(8) {
        let mut x = [load(p, i), load(g, i), load(m, i), load(v, i)];
        rule(&mut x, h);
        store(p, i, x[0]);
        store(m, i, x[2]);
        store(v, i, x[3]);
    }
    for i in whole..len {
        let mut x = [p[i], g[i], m[i], v[i]];
        rule(&mut x, h);
        (p[i], m[i], v[i]) = (x[0], x[2], x[3]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::mem::size_of;

    #[test]
    fn sizes_are_as_documented() {
        assert_eq!(size_of::<Optimizer>(), 40);
        assert_eq!(size_of::<Optim<27, 10, 3, 64>>(), 33_144);
        assert_eq!(size_of::<Optim<27, 10, 3, 200>>(), 98_424);
    }

    /// The eight-wide path and the one-by-one tail compute the same values: a tensor of 8·k + 3
    /// floats updated whole equals its elements updated one at a time.
    #[test]
    fn lanes_and_tail_agree() {
        let n = 19;
        let p0: [f32; 19] = core::array::from_fn(|i| (i as f32 - 9.0) * 0.37);
        let g: [f32; 19] = core::array::from_fn(|i| ((i * 7 % 11) as f32 - 5.0) * 0.11);
        for nesterov in [false, true] {
            let (mut p, mut b) = (p0, [0.5f32; 19]);
            momentum(&mut p, &g, &mut b, 0.1, 0.9, nesterov);
            for i in 0..n {
                let (mut q, mut c) = ([p0[i]], [0.5f32]);
                momentum(&mut q, &g[i..=i], &mut c, 0.1, 0.9, nesterov);
                assert_eq!((q[0], c[0]), (p[i], b[i]), "momentum {i}");
            }
        }
        let h = AdamW::at(0.01, 3, 0.9, 0.99, 1e-8, 0.01);
        let (mut p, mut m, mut v) = (p0, [0.25f32; 19], [0.5f32; 19]);
        adamw(&mut p, &g, &mut m, &mut v, &h);
        for i in 0..n {
            let (mut q, mut mi, mut vi) = ([p0[i]], [0.25f32], [0.5f32]);
            adamw(&mut q, &g[i..=i], &mut mi, &mut vi, &h);
            assert_eq!((q[0], mi[0], vi[0]), (p[i], m[i], v[i]), "adamw {i}");
        }
    }

    /// An absent symbol (embedding row 0, bias −∞, gradient 0) stays absent under every rule.
    #[test]
    fn absent_symbols_stay_absent() {
        for rule in [
            Optimizer::Sgd,
            Optimizer::Momentum {
                momentum: 0.9,
                nesterov: true,
            },
            Optimizer::ADAMW_MAKEMORE,
        ] {
            let mut p = Params::<27, 2, 1, 8>::zeroed();
            p.gain = [1.0; 8];
            p.init_absent(20);
            let mut g = Params::<27, 2, 1, 8>::zeroed();
            g.gain = [0.5; 8];
            let mut optim = Optim::new(rule);
            for _ in 0..3 {
                optim.update(&mut p, &g, 0.1);
            }
            assert_eq!(p.symbols(), 20, "{rule:?}");
            assert!(p.c[20..].iter().all(|r| r == &[0.0; 2]), "{rule:?}");
            assert!(p.gain[0] < 1.0, "{rule:?}: {:?}", p.gain);
            assert_eq!(optim.updates, 3);
        }
    }
}
