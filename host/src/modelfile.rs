//! Model files on disk: loading whichever built-in shape a file holds, with a bound on what is
//! read (writing is [`crate::outputs`]'s).

use crate::shown;
use anyhow::{Context, Result, anyhow, bail};
use charmlp_core::bytes::{MAGIC, peek_shape};
use charmlp_core::{DefaultModel, Model, WideModel};
use std::io::Read;
use std::path::Path;

/// A model of one of the shapes this binary is built for.
pub enum AnyModel {
    H64(Box<DefaultModel>),
    H200(Box<WideModel>),
}

/// Runs `$body` with `$m` bound to the concrete model inside an [`AnyModel`].
#[macro_export]
macro_rules! with_model {
    ($any:expr, $m:ident => $body:expr) => {
        match $any {
            $crate::modelfile::AnyModel::H64($m) => $body,
            $crate::modelfile::AnyModel::H200($m) => $body,
        }
    };
}

fn read_into<const E: usize, const T: usize, const H: usize>(
    bytes: &[u8],
) -> Result<Box<Model<E, T, H>>> {
    let mut m = Box::new(Model::zeroed());
    m.read_bytes(bytes).map_err(|e| anyhow!("{e}"))?;
    Ok(m)
}

/// Largest model file this build reads: the widest built-in shape's. A longer input is not one
/// of its models, and reading stops one byte past this bound (`--model /dev/zero` ends at once).
pub const MAX_MODEL_BYTES: usize = WideModel::BYTES;

/// Reads a model file (`-`: standard input) of any built-in shape, at most [`MAX_MODEL_BYTES`] + 1 bytes of it. Every
/// failure names the file and what is wrong.
pub fn load(path: &Path) -> Result<AnyModel> {
    let mut bytes = Vec::with_capacity(MAX_MODEL_BYTES + 1);
    let (name, file) = crate::data::open_input(path)
        .with_context(|| format!("{}: cannot read the model file", shown(path)))?;
    file.take(MAX_MODEL_BYTES as u64 + 1)
        .read_to_end(&mut bytes)
        .with_context(|| format!("{name}: cannot read the model file"))?;
    if bytes.len() > MAX_MODEL_BYTES && bytes.starts_with(&MAGIC) {
        bail!("{name}: longer than any model this build reads ({MAX_MODEL_BYTES} bytes at most)");
    }
    from_bytes(&bytes).map_err(|e| anyhow!("{name}: {e}"))
}

/// A model from a file's bytes, of whichever built-in shape they hold; the loader's checks
/// (checksum, finite values, variances, activation bounds) are all applied.
pub fn from_bytes(bytes: &[u8]) -> Result<AnyModel> {
    let shape = peek_shape(bytes).map_err(|e| anyhow!("{e}"))?;
    if shape == DefaultModel::SHAPE {
        Ok(AnyModel::H64(read_into(bytes)?))
    } else if shape == WideModel::SHAPE {
        Ok(AnyModel::H200(read_into(bytes)?))
    } else {
        bail!(
            "model has {shape}; this build reads {} or {}",
            DefaultModel::SHAPE,
            WideModel::SHAPE
        )
    }
}

/// The model's file bytes.
pub fn to_bytes<const E: usize, const T: usize, const H: usize>(m: &Model<E, T, H>) -> Vec<u8> {
    let mut bytes = vec![0; Model::<E, T, H>::BYTES];
    let written = m.write_bytes(&mut bytes);
    debug_assert_eq!(written, Ok(bytes.len()));
    bytes
}
