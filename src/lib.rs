//! Support for the workspace's integration tests and benchmarks (not published): the shared
//! names data set, random models and batches, and an f64 forward written independently of the
//! core for finite-difference gradient checks.

use charmlp_core::Batch;
use charmlp_core::{Alphabet, Contexts, Example, Model, Params, Token};
use rand_core::SeedableRng;
use std::path::PathBuf;

pub use rand_xoshiro::Xoshiro256PlusPlus as Rng;

pub fn rng(seed: u64) -> Rng {
    Rng::seed_from_u64(seed)
}

/// `../shared/data/names.txt` beside the project: makemore's 32,033 names, never copied in.
pub fn names_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/data/names.txt")
}

/// The names of `names.txt`, as letters. Panics with the path if the file is missing: the tests
/// that call this need the real data set.
pub fn load_names() -> Vec<Vec<Token>> {
    let path = names_path();
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e} (the tests read the shared data set)",
            path.display()
        )
    });
    text.lines()
        .filter(|line| !line.is_empty())
        .map(|line| {
            line.chars()
                .map(|ch| {
                    Alphabet::MAKEMORE
                        .token(ch)
                        .unwrap_or_else(|| panic!("{line:?}: not a-z"))
                })
                .collect()
        })
        .collect()
}

/// Every example of every word, in order.
pub fn examples_of<const T: usize>(words: &[Vec<Token>]) -> Vec<Example<T>> {
    words.iter().flat_map(|w| Contexts::<T>::new(w)).collect()
}

/// A batch of uniformly random tokens of a vocabulary of `symbols` (contexts need not come from
/// real words for a gradient check).
pub fn random_batch<const T: usize, const B: usize>(rng: &mut Rng, symbols: usize) -> Batch<T, B> {
    use rand_core::Rng as _;
    let mut token = || Token::wrapping((rng.next_u32() % symbols as u32) as u8, symbols);
    let mut batch = Batch::new();
    for b in 0..B {
        batch.x[b] = core::array::from_fn(|_| token());
        batch.y[b] = token();
    }
    batch
}

/// The default model after `steps` steps of the default recipe on batches of `examples` drawn
/// with `rng` (which goes on to draw the batches a test checks): parameters and batch-norm
/// statistics of a partly trained model, with peaked softmaxes, not those of the init.
pub fn trained_default_model(
    examples: &[Example<3>],
    steps: u64,
    rng: &mut Rng,
) -> Box<charmlp_core::DefaultModel> {
    use charmlp_core::{DefaultBatch, DefaultTrainState, Schedule, train_step};
    let mut model = Box::new(charmlp_core::DefaultModel::zeroed());
    model.init(rng);
    let mut grads = Box::new(Params::zeroed());
    let mut state = Box::new(DefaultTrainState::new());
    let mut batch = DefaultBatch::new();
    for step in 0..steps {
        batch.sample(rng, examples).expect("examples to draw from");
        let lr = Schedule::MAKEMORE.at(step);
        train_step(&mut model, &mut grads, &mut state, &batch, lr);
    }
    model
}

/// An alphabet of `symbols` symbols: a, b, … z, then À, Á, … (U+00C0 on).
pub fn test_alphabet<const V: usize>(symbols: usize) -> Alphabet<V> {
    let chars: Vec<char> = ('a'..='z').chain('\u{c0}'..).take(symbols - 1).collect();
    Alphabet::new(&chars).expect("an alphabet within the capacity")
}

/// Freshly initialised parameters, on the heap.
pub fn random_params<const V: usize, const E: usize, const T: usize, const H: usize>(
    rng: &mut Rng,
) -> Box<Params<V, E, T, H>> {
    let mut p = Box::new(Params::zeroed());
    p.init(rng);
    p
}

/// The seven tensors as flat f64 vectors, in `Params::NAMES` order.
#[derive(Clone, Debug)]
pub struct FlatParams(pub [Vec<f64>; 7]);

impl FlatParams {
    pub fn of<const V: usize, const E: usize, const T: usize, const H: usize>(
        p: &Params<V, E, T, H>,
    ) -> Self {
        FlatParams(
            p.tensors()
                .map(|t| t.iter().map(|&x| f64::from(x)).collect()),
        )
    }
}

