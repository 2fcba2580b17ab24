//! Next-character distributions and whole sampled names.

use crate::alphabet::{Alphabet, MAX_SYMBOLS};
use crate::infer::InferState;
use crate::layers;
use crate::model::Model;
use crate::random::uniform_f32;
use crate::vocab::Token;
use heapless::String;
use rand_core::Rng;

/// A softmax temperature: finite and at least 0. 1 samples the model as trained; 0 is the
/// limit T → 0, greedy decoding: always the likeliest character.
#[derive(Clone, Copy, Debug, PartialEq, PartialOrd)]
pub struct Temperature(f32);

impl Temperature {
    pub const ONE: Temperature = Temperature(1.0);
    /// Greedy: the likeliest next character (the first of equals), every time.
    pub const GREEDY: Temperature = Temperature(0.0);

    /// `None` unless `t` is finite and not negative (−0 is 0).
    pub fn new(t: f32) -> Option<Temperature> {
        (t.is_finite() && t >= 0.0).then_some(Temperature(t.abs()))
    }

    pub fn get(self) -> f32 {
        self.0
    }
}

impl Default for Temperature {
    fn default() -> Self {
        Self::ONE
    }
}

/// How names are drawn: makemore's `generate` options.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Sampling<'a> {
    pub temperature: Temperature,
    /// Keep only the k likeliest next characters (and any tied with the k-th), as makemore's
    /// `torch.topk` mask does; `None` keeps all.
    pub top_k: Option<usize>,
    /// Characters every name starts with, fed to the model as if it had drawn them.
    pub prefix: &'a [Token],
    /// Most characters of a name (the prefix included); a name reaching it ends there.
    pub max_len: usize,
}

impl Sampling<'_> {
    /// The model as trained: temperature 1, every character, no prefix, no length bound but
    /// the name's buffer.
    pub const PLAIN: Sampling<'static> = Sampling {
        temperature: Temperature::ONE,
        top_k: None,
        prefix: &[],
        max_len: usize::MAX,
    };
}

/// Draws a token from a distribution over the vocabulary by inverting its cumulative sum.
/// If rounding leaves the sum short of the uniform draw, the last token with nonzero
/// probability is taken.
pub fn sample_token<R: Rng + ?Sized, const V: usize>(rng: &mut R, probs: &[f32; V]) -> Token {
    let u = uniform_f32(rng);
    let mut cumulative = 0.0;
    let mut last_possible = 0;
    for (i, &p) in probs.iter().enumerate() {
        if p > 0.0 {
            cumulative += p;
            last_possible = i;
            if u < cumulative {
                break;
            }
        }
    }
    // A model's V is at most MAX_SYMBOLS (its shape rule), where wrapping is the identity; a
    // padded row's V..VP have probability 0 and are never taken.
    Token::wrapping(last_possible as u8, MAX_SYMBOLS)
}

/// logits → p(next character) in place: the `top_k` mask, then softmax(logits / temperature),
/// or at temperature 0 all the probability on the likeliest character (see [`Model::probs`]).
pub fn logits_to_probs<const V: usize>(
    logits: &mut [f32; V],
    temperature: Temperature,
    top_k: Option<usize>,
) {
    to_probs(logits, V, temperature, top_k, layers::softmax_row);
}

/// [`logits_to_probs`] of a row of V logits padded with −∞ to whole vectors (VP), bit for bit
/// the same probabilities (the padding's are 0): what [`Model::probs_rows`] gives.
pub fn padded_logits_to_probs<const VP: usize>(
    logits: &mut [f32; VP],
    v: usize,
    temperature: Temperature,
    top_k: Option<usize>,
) {
    to_probs(logits, v, temperature, top_k, layers::softmax_padded);
}

