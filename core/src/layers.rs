//! The fast path's layers: one `*_forward` / `*_backward` pair each, plain loops.
//!
//! Every inner loop runs over the contiguous hidden (H) or vocabulary (V) axis with no
//! dependence between iterations, so that the SIMD work can vectorise the loops as they stand.
//! Buffers are overwritten in place where the derivation no longer needs their old contents
//! (hprebn → bnraw, logits → probs → dlogits, h → dhpreact → dhprebn): that keeps a training
//! state for the default model near 20 KB, which a 64 KB microcontroller can hold.
//! `reference.rs` holds the step-by-step derivation these are tested against.

use crate::model::BnStats;
use crate::vocab::{Token, V};

/// ε added to the batch variance before the inverse square root (PyTorch's default).
pub const BN_EPS: f32 = 1e-5;

/// `out += a · x`, the loop nearly every kernel here is made of.
#[inline(always)]
fn axpy(out: &mut [f32], a: f32, x: &[f32]) {
    for (o, x) in out.iter_mut().zip(x) {
        *o += a * x;
    }
}

#[inline(always)]
fn dot(x: &[f32], y: &[f32]) -> f32 {
    x.iter().zip(y).map(|(x, y)| x * y).sum()
}

/// Embedding lookup and first linear layer, fused: hprebn[b] = b1 + Σ_t Σ_e C[x[b][t]][e]·W1[t][e].
///
/// x [B][T] tokens, C [V][E], W1 [T][E][H], b1 [H] → hprebn [B][H].
/// emb = C[x] is never stored: the backward reads the same rows of C again.
pub fn embed_linear_forward<const E: usize, const T: usize, const H: usize, const B: usize>(
    hprebn: &mut [[f32; H]; B],
    x: &[[Token; T]; B],
    c: &[[f32; E]; V],
    w1: &[[[f32; H]; E]; T],
    b1: &[f32; H],
) {
    let () = crate::params::ShapeCheck::<E, T, H>::OK;
    for (out, context) in hprebn.iter_mut().zip(x) {
        *out = *b1;
        for (token, w1_t) in context.iter().zip(w1) {
            for (&emb, w1_te) in c[token.index()].iter().zip(w1_t) {
                axpy(out, emb, w1_te);
            }
        }
    }
}

/// Backward of [`embed_linear_forward`], accumulating into the gradients:
/// db1 += Σ_b dhprebn[b]; dW1[t][e] += Σ_b emb[b][t][e]·dhprebn[b];
/// dC[x[b][t]][e] += demb[b][t][e] = dhprebn[b]·W1[t][e].
///
/// dhprebn [B][H], x [B][T], C [V][E], W1 [T][E][H] → dC [V][E], dW1 [T][E][H], db1 [H].
#[allow(clippy::too_many_arguments)]
pub fn embed_linear_backward<const E: usize, const T: usize, const H: usize, const B: usize>(
    dc: &mut [[f32; E]; V],
    dw1: &mut [[[f32; H]; E]; T],
    db1: &mut [f32; H],
    dhprebn: &[[f32; H]; B],
    x: &[[Token; T]; B],
    c: &[[f32; E]; V],
    w1: &[[[f32; H]; E]; T],
) {
    for (dy, context) in dhprebn.iter().zip(x) {
        axpy(db1, 1.0, dy);
        for ((token, w1_t), dw1_t) in context.iter().zip(w1).zip(dw1.iter_mut()) {
            let emb = &c[token.index()];
            let dc_row = &mut dc[token.index()];
            for e in 0..E {
                axpy(&mut dw1_t[e], emb[e], dy);
                dc_row[e] += dot(dy, &w1_t[e]);
            }
        }
    }
}

