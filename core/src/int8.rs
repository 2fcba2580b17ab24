//! int8 inference: the model with int8 weights and integer-only arithmetic, as CMSIS-NN and
//! TensorFlow Lite Micro run a quantised network, for cores without an FPU (a Cortex-M0 samples
//! names with adds, multiplies and shifts). [`Int8Model::quantize`] makes one from a [`Model`]
//! (see [`crate::quantize`]).
//!
//! For a context x [T], with batch norm folded into the first layer:
//!
//! ```text
//! hpreact_j = b1_j + Σ_t Σ_e C[x_t][e]·W1[t][e][j]      int32, scale s_C·s1_j
//! code_j    = clamp(requant(hpreact_j, to_tanh_j))      int8, the tanh input in steps of s_tanh
//! h_j       = TANH[code_j + 128]                        int8, h_j / 127
//! acc_k     = b2_k + Σ_j h_j·W2ᵀ[k][j]                  int32, scale s2_k / 127
//! logit_k   = requant(acc_k, to_logit_k)                int32, in steps of ln 2 / 64 nat
//! weight_k  = max(1, 2²⁴ · 2^(−(max − logit_k)/64))      u32: a 64-entry table and a shift
//! p_k       = weight_k / Σ weight
//! ```
//!
//! Every step is exact integer arithmetic, so a host and a device compute the same logits,
//! draw the same names from the same generator and report the same loss, to the last bit.
//! A weight is at least 1: no present symbol has probability 0, so the loss is finite; the
//! weights sum to at most 128·2²⁴ = 2³¹.

use crate::alphabet::{Alphabet, MAX_SYMBOLS};
use crate::random::below;
use crate::sample::{Drawing, Sampling};
use crate::vocab::{CountedExample, Example, Token};
use core::num::NonZeroU32;
use heapless::String;
use rand_core::Rng;

/// A positive real multiplier in fixed point, as TensorFlow Lite's requantisation holds one:
/// `multiplier · 2^(shift − 31)`, with `multiplier` in [2³⁰, 2³¹) (or 0, the multiplier 0) and
/// `shift` in −31..=30. Size: 8 bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Requant {
    pub multiplier: i32,
    pub shift: i8,
}

impl Requant {
    /// Multiplies by nothing: every value becomes 0.
    pub const ZERO: Requant = Requant {
        multiplier: 0,
        shift: 0,
    };

    /// The largest multiplier: (2³¹ − 1)·2⁻¹, just below 2³⁰.
    pub const LARGEST: Requant = Requant {
        multiplier: i32::MAX,
        shift: 30,
    };

    /// round(acc · multiplier / 2^(31 − shift)), halves rounded up, saturated to i32.
    ///
    /// The product of two i32 is at most 2⁶², and the rounding term at most 2⁶¹: no i64
    /// overflow.
    pub fn apply(self, acc: i32) -> i32 {
        let down = (31 - i32::from(self.shift)).clamp(1, 62) as u32;
        let product = i64::from(acc) * i64::from(self.multiplier);
        let rounded = (product + (1i64 << (down - 1))) >> down;
        rounded.clamp(i64::from(i32::MIN), i64::from(i32::MAX)) as i32
    }
}

/// Steps of a logit in one halving of probability: a logit unit is ln 2 / 64 nat.
pub const LOGIT_STEPS_PER_HALVING: u32 = 64;

/// 2²⁴ · 2^(−f/64) for f in 0..64, rounded: the fractional part of a logit's distance below
/// the maximum ([`Int8Model::weights`]). Checked against f64 in the tests.
pub const POW2_Q24: [u32; 64] = [
    16777216, 16596492, 16417715, 16240863, 16065917, 15892855, 15721658, 15552304, 15384775,
    15219050, 15055111, 14892937, 14732511, 14573813, 14416824, 14261526, 14107901, 13955931,
    13805598, 13656884, 13509772, 13364245, 13220286, 13077877, 12937002, 12797645, 12659789,
    12523418, 12388516, 12255067, 12123055, 11992466, 11863283, 11735492, 11609078, 11484025,
    11360319, 11237946, 11116891, 10997140, 10878679, 10761494, 10645571, 10530897, 10417458,
    10305242, 10194234, 10084422, 9975792, 9868333, 9762032, 9656875, 9552851, 9449948, 9348154,
    9247455, 9147842, 9049301, 8951823, 8855394, 8760003, 8665641, 8572295, 8479954,
];

