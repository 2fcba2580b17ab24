//! Model files on disk: loading whichever built-in shape a file holds, and writing atomically.

use anyhow::{Context, Result, anyhow, bail};
use charmlp_core::bytes::peek_shape;
use charmlp_core::{DefaultModel, Model, WideModel};
use std::io::Write;
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

/// The hidden widths built in, for messages and flag parsing.
pub const HIDDEN_WIDTHS: [usize; 2] = [charmlp_core::HIDDEN, charmlp_core::HIDDEN_WIDE];

fn read_into<const E: usize, const T: usize, const H: usize>(
    bytes: &[u8],
    path: &Path,
) -> Result<Box<Model<E, T, H>>> {
    let mut m = Box::new(Model::zeroed());
    m.read_bytes(bytes)
        .map_err(|e| anyhow!("{}: {e}", path.display()))?;
    Ok(m)
}

/// Reads a model file of any built-in shape. Every failure names the file and what is wrong.
pub fn load(path: &Path) -> Result<AnyModel> {
    let bytes = std::fs::read(path)
        .with_context(|| format!("{}: cannot read the model file", path.display()))?;
    let shape = peek_shape(&bytes).map_err(|e| anyhow!("{}: {e}", path.display()))?;
    if shape == DefaultModel::SHAPE {
        Ok(AnyModel::H64(read_into(&bytes, path)?))
    } else if shape == WideModel::SHAPE {
        Ok(AnyModel::H200(read_into(&bytes, path)?))
    } else {
        bail!(
            "{}: model has {shape}; this build reads {} or {}",
            path.display(),
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

/// Writes `contents` to `path` atomically: a temporary file in the same directory, flushed to
/// disk, then renamed over `path`. An interrupted write leaves the old file (or none), never a
/// truncated or half-new one.
pub fn write_atomic(path: &Path, contents: &[u8]) -> Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let fail = |what: &str| format!("{}: cannot {what}", path.display());
    let mut builder = tempfile::Builder::new();
    builder.prefix(".charmlp-").suffix(".tmp");
    // A temporary file is private (0600); the file it becomes gets the mode any new file gets:
    // 0666 less the umask, as the operating system applies it at creation.
    #[cfg(unix)]
    builder.permissions(std::os::unix::fs::PermissionsExt::from_mode(0o666));
    let mut tmp = builder
        .tempfile_in(dir)
        .with_context(|| fail("create a temporary file beside it"))?;
    tmp.write_all(contents).with_context(|| fail("write"))?;
    tmp.as_file()
        .sync_all()
        .with_context(|| fail("flush to disk"))?;
    tmp.persist(path)
        .map_err(|e| e.error)
        .with_context(|| fail("replace"))?;
    Ok(())
}
