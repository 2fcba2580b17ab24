//! The fast path's layers: one `*_forward` / `*_backward` pair each, on 8-lane vectors (16-lane
//! where AVX-512 is built in and the loop is written over a [`Register`]).
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

use crate::columns::BLOCK;
use crate::model::{BN_EPS, BnStats};
use crate::shape::{GATHER_ROWS, MICROCONTROLLER};
use crate::simd::{
    self, ColumnFold, Finish, Register, Start, Tanh, W, by_registers, dots, fold_columns, lanes,
    lanes_mut, rows_times_matrix, rows_times_matrix_then, zip_map,
};
use crate::vocab::Token;
use wide::f32x8;

/// Embedding lookup and first linear layer, fused: hprebn[b] = b1 + Σ_t Σ_e C[x[b][t]][e]·W1[t][e].
///
/// x [B][T] tokens, C [V][E], W1 [T][E][H], b1 [H] → hprebn [B][H].
/// emb = C[x] is never kept: the backward reads the same rows of C again. On a host the rows
/// are gathered first, [`GATHER_ROWS`] contexts at a time into a buffer on the stack, so that
/// each multiply reads a plain row instead of looking its row of C up again;
/// [`embed_linear_forward_gathered`] gathers into a caller's scratch instead.
pub fn embed_linear_forward<const V: usize, const E: usize, const T: usize, const H: usize>(
    hprebn: &mut [[f32; H]],
    x: &[[Token; T]],
    c: &[[f32; E]; V],
    w1: &[[[f32; H]; E]; T],
    b1: &[f32; H],
) {
    let () = crate::shape::ShapeCheck::<V, E, T, H>::OK;
    // One context (inference) looks its rows up in place: cheaper than filling the buffer.
    if GATHER_ROWS == 0 || x.len() == 1 {
        // The T·E concatenated inputs index W1 as rows i = t·E + e.
        let w1 = w1.as_flattened();
        let emb = |b: usize, i: usize| c[x[b][i / E].index()][i % E];
        rows_times_matrix(hprebn, Start::Row(b1), T * E, emb, |i| &w1[i]);
        return;
    }
    let mut emb = [[[0.0; E]; T]; GATHER_ROWS];
    embed_linear_chunks(hprebn, x, c, w1, b1, &mut emb);
}

/// [`embed_linear_forward`] with the embeddings gathered into `emb`, a host's scratch of
/// [`BLOCK`] rows of TEP = [`crate::padded`]`(T·E)` floats that is never zeroed: each chunk of
/// rows is gathered, then read, so nothing is read that this call did not write.
pub fn embed_linear_forward_gathered<
    const V: usize,
    const E: usize,
    const T: usize,
    const H: usize,
    const TEP: usize,
>(
    hprebn: &mut [[f32; H]],
    x: &[[Token; T]],
    c: &[[f32; E]; V],
    w1: &[[[f32; H]; E]; T],
    b1: &[f32; H],
    emb: &mut [[f32; TEP]; BLOCK],
) {
    let () = crate::shape::ShapeCheck::<V, E, T, H>::OK;
    let () = crate::shape::InputPadCheck::<E, T, TEP>::OK;
    embed_linear_chunks(hprebn, x, c, w1, b1, emb);
}

/// The first layer's forward, chunk by chunk of the batch: each chunk's embeddings gathered
/// into `emb` (as many rows as a chunk), then multiplied.
#[inline(always)]
fn embed_linear_chunks<const V: usize, const E: usize, const T: usize, const H: usize>(
    hprebn: &mut [[f32; H]],
    x: &[[Token; T]],
    c: &[[f32; E]; V],
    w1: &[[[f32; H]; E]; T],
    b1: &[f32; H],
    emb: &mut [impl EmbRow],
) {
    // The T·E concatenated inputs index W1 as rows i = t·E + e.
    let w1 = w1.as_flattened();
    let chunk = emb.len();
    for (rows, xs) in hprebn.chunks_mut(chunk).zip(x.chunks(chunk)) {
        let emb = gather(emb, c, xs);
        let emb = |b: usize, i: usize| emb[b].floats()[i];
        rows_times_matrix(rows, Start::Row(b1), T * E, emb, |i| &w1[i]);
    }
}

/// A row of gathered embeddings: the T·E floats of C[x[b]] concatenated, then any padding.
trait EmbRow {
    fn floats(&self) -> &[f32];
    fn floats_mut(&mut self) -> &mut [f32];
}

/// A stack buffer's row, [T][E].
impl<const E: usize, const T: usize> EmbRow for [[f32; E]; T] {
    #[inline(always)]
    fn floats(&self) -> &[f32] {
        self.as_flattened()
    }
    #[inline(always)]
    fn floats_mut(&mut self) -> &mut [f32] {
        self.as_flattened_mut()
    }
}

/// A scratch row, [TEP] with TEP ≥ T·E (`InputPadCheck`).
impl<const TEP: usize> EmbRow for [f32; TEP] {
    #[inline(always)]
    fn floats(&self) -> &[f32] {
        self
    }
    #[inline(always)]
    fn floats_mut(&mut self) -> &mut [f32] {
        self
    }
}

/// emb[b] = C[x[b][0]] ‖ … ‖ C[x[b][T−1]] for the contexts of `x` (at most `emb.len()`), whose
/// rows are returned: the rest of `emb` is neither written nor returned.
#[inline(always)]
fn gather<'e, R: EmbRow, const V: usize, const E: usize, const T: usize>(
    emb: &'e mut [R],
    c: &[[f32; E]; V],
    x: &[[Token; T]],
) -> &'e [R] {
    let emb = &mut emb[..x.len()];
    for (emb_b, context) in emb.iter_mut().zip(x) {
        let (emb_bt, _) = emb_b.floats_mut().as_chunks_mut::<E>();
        for (emb_bt, token) in emb_bt.iter_mut().zip(context) {
            *emb_bt = c[token.index()];
        }
    }
    emb
}

/// Backward of [`embed_linear_forward`] to the first layer's parameters, written over what the
/// buffers held (as [`linear_backward`]): db1 = Σ_b dhprebn[b]; dW1[t][e] = Σ_b
/// emb[b][t][e]·dhprebn[b]. The embedding's part is [`embed_backward`] (or
/// [`embed_backward_w1t`]).
///
/// dhprebn [B][H], x [B][T], C [V][E] → dW1 [T][E][H], db1 [H].
pub fn linear1_backward<const V: usize, const E: usize, const T: usize, const H: usize>(
    dw1: &mut [[[f32; H]; E]; T],
    db1: &mut [f32; H],
    dhprebn: &[[f32; H]],
    x: &[[Token; T]],
    c: &[[f32; E]; V],
) {
    if GATHER_ROWS == 0 {
        db1_backward(db1, dhprebn);
        let n = dhprebn.len();
        let emb = |i: usize, b: usize| c[x[b][i / E].index()][i % E];
        rows_times_matrix(dw1.as_flattened_mut(), Start::Zero, n, emb, |b| &dhprebn[b]);
        return;
    }
    let mut emb = [[[0.0; E]; T]; GATHER_ROWS];
    linear1_backward_chunks(dw1, db1, dhprebn, x, c, &mut emb);
}

