//! The fast path's vector loops, on `wide::f32x8` (AVX2/FMA on x86-64 built for the machine,
//! SSE pairs on plain x86-64, scalar lanes on a Cortex-M4) and, where AVX-512 is built in,
//! `wide::f32x16` ([`Register`]).
//!
//! Two product shapes cover all six matrix products of a step:
//! - [`rows_times_matrix`]: out[r] = start[r] + Σ_i a(r, i)·m(i), rows of N floats (N a multiple
//!   of 8): x·W1, xᵀ·dhprebn, dlogits·W2ᵀᵀ and dlogitsᵀ·h, and on a host W2ᵀ·hᵀ (or h·W2) and
//!   dhprebn·W1ᵀ against transposed copies ([`transpose`]). Register-tiled: 3 rows × 4 f32x8
//!   (AVX2; 2 × 4 without AVX), 4 rows × 4 f32x16 or, for rows of two registers, 8 × 2
//!   (AVX-512), so that every loaded register of m feeds several FMAs and enough of them are
//!   independent to cover the FMA latency.
//! - [`dots`]: out(c) = a·m[c] over N: h·W2ᵀ and dhprebn·W1ᵀ where there is no room for a copy
//!   (firmware). Eight columns at a time, their eight partial-sum vectors reduced together with
//!   one transpose.

use wide::{f32x8, i32x8};
#[cfg(target_feature = "avx512f")]
use wide::{f32x16, i32x16};

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
    /// Output row r from `column[r]` in every lane: a bias per row, for a product whose rows
    /// are the outputs and whose lanes are the batch (`columns`).
    Column(&'a [f32]),
}

/// One float or a register of them, with the arithmetic a formula needs: the optimizers' rules
/// are written once over it (eight floats, then one for the tail), and so is every
/// [`Register`] loop.
pub trait Lane:
    Copy
    + core::ops::Add<Output = Self>
    + core::ops::Sub<Output = Self>
    + core::ops::Mul<Output = Self>
    + core::ops::Div<Output = Self>
{
    fn splat(x: f32) -> Self;
    fn sqrt(self) -> Self;
    /// self·a + b, rounded once (as ATen's vectorised `add` with alpha and `lerp` compute).
    fn mul_add(self, a: Self, b: Self) -> Self;
}

impl Lane for f32 {
    fn splat(x: f32) -> Self {
        x
    }
    fn sqrt(self) -> Self {
        libm::sqrtf(self)
    }
    /// Through `f32x8`, so that the tail rounds as the lanes do, fused or not (plain x86-64
    /// and a Cortex-M4 have no vector FMA, and `wide` then multiplies and adds).
    fn mul_add(self, a: Self, b: Self) -> Self {
        f32x8::splat(self)
            .mul_add(f32x8::splat(a), f32x8::splat(b))
            .to_array()[0]
    }
}

impl Lane for f32x8 {
    #[inline(always)]
    fn splat(x: f32) -> Self {
        f32x8::splat(x)
    }
    #[inline(always)]
    fn sqrt(self) -> Self {
        f32x8::sqrt(self)
    }
    #[inline(always)]
    fn mul_add(self, a: Self, b: Self) -> Self {
        f32x8::mul_add(self, a, b)
    }
}

#[cfg(target_feature = "avx512f")]
impl Lane for wide::f32x16 {
    #[inline(always)]
    fn splat(x: f32) -> Self {
        wide::f32x16::splat(x)
    }
    #[inline(always)]
    fn sqrt(self) -> Self {
        wide::f32x16::sqrt(self)
    }
    #[inline(always)]
    fn mul_add(self, a: Self, b: Self) -> Self {
        wide::f32x16::mul_add(self, a, b)
    }
}

/// A register of lanes: `f32x16` where AVX-512 is built in (on a CPU with two 512-bit FMA
/// units that doubles the peak: 241 against 131 GFLOP/s on the Xeon of the README's speed
/// section), `f32x8` elsewhere. Loops written over a `Register` compute each lane as one float
/// would, so the width changes speed, never a bit (every output of [`rows_times_matrix`] is the
/// same chain of FMAs over i; batch norm's sums run over the batch, lane by lane).
pub trait Register: Lane + core::ops::AddAssign {
    const LANES: usize;
    const ZERO: Self;
    /// Lanes `at..at + LANES` of `row`.
    fn load(row: &[f32], at: usize) -> Self;
    fn store(self, row: &mut [f32], at: usize);
    /// self·a − b, rounded once.
    fn mul_sub(self, a: Self, b: Self) -> Self;
    /// b − self·a: `wide`'s `mul_neg_add`, rounded once where the build has FMA, twice where
    /// it has not (as f32x8's, whatever the register's width).
    fn mul_neg_add(self, a: Self, b: Self) -> Self;
}

