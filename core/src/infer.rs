//! Inference with the stored batch-norm statistics: one context at a time ([`InferState`], what
//! firmware uses), or many side by side ([`InferRows`], a host's evaluation, calibration and
//! sampling), with the same results bit for bit.
//!
//! Both reuse the fast path's layers: the same code computes a training step's activations and
//! a sampled name's.

use crate::layers::{self, NllSum};
use crate::model::Model;
use crate::vocab::{CountedExample, Example, Token};
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
        nll_of_logits(&mut state.logits, example.target)
    }

    /// Mean cross-entropy over a split (accumulated in f64 as training's loss is), or `None`
    /// for an empty split.
    pub fn loss(&self, examples: &[Example<T>], state: &mut InferState<V, H>) -> Option<f64> {
        self.loss_each(examples.iter().copied(), state)
    }

    /// [`Model::loss`] over examples built one by one (a split packed in flash): the same
    /// value for the same examples in the same order.
    pub fn loss_each(
        &self,
        examples: impl IntoIterator<Item = Example<T>>,
        state: &mut InferState<V, H>,
    ) -> Option<f64> {
        let mut total = NllSum::new();
        let mut n = 0u64;
        for ex in examples {
            self.logits(&ex.context, state);
            let logit_y = state.logits[ex.target.index()];
            total.add(layers::logsumexp_row(&mut state.logits), logit_y);
            n += 1;
        }
        (n > 0).then(|| total.total() / n as f64)
    }
}

/// −ln softmax(logits)[target], as [`Model::nll`] computes it; `logits` become exp(logits − max).
fn nll_of_logits<const V: usize>(logits: &mut [f32; V], target: Token) -> f64 {
    let logit_y = logits[target.index()];
    let (max, sum) = layers::logsumexp_row(logits);
    (f64::from(max) - f64::from(logit_y)) + libm::log(f64::from(sum))
}

/// Activations of up to R inferences side by side, for a host: the contexts' products are tiled
/// as a training batch's are (the output layer's against a transposed copy of W2ᵀ, made in each
/// call), and independent contexts overlap in the pipeline instead of each waiting for the
/// last. Each row's logits are those of [`Model::logits`], bit for bit (every output is the same
/// chain of operations; only independent ones are reordered). Size: 4·(R·(H + VP) + H·VP)
/// bytes, 20,480 for R = 32, hidden 64 and makemore's 27. Firmware infers one context at a time
/// with an [`InferState`].
#[derive(Clone, Debug)]
pub struct InferRows<const V: usize, const VP: usize, const H: usize, const R: usize> {
    /// hprebn, then hpreact, then h, in place, one row per context.
    pub h: [[f32; H]; R],
    /// logits (padded with −∞ to VP), or probabilities after [`Model::probs_rows`].
    pub logits: [[f32; VP]; R],
    /// W2 [H][VP], for the output layer.
    w2: [[f32; VP]; H],
}

impl<const V: usize, const VP: usize, const H: usize, const R: usize> InferRows<V, VP, H, R> {
    pub const fn new() -> Self {
        let () = crate::shape::PadCheck::<V, VP>::OK;
        InferRows {
            h: [[0.0; H]; R],
            logits: [[0.0; VP]; R],
            w2: [[0.0; VP]; H],
        }
    }

    /// Row r's V logits (or probabilities).
    pub fn row(&mut self, r: usize) -> &mut [f32; V] {
        self.logits[r]
            .first_chunk_mut::<V>()
            .expect("VP ≥ V, by PadCheck")
    }
}

impl<const V: usize, const VP: usize, const H: usize, const R: usize> Default
    for InferRows<V, VP, H, R>
{
    fn default() -> Self {
        Self::new()
    }
}

impl<const V: usize, const E: usize, const T: usize, const H: usize> Model<V, E, T, H> {
    /// [`Model::logits`] of up to R contexts at once, in rows 0..contexts.len() of
    /// `rows.logits` (each then padded with −∞).
    pub fn logits_rows<const VP: usize, const R: usize>(
        &self,
        contexts: &[[Token; T]],
        rows: &mut InferRows<V, VP, H, R>,
    ) {
        layers::transpose_w2(&mut rows.w2, &self.params.w2t);
        self.logits_rows_transposed(contexts, rows);
    }

    /// [`Model::logits_rows`] with `rows.w2` already this model's W2 (one transpose serves a
    /// whole split in [`Model::loss_counted`]).
    fn logits_rows_transposed<const VP: usize, const R: usize>(
        &self,
        contexts: &[[Token; T]],
        rows: &mut InferRows<V, VP, H, R>,
    ) {
        let p = &self.params;
        let n = contexts.len();
        let h = &mut rows.h[..n];
        layers::embed_linear_forward(h, contexts, &p.c, &p.w1, &p.b1);
        layers::batchnorm_inference_rows(h, &self.bn, &p.gain, &p.bias);
        layers::tanh_forward(h);
        layers::linear_forward_w2(&mut rows.logits[..n], h, &rows.w2, &p.b2);
    }

