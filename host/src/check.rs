//! `charmlp check`: the makemore part 4 notebook's `cmp` table against a PyTorch reference state
//! (`scripts/torch_reference.py`; built in from `data/torch_reference.safetensors`).
//!
//! The step-by-step path ([`ReferenceState`], 150 KB, too large for the firmware) gives every
//! intermediate the notebook names and every gradient of its backward; then the fast path's
//! rows, which the firmware prints too, come from [`conformance::fast_rows`].

use anyhow::{Result, anyhow, bail};
use charmlp_core::conformance::{self, Cmp, Reference, grad_rows};
use charmlp_core::reference::ReferenceState;
use charmlp_core::{
    BATCH, CONTEXT, DefaultBatch, DefaultModel, DefaultParams, DefaultTrainState, EMBED, HIDDEN,
    VOCAB,
};

pub use charmlp_core::conformance::TOLERANCE;

/// The reference state committed with the source (PyTorch 2.15.0, see data/README.md).
pub const BUILTIN: &[u8] = include_bytes!("../../data/torch_reference.safetensors");

/// The longest reference read: 16 MiB (the built-in one has 199 KB); `--reference /dev/zero`
/// stops there.
pub const MAX_REFERENCE_BYTES: u64 = 16 << 20;

/// A reference state from `path` (`-`: standard input), at most [`MAX_REFERENCE_BYTES`].
pub fn read_reference(path: &std::path::Path) -> Result<Vec<u8>> {
    let (name, bytes) = crate::data::read_at_most(path, MAX_REFERENCE_BYTES, "reference")?;
    if bytes.len() as u64 > MAX_REFERENCE_BYTES {
        bail!("{name}: longer than a reference state ({MAX_REFERENCE_BYTES} bytes at most)");
    }
    Ok(bytes)
}

/// Every row of the table for the reference state in `bytes`: the step-by-step path's 20
/// forward tensors and 26 gradients, then the fast path's 7 activations, 7 gradients and the
/// ten losses.
pub fn rows(bytes: &[u8]) -> Result<Vec<Cmp>> {
    let r = Reference(bytes);
    let mut rows = Vec::new();
    let mut model = Box::new(DefaultModel::zeroed());
    let mut batch = Box::new(DefaultBatch::new());
    r.params(&mut model.params).map_err(|e| anyhow!("{e}"))?;
    r.batch("Xb", "Yb", 0, &mut batch)
        .map_err(|e| anyhow!("{e}"))?;

    let mut s = Box::new(ReferenceState::<VOCAB, EMBED, CONTEXT, HIDDEN, BATCH>::new());
    let loss = s.forward(&model.params, &batch);
    let mut grads = Box::new(DefaultParams::zeroed());
    s.backward(&model.params, &batch, &mut grads);
    let loss = [loss];
    let tensors: [(&'static str, &[f32]); 39] = [
        ("emb", s.emb.as_flattened().as_flattened()),
        ("embcat", s.embcat.as_flattened().as_flattened()),
        ("hprebn", s.hprebn.as_flattened()),
        ("bnmeani", &s.bnmeani),
        ("bndiff", s.bndiff.as_flattened()),
        ("bndiff2", s.bndiff2.as_flattened()),
        ("bnvar", &s.bnvar),
        ("bnvar_inv", &s.bnvar_inv),
        ("bnraw", s.bnraw.as_flattened()),
        ("hpreact", s.hpreact.as_flattened()),
        ("h", s.h.as_flattened()),
        ("logits", s.logits.as_flattened()),
        ("logit_maxes", &s.logit_maxes),
        ("norm_logits", s.norm_logits.as_flattened()),
        ("counts", s.counts.as_flattened()),
        ("counts_sum", &s.counts_sum),
        ("counts_sum_inv", &s.counts_sum_inv),
        ("probs", s.probs.as_flattened()),
        ("logprobs", s.logprobs.as_flattened()),
        ("loss", &loss),
        ("dlogprobs", s.dlogprobs.as_flattened()),
        ("dprobs", s.dprobs.as_flattened()),
        ("dcounts_sum_inv", &s.dcounts_sum_inv),
        ("dcounts_sum", &s.dcounts_sum),
        ("dcounts", s.dcounts.as_flattened()),
        ("dnorm_logits", s.dnorm_logits.as_flattened()),
        ("dlogit_maxes", &s.dlogit_maxes),
        ("dlogits", s.dlogits.as_flattened()),
        ("dh", s.dh.as_flattened()),
        ("dhpreact", s.dhpreact.as_flattened()),
        ("dbnraw", s.dbnraw.as_flattened()),
        ("dbnvar_inv", &s.dbnvar_inv),
        ("dbnvar", &s.dbnvar),
        ("dbndiff2", s.dbndiff2.as_flattened()),
        ("dbndiff", s.dbndiff.as_flattened()),
        ("dbnmeani", &s.dbnmeani),
        ("dhprebn", s.dhprebn.as_flattened()),
        ("dembcat", s.dembcat.as_flattened().as_flattened()),
        ("demb", s.demb.as_flattened().as_flattened()),
    ];
    for (name, ours) in tensors {
        rows.push(
            r.cmp(name, false, ours.iter().copied())
                .map_err(|e| anyhow!("{e}"))?,
        );
    }
    let mut push = |row| rows.push(row);
    grad_rows(&r, &grads, false, &mut push).map_err(|e| anyhow!("{e}"))?;

    let mut state = Box::new(DefaultTrainState::new());
    conformance::fast_rows(&r, &mut model, &mut grads, &mut state, &mut batch, push)
        .map_err(|e| anyhow!("{e}"))?;
    Ok(rows)
}

/// The table as the notebook prints it, one row a line.
pub fn table(rows: &[Cmp]) -> String {
    rows.iter().map(|r| format!("{r}\n")).collect()
}