/// Calls `f::<X>(col)` for each register of a row of `n` floats (n a multiple of 8): `Wide`
/// registers, then an `f32x8` where n is not a whole number of them.
macro_rules! by_registers {
    ($n:expr, |$col:ident, $x:ident| $body:expr) => {{
        let n: usize = $n;
        let mut $col = 0;
        while $col + <$crate::simd::Wide as $crate::simd::Register>::LANES <= n {
            {
                type $x = $crate::simd::Wide;
                $body;
            }
            $col += <$crate::simd::Wide as $crate::simd::Register>::LANES;
        }
        if $col < n {
            type $x = wide::f32x8;
            $body;
        }
    }};
}
pub(crate) use by_registers;

impl Register for f32x8 {
    const LANES: usize = 8;
    const ZERO: Self = f32x8::ZERO;
    #[inline(always)]
    fn load(row: &[f32], at: usize) -> Self {
        f32x8::from(*row[at..].first_chunk::<8>().expect("a whole register"))
    }
    #[inline(always)]
    fn store(self, row: &mut [f32], at: usize) {
        *row[at..].first_chunk_mut::<8>().expect("a whole register") = self.to_array();
    }
    #[inline(always)]
    fn mul_sub(self, a: Self, b: Self) -> Self {
        f32x8::mul_sub(self, a, b)
    }
    #[inline(always)]
    fn mul_neg_add(self, a: Self, b: Self) -> Self {
        f32x8::mul_neg_add(self, a, b)
    }
}

#[cfg(target_feature = "avx512f")]
impl Register for wide::f32x16 {
    const LANES: usize = 16;
    const ZERO: Self = wide::f32x16::ZERO;
    #[inline(always)]
    fn load(row: &[f32], at: usize) -> Self {
        wide::f32x16::from(*row[at..].first_chunk::<16>().expect("a whole register"))
    }
    #[inline(always)]
    fn store(self, row: &mut [f32], at: usize) {
        *row[at..].first_chunk_mut::<16>().expect("a whole register") = self.to_array();
    }
    #[inline(always)]
    fn mul_sub(self, a: Self, b: Self) -> Self {
        wide::f32x16::mul_sub(self, a, b)
    }
    #[inline(always)]
    fn mul_neg_add(self, a: Self, b: Self) -> Self {
        wide::f32x16::mul_neg_add(self, a, b)
    }
}

/// The widest register the build has.
#[cfg(target_feature = "avx512f")]
pub type Wide = wide::f32x16;
#[cfg(not(target_feature = "avx512f"))]
pub type Wide = f32x8;

/// Registers of accumulators per output row in one tile, and output rows per tile. AVX-512 has
/// 32 registers: 4 rows × 4 accumulators, 4 broadcasts and a loaded row; for rows of at most
/// two registers (logits, demb), 8 rows × 2, so that 16 independent FMAs cover the FMA latency.
/// AVX2 has 16 registers: 3 rows × 4 accumulators, 3 broadcasts and one loaded register, all
/// 16 (2 rows × 4, 8 chains of FMAs, kept the two FMA units less busy: the step was 7% slower).
/// Without AVX (SSE pairs, a microcontroller's scalar lanes) 2 × 4, which their registers hold
/// best.
const TILE_VECTORS: usize = 4;
const fn tile_rows(n: usize) -> usize {
    if cfg!(target_feature = "avx512f") {
        if n <= 2 * Wide::LANES { 8 } else { 4 }
    } else if cfg!(target_feature = "avx") {
        3
    } else {
        2
    }
}

/// What a tile of [`rows_times_matrix_then`] does with each register of finished sums.
pub trait Finish<const N: usize> {
    /// Puts `sums`, lanes `col..` of an output row, into that row.
    fn finish<X: Register>(&self, row: &mut [f32; N], col: usize, sums: X);
}

/// Stores the sums: [`rows_times_matrix`]'s finish.
pub struct Store;

impl<const N: usize> Finish<N> for Store {
    #[inline(always)]
    fn finish<X: Register>(&self, row: &mut [f32; N], col: usize, sums: X) {
        sums.store(row, col);
    }
}

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
    rows_times_matrix_then(out, start, k, a, m, &Store);
}