    /// [`Model::probs_top_k`] of up to R contexts at once: row r's in `rows.row(r)` (its
    /// padding 0).
    pub fn probs_rows<const VP: usize, const R: usize>(
        &self,
        contexts: &[[Token; T]],
        temperature: crate::Temperature,
        top_k: Option<usize>,
        rows: &mut InferRows<V, VP, H, R>,
    ) {
        self.logits_rows(contexts, rows);
        for logits in &mut rows.logits[..contexts.len()] {
            crate::sample::padded_logits_to_probs(logits, V, temperature, top_k);
        }
    }
}

impl<const V: usize, const E: usize, const T: usize, const H: usize> Model<V, E, T, H> {
    /// [`Model::loss`] of a split given as distinct examples and their counts (a host's
    /// `counted`): one forward per run of equal contexts, side by side R at a time, and
    /// Σ count·((max − logit_y) + ln s) in f64, divided by Σ count. The loss of the examples
    /// themselves to within f64 rounding (`counted_is_every_example`); names.txt needs 5,686
    /// forwards instead of 228,146. Runs that are not grouped by context give the same loss,
    /// more slowly. `None` if the counts sum to 0.
    pub fn loss_counted<const VP: usize, const R: usize>(
        &self,
        counted: &[CountedExample<T>],
        rows: &mut InferRows<V, VP, H, R>,
    ) -> Option<f64> {
        let n: u64 = counted.iter().map(|c| c.count).sum();
        if n == 0 {
            return None;
        }
        layers::transpose_w2(&mut rows.w2, &self.params.w2t);
        let mut total = 0.0;
        for_context_runs::<T, R>(counted, |contexts, runs| {
            self.logits_rows_transposed(contexts, rows);
            for (logits, run) in rows.logits.iter().zip(runs) {
                // (max, s) of a copy: the row itself keeps the targets' logits.
                let (max, s) = layers::logsumexp_padded(&mut logits.clone());
                let ln_s = libm::log(f64::from(s));
                for c in *run {
                    let logit_y = logits[c.example.target.index()];
                    let nll = (f64::from(max) - f64::from(logit_y)) + ln_s;
                    total += c.count as f64 * nll;
                }
            }
        });
        Some(total / n as f64)
    }

    /// [`Model::calibrate`] of a split given as distinct examples and their counts: hprebn once
    /// per run of equal contexts, added with the run's count as its weight
    /// ([`crate::BnCalibration::add_counted`]). The same statistics to within f64 rounding
    /// before they are rounded to f32. On error the model is left unchanged.
    pub fn calibrate_counted<const VP: usize, const R: usize>(
        &mut self,
        counted: &[CountedExample<T>],
        acc: &mut crate::BnCalibration<H>,
        rows: &mut InferRows<V, VP, H, R>,
    ) -> Result<(), crate::calibrate::TooFewRows> {
        *acc = crate::BnCalibration::new();
        let p = &self.params;
        for_context_runs::<T, R>(counted, |contexts, runs| {
            let h = &mut rows.h[..contexts.len()];
            layers::embed_linear_forward(h, contexts, &p.c, &p.w1, &p.b1);
            for (row, run) in h.iter().zip(runs) {
                acc.add_counted(row, run.iter().map(|c| c.count).sum());
            }
        });
        self.bn = acc.stats()?;
        Ok(())
    }
}

