//! The fast path's vector loops, on `wide::f32x8` (AVX2/FMA on x86-64 built for the machine,
//! SSE pairs on plain x86-64, scalar lanes on a Cortex-M4).
//!
//! Two product shapes cover all six matrix products of a step:
//! - [`rows_times_matrix`]: out[r] = start[r] + Σ_i a(r, i)·m(i), rows of N floats (N a multiple
//!   of 8): x·W1, xᵀ·dhprebn, dlogits·W2ᵀᵀ and dlogitsᵀ·h. Register-tiled: 2 rows × 4 vectors
//!   of accumulators, so that every loaded row of m feeds two FMAs.
//! - [`dots`]: out(c) = a·m[c] over N: h·W2ᵀ and dhprebn·W1ᵀ. Eight columns at a time, their
//!   eight partial-sum vectors reduced together with one transpose.

use wide::f32x8;

/// Lanes of a vector.
pub const W: usize = crate::shape::LANES;

/// The row's 8-float chunks (N is a multiple of 8 wherever this is used).
#[inline(always)]
pub fn lanes(row: &[f32]) -> &[[f32; W]] {
    row.as_chunks::<W>().0
}

#[inline(always)]
pub fn lanes_mut(row: &mut [f32]) -> &mut [[f32; W]] {
    row.as_chunks_mut::<W>().0
}

/// Where the accumulators of [`rows_times_matrix`] start.
#[derive(Clone, Copy)]
pub enum Start<'a, const N: usize> {
    Zero,
    /// The same row (a bias) for every output row.
    Row(&'a [f32; N]),
    /// The output's own contents: accumulate into it.
    Out,
}

/// Accumulators per output row in one tile, and output rows per tile: 2 × 8 accumulators with
/// AVX-512's 32 vector registers, 2 × 4 with the 16 of AVX2 (or pairs of SSE registers).
const TILE_VECTORS: usize = if cfg!(target_feature = "avx512vl") {
    8
} else {
    4
};
const TILE_ROWS: usize = 2;

/// out[r] = start[r] + Σ_{i<k} a(r, i)·m(i) for every row r of `out`.
///
/// `a(r, i)` is a scalar (broadcast to all lanes), `m(i)` a row of N floats.
#[inline(always)]
pub fn rows_times_matrix<'m, const N: usize>(
    out: &mut [[f32; N]],
    start: Start<'_, N>,
    k: usize,
    a: impl Fn(usize, usize) -> f32,
    m: impl Fn(usize) -> &'m [f32; N],
) {
    let rows = out.len();
    let mut r0 = 0;
    while r0 + TILE_ROWS <= rows {
        column_tiles::<TILE_ROWS, N>(&mut out[r0..r0 + TILE_ROWS], r0, start, k, &a, &m);
        r0 += TILE_ROWS;
    }
    if r0 < rows {
        column_tiles::<1, N>(&mut out[r0..], r0, start, k, &a, &m);
    }
}

/// One band of R rows, in tiles of up to [`TILE_VECTORS`] vectors across.
#[inline(always)]
fn column_tiles<'m, const R: usize, const N: usize>(
    out: &mut [[f32; N]],
    r0: usize,
    start: Start<'_, N>,
    k: usize,
    a: &impl Fn(usize, usize) -> f32,
    m: &impl Fn(usize) -> &'m [f32; N],
) {
    let vectors = N / W;
    let mut v0 = 0;
    while v0 + TILE_VECTORS <= vectors {
        tile::<R, TILE_VECTORS, N>(out, r0, v0, start, k, a, m);
        v0 += TILE_VECTORS;
    }
    // N is a constant, so this match is resolved at compile time.
    match vectors - v0 {
        1 => tile::<R, 1, N>(out, r0, v0, start, k, a, m),
        2 => tile::<R, 2, N>(out, r0, v0, start, k, a, m),
        3 => tile::<R, 3, N>(out, r0, v0, start, k, a, m),
        4 => tile::<R, 4, N>(out, r0, v0, start, k, a, m),
        5 => tile::<R, 5, N>(out, r0, v0, start, k, a, m),
        6 => tile::<R, 6, N>(out, r0, v0, start, k, a, m),
        7 => tile::<R, 7, N>(out, r0, v0, start, k, a, m),
        _ => {}
    }
}