/// The quantised model: int8 weights with a scale per output channel, int32 biases, fixed-point
/// requantisation and a tanh table. Shapes as [`crate::Params`]'s: `c` [V][E], `w1` [T][E][H],
/// `w2t` [V][H]. Symbols `symbols..V` are absent: weight 0, never drawn.
///
/// Size: V·E + T·E·H + 4H + 8H + 256 + V·H + 4V + 8V + 1 bytes, rounded up to 4: 5,268 for
/// makemore's 27 → 10 → 30 → 64 → 27 (the f32 model's is 17,060), 14,652 with hidden 200.
/// (Each [`Requant`] holds 3 bytes of padding, 273 of the 5,268: kept for clarity.)
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Int8Model<const V: usize, const E: usize, const T: usize, const H: usize> {
    /// The embedding, one scale for the whole table (it is the first layer's input).
    pub c: [[i8; E]; V],
    /// W1 with batch norm's gain·(var + ε)^−½ folded in, one scale per hidden unit.
    pub w1: [[[i8; H]; E]; T],
    /// b1 with batch norm folded in: (b1 − mean)·gain·(var + ε)^−½ + bias.
    pub b1: [i32; H],
    /// hpreact → tanh's input code, per hidden unit.
    pub to_tanh: [Requant; H],
    /// 127·tanh(code·s_tanh), rounded, at code + 128.
    pub tanh: [i8; 256],
    /// W2ᵀ, one scale per output symbol.
    pub w2t: [[i8; H]; V],
    pub b2: [i32; V],
    /// The output layer's sums → logits in steps of ln 2 / 64, per output symbol.
    pub to_logit: [Requant; V],
    /// Symbols present: 0..symbols.
    pub symbols: u8,
}

/// Activations of one integer inference. Size: H + 8V bytes (280 for hidden 64 and 27 symbols,
/// 416 for hidden 200).
#[derive(Clone, Debug)]
pub struct Int8State<const V: usize, const H: usize> {
    pub h: [i8; H],
    pub logits: [i32; V],
    /// Unnormalised probabilities, summing to `sum`.
    pub weights: [u32; V],
}

impl<const V: usize, const H: usize> Int8State<V, H> {
    pub const fn new() -> Self {
        Int8State {
            h: [0; H],
            logits: [0; V],
            weights: [0; V],
        }
    }
}

impl<const V: usize, const H: usize> Default for Int8State<V, H> {
    fn default() -> Self {
        Self::new()
    }
}

/// A loss summed in fixed point: Σ −log2 p in units of 2⁻¹⁶ bit, over `n` examples.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Int8Loss {
    pub bits_q16: u64,
    pub n: u64,
}

impl Int8Loss {
    /// The mean loss in nats, times 10⁴, rounded (half up): an integer a device prints as the
    /// host does. `None` over no examples.
    pub fn nats_e4(&self) -> Option<u64> {
        // nats · 10⁴ = bits_q16 / 2¹⁶ / n · ln 2 · 10⁴ = bits_q16 · 693,147 / (n · 2¹⁶ · 100).
        // bits_q16 < 2⁴⁰ for any split below 2²⁰ examples (each below 2⁵ bits), and the product
        // below 2⁶⁰; it is widened to u128 all the same, for any n.
        const LN2_E6: u128 = 693_147;
        let denominator = u128::from(self.n) << 16;
        let denominator = denominator.checked_mul(100).filter(|&d| d > 0)?;
        let numerator = u128::from(self.bits_q16) * LN2_E6;
        Some(((numerator + denominator / 2) / denominator) as u64)
    }

