//! The seven parameter tensors, their initialisation, and the SGD update.
//!
//! Gradients have the same type as the parameters: `dC` is `grads.c`, `dW1` is `grads.w1`, …

use crate::random::standard_normal;
use crate::shape::ShapeCheck;
use core::ops::Range;
use rand_core::Rng;

/// Parameters (or their gradients) of the V → E·T → H → V MLP.
///
/// V is the vocabulary's capacity. A model of fewer symbols v < V has absent symbols v..V (see
/// [`Params::init_with_symbols`]).
///
/// Shapes: `c` [V][E], `w1` [T][E][H] (the T·E concatenated inputs need no `T*E` const
/// expression), `b1`, `gain`, `bias` [H], `w2t` [V][H], `b2` [V].
///
/// W2 is stored transposed, out × in as `torch.nn.Linear` stores its weight: `w2t[k][j]` is
/// makemore's `W2[j][k]`. Rows of H floats make the output layer's gradients (dh, dW2) the same
/// row-times-matrix loops as the first layer's, over a width that is a multiple of 8.
/// Size: 4·(V·E + T·E·H + 3·H + V·H + V) bytes: 16,548 for 27→10→30→64→27, 49,188 with
/// hidden 200 (asserted in the tests below).
///
/// Shape rules are checked at compile time. A hidden width that is a multiple of 8 builds:
/// ```
/// let p = charmlp_core::Params::<27, 10, 3, 200>::zeroed();
/// ```
/// and one that is not is a compile error, not a run-time one:
/// ```compile_fail
/// let p = charmlp_core::Params::<27, 10, 3, 60>::zeroed();
/// ```
/// Likewise a training batch needs two examples for Bessel's correction:
/// ```
/// let s = charmlp_core::TrainState::<32, 64, 2>::new();
/// ```
/// ```compile_fail
/// let s = charmlp_core::TrainState::<32, 64, 1>::new();
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct Params<const V: usize, const E: usize, const T: usize, const H: usize> {
    pub c: [[f32; E]; V],
    pub w1: [[[f32; H]; E]; T],
    pub b1: [f32; H],
    pub gain: [f32; H],
    pub bias: [f32; H],
    pub w2t: [[f32; H]; V],
    pub b2: [f32; V],
}