/// [`linear1_backward`] with the embeddings gathered into `emb`, a host's scratch, as
/// [`embed_linear_forward_gathered`] does.
pub fn linear1_backward_gathered<
    const V: usize,
    const E: usize,
    const T: usize,
    const H: usize,
    const TEP: usize,
>(
    dw1: &mut [[[f32; H]; E]; T],
    db1: &mut [f32; H],
    dhprebn: &[[f32; H]],
    x: &[[Token; T]],
    c: &[[f32; E]; V],
    emb: &mut [[f32; TEP]; BLOCK],
) {
    let () = crate::shape::InputPadCheck::<E, T, TEP>::OK;
    linear1_backward_chunks(dw1, db1, dhprebn, x, c, emb);
}

/// db1 = Σ_b dhprebn[b]: dhprebn [B][H] → db1 [H].
#[inline(always)]
fn db1_backward<const H: usize>(db1: &mut [f32; H], dhprebn: &[[f32; H]]) {
    let n = dhprebn.len();
    let ones = |_: usize, _: usize| 1.0;
    rows_times_matrix(core::array::from_mut(db1), Start::Zero, n, ones, |b| {
        &dhprebn[b]
    });
}

/// The first layer's backward to its parameters, chunk by chunk of the batch as
/// [`embed_linear_chunks`]: each output's chain of FMAs continues where the last chunk stored
/// it (the first starts from 0), the same sums as one pass.
#[inline(always)]
fn linear1_backward_chunks<const V: usize, const E: usize, const T: usize, const H: usize>(
    dw1: &mut [[[f32; H]; E]; T],
    db1: &mut [f32; H],
    dhprebn: &[[f32; H]],
    x: &[[Token; T]],
    c: &[[f32; E]; V],
    emb: &mut [impl EmbRow],
) {
    db1_backward(db1, dhprebn);
    let chunk = emb.len();
    let mut start = Start::Zero;
    for (dy, xs) in dhprebn.chunks(chunk).zip(x.chunks(chunk)) {
        let emb = gather(emb, c, xs);
        let emb = |i: usize, b: usize| emb[b].floats()[i];
        rows_times_matrix(dw1.as_flattened_mut(), start, dy.len(), emb, |b| &dy[b]);
        start = Start::Out;
    }
}

/// Backward of [`embed_linear_forward`] to the embedding, accumulating:
/// dC[x[b][t]][e] += demb[b][t][e] = dhprebn[b]·W1[t][e], one row of demb at a time.
///
/// dhprebn [B][H], x [B][T], W1 [T][E][H] → dC [V][E].
pub fn embed_backward<const V: usize, const E: usize, const T: usize, const H: usize>(
    dc: &mut [[f32; E]; V],
    dhprebn: &[[f32; H]],
    x: &[[Token; T]],
    w1: &[[[f32; H]; E]; T],
) {
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

/// Batch norm in training mode, with its affine part, and the tanh that follows it:
/// bnmeani = mean_b hprebn, bnvar = Σ_b (hprebn − bnmeani)² / (B − 1) (Bessel),
/// bnvar_inv = (bnvar + ε)^−½, bnraw = (hprebn − bnmeani)·bnvar_inv, hpreact = gain·bnraw + bias,
/// h = tanh(hpreact) ([`simd::tanh`], the values of [`tanh_forward`] of hpreact).
///
/// bnraw [B][H] holds hprebn on entry and bnraw on return; gain, bias [H] → h [B][H],
/// bnmeani, bnvar, bnvar_inv [H].
#[allow(clippy::too_many_arguments)]
pub fn batchnorm_tanh_forward<const H: usize>(
    bnraw: &mut [[f32; H]],
    h: &mut [[f32; H]],
    bnmeani: &mut [f32; H],
    bnvar: &mut [f32; H],
    bnvar_inv: &mut [f32; H],
    gain: &[f32; H],
    bias: &[f32; H],
) {
    batchnorm_tanh_forward_ht(bnraw, h, None, bnmeani, bnvar, bnvar_inv, gain, bias);
}

/// [`batchnorm_tanh_forward`], and where `ht` is given, the first [`BLOCK`] rows of h written
/// transposed there too, hᵀ [H][BLOCK] (the output layer's input when the batch is across the
/// lanes: [`crate::columns`]), the same values as [`simd::transpose`] of them. Each group of 8
/// rows is turned as soon as its tanh is stored: the shuffles run beside the next group's tanh
/// rather than in a pass of their own (README, Speed). `ht` needs a batch of whole blocks.
#[allow(clippy::too_many_arguments)]
pub fn batchnorm_tanh_forward_ht<const H: usize>(
    bnraw: &mut [[f32; H]],
    h: &mut [[f32; H]],
    mut ht: Option<&mut [[f32; BLOCK]; H]>,
    bnmeani: &mut [f32; H],
    bnvar: &mut [f32; H],
    bnvar_inv: &mut [f32; H],
    gain: &[f32; H],
    bias: &[f32; H],
) {
    let rows = bnraw.len();
    debug_assert!(rows >= 2 && h.len() == rows, "a batch of at least 2 rows");
    debug_assert!(
        ht.is_none() || rows.is_multiple_of(BLOCK),
        "hᵀ of a batch of whole blocks"
    );
    let n = rows as f32;
    let mean = core::array::from_mut(bnmeani);
    rows_times_matrix(mean, Start::Zero, rows, |_, _| 1.0 / n, |b| &bnraw[b]);
    // Two passes (mean, then squared deviations) rather than Σx² − n·mean²: no cancellation.
    // Each lane's sums run over the batch in order, whatever the width.
    let squares = SquaredDeviations {
        rows: bnraw,
        mean: bnmeani,
    };
    fold_columns([bnvar], rows, &squares);
    by_registers!(H, |col, X| {
        let m = X::load(bnmeani, col);
        let var = X::load(bnvar, col) / X::splat(n - 1.0);
        var.store(bnvar, col);
        let inv = X::splat(1.0) / (var + X::splat(BN_EPS)).sqrt();
        inv.store(bnvar_inv, col);
        let raw = |raw_row: &mut [f32; H]| {
            let raw = (X::load(raw_row, col) - m) * inv;
            raw.store(raw_row, col);
            bn_affine(gain, bias, col, raw)
        };
        if MICROCONTROLLER {
            for (raw_row, h_row) in bnraw.iter_mut().zip(h.iter_mut()) {
                raw(raw_row).store(h_row, col);
            }
        } else {
            let groups = bnraw.chunks_mut(W).zip(h.chunks_mut(W));
            for (kb, (raw_rows, h_rows)) in groups.enumerate() {
                for (raw_row, h_row) in raw_rows.iter_mut().zip(h_rows.iter_mut()) {
                    raw(raw_row).tanh_fit().store(h_row, col);
                }
                turn_group(ht.as_deref_mut(), h_rows, kb, col, X::LANES);
            }
        }
    });
    // A microcontroller takes tanh in a pass of its own, the code inference also calls: one
    // copy of it in flash (taken in the loop above, it was a second: the train image grew by
    // 808 bytes). It turns hᵀ, if asked to, after it (firmware never asks: no code).
    if MICROCONTROLLER {
        tanh_forward(h);
        if let Some(ht) = ht {
            simd::transpose(ht, &h[..BLOCK]);
        }
    }
}

/// Where `to` is given and the group of 8 rows `rows` (rows kb·8.. of a batch) is in the first
/// [`BLOCK`], its columns col..col + lanes turned into `to` [H][BLOCK] ([`simd::transpose_block`]):
/// batch norm's loops, which go down a batch a few columns at a time, turn what they just
/// stored while it is at hand, the shuffles running beside their arithmetic.
#[inline(always)]
fn turn_group<const H: usize>(
    to: Option<&mut [[f32; BLOCK]; H]>,
    rows: &[[f32; H]],
    kb: usize,
    col: usize,
    lanes: usize,
) {
    if let Some(to) = to.filter(|_| kb < BLOCK / W) {
        for ib in col / W..(col + lanes) / W {
            simd::transpose_block(to, rows, kb, ib);
        }
    }
}

/// Σ_b (x[b] − mean)², by [`fold_columns`].
struct SquaredDeviations<'a, const H: usize> {
    rows: &'a [[f32; H]],
    mean: &'a [f32; H],
}

