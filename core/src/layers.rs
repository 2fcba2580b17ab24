//! The fast path's layers: one `*_forward` / `*_backward` pair each, on 8-lane vectors.
//!
//! A batch is a slice of rows, [B][H] in the shape comments: the batch size is a property of
//! the caller's buffers (a `TrainState`'s type), not of this code, so one copy of each layer
//! serves every batch size of a model shape.
//!
//! The matrix products are the two kernels of [`crate::simd`]; the element-wise loops run over
//! the contiguous hidden (H, a multiple of 8) or padded vocabulary (VP = padded(V)) axis as
//! `f32x8`.
//! Buffers are overwritten in place where the derivation no longer needs their old contents
//! (hprebn → bnraw, logits → probs → dlogits, h → dhpreact → dhprebn): that keeps a training
//! state for the default model at 21 KB, which a 64 KB microcontroller can hold.
//! `reference.rs` holds the step-by-step derivation these are tested against.

use crate::model::{BN_EPS, BnStats};
use crate::simd::{self, Start, W, dots, lanes, lanes_mut, rows_times_matrix, zip_map};
use crate::vocab::Token;
use wide::f32x8;

/// Embedding lookup and first linear layer, fused: hprebn[b] = b1 + Σ_t Σ_e C[x[b][t]][e]·W1[t][e].
///
/// x [B][T] tokens, C [V][E], W1 [T][E][H], b1 [H] → hprebn [B][H].
/// emb = C[x] is never stored: the backward reads the same rows of C again.
pub fn embed_linear_forward<const V: usize, const E: usize, const T: usize, const H: usize>(
    hprebn: &mut [[f32; H]],
    x: &[[Token; T]],
    c: &[[f32; E]; V],
    w1: &[[[f32; H]; E]; T],
    b1: &[f32; H],
) {
    let () = crate::shape::ShapeCheck::<V, E, T, H>::OK;
    // The T·E concatenated inputs index W1 as rows i = t·E + e.
    let w1 = w1.as_flattened();
    let emb = |b: usize, i: usize| c[x[b][i / E].index()][i % E];
    rows_times_matrix(hprebn, Start::Row(b1), T * E, emb, |i| &w1[i]);
}

/// Backward of [`embed_linear_forward`], accumulating into the gradients:
/// db1 += Σ_b dhprebn[b]; dW1[t][e] += Σ_b emb[b][t][e]·dhprebn[b];
/// dC[x[b][t]][e] += demb[b][t][e] = dhprebn[b]·W1[t][e].
///
/// dhprebn [B][H], x [B][T], C [V][E], W1 [T][E][H] → dC [V][E], dW1 [T][E][H], db1 [H].
#[allow(clippy::too_many_arguments)]
pub fn embed_linear_backward<const V: usize, const E: usize, const T: usize, const H: usize>(
    dc: &mut [[f32; E]; V],
    dw1: &mut [[[f32; H]; E]; T],
    db1: &mut [f32; H],
    dhprebn: &[[f32; H]],
    x: &[[Token; T]],
    c: &[[f32; E]; V],
    w1: &[[[f32; H]; E]; T],
) {
    let emb = |i: usize, b: usize| c[x[b][i / E].index()][i % E];
    let n = dhprebn.len();
    rows_times_matrix(
        core::array::from_mut(db1),
        Start::Out,
        n,
        |_, _| 1.0,
        |b| &dhprebn[b],
    );
    rows_times_matrix(dw1.as_flattened_mut(), Start::Out, n, emb, |b| &dhprebn[b]);
    let mut demb = [[0.0f32; E]; T];
    for (dy, context) in dhprebn.iter().zip(x) {
        demb_row(&mut demb, dy, w1);
        scatter_add(dc, context, &demb, 1.0);
    }
}

