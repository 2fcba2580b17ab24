//! Model files on disk: loading whichever built-in shape a file holds, with a bound on what is
//! read (writing is [`crate::outputs`]'s).

use crate::shapes::{self, Loaded};
use crate::shown;
use anyhow::{Context, Result, anyhow, bail};
use charmlp_core::bytes::MAGIC;
use std::io::Read;
use std::path::Path;

pub use crate::shapes::MAX_MODEL_BYTES;

/// Reads a model file (`-`: standard input) of any built-in shape, at most
/// [`MAX_MODEL_BYTES`] + 1 bytes of it: a longer input is not one of its models, and reading
/// stops there (`--model /dev/zero` ends at once). Every failure names the file and what is
/// wrong.
pub fn load(path: &Path) -> Result<Box<dyn Loaded>> {
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
/// (checksum, alphabet, finite values, variances, activation bounds) are all applied.
pub fn from_bytes(bytes: &[u8]) -> Result<Box<dyn Loaded>> {
    shapes::load(bytes)
}