/// R rows × NV vectors of accumulators, held in registers across the k products.
#[inline(always)]
fn tile<'m, const R: usize, const NV: usize, const N: usize>(
    out: &mut [[f32; N]],
    r0: usize,
    v0: usize,
    start: Start<'_, N>,
    k: usize,
    a: &impl Fn(usize, usize) -> f32,
    m: &impl Fn(usize) -> &'m [f32; N],
) {
    let mut acc = [[f32x8::ZERO; NV]; R];
    for (r, acc_r) in acc.iter_mut().enumerate() {
        for (v, acc_rv) in acc_r.iter_mut().enumerate() {
            *acc_rv = match start {
                Start::Zero => f32x8::ZERO,
                Start::Row(row) => f32x8::from(lanes(row)[v0 + v]),
                Start::Out => f32x8::from(lanes(&out[r])[v0 + v]),
            };
        }
    }
    for i in 0..k {
        let coef: [f32x8; R] = core::array::from_fn(|r| f32x8::splat(a(r0 + r, i)));
        let row = lanes(m(i));
        for v in 0..NV {
            let mv = f32x8::from(row[v0 + v]);
            for r in 0..R {
                acc[r][v] = coef[r].mul_add(mv, acc[r][v]);
            }
        }
    }
    for (r, acc_r) in acc.iter().enumerate() {
        let out_lanes = lanes_mut(&mut out[r]);
        for (v, acc_rv) in acc_r.iter().enumerate() {
            out_lanes[v0 + v] = acc_rv.to_array();
        }
    }
}

/// a·m[c] for every row c of m, dot products over N floats (a multiple of 8), handed out as
/// `out(block, sums)` with lane l of `sums` the dot with row 8·block + l. A last block of fewer
/// than 8 rows has zeros in its other lanes.
#[inline(always)]
pub fn dots<const N: usize>(a: &[f32; N], m: &[[f32; N]], mut out: impl FnMut(usize, f32x8)) {
    let a = lanes(a);
    for (b, block) in m.chunks(W).enumerate() {
        // A last block of fewer than 8 rows leaves its other accumulators at zero.
        let mut acc = [f32x8::ZERO; W];
        for (j, &aj) in a.iter().enumerate() {
            let aj = f32x8::from(aj);
            for (acc_c, row) in acc.iter_mut().zip(block) {
                *acc_c = aj.mul_add(f32x8::from(lanes(row)[j]), *acc_c);
            }
        }
        // After the transpose, lane c of vector l is lane l of acc[c]: summing the vectors sums
        // each accumulator's lanes, all eight at once.
        let t = f32x8::transpose(acc);
        let sums = ((t[0] + t[1]) + (t[2] + t[3])) + ((t[4] + t[5]) + (t[6] + t[7]));
        out(b, sums);
    }
}

/// e^x, lane by lane.
///
/// Cody–Waite reduction x = n·ln 2 + r with |r| ≤ ln 2 / 2, e^r by its degree-7 Taylor
/// polynomial (truncation error r⁸/8! < 5e-9), and 2ⁿ built in the exponent bits. Below −87.3
/// the result is 0 (the true value is subnormal: no subnormal ever enters the arithmetic that
/// follows, where it can cost a microcode assist per operation); above 88 it is e⁸⁸.
/// Accuracy against `libm::expf` (tests below): relative error at most 1.19e-7 (1 ulp) on
/// [−87, 88]; asserted ≤ 2.4e-7.
#[inline(always)]
pub fn exp(x: f32x8) -> f32x8 {
    const LOG2_E: f32 = core::f32::consts::LOG2_E;
    // ln 2 split so that n·LN2_HI is exact for |n| < 2¹⁰ (LN2_HI has 11 significant bits).
    const LN2_HI: f32 = 0.693_359_4;
    const LN2_LO: f32 = -2.121_944_4e-4;
    let underflow = x.simd_lt(f32x8::splat(-87.3));
    // fast_max/fast_min: plain vmaxps/vminps; a NaN input may come out as either bound.
    let x = x.fast_max(f32x8::splat(-87.3)).fast_min(f32x8::splat(88.0));
    // Round to nearest (ties either way: any n within ½ of x·log2 e keeps |r| ≤ ln 2 / 2 + ε).
    let n_int = (x * f32x8::splat(LOG2_E)).fast_round_int();
    let n = f32x8::from_i32x8(n_int);
    let r = n.mul_neg_add(f32x8::splat(LN2_HI), x);
    let r = n.mul_neg_add(f32x8::splat(LN2_LO), r);
    let mut p = f32x8::splat(1.0 / 5040.0);
    for c in [
        1.0 / 720.0,
        1.0 / 120.0,
        1.0 / 24.0,
        1.0 / 6.0,
        0.5,
        1.0,
        1.0,
    ] {
        p = p.mul_add(r, f32x8::splat(c));
    }
    // 2ⁿ: n + 127 in the exponent field; n ∈ [−126, 127] after the clamp.
    let two_n: f32x8 = bytemuck::cast((n_int + wide::i32x8::splat(127)) << 23);
    underflow.select(f32x8::ZERO, p * two_n)
}

