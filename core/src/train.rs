//! Training: the training-mode forward, the fused backward, and the step (SGD, or any
//! [`Optim`]).

use crate::batch::Batch;
use crate::columns::{self, BLOCK, block_t};
use crate::layers::{self, NllSum};
use crate::model::{BN_MOMENTUM, Model};
use crate::optim::Optim;
use crate::params::Params;
use crate::shape::{BatchCheck, PadCheck};
use crate::simd;
use crate::vocab::Token;

/// The fast path's activations for one batch, owned by the caller so that nothing is on the
/// heap and no stack frame is large.
///
/// VP is the vocabulary capacity padded to whole vectors, [`crate::padded`]`(V)`: 32 for
/// makemore's 27. Size: 4·(2·B·H + B·VP + 3·H) bytes: 21,248 for hidden 64 and batch 32,
/// 57,696 for hidden 200 (asserted in the tests below).
#[derive(Clone, Debug)]
pub struct TrainState<const VP: usize, const H: usize, const B: usize> {
    /// hprebn after the first linear layer, normalised in place to bnraw by batch norm.
    pub bnraw: [[f32; H]; B],
    pub bnmeani: [f32; H],
    /// Bessel-corrected batch variance.
    pub bnvar: [f32; H],
    pub bnvar_inv: [f32; H],
    /// hpreact, then h = tanh(hpreact); the backward overwrites it with dhpreact, then dhprebn.
    pub h: [[f32; H]; B],
    /// logits, then probs; the backward overwrites them with dlogits. Columns V..VP are
    /// padding (logit −∞) for whole-vector softmax. A [`step`] with [`Transposed`] copies over
    /// whole blocks of 32 rows keeps each block transposed instead ([`crate::columns`]).
    pub probs: [[f32; VP]; B],
}

impl<const VP: usize, const H: usize, const B: usize> TrainState<VP, H, B> {
    pub const fn new() -> Self {
        let () = BatchCheck::<B>::OK;
        TrainState {
            bnraw: [[0.0; H]; B],
            bnmeani: [0.0; H],
            bnvar: [0.0; H],
            bnvar_inv: [0.0; H],
            h: [[0.0; H]; B],
            probs: [[0.0; VP]; B],
        }
    }

    /// Training-mode forward of one batch (batch statistics, Bessel-corrected variance).
    ///
    /// The returned [`Forward`] holds the loss and is the only way to run the backward, which
    /// consumes it: the type system rules out a backward over stale or already-consumed
    /// activations.
    pub fn forward<'a, const V: usize, const E: usize, const T: usize>(
        &'a mut self,
        params: &'a Params<V, E, T, H>,
        batch: &'a Batch<T, B>,
    ) -> Forward<'a, V, VP, E, T, H, B> {
        let () = PadCheck::<V, VP>::OK;
        let rows = self.rows();
        let loss = forward_rows(
            rows,
            params,
            &batch.x,
            &batch.y,
            &mut NoCopies,
            &mut NoMarks,
        );
        Forward {
            state: self,
            params,
            batch,
            loss,
        }
    }

    /// The buffers as slices of rows, for the code that does not depend on the batch size.
    fn rows(&mut self) -> Rows<'_, VP, H> {
        Rows {
            bnraw: &mut self.bnraw,
            bnmeani: &mut self.bnmeani,
            bnvar: &mut self.bnvar,
            bnvar_inv: &mut self.bnvar_inv,
            h: &mut self.h,
            probs: &mut self.probs,
        }
    }
}

/// A [`TrainState`]'s buffers with the batch as a slice of rows.
struct Rows<'a, const VP: usize, const H: usize> {
    bnraw: &'a mut [[f32; H]],
    bnmeani: &'a mut [f32; H],
    bnvar: &'a mut [f32; H],
    bnvar_inv: &'a mut [f32; H],
    h: &'a mut [[f32; H]],
    probs: &'a mut [[f32; VP]],
}

impl<const VP: usize, const H: usize> Rows<'_, VP, H> {
    fn reborrow(&mut self) -> Rows<'_, VP, H> {
        Rows {
            bnraw: self.bnraw,
            bnmeani: self.bnmeani,
            bnvar: self.bnvar,
            bnvar_inv: self.bnvar_inv,
            h: self.h,
            probs: self.probs,
        }
    }
}

/// A stage of the training step, in the order the step runs them: what a profile times
/// (`charmlp bench --stages`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stage {
    /// Embedding gather and x·W1 + b1.
    EmbedLinear,
    /// Batch norm and tanh, in one pass ([`layers::batchnorm_tanh_forward`]).
    BatchNormTanh,
    /// h·W2 + b2.
    Linear2,
    SoftmaxCrossEntropy,
    /// The batch-norm running statistics.
    RunningStats,
    /// Setting dC to 0: the other gradients are written whole by their kernels.
    ZeroGrads,
    /// dlogits = (probs − onehot)/B (and db2, where the batch is across the lanes:
    /// [`crate::columns`]).
    SoftmaxCrossEntropyBackward,
    /// dW2 = hᵀ·dlogits, db2 (db2 in the stage before, where the batch is across the lanes).
    Linear2Backward,
    /// dh = dlogits·W2ᵀ, then tanh's derivative.
    Linear2TanhBackward,
    BatchNormBackward,
    /// demb = dhprebn·W1ᵀ and its scatter into dC, then db1, dW1 = xᵀ·dhprebn.
    EmbedLinearBackward,
    /// The optimizer's update. Plain SGD's is marked twice: W2ᵀ and b2 after the output
    /// layer's backward, the other tensors after the first layer's (the step takes it in those
    /// two parts, while each part is in cache).
    Update,
}