/// [`rows_times_matrix`], each register of sums put into `out` by `finish` as its tile is
/// done, while it is in a register: an element-wise step after the product (tanh's
/// derivative) without a pass of its own. `finish` may read what the row held; `a` and `m`
/// must not read `out`.
#[inline(always)]
pub fn rows_times_matrix_then<'m, const N: usize>(
    out: &mut [[f32; N]],
    start: Start<'_, N>,
    k: usize,
    a: impl Fn(usize, usize) -> f32,
    m: impl Fn(usize) -> &'m [f32; N],
    finish: &impl Finish<N>,
) {
    let rows = out.len();
    let mut r0 = 0;
    // tile_rows(N) is a constant: these matches are resolved at compile time.
    macro_rules! bands {
        ($r:literal) => {
            while r0 + $r <= rows {
                column_tiles::<$r, N>(&mut out[r0..r0 + $r], r0, start, k, &a, &m, finish);
                r0 += $r;
            }
        };
    }
    match tile_rows(N) {
        8 => bands!(8),
        4 => bands!(4),
        3 => bands!(3),
        _ => bands!(2),
    }
    // The last rows: fewer than tile_rows(N), as bands of 4, 3, 2 and 1 (a constant
    // tile_rows(N) drops the bands it cannot need, so a microcontroller's build keeps only the
    // 1). Three rows are one band, not two: on AVX-512, W2ᵀ's 27 rows end in one.
    macro_rules! last {
        ($r:literal) => {
            if tile_rows(N) > $r && rows - r0 >= $r {
                column_tiles::<$r, N>(&mut out[r0..r0 + $r], r0, start, k, &a, &m, finish);
                r0 += $r;
            }
        };
    }
    last!(4);
    last!(3);
    last!(2);
    last!(1);
    debug_assert_eq!(r0, rows);
}

/// Calls `f::<X, NV>(col)` for each group of registers across a row of `n` floats (n a multiple
/// of 8): groups of `$most` `Wide` registers, then one group of the 1 to 3 left, then an
/// `f32x8` where n is not a whole number of wide registers. `n` and `$most` are constants, so
/// the branches not taken compile away. The one walk of [`rows_times_matrix`]'s tiles and
/// [`fold_columns`]' folds.
macro_rules! by_register_groups {
    ($n:expr, $most:expr, |$col:ident, $x:ident, $nv:ident| $body:expr) => {{
        let n: usize = $n;
        let step = $most * Wide::LANES;
        let mut $col = 0;
        while $col + step <= n {
            {
                type $x = Wide;
                const $nv: usize = $most;
                $body;
            }
            $col += step;
        }
        match (n - $col) / Wide::LANES {
            1 => {
                type $x = Wide;
                const $nv: usize = 1;
                $body;
            }
            2 => {
                type $x = Wide;
                const $nv: usize = 2;
                $body;
            }
            3 => {
                type $x = Wide;
                const $nv: usize = 3;
                $body;
            }
            _ => {}
        }
        $col = n - (n - $col) % Wide::LANES;
        if $col < n {
            // n is a multiple of 8: one f32x8 is left when the wide register is f32x16.
            type $x = f32x8;
            const $nv: usize = 1;
            $body;
        }
    }};
}

/// One band of R rows, in tiles of up to [`TILE_VECTORS`] registers across, then a last
/// `f32x8` where N is not a whole number of wide registers.
#[inline(always)]
fn column_tiles<'m, const R: usize, const N: usize>(
    out: &mut [[f32; N]],
    r0: usize,
    start: Start<'_, N>,
    k: usize,
    a: &impl Fn(usize, usize) -> f32,
    m: &impl Fn(usize) -> &'m [f32; N],
    finish: &impl Finish<N>,
) {
    by_register_groups!(N, TILE_VECTORS, |col, X, NV| tile::<X, R, NV, N>(
        out, r0, col, start, k, a, m, finish
    ));
}

/// R rows × NV registers of accumulators from column `col`, held across the k products.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn tile<'m, X: Register, const R: usize, const NV: usize, const N: usize>(
    out: &mut [[f32; N]],
    r0: usize,
    col: usize,
    start: Start<'_, N>,
    k: usize,
    a: &impl Fn(usize, usize) -> f32,
    m: &impl Fn(usize) -> &'m [f32; N],
    finish: &impl Finish<N>,
) {
    let mut acc = [[X::ZERO; NV]; R];
    for (r, acc_r) in acc.iter_mut().enumerate() {
        for (v, acc_rv) in acc_r.iter_mut().enumerate() {
            let at = col + v * X::LANES;
            *acc_rv = match start {
                Start::Zero => X::ZERO,
                Start::Row(row) => X::load(row, at),
                Start::Out => X::load(&out[r], at),
                Start::Column(column) => X::splat(column[r0 + r]),
            };
        }
    }
    for i in 0..k {
        let coef: [X; R] = core::array::from_fn(|r| X::splat(a(r0 + r, i)));
        let row = m(i);
        // Register v of the loaded row feeds accumulator (r, v) of every row r: a grid walked
        // by index reads as the product does.
        #[allow(clippy::needless_range_loop)]
        for v in 0..NV {
            let mv = X::load(row, col + v * X::LANES);
            for r in 0..R {
                acc[r][v] = coef[r].mul_add(mv, acc[r][v]);
            }
        }
    }
    for (r, acc_r) in acc.iter().enumerate() {
        for (v, acc_rv) in acc_r.iter().enumerate() {
            finish.finish(&mut out[r], col + v * X::LANES, *acc_rv);
        }
    }
}