impl<const H: usize> ColumnFold<1> for SquaredDeviations<'_, H> {
    #[inline(always)]
    fn step<X: Register>(&self, [sum]: [X; 1], b: usize, col: usize) -> [X; 1] {
        let d = X::load(&self.rows[b], col) - X::load(self.mean, col);
        [d.mul_add(d, sum)]
    }
}

/// hpreact = gain·bnraw + bias on the register of a row at lane `col`: the one place it is
/// computed, so that a step which recomputes h from bnraw (`in_place.rs`) gets the forward's h
/// bit for bit.
#[inline(always)]
pub fn bn_affine<X: Register, const H: usize>(
    gain: &[f32; H],
    bias: &[f32; H],
    col: usize,
    bnraw: X,
) -> X {
    X::load(gain, col).mul_add(bnraw, X::load(bias, col))
}

/// Backward of [`batchnorm_tanh_forward`]'s batch norm, with the fused formula for the input
/// gradient:
/// dgain = Σ_b bnraw·dhpreact, dbias = Σ_b dhpreact (written over what they held), and
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
    let (n, bessel) = (rows as f32, rows as f32 / (rows - 1) as f32);
    // The gradients of bias and gain, and the two sums the fused formula needs.
    batchnorm_params_backward(dgain, dbias, dy, bnraw);
    by_registers!(H, |col, X| {
        let (n, bessel) = (X::splat(n), X::splat(bessel));
        let (sum_dy, sum_dy_raw) = (X::load(dbias, col), X::load(dgain, col));
        let scale = X::load(gain, col) * X::load(bnvar_inv, col) / n;
        let bessel_sum = bessel * sum_dy_raw;
        for (dy_row, raw_row) in dy.iter_mut().zip(bnraw) {
            let d = X::load(dy_row, col);
            let raw = X::load(raw_row, col);
            let dx = scale * (n.mul_sub(d, sum_dy) - raw * bessel_sum);
            dx.store(dy_row, col);
        }
    });
}

/// Σ_b dy and Σ_b dy·x̂ over the batch, by [`fold_columns`]: the gradients of batch norm's
/// bias and gain.
struct BnParamSums<'a, const H: usize> {
    dy: &'a [[f32; H]],
    bnraw: &'a [[f32; H]],
}

impl<const H: usize> ColumnFold<2> for BnParamSums<'_, H> {
    #[inline(always)]
    fn step<X: Register>(&self, [sum_dy, sum_dy_raw]: [X; 2], b: usize, col: usize) -> [X; 2] {
        let d = X::load(&self.dy[b], col);
        [
            sum_dy + d,
            d.mul_add(X::load(&self.bnraw[b], col), sum_dy_raw),
        ]
    }
}

/// The gradients of gain and bias, written over what they held: dgain = Σ_b dy·x̂,
/// dbias = Σ_b dy. [`batchnorm_backward`] calls it, so that a step that trains no layer below
/// batch norm gets the same sums without dhprebn. dy, bnraw: [B×H].
#[inline(always)]
pub fn batchnorm_params_backward<const H: usize>(
    dgain: &mut [f32; H],
    dbias: &mut [f32; H],
    dy: &[[f32; H]],
    bnraw: &[[f32; H]],
) {
    debug_assert_eq!(dy.len(), bnraw.len());
    fold_columns([dbias, dgain], dy.len(), &BnParamSums { dy, bnraw });
}

/// Batch norm in inference mode, with stored statistics:
/// hpreact = gain·(hprebn − mean)·(var + ε)^−½ + bias, in place on one row [H].
pub fn batchnorm_inference<const H: usize>(
    x: &mut [f32; H],
    stats: &BnStats<H>,
    gain: &[f32; H],
    bias: &[f32; H],
) {
    batchnorm_inference_rows(core::array::from_mut(x), stats, gain, bias);
}

/// [`batchnorm_inference`] of many rows [R][H], in place, the scale gain·(var + ε)^−½ computed
/// once rather than once a row.
pub fn batchnorm_inference_rows<const H: usize>(
    rows: &mut [[f32; H]],
    stats: &BnStats<H>,
    gain: &[f32; H],
    bias: &[f32; H],
) {
    for v in 0..H / W {
        let at = |row: &[f32; H]| f32x8::from(lanes(row)[v]);
        let inv = f32x8::ONE / (at(&stats.var) + f32x8::splat(BN_EPS)).sqrt();
        let (scale, mean, bias) = (at(gain) * inv, at(&stats.mean), at(bias));
        for x in rows.iter_mut() {
            lanes_mut(x)[v] = scale.mul_add(at(x) - mean, bias).to_array();
        }
    }
}