impl Stage {
    /// Every stage, in the step's order ([`Stage::Update`] marked once more between the output
    /// layer's backward and batch norm's in a step with plain SGD).
    pub const ALL: [Stage; 12] = [
        Stage::EmbedLinear,
        Stage::BatchNormTanh,
        Stage::Linear2,
        Stage::SoftmaxCrossEntropy,
        Stage::RunningStats,
        Stage::ZeroGrads,
        Stage::SoftmaxCrossEntropyBackward,
        Stage::Linear2Backward,
        Stage::Linear2TanhBackward,
        Stage::BatchNormBackward,
        Stage::EmbedLinearBackward,
        Stage::Update,
    ];

    pub const fn name(self) -> &'static str {
        match self {
            Stage::EmbedLinear => "embed + linear1 fwd",
            Stage::BatchNormTanh => "batch norm, tanh fwd",
            Stage::Linear2 => "linear2 fwd",
            Stage::SoftmaxCrossEntropy => "softmax-CE fwd",
            Stage::RunningStats => "running statistics",
            Stage::ZeroGrads => "zero dC",
            Stage::SoftmaxCrossEntropyBackward => "softmax-CE bwd",
            Stage::Linear2Backward => "dW2, db2",
            Stage::Linear2TanhBackward => "dh + tanh bwd",
            Stage::BatchNormBackward => "batch norm bwd",
            Stage::EmbedLinearBackward => "demb, dC, db1, dW1",
            Stage::Update => "update",
        }
    }

    /// Floating-point operations of the stage's matrix product for a batch of `b` (2 per
    /// multiply-add), 0 for element-wise stages.
    pub const fn flops(self, b: usize, v: usize, e: usize, t: usize, h: usize) -> usize {
        match self {
            Stage::EmbedLinear => 2 * b * t * e * h,
            Stage::Linear2 | Stage::Linear2Backward | Stage::Linear2TanhBackward => 2 * b * h * v,
            // dW1 and demb: two products of the first layer's size.
            Stage::EmbedLinearBackward => 4 * b * t * e * h,
            _ => 0,
        }
    }
}

/// Told when each [`Stage`] of a step is done. The fast path's is [`NoMarks`], which does
/// nothing and compiles to nothing; a profile's reads a clock.
pub trait StageMarks {
    fn done(&mut self, stage: Stage);
}

/// The marks of the fast path: none.
pub struct NoMarks;

impl StageMarks for NoMarks {
    #[inline(always)]
    fn done(&mut self, _: Stage) {}
}

impl<F: FnMut(Stage)> StageMarks for F {
    fn done(&mut self, stage: Stage) {
        self(stage)
    }
}

/// The forward of [`TrainState::forward`] on rows, whatever the batch size. Inlined where it is
/// used: into each [`TrainState::forward`] (firmware's single shape, with the batch size known)
/// and into [`gradient_rows`], which the batch sizes share.
#[inline(always)]
fn forward_rows<const V: usize, const VP: usize, const E: usize, const T: usize, const H: usize>(
    s: Rows<'_, VP, H>,
    p: &Params<V, E, T, H>,
    x: &[[Token; T]],
    y: &[Token],
    copies: &mut impl WeightCopies<V, VP, E, T, H>,
    marks: &mut impl StageMarks,
) -> f32 {
    copies.embed_linear_forward(s.bnraw, x, p);
    marks.done(Stage::EmbedLinear);
    let ht = copies.first_block_ht(s.h.len());
    layers::batchnorm_tanh_forward_ht(
        s.bnraw,
        s.h,
        ht,
        s.bnmeani,
        s.bnvar,
        s.bnvar_inv,
        &p.gain,
        &p.bias,
    );
    marks.done(Stage::BatchNormTanh);
    copies.output_forward(s.probs, s.h, y, p, marks)
}

/// The parameters the backward reads, and what it does with a tensor's gradient once the
/// backward reads that tensor no more.
enum Parameters<'a, const V: usize, const E: usize, const T: usize, const H: usize> {
    /// Nothing: the gradients are the result ([`Forward::backward`]), or an optimizer's input.
    Read(&'a Params<V, E, T, H>),
    /// SGD at this rate, in two parts: W2ᵀ and b2 as soon as the output layer's backward is
    /// done with W2ᵀ, while they and their gradients are still in cache, then the rest at the
    /// end. The same values as one SGD after the backward, bit for bit; on an AVX2 host the
    /// step takes about 0.1 µs less.
    Sgd(&'a mut Params<V, E, T, H>, f32),
}

impl<const V: usize, const E: usize, const T: usize, const H: usize> Parameters<'_, V, E, T, H> {
    #[inline(always)]
    fn get(&self) -> &Params<V, E, T, H> {
        match self {
            Parameters::Read(p) => p,
            Parameters::Sgd(p, _) => p,
        }
    }

    /// SGD on the tensors `which` (positions in [`Params::NAMES`]' order), if the backward
    /// takes it, marked as [`Stage::Update`].
    #[inline(always)]
    fn done_with(
        &mut self,
        which: core::ops::Range<usize>,
        grads: &Params<V, E, T, H>,
        marks: &mut impl StageMarks,
    ) {
        if let Parameters::Sgd(p, lr) = self {
            p.sgd_tensors(grads, *lr, which);
            marks.done(Stage::Update);
        }
    }
}

/// The fused backward of [`Forward::backward`] on rows, inlined as [`forward_rows`] is, with
/// the step's SGD taken as `p` says.
#[inline(always)]
fn backward_rows<
    const V: usize,
    const VP: usize,
    const E: usize,
    const T: usize,
    const H: usize,