/// Batch norm in training mode, with its affine part:
/// bnmeani = mean_b hprebn, bnvar = Σ_b (hprebn − bnmeani)² / (B − 1) (Bessel),
/// bnvar_inv = (bnvar + ε)^−½, bnraw = (hprebn − bnmeani)·bnvar_inv, hpreact = gain·bnraw + bias.
///
/// bnraw [B][H] holds hprebn on entry and bnraw on return; gain, bias [H] → hpreact [B][H],
/// bnmeani, bnvar, bnvar_inv [H].
#[allow(clippy::too_many_arguments)]
pub fn batchnorm_forward<const H: usize, const B: usize>(
    bnraw: &mut [[f32; H]; B],
    hpreact: &mut [[f32; H]; B],
    bnmeani: &mut [f32; H],
    bnvar: &mut [f32; H],
    bnvar_inv: &mut [f32; H],
    gain: &[f32; H],
    bias: &[f32; H],
) {
    let () = crate::train::BatchCheck::<B>::OK;
    bnmeani.fill(0.0);
    for row in bnraw.iter() {
        axpy(bnmeani, 1.0 / B as f32, row);
    }
    // Two passes (mean, then squared deviations) rather than Σx² − n·mean²: no cancellation.
    bnvar.fill(0.0);
    for row in bnraw.iter() {
        for ((v, &x), &m) in bnvar.iter_mut().zip(row).zip(bnmeani.iter()) {
            *v += (x - m) * (x - m);
        }
    }
    for (inv, v) in bnvar_inv.iter_mut().zip(bnvar.iter_mut()) {
        *v /= (B - 1) as f32;
        *inv = 1.0 / libm::sqrtf(*v + BN_EPS);
    }
    for (raw_row, pre_row) in bnraw.iter_mut().zip(hpreact.iter_mut()) {
        for j in 0..H {
            raw_row[j] = (raw_row[j] - bnmeani[j]) * bnvar_inv[j];
            pre_row[j] = gain[j] * raw_row[j] + bias[j];
        }
    }
}

/// Backward of [`batchnorm_forward`], with the fused formula for the input gradient:
/// dgain += Σ_b bnraw·dhpreact, dbias += Σ_b dhpreact, and
/// dhprebn = gain·bnvar_inv/B · (B·dhpreact − Σ_b dhpreact − B/(B−1)·bnraw·Σ_b(dhpreact·bnraw)).
///
/// dy [B][H] holds dhpreact on entry and dhprebn on return; bnraw [B][H], bnvar_inv, gain [H]
/// → dgain, dbias [H].
pub fn batchnorm_backward<const H: usize, const B: usize>(
    dy: &mut [[f32; H]; B],
    dgain: &mut [f32; H],
    dbias: &mut [f32; H],
    bnraw: &[[f32; H]; B],
    bnvar_inv: &[f32; H],
    gain: &[f32; H],
) {
    let () = crate::train::BatchCheck::<B>::OK;
    let n = B as f32;
    // Σ_b dy and Σ_b dy·x̂ of this batch: the gradients of bias and gain, and the two sums the
    // fused formula needs.
    let mut sum_dy = [0.0f32; H];
    let mut sum_dy_raw = [0.0f32; H];
    for (dy_row, raw_row) in dy.iter().zip(bnraw) {
        for j in 0..H {
            sum_dy[j] += dy_row[j];
            sum_dy_raw[j] += dy_row[j] * raw_row[j];
        }
    }
    axpy(dgain, 1.0, &sum_dy_raw);
    axpy(dbias, 1.0, &sum_dy);
    let bessel = n / (n - 1.0);
    for (dy_row, raw_row) in dy.iter_mut().zip(bnraw) {
        for j in 0..H {
            let scale = gain[j] * bnvar_inv[j] / n;
            dy_row[j] = scale * (n * dy_row[j] - sum_dy[j] - bessel * raw_row[j] * sum_dy_raw[j]);
        }
    }
}

/// Batch norm in inference mode, with stored statistics:
/// hpreact = gain·(hprebn − mean)·(var + ε)^−½ + bias, in place on one row [H].
pub fn batchnorm_inference<const H: usize>(
    x: &mut [f32; H],
    stats: &BnStats<H>,
    gain: &[f32; H],
    bias: &[f32; H],
) {
    for j in 0..H {
        let inv = 1.0 / libm::sqrtf(stats.var[j] + BN_EPS);
        x[j] = gain[j] * (x[j] - stats.mean[j]) * inv + bias[j];
    }
}

