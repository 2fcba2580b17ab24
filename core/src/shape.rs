//! The shape rules, in one place: checked when a shape is instantiated (a post-monomorphisation
//! error, not a run-time one), so that `Params::<10, 3, 60>::zeroed()` or
//! `TrainState::<64, 1>::new()` does not compile. Every type with a shape names its rule here.

/// SIMD width the hot loops are laid out for (`f32x8`): the hidden width must be a multiple of it
/// so that no loop over the hidden units needs a scalar tail.
pub const LANES: usize = 8;

/// Shape rules, checked when a model shape is instantiated (a post-monomorphisation error, not a
/// run-time one): `Params::<10, 3, 60>::zeroed()` does not compile.
pub(crate) struct ShapeCheck<const E: usize, const T: usize, const H: usize>;

impl<const E: usize, const T: usize, const H: usize> ShapeCheck<E, T, H> {
    pub(crate) const OK: () = {
        assert!(E > 0 && T > 0 && H > 0, "every dimension must be positive");
        assert!(
            H.is_multiple_of(LANES),
            "the hidden width must be a multiple of LANES (8)"
        );
        // The model file stores each dimension as a u16.
        assert!(
            E <= 0xffff && T <= 0xffff && H <= 0xffff,
            "dimensions must fit in u16"
        );
    };
}

/// Batch-size rule, checked at compile time: Bessel's correction divides by B − 1.
pub(crate) struct BatchCheck<const B: usize>;

impl<const B: usize> BatchCheck<B> {
    pub(crate) const OK: () = assert!(B >= 2, "batch norm needs a batch of at least 2");
}