fn to_probs<const N: usize>(
    logits: &mut [f32; N],
    v: usize,
    temperature: Temperature,
    top_k: Option<usize>,
    softmax: fn(&mut [f32; N]) -> (f32, f32),
) {
    if let Some(k) = top_k.filter(|&k| k < v) {
        let mut sorted = *logits;
        sorted.sort_unstable_by(|a, b| b.total_cmp(a));
        let kth = sorted[k.max(1) - 1];
        for x in logits.iter_mut() {
            if *x < kth {
                *x = f32::NEG_INFINITY;
            }
        }
    }
    let t = temperature.get();
    if t == 1.0 {
        // (x − max) / 1, then the softmax's own shift by the new maximum, 0: exp(x − max)
        // either way, bit for bit, so the softmax alone does it.
        softmax(logits);
        return;
    }
    let (best, max) =
        logits
            .iter()
            .enumerate()
            .fold((0, f32::NEG_INFINITY), |(bi, bx), (i, &x)| {
                if x > bx { (i, x) } else { (bi, bx) }
            });
    if t == 0.0 {
        *logits = [0.0; N];
        logits[best] = 1.0;
    } else {
        for x in logits.iter_mut() {
            *x = (*x - max) / t;
        }
        softmax(logits);
    }
}

impl<const V: usize, const E: usize, const T: usize, const H: usize> Model<V, E, T, H> {
    /// p(next character | context) = softmax(logits / temperature), in `state.logits`; at
    /// temperature 0, all the probability on the likeliest character.
    ///
    /// The maximum is subtracted before dividing: (logit − max) / T is ≤ 0 and finite or −∞
    /// for every T > 0, even where 1/T overflows, so every accepted temperature gives a valid
    /// distribution (at T = 1 this is exactly softmax(logits)).
    pub fn probs<'s>(
        &self,
        context: &[Token; T],
        temperature: Temperature,
        state: &'s mut InferState<V, H>,
    ) -> &'s [f32; V] {
        self.probs_top_k(context, temperature, None, state)
    }

    /// [`Model::probs`] with only the `top_k` likeliest characters (and those tied with the
    /// k-th) possible: the others' logits become −∞ before the softmax, as makemore's
    /// `logits[logits < v[:, [-1]]] = -inf`.
    pub fn probs_top_k<'s>(
        &self,
        context: &[Token; T],
        temperature: Temperature,
        top_k: Option<usize>,
        state: &'s mut InferState<V, H>,
    ) -> &'s [f32; V] {
        self.logits(context, state);
        logits_to_probs(&mut state.logits, temperature, top_k);
        &state.logits
    }

    /// Samples one name: characters of `alphabet` (the model's) until the model emits the
    /// boundary, or until the next character does not fit in the name's `N` bytes of UTF-8,
    /// whichever comes first. A name that reaches the bound simply ends there.
    pub fn sample_name<R: Rng + ?Sized, const N: usize>(
        &self,
        rng: &mut R,
        temperature: Temperature,
        state: &mut InferState<V, H>,
        alphabet: &Alphabet<V>,
    ) -> String<N> {
        let how = Sampling {
            temperature,
            ..Sampling::PLAIN
        };
        self.sample_name_with(rng, &how, state, alphabet)
    }

    /// [`Model::sample_name`] with makemore's options: the name starts with `how.prefix`
    /// (characters of the alphabet; one that is not ends the prefix there), then draws from
    /// the `how.top_k` likeliest characters at `how.temperature`, and ends at the boundary,
    /// at `how.max_len` characters, or when the next character does not fit in `N` bytes.
    pub fn sample_name_with<R: Rng + ?Sized, const N: usize>(
        &self,
        rng: &mut R,
        how: &Sampling<'_>,
        state: &mut InferState<V, H>,
        alphabet: &Alphabet<V>,
    ) -> String<N> {
        let mut drawing = Drawing::new();
        while drawing.is_open(how) {
            let next = match drawing.next_from_prefix(how) {
                Some(given) => given,
                None => sample_token(
                    rng,
                    self.probs_top_k(&drawing.context, how.temperature, how.top_k, state),
                ),
            };
            drawing.take(next, alphabet);
        }
        drawing.name
    }
}

