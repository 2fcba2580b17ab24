//! Conformance with PyTorch: the makemore part 4 notebook's `cmp` of our tensors against a
//! reference state that `scripts/torch_reference.py` writes as safetensors, and the fast path's
//! rows of that table, which the host's `charmlp check` and the firmware's check image both print.
//!
//! The reference holds the notebook's parameters, one batch (`Xb`, `Yb`), every intermediate and
//! every gradient (`d<name>`) autograd gives, and ten more batches with the losses of ten SGD
//! steps (`steps_Xb`, `steps_Yb`, `steps_loss`), for the notebook's shape: 27 symbols,
//! embedding 10, context 3, hidden 64, batch 32.

use crate::safetensors::{AnyTensor, FileError, Quoted, find_tensor};
use crate::{CONTEXT, HIDDEN, VOCAB, train_step};
use crate::{DefaultBatch, DefaultModel, DefaultParams, DefaultTrainState, Token};
use core::fmt;

/// The largest maxdiff accepted, relative to the tensor's scale (its largest |value|): what f32
/// rounding in another summation order leaves. charmlp's largest is 1.6e-6 of the scale (db1,
/// a sum of rounding noise), the others at most 5e-7 (`host/tests/check.rs`).
pub const TOLERANCE: f32 = 1e-5;

/// Gradients that are exactly zero in exact arithmetic, as the notebook points out, with the
/// tensor each is a sum of: both sides hold only rounding noise, whose size is relative to the
/// summed tensor's scale (dlogit_maxes: softmax does not depend on the shift; db1: batch norm
/// removes b1).
pub const ZERO_IN_EXACT: [(&str, &str); 2] = [("dlogit_maxes", "dnorm_logits"), ("db1", "dhprebn")];

/// The SGD steps the reference records.
pub const STEPS: usize = 10;
/// Their learning rate.
pub const LR: f32 = 0.1;

/// One row of the notebook's table.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Cmp {
    /// The reference's name for the tensor.
    pub name: &'static str,
    /// Computed by the fast path (printed with a "fast " prefix), not the step-by-step one.
    pub fast: bool,
    /// Bit for bit.
    pub exact: bool,
    /// maxdiff ≤ [`TOLERANCE`] · scale.
    pub approximate: bool,
    /// `torch.allclose`'s test, element by element: |a − b| ≤ 1e-8 + 1e-5·|b|. Stricter than
    /// `approximate` near zero, where a sum's rounding is large relative to its value.
    pub allclose: bool,
    pub maxdiff: f32,
    /// Largest |value| of PyTorch's tensor, or for [`ZERO_IN_EXACT`] of the summed one.
    pub scale: f32,
}

impl Cmp {
    /// The row of `ours` against PyTorch's `theirs`, which must be as long.
    pub fn new(
        name: &'static str,
        fast: bool,
        ours: impl Iterator<Item = f32> + Clone,
        theirs: impl Iterator<Item = f32> + Clone,
        scale: f32,
    ) -> Result<Self, Mismatch> {
        let (expected, found) = (ours.clone().count(), theirs.clone().count());
        if expected != found {
            return Err(Mismatch::Length {
                name,
                expected,
                found,
            });
        }
        let pairs = || ours.clone().zip(theirs.clone());
        // A NaN difference is the largest under `total_cmp`, and below no bound.
        let maxdiff = pairs()
            .map(|(a, b)| (a - b).abs())
            .max_by(f32::total_cmp)
            .unwrap_or(0.0);
        Ok(Cmp {
            name,
            fast,
            exact: pairs().all(|(a, b)| a.to_bits() == b.to_bits()),
            // A non-finite reference (an infinite scale) proves nothing: not approximate.
            approximate: scale.is_finite() && maxdiff <= TOLERANCE * scale,
            // As torch.allclose: an infinity is close only to itself.
            allclose: pairs()
                .all(|(a, b)| a == b || (b.is_finite() && (a - b).abs() <= 1e-8 + 1e-5 * b.abs())),
            maxdiff,
            scale,
        })
    }
}

/// The notebook's line: `name | exact: … | approximate: … | maxdiff: …`, then scale and allclose.
impl fmt::Display for Cmp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let prefix = if self.fast { "fast " } else { "" };
        // Padded by hand: a `fmt::Arguments` of two parts has no width.
        let width = prefix.len() + self.name.len();
        write!(f, "{prefix}{}", self.name)?;
        for _ in width..20 {
            f.write_str(" ")?;
        }
        write!(
            f,
            " | exact: {:5} | approximate: {:5} | maxdiff: {:<13e} | scale: {:<9.3e} | allclose: {}",
            self.exact, self.approximate, self.maxdiff, self.scale, self.allclose
        )
    }
}

