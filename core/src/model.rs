//! A model: the parameters and the batch-norm statistics inference uses.

use crate::params::Params;
use rand_core::Rng;

/// ε added to the batch variance before the inverse square root (PyTorch's default).
pub const BN_EPS: f32 = 1e-5;

/// makemore's running-statistics momentum: stats ← (1 − m)·stats + m·batch stats.
pub const BN_MOMENTUM: f32 = 0.001;

/// Batch-norm statistics for inference: mean [H] and Bessel-corrected variance [H].
/// Size: 8·H bytes (512 for hidden 64).
#[derive(Clone, Debug, PartialEq)]
pub struct BnStats<const H: usize> {
    pub mean: [f32; H],
    pub var: [f32; H],
}

impl<const H: usize> BnStats<H> {
    /// Mean 0, variance 1: what makemore's running buffers start from.
    pub const fn new() -> Self {
        BnStats {
            mean: [0.0; H],
            var: [1.0; H],
        }
    }

    /// One step of the running average towards a batch's mean and variance.
    pub fn update_running(&mut self, bnmeani: &[f32; H], bnvar: &[f32; H], momentum: f32) {
        for j in 0..H {
            self.mean[j] = (1.0 - momentum) * self.mean[j] + momentum * bnmeani[j];
            self.var[j] = (1.0 - momentum) * self.var[j] + momentum * bnvar[j];
        }
    }
}

impl<const H: usize> Default for BnStats<H> {
    fn default() -> Self {
        Self::new()
    }
}

/// Parameters plus inference statistics: what a model file and an exported source hold.
/// Size: `size_of::<Params>() + 8·H` bytes (17,060 for the default model).
#[derive(Clone, Debug, PartialEq)]
pub struct Model<const V: usize, const E: usize, const T: usize, const H: usize> {
    pub params: Params<V, E, T, H>,
    pub bn: BnStats<H>,
}

impl<const V: usize, const E: usize, const T: usize, const H: usize> Model<V, E, T, H> {
    pub const fn zeroed() -> Self {
        Model {
            params: Params::zeroed(),
            bn: BnStats::new(),
        }
    }

    /// Fresh parameters (see [`Params::init`]) and statistics mean 0, variance 1, in place.
    pub fn init<R: Rng + ?Sized>(&mut self, rng: &mut R) {
        self.init_with_symbols(rng, V);
    }

    /// Fresh parameters for `symbols` ≤ V symbols (see [`Params::init_with_symbols`]) and
    /// statistics mean 0, variance 1, in place.
    pub fn init_with_symbols<R: Rng + ?Sized>(&mut self, rng: &mut R, symbols: usize) {
        self.params.init_with_symbols(rng, symbols);
        self.bn = BnStats::new();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::mem::size_of;

    #[test]
    fn sizes_are_as_documented() {
        assert_eq!(size_of::<BnStats<64>>(), 512);
        assert_eq!(size_of::<Model<27, 10, 3, 64>>(), 17_060);
        assert_eq!(size_of::<Model<27, 10, 3, 200>>(), 49_188 + 1_600);
    }

    #[test]
    fn running_stats_move_by_the_momentum() {
        let mut s = BnStats::<8>::new();
        s.update_running(&[1.0; 8], &[3.0; 8], 0.5);
        assert_eq!(s.mean, [0.5; 8]);
        assert_eq!(s.var, [2.0; 8]);
    }
}