/// J sums over the rows of a batch, lane by lane: what [`fold_columns`] folds.
pub trait ColumnFold<const J: usize> {
    /// The J sums after row `b`, from their values before it, in the register at lane `col`.
    fn step<X: Register>(&self, acc: [X; J], b: usize, col: usize) -> [X; J];
}

/// Registers folded side by side by [`fold_columns`]: with AVX as many as a tile of
/// [`rows_times_matrix`] has across, so that that many independent chains of adds cover their
/// latency; else one (a microcontroller's registers hold one `f32x8` at most, SSE's two).
const FOLD_VECTORS: usize = if cfg!(target_feature = "avx") {
    TILE_VECTORS
} else {
    1
};

/// out[j][col] = the j-th sum of `f` over rows 0..rows, in b's order from zero, for every lane
/// of a row of N floats (a multiple of 8).
///
/// Each lane is the same chain of operations as one register folded at a time, so the values
/// are those of a loop over the registers of a row with the rows inside (bit for bit); but
/// [`FOLD_VECTORS`] registers go down the rows together, where one register at a time waited
/// on its chain (batch norm's sums: a third of its time on AVX2).
#[inline(always)]
pub fn fold_columns<const J: usize, const N: usize>(
    out: [&mut [f32; N]; J],
    rows: usize,
    f: &impl ColumnFold<J>,
) {
    let mut out = out;
    by_register_groups!(N, FOLD_VECTORS, |col, X, NV| fold_tile::<X, NV, J, N>(
        &mut out, col, rows, f
    ));
}

/// NV registers of [`fold_columns`] from lane `col`, down every row.
#[inline(always)]
fn fold_tile<X: Register, const NV: usize, const J: usize, const N: usize>(
    out: &mut [&mut [f32; N]; J],
    col: usize,
    rows: usize,
    f: &impl ColumnFold<J>,
) {
    let mut acc = [[X::ZERO; J]; NV];
    for b in 0..rows {
        for (v, acc_v) in acc.iter_mut().enumerate() {
            *acc_v = f.step(*acc_v, b, col + v * X::LANES);
        }
    }
    for (v, acc_v) in acc.iter().enumerate() {
        for (out_j, sum) in out.iter_mut().zip(acc_v) {
            sum.store(&mut out_j[..], col + v * X::LANES);
        }
    }
}

/// to[i][k] = from[k][i] for every row k of `from` and i < N, 8 × 8 blocks at a time (one
/// in-register transpose each, not 64 scattered stores); columns from.len()..M of `to` come
/// out zero up to the next multiple of 8. N and M are multiples of 8, from.len() ≤ M.
#[inline(always)]
pub fn transpose<const N: usize, const M: usize>(to: &mut [[f32; M]; N], from: &[[f32; N]]) {
    debug_assert!(from.len() <= M);
    for (kb, rows) in from.chunks(W).enumerate() {
        for ib in 0..N / W {
            transpose_block(to, rows, kb, ib);
        }
    }
}

