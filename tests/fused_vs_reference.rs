//! The fused backward against the step-by-step reference, and the reference's intermediates
//! against values worked out by hand.

use charmlp_core::Batch;
use charmlp_core::reference::ReferenceState;
use charmlp_core::{Alphabet, Model, NoMarks, Params, Token, TrainState, Transposed, VOCAB, step};
use charmlp_workspace::{
    examples_of, load_names, max_abs, max_abs_diff, random_batch, rng, trained_default_model,
};

/// Fused gradients, fused gradients from transposed weight copies (a host's step) and reference
/// gradients of all seven tensors for one model and batch.
#[allow(clippy::type_complexity)]
fn both_gradients<
    const E: usize,
    const T: usize,
    const H: usize,
    const B: usize,
    const TEP: usize,
>(
    params: &Params<27, E, T, H>,
    batch: &Batch<T, B>,
) -> (
    Box<Params<27, E, T, H>>,
    Box<Params<27, E, T, H>>,
    Box<Params<27, E, T, H>>,
) {
    let mut state = Box::new(TrainState::<32, H, B>::new());
    let mut fused = Box::new(Params::zeroed());
    state.forward(params, batch).backward(&mut fused);
    // The step with lr 0 leaves the parameters as they were and its gradients in `transposed`.
    let mut model = Box::new(Model::zeroed());
    model.params = params.clone();
    let mut copies = Box::new(Transposed::<32, TEP, H>::new());
    let mut transposed = Box::new(Params::zeroed());
    let loss = step(
        &mut model,
        &mut transposed,
        None,
        &mut state,
        &mut *copies,
        batch,
        0.0,
        &mut NoMarks,
    );
    assert_eq!(&model.params, params);
    let mut rs = Box::new(ReferenceState::<27, E, T, H, B>::new());
    let mut reference = Box::new(Params::zeroed());
    let reference_loss = rs.forward(params, batch);
    assert!((loss - reference_loss).abs() <= 1e-5 * reference_loss.abs());
    rs.backward(params, batch, &mut reference);
    (fused, transposed, reference)
}

/// Every tensor: max|fused − reference| ≤ 1e-5 · G, G the largest reference gradient of any
/// tensor.
///
/// Both are f32 and differ only in the order of operations (the fused softmax and batch-norm
/// formulas against their expansions), so they agree to a few f32 roundings of the terms they
/// sum, whose size is G: seen ≤ 3e-8 absolute at G ≈ 5e-2, i.e. ≤ 6e-7·G, on every tensor
/// including b1, whose exact gradient is zero (batch norm cancels it) and whose computed one is
/// pure rounding. (The makemore notebook saw max differences near 1e-9 between its two versions
/// in f32 for gradients of ~1e-3.) 1e-5·G leaves room for other CPUs' libm; a wrong term errs by
/// 1e-3·G or more.
fn assert_agree<const E: usize, const T: usize, const H: usize>(
    label: &str,
    fused: &Params<27, E, T, H>,
    reference: &Params<27, E, T, H>,
) {
    let g = reference
        .tensors()
        .iter()
        .map(|t| max_abs(t))
        .fold(0.0, f32::max);
    assert!(g > 1e-3, "{label}: gradients vanish");
    for ((name, f), r) in Params::<27, E, T, H>::NAMES
        .iter()
        .zip(fused.tensors())
        .zip(reference.tensors())
    {
        let diff = max_abs_diff(f, r);
        eprintln!(
            "{label} {name:>4}: max|diff| {diff:.2e} = {:.1e}·G  max|grad| {:.2e}",
            diff / g,
            max_abs(r)
        );
        assert!(
            diff <= 1e-5 * g,
            "{label} {name}: fused and reference differ by {diff:.3e}"
        );
    }
}