/// h = tanh(hpreact), in place on [B][H].
pub fn tanh_forward<const H: usize, const B: usize>(h: &mut [[f32; H]; B]) {
    for x in h.as_flattened_mut() {
        *x = libm::tanhf(*x);
    }
}

/// Output layer: logits = h·W2 + b2. h [B][H], W2 [H][V], b2 [V] → logits [B][V].
pub fn linear_forward<const H: usize, const B: usize>(
    logits: &mut [[f32; V]; B],
    h: &[[f32; H]; B],
    w2: &[[f32; V]; H],
    b2: &[f32; V],
) {
    for (out, h_row) in logits.iter_mut().zip(h) {
        *out = *b2;
        for (&h_j, w2_j) in h_row.iter().zip(w2) {
            axpy(out, h_j, w2_j);
        }
    }
}

/// The output layer's backward to its parameters: dW2 += hᵀ·dlogits, db2 += Σ_b dlogits.
/// dlogits [B][V], h [B][H] → dW2 [H][V], db2 [V].
pub fn linear_backward<const H: usize, const B: usize>(
    dw2: &mut [[f32; V]; H],
    db2: &mut [f32; V],
    dlogits: &[[f32; V]; B],
    h: &[[f32; H]; B],
) {
    for (dy, h_row) in dlogits.iter().zip(h) {
        axpy(db2, 1.0, dy);
        for (&h_j, dw2_j) in h_row.iter().zip(dw2.iter_mut()) {
            axpy(dw2_j, h_j, dy);
        }
    }
}

/// The output layer's backward to its input, fused with tanh's backward:
/// dh = dlogits·W2ᵀ, dhpreact = (1 − h²)·dh.
///
/// h [B][H] holds h on entry and dhpreact on return (each element is read once, before it is
/// overwritten); dlogits [B][V], W2 [H][V].
pub fn linear_tanh_backward<const H: usize, const B: usize>(
    h: &mut [[f32; H]; B],
    dlogits: &[[f32; V]; B],
    w2: &[[f32; V]; H],
) {
    for (h_row, dy) in h.iter_mut().zip(dlogits) {
        for (h_j, w2_j) in h_row.iter_mut().zip(w2) {
            let dh = dot(dy, w2_j);
            *h_j = (1.0 - *h_j * *h_j) * dh;
        }
    }
}

/// Softmax of one row in place, returning ln Σ_k exp(logits[k]) (computed after subtracting the
/// row's maximum, so no exp overflows).
pub fn softmax_row(row: &mut [f32; V]) -> f32 {
    let max = row.iter().fold(f32::NEG_INFINITY, |m, &x| m.max(x));
    let mut sum = 0.0;
    for x in row.iter_mut() {
        *x = libm::expf(*x - max);
        sum += *x;
    }
    let inv = 1.0 / sum;
    for x in row.iter_mut() {
        *x *= inv;
    }
    max + libm::logf(sum)
}

/// Softmax and cross-entropy, fused: probs = softmax(logits) in place, and the returned loss is
/// mean_b (logsumexp(logits[b]) − logits[b][y[b]]), which never takes the log of a rounded 0.
///
/// logits [B][V] (probs on return), y [B] → loss.
pub fn softmax_cross_entropy_forward<const B: usize>(
    logits: &mut [[f32; V]; B],
    y: &[Token; B],
) -> f32 {
    let mut loss = 0.0;
    for (row, target) in logits.iter_mut().zip(y) {
        let logit_y = row[target.index()];
        loss += softmax_row(row) - logit_y;
    }
    loss / B as f32
}

/// Backward of [`softmax_cross_entropy_forward`]: dlogits = (probs − onehot(y)) / B.
/// probs [B][V] (dlogits on return), y [B].
pub fn softmax_cross_entropy_backward<const B: usize>(probs: &mut [[f32; V]; B], y: &[Token; B]) {
    for (row, target) in probs.iter_mut().zip(y) {
        row[target.index()] -= 1.0;
        for x in row.iter_mut() {
            *x /= B as f32;
        }
    }
}
