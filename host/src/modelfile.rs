//! Model files on disk: loading whichever built-in shape a file holds, with a bound on what is
//! read (writing is [`crate::outputs`]'s).

use crate::checkpoint;
use crate::provenance::{self, Provenance};
use crate::shapes::{self, Loaded};
use anyhow::{Result, anyhow, bail};
use std::path::Path;

/// Reads a model file (`-`: standard input; a training checkpoint's model too) of any built-in
/// shape, at most one byte more than
/// the largest ([`shapes::max_model_bytes`]): a longer input is not one of its models, and
/// reading stops there (`--model /dev/zero` ends at once). Every failure names the file and
/// what is wrong.
/// `default_alphabet` is the alphabet of a safetensors file without charmlp's metadata.
pub fn load(path: &Path, default_alphabet: Option<&[char]>) -> Result<Box<dyn Loaded>> {
    Ok(load_with_provenance(path, default_alphabet)?.0)
}

/// [`load`], and where the model came from (see [`crate::provenance`]).
pub fn load_with_provenance(
    path: &Path,
    default_alphabet: Option<&[char]>,
) -> Result<(Box<dyn Loaded>, Provenance)> {
    let max = shapes::max_model_bytes();
    // A checkpoint holds a model file and the optimizer's state (at most two more copies of
    // the parameters): read up to that much, and hold a model file itself to its own bound.
    let max_checkpoint = 4 * max;
    let (name, bytes) = crate::data::read_at_most(path, max_checkpoint as u64, "model file")?;
    let bytes = match checkpoint::model_in(&bytes) {
        Some(model) => model.map_err(|e| anyhow!("{name}: {e:#}"))?,
        None => bytes,
    };
    let model_like =
        bytes.starts_with(b"CMLP") || charmlp_core::safetensors::looks_like_safetensors(&bytes);
    if bytes.len() > max && model_like {
        bail!("{name}: longer than any model this build reads ({max} bytes at most)");
    }
    let model = from_bytes(&bytes, default_alphabet).map_err(|e| anyhow!("{name}: {e}"))?;
    Ok((model, provenance::read(&bytes)))
}

/// A model from a file's bytes, of whichever built-in shape they hold; the loader's checks
/// (checksum, alphabet, finite values, variances, activation bounds) are all applied.
pub fn from_bytes(bytes: &[u8], default_alphabet: Option<&[char]>) -> Result<Box<dyn Loaded>> {
    shapes::load(bytes, default_alphabet)
}