/// Calls `f` with up to R runs of equal adjacent contexts at a time, and their contexts.
fn for_context_runs<const T: usize, const R: usize>(
    counted: &[CountedExample<T>],
    mut f: impl FnMut(&[[Token; T]], &[&[CountedExample<T>]]),
) {
    let mut runs = counted.chunk_by(|a, b| a.example.context == b.example.context);
    loop {
        let mut batch: [&[CountedExample<T>]; R] = [&[]; R];
        let mut contexts = [[Token::BOUNDARY; T]; R];
        let mut n = 0;
        while n < R {
            let Some(run) = runs.next() else { break };
            (batch[n], contexts[n]) = (run, run[0].example.context);
            n += 1;
        }
        if n == 0 {
            return;
        }
        f(&contexts[..n], &batch[..n]);
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
        assert_eq!(core::mem::size_of::<InferRows<27, 32, 64, 32>>(), 20_480);
        assert_eq!(
            core::mem::size_of::<InferRows<27, 32, 200, 32>>(),
            4 * (32 * (200 + 32) + 200 * 32)
        );
    }

    /// A model with random parameters and statistics, and 77 examples (two whole chunks of 32
    /// and 13 more) over all tokens.
    fn model_and_examples() -> (crate::DefaultModel, [Example<3>; 77]) {
        use rand_core::{Rng, SeedableRng};
        let mut rng = rand_xoshiro::Xoshiro256PlusPlus::seed_from_u64(9);
        let mut m = crate::DefaultModel::zeroed();
        m.init(&mut rng);
        for (mean, var) in m.bn.mean.iter_mut().zip(m.bn.var.iter_mut()) {
            *mean = crate::random::standard_normal(&mut rng);
            *var = 0.5 + crate::random::uniform_f32(&mut rng);
        }
        let mut token = || Token::wrapping((rng.next_u32() % VOCAB as u32) as u8, VOCAB);
        let examples = core::array::from_fn(|_| Example {
            context: [token(), token(), token()],
            target: token(),
        });
        (m, examples)
    }

    /// Side by side is one at a time, bit for bit: probabilities, with a temperature and a
    /// top-k mask (the loss and statistics of a split: `counted_is_every_example`).
    #[test]
    fn rows_side_by_side_are_one_at_a_time() {
        let (m, examples) = model_and_examples();
        let mut one = InferState::new();
        let mut rows = InferRows::<VOCAB, 32, 64, 32>::new();
        let contexts: [[Token; 3]; 32] = core::array::from_fn(|i| examples[i].context);
        // Temperature 1 (the softmax alone), another, and greedy; all characters or the top 5.
        for t in [1.0, 0.7, 0.0] {
            for top_k in [None, Some(5)] {
                let how = crate::Temperature::new(t).unwrap();
                m.probs_rows(&contexts, how, top_k, &mut rows);
                for (r, context) in contexts.iter().enumerate() {
                    let want = *m.probs_top_k(context, how, top_k, &mut one);
                    let got = rows.row(r).map(f32::to_bits);
                    assert_eq!(got, want.map(f32::to_bits), "t {t}, top {top_k:?}, row {r}");
                    let kept = want.iter().filter(|&&p| p > 0.0).count();
                    let expected = match (t, top_k) {
                        (0.0, _) => kept == 1,
                        (_, Some(k)) => kept >= k && kept < VOCAB,
                        (_, None) => kept > 5,
                    };
                    assert!(expected, "t {t}, top {top_k:?}, row {r}: {kept} kept");
                    assert!(rows.logits[r][VOCAB..].iter().all(|&p| p == 0.0));
                }
            }
        }
    }

    /// A split's distinct examples with counts give its loss and statistics to f64 rounding,
    /// grouped by context or not, across chunks of R runs; counts summing to 0 or 1 are refused
    /// as the examples are.
    #[test]
    fn counted_is_every_example() {
        extern crate std;
        use std::vec::Vec;
        let (mut m, _) = model_and_examples();
        let mut state = 1u32;
        // 2,000 examples over 5 tokens: at most 125 contexts (4 chunks of 32), most repeated.
        let examples: Vec<Example<3>> = (0..2000)
            .map(|_| {
                let mut token = || {
                    state = state.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                    Token::wrapping((state >> 24) as u8 % 5, VOCAB)
                };
                Example {
                    context: [token(), token(), token()],
                    target: token(),
                }
            })
            .collect();
        let mut sorted = examples.clone();
        sorted.sort_by_key(|e| (e.context, e.target));
        let mut grouped: Vec<CountedExample<3>> = Vec::new();
        for e in sorted {
            match grouped.last_mut() {
                Some(last) if last.example == e => last.count += 1,
                _ => grouped.push(CountedExample {
                    example: e,
                    count: 1,
                }),
            }
        }
        assert!(grouped.len() < 800, "{}", grouped.len());
        let ones: Vec<_> = examples
            .iter()
            .map(|&example| CountedExample { example, count: 1 })
            .collect();
        let mut one = InferState::new();
        let mut rows = InferRows::<VOCAB, 32, 64, 32>::new();
        let want = m.loss(&examples, &mut one).unwrap();
        for counted in [&grouped, &ones] {
            let got = m.loss_counted(counted, &mut rows).unwrap();
            assert!((got - want).abs() <= 1e-12 * want, "{got} {want}");
        }
        let mut zero = grouped[..3].to_vec();
        zero.iter_mut().for_each(|c| c.count = 0);
        assert_eq!(m.loss_counted(&zero, &mut rows), None);
        assert_eq!(m.loss_counted(&[], &mut rows), None);

        let mut acc = crate::BnCalibration::new();
        let mut other = m.clone();
        m.calibrate(&examples, &mut acc, &mut one).unwrap();
        for counted in [&grouped, &ones] {
            other
                .calibrate_counted(counted, &mut acc, &mut rows)
                .unwrap();
            let pairs = m.bn.mean.iter().zip(&other.bn.mean);
            for (a, b) in pairs.chain(m.bn.var.iter().zip(&other.bn.var)) {
                assert!((a - b).abs() <= 2e-7 * a.abs().max(1e-3), "{a} {b}");
            }
        }
        let before = other.bn.clone();
        zero[0].count = 1;
        assert!(other.calibrate_counted(&zero, &mut acc, &mut rows).is_err());
        assert_eq!(other.bn, before, "an error leaves the model as it was");
        // One context five times: two or more rows, a variance of 0.
        zero[0].count = 5;
        other.calibrate_counted(&zero, &mut acc, &mut rows).unwrap();
        assert!(other.bn.var.iter().all(|&v| v == 0.0));
    }
}