>(
    s: Rows<'_, VP, H>,
    mut p: Parameters<'_, V, E, T, H>,
    x: &[[Token; T]],
    y: &[Token],
    grads: &mut Params<V, E, T, H>,
    copies: &mut impl WeightCopies<V, VP, E, T, H>,
    marks: &mut impl StageMarks,
) {
    // Every other gradient is written whole by its kernel; dC is scattered into.
    grads.c.iter_mut().for_each(|row| row.fill(0.0));
    marks.done(Stage::ZeroGrads);
    copies.output_backward(s.probs, s.h, y, p.get(), grads, marks);
    p.done_with(Params::<V, E, T, H>::OUTPUT_LAYER, grads, marks);
    let dhpreact = s.h;
    layers::batchnorm_backward(
        dhpreact,
        &mut grads.gain,
        &mut grads.bias,
        s.bnraw,
        s.bnvar_inv,
        &p.get().gain,
    );
    marks.done(Stage::BatchNormBackward);
    let dhprebn = dhpreact;
    // demb before dW1, so that SGD finds dW1 just written.
    copies.embed_backward(&mut grads.c, dhprebn, x, p.get());
    copies.linear1_backward(&mut grads.w1, &mut grads.b1, dhprebn, x, p.get());
    marks.done(Stage::EmbedLinearBackward);
    p.done_with(Params::<V, E, T, H>::BELOW_OUTPUT, grads, marks);
}

impl<const VP: usize, const H: usize, const B: usize> Default for TrainState<VP, H, B> {
    fn default() -> Self {
        Self::new()
    }
}

/// A finished forward pass, waiting for its backward.
pub struct Forward<
    'a,
    const V: usize,
    const VP: usize,
    const E: usize,
    const T: usize,
    const H: usize,
    const B: usize,
> {
    state: &'a mut TrainState<VP, H, B>,
    params: &'a Params<V, E, T, H>,
    batch: &'a Batch<T, B>,
    loss: f32,
}

impl<
    const V: usize,
    const VP: usize,
    const E: usize,
    const T: usize,
    const H: usize,
    const B: usize,
> Forward<'_, V, VP, E, T, H, B>
{
    /// Mean cross-entropy over the batch.
    pub fn loss(&self) -> f32 {
        self.loss
    }

    /// The activations of the forward pass.
    pub fn state(&self) -> &TrainState<VP, H, B> {
        self.state
    }

    /// The fused backward: writes all seven parameter gradients into `grads` (overwriting them),
    /// reusing the activation buffers for the activation gradients.
    pub fn backward(self, grads: &mut Params<V, E, T, H>) {
        let Forward {
            state,
            params,
            batch,
            ..
        } = self;
        backward_rows(
            state.rows(),
            Parameters::Read(params),
            &batch.x,
            &batch.y,
            grads,
            &mut NoCopies,
            &mut NoMarks,
        );
    }
}

/// One SGD step on one batch: forward, running-statistics update, fused backward, update.
/// Returns the batch loss before the update.
pub fn train_step<
    const V: usize,
    const VP: usize,
    const E: usize,
    const T: usize,
    const H: usize,
    const B: usize,
>(
    model: &mut Model<V, E, T, H>,
    grads: &mut Params<V, E, T, H>,
    state: &mut TrainState<VP, H, B>,
    batch: &Batch<T, B>,
    lr: f32,
) -> f32 {
    step(
        model,
        grads,
        None,
        state,
        &mut NoCopies,
        batch,
        lr,
        &mut NoMarks,
    )
}

/// The step in full: forward, running statistics, fused backward with SGD (`optim` None: the
/// output layer's part as soon as the backward is done with W2ᵀ, the rest at the end) or then
/// `optim`'s update, at rate `lr`; with the products against transposed weights done as
/// `copies` says and `marks` told as each [`Stage`] is done. Returns the batch loss before the
/// update.
///
/// [`train_step`] is this with SGD, [`NoCopies`] and [`NoMarks`] (firmware's); a host passes a
/// [`Transposed`], and a profile marks that tell the time.
#[allow(clippy::too_many_arguments)]
pub fn step<
    const V: usize,
    const VP: usize,
    const E: usize,
    const T: usize,
    const H: usize,
    const B: usize,
>(
    model: &mut Model<V, E, T, H>,
    grads: &mut Params<V, E, T, H>,
    optim: Option<&mut Optim<V, E, T, H>>,
    state: &mut TrainState<VP, H, B>,
    copies: &mut impl WeightCopies<V, VP, E, T, H>,
    batch: &Batch<T, B>,
    lr: f32,
    marks: &mut impl StageMarks,
) -> f32 {
    let () = PadCheck::<V, VP>::OK;
    // Plain SGD is taken in the backward, in parts; another optimizer's update after it.
    let sgd = optim.is_none().then_some(lr);
    let loss = gradient_rows(
        model,
        grads,
        sgd,
        state.rows(),
        &batch.x,
        &batch.y,
        copies,
        marks,
    );
    if let Some(optim) = optim {
        optim.update(&mut model.params, grads, lr);
        marks.done(Stage::Update);
    }
    loss
}

/// How the step does its two products against a weight's transpose, logits = h·W2 (W2ᵀ is
/// stored) and demb = dhprebn·W1ᵀ (W1 is stored), and so the output layer as a whole; and
/// where the first layer's products gather the embeddings they read (on the stack, or in a
/// host's scratch: the same sums either way, bit for bit). The two ways' products against a
/// transpose sum in different orders: their steps agree to rounding
/// (`tests/fused_vs_reference.rs` holds both to the reference), not bit for bit.
pub trait WeightCopies<
    const V: usize,
    const VP: usize,
    const E: usize,
    const T: usize,
    const H: usize,
