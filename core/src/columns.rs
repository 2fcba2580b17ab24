//! The output layer with the batch across the lanes: a host's path (the step with
//! [`crate::Transposed`] copies) for batches of whole [`BLOCK`]s of rows.
//!
//! Row by row, a logits row is V values padded to VP (27 of 32 for makemore: 5 of the 32
//! columns of the product h·W2 are padding), and its softmax reduces across the lanes of each
//! row (a maximum and a sum, in shuffles). Transposed, a block of 32 rows is logitsᵀ [V][32]:
//! the product W2ᵀ·hᵀ has V rows and no padding, and the softmax of each batch row runs down a
//! column, lane by lane, with no reduction across lanes. What it costs: hᵀ, one 8 × 8
//! transpose per 64 floats of h (H × 32 floats, where the copy of W2 the rows' way makes is
//! H × VP), and in the backward, db2's sums down the batch turn 8 × 8 tiles of dlogitsᵀ back
//! in registers.
//!
//! For finite logits every value is the row path's bit for bit
//! (`the_columns_are_the_rows_bit_for_bit` in `train.rs`, built natively, for AVX2 only and for
//! plain x86-64 in CI): the same chains of FMAs for the logits, the same maximum and exps, each
//! row's sum taken in the row path's order (its eight partial sums over the row's 8-float
//! chunks, then `f32x8::reduce_add`'s tree), the same dlogits, dW2, db2 and dh.
//!
//! Not for a row with a NaN logit (or with no finite logit), which only broken parameters give.
//! Neither way carries the NaN through: `exp`'s clamp makes it e^−87.3, so the row's
//! probabilities stay finite and the loss is NaN only if the target's logit is. But the maximum
//! differs: `fast_max` keeps its second operand where one is NaN, so a NaN makes a chain of
//! maxima forget what came before it, and the rows' way keeps eight chains (then skips NaN
//! lanes) where this way keeps one down the column. The host's divergence watch finds the NaN
//! parameters behind such a row either way (it checks them every 1,024 steps).
//!
//! Storage: a block's logits, probs and dlogits live transposed in the first V·32 floats of its
//! 32 rows of the [B][VP] buffer (V ≤ VP), so that the training state keeps its size.

use crate::layers::{NllSum, SoftmaxLanes, dh_tanh_backward, dlogits_lanes};
use crate::simd::{Register, Start, W, by_registers, lanes_mut, rows_times_matrix};
use crate::vocab::Token;
use wide::f32x8;

/// Rows of a batch side by side in the lanes: four `f32x8` or two `f32x16`, a whole tile of
/// [`rows_times_matrix`] across.
pub const BLOCK: usize = 32;

/// A block of [`BLOCK`] rows of a [B][VP] buffer as its transposed [V][BLOCK] form.
#[inline(always)]
pub fn block_t<const V: usize, const VP: usize>(rows: &mut [[f32; VP]]) -> &mut [[f32; BLOCK]; V] {
    debug_assert_eq!(rows.len(), BLOCK);
    let floats = &mut rows.as_flattened_mut()[..V * BLOCK];
    floats
        .as_chunks_mut::<BLOCK>()
        .0
        .try_into()
        .expect("V·BLOCK floats are V rows of BLOCK")
}

/// The blocks of a [B][VP] buffer as [`block_t`] stores them, each as rows of [`BLOCK`]
/// floats (VP of them: rows V.. are not part of the block).
#[inline(always)]
pub fn blocks<const VP: usize>(buffer: &[[f32; VP]]) -> impl Iterator<Item = &[[f32; BLOCK]]> {
    buffer
        .as_flattened()
        .chunks(BLOCK * VP)
        .map(|block| block.as_chunks::<BLOCK>().0)
}

/// logitsᵀ = b2 + W2ᵀ·hᵀ for one block: logitsᵀ[k][b] = b2[k] + Σ_i W2ᵀ[k][i]·h[b][i], each the
/// chain of FMAs from b2[k] in i's order that [`crate::layers::linear_forward_w2`] makes.
///
/// hᵀ [H][BLOCK] (the block's h turned: [`crate::simd::transpose`]), W2ᵀ [V][H], b2 [V]
/// → logitsᵀ [V][BLOCK].
pub fn linear_forward_block<const V: usize, const H: usize>(
    logits_t: &mut [[f32; BLOCK]; V],
    ht: &[[f32; BLOCK]; H],
    w2t: &[[f32; H]; V],
    b2: &[f32; V],
) {
    rows_times_matrix(logits_t, Start::Column(b2), H, |k, i| w2t[k][i], |i| &ht[i]);
}

/// Softmax of each column of a block in place (logitsᵀ → probsᵀ), each batch row's −ln p of
/// its target added to `loss` in the rows' order, as [`crate::layers::softmax_cross_entropy_forward`].
/// logitsᵀ [V][BLOCK], y [BLOCK].
pub(crate) fn softmax_cross_entropy_forward_block<const V: usize>(
    logits_t: &mut [[f32; BLOCK]; V],
    y: &[Token],
    loss: &mut NllSum,
) {
    let logit_y: [f32; BLOCK] = core::array::from_fn(|b| logits_t[y[b].index()][b]);
    // Every column's maximum first, the registers across the block side by side: their chains
    // of V maxima are independent and overlap, where one register's alone would wait on each.
    let mut max = [f32::NEG_INFINITY; BLOCK];
    for row in logits_t.iter() {
        by_registers!(BLOCK, |col, X| max_into::<X>(&mut max, row, col));
    }
    let mut sum = [0.0; BLOCK];
    by_registers!(BLOCK, |col, X| softmax_columns::<X, V>(
        logits_t, col, &max, &mut sum
    ));
    for b in 0..BLOCK {
        loss.add((max[b], sum[b]), logit_y[b]);
    }
}