/// tanh(x), lane by lane: (1 − e)/(1 + e)·sign(x) with e = e^(−2|x|) (no overflow for any x),
/// and for |x| < 1/8, where 1 − e would cancel, its Taylor series to x⁹ (truncation < 1e-12).
/// Accuracy against `libm::tanhf` (tests below) on [−10, 10]: absolute error at most 1.19e-7,
/// relative error at most 2.5e-7; asserted ≤ 2.4e-7 and ≤ 5e-7.
#[inline(always)]
pub fn tanh(x: f32x8) -> f32x8 {
    let a = x.abs();
    let e = exp(f32x8::splat(-2.0) * a);
    let large = ((f32x8::ONE - e) / (f32x8::ONE + e)).flip_signs(x);
    let x2 = x * x;
    // tanh x = x − x³/3 + 2x⁵/15 − 17x⁷/315 + 62x⁹/2835 − …
    let mut p = f32x8::splat(62.0 / 2835.0);
    for c in [-17.0 / 315.0, 2.0 / 15.0, -1.0 / 3.0, 1.0] {
        p = p.mul_add(x2, f32x8::splat(c));
    }
    let small = x * p;
    let t = a.simd_lt(f32x8::splat(0.125)).select(small, large);
    // exp's clamp would turn a NaN into ±1; a NaN must stay visible to whoever checks.
    x.simd_eq(x).select(t, x)
}