/// One 8 × 8 block of [`transpose`]: columns ib·8.. of `rows` (at most 8 rows: rows kb·8.. of
/// `from`) into columns kb·8.. of rows ib·8.. of `to`, zeros where `rows` has fewer than 8.
#[inline(always)]
pub fn transpose_block<const N: usize, const M: usize>(
    to: &mut [[f32; M]; N],
    rows: &[[f32; N]],
    kb: usize,
    ib: usize,
) {
    let block = core::array::from_fn(|r| {
        rows.get(r)
            .map_or(f32x8::ZERO, |row| f32x8::from(lanes(row)[ib]))
    });
    for (l, v) in f32x8::transpose(block).iter().enumerate() {
        lanes_mut(&mut to[ib * W + l])[kb] = v.to_array();
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

/// `exp` and `tanh` on one vector type: the same operations lane by lane whatever the width, so
/// that `f32x16`'s (AVX-512) are `f32x8`'s bit for bit.
macro_rules! exp_tanh {
    ($f:ident, $i:ident, $from_int:ident, $exp:ident, $tanh:ident) => {
        /// e^x, lane by lane.
        ///
        /// Cody–Waite reduction x = n·ln 2 + r with |r| ≤ ln 2 / 2, e^r by its degree-7 Taylor
        /// polynomial (truncation error r⁸/8! < 5e-9), and 2ⁿ built in the exponent bits. Below −87.3
        /// the result is 0 (the true value is subnormal: no subnormal ever enters the arithmetic that
        /// follows, where it can cost a microcode assist per operation); above 88 it is e⁸⁸.
        /// Accuracy against `libm::expf` (tests below): relative error at most 1.19e-7 (1 ulp) on
        /// [−87, 88]; asserted ≤ 2.4e-7.
        #[inline(always)]
        pub fn $exp(x: $f) -> $f {
            const LOG2_E: f32 = core::f32::consts::LOG2_E;
            // ln 2 split so that n·LN2_HI is exact for |n| < 2¹⁰ (LN2_HI has 11 significant bits).
            const LN2_HI: f32 = 0.693_359_4;
            const LN2_LO: f32 = -2.121_944_4e-4;
            let underflow = x.simd_lt($f::splat(-87.3));
            // fast_max/fast_min: plain vmaxps/vminps; a NaN input may come out as either bound.
            let x = x.fast_max($f::splat(-87.3)).fast_min($f::splat(88.0));
            // Round to nearest (ties either way: any n within ½ of x·log2 e keeps |r| ≤ ln 2 / 2 + ε).
            let n_int = (x * $f::splat(LOG2_E)).fast_round_int();
            let n = $f::$from_int(n_int);
            let r = n.mul_neg_add($f::splat(LN2_HI), x);
            let r = n.mul_neg_add($f::splat(LN2_LO), r);
            let mut p = $f::splat(1.0 / 5040.0);
            for c in [
                1.0 / 720.0,
                1.0 / 120.0,
                1.0 / 24.0,
                1.0 / 6.0,
                0.5,
                1.0,
                1.0,
            ] {
                p = p.mul_add(r, $f::splat(c));
            }
            // 2ⁿ: n + 127 in the exponent field; n ∈ [−126, 127] after the clamp.
            let two_n: $f = bytemuck::cast((n_int + $i::splat(127)) << 23);
            underflow.select($f::ZERO, p * two_n)
        }

        /// tanh(x), lane by lane: x·P(x²)/Q(x²) with P and Q of degree 4 (a rational minimax
        /// fit on [0, 9], relative error 2.1e-8 before rounding: `scripts/tanh_fit.py`), x
        /// clamped to [−9.5, 9.5] and the result to [−1, 1]: past 9 the fit climbs through 1
        /// (1.0000004 at 9.5), so that large inputs give exactly ±1, as tanhf does. One
        /// division and eight FMAs, half the work of (1 − e)/(1 + e) with e = e^(−2|x|) and the
        /// series it needs near 0: the tanh stage of a step took half the time (README, Speed).
        /// Accuracy, over every finite f32 (an exhaustive sweep against tanh in f64 rounded to
        /// f32): absolute and relative error at most 3.58e-7, 6 units in the last place, at
        /// 5.9688396 (rounding the products, the sums and the quotient adds up). Without a
        /// fused multiply-add (a Cortex-M4, plain x86-64: `wide` multiplies, then adds) the
        /// bits differ for some inputs and the bound is the same, at 3.9697802. The test below
        /// samples [−10, 10] and those two points against `libm::tanhf`: ≤ 3.6e-7 and ≤ 5e-7.
        /// Odd bit for bit and never past ±1, but not monotonic to the last bit: neighbouring
        /// inputs can step down by up to 7 units in the last place (4.2e-7). Training does not
        /// notice: the backward takes 1 − h² of the output, never a difference of outputs.
        #[inline(always)]
        pub fn $tanh(x: $f) -> $f {
            // On |x|, with x's sign put back at the end: the fit is odd and rounding to nearest
            // is symmetric, so these are the values of x·P/Q on x itself, bit for bit, with
            // one clamp on each side where x needed two (the stage is FMA-port bound, and the
            // sign's two bit operations run on a third port).
            let sign = x & $f::splat(-0.0);
            // fast_min: a plain vminps, the constant first. Where either operand is a NaN,
            // x86's min returns the second, and so do `wide`'s scalar lanes (`c < v` is false):
            // a NaN goes through both clamps and the arithmetic and comes out a NaN, with no
            // select (which LLVM made a masked store, microcoded on AMD).
            let a = $f::splat(9.5).fast_min(x ^ sign);
            let s = a * a;
            let mut p = $f::splat(TANH_P[0]);
            for c in &TANH_P[1..] {
                p = p.mul_add(s, $f::splat(*c));
            }
            let mut q = $f::splat(TANH_Q[0]);
            for c in &TANH_Q[1..] {
                q = q.mul_add(s, $f::splat(*c));
            }
            $f::ONE.fast_min((a * p) / q) | sign
        }
    };
}

/// tanh's numerator P(s) = Σ p_k s^k, highest power first (`scripts/tanh_fit.py` prints them).
const TANH_P: [f32; 5] = [
    1.335_613_6e-8,
    2.061_018_1e-5,
    3.495_656_4e-3,
    0.133_810_83,
    1.0,
];
/// tanh's denominator Q(s), highest power first.
const TANH_Q: [f32; 5] = [
    7.777_172e-7,
    3.285_745_6e-4,
    2.587_724_5e-2,
    0.467_143_98,
    1.0,
];

exp_tanh!(f32x8, i32x8, from_i32x8, exp, tanh);
#[cfg(target_feature = "avx512f")]
exp_tanh!(f32x16, i32x16, from_i32x16, exp16, tanh16);

/// [`tanh`] on a [`Register`], whatever its width: the same value in each lane, so that a loop
/// over [`by_registers`] can take tanh where it has the value (batch norm's forward). Named
/// apart from `wide`'s own `tanh`, an inherent method that a call `x.tanh()` would pick.
pub trait Tanh: Register {
    fn tanh_fit(self) -> Self;
}

impl Tanh for f32x8 {
    #[inline(always)]
    fn tanh_fit(self) -> Self {
        tanh(self)
    }
}

#[cfg(target_feature = "avx512f")]
impl Tanh for wide::f32x16 {
    #[inline(always)]
    fn tanh_fit(self) -> Self {
        tanh16(self)
    }
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
        // 7 output rows (bands of 2, of 3 then 1 with AVX2, or of 4, then 2 and 1), N = 72 (a
        // tile of 4 f32x8 and one of 1, or a tile of 4 f32x16 and one f32x8). CI also runs
        // these tests built for AVX2 only (.ci/run).
        check_rows_times_matrix::<72, 7>();
        // 11 rows of N = 32: a band of 8 rows with AVX-512 (rows of two registers), then one of 3.
        check_rows_times_matrix::<32, 11>();
        // 5 output rows, N = 40: tiles of 4 and 1 registers of f32x8, or 2 of f32x16 and one
        // f32x8.
        check_rows_times_matrix::<40, 5>();
    }

    fn check_rows_times_matrix<const N: usize, const R: usize>() {
        let m = matrix::<N>(7, 1);
        let bias = matrix::<N>(1, 2)[0];
        let a = |r: usize, i: usize| ((r * 7 + i * 3) % 5) as f32 - 2.0;
        for start in [Start::Zero, Start::Row(&bias), Start::Out] {
            let mut out = [[1.5f32; N]; R];
            rows_times_matrix(&mut out, start, 7, a, |i| &m[i]);
            for (r, row) in out.iter().enumerate() {
                for (j, &got) in row.iter().enumerate() {
                    let init = match start {
                        Start::Zero => 0.0,
                        Start::Row(b) => b[j],
                        Start::Out => 1.5,
                        Start::Column(_) => unreachable!("not among the starts tried"),
                    };
                    let want = init + (0..7).map(|i| a(r, i) * m[i][j]).sum::<f32>();
                    // Small integers and quarters: exact in f32 whatever the order.
                    assert_eq!(got, want, "row {r}, column {j}");
                }
            }
        }
    }

    /// Floats with every bit of the significand in use, in [−2, 2): sums of them round, so a
    /// change in the order of a sum shows.
    fn noise(seed: &mut u32) -> f32 {
        *seed ^= *seed << 13;
        *seed ^= *seed >> 17;
        *seed ^= *seed << 5;
        (*seed >> 8) as f32 / (1 << 22) as f32 - 2.0
    }

    /// Every output of [`rows_times_matrix`] is its own chain of multiply-adds over i, from its
    /// start, in i's order, bit for bit: whatever the tile (2, 3, 4 or 8 rows, 1 to 4
    /// registers, f32x8 or f32x16) and however many rows are left over.
    #[test]
    fn rows_times_matrix_is_each_outputs_chain_bit_for_bit() {
        check_chains::<8>();
        check_chains::<16>();
        check_chains::<32>();
        check_chains::<64>();
        check_chains::<72>();
        check_chains::<200>();
    }

    fn check_chains<const N: usize>() {
        const K: usize = 37;
        let mut seed = 0x9E37_79B9 ^ N as u32;
        let m: std::vec::Vec<[f32; N]> = (0..K)
            .map(|_| core::array::from_fn(|_| noise(&mut seed)))
            .collect();
        let bias: [f32; N] = core::array::from_fn(|_| noise(&mut seed));
        for rows in 1..=13 {
            let a: std::vec::Vec<[f32; K]> = (0..rows)
                .map(|_| core::array::from_fn(|_| noise(&mut seed)))
                .collect();
            let before: std::vec::Vec<[f32; N]> = (0..rows)
                .map(|_| core::array::from_fn(|_| noise(&mut seed)))
                .collect();
            let column: std::vec::Vec<f32> = (0..rows).map(|_| noise(&mut seed)).collect();
            for start in [
                Start::Zero,
                Start::Row(&bias),
                Start::Out,
                Start::Column(&column),
            ] {
                let mut out = before.clone();
                rows_times_matrix(&mut out, start, K, |r, i| a[r][i], |i| &m[i]);
                for (r, row) in out.iter().enumerate() {
                    for (j, got) in row.iter().enumerate() {
                        let mut want = match start {
                            Start::Zero => 0.0,
                            Start::Row(b) => b[j],
                            Start::Out => before[r][j],
                            Start::Column(c) => c[r],
                        };
                        for i in 0..K {
                            want = Lane::mul_add(a[r][i], m[i][j], want);
                        }
                        assert_eq!(
                            got.to_bits(),
                            want.to_bits(),
                            "N {N}, {rows} rows: [{r}][{j}]"
                        );
                    }
                }
            }
        }
    }

    /// Σ_b x and Σ_b x·y, down the rows, as [`fold_columns`] sees them.
    struct TwoSums<'a, const N: usize> {
        x: &'a [[f32; N]],
        y: &'a [[f32; N]],
    }

    impl<const N: usize> ColumnFold<2> for TwoSums<'_, N> {
        fn step<X: Register>(&self, [sum, dot]: [X; 2], b: usize, col: usize) -> [X; 2] {
            let x = X::load(&self.x[b], col);
            [sum + x, x.mul_add(X::load(&self.y[b], col), dot)]
        }
    }

    /// Every lane of [`fold_columns`] is its own chain down the rows, from zero, bit for bit,
    /// whatever the width of the row and the registers it is cut into.
    #[test]
    fn fold_columns_is_each_lanes_chain_bit_for_bit() {
        check_folds::<8>();
        check_folds::<72>();
        check_folds::<200>();
    }

    fn check_folds<const N: usize>() {
        let mut seed = 0x85EB_CA6B ^ N as u32;
        for rows in [1, 2, 5, 32, 33] {
            let mut row = || -> [f32; N] { core::array::from_fn(|_| noise(&mut seed)) };
            let x: std::vec::Vec<[f32; N]> = (0..rows).map(|_| row()).collect();
            let y: std::vec::Vec<[f32; N]> = (0..rows).map(|_| row()).collect();
            let (mut sums, mut dots) = ([f32::NAN; N], [f32::NAN; N]);
            fold_columns([&mut sums, &mut dots], rows, &TwoSums { x: &x, y: &y });
            for j in 0..N {
                let (mut sum, mut dot) = (0.0f32, 0.0f32);
                for b in 0..rows {
                    sum += x[b][j];
                    dot = Lane::mul_add(x[b][j], y[b][j], dot);
                }
                assert_eq!(
                    sums[j].to_bits(),
                    sum.to_bits(),
                    "N {N}, {rows} rows: sum {j}"
                );
                assert_eq!(
                    dots[j].to_bits(),
                    dot.to_bits(),
                    "N {N}, {rows} rows: dot {j}"
                );
            }
        }
    }

    #[test]
    fn transpose_transposes_and_pads_with_zeros() {
        // 11 rows of 16 → 16 rows of 24: two blocks of 8 rows, the second with 3, and columns
        // 16..24 of the result untouched.
        let from = matrix::<16>(11, 5);
        let mut to = [[f32::NAN; 24]; 16];
        transpose(&mut to, &from[..11]);
        for (i, row) in to.iter().enumerate() {
            for (k, &x) in row.iter().enumerate() {
                match k {
                    0..11 => assert_eq!(x, from[k][i], "to[{i}][{k}]"),
                    11..16 => assert_eq!(x, 0.0, "to[{i}][{k}]"),
                    _ => assert!(x.is_nan(), "to[{i}][{k}]"),
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
        // Softmax feeds it [−87, 0]; the rest is for completeness.
        let err = exp_error(-87.0, 88.0, 200_001).max(exp_error(-1.0, 1.0, 20_001));
        eprintln!("exp: max relative error {err:e}");
        assert!(err <= 2.4e-7, "max relative error {err:e}");
        assert_eq!(exp(f32x8::ZERO).to_array(), [1.0; 8]);
        assert_eq!(exp(f32x8::splat(f32::NEG_INFINITY)).to_array(), [0.0; 8]);
        assert_eq!(exp(f32x8::splat(-87.31)).to_array(), [0.0; 8]);
        assert!(exp(f32x8::splat(-87.29)).to_array()[0].is_normal());
    }

    #[test]
    fn tanh_is_within_3_6e_7_of_libm() {
        let (mut abs_err, mut rel_err) = (0.0f32, 0.0f32);
        // The largest errors an exhaustive sweep found, with and without a fused multiply-add,
        // then [−10, 10] evenly.
        let worst = [5.968_839_6f32, -5.968_839_6, 3.969_780_2, -3.969_780_2];
        let even = (0..=400_000).map(|i| -10.0 + 20.0 * i as f32 / 400_000.0);
        for x in worst.into_iter().chain(even) {
            let want = libm::tanhf(x);
            let got = tanh(f32x8::splat(x)).to_array()[0];
            // Odd bit for bit, never past ±1, and exactly ±1 from ±9.5 on (the doc's promises).
            let negated = tanh(f32x8::splat(-x)).to_array()[0];
            assert_eq!(
                negated.to_bits(),
                (-got).to_bits(),
                "tanh(−{x}) is not −tanh({x})"
            );
            assert!(got.abs() <= 1.0, "tanh({x}) = {got}");
            if x.abs() >= 9.5 {
                assert_eq!(got, x.signum(), "tanh({x})");
            }
            abs_err = abs_err.max((got - want).abs());
            if want != 0.0 {
                rel_err = rel_err.max(((got - want) / want).abs());
            }
        }
        eprintln!("tanh: max absolute error {abs_err:e}, relative {rel_err:e}");
        assert!(abs_err <= 3.6e-7, "max absolute error {abs_err:e}");
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

    /// tanh as it was computed before it worked on |x|: x clamped on both sides, the result
    /// clamped on both sides, a NaN put back by a select.
    fn tanh_two_sided(x: f32x8) -> f32x8 {
        let xc = x.fast_max(f32x8::splat(-9.5)).fast_min(f32x8::splat(9.5));
        let s = xc * xc;
        let mut p = f32x8::splat(TANH_P[0]);
        for c in &TANH_P[1..] {
            p = p.mul_add(s, f32x8::splat(*c));
        }
        let mut q = f32x8::splat(TANH_Q[0]);
        for c in &TANH_Q[1..] {
            q = q.mul_add(s, f32x8::splat(*c));
        }
        let t = ((xc * p) / q)
            .fast_max(f32x8::splat(-1.0))
            .fast_min(f32x8::ONE);
        x.simd_eq(x).select(t, x)
    }

    /// The bit that makes a NaN quiet.
    const QUIET: u32 = 0x0040_0000;

    /// Every `stride`-th f32 bit pattern: tanh on |x| with the sign put back is the two-sided
    /// formula bit for bit, NaNs included, except that a signalling NaN comes out quiet.
    fn magnitude_sweep(stride: usize) {
        for start in (0..=u32::MAX).step_by(8 * stride) {
            let x = f32x8::from(core::array::from_fn::<f32, 8, _>(|l| {
                f32::from_bits(start.wrapping_add((l * stride) as u32))
            }));
            for ((got, want), x) in tanh(x)
                .to_array()
                .iter()
                .zip(tanh_two_sided(x).to_array())
                .zip(x.to_array())
            {
                if want.is_nan() {
                    // The old formula handed x back; now x goes through the arithmetic, which
                    // keeps a quiet NaN's bits and quiets a signalling one.
                    assert_eq!(got.to_bits(), want.to_bits() | QUIET, "tanh({x:e})");
                } else {
                    assert_eq!(got.to_bits(), want.to_bits(), "tanh({x:e})");
                }
            }
        }
    }

    #[test]
    fn tanh_on_the_magnitude_is_the_two_sided_formula() {
        magnitude_sweep(251);
    }

    /// Every f32: `cargo test --release -p charmlp-core -- --ignored every_f32` (22 s here;
    /// 65 s built for plain x86-64).
    #[test]
    #[ignore]
    fn tanh_on_the_magnitude_is_the_two_sided_formula_for_every_f32() {
        magnitude_sweep(1);
    }

    /// AVX-512's exp and tanh are f32x8's, bit for bit, NaN and infinities included.
    #[cfg(target_feature = "avx512f")]
    #[test]
    fn sixteen_lanes_are_eight_lanes_bit_for_bit() {
        let specials = [
            f32::NAN,
            f32::INFINITY,
            f32::NEG_INFINITY,
            0.0,
            -0.0,
            1e-30,
            -88.0,
        ];
        // 7 + 200,009 = 12,501 · 16 values, none left out.
        let xs = specials
            .into_iter()
            .chain((0..200_009).map(|i| -100.0 + 200.0 * i as f32 / 200_009.0));
        let xs: std::vec::Vec<f32> = xs.collect();
        for chunk in xs.chunks_exact(16) {
            let x16 = f32x16::from(<[f32; 16]>::try_from(chunk).unwrap());
            let (lo, hi) = chunk.split_at(8);
            let x8 = |h: &[f32]| f32x8::from(<[f32; 8]>::try_from(h).unwrap());
            for (f16, f8) in [
                (tanh16 as fn(f32x16) -> f32x16, tanh as fn(f32x8) -> f32x8),
                (exp16, exp),
            ] {
                let got = f16(x16).to_array().map(f32::to_bits);
                let want = [f8(x8(lo)).to_array(), f8(x8(hi)).to_array()].concat();
                assert_eq!(
                    got[..],
                    want.iter()
                        .map(|x| x.to_bits())
                        .collect::<std::vec::Vec<_>>()[..]
                );
            }
        }
    }

    #[test]
    fn zip_map_covers_the_tail() {
        let mut out = [1.0f32; 11];
        let x: [f32; 11] = core::array::from_fn(|i| i as f32);
        zip_map(&mut out, &x, |o, x| o + x, |o, x| o + x);
        assert_eq!(out, core::array::from_fn(|i| 1.0 + i as f32));
    }
}