>
{
    /// The first layer's forward: hprebn = b1 + C[x]·W1. x [B][T] → hprebn [B][H].
    fn embed_linear_forward(
        &mut self,
        hprebn: &mut [[f32; H]],
        x: &[[Token; T]],
        p: &Params<V, E, T, H>,
    );

    /// Where batch norm's forward ([`layers::batchnorm_tanh_forward_ht`]) writes hᵀ of the
    /// first block of a batch of `rows` rows as it writes h, if anywhere: none by default.
    #[inline(always)]
    fn first_block_ht(&mut self, _rows: usize) -> Option<&mut [[f32; BLOCK]; H]> {
        None
    }

    /// The output layer's forward, its stages marked: logits = h·W2 + b2, then softmax in place
    /// (`probs`) and the returned mean cross-entropy against y. h [B][H] → probs [B][VP]. h is
    /// what batch norm's forward just wrote, with hᵀ of its first block in
    /// [`WeightCopies::first_block_ht`]'s scratch where that gave one ([`Transposed`] reads it).
    fn output_forward(
        &mut self,
        probs: &mut [[f32; VP]],
        h: &[[f32; H]],
        y: &[Token],
        p: &Params<V, E, T, H>,
        marks: &mut impl StageMarks,
    ) -> f32;

    /// The output layer's backward, its stages marked: dlogits over `probs`, dW2 and db2 written
    /// into `grads`, and dhpreact = (1 − h²)·dlogits·W2ᵀ over h.
    fn output_backward(
        &mut self,
        probs: &mut [[f32; VP]],
        h: &mut [[f32; H]],
        y: &[Token],
        p: &Params<V, E, T, H>,
        grads: &mut Params<V, E, T, H>,
        marks: &mut impl StageMarks,
    );

    /// The first layer's backward to its parameters, for a batch of at least one row, written
    /// over `dw1` and `db1`: dW1 = embᵀ·dhprebn, db1 = Σ_b dhprebn[b].
    /// dhprebn [B][H], x [B][T] → dW1 [T][E][H], db1 [H].
    fn linear1_backward(
        &mut self,
        dw1: &mut [[[f32; H]; E]; T],
        db1: &mut [f32; H],
        dhprebn: &[[f32; H]],
        x: &[[Token; T]],
        p: &Params<V, E, T, H>,
    );

    /// dC += the scatter of demb = dhprebn·W1ᵀ: dhprebn [B][H], x [B][T] → dC [V][E].
    fn embed_backward(
        &mut self,
        dc: &mut [[f32; E]; V],
        dhprebn: &[[f32; H]],
        x: &[[Token; T]],
        p: &Params<V, E, T, H>,
    );
}

/// No copies: the products read W2ᵀ and W1 where they are, a dot product per output reduced
/// across lanes ([`crate::simd::dots`]). Costs no memory: the firmware's way.
pub struct NoCopies;

impl<const V: usize, const VP: usize, const E: usize, const T: usize, const H: usize>
    WeightCopies<V, VP, E, T, H> for NoCopies
{
    #[inline(always)]
    fn embed_linear_forward(
        &mut self,
        hprebn: &mut [[f32; H]],
        x: &[[Token; T]],
        p: &Params<V, E, T, H>,
    ) {
        layers::embed_linear_forward(hprebn, x, &p.c, &p.w1, &p.b1);
    }

    #[inline(always)]
    fn output_forward(
        &mut self,
        probs: &mut [[f32; VP]],
        h: &[[f32; H]],
        y: &[Token],
        p: &Params<V, E, T, H>,
        marks: &mut impl StageMarks,
    ) -> f32 {
        let linear2 = |logits: &mut [[f32; VP]], h: &[[f32; H]]| {
            layers::linear_forward(logits, h, &p.w2t, &p.b2)
        };
        output_forward_rows(probs, h, y, linear2, marks)
    }

    #[inline(always)]
    fn output_backward(
        &mut self,
        probs: &mut [[f32; VP]],
        h: &mut [[f32; H]],
        y: &[Token],
        p: &Params<V, E, T, H>,
        grads: &mut Params<V, E, T, H>,
        marks: &mut impl StageMarks,
    ) {
        output_backward_rows(probs, h, y, p, grads, marks);
    }

    #[inline(always)]
    fn linear1_backward(
        &mut self,
        dw1: &mut [[[f32; H]; E]; T],
        db1: &mut [f32; H],
        dhprebn: &[[f32; H]],
        x: &[[Token; T]],
        p: &Params<V, E, T, H>,
    ) {
        layers::linear1_backward(dw1, db1, dhprebn, x, &p.c);
    }

    #[inline(always)]
    fn embed_backward(
        &mut self,
        dc: &mut [[f32; E]; V],
        dhprebn: &[[f32; H]],
        x: &[[Token; T]],
        p: &Params<V, E, T, H>,
    ) {
        layers::embed_backward(dc, dhprebn, x, &p.w1);
    }
}

/// The output layer's forward on rows: `linear2`'s logits, then softmax-CE, row by row.
#[inline(always)]
fn output_forward_rows<const VP: usize, const H: usize>(
    probs: &mut [[f32; VP]],
    h: &[[f32; H]],
    y: &[Token],
    linear2: impl FnOnce(&mut [[f32; VP]], &[[f32; H]]),
    marks: &mut impl StageMarks,
) -> f32 {
    linear2(probs, h);
    marks.done(Stage::Linear2);
    let loss = layers::softmax_cross_entropy_forward(probs, y);
    marks.done(Stage::SoftmaxCrossEntropy);
    loss
}

/// The output layer's backward on rows [B][VP].
#[inline(always)]
fn output_backward_rows<
    const V: usize,
    const VP: usize,
    const E: usize,
    const T: usize,
    const H: usize,