    /// The mean loss in nats, in f64 (for a host).
    pub fn nats(&self) -> Option<f64> {
        (self.n > 0)
            .then(|| self.bits_q16 as f64 / 65_536.0 / self.n as f64 * core::f64::consts::LN_2)
    }
}

/// log2(x) for x ≥ 1, in units of 2⁻¹⁶, by repeated squaring of the mantissa (each square
/// doubles its logarithm and gives one more bit). Each square's truncation can only lower the
/// result: it is below the logarithm by less than 1.001 units (1.00003 is the worst seen, at
/// 14,917). log2(0) is 0.
pub fn log2_q16(x: u32) -> u32 {
    if x == 0 {
        return 0;
    }
    let whole = 31 - x.leading_zeros();
    // The mantissa in [1, 2) with 31 fraction bits.
    let mut m = u64::from(x) << (31 - whole);
    let mut fraction = 0u32;
    for _ in 0..16 {
        m = (m * m) >> 31;
        fraction <<= 1;
        if m >= 1 << 32 {
            fraction |= 1;
            m >>= 1;
        }
    }
    (whole << 16) | fraction
}

impl<const V: usize, const E: usize, const T: usize, const H: usize> Int8Model<V, E, T, H> {
    /// Every weight 0, no symbol present; `const` so that firmware can hold one in a `static`.
    pub const fn zeroed() -> Self {
        let () = crate::shape::ShapeCheck::<V, E, T, H>::OK;
        Int8Model {
            c: [[0; E]; V],
            w1: [[[0; H]; E]; T],
            b1: [0; H],
            to_tanh: [Requant::ZERO; H],
            tanh: [0; 256],
            w2t: [[0; H]; V],
            b2: [0; V],
            to_logit: [Requant::ZERO; V],
            symbols: 0,
        }
    }

    /// The symbols present, at most V (and [`MAX_SYMBOLS`]).
    pub fn symbols(&self) -> usize {
        usize::from(self.symbols).min(V).min(MAX_SYMBOLS)
    }

    /// context [T] → h [H]: the first layer with batch norm folded in, then tanh by table.
    pub fn hidden(&self, context: &[Token; T], h: &mut [i8; H]) {
        let mut hpreact = self.b1;
        for (token, w1t) in context.iter().zip(&self.w1) {
            for (&x, w1te) in self.c[token.index()].iter().zip(w1t) {
                let x = i32::from(x);
                for (acc, &w) in hpreact.iter_mut().zip(w1te) {
                    *acc = acc.wrapping_add(x * i32::from(w));
                }
            }
        }
        for ((h, &acc), &to_tanh) in h.iter_mut().zip(&hpreact).zip(&self.to_tanh) {
            let code = to_tanh.apply(acc).clamp(-128, 127);
            *h = self.tanh[(code + 128) as usize];
        }
    }