#[test]
fn fused_matches_reference_on_random_models() {
    let mut rng = rng(11);
    for _ in 0..5 {
        let params = charmlp_workspace::random_params::<27, 10, 3, 64>(&mut rng);
        let batch = random_batch::<3, 32>(&mut rng, VOCAB);
        let (f, t, r) = both_gradients::<10, 3, 64, 32, 32>(&params, &batch);
        assert_agree("random H64", &f, &r);
        assert_agree("random H64 transposed", &t, &r);
        let params = charmlp_workspace::random_params::<27, 10, 3, 200>(&mut rng);
        let batch = random_batch::<3, 32>(&mut rng, VOCAB);
        let (f, t, r) = both_gradients::<10, 3, 200, 32, 32>(&params, &batch);
        assert_agree("random H200", &f, &r);
        assert_agree("random H200 transposed", &t, &r);
        // A batch of 64: two chunks of the gathered embeddings and of demb.
        let params = charmlp_workspace::random_params::<27, 10, 3, 64>(&mut rng);
        let batch = random_batch::<3, 64>(&mut rng, VOCAB);
        let (f, t, r) = both_gradients::<10, 3, 64, 64, 32>(&params, &batch);
        assert_agree("random H64 B64", &f, &r);
        assert_agree("random H64 B64 transposed", &t, &r);
        // makemore part 5's widths: 192 inputs, 12 registers of 16 and one of 8 per row.
        let params = charmlp_workspace::random_params::<27, 24, 8, 200>(&mut rng);
        let batch = random_batch::<8, 32>(&mut rng, VOCAB);
        let (f, t, r) = both_gradients::<24, 8, 200, 32, 192>(&params, &batch);
        assert_agree("random E24 T8 H200", &f, &r);
        assert_agree("random E24 T8 H200 transposed", &t, &r);
    }
}

#[test]
fn fused_matches_reference_after_training_on_names() {
    // Gradients of a partly trained model on real batches, where the softmax is peaked and
    // batch-norm statistics are no longer those of the initialisation.
    let examples = examples_of::<3>(&load_names());
    let mut rng = rng(12);
    let model = trained_default_model(&examples, 2_000, &mut rng);
    let mut batch = charmlp_core::DefaultBatch::new();
    for _ in 0..3 {
        batch.sample(&mut rng, &examples).unwrap();
        let (f, t, r) = both_gradients::<10, 3, 64, 32, 32>(&model.params, &batch);
        assert_agree("trained H64", &f, &r);
        assert_agree("trained H64 transposed", &t, &r);
    }
}

