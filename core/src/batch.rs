//! A batch of examples, and drawing one from a split as makemore does.

use crate::random::below;
use crate::vocab::{Example, Token};
use core::num::NonZeroU32;
use rand_core::Rng;

/// B examples: contexts x [B][T] and targets y [B]. Size: B·(T + 1) bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Batch<const T: usize, const B: usize> {
    pub x: [[Token; T]; B],
    pub y: [Token; B],
}

/// A split with no examples has nothing to sample from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EmptySplit;

impl core::fmt::Display for EmptySplit {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("the split has no examples")
    }
}

impl core::error::Error for EmptySplit {}

impl<const T: usize, const B: usize> Batch<T, B> {
    pub const fn new() -> Self {
        Batch {
            x: [[Token::BOUNDARY; T]; B],
            y: [Token::BOUNDARY; B],
        }
    }

    pub fn from_examples(examples: &[Example<T>; B]) -> Self {
        Batch {
            x: examples.map(|ex| ex.context),
            y: examples.map(|ex| ex.target),
        }
    }

    /// Fills the batch with B examples drawn uniformly with replacement, as makemore's
    /// `torch.randint(0, Xtr.shape[0], (B,))` does. One `u32` or more per example.
    pub fn sample<R: Rng + ?Sized>(
        &mut self,
        rng: &mut R,
        examples: &[Example<T>],
    ) -> Result<(), EmptySplit> {
        self.sample_from(rng, examples.len(), |i| examples[i])
    }

    /// [`Batch::sample`] from a split of `len` examples that `example(i)` builds (a split
    /// packed in flash, [`crate::packed::PackedSplit`]): the same draws, so the same batches
    /// as from the examples in an array.
    pub fn sample_from<R: Rng + ?Sized>(
        &mut self,
        rng: &mut R,
        len: usize,
        mut example: impl FnMut(usize) -> Example<T>,
    ) -> Result<(), EmptySplit> {
        // A split longer than u32::MAX examples is sampled from its first u32::MAX.
        let n = u32::try_from(len).unwrap_or(u32::MAX);
        let n = NonZeroU32::new(n).ok_or(EmptySplit)?;
        for (x, y) in self.x.iter_mut().zip(self.y.iter_mut()) {
            let ex = example(below(rng, n) as usize);
            *x = ex.context;
            *y = ex.target;
        }
        Ok(())
    }
}

impl<const T: usize, const B: usize> Default for Batch<T, B> {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn size_is_as_documented() {
        assert_eq!(core::mem::size_of::<Batch<3, 32>>(), 128);
    }

    #[test]
    fn sampling_an_empty_split_is_an_error() {
        use rand_core::SeedableRng;
        let mut rng = rand_xoshiro::Xoshiro256PlusPlus::seed_from_u64(0);
        let mut batch = Batch::<3, 4>::new();
        assert_eq!(batch.sample(&mut rng, &[]), Err(EmptySplit));
        let one = Example {
            context: [Token::BOUNDARY; 3],
            target: Token::from_index(17).unwrap(),
        };
        assert_eq!(batch.sample(&mut rng, &[one]), Ok(()));
        assert_eq!(batch.y, [one.target; 4]);
    }
}