/// A name being drawn, one character at a time: [`Model::sample_name_with`]'s rule, kept apart
/// from the model so that a host can draw many names side by side, each with its own
/// generator, and compute their next characters' distributions as one batch
/// ([`Model::probs_rows`]).
#[derive(Clone, Debug)]
pub struct Drawing<const T: usize, const N: usize> {
    /// The last T tokens, the boundary before the name's start.
    pub context: [Token; T],
    /// The characters so far.
    pub name: String<N>,
    chars: usize,
    prefix_used: usize,
    ended: bool,
}

impl<const T: usize, const N: usize> Drawing<T, N> {
    pub const fn new() -> Self {
        Drawing {
            context: [Token::BOUNDARY; T],
            name: String::new(),
            chars: 0,
            prefix_used: 0,
            ended: false,
        }
    }

    /// Whether the name takes another character: not ended by the boundary, shorter than
    /// `how.max_len` characters, and with room in its N bytes.
    pub fn is_open(&self, how: &Sampling<'_>) -> bool {
        !self.ended && self.name.len() < N && self.chars < how.max_len
    }

    /// The prefix's next token, while any of it is left: no draw for this character.
    pub fn next_from_prefix(&mut self, how: &Sampling<'_>) -> Option<Token> {
        let given = how.prefix.get(self.prefix_used).copied();
        self.prefix_used += usize::from(given.is_some());
        given
    }

    /// Takes the next token: its character joins the name and the context moves on; the
    /// boundary, an absent symbol (probability 0, never drawn; were it, the name would end as
    /// at the boundary) or a character that does not fit ends the name.
    pub fn take<const V: usize>(&mut self, next: Token, alphabet: &Alphabet<V>) {
        let Some(ch) = alphabet.char_of(next) else {
            self.ended = true;
            return;
        };
        if self.name.push(ch).is_err() {
            self.ended = true;
            return;
        }
        self.chars += 1;
        self.context.rotate_left(1);
        self.context[T - 1] = next;
    }
}

impl<const T: usize, const N: usize> Default for Drawing<T, N> {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::VOCAB;
    use rand_core::SeedableRng;
    use rand_xoshiro::Xoshiro256PlusPlus;

    #[test]
    fn temperature_must_be_finite_and_positive() {
        assert_eq!(Temperature::new(0.5).map(Temperature::get), Some(0.5));
        assert_eq!(Temperature::new(0.0), Some(Temperature::GREEDY));
        assert_eq!(Temperature::new(-0.0), Some(Temperature::GREEDY));
        for bad in [-1e-30, -1.0, f32::NAN, f32::INFINITY, f32::NEG_INFINITY] {
            assert_eq!(Temperature::new(bad), None, "{bad}");
        }
    }

    fn model() -> crate::DefaultModel {
        let mut m = crate::DefaultModel::zeroed();
        m.init(&mut Xoshiro256PlusPlus::seed_from_u64(11));
        m
    }

    #[test]
    fn every_accepted_temperature_gives_a_distribution() {
        let m = model();
        let mut state = InferState::new();
        let context = [Token::BOUNDARY; 3];
        let logits = *m.logits(&context, &mut state);
        let argmax = (0..VOCAB)
            .max_by(|&a, &b| logits[a].total_cmp(&logits[b]))
            .unwrap();
        for t in [0.0, 1e-45, 1e-38, 1e-20, 0.01, 1.0, 7.0, 1e20, f32::MAX] {
            let p = *m.probs(&context, Temperature::new(t).unwrap(), &mut state);
            let sum: f32 = p.iter().sum();
            assert!(p.iter().all(|x| (0.0..=1.0).contains(x)), "T={t}: {p:?}");
            assert!((sum - 1.0).abs() < 1e-5, "T={t}: sum {sum}");
            if t < 1e-20 {
                // T → 0 is greedy: all of the mass on the likeliest character.
                assert_eq!(p[argmax], 1.0, "T={t}");
            }
        }
        // T = 1 is softmax(logits) itself.
        let mut plain = logits;
        crate::layers::softmax_row(&mut plain);
        assert_eq!(*m.probs(&context, Temperature::ONE, &mut state), plain);
    }