/// out = f(out, x) over 8-lane chunks, then `tail` on the elements past the last whole chunk.
#[inline(always)]
pub fn zip_map(
    out: &mut [f32],
    x: &[f32],
    f: impl Fn(f32x8, f32x8) -> f32x8,
    tail: impl Fn(f32, f32) -> f32,
) {
    let (out_lanes, out_tail) = out.as_chunks_mut::<W>();
    let (x_lanes, x_tail) = x.as_chunks::<W>();
    for (o, &x) in out_lanes.iter_mut().zip(x_lanes) {
        *o = f(f32x8::from(*o), f32x8::from(x)).to_array();
    }
    for (o, &x) in out_tail.iter_mut().zip(x_tail) {
        *o = tail(*o, x);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    extern crate std;
    use std::eprintln;

    fn matrix<const N: usize>(rows: usize, seed: u32) -> [[f32; N]; 16] {
        core::array::from_fn(|r| {
            core::array::from_fn(|j| {
                if r < rows {
                    ((r as u32 * 31 + j as u32 * 17 + seed) % 23) as f32 * 0.25 - 2.5
                } else {
                    0.0
                }
            })
        })
    }

    #[test]
    fn rows_times_matrix_matches_the_plain_loop() {
        // 5 output rows (two pairs and a single), N = 40 (one tile of 4 vectors and one of 1).
        let m = matrix::<40>(7, 1);
        let bias = matrix::<40>(1, 2)[0];
        let a = |r: usize, i: usize| ((r * 7 + i * 3) % 5) as f32 - 2.0;
        for start in [Start::Zero, Start::Row(&bias), Start::Out] {
            let mut out = [[1.5f32; 40]; 5];
            rows_times_matrix(&mut out, start, 7, a, |i| &m[i]);
            for (r, row) in out.iter().enumerate() {
                for (j, &got) in row.iter().enumerate() {
                    let init = match start {
                        Start::Zero => 0.0,
                        Start::Row(b) => b[j],
                        Start::Out => 1.5,
                    };
                    let want = init + (0..7).map(|i| a(r, i) * m[i][j]).sum::<f32>();
                    // Small integers and quarters: exact in f32 whatever the order.
                    assert_eq!(got, want, "row {r}, column {j}");
                }
            }
        }
    }

    #[test]
    fn dots_match_the_plain_loop() {
        // 11 columns: one block of 8 and 3 single dots.
        let m = matrix::<16>(11, 3);
        let a = matrix::<16>(1, 4)[0];
        let mut got = [f32::NAN; 16];
        dots(&a, &m[..11], |b, sums| {
            got[b * W..][..W].copy_from_slice(&sums.to_array())
        });
        assert_eq!(got[11..], [0.0; 5]);
        let got = &got[..11];
        for (c, &g) in got.iter().enumerate() {
            let want: f32 = a.iter().zip(&m[c]).map(|(x, y)| x * y).sum();
            assert_eq!(g, want, "column {c}");
        }
    }

    /// Largest relative error of `exp` against libm over `n` points of [lo, hi].
    fn exp_error(lo: f32, hi: f32, n: usize) -> f32 {
        let mut worst = 0.0f32;
        for i in 0..n {
            let x = lo + (hi - lo) * i as f32 / (n - 1) as f32;
            let want = libm::expf(x);
            let got = exp(f32x8::splat(x)).to_array()[0];
            worst = worst.max(((got - want) / want).abs());
        }
        worst
    }

    #[test]
    fn exp_is_within_2_ulp_of_libm() {
        // Softmax feeds it [−87, 0]; tanh feeds it [−20, 0]; the rest is for completeness.
        let err = exp_error(-87.0, 88.0, 200_001).max(exp_error(-1.0, 1.0, 20_001));
        eprintln!("exp: max relative error {err:e}");
        assert!(err <= 2.4e-7, "max relative error {err:e}");
        assert_eq!(exp(f32x8::ZERO).to_array(), [1.0; 8]);
        assert_eq!(exp(f32x8::splat(f32::NEG_INFINITY)).to_array(), [0.0; 8]);
        assert_eq!(exp(f32x8::splat(-87.31)).to_array(), [0.0; 8]);
        assert!(exp(f32x8::splat(-87.29)).to_array()[0].is_normal());
    }

    #[test]
    fn tanh_is_within_2_4e_7_of_libm() {
        let (mut abs_err, mut rel_err) = (0.0f32, 0.0f32);
        for i in 0..=400_000 {
            let x = -10.0 + 20.0 * i as f32 / 400_000.0;
            let want = libm::tanhf(x);
            let got = tanh(f32x8::splat(x)).to_array()[0];
            abs_err = abs_err.max((got - want).abs());
            if want != 0.0 {
                rel_err = rel_err.max(((got - want) / want).abs());
            }
        }
        eprintln!("tanh: max absolute error {abs_err:e}, relative {rel_err:e}");
        assert!(abs_err <= 2.4e-7, "max absolute error {abs_err:e}");
        assert!(rel_err <= 5e-7, "max relative error {rel_err:e}");
        assert!(
            tanh(f32x8::splat(f32::NAN))
                .to_array()
                .iter()
                .all(|x| x.is_nan())
        );
        let big = tanh(f32x8::from([
            30.0,
            -30.0,
            f32::INFINITY,
            f32::NEG_INFINITY,
            0.0,
            -0.0,
            1e-30,
            -1e-30,
        ]));
        assert_eq!(
            big.to_array(),
            [1.0, -1.0, 1.0, -1.0, 0.0, -0.0, 1e-30, -1e-30]
        );
    }

    #[test]
    fn zip_map_covers_the_tail() {
        let mut out = [1.0f32; 11];
        let x: [f32; 11] = core::array::from_fn(|i| i as f32);
        zip_map(&mut out, &x, |o, x| o + x, |o, x| o + x);
        assert_eq!(out, core::array::from_fn(|i| 1.0 + i as f32));
    }
}