    /// Logits of the next symbol after `context`, in steps of ln 2 / 64 nat, in
    /// `state.logits` (absent symbols' are 0 and mean nothing).
    pub fn logits<'s>(&self, context: &[Token; T], state: &'s mut Int8State<V, H>) -> &'s [i32; V] {
        self.hidden(context, &mut state.h);
        let n = self.symbols();
        for k in 0..V {
            state.logits[k] = if k < n {
                let mut acc = self.b2[k];
                for (&h, &w) in state.h.iter().zip(&self.w2t[k]) {
                    acc = acc.wrapping_add(i32::from(h) * i32::from(w));
                }
                self.to_logit[k].apply(acc)
            } else {
                0
            };
        }
        &state.logits
    }

    /// The next symbol's probabilities as weights (see the module's table) in `state.weights`,
    /// and their sum. Absent symbols weigh 0; a present one at least 1.
    pub fn weights(&self, context: &[Token; T], state: &mut Int8State<V, H>) -> NonZeroU32 {
        self.logits(context, state);
        let n = self.symbols().max(1);
        let max = state.logits[..n].iter().copied().max().unwrap_or(0);
        let mut sum = 0u32;
        for (k, (w, &logit)) in state.weights.iter_mut().zip(&state.logits).enumerate() {
            *w = if k < n {
                let below = max.abs_diff(logit);
                let halvings = below / LOGIT_STEPS_PER_HALVING;
                let fraction = (below % LOGIT_STEPS_PER_HALVING) as usize;
                POW2_Q24[fraction].checked_shr(halvings).unwrap_or(0).max(1)
            } else {
                0
            };
            sum += *w;
        }
        // n ≥ 1 weights of at least 1 each, and at most MAX_SYMBOLS of at most 2²⁴.
        NonZeroU32::new(sum).unwrap_or(NonZeroU32::MIN)
    }

    /// −log2 p(target | context) in units of 2⁻¹⁶ bit.
    pub fn nll_bits_q16(&self, example: &Example<T>, state: &mut Int8State<V, H>) -> u32 {
        let sum = self.weights(&example.context, state);
        let weight = state.weights[example.target.index()];
        log2_q16(sum.get()).saturating_sub(log2_q16(weight.max(1)))
    }

    /// The loss over examples built one by one (a split packed in flash). Each costs less than
    /// 2²¹ units: the sum saturates only past 2⁴³ examples.
    pub fn loss_each(
        &self,
        examples: impl IntoIterator<Item = Example<T>>,
        state: &mut Int8State<V, H>,
    ) -> Int8Loss {
        let mut loss = Int8Loss::default();
        for ex in examples {
            let nll = u64::from(self.nll_bits_q16(&ex, state));
            loss.bits_q16 = loss.bits_q16.saturating_add(nll);
            loss.n = loss.n.saturating_add(1);
        }
        loss
    }

    /// [`Int8Model::loss_each`] of a split given as distinct examples and their counts, grouped
    /// by context (a host's evaluation): the weights once per run of equal contexts. The same
    /// sum as over every example one by one, exactly: it is integer arithmetic.
    pub fn loss_counted(
        &self,
        counted: &[CountedExample<T>],
        state: &mut Int8State<V, H>,
    ) -> Int8Loss {
        let mut loss = Int8Loss::default();
        for run in counted.chunk_by(|a, b| a.example.context == b.example.context) {
            let sum = log2_q16(self.weights(&run[0].example.context, state).get());
            for c in run {
                let weight = state.weights[c.example.target.index()].max(1);
                let nll = sum.saturating_sub(log2_q16(weight));
                // Saturating: counts are the caller's (a split's are far below the limit).
                let bits = c.count.saturating_mul(u64::from(nll));
                loss.bits_q16 = loss.bits_q16.saturating_add(bits);
                loss.n = loss.n.saturating_add(c.count);
            }
        }
        loss
    }

    /// Draws the next symbol from the weights: uniform in 0..Σ weight, exactly, then the first
    /// symbol whose running sum passes it.
    pub fn draw<R: Rng + ?Sized>(
        &self,
        rng: &mut R,
        context: &[Token; T],
        state: &mut Int8State<V, H>,
    ) -> Token {
        let sum = self.weights(context, state);
        let mut left = below(rng, sum);
        for (k, &w) in state.weights.iter().enumerate() {
            if left < w {
                return Token::wrapping(k as u8, MAX_SYMBOLS);
            }
            left -= w;
        }
        // The weights sum to `sum` > left: never reached.
        Token::BOUNDARY
    }

    /// Samples one name at temperature 1, as [`crate::Model::sample_name`] does with the f32
    /// model: characters until the boundary, or until the next does not fit in N bytes.
    pub fn sample_name<R: Rng + ?Sized, const N: usize>(
        &self,
        rng: &mut R,
        state: &mut Int8State<V, H>,
        alphabet: &Alphabet<V>,
    ) -> String<N> {
        let how = Sampling::PLAIN;
        let mut drawing = Drawing::<T, N>::new();
        while drawing.is_open(&how) {
            let next = self.draw(rng, &drawing.context, state);
            drawing.take(next, alphabet);
        }
        drawing.name
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::mem::size_of;

    #[test]
    fn sizes_are_as_documented() {
        assert_eq!(size_of::<Requant>(), 8);
        assert_eq!(size_of::<Int8Model<27, 10, 3, 64>>(), 5_268);
        assert_eq!(size_of::<Int8Model<27, 10, 3, 200>>(), 14_652);
        assert_eq!(size_of::<Int8State<27, 64>>(), 280);
        assert_eq!(size_of::<Int8State<27, 200>>(), 416);
    }

    #[test]
    fn the_power_table_is_two_to_the_minus_f_over_64() {
        for (f, &q) in POW2_Q24.iter().enumerate() {
            let exact = libm::round(16_777_216.0 * libm::exp2(-(f as f64) / 64.0));
            assert_eq!(f64::from(q), exact, "f = {f}");
        }
    }

    #[test]
    fn requant_rounds_the_product_as_real_arithmetic_does() {
        // multiplier · 2^(shift − 31) for a few shifts, against exact rational arithmetic in i128.
        let cases = [
            (1 << 30, 0, 12345, 6173),          // 0.5 · 12345 = 6172.5 → 6173 (half up)
            (1 << 30, 0, -12345, -6172),        // −6172.5 → −6172 (half up)
            (1_518_500_250, -5, 1000, 22),      // 0.7071/32 · 1000 = 22.1
            (i32::MAX, 30, i32::MAX, i32::MAX), // saturates
            (i32::MAX, 30, i32::MIN, i32::MIN),
            (0, 0, 99, 0),
        ];
        for (multiplier, shift, acc, want) in cases {
            let r = Requant { multiplier, shift };
            assert_eq!(r.apply(acc), want, "{r:?} · {acc}");
        }
        // Exhaustively over a grid: floor((acc·m + 2^(d−1)) / 2^d) in i128.
        for shift in [-31i8, -20, -8, 0, 7, 30] {
            for m in [1 << 30, 1_234_567_891, i32::MAX] {
                for acc in [-3_000_001, -65_537, -1, 0, 1, 2, 77, 65_535, 4_000_000] {
                    let d = 31 - i32::from(shift);
                    let exact = (i128::from(acc) * i128::from(m) + (1i128 << (d - 1))) >> d;
                    let want = exact.clamp(i128::from(i32::MIN), i128::from(i32::MAX)) as i32;
                    let r = Requant {
                        multiplier: m,
                        shift,
                    };
                    assert_eq!(r.apply(acc), want, "{r:?} · {acc}");
                }
            }
        }
    }

    #[test]
    fn log2_q16_is_within_one_unit_below_the_logarithm() {
        // The worst a review found: 1.00003 units below.
        let exact = libm::log2(14_917.0) * 65_536.0;
        assert!(exact - f64::from(log2_q16(14_917)) < 1.001);
        let mut x = 1u32;
        let mut checked = 0;
        while x < u32::MAX / 3 {
            for y in [x, x + 1, x.saturating_mul(3) / 2] {
                let exact = libm::log2(f64::from(y)) * 65_536.0;
                let got = f64::from(log2_q16(y));
                assert!(
                    got <= exact + 1e-6 && got > exact - 1.001,
                    "{y}: {got} vs {exact}"
                );
                checked += 1;
            }
            x += x / 4 + 1;
        }
        assert!(checked > 200);
        assert_eq!(log2_q16(1), 0);
        assert_eq!(log2_q16(1 << 24), 24 << 16);
        assert_eq!(log2_q16(u32::MAX), (32 << 16) - 1);
    }

    #[test]
    fn the_loss_in_nats_is_rounded_as_printed() {
        // 3 examples of 1 bit each: ln 2 = 0.693147… nats → 6931.
        let one_bit = Int8Loss {
            bits_q16: 3 << 16,
            n: 3,
        };
        assert_eq!(one_bit.nats_e4(), Some(6931));
        assert!((one_bit.nats().unwrap() - core::f64::consts::LN_2).abs() < 1e-15);
        assert_eq!(Int8Loss::default().nats_e4(), None);
        assert_eq!(Int8Loss::default().nats(), None);
        let huge = Int8Loss {
            bits_q16: u64::MAX,
            n: u64::MAX,
        };
        assert_eq!(huge.nats_e4(), Some(0));
    }
}