/// Why a reference state cannot be compared with.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Mismatch {
    /// Not a safetensors file, or the tensor `name`'s entry is bad.
    File {
        name: &'static str,
        error: FileError,
    },
    /// A tensor the comparison needs is missing.
    Missing(&'static str),
    /// A tensor of another dtype than the comparison needs.
    Dtype {
        name: &'static str,
        expected: &'static str,
        found: Quoted,
    },
    /// A tensor of another length than ours.
    Length {
        name: &'static str,
        expected: usize,
        found: usize,
    },
    /// A token index outside the 27.
    Token { name: &'static str, index: i64 },
}

impl fmt::Display for Mismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Mismatch::File { name, error } => {
                write!(f, "not a reference state (looking for {name}): {error}")
            }
            Mismatch::Missing(name) => write!(
                f,
                "no tensor {name} in the reference state (scripts/torch_reference.py writes it)"
            ),
            Mismatch::Dtype {
                name,
                expected,
                found,
            } => write!(f, "tensor {name} has dtype {found}; expected {expected}"),
            Mismatch::Length {
                name,
                expected,
                found,
            } => write!(
                f,
                "tensor {name} has {found} values; charmlp's has {expected}"
            ),
            Mismatch::Token { name, index } => write!(
                f,
                "tensor {name} holds {index}, not a token index (0 to {})",
                VOCAB - 1
            ),
        }
    }
}

impl core::error::Error for Mismatch {}

/// A reference state's bytes.
#[derive(Clone, Copy)]
pub struct Reference<'a>(pub &'a [u8]);

impl<'a> Reference<'a> {
    fn tensor(&self, name: &'static str, dtype: &'static str) -> Result<AnyTensor<'a>, Mismatch> {
        let t = find_tensor(self.0, name)
            .map_err(|error| Mismatch::File { name, error })?
            .ok_or(Mismatch::Missing(name))?;
        if t.dtype != dtype {
            return Err(Mismatch::Dtype {
                name,
                expected: dtype,
                found: Quoted::new(t.dtype),
            });
        }
        Ok(t)
    }

    /// The F32 tensor `name`, value by value.
    pub fn f32s(
        &self,
        name: &'static str,
    ) -> Result<impl Iterator<Item = f32> + Clone + 'a, Mismatch> {
        let t = self.tensor(name, "F32")?;
        Ok(t.data
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])))
    }

    /// Largest |value| of `name`, or for [`ZERO_IN_EXACT`] of the tensor it sums.
    pub fn scale(&self, name: &'static str) -> Result<f32, Mismatch> {
        let of = ZERO_IN_EXACT
            .iter()
            .find(|(zero, _)| *zero == name)
            .map_or(name, |(_, summed)| summed);
        Ok(self.f32s(of)?.map(f32::abs).fold(0.0, f32::max))
    }

    /// Our `ours` against the reference's `name`: one row.
    pub fn cmp(
        &self,
        name: &'static str,
        fast: bool,
        ours: impl Iterator<Item = f32> + Clone,
    ) -> Result<Cmp, Mismatch> {
        Cmp::new(name, fast, ours, self.f32s(name)?, self.scale(name)?)
    }

    /// Copies the F32 tensor `name` into `dst`, which it must fill exactly.
    fn copy(&self, name: &'static str, dst: &mut [f32]) -> Result<(), Mismatch> {
        let values = self.f32s(name)?;
        let found = values.clone().count();
        if found != dst.len() {
            return Err(Mismatch::Length {
                name,
                expected: dst.len(),
                found,
            });
        }
        dst.iter_mut().zip(values).for_each(|(d, x)| *d = x);
        Ok(())
    }

    /// The notebook's parameters, W2 [H, V] into the fast path's W2ᵀ.
    pub fn params(&self, p: &mut DefaultParams) -> Result<(), Mismatch> {
        let [c, w1, b1, gain, bias, _, b2] = p.tensors_mut();
        self.copy("C", c)?;
        self.copy("W1", w1)?;
        self.copy("b1", b1)?;
        self.copy("bngain", gain)?;
        self.copy("bnbias", bias)?;
        self.copy("b2", b2)?;
        let w2 = self.f32s("W2")?;
        let found = w2.clone().count();
        if found != HIDDEN * VOCAB {
            return Err(Mismatch::Length {
                name: "W2",
                expected: HIDDEN * VOCAB,
                found,
            });
        }
        for (flat, x) in w2.enumerate() {
            p.w2t[flat % VOCAB][flat / VOCAB] = x;
        }
        Ok(())
    }

    /// Batch `i` of the I64 contexts `x` [.., B, T] and targets `y` [.., B].
    pub fn batch(
        &self,
        x: &'static str,
        y: &'static str,
        i: usize,
        batch: &mut DefaultBatch,
    ) -> Result<(), Mismatch> {
        let tokens = |name: &'static str, per: usize| -> Result<_, Mismatch> {
            let t = self.tensor(name, "I64")?;
            let all = t.data.len() / 8;
            if all < (i + 1) * per {
                return Err(Mismatch::Length {
                    name,
                    expected: (i + 1) * per,
                    found: all,
                });
            }
            Ok(t.data[8 * i * per..8 * (i + 1) * per]
                .chunks_exact(8)
                .map(move |b| {
                    let index =
                        i64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]);
                    u8::try_from(index)
                        .ok()
                        .filter(|&ix| usize::from(ix) < VOCAB)
                        .and_then(Token::from_index)
                        .ok_or(Mismatch::Token { name, index })
                }))
        };
        let b = batch.y.len();
        for (slot, token) in batch
            .x
            .as_flattened_mut()
            .iter_mut()
            .zip(tokens(x, b * CONTEXT)?)
        {
            *slot = token?;
        }
        for (slot, token) in batch.y.iter_mut().zip(tokens(y, b)?) {
            *slot = token?;
        }
        Ok(())
    }
}