/// max = the maximum of max and a row, in the register at `col`.
#[inline(always)]
fn max_into<X: SoftmaxLanes>(max: &mut [f32; BLOCK], row: &[f32; BLOCK], col: usize) {
    SoftmaxLanes::max(X::load(max, col), X::load(row, col)).store(max, col);
}

/// The softmax of the columns `col..col + X::LANES` of a block, down the rows, given their
/// maxima.
#[inline(always)]
fn softmax_columns<X: SoftmaxLanes, const V: usize>(
    logits_t: &mut [[f32; BLOCK]; V],
    col: usize,
    max: &[f32; BLOCK],
    sum_out: &mut [f32; BLOCK],
) {
    let max = X::load(max, col);
    // The row path sums a row's exps 8 floats at a time: partial sum l holds logits l, l + 8,
    // l + 16, … (its padding adds exact zeros), from zero. Here partial l of every column.
    let mut partial = [X::ZERO; W];
    for rows in logits_t.chunks_mut(W) {
        for (row, p) in rows.iter_mut().zip(partial.iter_mut()) {
            let e = (X::load(row, col) - max).exp();
            e.store(row, col);
            *p += e;
        }
    }
    let sum = reduce_add_tree(partial);
    let inv = X::splat(1.0) / sum;
    for row in logits_t.iter_mut() {
        (X::load(row, col) * inv).store(row, col);
    }
    sum.store(sum_out, col);
}

/// Σ of eight values in `f32x8::reduce_add`'s order, lane by lane: with AVX the halves, then
/// the pairs, then the two (((p0 + p4) + (p2 + p6)) + ((p1 + p5) + (p3 + p7))); without, each
/// half in order, then their sum.
#[inline(always)]
fn reduce_add_tree<X: Register>(p: [X; W]) -> X {
    if cfg!(target_feature = "avx") {
        let quad = [p[0] + p[4], p[1] + p[5], p[2] + p[6], p[3] + p[7]];
        let dual = [quad[0] + quad[2], quad[1] + quad[3]];
        dual[0] + dual[1]
    } else {
        (((p[0] + p[1]) + p[2]) + p[3]) + (((p[4] + p[5]) + p[6]) + p[7])
    }
}

/// Backward of the softmax-CE for one block: dlogitsᵀ = (probsᵀ − onehot(y)ᵀ)/n in place, n the
/// whole batch's rows, as [`crate::layers::softmax_cross_entropy_backward`] computes each value;
/// and the block's rows added to db2 (V values, padded to VP), one row after another in b's
/// order as [`crate::layers::linear_backward`] adds them: 8 × 8 tiles of dlogitsᵀ turned in
/// registers put eight k side by side in the lanes again.
pub fn softmax_cross_entropy_backward_block<const V: usize, const VP: usize>(
    probs_t: &mut [[f32; BLOCK]; V],
    y: &[Token],
    n: usize,
    db2: &mut [f32; VP],
) {
    let inv_n = f32x8::splat(1.0 / n as f32);
    let target: [f32; BLOCK] = core::array::from_fn(|b| y[b].index() as f32);
    let target = target.as_chunks::<W>().0;
    for ((kb, rows), db2) in probs_t.chunks_mut(W).enumerate().zip(lanes_mut(db2)) {
        let mut sum = f32x8::from(*db2);
        for (c, target) in target.iter().enumerate() {
            let target = f32x8::from(*target);
            // Rows kb·8 + r of lanes c·8.., zero past the last row.
            let d: [f32x8; W] = core::array::from_fn(|r| match rows.get_mut(r) {
                Some(row) => {
                    let chunk = &mut lanes_mut(row)[c];
                    let k = f32x8::splat((kb * W + r) as f32);
                    let d = dlogits_lanes(f32x8::from(*chunk), target.simd_eq(k), inv_n);
                    *chunk = d.to_array();
                    d
                }
                None => f32x8::ZERO,
            });
            // Vector j of the transpose: row c·8 + j of dlogits, for these eight k.
            for d_b in f32x8::transpose(d) {
                sum += d_b;
            }
        }
        *db2 = sum.to_array();
    }
}

/// The output layer's backward to W2 from blocks of dlogitsᵀ: dW2ᵀ[k] = Σ_b dlogits[b][k]·h[b],
/// the chains of [`crate::layers::linear_backward`]. dlogits as blocks, h [B][H] → dW2ᵀ [V][H].
pub fn linear_backward_blocks<const V: usize, const VP: usize, const H: usize>(
    dw2t: &mut [[f32; H]; V],
    dlogits: &[[f32; VP]],
    h: &[[f32; H]],
) {
    // Block by block, each output's chain of FMAs continues where the last block stored it
    // (the first starts from 0): the same sums as one pass over the batch.
    let mut start = Start::Zero;
    for (block, h) in blocks(dlogits).zip(h.chunks(BLOCK)) {
        rows_times_matrix(dw2t, start, BLOCK, |k, b| block[k][b], |b| &h[b]);
        start = Start::Out;
    }
}

/// [`crate::layers::linear_tanh_backward`] for one block from its dlogitsᵀ: the same products
/// and derivative, bit for bit. h [BLOCK][H] holds h on entry and dhpreact on return;
/// dlogitsᵀ [V.. ][BLOCK] (rows past V ignored), W2ᵀ [V][H].
pub fn linear_tanh_backward_block<const V: usize, const H: usize>(
    h: &mut [[f32; H]],
    dlogits_t: &[[f32; BLOCK]],
    w2t: &[[f32; H]; V],
) {
    dh_tanh_backward(h, |b, k| dlogits_t[k][b], w2t);
}
