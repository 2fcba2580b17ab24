//! The few random draws the model needs, from any `rand_core::Rng`.
//!
//! (rand_core 0.10 renamed `RngCore` to `Rng`; every generator that implemented the old trait
//! implements this one.) Each draw consumes a fixed number of words from the generator, so a
//! seed fixes a whole training run bit for bit.

use core::num::NonZeroU32;
use rand_core::Rng;

/// Uniform in [0, 1) from the top 24 bits of one `u32`: every value is an exact `f32`.
pub fn uniform_f32<R: Rng + ?Sized>(rng: &mut R) -> f32 {
    (rng.next_u32() >> 8) as f32 * (1.0 / (1u32 << 24) as f32)
}

/// A standard normal sample by the Box–Muller transform, computed in f64 with `libm`.
///
/// u1 is drawn from (0, 1] so that ln(u1) is finite; the sine half of the pair is dropped to
/// keep every call one fixed draw of two `u64`s.
pub fn standard_normal<R: Rng + ?Sized>(rng: &mut R) -> f32 {
    const TWO_POW_M53: f64 = 1.0 / (1u64 << 53) as f64;
    let u1 = ((rng.next_u64() >> 11) + 1) as f64 * TWO_POW_M53;
    let u2 = (rng.next_u64() >> 11) as f64 * TWO_POW_M53;
    let radius = libm::sqrt(-2.0 * libm::log(u1));
    (radius * libm::cos(2.0 * core::f64::consts::PI * u2)) as f32
}

/// Uniform in 0..n, exactly: Lemire's multiply-and-shift with rejection of the biased low
/// products ("Fast random integer generation in an interval", 2019).
pub fn below<R: Rng + ?Sized>(rng: &mut R, n: NonZeroU32) -> u32 {
    let n = n.get();
    let mut product = u64::from(rng.next_u32()) * u64::from(n);
    if (product as u32) < n {
        let threshold = n.wrapping_neg() % n;
        while (product as u32) < threshold {
            product = u64::from(rng.next_u32()) * u64::from(n);
        }
    }
    (product >> 32) as u32
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand_core::SeedableRng;
    use rand_xoshiro::Xoshiro256PlusPlus;

    #[test]
    fn normal_samples_have_unit_moments() {
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(1);
        let n = 200_000;
        let (mut s1, mut s2, mut s4) = (0.0f64, 0.0f64, 0.0f64);
        for _ in 0..n {
            let z = f64::from(standard_normal(&mut rng));
            assert!(z.is_finite());
            s1 += z;
            s2 += z * z;
            s4 += z * z * z * z;
        }
        let n = n as f64;
        // Standard errors: mean 1/√n ≈ 0.0022, variance √(2/n) ≈ 0.0032, kurtosis √(96/n) ≈ 0.022.
        assert!((s1 / n).abs() < 0.01, "mean {}", s1 / n);
        assert!((s2 / n - 1.0).abs() < 0.015, "variance {}", s2 / n);
        assert!((s4 / n - 3.0).abs() < 0.1, "fourth moment {}", s4 / n);
    }

    #[test]
    fn below_is_in_range_and_uniform() {
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(2);
        let n = NonZeroU32::new(7).unwrap();
        let mut counts = [0u32; 7];
        for _ in 0..70_000 {
            counts[below(&mut rng, n) as usize] += 1;
        }
        // Each count is Binomial(70000, 1/7): mean 10000, sd ≈ 93.
        for c in counts {
            assert!((9_600..=10_400).contains(&c), "{counts:?}");
        }
        let one = NonZeroU32::new(1).unwrap();
        assert!((0..100).all(|_| below(&mut rng, one) == 0));
        let max = NonZeroU32::new(u32::MAX).unwrap();
        assert!((0..1000).all(|_| below(&mut rng, max) < u32::MAX));
    }

    #[test]
    fn uniform_is_in_the_half_open_unit_interval() {
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(3);
        let mut lo = 1.0f32;
        let mut hi = 0.0f32;
        for _ in 0..100_000 {
            let u = uniform_f32(&mut rng);
            assert!((0.0..1.0).contains(&u));
            lo = lo.min(u);
            hi = hi.max(u);
        }
        assert!(lo < 1e-3 && hi > 0.999);
    }
}