/// Training-mode loss in f64, from flat tensors: the same model as the core's, written with
/// index arithmetic over flat vectors so that it shares no code with it.
pub fn loss_f64<const V: usize, const E: usize, const T: usize, const H: usize, const B: usize>(
    p: &FlatParams,
    batch: &Batch<T, B>,
) -> f64 {
    let [c, w1, b1, gain, bias, w2t, b2] = &p.0;
    let n = B as f64;
    let mut hpre = vec![vec![0.0f64; H]; B];
    for (row, context) in hpre.iter_mut().zip(&batch.x) {
        for (j, out) in row.iter_mut().enumerate() {
            let mut s = b1[j];
            for (t, tok) in context.iter().enumerate() {
                for e in 0..E {
                    s += c[tok.index() * E + e] * w1[(t * E + e) * H + j];
                }
            }
            *out = s;
        }
    }
    let mut h = vec![vec![0.0f64; H]; B];
    for j in 0..H {
        let mean = hpre.iter().map(|r| r[j]).sum::<f64>() / n;
        let var = hpre.iter().map(|r| (r[j] - mean).powi(2)).sum::<f64>() / (n - 1.0);
        for b in 0..B {
            let xhat = (hpre[b][j] - mean) / (var + 1e-5).sqrt();
            h[b][j] = (gain[j] * xhat + bias[j]).tanh();
        }
    }
    let mut loss = 0.0;
    for (h_row, y) in h.iter().zip(&batch.y) {
        let logits: Vec<f64> = (0..V)
            .map(|k| b2[k] + (0..H).map(|j| h_row[j] * w2t[k * H + j]).sum::<f64>())
            .collect();
        let max = logits.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
        let lse = max + logits.iter().map(|l| (l - max).exp()).sum::<f64>().ln();
        loss += lse - logits[y.index()];
    }
    loss / n
}

/// ∂loss/∂(tensor[index]) by central differences of [`loss_f64`] with step `eps`.
pub fn numeric_grad<
    const V: usize,
    const E: usize,
    const T: usize,
    const H: usize,
    const B: usize,
>(
    p: &mut FlatParams,
    batch: &Batch<T, B>,
    tensor: usize,
    index: usize,
    eps: f64,
) -> f64 {
    let x = p.0[tensor][index];
    p.0[tensor][index] = x + eps;
    let plus = loss_f64::<V, E, T, H, B>(p, batch);
    p.0[tensor][index] = x - eps;
    let minus = loss_f64::<V, E, T, H, B>(p, batch);
    p.0[tensor][index] = x;
    (plus - minus) / (2.0 * eps)
}

/// A makemore-alphabet model's file bytes.
pub fn bytes_of<const E: usize, const T: usize, const H: usize>(m: &Model<27, E, T, H>) -> Vec<u8> {
    bytes_with(m, &Alphabet::MAKEMORE)
}

/// Reads a model file into a model of makemore's capacity (27), as the default model's reader.
pub fn load<const E: usize, const T: usize, const H: usize>(
    m: &mut Model<27, E, T, H>,
    bytes: &[u8],
) -> Result<(), charmlp_core::LoadError> {
    let mut alphabet = Alphabet::MAKEMORE;
    m.read_bytes(&mut alphabet, bytes)
}

/// A model's file bytes with `alphabet`.
pub fn bytes_with<const V: usize, const E: usize, const T: usize, const H: usize>(
    m: &Model<V, E, T, H>,
    alphabet: &Alphabet<V>,
) -> Vec<u8> {
    let mut out = vec![0u8; Model::<V, E, T, H>::bytes_len(alphabet)];
    assert_eq!(m.write_bytes(alphabet, &mut out), Ok(out.len()));
    out
}

/// Every parameter's bit pattern, in `Params::NAMES` order: for bit-exact comparisons.
pub fn param_bits<const V: usize, const E: usize, const T: usize, const H: usize>(
    p: &Params<V, E, T, H>,
) -> Vec<u32> {
    p.tensors()
        .iter()
        .flat_map(|t| t.iter().map(|x| x.to_bits()))
        .collect()
}

/// [`param_bits`] of a model, then its batch-norm statistics' bits.
pub fn bits<const V: usize, const E: usize, const T: usize, const H: usize>(
    m: &Model<V, E, T, H>,
) -> Vec<u32> {
    let mut v = param_bits(&m.params);
    v.extend(m.bn.mean.iter().chain(&m.bn.var).map(|x| x.to_bits()));
    v
}

/// Largest |a − b| over two equally long slices.
pub fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

/// Largest |x| of a slice.
pub fn max_abs(a: &[f32]) -> f32 {
    a.iter().map(|x| x.abs()).fold(0.0, f32::max)
}