/// The fast path's rows: from the reference's parameters and batch, [`crate::TrainState`]'s
/// stored activations and loss, the seven parameter gradients of its fused backward, then the
/// losses of [`STEPS`] SGD steps ([`train_step`], lr [`LR`]) on the reference's batches, each
/// passed to `row` in that order. The buffers are the caller's, so that firmware can keep them
/// in statics: a model, a gradient, a training state and a batch (about 55 KB).
pub fn fast_rows(
    reference: &Reference<'_>,
    model: &mut DefaultModel,
    grads: &mut DefaultParams,
    state: &mut DefaultTrainState,
    batch: &mut DefaultBatch,
    mut row: impl FnMut(Cmp),
) -> Result<(), Mismatch> {
    reference.params(&mut model.params)?;
    reference.batch("Xb", "Yb", 0, batch)?;
    let forward = state.forward(&model.params, batch);
    let loss = forward.loss();
    let s = forward.state();
    for (name, ours) in [
        ("bnmeani", &s.bnmeani[..]),
        ("bnvar", &s.bnvar[..]),
        ("bnvar_inv", &s.bnvar_inv[..]),
        ("bnraw", s.bnraw.as_flattened()),
        ("h", s.h.as_flattened()),
    ] {
        row(reference.cmp(name, true, ours.iter().copied())?);
    }
    // The logits rows are padded to whole vectors: the padding is not compared.
    let probs = s.probs.iter().flat_map(|r| r[..VOCAB].iter().copied());
    row(reference.cmp("probs", true, probs)?);
    row(reference.cmp("loss", true, [loss].into_iter())?);
    forward.backward(grads);
    grad_rows(reference, grads, true, &mut row)?;

    let mut losses = [0.0f32; STEPS];
    for (i, loss) in losses.iter_mut().enumerate() {
        reference.batch("steps_Xb", "steps_Yb", i, batch)?;
        *loss = train_step(model, grads, state, batch, LR);
    }
    row(reference.cmp("steps_loss", true, losses.iter().copied())?);
    Ok(())
}

/// The seven parameter gradients' rows (dW2 read from W2ᵀ's layout, column by column).
pub fn grad_rows(
    reference: &Reference<'_>,
    grads: &DefaultParams,
    fast: bool,
    row: &mut impl FnMut(Cmp),
) -> Result<(), Mismatch> {
    let w2 = (0..HIDDEN * VOCAB).map(|flat| grads.w2t[flat % VOCAB][flat / VOCAB]);
    for (name, ours) in [
        ("dC", grads.c.as_flattened()),
        ("dW1", grads.w1.as_flattened().as_flattened()),
        ("db1", &grads.b1[..]),
    ] {
        row(reference.cmp(name, fast, ours.iter().copied())?);
    }
    row(reference.cmp("dW2", fast, w2)?);
    for (name, ours) in [
        ("db2", &grads.b2[..]),
        ("dbngain", &grads.gain[..]),
        ("dbnbias", &grads.bias[..]),
    ] {
        row(reference.cmp(name, fast, ours.iter().copied())?);
    }
    Ok(())
}