>(
    dlogits: &mut [[f32; VP]],
    h: &mut [[f32; H]],
    y: &[Token],
    p: &Params<V, E, T, H>,
    grads: &mut Params<V, E, T, H>,
    marks: &mut impl StageMarks,
) {
    layers::softmax_cross_entropy_backward(dlogits, y);
    marks.done(Stage::SoftmaxCrossEntropyBackward);
    layers::linear_backward(&mut grads.w2t, &mut grads.b2, dlogits, h);
    marks.done(Stage::Linear2Backward);
    layers::linear_tanh_backward(h, dlogits, &p.w2t);
    marks.done(Stage::Linear2TanhBackward);
}

/// Scratch for transposed copies, made in each step before the product that reads them, so
/// that every product is tiled over rows and outputs as the others are (no reduction across
/// lanes: 1.6× faster on an AVX-512 host, transposes included). The contents are never read
/// across steps, so nothing can go stale, as long as the [`WeightCopies`] methods run in the
/// step's order: `output_forward` reads the hᵀ that batch norm's forward left in the scratch
/// `first_block_ht` gave it (only the step calls them).
///
/// - A batch of whole [`BLOCK`]s of 32 rows runs its output layer with the batch across the
///   lanes ([`crate::columns`]): hᵀ, block by block, and logitsᵀ = W2ᵀ·hᵀ, with no padded
///   logits and no reduction across lanes in the softmax; the same values as the rows' way
///   with the copy of W2, bit for bit. The first block's hᵀ is turned by batch norm's forward
///   as it writes h ([`layers::batchnorm_tanh_forward_ht`]), the others by the output layer's.
/// - Other batches (4, 8, 16 rows) go row by row, from a copy of W2.
/// - demb = dhprebn·W1ᵀ from a copy of W1ᵀ.
/// - The first layer's products, forward and backward, read the embeddings emb = C[x]
///   gathered 32 rows at a time into the same rows as demb, which nothing zeroes: each call
///   writes the rows it reads. ([`NoCopies`] on a host gathers into a buffer on the stack,
///   zeroed at each call; on a microcontroller it looks each row up in place.)
///
/// TEP is the first layer's input width padded to whole vectors, [`crate::padded`]`(T·E)`.
/// Size: 4·(H·(VP + TEP + 32) + 32·TEP) bytes: 28,672 for the default model. A host's:
/// firmware does without.
#[derive(Clone, Debug)]
pub struct Transposed<const VP: usize, const TEP: usize, const H: usize> {
    /// W2 [H][VP]; columns V..VP stay zero.
    w2: [[f32; VP]; H],
    /// W1ᵀ [H][TEP]; columns T·E..TEP stay zero.
    w1t: [[f32; TEP]; H],
    /// hᵀ [H][BLOCK] of one block of rows: the first block's from batch norm's forward
    /// ([`WeightCopies::first_block_ht`]) for the output layer's forward that follows.
    ht: [[f32; BLOCK]; H],
    /// A block of rows of the first layer's input width [BLOCK][TEP]: in a step's order, the
    /// embeddings emb = C[x] that the first layer's forward gathers for its product, demb in
    /// the embedding's backward, then emb again, which dW1 gathers. Each writes the rows it
    /// reads before reading them.
    /// (Gathered on the stack instead, into a buffer zeroed twice a step, 3,840 bytes for the
    /// default model, the AVX2 build's step took 0.1–0.3 µs longer.)
    emb_rows: [[f32; TEP]; BLOCK],
}

impl<const VP: usize, const TEP: usize, const H: usize> Transposed<VP, TEP, H> {
    pub const fn new() -> Self {
        Transposed {
            w2: [[0.0; VP]; H],
            w1t: [[0.0; TEP]; H],
            ht: [[0.0; BLOCK]; H],
            emb_rows: [[0.0; TEP]; BLOCK],
        }
    }
}

impl<const VP: usize, const TEP: usize, const H: usize> Default for Transposed<VP, TEP, H> {
    fn default() -> Self {
        Self::new()
    }
}

impl<
    const V: usize,
    const VP: usize,
    const E: usize,
    const T: usize,
    const H: usize,
    const TEP: usize,
