//! The shape rules, in one place: checked when a shape is instantiated (a post-monomorphisation
//! error, not a run-time one), so that `Params::<10, 3, 60>::zeroed()` or
//! `TrainState::<64, 1>::new()` does not compile. Every type with a shape names its rule here.

/// SIMD width the hot loops are laid out for (`f32x8`): the hidden width must be a multiple of it
/// so that no loop over the hidden units needs a scalar tail.
pub const LANES: usize = 8;

/// The vocabulary padded to whole vectors: the width of the fast path's logits rows, whose
/// padding holds logit −∞. 32 for makemore's 27.
pub const fn padded(v: usize) -> usize {
    v.div_ceil(LANES) * LANES
}

/// Shape rules, checked when a model shape is instantiated (a post-monomorphisation error, not a
/// run-time one): `Params::<27, 10, 3, 60>::zeroed()` does not compile.
pub(crate) struct ShapeCheck<const V: usize, const E: usize, const T: usize, const H: usize>;

impl<const V: usize, const E: usize, const T: usize, const H: usize> ShapeCheck<V, E, T, H> {
    pub(crate) const OK: () = {
        assert!(E > 0 && T > 0 && H > 0, "every dimension must be positive");
        // The boundary and at least one character; a token is a u8 below MAX_SYMBOLS.
        assert!(
            V >= 2 && V <= crate::alphabet::MAX_SYMBOLS,
            "the vocabulary capacity must be in 2..=MAX_SYMBOLS (128)"
        );
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

/// Padding rule, checked at compile time: logits rows of a vocabulary of capacity V are
/// `padded(V)` wide (Rust cannot yet compute an array length from a generic parameter, so the
/// padded width is a parameter of its own and this ties it to V).
pub(crate) struct PadCheck<const V: usize, const VP: usize>;

impl<const V: usize, const VP: usize> PadCheck<V, VP> {
    pub(crate) const OK: () = assert!(VP == padded(V), "VP must be padded(V)");
}