impl<const V: usize, const E: usize, const T: usize, const H: usize> Params<V, E, T, H> {
    /// Names of the tensors, in the order of [`Params::tensors`] and of the model file.
    pub const NAMES: [&'static str; 7] = ["C", "W1", "b1", "gain", "bias", "W2T", "b2"];

    /// Number of scalars in all seven tensors.
    pub const COUNT: usize = V * E + T * E * H + 3 * H + H * V + V;

    /// All zeros; `const` so that firmware can hold a model in a `static`.
    pub const fn zeroed() -> Self {
        let () = ShapeCheck::<V, E, T, H>::OK;
        Params {
            c: [[0.0; E]; V],
            w1: [[[0.0; H]; E]; T],
            b1: [0.0; H],
            gain: [0.0; H],
            bias: [0.0; H],
            w2t: [[0.0; H]; V],
            b2: [0.0; V],
        }
    }

    /// The bias of an absent symbol: logit −∞, so probability exactly 0.
    pub const ABSENT_BIAS: f32 = f32::NEG_INFINITY;

    /// makemore part 4's initialisation of all V symbols; see [`Params::init_with_symbols`].
    pub fn init<R: Rng + ?Sized>(&mut self, rng: &mut R) {
        self.init_with_symbols(rng, V);
    }

    /// makemore part 4's initialisation for a vocabulary of `symbols` ≤ V, in its draw order
    /// (C, W1, b1, W2, b2, gain, bias; W2 in its stored, transposed order):
    /// C ~ N(0,1), W1 ~ N(0,1)·(5/3)/√(T·E), b1, W2, b2, bias ~ N(0,1)·0.1, gain ~ 1 + N(0,1)·0.1.
    /// Only the present symbols' rows are drawn, so the draws are those of a model of exactly
    /// `symbols` symbols.
    ///
    /// Symbols `symbols..V` are absent: embedding and W2ᵀ rows 0 and bias
    /// [`Params::ABSENT_BIAS`]. Their logit is −∞ and their probability exactly 0, so their
    /// gradients (p − onehot = 0 for every row, as no target is absent) are exactly 0 and SGD
    /// never moves them: the model computes what a model of `symbols` symbols computes.
    /// In place, so that no parameter-sized value passes through the stack.
    ///
    /// Panics if `symbols` is not in 2..=V.
    pub fn init_with_symbols<R: Rng + ?Sized>(&mut self, rng: &mut R, symbols: usize) {
        assert!(
            (2..=V).contains(&symbols),
            "symbols {symbols} not in 2..={V}"
        );
        let fan_in = (T * E) as f32;
        let w1_scale = (5.0 / 3.0) / libm::sqrtf(fan_in);
        let mut fill = |xs: &mut [f32], scale: f32, offset: f32| {
            for x in xs {
                *x = offset + scale * standard_normal(rng);
            }
        };
        fill(self.c[..symbols].as_flattened_mut(), 1.0, 0.0);
        fill(self.w1.as_flattened_mut().as_flattened_mut(), w1_scale, 0.0);
        fill(&mut self.b1, 0.1, 0.0);
        fill(self.w2t[..symbols].as_flattened_mut(), 0.1, 0.0);
        fill(&mut self.b2[..symbols], 0.1, 0.0);
        fill(&mut self.gain, 0.1, 1.0);
        fill(&mut self.bias, 0.1, 0.0);
        self.init_absent(symbols);
    }

    /// Makes symbols `symbols..V` absent: embedding and W2ᵀ rows 0, bias −∞.
    pub fn init_absent(&mut self, symbols: usize) {
        let symbols = symbols.min(V);
        self.c[symbols..].as_flattened_mut().fill(0.0);
        self.w2t[symbols..].as_flattened_mut().fill(0.0);
        self.b2[symbols..].fill(Self::ABSENT_BIAS);
    }

    /// Symbols before the first absent one: the model's vocabulary size.
    pub fn symbols(&self) -> usize {
        self.b2
            .iter()
            .position(|&b| b == Self::ABSENT_BIAS)
            .unwrap_or(V)
    }

    /// The seven tensors as flat slices, in [`Params::NAMES`] order.
    pub fn tensors(&self) -> [&[f32]; 7] {
        [
            self.c.as_flattened(),
            self.w1.as_flattened().as_flattened(),
            &self.b1,
            &self.gain,
            &self.bias,
            self.w2t.as_flattened(),
            &self.b2,
        ]
    }

    /// The seven tensors as flat mutable slices, in [`Params::NAMES`] order.
    pub fn tensors_mut(&mut self) -> [&mut [f32]; 7] {
        [
            self.c.as_flattened_mut(),
            self.w1.as_flattened_mut().as_flattened_mut(),
            &mut self.b1,
            &mut self.gain,
            &mut self.bias,
            self.w2t.as_flattened_mut(),
            &mut self.b2,
        ]
    }

    /// Sets every scalar to zero, in place.
    pub fn fill_zero(&mut self) {
        for tensor in self.tensors_mut() {
            tensor.fill(0.0);
        }
    }

    /// The output layer's tensors, W2ᵀ and b2, as positions in [`Params::NAMES`]' order.
    pub const OUTPUT_LAYER: Range<usize> = 5..7;

    /// The other tensors, C, W1, b1, gain and bias, as positions in [`Params::NAMES`]' order.
    pub const BELOW_OUTPUT: Range<usize> = 0..5;

    /// SGD: p ← p − lr·g for every parameter.
    pub fn sgd(&mut self, grads: &Self, lr: f32) {
        self.sgd_tensors(grads, lr, 0..Self::NAMES.len());
    }

    /// SGD on the tensors at positions `which` of [`Params::NAMES`]' order, the others left as
    /// they are: the step takes its SGD in parts ([`Params::OUTPUT_LAYER`], then
    /// [`Params::BELOW_OUTPUT`]), each as soon as its backward is done with the tensors.
    pub fn sgd_tensors(&mut self, grads: &Self, lr: f32, which: Range<usize>) {
        let neg_lr = wide::f32x8::splat(-lr);
        let tensors = self.tensors_mut().into_iter().zip(grads.tensors());
        for (p, g) in tensors.take(which.end).skip(which.start) {
            crate::simd::zip_map(p, g, |p, g| neg_lr.mul_add(g, p), |p, g| p - lr * g);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::mem::size_of;
    use rand_core::SeedableRng;
    use rand_xoshiro::Xoshiro256PlusPlus;

    #[test]
    fn sizes_are_as_documented() {
        assert_eq!(Params::<27, 10, 3, 64>::COUNT, 4_137);
        assert_eq!(size_of::<Params<27, 10, 3, 64>>(), 16_548);
        assert_eq!(
            size_of::<Params<27, 10, 3, 64>>(),
            4 * Params::<27, 10, 3, 64>::COUNT
        );
        assert_eq!(Params::<27, 10, 3, 200>::COUNT, 12_297);
        assert_eq!(size_of::<Params<27, 10, 3, 200>>(), 49_188);
        assert_eq!(
            size_of::<Params<128, 10, 3, 64>>(),
            4 * (128 * 10 + 30 * 64 + 3 * 64 + 128 * 64 + 128)
        );
        let p = Params::<27, 10, 3, 64>::zeroed();
        let total: usize = p.tensors().iter().map(|t| t.len()).sum();
        assert_eq!(total, Params::<27, 10, 3, 64>::COUNT);
    }

    fn mean_and_sd(xs: &[f32]) -> (f32, f32) {
        let n = xs.len() as f32;
        let mean = xs.iter().sum::<f32>() / n;
        let var = xs.iter().map(|x| (x - mean) * (x - mean)).sum::<f32>() / (n - 1.0);
        (mean, libm::sqrtf(var))
    }

    #[test]
    fn init_has_makemores_scales() {
        // Hidden 200 gives enough samples per tensor for the sample sd to be within ~10%.
        let mut p = Params::<27, 10, 3, 200>::zeroed();
        p.init(&mut Xoshiro256PlusPlus::seed_from_u64(7));
        let w1_sd = (5.0 / 3.0) / libm::sqrtf(30.0);
        let expect = [
            ("C", 0.0, 1.0, p.c.as_flattened()),
            ("W1", 0.0, w1_sd, p.w1.as_flattened().as_flattened()),
            ("b1", 0.0, 0.1, &p.b1[..]),
            ("gain", 1.0, 0.1, &p.gain[..]),
            ("bias", 0.0, 0.1, &p.bias[..]),
            ("W2T", 0.0, 0.1, p.w2t.as_flattened()),
        ];
        for (name, mean, sd, xs) in expect {
            let (m, s) = mean_and_sd(xs);
            assert!(
                (m - mean).abs() < 0.25 * sd,
                "{name}: mean {m}, want {mean}"
            );
            assert!((s / sd - 1.0).abs() < 0.12, "{name}: sd {s}, want {sd}");
        }
    }

    #[test]
    fn absent_symbols_draw_nothing_and_have_bias_minus_infinity() {
        let mut exact = Params::<27, 4, 2, 8>::zeroed();
        exact.init(&mut Xoshiro256PlusPlus::seed_from_u64(9));
        let mut padded = Params::<40, 4, 2, 8>::zeroed();
        padded.init_with_symbols(&mut Xoshiro256PlusPlus::seed_from_u64(9), 27);
        assert_eq!(padded.symbols(), 27);
        assert_eq!(exact.symbols(), 27);
        assert_eq!(padded.c[..27], exact.c[..]);
        assert_eq!(padded.w1, exact.w1);
        assert_eq!(padded.w2t[..27], exact.w2t[..]);
        assert_eq!(padded.b2[..27], exact.b2[..]);
        assert_eq!(padded.gain, exact.gain);
        assert!(padded.c[27..].iter().all(|r| r == &[0.0; 4]));
        assert!(padded.w2t[27..].iter().all(|r| r == &[0.0; 8]));
        assert!(padded.b2[27..].iter().all(|&b| b == f32::NEG_INFINITY));
    }

    #[test]
    fn sgd_moves_against_the_gradient() {
        let mut p = Params::<27, 2, 1, 8>::zeroed();
        let mut g = Params::<27, 2, 1, 8>::zeroed();
        p.gain = [1.0; 8];
        g.gain = [0.5, -0.5, 0.0, 2.0, 0.0, 0.0, 0.0, 0.0];
        g.c[3][1] = 4.0;
        p.sgd(&g, 0.1);
        assert_eq!(p.gain, [0.95, 1.05, 1.0, 0.8, 1.0, 1.0, 1.0, 1.0]);
        assert_eq!(p.c[3], [0.0, -0.4]);
        g.fill_zero();
        assert!(g.tensors().iter().all(|t| t.iter().all(|&x| x == 0.0)));
    }

    /// The two parts are the named tensors, together every tensor once: SGD on one part moves
    /// exactly its tensors, and the parts in turn are the whole SGD.
    #[test]
    fn sgd_in_parts_is_sgd() {
        type P = Params<27, 2, 3, 8>;
        let names = |r: Range<usize>| P::NAMES[r].to_vec();
        assert_eq!(names(P::OUTPUT_LAYER), ["W2T", "b2"]);
        assert_eq!(names(P::BELOW_OUTPUT), ["C", "W1", "b1", "gain", "bias"]);
        let (mut p, mut g) = (P::zeroed(), P::zeroed());
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(4);
        p.init(&mut rng);
        g.init(&mut rng);
        let mut whole = p.clone();
        whole.sgd(&g, 0.1);
        let mut parts = p.clone();
        parts.sgd_tensors(&g, 0.1, P::OUTPUT_LAYER);
        for (i, (moved, before)) in parts.tensors().iter().zip(p.tensors()).enumerate() {
            assert_eq!(
                *moved != before,
                P::OUTPUT_LAYER.contains(&i),
                "{}",
                P::NAMES[i]
            );
        }
        parts.sgd_tensors(&g, 0.1, P::BELOW_OUTPUT);
        assert_eq!(parts, whole);
    }
}