> WeightCopies<V, VP, E, T, H> for Transposed<VP, TEP, H>
{
    #[inline(always)]
    fn embed_linear_forward(
        &mut self,
        hprebn: &mut [[f32; H]],
        x: &[[Token; T]],
        p: &Params<V, E, T, H>,
    ) {
        let emb = &mut self.emb_rows;
        layers::embed_linear_forward_gathered(hprebn, x, &p.c, &p.w1, &p.b1, emb);
    }

    /// The scratch's hᵀ, where the batch is whole blocks: the output layer's forward then
    /// turns only the blocks after the first.
    #[inline(always)]
    fn first_block_ht(&mut self, rows: usize) -> Option<&mut [[f32; BLOCK]; H]> {
        rows.is_multiple_of(BLOCK).then_some(&mut self.ht)
    }

    #[inline(always)]
    fn output_forward(
        &mut self,
        probs: &mut [[f32; VP]],
        h: &[[f32; H]],
        y: &[Token],
        p: &Params<V, E, T, H>,
        marks: &mut impl StageMarks,
    ) -> f32 {
        if !h.len().is_multiple_of(BLOCK) {
            let linear2 = |logits: &mut [[f32; VP]], h: &[[f32; H]]| {
                layers::transpose_w2(&mut self.w2, &p.w2t);
                layers::linear_forward_w2(logits, h, &self.w2, &p.b2);
            };
            return output_forward_rows(probs, h, y, linear2, marks);
        }
        for (i, (rows, h)) in probs.chunks_mut(BLOCK).zip(h.chunks(BLOCK)).enumerate() {
            // The first block's hᵀ is there from the batch norm's forward.
            if i > 0 {
                simd::transpose(&mut self.ht, h);
            }
            columns::linear_forward_block(block_t(rows), &self.ht, &p.w2t, &p.b2);
        }
        marks.done(Stage::Linear2);
        let mut loss = NllSum::new();
        for (rows, y) in probs.chunks_mut(BLOCK).zip(y.chunks(BLOCK)) {
            columns::softmax_cross_entropy_forward_block::<V>(block_t(rows), y, &mut loss);
        }
        marks.done(Stage::SoftmaxCrossEntropy);
        loss.mean(h.len())
    }

    #[inline(always)]
    fn output_backward(
        &mut self,
        probs: &mut [[f32; VP]],
        h: &mut [[f32; H]],
        y: &[Token],
        p: &Params<V, E, T, H>,
        grads: &mut Params<V, E, T, H>,
        marks: &mut impl StageMarks,
    ) {
        let n = h.len();
        if !n.is_multiple_of(BLOCK) {
            return output_backward_rows(probs, h, y, p, grads, marks);
        }
        let mut db2 = [0.0; VP];
        for (rows, y) in probs.chunks_mut(BLOCK).zip(y.chunks(BLOCK)) {
            columns::softmax_cross_entropy_backward_block(block_t::<V, VP>(rows), y, n, &mut db2);
        }
        grads.b2.copy_from_slice(&db2[..V]);
        marks.done(Stage::SoftmaxCrossEntropyBackward);
        let dlogits = &*probs;
        columns::linear_backward_blocks(&mut grads.w2t, dlogits, h);
        marks.done(Stage::Linear2Backward);
        for (h, block) in h.chunks_mut(BLOCK).zip(columns::blocks(dlogits)) {
            columns::linear_tanh_backward_block(h, block, &p.w2t);
        }
        marks.done(Stage::Linear2TanhBackward);
    }

    #[inline(always)]
    fn linear1_backward(
        &mut self,
        dw1: &mut [[[f32; H]; E]; T],
        db1: &mut [f32; H],
        dhprebn: &[[f32; H]],
        x: &[[Token; T]],
        p: &Params<V, E, T, H>,
    ) {
        let emb = &mut self.emb_rows;
        layers::linear1_backward_gathered(dw1, db1, dhprebn, x, &p.c, emb);
    }

    #[inline(always)]
    fn embed_backward(
        &mut self,
        dc: &mut [[f32; E]; V],
        dhprebn: &[[f32; H]],
        x: &[[Token; T]],
        p: &Params<V, E, T, H>,
    ) {
        layers::transpose_w1(&mut self.w1t, &p.w1);
        let demb = &mut self.emb_rows;
        layers::embed_backward_w1t(dc, dhprebn, x, &self.w1t, demb);
    }
}

/// A step on rows up to an optimizer's update, or in full with SGD at rate `sgd`:
/// [`TrainState::forward`] and [`Forward::backward`]'s code, with the running statistics
/// between. Out of line and independent of the batch size, so that
/// every batch size a host builds for a model shape shares one copy of the step (a copy per
/// batch size made the host's build 2.3× slower; one copy costs no speed).
#[inline(never)]
#[allow(clippy::too_many_arguments)]
fn gradient_rows<
    const V: usize,
    const VP: usize,
    const E: usize,
    const T: usize,
    const H: usize,
