//! The shape rules, in one place: checked when a shape is instantiated (a post-monomorphisation
//! error, not a run-time one), so that `Params::<10, 3, 60>::zeroed()` or
//! `TrainState::<64, 1>::new()` does not compile. Every type with a shape names its rule here.

/// SIMD width the hot loops are laid out for (`f32x8`): the hidden width must be a multiple of it
/// so that no loop over the hidden units needs a scalar tail.
pub const LANES: usize = 8;

/// Contexts whose embeddings the first layer's products gather at once into a buffer on the
/// stack, so that each multiply reads a plain row instead of looking its row of C up again
/// (a third of the first layer's time): 32 on a host (3,840 bytes for the default shape), none
/// on a microcontroller (`target_os = "none"`), whose stack stays as it was. For inference and
/// a step without copies ([`crate::NoCopies`]); a host's step with [`crate::Transposed`]
/// gathers 32 rows at a time into that scratch instead.
pub const GATHER_ROWS: usize = if MICROCONTROLLER { 0 } else { 32 };

/// Built for a microcontroller (`target_os = "none"`): the few places that trade memory for
/// speed on a host keep to the microcontroller's stack and flash instead.
pub const MICROCONTROLLER: bool = cfg!(target_os = "none");

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

/// Padding rule for the first layer's input width, checked at compile time: rows of W1ᵀ (and of
/// demb) are `padded(T·E)` wide, TEP.
pub(crate) struct InputPadCheck<const E: usize, const T: usize, const TEP: usize>;

impl<const E: usize, const T: usize, const TEP: usize> InputPadCheck<E, T, TEP> {
    pub(crate) const OK: () = assert!(TEP == padded(T * E), "TEP must be padded(T·E)");
}