/// h = tanh(hpreact), in place on [B][H] (see [`simd::tanh`] for its accuracy).
pub fn tanh_forward<const H: usize>(h: &mut [[f32; H]]) {
    let h = h.as_flattened_mut();
    #[cfg(target_feature = "avx512f")]
    let h = {
        // 16 lanes at a time where AVX-512 is built in: the same value in each lane.
        let (whole, rest) = h.as_chunks_mut::<16>();
        for chunk in whole {
            *chunk = simd::tanh16(wide::f32x16::from(*chunk)).to_array();
        }
        rest
    };
    for chunk in lanes_mut(h) {
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

/// [`linear_forward`] from W2 itself rather than its transpose: logits[b] = b2 + Σ_i h[b][i]·W2[i],
/// a product [`rows_times_matrix`] tiles over the batch and the logits with no reduction across
/// lanes. h [B][H], W2 [H][VP] (columns V..VP zero), b2 [V] → logits [B][VP], padded with −∞.
///
/// Each logit is b2[k] followed by one FMA per hidden unit in order: the same value as the
/// reference's sum up to rounding, not bit for bit the value of [`linear_forward`].
pub fn linear_forward_w2<const V: usize, const VP: usize, const H: usize>(
    logits: &mut [[f32; VP]],
    h: &[[f32; H]],
    w2: &[[f32; VP]; H],
    b2: &[f32; V],
) {
    let mut b2_padded = [f32::NEG_INFINITY; VP];
    b2_padded[..V].copy_from_slice(b2);
    rows_times_matrix(
        logits,
        Start::Row(&b2_padded),
        H,
        |b, i| h[b][i],
        |i| &w2[i],
    );
}

/// W2 [H][VP] from W2ᵀ [V][H], for [`linear_forward_w2`]; columns V..VP come out zero.
pub fn transpose_w2<const V: usize, const VP: usize, const H: usize>(
    w2: &mut [[f32; VP]; H],
    w2t: &[[f32; H]; V],
) {
    simd::transpose(w2, w2t);
}

/// W1ᵀ [H][TEP] from W1 [T][E][H] (rows i = t·E + e); columns T·E..TEP come out zero.
pub fn transpose_w1<const E: usize, const T: usize, const H: usize, const TEP: usize>(
    w1t: &mut [[f32; TEP]; H],
    w1: &[[[f32; H]; E]; T],
) {
    simd::transpose(w1t, w1.as_flattened());
}

/// The embedding's backward from W1ᵀ: demb[b] = dhprebn[b]·W1ᵀ, tiled as [`linear_forward_w2`],
/// [`BLOCK`] rows at a time into `demb` (scratch: the product overwrites it), each scattered into dC
/// (dC[x[b][t]][e] += demb[b][t][e]).
/// dhprebn [B][H], x [B][T], W1ᵀ [H][TEP] (columns T·E..TEP zero) → dC [V][E].
pub fn embed_backward_w1t<
    const V: usize,
    const E: usize,
    const T: usize,
    const H: usize,
    const TEP: usize,
>(
    dc: &mut [[f32; E]; V],
    dhprebn: &[[f32; H]],
    x: &[[Token; T]],
    w1t: &[[f32; TEP]; H],
    demb: &mut [[f32; TEP]; BLOCK],
) {
    let () = crate::shape::InputPadCheck::<E, T, TEP>::OK;
    for (dy, xs) in dhprebn.chunks(BLOCK).zip(x.chunks(BLOCK)) {
        let demb = &mut demb[..dy.len()];
        rows_times_matrix(demb, Start::Zero, H, |b, j| dy[b][j], |j| &w1t[j]);
        for (demb_b, context) in demb.iter().zip(xs) {
            let demb_b: &[[f32; E]; T] = demb_b[..T * E]
                .as_chunks::<E>()
                .0
                .try_into()
                .expect("T·E ≤ TEP floats are T rows of E");
            scatter_add(dc, context, demb_b, 1.0);
        }
    }
}

/// The output layer for one row, unpadded, for inference: logits[k] = b2[k] + Σ_i h[i]·W2ᵀ[k][i]
/// as one FMA at a time in i's order, the sums of [`linear_forward_w2`] (a host's batched
/// inference), bit for bit, so that one context at a time and many side by side give the same
/// logits. h [H], W2ᵀ [V][H], b2 [V] → logits [V].
pub fn linear_forward_row<const V: usize, const H: usize>(
    logits: &mut [f32; V],
    h: &[f32; H],
    w2t: &[[f32; H]; V],
    b2: &[f32; V],
) {
    for ((out, b2), rows) in logits.chunks_mut(W).zip(b2.chunks(W)).zip(w2t.chunks(W)) {
        let mut acc = [0.0; W];
        acc[..b2.len()].copy_from_slice(b2);
        let mut acc = f32x8::from(acc);
        for (i, &h_i) in h.iter().enumerate() {
            // Lanes of column i of W2ᵀ: row i of W2. Past the last row, 0.
            let w2_i = core::array::from_fn(|l| rows.get(l).map_or(0.0, |row| row[i]));
            acc = f32x8::splat(h_i).mul_add(f32x8::from(w2_i), acc);
        }
        out.copy_from_slice(&acc.to_array()[..out.len()]);
    }
}

/// The output layer's backward to its parameters, written over what the buffers held:
/// dW2 = hᵀ·dlogits (stored transposed: dW2ᵀ[k] = Σ_b dlogits[b][k]·h[b]), db2 = Σ_b dlogits.
/// dlogits [B][VP] (the padding is ignored), h [B][H] → dW2ᵀ [V][H], db2 [V].
///
/// Each sum is the chain of adds or FMAs an accumulation into zeros would make, from 0: the
/// same values as zeroing the gradients first (up to the sign of a zero), without the pass.
pub fn linear_backward<const V: usize, const VP: usize, const H: usize>(
    dw2t: &mut [[f32; H]; V],
    db2: &mut [f32; V],
    dlogits: &[[f32; VP]],
    h: &[[f32; H]],
) {
    db2.fill(0.0);
    for dy in dlogits {
        zip_map(db2, &dy[..V], |acc, d| acc + d, |acc, d| acc + d);
    }
    rows_times_matrix(dw2t, Start::Zero, h.len(), |k, b| dlogits[b][k], |b| &h[b]);
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
    dh_tanh_backward(h, |b, k| dlogits[b][k], w2t);
}

/// [`linear_tanh_backward`] with dlogits[b][k] given as `dlogit(b, k)` (rows [B][VP], or the
/// blocks of [`crate::columns`]): each register of dh is multiplied by 1 − h² as its tile of
/// the product is done, over the h it reads there (no buffer for dh, no pass of its own).
#[inline(always)]
pub(crate) fn dh_tanh_backward<const V: usize, const H: usize>(
    h: &mut [[f32; H]],
    dlogit: impl Fn(usize, usize) -> f32,
    w2t: &[[f32; H]; V],
) {
    rows_times_matrix_then(h, Start::Zero, V, dlogit, |k| &w2t[k], &TanhBackward);
}

/// dhpreact = (1 − h²)·dh, over h: the finish of [`dh_tanh_backward`]'s product.
struct TanhBackward;

impl<const H: usize> Finish<H> for TanhBackward {
    #[inline(always)]
    fn finish<X: Register>(&self, h_row: &mut [f32; H], col: usize, dh: X) {
        let h = X::load(h_row, col);
        (h.mul_neg_add(h, X::splat(1.0)) * dh).store(h_row, col);
    }
}

/// Softmax in place of a row given as whole vectors, and an optional last vector holding the
/// row's tail padded with −∞ (the padding's probabilities come out exactly 0). Returns the
/// row's maximum m and s = Σ_k exp(logits[k] − m), so that ln Σ_k exp(logits[k]) = m + ln s;
/// subtracting m first keeps every exp ≤ 1.
///
/// One function for the padded rows of training and the unpadded ones of inference, so that
/// firmware holds one copy of it.
fn softmax_vectors(
    whole: &mut [[f32; W]],
    mut last: Option<&mut [f32; W]>,
    normalize: bool,
) -> (f32, f32) {
    #[cfg(target_feature = "avx512f")]
    if last.is_none() && whole.len().is_multiple_of(2) {
        return softmax_rows::<wide::f32x16, 1>([whole.as_flattened_mut()], normalize)[0];
    }
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
    // A NaN lane is passed over, as f32::max would, with one compare per lane.
    let max = max_v
        .to_array()
        .into_iter()
        .fold(f32::NEG_INFINITY, |m, x| if x > m { x } else { m });
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
    if !normalize {
        return (max, sum);
    }
    let inv = f32x8::splat(1.0 / sum);
    for i in 0..n {
        if let Some(chunk) = nth(whole, &mut last, i) {
            *chunk = (f32x8::from(*chunk) * inv).to_array();
        }
    }
    (max, sum)
}

/// What [`softmax_rows`] needs of a register beyond [`Register`]: its max, its exp, and its
/// reductions in the order the 8-lane code takes them.
pub(crate) trait SoftmaxLanes: Register {
    fn max(self, other: Self) -> Self;
    fn exp(self) -> Self;
    /// The largest lane (a NaN lane is passed over, as f32::max would).
    fn max_lane(self) -> f32;
    /// sum += each f32x8 of the register, in order.
    fn add_eights_to(self, sum: &mut f32x8);
}

impl SoftmaxLanes for f32x8 {
    #[inline(always)]
    fn max(self, other: Self) -> Self {
        self.fast_max(other)
    }
    #[inline(always)]
    fn exp(self) -> Self {
        simd::exp(self)
    }
    #[inline(always)]
    fn max_lane(self) -> f32 {
        self.to_array()
            .into_iter()
            .fold(f32::NEG_INFINITY, |m, x| if x > m { x } else { m })
    }
    #[inline(always)]
    fn add_eights_to(self, sum: &mut f32x8) {
        *sum += self;
    }
}

#[cfg(target_feature = "avx512f")]
impl SoftmaxLanes for wide::f32x16 {
    #[inline(always)]
    fn max(self, other: Self) -> Self {
        self.fast_max(other)
    }
    #[inline(always)]
    fn exp(self) -> Self {
        simd::exp16(self)
    }
    /// Halving in registers, then four lanes: the same maximum as the 8-lane fold for logits
    /// that are not NaN. (A NaN logit is not carried through: `exp`'s clamp makes it e^−87.3,
    /// and which other lanes a NaN's `fast_max` forgets depends on the way; the loss is NaN
    /// only when the target's logit is.)
    #[inline(always)]
    fn max_lane(self) -> f32 {
        let halves: [f32x8; 2] = bytemuck::cast(self);
        let quarters: [wide::f32x4; 2] = bytemuck::cast(halves[0].fast_max(halves[1]));
        quarters[0]
            .fast_max(quarters[1])
            .to_array()
            .into_iter()
            .fold(f32::NEG_INFINITY, |m, x| if x > m { x } else { m })
    }
    #[inline(always)]
    fn add_eights_to(self, sum: &mut f32x8) {
        let halves: [f32x8; 2] = bytemuck::cast(self);
        *sum += halves[0];
        *sum += halves[1];
    }
}

/// [`softmax_vectors`] of K rows of whole X registers at once, each row's operations exactly
/// the 8-lane code's (the same exps, the same sum over the same f32x8 parts in the same order,
/// the same maximum), so the results are bit for bit the same. A row is a chain of dependent
/// steps (max, exp, sum, 1/sum) that left the core waiting: K independent chains fill it.
#[inline(always)]
fn softmax_rows<X: SoftmaxLanes, const K: usize>(
    mut rows: [&mut [f32]; K],
    normalize: bool,
) -> [(f32, f32); K] {
    let n = rows[0].len() / X::LANES;
    let mut max_v = [X::splat(f32::NEG_INFINITY); K];
    for i in 0..n {
        for (m, row) in max_v.iter_mut().zip(&rows) {
            *m = m.max(X::load(row, i * X::LANES));
        }
    }
    let max: [f32; K] = core::array::from_fn(|k| max_v[k].max_lane());
    let mut sums = [f32x8::ZERO; K];
    for i in 0..n {
        for ((sum, row), &m) in sums.iter_mut().zip(rows.iter_mut()).zip(&max) {
            let e = (X::load(row, i * X::LANES) - X::splat(m)).exp();
            e.store(row, i * X::LANES);
            e.add_eights_to(sum);
        }
    }
    let sum: [f32; K] = core::array::from_fn(|k| sums[k].reduce_add());
    if normalize {
        for (row, &s) in rows.into_iter().zip(&sum) {
            let inv = X::splat(1.0 / s);
            for i in 0..n {
                (X::load(row, i * X::LANES) * inv).store(row, i * X::LANES);
            }
        }
    }
    core::array::from_fn(|k| (max[k], sum[k]))
}

/// [`softmax_padded`] of K rows at once on a host, where one row leaves the core waiting (the
/// same results bit for bit): `Wide` registers where they fill the row, else f32x8.
fn softmax_padded_rows<const VP: usize, const K: usize>(
    rows: &mut [[f32; VP]; K],
) -> [(f32, f32); K] {
    let rows = rows.each_mut().map(|r| &mut r[..]);
    if VP.is_multiple_of(simd::Wide::LANES) {
        softmax_rows::<simd::Wide, K>(rows, true)
    } else {
        softmax_rows::<f32x8, K>(rows, true)
    }
}

/// Softmax of one padded row in place: V logits and −∞ padding to VP → probabilities (the
/// padding's are exactly 0). Returns (max, s) as [`softmax_row`].
pub fn softmax_padded<const VP: usize>(row: &mut [f32; VP]) -> (f32, f32) {
    softmax_vectors(lanes_mut(row), None, true)
}

/// Softmax of an unpadded row of V logits in place, for inference: the same vectors, sums and
/// results as [`softmax_padded`] of the row padded with −∞. Returns the row's maximum m and
/// s = Σ_k exp(logits[k] − m).
pub fn softmax_row<const V: usize>(row: &mut [f32; V]) -> (f32, f32) {
    exp_row(row, true)
}

/// The (max, s) of [`softmax_row`], bit for bit, without normalising: the row comes out as
/// exp(logits − max). What a loss needs, one pass cheaper.
pub fn logsumexp_row<const V: usize>(row: &mut [f32; V]) -> (f32, f32) {
    exp_row(row, false)
}

/// [`logsumexp_row`] of a row padded with −∞ to whole vectors: the same (max, s), bit for bit,
/// without copying a tail.
pub fn logsumexp_padded<const VP: usize>(row: &mut [f32; VP]) -> (f32, f32) {
    softmax_vectors(lanes_mut(row), None, false)
}

fn exp_row<const V: usize>(row: &mut [f32; V], normalize: bool) -> (f32, f32) {
    let (whole, tail) = row.as_chunks_mut::<W>();
    let mut last = [f32::NEG_INFINITY; W];
    last[..tail.len()].copy_from_slice(tail);
    let last_vector = (!tail.is_empty()).then_some(&mut last);
    let max_sum = softmax_vectors(whole, last_vector, normalize);
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
    debug_assert_eq!(logits.len(), y.len(), "a target for every row");
    let mut loss = NllSum::new();
    // Four rows at a time on a host; one on a microcontroller, whose scalar lanes gain nothing
    // from it and which keeps one copy of the vector exp.
    let (quads, rest) = if MICROCONTROLLER {
        (&mut [][..], &mut logits[..])
    } else {
        logits.as_chunks_mut::<4>()
    };
    let (y_quads, y_rest) = y.split_at((4 * quads.len()).min(y.len()));
    for (rows, y) in quads.iter_mut().zip(y_quads.chunks_exact(4)) {
        let logit_y: [f32; 4] = core::array::from_fn(|k| rows[k][y[k].index()]);
        for (max_sum, logit_y) in softmax_padded_rows(rows).into_iter().zip(logit_y) {
            loss.add(max_sum, logit_y);
        }
    }
    for (row, target) in rest.iter_mut().zip(y_rest) {
        let logit_y = row[target.index()];
        loss.add(softmax_padded(row), logit_y);
    }
    loss.mean(logits.len())
}

/// Σ_b −ln p_b from each row's (max, s) and target logit: the (max − logit_y) added in f64 (two
/// finite logits can lie more than f32::MAX apart), and ln s once per 64 rows, as the log of
/// their product (each s is in [1, V] with V ≤ 128: 64 of them multiply to at most 2⁴⁴⁸, far
/// inside f64). Training's loss and evaluation's share it, so both sum in one order.
pub(crate) struct NllSum {
    total: f64,
    product: f64,
    pending: u32,
}

impl NllSum {
    pub(crate) fn new() -> Self {
        NllSum {
            total: 0.0,
            product: 1.0,
            pending: 0,
        }
    }

    pub(crate) fn add(&mut self, (max, sum): (f32, f32), logit_y: f32) {
        self.total += f64::from(max) - f64::from(logit_y);
        self.product *= f64::from(sum);
        self.pending += 1;
        if self.pending == 64 {
            self.total += libm::log(self.product);
            (self.product, self.pending) = (1.0, 0);
        }
    }

    /// The mean loss over `rows` rows, as f32: the training step's loss, whichever layout its
    /// output layer used.
    pub(crate) fn mean(&self, rows: usize) -> f32 {
        (self.total() / rows as f64) as f32
    }

    pub(crate) fn total(&self) -> f64 {
        match self.pending {
            0 => self.total,
            _ => self.total + libm::log(self.product),
        }
    }
}

/// Backward of [`softmax_cross_entropy_forward`]: dlogits = (probs − onehot(y)) / B.
/// probs [B][VP] (dlogits on return), y [B].
pub fn softmax_cross_entropy_backward<const VP: usize>(probs: &mut [[f32; VP]], y: &[Token]) {
    let inv_n = f32x8::splat(1.0 / probs.len() as f32);
    let lane = f32x8::from([0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0]);
    for (row, target) in probs.iter_mut().zip(y) {
        if MICROCONTROLLER {
            row[target.index()] -= 1.0;
            for chunk in lanes_mut(row) {
                *chunk = (f32x8::from(*chunk) * inv_n).to_array();
            }
            continue;
        }
        // On a host the one-hot is a vector (the target lane's all-ones mask and 1.0), which
        // gives exactly the scalar p − 1 there and p − 0 = p elsewhere: a scalar store followed
        // by a load of its vector waited for the store, row after row.
        let target = f32x8::splat(target.index() as f32);
        for (c, chunk) in lanes_mut(row).iter_mut().enumerate() {
            let here = (lane + f32x8::splat((c * W) as f32)).simd_eq(target);
            *chunk = dlogits_lanes(f32x8::from(*chunk), here, inv_n).to_array();
        }
    }
}

/// dlogits = (p − onehot)/n on eight lanes, `here` the all-ones mask of the target's lane (if
/// among them): p − 1 there, p − 0 = p elsewhere, exactly. The rows' way and the columns' way
/// (`columns.rs`) share it, so their dlogits are the same bits.
#[inline(always)]
pub(crate) fn dlogits_lanes(p: f32x8, here: f32x8, inv_n: f32x8) -> f32x8 {
    (p - (here & f32x8::ONE)) * inv_n
}

#[cfg(test)]
mod tests {
    use super::*;
    extern crate std;

    /// Each float's bits, so that arrays compare bit for bit (a NaN included).
    fn bits(x: &[f32]) -> std::vec::Vec<u32> {
        x.iter().map(|v| v.to_bits()).collect()
    }

    /// A value of row r, column j whose columns repeat every 64: columns 64..72 are 0..8.
    fn value(r: usize, j: usize) -> f32 {
        (((r * 37 + (j % 64) * 11) % 29) as f32 - 14.0) * 0.173
    }

    /// The first layer's products gathered, in a host's scratch ([`embed_linear_forward_gathered`],
    /// [`linear1_backward_gathered`]) or on the stack ([`embed_linear_forward`],
    /// [`linear1_backward`]), are those of the lookup in place over the whole batch at once
    /// (firmware's way, which shares no chunk loop with them), bit for bit. The scratch is
    /// NaN-filled first, so that a row read before it was written shows. Batches of 1, within
    /// a block, of whole blocks and of blocks and a part; shapes with T·E padded (30 in 32, 35 in
    /// 40) and not (192), hidden widths of 64, 136 (not whole 16-lane registers) and 200.
    #[test]
    fn gathered_is_looked_up_in_place() {
        check_gathered::<27, 10, 3, 64, 32>();
        check_gathered::<27, 7, 5, 136, 40>();
        check_gathered::<128, 24, 8, 200, 192>();
    }

    fn check_gathered<
        const V: usize,
        const E: usize,
        const T: usize,
        const H: usize,
        const TEP: usize,
    >() {
        extern crate std;
        use std::{boxed::Box, vec, vec::Vec};
        const N: usize = 100;
        let c: Vec<[f32; E]> = (0..V)
            .map(|v| core::array::from_fn(|e| value(v, e)))
            .collect();
        let c: &[[f32; E]; V] = c.as_slice().try_into().unwrap();
        let w1: Vec<[[f32; H]; E]> = (0..T)
            .map(|t| core::array::from_fn(|e| core::array::from_fn(|j| value(t * E + e, j))))
            .collect();
        let w1: &[[[f32; H]; E]; T] = w1.as_slice().try_into().unwrap();
        let w1_rows = w1.as_flattened();
        let b1: [f32; H] = core::array::from_fn(|j| value(50, j));
        let x: Vec<[Token; T]> = (0..N)
            .map(|b| core::array::from_fn(|t| Token::wrapping(((b * 7 + t * 5) % V) as u8, V)))
            .collect();
        let dhprebn: Vec<[f32; H]> = (0..N)
            .map(|b| core::array::from_fn(|j| value(b + 60, j)))
            .collect();
        for n in [1, 2, 17, 32, 33, 64, 100] {
            let (x, dhprebn) = (&x[..n], &dhprebn[..n]);
            let emb = |b: usize, i: usize| c[x[b][i / E].index()][i % E];

            let mut in_place = vec![[f32::NAN; H]; n];
            rows_times_matrix(&mut in_place, Start::Row(&b1), T * E, emb, |i| &w1_rows[i]);
            let mut stack = vec![[f32::NAN; H]; n];
            embed_linear_forward(&mut stack, x, c, w1, &b1);
            let mut gathered = vec![[f32::NAN; H]; n];
            let mut scratch = [[f32::NAN; TEP]; BLOCK];
            embed_linear_forward_gathered(&mut gathered, x, c, w1, &b1, &mut scratch);
            let in_place = bits(in_place.as_flattened());
            assert_eq!(
                bits(stack.as_flattened()),
                in_place,
                "hprebn on the stack, B {n}"
            );
            assert_eq!(
                bits(gathered.as_flattened()),
                in_place,
                "hprebn gathered, B {n}"
            );

            let mut dw1 = vec![[f32::NAN; H]; T * E];
            let emb_t = |i: usize, b: usize| emb(b, i);
            rows_times_matrix(&mut dw1, Start::Zero, n, emb_t, |b| &dhprebn[b]);
            let mut db1 = [f32::NAN; H];
            rows_times_matrix(
                core::array::from_mut(&mut db1),
                Start::Zero,
                n,
                |_, _| 1.0,
                |b| &dhprebn[b],
            );
            let (dw1, db1) = (bits(dw1.as_flattened()), bits(&db1));
            let fresh = || (Box::new([[[f32::NAN; H]; E]; T]), [f32::NAN; H]);
            let (mut dw1_stack, mut db1_stack) = fresh();
            linear1_backward(&mut dw1_stack, &mut db1_stack, dhprebn, x, c);
            let (mut dw1_gathered, mut db1_gathered) = fresh();
            let mut scratch = [[f32::NAN; TEP]; BLOCK];
            let d = &mut *dw1_gathered;
            linear1_backward_gathered(d, &mut db1_gathered, dhprebn, x, c, &mut scratch);
            let flat = |d: &[[[f32; H]; E]; T]| bits(d.as_flattened().as_flattened());
            assert_eq!(flat(&dw1_stack), dw1, "dW1 on the stack, B {n}");
            assert_eq!(flat(&dw1_gathered), dw1, "dW1 gathered, B {n}");
            assert_eq!(bits(&db1_stack), db1, "db1 on the stack, B {n}");
            assert_eq!(bits(&db1_gathered), db1, "db1 gathered, B {n}");
        }
    }

    /// Batch norm's 16-lane registers (AVX-512) compute each lane as its 8-lane ones: with
    /// H = 72, columns 0..8 go through a wide register and 64..72 through an f32x8 (on AVX2 both
    /// are f32x8), and given the same inputs they give the same bits, forward and backward.
    #[test]
    fn batch_norm_lanes_do_not_depend_on_the_register_width() {
        const H: usize = 72;
        let mut bnraw: [[f32; H]; 5] =
            core::array::from_fn(|r| core::array::from_fn(|j| value(r, j)));
        let mut h = [[0.0; H]; 5];
        let (mut mean, mut var, mut var_inv) = ([0.0; H], [0.0; H], [0.0; H]);
        let gain: [f32; H] = core::array::from_fn(|j| 1.0 + value(7, j) * 0.1);
        let bias: [f32; H] = core::array::from_fn(|j| value(9, j) * 0.1);
        batchnorm_tanh_forward(
            &mut bnraw,
            &mut h,
            &mut mean,
            &mut var,
            &mut var_inv,
            &gain,
            &bias,
        );
        let mut dy: [[f32; H]; 5] =
            core::array::from_fn(|r| core::array::from_fn(|j| value(r + 3, j)));
        let (mut dgain, mut dbias) = ([0.0; H], [0.0; H]);
        batchnorm_backward(&mut dy, &mut dgain, &mut dbias, &bnraw, &var_inv, &gain);
        let same = |row: &[f32; H], what: &str| {
            for j in 0..8 {
                assert_eq!(row[j].to_bits(), row[64 + j].to_bits(), "{what}[{j}]");
            }
        };
        for (what, row) in [
            ("var", &var),
            ("var_inv", &var_inv),
            ("dgain", &dgain),
            ("dbias", &dbias),
        ] {
            same(row, what);
        }
        for r in 0..5 {
            same(&bnraw[r], "bnraw");
            same(&h[r], "h");
            same(&dy[r], "dhprebn");
        }
        assert!(var[0] > 0.1 && dgain[0] != 0.0, "a test of something");
    }

    /// Batch norm's forward with tanh in the same pass is batch norm's affine output, then
    /// [`tanh_forward`] over it in a pass of its own, bit for bit, with or without hᵀ; and its
    /// hᵀ is [`simd::transpose`] of h's first block. hᵀ is NaN-filled first, so a part left
    /// unwritten shows. Batches of one and two blocks (the second is not turned) and of 5 rows
    /// (no hᵀ); widths of whole registers and, on AVX-512, with an f32x8 past them (72).
    #[test]
    fn batch_norm_and_tanh_in_one_pass_are_two_passes() {
        fn check<const H: usize, const B: usize>(turn: bool) {
            extern crate std;
            use std::boxed::Box;
            let hprebn: Box<[[f32; H]; B]> = Box::new(core::array::from_fn(|r| {
                core::array::from_fn(|j| value(r, j) * 3.0)
            }));
            let gain: [f32; H] = core::array::from_fn(|j| 1.0 + value(7, j) * 0.3);
            let bias: [f32; H] = core::array::from_fn(|j| value(9, j) * 0.3);
            let run = |ht: Option<&mut [[f32; BLOCK]; H]>| {
                let (mut bnraw, mut h) = (hprebn.clone(), Box::new([[0.0; H]; B]));
                let mut stats = ([0.0; H], [0.0; H], [0.0; H]);
                let (mean, var, inv) = (&mut stats.0, &mut stats.1, &mut stats.2);
                batchnorm_tanh_forward_ht(
                    &mut bnraw[..],
                    &mut h[..],
                    ht,
                    mean,
                    var,
                    inv,
                    &gain,
                    &bias,
                );
                (bnraw, h, stats)
            };
            let mut ht = Box::new([[f32::NAN; BLOCK]; H]);
            let (bnraw, h, _) = run(turn.then_some(&mut *ht));
            // The two passes: hpreact = gain·bnraw + bias where bnraw is, then tanh.
            let mut want = Box::new([[0.0; H]; B]);
            for (pre, raw) in want.iter_mut().zip(bnraw.iter()) {
                for col in (0..H).step_by(W) {
                    let raw = f32x8::load(raw, col);
                    bn_affine(&gain, &bias, col, raw).store(pre, col);
                }
            }
            tanh_forward(&mut want[..]);
            assert_eq!(
                bits(h.as_flattened()),
                bits(want.as_flattened()),
                "H {H}, B {B}: h"
            );
            let (bnraw_none, h_none, _) = run(None);
            assert_eq!(
                bits(h_none.as_flattened()),
                bits(h.as_flattened()),
                "H {H}, B {B}: h without hᵀ"
            );
            assert_eq!(
                bits(bnraw_none.as_flattened()),
                bits(bnraw.as_flattened()),
                "H {H}, B {B}: bnraw"
            );
            if turn {
                let mut want_t = Box::new([[0.0; BLOCK]; H]);
                simd::transpose(&mut want_t, &h[..BLOCK]);
                let (ht, want_t) = (bits(ht.as_flattened()), bits(want_t.as_flattened()));
                assert_eq!(ht, want_t, "H {H}, B {B}: hᵀ");
            }
            assert!(h[1][0] != 0.0 && h[1][0].abs() < 1.0, "a test of something");
        }
        check::<64, 32>(true);
        check::<64, 64>(true);
        check::<72, 32>(true);
        check::<200, 64>(true);
        check::<64, 5>(false);
        check::<72, 5>(false);
    }

    /// The output layer's backward to h, tanh's derivative taken in the product's finish
    /// ([`linear_tanh_backward`]), is the product dh = dlogits·W2ᵀ into a buffer of its own and
    /// then (1 − h²)·dh over h in a pass of its own, bit for bit: the two passes it replaced.
    /// Batches of 1 to 13 rows (every kind of band) and 32; widths of whole registers and, on
    /// AVX-512, with an f32x8 past them (72); h of ±1 and 0 among the rest, where 1 − h² is a
    /// zero whose sign shows how it was computed; dlogits' padding NaN, to show it is not read.
    #[test]
    fn tanh_derivative_in_the_products_finish_is_two_passes() {
        fn check<const V: usize, const VP: usize, const H: usize>(rows: usize) {
            extern crate std;
            use core::array::from_fn;
            use std::{vec, vec::Vec};
            let h: Vec<[f32; H]> = (0..rows)
                .map(|r| {
                    from_fn(|j| match (r + j) % 9 {
                        0 => 1.0,
                        1 => -1.0,
                        2 => 0.0,
                        _ => value(r, j) * 0.4,
                    })
                })
                .collect();
            let dlogits: Vec<[f32; VP]> = (0..rows)
                .map(|r| {
                    from_fn(|k| {
                        if k < V {
                            value(r + 40, k) * 0.01
                        } else {
                            f32::NAN
                        }
                    })
                })
                .collect();
            let w2t: [[f32; H]; V] = from_fn(|k| from_fn(|j| value(k + 3, j) * 0.2));
            let mut got = h.clone();
            linear_tanh_backward(&mut got, &dlogits, &w2t);
            let mut dh = vec![[f32::NAN; H]; rows];
            rows_times_matrix(&mut dh, Start::Zero, V, |b, k| dlogits[b][k], |k| &w2t[k]);
            let mut want = h.clone();
            for (h_row, dh_row) in want.iter_mut().zip(&dh) {
                zip_map(
                    h_row,
                    dh_row,
                    |h, dh| h.mul_neg_add(h, f32x8::ONE) * dh,
                    |h, dh| (1.0 - h * h) * dh,
                );
            }
            let (got_bits, want_bits) = (bits(got.as_flattened()), bits(want.as_flattened()));
            assert_eq!(got_bits, want_bits, "V {V}, H {H}, {rows} rows");
            assert!(got.as_flattened().iter().all(|x| x.is_finite()));
            assert!(got[0].iter().any(|&x| x != 0.0), "a test of something");
        }
        for rows in 1..=13 {
            check::<27, 32, 64>(rows);
            check::<3, 8, 72>(rows);
        }
        check::<27, 32, 64>(32);
        check::<27, 32, 200>(32);
    }

    /// The padded softmax (16-lane registers on AVX-512) is the unpadded row's (8-lane vectors
    /// and a tail), bit for bit: probabilities, maximum and sum.
    #[test]
    fn padded_and_unpadded_softmax_agree_bit_for_bit() {
        for r in 0..50 {
            let row: [f32; 27] = core::array::from_fn(|j| value(r, j * 3) * (1.0 + r as f32));
            let mut padded = [f32::NEG_INFINITY; 32];
            padded[..27].copy_from_slice(&row);
            let mut unpadded = row;
            let (m1, s1) = softmax_padded(&mut padded);
            let (m2, s2) = softmax_row(&mut unpadded);
            assert_eq!(
                (m1.to_bits(), s1.to_bits()),
                (m2.to_bits(), s2.to_bits()),
                "row {r}"
            );
            assert_eq!(
                padded[..27]
                    .iter()
                    .map(|p| p.to_bits())
                    .collect::<heapless::Vec<_, 27>>(),
                unpadded
                    .iter()
                    .map(|p| p.to_bits())
                    .collect::<heapless::Vec<_, 27>>(),
                "row {r}"
            );
            assert!(padded[27..].iter().all(|&p| p == 0.0));
            let mut again = row;
            assert_eq!(logsumexp_row(&mut again), (m2, s2));
            let mut again = [f32::NEG_INFINITY; 32];
            again[..27].copy_from_slice(&row);
            assert_eq!(logsumexp_padded(&mut again), (m2, s2));
        }
    }

    /// The training forward's softmax, four rows at a time on a host, is the one-row padded
    /// softmax bit for bit, with the same loss, and the backward's vector one-hot is the scalar
    /// p − 1: 7 rows (a group of four and three alone) and 32,
    /// for padded widths of 32 (16-lane registers on AVX-512) and 24 (8-lane), at scales from
    /// 1e-3 to 1e3.
    #[test]
    fn softmax_rows_side_by_side_are_one_at_a_time() {
        fn check<const VP: usize>(v: usize) {
            for n in [7, 32] {
                for scale in [1e-3, 1.0, 1e3] {
                    let mut rows = [[f32::NEG_INFINITY; VP]; 32];
                    let mut y = [Token::BOUNDARY; 32];
                    for (r, row) in rows.iter_mut().enumerate() {
                        for (j, x) in row[..v].iter_mut().enumerate() {
                            *x = value(r, j * 5) * scale;
                        }
                        y[r] = Token::wrapping((r * 7) as u8, v);
                    }
                    let mut alone = rows;
                    let mut loss = NllSum::new();
                    for (row, t) in alone[..n].iter_mut().zip(&y) {
                        let logit_y = row[t.index()];
                        loss.add(softmax_padded(row), logit_y);
                    }
                    let want = (loss.total() / n as f64) as f32;
                    let got = softmax_cross_entropy_forward(&mut rows[..n], &y[..n]);
                    assert_eq!(got.to_bits(), want.to_bits(), "VP {VP}, {n} rows, ×{scale}");
                    for (a, b) in rows[..n].iter().zip(&alone[..n]) {
                        assert_eq!(a.map(f32::to_bits), b.map(f32::to_bits), "VP {VP}");
                    }
                    // The backward's vector one-hot is the scalar subtraction, bit for bit.
                    softmax_cross_entropy_backward(&mut rows[..n], &y[..n]);
                    for (row, t) in alone[..n].iter_mut().zip(&y) {
                        row[t.index()] -= 1.0;
                        row.iter_mut().for_each(|p| *p *= 1.0 / n as f32);
                    }
                    for (a, b) in rows[..n].iter().zip(&alone[..n]) {
                        assert_eq!(a.map(f32::to_bits), b.map(f32::to_bits), "VP {VP}");
                    }
                }
            }
        }
        check::<32>(27);
        check::<24>(20);
    }
}