/// A model whose every intermediate has a closed form, on a batch of three.
///
/// E = T = 1, H = 8, B = 3. C[k][0] = k, W1 = 1, b1 = 0, gain = 1, bias = 0, so every hidden
/// unit sees hprebn[b] = x[b]: the contexts a, b, c give hprebn = 1, 2, 3 in every column.
/// W2[j][0] = s_j = +1 for even j, −1 for odd j, and 0 elsewhere, b2 = 0: as all units carry
/// the same h[b] and Σ_j s_j = 0, logits = 0 and probs are uniform, but dh is not zero.
/// Targets: `.`, `b`, `b`.
#[test]
fn reference_intermediates_match_hand_derivation() {
    let mut p = Params::<27, 1, 1, 8>::zeroed();
    for (k, row) in p.c.iter_mut().enumerate() {
        row[0] = k as f32;
    }
    p.w1[0][0] = [1.0; 8];
    p.gain = [1.0; 8];
    let s = |j: usize| if j.is_multiple_of(2) { 1.0 } else { -1.0 };
    for j in 0..8 {
        p.w2t[0][j] = s(j) as f32;
    }
    let tok = |c: char| Alphabet::MAKEMORE.token(c).unwrap_or(Token::BOUNDARY);
    let batch = Batch::<1, 3> {
        x: [[tok('a')], [tok('b')], [tok('c')]],
        y: [tok('.'), tok('b'), tok('b')],
    };
    let mut r = Box::new(ReferenceState::<27, 1, 1, 8, 3>::new());
    let mut grads = Params::zeroed();
    let loss = r.forward(&p, &batch);
    r.backward(&p, &batch, &mut grads);

    // |got − want| ≤ 2e-6·max(|want|, 1): the values come out of f32 chains through magnitudes
    // near 1/3 (dlogits = −1/3 + 1/81 at the targets), so their rounding is absolute, ~1e-7;
    // seen at most 3e-7. A wrong formula errs by 1e-3 or more.
    let close = |got: f32, want: f64, what: &str| {
        assert!(
            (f64::from(got) - want).abs() <= 2e-6 * want.abs().max(1.0),
            "{what}: got {got:e}, worked out {want:e}"
        );
    };
    // Forward. mean of 1, 2, 3 is 2; Bessel's variance is (1 + 0 + 1)/(3 − 1) = 1 (not 2/3).
    let rho = 1.0 / (1.0f64 + 1e-5).sqrt(); // bnvar_inv
    for j in 0..8 {
        close(r.bnmeani[j], 2.0, "bnmeani");
        close(r.bnvar[j], 1.0, "bnvar");
        close(r.bnvar_inv[j], rho, "bnvar_inv");
        close(r.bnraw[0][j], -rho, "bnraw[0]");
        close(r.bnraw[1][j], 0.0, "bnraw[1]");
        close(r.bnraw[2][j], rho, "bnraw[2]");
    }
    for b in 0..3 {
        close(r.logit_maxes[b], 0.0, "logit_maxes");
        close(r.counts_sum[b], 27.0, "counts_sum");
        for k in 0..VOCAB {
            close(r.probs[b][k], 1.0 / 27.0, "probs");
        }
    }
    close(loss, 27f64.ln(), "loss = ln 27");

    // Backward of the softmax: dlogprobs = −1/3 at the targets, dprobs = −1/3 ÷ 1/27 = −9,
    // dcounts_sum_inv = Σ counts·dprobs = −9, dcounts_sum = −dcounts_sum_inv / 27² = 1/81,
    // and everything adds up to dlogits = (1/27 − onehot)/3 with dlogit_maxes = 0.
    for b in 0..3 {
        let y = batch.y[b].index();
        close(r.dlogprobs[b][y], -1.0 / 3.0, "dlogprobs");
        close(r.dprobs[b][y], -9.0, "dprobs");
        close(r.dcounts_sum_inv[b], -9.0, "dcounts_sum_inv");
        close(r.dcounts_sum[b], 1.0 / 81.0, "dcounts_sum");
        assert!(
            r.dlogit_maxes[b].abs() < 1e-6,
            "dlogit_maxes {}",
            r.dlogit_maxes[b]
        );
        for k in 0..VOCAB {
            let onehot = if k == y { 1.0 } else { 0.0 };
            close(r.dlogits[b][k], (1.0 / 27.0 - onehot) / 3.0, "dlogits");
        }
    }
    // db2[k] = Σ_b dlogits[b][k] = (3/27 − #targets equal to k)/3.
    close(grads.b2[0], (1.0 / 9.0 - 1.0) / 3.0, "db2[.]");
    close(grads.b2[2], (1.0 / 9.0 - 2.0) / 3.0, "db2[b]");
    close(grads.b2[5], 1.0 / 27.0, "db2[e]");

    // dh[b][j] = s_j·dlogits[b][0] = s_j·(−26/81, 1/81, 1/81); h = tanh(bnraw), so with
    // q = 1 − tanh²(ρ): dhpreact = s_j·(−26q/81, 1/81, q/81).
    let q = 1.0 - rho.tanh().powi(2);
    let dlogits_dot = [-26.0 / 81.0, 1.0 / 81.0, 1.0 / 81.0];
    let dy = [-26.0 * q / 81.0, 1.0 / 81.0, q / 81.0];
    for j in 0..8 {
        for (b, (dl, dy_b)) in dlogits_dot.iter().zip(dy).enumerate() {
            close(r.dh[b][j], s(j) * dl, "dh");
            close(r.dhpreact[b][j], s(j) * dy_b, "dhpreact");
        }
        // dbias = Σ_b dhpreact = s_j(1 − 25q)/81; dgain = Σ_b bnraw·dhpreact = s_j·ρq/3.
        close(grads.bias[j], s(j) * (1.0 - 25.0 * q) / 81.0, "dbias");
        close(grads.gain[j], s(j) * rho * q / 3.0, "dgain");
        // dhprebn by the batch-norm formula with n = 3, gain 1, x̂ = (−ρ, 0, ρ):
        // bnvar_inv/3 · (3·dy − Σdy − 3/2·x̂·Σ(dy·x̂)).
        let sum_dy = dy.iter().sum::<f64>();
        let sum_dy_xhat = rho * (dy[2] - dy[0]);
        let xhat = [-rho, 0.0, rho];
        for b in 0..3 {
            let want = rho / 3.0 * (3.0 * dy[b] - sum_dy - 1.5 * xhat[b] * sum_dy_xhat);
            close(r.dhprebn[b][j], s(j) * want, "dhprebn");
        }
    }
    // W1 is all ones and Σ_j s_j = 0, so dembcat = Σ_j dhprebn[b][j] = 0: dC is zero.
    assert!(grads.c.as_flattened().iter().all(|x| x.abs() < 1e-7));

    // The fused path agrees on this batch too.
    let (f, t, r) = both_gradients::<1, 1, 8, 3, 8>(&p, &batch);
    assert_agree("hand-worked", &f, &r);
    assert_agree("hand-worked transposed", &t, &r);
}