>(
    model: &mut Model<V, E, T, H>,
    grads: &mut Params<V, E, T, H>,
    sgd: Option<f32>,
    mut s: Rows<'_, VP, H>,
    x: &[[Token; T]],
    y: &[Token],
    copies: &mut impl WeightCopies<V, VP, E, T, H>,
    marks: &mut impl StageMarks,
) -> f32 {
    let loss = forward_rows(s.reborrow(), &model.params, x, y, copies, marks);
    model.bn.update_running(s.bnmeani, s.bnvar, BN_MOMENTUM);
    marks.done(Stage::RunningStats);
    let p = match sgd {
        Some(lr) => Parameters::Sgd(&mut model.params, lr),
        None => Parameters::Read(&model.params),
    };
    backward_rows(s, p, x, y, grads, copies, marks);
    loss
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::mem::size_of;

    /// A default model initialised from `seed`, and a batch of every token.
    fn model_and_batch(seed: u64) -> (crate::DefaultModel, crate::DefaultBatch) {
        (model(seed), batch_of_every_token())
    }

    /// A default model initialised from `seed`.
    fn model(seed: u64) -> crate::DefaultModel {
        use rand_core::SeedableRng;
        let mut rng = rand_xoshiro::Xoshiro256PlusPlus::seed_from_u64(seed);
        let mut model = crate::DefaultModel::zeroed();
        model.init(&mut rng);
        model
    }

    /// A batch of B rows of every token in turn.
    fn batch_of_every_token<const B: usize>() -> Batch<3, B> {
        let mut batch = Batch::new();
        for (i, (x, y)) in batch.x.iter_mut().zip(batch.y.iter_mut()).enumerate() {
            *x = [Token::wrapping((i % 27) as u8, 27); 3];
            *y = Token::wrapping(((i * 7) % 27) as u8, 27);
        }
        batch
    }

    /// The staged step is the step: the same loss and parameters, bit for bit, with every stage
    /// marked in order (plain SGD's update twice, for its two parts; an optimizer's once, at the
    /// end); firmware's (no copies, what `train_step` runs) and the host's (with transposed
    /// copies of the weights, which `charmlp bench --stages` times).
    #[test]
    fn the_staged_step_is_the_step() {
        use crate::optim::Optimizer;
        let momentum = Optimizer::Momentum {
            momentum: 0.9,
            nesterov: false,
        };
        let rules = [Optimizer::Sgd, momentum, Optimizer::ADAMW_MAKEMORE];
        for rule in [None].into_iter().chain(rules.map(Some)) {
            staged_is_unstaged(&mut NoCopies, rule);
            staged_is_unstaged(&mut Transposed::<32, 32, 64>::new(), rule);
        }
    }

    /// `rule` None: plain SGD.
    fn staged_is_unstaged(
        copies: &mut impl WeightCopies<27, 32, 10, 3, 64>,
        rule: Option<crate::optim::Optimizer>,
    ) {
        let mut expected = Stage::ALL.to_vec();
        if rule.is_none() {
            let after_output = expected.iter().position(|&s| s == Stage::BatchNormBackward);
            expected.insert(after_output.unwrap(), Stage::Update);
        }
        let (mut a, batch) = model_and_batch(5);
        let mut b = a.clone();
        let mut optims = rule.map(|rule| [Optim::new(rule), Optim::new(rule)]);
        let [mut oa, mut ob] = match &mut optims {
            Some(optims) => optims.each_mut().map(Some),
            None => [None, None],
        };
        let mut grads = crate::DefaultParams::zeroed();
        let mut state = crate::DefaultTrainState::new();
        for _ in 0..3 {
            let (mut seen, mut n) = ([Stage::ZeroGrads; Stage::ALL.len() + 1], 0);
            let optim = oa.as_deref_mut();
            let la = step(
                &mut a,
                &mut grads,
                optim,
                &mut state,
                copies,
                &batch,
                0.1,
                &mut NoMarks,
            );
            let mut marks = |s| {
                seen[n] = s;
                n += 1;
            };
            let optim = ob.as_deref_mut();
            let lb = step(
                &mut b, &mut grads, optim, &mut state, copies, &batch, 0.1, &mut marks,
            );
            assert_eq!(la.to_bits(), lb.to_bits());
            assert_eq!(a, b);
            assert_eq!(seen[..n], expected);
        }
    }

    /// Plain SGD taken in parts within the backward is SGD after it: the same losses, gradients
    /// and parameters, bit for bit, as the optimizer's SGD update after the whole backward,
    /// step after step; firmware's step and the host's, the host's with a batch of one block
    /// (its output layer's columns), of two, and of 8 rows (its rows' way). (Were W2ᵀ moved
    /// before the output layer's backward has read it for dh, or W1 before demb, the steps
    /// would part at once.)
    #[test]
    fn sgd_in_parts_is_sgd_after_the_backward() {
        sgd_in_parts::<_, 32>(NoCopies, NoCopies);
        sgd_in_parts::<_, 8>(NoCopies, NoCopies);
        let host = || Transposed::<32, 32, 64>::new();
        sgd_in_parts::<_, 32>(host(), host());
        sgd_in_parts::<_, 64>(host(), host());
        sgd_in_parts::<_, 8>(host(), host());
    }

    fn sgd_in_parts<C: WeightCopies<27, 32, 10, 3, 64>, const B: usize>(mut ca: C, mut cb: C) {
        use crate::optim::Optimizer;
        let batch = batch_of_every_token::<B>();
        let mut a = model(7);
        let mut b = a.clone();
        let mut optim = Optim::new(Optimizer::Sgd);
        let (mut ga, mut gb) = (
            crate::DefaultParams::zeroed(),
            crate::DefaultParams::zeroed(),
        );
        let mut state = TrainState::<32, 64, B>::new();
        for _ in 0..4 {
            let la = step(
                &mut a,
                &mut ga,
                None,
                &mut state,
                &mut ca,
                &batch,
                0.1,
                &mut NoMarks,
            );
            let after = Some(&mut optim);
            let lb = step(
                &mut b,
                &mut gb,
                after,
                &mut state,
                &mut cb,
                &batch,
                0.1,
                &mut NoMarks,
            );
            assert_eq!(la.to_bits(), lb.to_bits());
            assert_eq!(ga, gb);
            assert_eq!(a, b);
        }
        assert_ne!(a.params, model(7).params, "the steps moved the parameters");
    }

    /// The backward overwrites every gradient: whatever `grads` held (NaN here), the gradients
    /// are those computed into zeroed buffers, for firmware's step and the host's.
    #[test]
    fn the_backward_overwrites_every_gradient() {
        overwrites(&mut NoCopies);
        overwrites(&mut Transposed::<32, 32, 64>::new());
    }

    fn overwrites(copies: &mut impl WeightCopies<27, 32, 10, 3, 64>) {
        let (model, batch) = model_and_batch(6);
        let mut state = crate::DefaultTrainState::new();
        let [mut zeroed, mut stale] = [0.0, f32::NAN].map(|fill| {
            let mut grads = crate::DefaultParams::zeroed();
            grads.tensors_mut().into_iter().for_each(|t| t.fill(fill));
            grads
        });
        for grads in [&mut zeroed, &mut stale] {
            let (mut m, rows) = (model.clone(), state.rows());
            gradient_rows(
                &mut m,
                grads,
                None,
                rows,
                &batch.x,
                &batch.y,
                copies,
                &mut NoMarks,
            );
        }
        assert!(
            zeroed
                .tensors()
                .iter()
                .flat_map(|t| t.iter())
                .any(|g| *g != 0.0)
        );
        // `==` on f32: a NaN left anywhere fails it; a zero's sign does not matter.
        assert_eq!(zeroed, stale);
    }

    /// The output layer with the batch across the lanes (a [`Transposed`] step's for batches of
    /// whole 32-row blocks) gives the values of the rows' way from the copy of W2 (what
    /// [`Transposed`] runs for other batches), bit for bit: the loss, every probability, dW2,
    /// db2 and dhpreact. Random values with full significands (each order of operations rounds
    /// differently), one block to eight, vocabularies of 3 to 128 that fill their padding and
    /// that do not. Finite logits: the two ways pass over a NaN logit differently (see
    /// [`crate::columns`]).
    #[test]
    fn the_columns_are_the_rows_bit_for_bit() {
        columns_are_rows::<27, 32, 64, 32>(1);
        columns_are_rows::<27, 32, 64, 64>(2);
        columns_are_rows::<13, 16, 24, 32>(3);
        columns_are_rows::<8, 8, 8, 96>(4);
        columns_are_rows::<128, 128, 200, 64>(5);
        columns_are_rows::<3, 8, 16, 256>(6);
    }

    fn columns_are_rows<const V: usize, const VP: usize, const H: usize, const B: usize>(
        seed: u64,
    ) {
        use rand_core::{Rng, SeedableRng};
        extern crate std;
        use std::boxed::Box;
        let mut rng = rand_xoshiro::Xoshiro256PlusPlus::seed_from_u64(seed);
        let mut uniform = || (rng.next_u32() >> 8) as f32 / (1 << 23) as f32 - 1.0;
        let mut p = Box::new(Params::<V, 1, 1, H>::zeroed());
        p.w2t.as_flattened_mut().fill_with(&mut uniform);
        p.b2.fill_with(&mut uniform);
        p.gain.fill_with(&mut uniform);
        p.bias.fill_with(&mut uniform);
        let mut bnraw = Box::new([[0.0f32; H]; B]);
        bnraw.as_flattened_mut().fill_with(|| 3.0 * uniform());
        let y: [Token; B] =
            core::array::from_fn(|_| Token::wrapping((rng.next_u32() % V as u32) as u8, V));

        // h as a step makes it, through the copies: their batch norm leaves hᵀ of the first
        // block in the scratch for their output layer. NaN there first: a part it did not
        // write shows.
        let mut copies = Box::new(Transposed::<VP, 8, H>::new());
        copies.ht = [[f32::NAN; BLOCK]; H];
        let mut h = Box::new([[0.0f32; H]; B]);
        let mut stats = ([0.0; H], [0.0; H], [0.0; H]);
        let (mean, var, var_inv) = (&mut stats.0, &mut stats.1, &mut stats.2);
        let ht = WeightCopies::<V, VP, 1, 1, H>::first_block_ht(&mut *copies, B);
        let (gain, bias) = (&p.gain, &p.bias);
        layers::batchnorm_tanh_forward_ht(
            &mut bnraw[..],
            &mut h[..],
            ht,
            mean,
            var,
            var_inv,
            gain,
            bias,
        );
        let mut rows = Box::new([[0.0f32; VP]; B]);
        layers::transpose_w2(&mut copies.w2, &p.w2t);
        layers::linear_forward_w2(&mut rows[..], &h[..], &copies.w2, &p.b2);
        let rows_loss = layers::softmax_cross_entropy_forward(&mut rows[..], &y);
        let rows_probs = rows.clone();
        let (mut rows_grads, mut rows_h) = (Box::new(Params::zeroed()), h.clone());
        output_backward_rows(
            &mut rows[..],
            &mut rows_h[..],
            &y,
            &p,
            &mut rows_grads,
            &mut NoMarks,
        );

        // NaN where nothing is written yet: a read of anything the forward did not write shows.
        let mut cols = Box::new([[f32::NAN; VP]; B]);
        let cols_loss = copies.output_forward(&mut cols[..], &h[..], &y, &p, &mut NoMarks);
        assert_eq!(
            cols_loss.to_bits(),
            rows_loss.to_bits(),
            "V {V}, B {B}: loss"
        );
        for (b, row) in rows_probs.iter().enumerate() {
            let block = block_t::<V, VP>(&mut cols[b / BLOCK * BLOCK..][..BLOCK]);
            for (k, want) in row[..V].iter().enumerate() {
                let got = block[k][b % BLOCK];
                assert_eq!(
                    got.to_bits(),
                    want.to_bits(),
                    "V {V}, B {B}: probs[{b}][{k}]"
                );
            }
        }
        let (mut cols_grads, mut cols_h) = (Box::new(Params::zeroed()), h.clone());
        copies.output_backward(
            &mut cols[..],
            &mut cols_h[..],
            &y,
            &p,
            &mut cols_grads,
            &mut NoMarks,
        );
        let bits = |x: &[f32]| x.iter().map(|v| v.to_bits()).collect::<std::vec::Vec<_>>();
        assert_eq!(
            bits(&cols_grads.b2),
            bits(&rows_grads.b2),
            "V {V}, B {B}: db2"
        );
        assert_eq!(
            bits(cols_grads.w2t.as_flattened()),
            bits(rows_grads.w2t.as_flattened()),
            "V {V}, B {B}: dW2"
        );
        assert_eq!(
            bits(cols_h.as_flattened()),
            bits(rows_h.as_flattened()),
            "V {V}, B {B}: dhpreact"
        );
    }

    #[test]
    fn sizes_are_as_documented() {
        assert_eq!(size_of::<Transposed<32, 32, 64>>(), 28_672);
        assert_eq!(size_of::<Transposed<32, 32, 200>>(), 80_896);
        assert_eq!(size_of::<TrainState<32, 64, 32>>(), 21_248);
        assert_eq!(size_of::<TrainState<32, 200, 32>>(), 57_696);
        assert_eq!(
            size_of::<TrainState<128, 64, 32>>(),
            4 * (2 * 32 * 64 + 32 * 128 + 3 * 64)
        );
    }
}
