//! Batch-norm statistics of a whole split, for inference after training.
//!
//! makemore calibrates by one forward over the whole training split: mean and Bessel-corrected
//! variance of hprebn over ~180,000 rows. Without room for those rows, this streams them through
//! Welford's update in f64, which gives the same mean and variance as the two-pass formula to
//! within f64 rounding, however far the mean is from zero.

use crate::infer::InferState;
use crate::model::{BnStats, Model};
use crate::shape::MICROCONTROLLER;
use crate::vocab::Example;
use wide::f64x8;

/// Running count, mean and sum of squared deviations per hidden unit.
/// Size: 16·H + 8 bytes (1,032 for hidden 64).
#[derive(Clone, Debug)]
pub struct BnCalibration<const H: usize> {
    count: u64,
    mean: [f64; H],
    m2: [f64; H],
}

/// Bessel's correction needs at least two rows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TooFewRows {
    pub rows: u64,
}

impl core::fmt::Display for TooFewRows {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(
            f,
            "batch-norm calibration needs at least 2 examples, got {}",
            self.rows
        )
    }
}

impl core::error::Error for TooFewRows {}

impl<const H: usize> BnCalibration<H> {
    pub const fn new() -> Self {
        BnCalibration {
            count: 0,
            mean: [0.0; H],
            m2: [0.0; H],
        }
    }

    pub fn count(&self) -> u64 {
        self.count
    }

    /// Welford's update with one row of hprebn [H]: delta = x − mean, mean += delta/count,
    /// m2 += delta·(x − mean). [`BnCalibration::add_counted`] with weight 1, bit for bit.
    pub fn add(&mut self, hprebn: &[f32; H]) {
        self.add_counted(hprebn, 1);
    }

    /// Welford's update for `weight` equal rows of hprebn [H], in West's weighted form:
    /// count += w, delta = x − mean, mean += delta·(w/count), m2 += w·delta·(x − mean), which is
    /// adding the row w times (exactly so in exact arithmetic). Eight units at a time in `f64x8`
    /// (one AVX-512 register; the compiler's own vectors were half as wide), then any units past
    /// a multiple of 8. Each lane's operations are the scalar formula's, unfused: the same
    /// values on every target. Weight 1 is [`BnCalibration::add`]: w/count is 1/count and
    /// delta·1 is delta, exactly.
    pub fn add_counted(&mut self, hprebn: &[f32; H], weight: u64) {
        if weight == 0 {
            return;
        }
        self.count += weight;
        let w = weight as f64;
        let w_over_count = w / self.count as f64;
        // A microcontroller has no f64 vectors (nor an f64 FPU): its soft-float calls on
        // f64x8's lanes took a kilobyte more stack than the plain loop, so it takes only that.
        let vectors = if MICROCONTROLLER { 0 } else { H / 8 };
        let (means, mean_tail) = self.mean.split_at_mut(8 * vectors);
        let (m2s, m2_tail) = self.m2.split_at_mut(8 * vectors);
        let (xs, x_tail) = hprebn.split_at(8 * vectors);
        let (means, m2s, xs) = (
            means.as_chunks_mut::<8>().0,
            m2s.as_chunks_mut::<8>().0,
            xs.as_chunks::<8>().0,
        );
        let (wv, ratio) = (f64x8::splat(w), f64x8::splat(w_over_count));
        for ((mean, m2), x) in means.iter_mut().zip(m2s.iter_mut()).zip(xs) {
            let x = f64x8::from(x.map(f64::from));
            let old_mean = f64x8::from(*mean);
            let delta = x - old_mean;
            let new_mean = old_mean + delta * ratio;
            *m2 = (f64x8::from(*m2) + delta * wv * (x - new_mean)).to_array();
            *mean = new_mean.to_array();
        }
        for ((mean, m2), &x) in mean_tail.iter_mut().zip(m2_tail.iter_mut()).zip(x_tail) {
            let x = f64::from(x);
            let delta = x - *mean;
            *mean += delta * w_over_count;
            *m2 += delta * w * (x - *mean);
        }
    }

    /// Mean and Bessel-corrected variance of every row added so far.
    pub fn stats(&self) -> Result<BnStats<H>, TooFewRows> {
        if self.count < 2 {
            return Err(TooFewRows { rows: self.count });
        }
        let mut stats = BnStats::new();
        let bessel = 1.0 / (self.count - 1) as f64;
        for j in 0..H {
            stats.mean[j] = self.mean[j] as f32;
            stats.var[j] = (self.m2[j] * bessel) as f32;
        }
        Ok(stats)
    }
}

impl<const H: usize> Default for BnCalibration<H> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const V: usize, const E: usize, const T: usize, const H: usize> Model<V, E, T, H> {
    /// Replaces the batch-norm statistics with those of hprebn over every example of a split.
    /// The buffers are the caller's; on error the model is left unchanged.
    pub fn calibrate(
        &mut self,
        examples: &[Example<T>],
        acc: &mut BnCalibration<H>,
        state: &mut InferState<V, H>,
    ) -> Result<(), TooFewRows> {
        self.calibrate_each(examples.iter().copied(), acc, state)
    }

    /// [`Model::calibrate`] over examples built one by one (a split packed in flash): the
    /// same statistics for the same examples in the same order.
    pub fn calibrate_each(
        &mut self,
        examples: impl IntoIterator<Item = Example<T>>,
        acc: &mut BnCalibration<H>,
        state: &mut InferState<V, H>,
    ) -> Result<(), TooFewRows> {
        *acc = BnCalibration::new();
        for ex in examples {
            self.hprebn(&ex.context, &mut state.h);
            acc.add(&state.h);
        }
        self.bn = acc.stats()?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn size_is_as_documented() {
        assert_eq!(core::mem::size_of::<BnCalibration<64>>(), 1_032);
        assert_eq!(core::mem::size_of::<BnCalibration<200>>(), 3_208);
    }

    #[test]
    fn welford_matches_two_pass_far_from_zero() {
        // Values near 1e4 with spread 1e-1: Σx² − n·mean² in f32 would lose every digit of
        // the variance here.
        let mut acc = BnCalibration::<8>::new();
        let n = 1000;
        let row = |i: usize| -> [f32; 8] {
            core::array::from_fn(|j| 1.0e4 + ((i * 7919 + j * 104_729) % 1000) as f32 * 1e-3)
        };
        for i in 0..n {
            acc.add(&row(i));
        }
        let stats = acc.stats().unwrap();
        for j in 0..8 {
            let mean = (0..n).map(|i| f64::from(row(i)[j])).sum::<f64>() / n as f64;
            let var = (0..n)
                .map(|i| (f64::from(row(i)[j]) - mean).powi(2))
                .sum::<f64>()
                / (n - 1) as f64;
            assert_eq!(stats.mean[j], mean as f32);
            assert!(
                ((f64::from(stats.var[j]) - var) / var).abs() < 1e-6,
                "{} vs {var}",
                stats.var[j]
            );
        }
    }

    #[test]
    fn fewer_than_two_rows_is_an_error() {
        let mut acc = BnCalibration::<8>::new();
        assert_eq!(acc.stats(), Err(TooFewRows { rows: 0 }));
        acc.add(&[1.0; 8]);
        assert_eq!(acc.stats(), Err(TooFewRows { rows: 1 }));
        acc.add(&[3.0; 8]);
        let s = acc.stats().unwrap();
        assert_eq!((s.mean[0], s.var[0]), (2.0, 2.0));
    }
}