/// demb of one row: demb[t][e] = dhprebn·W1[t][e]. dhprebn [H], W1 [T][E][H] → demb [T][E].
// Inlined into the row loop, as when it was written there: called, the step is 1% slower.
#[inline(always)]
pub fn demb_row<const E: usize, const T: usize, const H: usize>(
    demb: &mut [[f32; E]; T],
    dhprebn: &[f32; H],
    w1: &[[[f32; H]; E]; T],
) {
    let demb = demb.as_flattened_mut();
    dots(dhprebn, w1.as_flattened(), |block, sums| {
        // The last block's lanes past T·E are the zero padding of `dots`.
        for (d, s) in demb[block * W..].iter_mut().zip(sums.to_array()) {
            *d = s;
        }
    });
}

/// The embedding's scatter: C[context[t]][e] += scale·demb[t][e] (a row of C used twice in a
/// context gets both). scale 1 accumulates the gradient dC; −lr applies it as an SGD update.
#[inline(always)]
pub fn scatter_add<const V: usize, const E: usize, const T: usize>(
    c: &mut [[f32; E]; V],
    context: &[Token; T],
    demb: &[[f32; E]; T],
    scale: f32,
) {
    for (token, demb_t) in context.iter().zip(demb) {
        for (c, d) in c[token.index()].iter_mut().zip(demb_t) {
            *c += scale * d;
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
pub fn batchnorm_forward<const H: usize>(
    bnraw: &mut [[f32; H]],
    hpreact: &mut [[f32; H]],
    bnmeani: &mut [f32; H],
    bnvar: &mut [f32; H],
    bnvar_inv: &mut [f32; H],
    gain: &[f32; H],
    bias: &[f32; H],
) {
    let rows = bnraw.len();
    debug_assert!(
        rows >= 2 && hpreact.len() == rows,
        "a batch of at least 2 rows"
    );
    let n = rows as f32;
    let mean = core::array::from_mut(bnmeani);
    rows_times_matrix(mean, Start::Zero, rows, |_, _| 1.0 / n, |b| &bnraw[b]);
    // Two passes (mean, then squared deviations) rather than Σx² − n·mean²: no cancellation.
    for v in 0..H / W {
        let m = f32x8::from(lanes(bnmeani)[v]);
        let mut sum = f32x8::ZERO;
        for row in bnraw.iter() {
            let d = f32x8::from(lanes(row)[v]) - m;
            sum = d.mul_add(d, sum);
        }
        let var = sum / f32x8::splat(n - 1.0);
        lanes_mut(bnvar)[v] = var.to_array();
        lanes_mut(bnvar_inv)[v] = (f32x8::ONE / (var + f32x8::splat(BN_EPS)).sqrt()).to_array();
    }
    for (raw_row, pre_row) in bnraw.iter_mut().zip(hpreact.iter_mut()) {
        for v in 0..H / W {
            let m = f32x8::from(lanes(bnmeani)[v]);
            let inv = f32x8::from(lanes(bnvar_inv)[v]);
            let raw = (f32x8::from(lanes(raw_row)[v]) - m) * inv;
            lanes_mut(raw_row)[v] = raw.to_array();
            lanes_mut(pre_row)[v] = bn_affine(gain, bias, v, raw).to_array();
        }
    }
}

/// hpreact = gain·bnraw + bias on lanes 8v..8v+8 of a row: the one place it is computed, so
/// that a step which recomputes h from bnraw (`in_place.rs`) gets the forward's h bit for bit.
#[inline(always)]
pub fn bn_affine<const H: usize>(
    gain: &[f32; H],
    bias: &[f32; H],
    v: usize,
    bnraw: f32x8,
) -> f32x8 {
    f32x8::from(lanes(gain)[v]).mul_add(bnraw, f32x8::from(lanes(bias)[v]))
}

/// Backward of [`batchnorm_forward`], with the fused formula for the input gradient:
/// dgain += Σ_b bnraw·dhpreact, dbias += Σ_b dhpreact, and
/// dhprebn = gain·bnvar_inv/B · (B·dhpreact − Σ_b dhpreact − B/(B−1)·bnraw·Σ_b(dhpreact·bnraw)).
///
/// dy [B][H] holds dhpreact on entry and dhprebn on return; bnraw [B][H], bnvar_inv, gain [H]
/// → dgain, dbias [H].
pub fn batchnorm_backward<const H: usize>(
    dy: &mut [[f32; H]],
    dgain: &mut [f32; H],
    dbias: &mut [f32; H],
    bnraw: &[[f32; H]],
    bnvar_inv: &[f32; H],
    gain: &[f32; H],
) {
    let rows = dy.len();
    debug_assert!(
        rows >= 2 && bnraw.len() == rows,
        "a batch of at least 2 rows"
    );
    let n = f32x8::splat(rows as f32);
    let bessel = f32x8::splat(rows as f32 / (rows - 1) as f32);
    for v in 0..H / W {
        // Σ_b dy and Σ_b dy·x̂ of this batch: the gradients of bias and gain, and the two sums
        // the fused formula needs.
        let mut sum_dy = f32x8::ZERO;
        let mut sum_dy_raw = f32x8::ZERO;
        for (dy_row, raw_row) in dy.iter().zip(bnraw) {
            let d = f32x8::from(lanes(dy_row)[v]);
            sum_dy += d;
            sum_dy_raw = d.mul_add(f32x8::from(lanes(raw_row)[v]), sum_dy_raw);
        }
        lanes_mut(dgain)[v] = (f32x8::from(lanes(dgain)[v]) + sum_dy_raw).to_array();
        lanes_mut(dbias)[v] = (f32x8::from(lanes(dbias)[v]) + sum_dy).to_array();
        let scale = f32x8::from(lanes(gain)[v]) * f32x8::from(lanes(bnvar_inv)[v]) / n;
        let bessel_sum = bessel * sum_dy_raw;
        for (dy_row, raw_row) in dy.iter_mut().zip(bnraw) {
            let d = f32x8::from(lanes(dy_row)[v]);
            let raw = f32x8::from(lanes(raw_row)[v]);
            let dx = scale * (n.mul_sub(d, sum_dy) - raw * bessel_sum);
            lanes_mut(dy_row)[v] = dx.to_array();
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
    for v in 0..H / W {
        let at = |row: &[f32; H]| f32x8::from(lanes(row)[v]);
        let inv = f32x8::ONE / (at(&stats.var) + f32x8::splat(BN_EPS)).sqrt();
        let hpreact = (at(gain) * inv).mul_add(at(x) - at(&stats.mean), at(bias));
        lanes_mut(x)[v] = hpreact.to_array();
    }
}

/// h = tanh(hpreact), in place on [B][H] (see [`simd::tanh`] for its accuracy).
pub fn tanh_forward<const H: usize>(h: &mut [[f32; H]]) {
    for chunk in lanes_mut(h.as_flattened_mut()) {
        *chunk = simd::tanh(f32x8::from(*chunk)).to_array();
    }
}

/// Output layer: logits = h·W2 + b2, i.e. logits[b][k] = b2[k] + h[b]·W2ᵀ[k].
/// h [B][H], W2ᵀ [V][H], b2 [V] → logits [B][VP]: the V logits, then −∞ to VP lanes, so that
/// softmax can treat the row as whole vectors.
pub fn linear_forward<const V: usize, const VP: usize, const H: usize>(
    logits: &mut [[f32; VP]],
    h: &[[f32; H]],
    w2t: &[[f32; H]; V],
    b2: &[f32; V],
) {
    let mut b2_padded = [f32::NEG_INFINITY; VP];
    b2_padded[..V].copy_from_slice(b2);
    for (out, h_row) in logits.iter_mut().zip(h) {
        let out = lanes_mut(out);
        dots(h_row, w2t, |block, sums| {
            out[block] = (sums + f32x8::from(lanes(&b2_padded)[block])).to_array();
        });
    }
}

/// [`linear_forward`] of one row, unpadded, for inference: logits[k] = b2[k] + h·W2ᵀ[k], the
/// same sums in the same order. h [H], W2ᵀ [V][H], b2 [V] → logits [V].
pub fn linear_forward_row<const V: usize, const H: usize>(
    logits: &mut [f32; V],
    h: &[f32; H],
    w2t: &[[f32; H]; V],
    b2: &[f32; V],
) {
    dots(h, w2t, |block, sums| {
        let at = block * W;
        for ((out, s), b) in logits[at..].iter_mut().zip(sums.to_array()).zip(&b2[at..]) {
            *out = s + b;
        }
    });
}

/// The output layer's backward to its parameters: dW2 += hᵀ·dlogits (stored transposed:
/// dW2ᵀ[k] += Σ_b dlogits[b][k]·h[b]), db2 += Σ_b dlogits.
/// dlogits [B][VP] (the padding is ignored), h [B][H] → dW2ᵀ [V][H], db2 [V].
pub fn linear_backward<const V: usize, const VP: usize, const H: usize>(
    dw2t: &mut [[f32; H]; V],
    db2: &mut [f32; V],
    dlogits: &[[f32; VP]],
    h: &[[f32; H]],
) {
    for dy in dlogits {
        zip_map(db2, &dy[..V], |acc, d| acc + d, |acc, d| acc + d);
    }
    rows_times_matrix(dw2t, Start::Out, h.len(), |k, b| dlogits[b][k], |b| &h[b]);
}

/// The output layer's backward to its input, fused with tanh's backward:
/// dh = dlogits·W2ᵀ, i.e. dh[b] = Σ_k dlogits[b][k]·W2ᵀ[k], and dhpreact = (1 − h²)·dh.
///
/// h [B][H] holds h on entry and dhpreact on return; dlogits [B][VP] (padding ignored),
/// W2ᵀ [V][H].
pub fn linear_tanh_backward<const V: usize, const VP: usize, const H: usize>(
    h: &mut [[f32; H]],
    dlogits: &[[f32; VP]],
    w2t: &[[f32; H]; V],
) {
    // dh for two rows at a time, in a small buffer: h is still needed for 1 − h².
    for (pair, dy_pair) in h.chunks_mut(2).zip(dlogits.chunks(2)) {
        let mut dh = [[0.0f32; H]; 2];
        let dh = &mut dh[..pair.len()];
        rows_times_matrix(dh, Start::Zero, V, |r, k| dy_pair[r][k], |k| &w2t[k]);
        for (h_row, dh_row) in pair.iter_mut().zip(dh.iter()) {
            zip_map(
                h_row,
                dh_row,
                |h, dh| h.mul_neg_add(h, f32x8::ONE) * dh,
                |h, dh| (1.0 - h * h) * dh,
            );
        }
    }
}

/// Softmax in place of a row given as whole vectors, and an optional last vector holding the
/// row's tail padded with −∞ (the padding's probabilities come out exactly 0). Returns the
/// row's maximum m and s = Σ_k exp(logits[k] − m), so that ln Σ_k exp(logits[k]) = m + ln s;
/// subtracting m first keeps every exp ≤ 1.
///
/// One function for the padded rows of training and the unpadded ones of inference, so that
/// firmware holds one copy of it.
fn softmax_vectors(whole: &mut [[f32; W]], mut last: Option<&mut [f32; W]>) -> (f32, f32) {
    // Vector i of the row: one loop body over both kinds keeps one copy of the vector exp,
    // which on a Cortex-M4 (eight scalar lanes) is kilobytes of code.
    let n = whole.len() + usize::from(last.is_some());
    fn nth<'v>(
        whole: &'v mut [[f32; W]],
        last: &'v mut Option<&mut [f32; W]>,
        i: usize,
    ) -> Option<&'v mut [f32; W]> {
        match whole.get_mut(i) {
            Some(v) => Some(v),
            None => last.as_deref_mut(),
        }
    }
    let mut max_v = f32x8::splat(f32::NEG_INFINITY);
    for i in 0..n {
        if let Some(x) = nth(whole, &mut last, i) {
            max_v = max_v.fast_max(f32x8::from(*x));
        }
    }
    let max = max_v
        .to_array()
        .into_iter()
        .fold(f32::NEG_INFINITY, f32::max);
    let max_v = f32x8::splat(max);
    let mut sum = f32x8::ZERO;
    for i in 0..n {
        if let Some(chunk) = nth(whole, &mut last, i) {
            let e = simd::exp(f32x8::from(*chunk) - max_v);
            *chunk = e.to_array();
            sum += e;
        }
    }
    let sum = sum.reduce_add();
    let inv = f32x8::splat(1.0 / sum);
    for i in 0..n {
        if let Some(chunk) = nth(whole, &mut last, i) {
            *chunk = (f32x8::from(*chunk) * inv).to_array();
        }
    }
    (max, sum)
}

/// Softmax of one padded row in place: V logits and −∞ padding to VP → probabilities (the
/// padding's are exactly 0). Returns (max, s) as [`softmax_row`].
pub fn softmax_padded<const VP: usize>(row: &mut [f32; VP]) -> (f32, f32) {
    softmax_vectors(lanes_mut(row), None)
}

/// Softmax of an unpadded row of V logits in place, for inference: the same vectors, sums and
/// results as [`softmax_padded`] of the row padded with −∞. Returns the row's maximum m and
/// s = Σ_k exp(logits[k] − m).
pub fn softmax_row<const V: usize>(row: &mut [f32; V]) -> (f32, f32) {
    let (whole, tail) = row.as_chunks_mut::<W>();
    let mut last = [f32::NEG_INFINITY; W];
    last[..tail.len()].copy_from_slice(tail);
    let max_sum = softmax_vectors(whole, (!tail.is_empty()).then_some(&mut last));
    let n = tail.len();
    tail.copy_from_slice(&last[..n]);
    max_sum
}

/// Softmax and cross-entropy, fused: probs = softmax(logits) in place, and the returned loss is
/// mean_b (logsumexp(logits[b]) − logits[b][y[b]]), which never takes the log of a rounded 0.
///
/// Σ_b ln s_b is taken as the log of one f64 product per 64 rows rather than 64 logs: each
/// s_b is in [1, V] with V ≤ 128, so 64 of them multiply to at most 2⁴⁴⁸ ≈ 7e134, far inside
/// f64.
///
/// logits [B][VP] (probs on return), y [B] → loss.
pub fn softmax_cross_entropy_forward<const VP: usize>(
    logits: &mut [[f32; VP]],
    y: &[Token],
) -> f32 {
    let mut loss = 0.0f64;
    for (rows, targets) in logits.chunks_mut(64).zip(y.chunks(64)) {
        let mut product = 1.0f64;
        for (row, target) in rows.iter_mut().zip(targets) {
            let logit_y = row[target.index()];
            let (max, sum) = softmax_padded(row);
            // In f64: two finite logits can lie more than f32::MAX apart.
            loss += f64::from(max) - f64::from(logit_y);
            product *= f64::from(sum);
        }
        loss += libm::log(product);
    }
    (loss / logits.len() as f64) as f32
}

/// Backward of [`softmax_cross_entropy_forward`]: dlogits = (probs − onehot(y)) / B.
/// probs [B][VP] (dlogits on return), y [B].
pub fn softmax_cross_entropy_backward<const VP: usize>(probs: &mut [[f32; VP]], y: &[Token]) {
    let inv_n = f32x8::splat(1.0 / probs.len() as f32);
    for (row, target) in probs.iter_mut().zip(y) {
        row[target.index()] -= 1.0;
        for chunk in lanes_mut(row) {
            *chunk = (f32x8::from(*chunk) * inv_n).to_array();
        }
    }
}