    #[test]
    fn greedy_sampling_is_deterministic_and_ignores_the_rng() {
        let m = model();
        let mut state = InferState::new();
        let mut name = |seed| -> String<64> {
            let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
            m.sample_name(
                &mut rng,
                Temperature::GREEDY,
                &mut state,
                &Alphabet::MAKEMORE,
            )
        };
        let (a, b) = (name(1), name(2));
        assert_eq!(a, b);
    }

    /// Top-k leaves exactly the k likeliest characters possible, in their softmax proportions;
    /// k = 1 is greedy; k ≥ V changes nothing.
    #[test]
    fn top_k_keeps_the_k_likeliest() {
        let m = model();
        let mut state = InferState::new();
        let context = [Token::BOUNDARY; 3];
        let logits = *m.logits(&context, &mut state);
        let mut order: [usize; VOCAB] = core::array::from_fn(|i| i);
        order.sort_by(|&a, &b| logits[b].total_cmp(&logits[a]));
        let p3 = *m.probs_top_k(&context, Temperature::ONE, Some(3), &mut state);
        let kept: usize = p3.iter().filter(|&&p| p > 0.0).count();
        assert_eq!(kept, 3);
        assert!(order[..3].iter().all(|&i| p3[i] > 0.0));
        let ratio = p3[order[0]] / p3[order[1]];
        let expected = libm::expf(logits[order[0]] - logits[order[1]]);
        assert!((ratio / expected - 1.0).abs() < 1e-5, "{ratio} {expected}");
        let greedy = *m.probs(&context, Temperature::GREEDY, &mut state);
        assert_eq!(
            *m.probs_top_k(&context, Temperature::ONE, Some(1), &mut state),
            greedy
        );
        let all = *m.probs(&context, Temperature::ONE, &mut state);
        assert_eq!(
            *m.probs_top_k(&context, Temperature::ONE, Some(VOCAB), &mut state),
            all
        );
    }

    /// A prefix starts every name and conditions what follows; max_len ends names there.
    #[test]
    fn names_start_with_the_prefix_and_stop_at_max_len() {
        let m = model();
        let mut state = InferState::new();
        let a = &Alphabet::MAKEMORE;
        let prefix = [a.token('z').unwrap(), a.token('o').unwrap()];
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(3);
        for _ in 0..50 {
            let how = Sampling {
                prefix: &prefix,
                max_len: 4,
                ..Sampling::PLAIN
            };
            let name: String<64> = m.sample_name_with(&mut rng, &how, &mut state, a);
            assert!(name.starts_with("zo"), "{name}");
            assert!(name.chars().count() <= 4, "{name}");
        }
        // The plain options draw what sample_name draws.
        let (mut r1, mut r2) = (
            Xoshiro256PlusPlus::seed_from_u64(4),
            Xoshiro256PlusPlus::seed_from_u64(4),
        );
        let plain: String<64> = m.sample_name_with(&mut r1, &Sampling::PLAIN, &mut state, a);
        let named: String<64> = m.sample_name(&mut r2, Temperature::ONE, &mut state, a);
        assert_eq!(plain, named);
    }

    #[test]
    fn sample_token_follows_the_distribution() {
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(5);
        let mut probs = [0.0; VOCAB];
        probs[3] = 0.25;
        probs[20] = 0.75;
        let mut counts = [0u32; VOCAB];
        for _ in 0..40_000 {
            counts[sample_token(&mut rng, &probs).index()] += 1;
        }
        assert_eq!(counts[3] + counts[20], 40_000);
        // Binomial(40000, 0.25): mean 10000, sd ≈ 87.
        assert!((9_600..=10_400).contains(&counts[3]), "{}", counts[3]);
    }

    #[test]
    fn sample_token_never_picks_an_impossible_token() {
        // Probabilities summing to less than one (as rounding can leave them): a draw past the
        // sum falls back to the last possible token, never to an impossible one.
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(6);
        let mut probs = [0.0; VOCAB];
        probs[7] = 0.01;
        for _ in 0..1000 {
            assert_eq!(sample_token(&mut rng, &probs).index(), 7);
        }
    }
}
