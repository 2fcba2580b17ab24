//! makemore's character-level MLP (Karpathy, "makemore" part 4) with its backward pass written
//! by hand: `no_std`, no `alloc`, every tensor a fixed-size array.
//!
//! V symbols → embedding C [V][E] → T embeddings concatenated → linear W1 [T·E][H] + b1 →
//! batch norm (gain, bias) → tanh → linear W2 [H][V] + b2 → softmax cross-entropy.
//!
//! V is the vocabulary's capacity: makemore's 27 (the boundary and a–z) exactly, or a larger
//! capacity holding any [`Alphabet`] of up to V symbols.
//!
//! - [`Params`]: the seven tensors (and, as the same type, their gradients).
//! - [`TrainState`]: a batch's activations for the fast path ([`layers`]); [`train_step`].
//! - [`reference::ReferenceState`]: the derivation step by step, for tests.
//! - [`Model`]: parameters plus batch-norm statistics; inference, sampling, calibration, bytes.
//!
//! Every state struct documents its size in bytes; the tests assert it.
#![no_std]
#![forbid(unsafe_code)]

pub mod alphabet;
pub mod batch;
pub mod bounds;
pub mod bytes;
pub mod calibrate;
pub mod columns;
pub mod conformance;
pub mod in_place;
pub mod infer;
pub mod int8;
pub mod layers;
pub mod model;
mod model_file;
pub mod optim;
pub mod packed;
pub mod params;
pub mod quantize;
pub mod random;
pub mod reference;
pub mod safetensors;
pub mod sample;
pub mod schedule;
pub mod shape;
pub mod simd;
pub mod train;
pub mod vocab;

pub use alphabet::{Alphabet, AlphabetError, MAX_SYMBOLS};
pub use batch::{Batch, EmptySplit};
pub use bytes::{LoadError, Shape};
pub use calibrate::BnCalibration;
pub use infer::{InferRows, InferState};
pub use int8::{Int8Loss, Int8Model, Int8State, Requant};
pub use model::{BnStats, Model};
pub use optim::{Optim, Optimizer};
pub use params::Params;
pub use sample::{Drawing, Sampling, Temperature};
pub use schedule::{Decay, Schedule};
pub use shape::padded;
pub use train::{
    NoCopies, NoMarks, Stage, StageMarks, TrainState, Transposed, WeightCopies, step, train_step,
};
pub use vocab::{Contexts, CountedExample, Example, Token, VOCAB};

/// Embedding width of the default model.
pub const EMBED: usize = 10;
/// Context length of the default model.
pub const CONTEXT: usize = 3;
/// Hidden width of the default model.
pub const HIDDEN: usize = 64;
/// makemore part 4, exercise 4: the wider hidden layer.
pub const HIDDEN_WIDE: usize = 200;
/// Batch size of the default recipe.
pub const BATCH: usize = 32;

/// makemore's vocabulary padded to whole vectors: the width of a logits row (32).
pub const VOCAB_PADDED: usize = padded(VOCAB);

/// The default model: 27 → 10 → 30 → 64 → 27.
pub type DefaultModel = Model<VOCAB, EMBED, CONTEXT, HIDDEN>;
/// Parameters (and gradients) of the default model.
pub type DefaultParams = Params<VOCAB, EMBED, CONTEXT, HIDDEN>;
/// Training activations of the default model with batch 32.
pub type DefaultTrainState = TrainState<VOCAB_PADDED, HIDDEN, BATCH>;
/// A batch of the default recipe.
pub type DefaultBatch = Batch<CONTEXT, BATCH>;
/// The hidden-200 model.
pub type WideModel = Model<VOCAB, EMBED, CONTEXT, HIDDEN_WIDE>;
/// Training activations of the hidden-200 model with batch 32.
pub type WideTrainState = TrainState<VOCAB_PADDED, HIDDEN_WIDE, BATCH>;
